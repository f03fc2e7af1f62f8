"""``snap``: the command line, a thin layer over :class:`snapgit.Repo`.

Each command parses its options, calls one API method and renders the result: rich text for
people, ``--json`` for programs. Errors: one line on stderr (``error: ...`` and maybe
``hint: ...``), exit status 1 for a failed operation, 2 for bad usage, 3 for a damaged store, 4
when another process holds a lock; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import sys
from pathlib import Path
from collections.abc import Callable
from gc import freeze as freeze_gc  # as: `gc` is the command below
from typing import Annotated, Any, Optional

import typer

from snapgit.version import __version__
from snapgit.errors import SnapError

app = typer.Typer(
    name="snap",
    help="Version control for the data in a live SQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

class _Stream:
    """stdout or stderr: rich (colors, tables) on a terminal, plain writes when piped.

    rich is imported only when a terminal needs it, which keeps `snap diff | ...` and other
    scripted uses quick to start (rich costs ~30 ms to import).
    """

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console = None

    @property
    def stream(self):
        return sys.stderr if self._stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def rich(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True, markup=False)
        return self._console

    def print(self, *objects: Any, style: str | None = None) -> None:
        if self.is_terminal or not all(isinstance(o, str) for o in objects):
            self.rich().print(*objects, style=style)
        else:
            self.stream.write(" ".join(objects) + "\n")

    def table(self, headers: list[str], rows: list[list[str]], right: set[str] = frozenset(), title: str | None = None) -> None:
        """A table: rich on a terminal, plain aligned columns otherwise."""
        if self.is_terminal:
            from rich.table import Table

            grid = Table(title=title, title_justify="left", show_edge=False, box=None, pad_edge=False)
            for h in headers:
                grid.add_column(h, justify="right" if h in right else "left")
            for r in rows:
                grid.add_row(*r)
            self.rich().print(grid)
            return
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        lines = [title] if title else []
        for r in [headers, *rows]:
            cells = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, headers)]
            lines.append("  ".join(cells).rstrip())
        self.stream.write("\n".join(lines) + "\n")


out = _Stream(stderr=False)
err = _Stream(stderr=True)


class State:
    directory: Path = Path(".")
    debug: bool = False
    repo: Any = None


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"snap {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    directory: Annotated[
        Optional[Path], typer.Option("-C", help="Run as if snap was started in DIR.", metavar="DIR")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    if directory is not None:
        if not directory.is_dir():
            raise SnapError(f"cannot change to {directory}: no such directory")
        state.directory = directory
    state.debug = debug


def _repo():
    from snapgit.repo import Repo

    state.repo = Repo.open(state.directory)
    return state.repo


def _json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _when(micros: int, tz_minutes: int) -> str:
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    t = dt.datetime.fromtimestamp(micros / 1_000_000, tz)
    return t.strftime("%Y-%m-%d %H:%M:%S %z")


def _iso(micros: int, tz_minutes: int) -> str:
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    return dt.datetime.fromtimestamp(micros / 1_000_000, tz).isoformat()


def _split_tables(tables: Optional[str]) -> list[str] | None:
    if not tables:
        return None
    names = [t.strip() for t in tables.split(",") if t.strip()]
    return names or None


# --- init -----------------------------------------------------------------------------------


@app.command()
def init(
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL or SQLite file path.", metavar="URL")] = None,
) -> None:
    """Create a .snapstore in the current directory."""
    from snapgit.repo import Repo

    repo = Repo.init(state.directory, db)
    out.print(f"Initialized empty snapgit store in {repo.store.root}")
    if repo.config.url:
        out.print(f"database: {repo.config.url}")
    else:
        out.print("no database yet: pass --db URL to commands, or set SNAP_DATABASE_URL")
    for note in repo.notes:
        err.print(f"note: {note}")


# --- commit ---------------------------------------------------------------------------------


def _progressing(wanted: bool, call: Callable[[Any], Any]) -> Any:
    """``call(progress)``: a progress bar on a terminal (when ``wanted``), else ``call(None)``."""
    if wanted and err.is_terminal:
        with _RichProgress() as progress:
            return call(progress)
    return call(None)


class _RichProgress:
    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err.rich(),
            transient=True,
        )
        self._task = None

    def __enter__(self) -> "_RichProgress":
        self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.stop()

    def table(self, name: str, total: int | None) -> None:
        if self._task is not None:
            self._p.update(self._task, visible=False)
        self._task = self._p.add_task(name, total=total)

    def advance(self, rows: int) -> None:
        if self._task is not None:
            self._p.advance(self._task, rows)


@app.command()
def commit(
    message: Annotated[str, typer.Option("-m", "--message", help="The commit message.")],
    tables: Annotated[
        Optional[str], typer.Option("--tables", help="Only these tables (comma-separated); others stay as they were.")
    ] = None,
    author: Annotated[Optional[str], typer.Option("--author", help="Who commits (default: config or user@host).")] = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Commit even when nothing changed.")] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Read only rows whose incremental_column (config.toml) changed since the last commit, plus all keys.",
        ),
    ] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL (overrides config and environment).", metavar="URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Snapshot the live database as a new commit."""
    repo = _repo()
    show_progress = not as_json and err.is_terminal
    kw = dict(tables=_split_tables(tables), author=author, allow_empty=allow_empty, db_url=db, incremental=incremental)
    if show_progress:
        with _RichProgress() as progress:
            result = repo.commit(message, progress=progress, **kw)
    else:
        result = repo.commit(message, **kw)
    if incremental and not as_json:
        if result.incremental_note:
            err.print(f"warning: read every table in full: {result.incremental_note}")
        for t in result.tables:
            if t.note:
                err.print(f"warning: table {t.name} read in full: {t.note}")
    if as_json:
        _json(
            {
                "commit": result.commit_id.hex() if result.commit_id else None,
                "parent": result.parent_id.hex() if result.parent_id else None,
                "branch": result.branch,
                "nothing_to_commit": result.commit_id is None,
                "seconds": round(result.seconds, 3),
                "tables": {
                    t.name: {"rows": t.rows, "changed": t.changed, "records_written": t.records_written, "processes": t.processes, "cached_rows": t.cached_rows}
                    | ({"incremental": t.incremental, "note": t.note} if incremental else {})
                    for t in result.tables
                },
            }
            | ({"incremental_note": result.incremental_note} if incremental else {})
        )
        return
    if result.commit_id is None:
        since = result.parent_id.hex()[:12] if result.parent_id else "?"
        out.print(f"nothing to commit: the database is unchanged since {since}")
        return
    where = result.branch or "detached HEAD"
    first = message.splitlines()[0] if message else ""
    out.print(f"[{where} {result.commit_id.hex()[:12]}] {first}")
    width = max((len(t.name) for t in result.tables), default=0)
    for t in result.tables:
        mark = ("" if t.changed else "  (unchanged)") + ("  (incremental)" if t.incremental else "")
        out.print(f"  {t.name:<{width}}  {t.rows:>12,} rows{mark}")
    out.print(f"{result.rows:,} rows in {len(result.tables)} tables, {result.seconds:.2f} s")


# --- log / show -----------------------------------------------------------------------------


def _decorations(repo) -> dict[bytes, list[str]]:
    deco: dict[bytes, list[str]] = {}
    head_ref = repo.head_ref()
    for name, oid, current in repo.branches():
        label = f"HEAD -> {name}" if current else name
        deco.setdefault(oid, []).insert(0 if current else len(deco.get(oid, [])), label)
    if head_ref is None and repo.head() is not None:
        deco.setdefault(repo.head(), []).insert(0, "HEAD")
    for name, oid in repo.tags():
        try:
            target = repo.resolve(f"refs/tags/{name}")
        except SnapError:
            target = oid
        deco.setdefault(target, []).append(f"tag: {name}")
    return deco


def _commit_json(oid: bytes, c) -> dict[str, Any]:
    return {
        "id": oid.hex(),
        "parents": [p.hex() for p in c.parents],
        "tree": c.tree.hex(),
        "author": c.author,
        "time": _iso(c.time, c.tz),
        "message": c.message,
        "meta": c.meta,
    }


@app.command()
def log(
    rev: Annotated[str, typer.Argument(help="Where to start.")] = "HEAD",
    n: Annotated[Optional[int], typer.Option("-n", "--max-count", help="Show at most N commits.")] = None,
    oneline: Annotated[bool, typer.Option("--oneline", help="One line per commit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show the commit history."""
    repo = _repo()
    commits = repo.log(rev, n)
    if as_json:
        _json([_commit_json(oid, c) for oid, c in commits])
        return
    deco = _decorations(repo)
    for oid, c in commits:
        names = deco.get(oid)
        d = f" ({', '.join(names)})" if names else ""
        first = c.message.splitlines()[0] if c.message else ""
        if oneline:
            out.print(f"{oid.hex()[:12]}{d} {first}")
            continue
        out.print(f"commit {oid.hex()}{d}", style="yellow" if out.is_terminal else None)
        if len(c.parents) > 1:
            out.print("Merge:  " + " ".join(p.hex()[:12] for p in c.parents))
        out.print(f"Author: {c.author}")
        out.print(f"Date:   {_when(c.time, c.tz)}")
        out.print()
        for line in (c.message or "").splitlines() or [""]:
            out.print(f"    {line}")
        rows = c.meta.get("rows") if isinstance(c.meta, dict) else None
        if rows:
            out.print()
            out.print("    " + ", ".join(f"{t} {r:,}" for t, r in rows.items()))
        out.print()


@app.command()
def show(
    rev: Annotated[str, typer.Argument(help="The commit to show.")] = "HEAD",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a commit: its metadata, tables, row counts and schema."""
    repo = _repo()
    oid = repo.resolve(rev)
    c = repo.read_commit(oid)
    tables = repo.tables(oid.hex())
    if as_json:
        doc = _commit_json(oid, c)
        doc["tables"] = {t.name: {"rows": t.rows, "key": t.key, "schema": t.schema.to_obj()} for t in tables}
        _json(doc)
        return
    out.print(f"commit {oid.hex()}")
    for p in c.parents:
        out.print(f"parent {p.hex()}")
    out.print(f"Author: {c.author}")
    out.print(f"Date:   {_when(c.time, c.tz)}")
    if isinstance(c.meta, dict):
        out.print(f"Source: {c.meta.get('source', '?')} ({c.meta.get('kind', '?')})")
    out.print()
    for line in (c.message or "").splitlines():
        out.print(f"    {line}")
    out.print()
    for t in tables:
        key = ", ".join(t.key) if t.key else "none (keyless: rows are a multiset)"
        out.table(
            ["column", "type", "null", "default"],
            [[c.name, c.type, "yes" if c.nullable else "no", c.default or ""] for c in t.schema.columns],
            title=f"{t.name}: {t.rows:,} rows, key {key}",
        )
        for fk in t.schema.foreign_keys:
            out.print(f"  foreign key ({', '.join(fk.columns)}) -> {fk.ref_table} ({', '.join(fk.ref_columns)})")
        out.print()


# --- diff / status --------------------------------------------------------------------------

_OP_MARK = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


def _fmt_key(key: dict[str, Any]) -> str:
    from snapgit.jsonvalue import to_text

    return ", ".join(f"{k}={to_text(v, 40)}" for k, v in key.items())


def _fmt_row(row: dict[str, Any]) -> str:
    from snapgit.jsonvalue import to_text

    return ", ".join(f"{k}={to_text(v, 40)}" for k, v in row.items())


def _render_diff(diffs, *, stat: bool, as_json: bool, sql: bool, dialect: str | None, limit: int | None) -> bool:
    """Print diffs in the asked form; returns whether there was any difference."""
    from snapgit.jsonvalue import to_json, to_text

    any_diff = False
    if sql:
        from snapgit.exchange.sqlgen import diff_to_sql

        for statement in diff_to_sql(diffs, dialect or "sqlite", limit=limit):
            any_diff = True
            sys.stdout.write(statement + "\n")
        return any_diff or any(d.schema for d in diffs)
    if stat:
        stats = [d.stat() for d in diffs]
        changed = [s for s in stats if s.total or s.schema]
        if as_json:
            _json({s.table: {"added": s.added, "removed": s.removed, "changed": s.changed,
                             "schema": [c.describe() for c in s.schema]} for s in changed})
            return bool(changed)
        if not changed:
            return False
        out.table(
            ["table", "added", "removed", "changed", "schema"],
            [[s.table, f"{s.added:,}", f"{s.removed:,}", f"{s.changed:,}", "; ".join(c.describe() for c in s.schema)]
             for s in changed],
            right={"added", "removed", "changed"},
        )
        out.print(f"{len(changed)} tables changed: {sum(s.added for s in changed):,} rows added, "
                  f"{sum(s.removed for s in changed):,} removed, {sum(s.changed for s in changed):,} changed")
        return True
    shown = 0
    color = out.is_terminal
    for d in diffs:
        if d.unchanged:
            continue
        header_done = False
        for sc in d.schema:
            any_diff = True
            if as_json:
                sys.stdout.write(json.dumps(sc.to_json(), default=str) + "\n")
            else:
                if not header_done:
                    out.print(f"table {d.name}", style="bold" if color else None)
                    header_done = True
                out.print(f"  schema: {sc.describe()}", style="cyan" if color else None)
        for row in d.rows():
            if limit is not None and shown >= limit:
                return True
            shown += 1
            any_diff = True
            if as_json:
                if row.op == "changed":
                    cols = row.changed_columns
                    old = {c: to_json(row.old.get(c)) for c in cols}
                    new = {c: to_json(row.new.get(c)) for c in cols}
                else:
                    old = {c: to_json(v) for c, v in row.old.items()} if row.old is not None else None
                    new = {c: to_json(v) for c, v in row.new.items()} if row.new is not None else None
                doc = {"table": row.table, "op": row.op, "key": {k: to_json(v) for k, v in row.key.items()},
                       "old": old, "new": new}
                sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
                continue
            if not header_done:
                out.print(f"table {d.name}", style="bold" if color else None)
                header_done = True
            mark, style = _OP_MARK[row.op]
            style = style if color else None
            if row.op == "added":
                out.print(f"{mark} {_fmt_key(row.key)}: {_fmt_row(row.new)}", style=style)
            elif row.op == "removed":
                out.print(f"{mark} {_fmt_key(row.key)}: {_fmt_row(row.old)}", style=style)
            else:
                out.print(f"{mark} {_fmt_key(row.key)}", style=style)
                for c in row.changed_columns:
                    out.print(f"    {c}: {to_text(row.old.get(c))} -> {to_text(row.new.get(c))}", style=style)
    return any_diff


@app.command()
def diff(
    a: Annotated[Optional[str], typer.Argument(help="Old side (default HEAD).", metavar="A")] = None,
    b: Annotated[Optional[str], typer.Argument(help="New side (default: the live database).", metavar="B")] = None,
    stat: Annotated[bool, typer.Option("--stat", help="Per table: rows added, removed, changed; schema changes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per change and line.")] = False,
    sql: Annotated[bool, typer.Option("--sql", help="SQL statements that turn A into B.")] = False,
    dialect: Annotated[Optional[str], typer.Option("--dialect", help="sqlite, postgresql or mysql (for --sql).")] = None,
    table: Annotated[Optional[list[str]], typer.Option("--table", help="Only this table (repeatable).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Show at most N row changes.")] = None,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when there are differences.")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL for the live side.", metavar="URL")] = None,
) -> None:
    """Show row- and cell-level differences between two commits, or a commit and the live database."""
    if dialect is not None and dialect not in ("sqlite", "postgresql", "mysql"):
        raise SnapError(f"unknown dialect {dialect!r}", hint="use sqlite, postgresql or mysql")
    repo = _repo()
    progress = None
    if b is None and err.is_terminal and not as_json:
        with _RichProgress() as progress:
            diffs = repo.diff(a, b, tables=table, db_url=db, progress=progress)
    else:
        diffs = repo.diff(a, b, tables=table, db_url=db)
    if sql and dialect is None:
        dialect = _live_dialect(repo, db) if b is None else "sqlite"
    different = _render_diff(diffs, stat=stat, as_json=as_json, sql=sql, dialect=dialect, limit=limit)
    if exit_code and different:
        raise typer.Exit(1)


def _live_dialect(repo, db: str | None) -> str:
    url = repo.database_url(db)
    for name in ("postgresql", "mysql", "mariadb", "sqlite"):
        if url.startswith(name):
            return "mysql" if name == "mariadb" else name
    return "sqlite"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Compare the live database with HEAD: rows added, removed, changed per table, schema drift."""
    repo = _repo()
    if err.is_terminal and not as_json:
        with _RichProgress() as progress:
            diffs = repo.status(db_url=db, progress=progress)
    else:
        diffs = repo.status(db_url=db)
    stats = [d.stat() for d in diffs]
    changed = [s for s in stats if s.total or s.schema]
    head = repo.head()
    where = repo.head_ref() or "detached HEAD"
    if as_json:
        _json({
            "branch": where.removeprefix("refs/heads/"),
            "head": head.hex() if head else None,
            "clean": not changed,
            "tables": {s.table: {"added": s.added, "removed": s.removed, "changed": s.changed,
                                 "schema": [c.to_json() for c in s.schema]} for s in changed},
        })
        return
    out.print(f"On branch {where.removeprefix('refs/heads/')}" + (f" at {head.hex()[:12]}" if head else " (no commits yet)"))
    if not changed:
        out.print("clean: the live database matches HEAD")
        return
    for s in changed:
        parts = []
        for c in s.schema:
            if c.kind in ("table_added", "table_removed"):
                parts.append("new table" if c.kind == "table_added" else "dropped")
            else:
                parts.append(c.describe())
        counts = [f"{n:,} {w}" for n, w in ((s.added, "added"), (s.removed, "removed"), (s.changed, "changed")) if n]
        out.print(f"  {s.table:<24} {', '.join(counts + parts)}")
    out.print("use `snap diff` to see the rows, `snap commit -m MSG` to record them")


# --- merge / restore / checkout -------------------------------------------------------------


def _print_merge(result, as_json: bool, verb: str) -> None:
    from snapgit.jsonvalue import to_json

    totals = result.totals()
    if as_json:
        doc = result.summary()
        doc["tables"] = {}
        for p in result.plans:
            names = p.schema.sorted_names
            doc["tables"][p.name] = {
                "to_add": p.added, "to_update": p.updated, "to_delete": p.deleted, "to_skip": p.skipped,
                "conflicts": [
                    {"key": _conflict_key(p, c), "kind": c.kind, "columns": c.columns, "resolution": c.resolution,
                     "base": _cells(names, c.base, c.columns), "ours": _cells(names, c.ours, c.columns),
                     "theirs": _cells(names, c.theirs, c.columns)}
                    for c in p.conflicts
                ],
            }
        _json(doc)
        return
    _ = to_json
    if result.plans:
        out.table(
            ["table", "add", "update", "delete", "skip", "conflicts"],
            [[p.name, f"{p.added:,}", f"{p.updated:,}", f"{p.deleted:,}", f"{p.skipped:,}", f"{len(p.conflicts):,}"]
             for p in result.plans],
            right={"add", "update", "delete", "skip", "conflicts"},
        )
    for p in result.plans:
        for c in p.conflicts[:20]:
            how = {"theirs": "backup wins", "ours": "database wins", None: "unresolved"}[c.resolution]
            out.print(f"  conflict {p.name} {_conflict_key_text(p, c)} ({c.kind}: {', '.join(c.columns[:6])}) -> {how}")
        if len(p.conflicts) > 20:
            out.print(f"  ... and {len(p.conflicts) - 20} more conflicts in {p.name}")
    out.print(
        f"{verb}: {totals['added']:,} added, {totals['updated']:,} updated, {totals['deleted']:,} deleted, "
        f"{totals['skipped']:,} skipped, {totals['conflicts']:,} conflicts"
    )


def _cells(names, row, columns):
    from snapgit.jsonvalue import to_json

    if row is None:
        return None
    values = dict(zip(names, row))
    return {c: to_json(values.get(c)) for c in columns}


def _conflict_key(plan, c) -> dict[str, Any]:
    from snapgit.jsonvalue import to_json

    row = c.theirs or c.ours or c.base or []
    values = dict(zip(plan.schema.sorted_names, row))
    return {k: to_json(values.get(k)) for k in (plan.key or plan.schema.sorted_names)}


def _conflict_key_text(plan, c) -> str:
    return ", ".join(f"{k}={v}" for k, v in _conflict_key(plan, c).items())


@app.command()
def merge(
    rev: Annotated[Optional[str], typer.Argument(help="The commit to merge into the live database.")] = None,
    strategy: Annotated[
        Optional[str], typer.Option("--strategy", help="How conflicts are resolved: backup_wins, database_wins or manual.")
    ] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Report what would happen; write nothing.")] = False,
    tables: Annotated[Optional[str], typer.Option("--tables", help="Only these tables (comma-separated).")] = None,
    message: Annotated[Optional[str], typer.Option("-m", "--message", help="Message of the merge commit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cont: Annotated[bool, typer.Option("--continue", help="Apply a manual merge once its conflicts are resolved.")] = False,
    abort: Annotated[bool, typer.Option("--abort", help="Drop a manual merge in progress; the database is untouched.")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Three-way merge a snapshot into the live database (non-conflicting changes of both sides survive)."""
    repo = _repo()
    if abort:
        repo.merge_abort()
        out.print("merge aborted; the database was not changed by it")
        return
    if cont:
        result = repo.merge_continue(db_url=db)
        _print_merge(result, as_json, "merged")
        return
    if rev is None or strategy is None:
        raise SnapError("snap merge needs REV and --strategy", hint="snap merge REV --strategy backup_wins|database_wins|manual")
    result = repo.merge(rev, strategy=strategy, preview=preview, tables=_split_tables(tables), message=message, db_url=db)
    if preview:
        _print_merge(result, as_json, "preview (nothing written)")
        return
    if result.in_progress:
        _print_merge(result, as_json, "merge stopped on conflicts")
        if not as_json:
            out.print("resolve them with `snap conflicts resolve --ours|--theirs [--table T] [KEY...]`, then `snap merge --continue`")
        raise typer.Exit(1)
    _print_merge(result, as_json, "merged")
    if not as_json and result.pre is not None:
        out.print(f"the database before the merge is commit {result.pre.hex()[:12]}; to undo: snap restore {result.pre.hex()[:12]}")


conflicts_app = typer.Typer(help="List and resolve the conflicts of a manual merge.", invoke_without_command=True)
app.add_typer(conflicts_app, name="conflicts")


@conflicts_app.callback()
def conflicts_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per conflict and line.")] = False,
) -> None:
    """List the conflicts of the merge in progress."""
    if ctx.invoked_subcommand is not None:
        return
    repo = _repo()
    items = repo.conflicts()
    for plan, c in items:
        names = plan.schema.sorted_names
        if as_json:
            sys.stdout.write(json.dumps({
                "table": c.table, "key": _conflict_key(plan, c), "kind": c.kind, "columns": c.columns,
                "resolution": c.resolution, "base": _cells(names, c.base, c.columns),
                "ours": _cells(names, c.ours, c.columns), "theirs": _cells(names, c.theirs, c.columns),
            }, ensure_ascii=False) + "\n")
            continue
        how = c.resolution or "unresolved"
        out.print(f"{c.table} {_conflict_key_text(plan, c)}: {c.kind} [{how}]")
        for col in c.columns:
            vals = [_cells(names, r, [col]) for r in (c.base, c.ours, c.theirs)]
            shown = [("-" if v is None else json.dumps(v[col], ensure_ascii=False)) for v in vals]
            out.print(f"    {col}: base {shown[0]}  ours {shown[1]}  theirs {shown[2]}")
    if not as_json:
        left = sum(1 for _p, c in items if c.resolution is None)
        out.print(f"{len(items)} conflicts, {left} unresolved")


@conflicts_app.command("resolve")
def conflicts_resolve(
    keys: Annotated[Optional[list[str]], typer.Argument(help="Keys to resolve (e.g. 5 or id=5); default all.")] = None,
    ours: Annotated[bool, typer.Option("--ours", help="Keep the live database's version.")] = False,
    theirs: Annotated[bool, typer.Option("--theirs", help="Take the snapshot's version.")] = False,
    table: Annotated[Optional[str], typer.Option("--table", help="Only this table.")] = None,
) -> None:
    """Resolve some or all conflicts of the merge in progress."""
    if ours == theirs:
        raise SnapError("give exactly one of --ours and --theirs")
    n = _repo().resolve_conflicts("ours" if ours else "theirs", table=table, keys=keys)
    out.print(f"resolved {n} conflicts as {'ours' if ours else 'theirs'}")


@app.command()
def restore(
    rev: Annotated[str, typer.Argument(help="The commit to restore.")],
    into: Annotated[Optional[str], typer.Option("--into", help="Restore into a new database at URL instead.", metavar="URL")] = None,
    tables: Annotated[Optional[str], typer.Option("--tables", help="Only these tables (comma-separated).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Report what would change; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Make the live database (or a new one) exactly equal to a commit. HEAD does not move."""
    repo = _repo()
    result = repo.restore(rev, into=into, tables=_split_tables(tables), preview=preview, db_url=db)
    _print_merge(result, as_json, "preview (nothing written)" if preview else "restored")
    if not as_json and not preview and result.pre is not None:
        out.print(f"the database before the restore is commit {result.pre.hex()[:12]}")


@app.command()
def checkout(
    target: Annotated[Optional[str], typer.Argument(help="Branch or commit (with -b: where the branch starts, default HEAD).")] = None,
    new_branch: Annotated[Optional[str], typer.Option("-b", help="Create this branch at TARGET and switch to it.", metavar="NEW")] = None,
    force: Annotated[bool, typer.Option("--force", help="Save uncommitted database changes to a ref first.")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Switch branches: move HEAD and make the live database match it."""
    repo = _repo()
    if new_branch:
        done = repo.checkout(target or "HEAD", new_branch=new_branch, db_url=db)
        out.print(f"Switched to a new branch {new_branch} at {done['commit'].hex()[:12]}")
        return
    if target is None:
        raise SnapError("snap checkout needs a branch or commit", hint="snap checkout BRANCH, or snap checkout -b NEW")
    done = repo.checkout(target, force=force, db_url=db)
    if done["saved"]:
        out.print(f"uncommitted changes saved as {done['saved']}")
    out.print(f"Switched to {target} ({done['commit'].hex()[:12]})")


@app.command()
def unlock() -> None:
    """Remove lock files left by killed snap processes (only when no other snap command runs)."""
    removed = _repo().unlock()
    if not removed:
        out.print("no locks to remove")
        return
    err.print("warning: removed lock files; if another snap command was still running, run `snap verify`")
    for name in removed:
        out.print(f"removed {name}")


@app.command()
def verify(
    read_data: Annotated[bool, typer.Option("--read-data", help="Also read every pack: checksums, decompression, re-hash.")] = False,
    repair: Annotated[bool, typer.Option("--repair", help="First rebuild broken or missing indexes and move damaged packs to objects/damaged/ (keeping what reads).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the store: indexes, packs, refs, and that everything reachable exists.

    Exit status 0 when clean, 3 when a problem was found (each is listed), 4 when --repair
    finds another snap command running.
    """
    import time

    started = time.monotonic()
    report = _repo().verify(read_data=read_data, repair=repair)
    seconds = time.monotonic() - started
    if not as_json:
        for line in report.repairs:
            out.print(f"repaired: {line}")
    if as_json:
        _json({"ok": report.ok, "repairs": report.repairs, "packs": report.packs, "objects_indexed": report.objects_indexed,
               "commits": report.commits, "nodes": report.nodes, "records_checked": report.records_checked,
               "objects_read": report.objects_read, "bytes_read": report.bytes_read, "seconds": round(seconds, 3),
               "problems": [p.to_json() for p in report.problems], "garbage": report.garbage})
    else:
        for p in report.problems:
            out.print(p.describe())
        if report.garbage:
            out.print(f"{len(report.garbage)} leftover files of interrupted writes (harmless; not referenced)")
        extra = f", {report.objects_read:,} objects re-read ({report.bytes_read / 1e6:,.1f} MB)" if read_data else ""
        out.print(f"{report.packs} packs, {report.objects_indexed:,} objects indexed, {report.commits} commits, "
                  f"{report.nodes:,} tree nodes, {report.records_checked:,} record references{extra}: "
                  + ("ok" if report.ok else f"{len(report.problems)} problems") + f" ({seconds:.2f} s)")
    if not report.ok:
        raise typer.Exit(3)


@app.command()
def gc(
    prune: Annotated[str, typer.Option("--prune", help="Grace period: keep packs younger than this (now, 30m, 1h, 2d).", metavar="GRACE")] = "1h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be removed; write nothing.")] = False,
    expire: Annotated[str, typer.Option("--expire", help="Reflog entries older than this stop keeping commits and are removed (90d, 2w, never).", metavar="AGE")] = "90d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove objects no ref, reflog entry or unfinished merge reaches; merge small packs.

    Exit status 0 when done, 3 when a reachable object cannot be read (nothing is changed),
    4 when other snap commands keep writing.
    """
    report = _repo().gc(prune=prune, dry_run=dry_run, expire=expire)
    if as_json:
        _json(report.to_json())
        return
    doc = report.to_json()
    verb = "would drop" if dry_run else "dropped"
    out.print(f"{doc['packs_before']} packs -> {doc['packs_after'] if not dry_run else '?'} packs; "
              f"{verb} {doc['objects_dropped']:,} of {doc['objects_before']:,} objects "
              f"({doc['reachable']:,} reachable; {doc['packs_dropped']} packs dead, {doc['packs_repacked']} repacked, "
              f"{doc['packs_young']} younger than the grace period)")
    if report.reflog_expired:
        out.print(f"{report.reflog_expired:,} reflog entries older than --expire removed")
    if not dry_run:
        out.print(f"{report.bytes_reclaimed / 1e6:,.1f} MB reclaimed from objects/pack, "
                  f"{report.bytes_deleted / 1e6:,.1f} MB deleted for good, {report.seconds:.2f} s")


# --- branches and tags ----------------------------------------------------------------------


@app.command()
def branch(
    name: Annotated[Optional[str], typer.Argument(help="Create a branch with this name.")] = None,
    rev: Annotated[str, typer.Argument(help="Where the new branch starts.")] = "HEAD",
    delete: Annotated[Optional[str], typer.Option("-d", "--delete", help="Delete this branch.", metavar="NAME")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List, create or delete branches."""
    repo = _repo()
    if delete:
        oid = repo.delete_branch(delete)
        out.print(f"Deleted branch {delete} (was {oid.hex()[:12]})")
        return
    if name:
        oid = repo.create_branch(name, rev)
        out.print(f"Created branch {name} at {oid.hex()[:12]}")
        return
    branches = repo.branches()
    if as_json:
        _json([{"name": n, "commit": o.hex(), "current": cur} for n, o, cur in branches])
        return
    head_ref = repo.head_ref()
    if not branches and head_ref:
        out.print(f"* {head_ref.removeprefix('refs/heads/')} (no commits yet)")
    for n, o, cur in branches:
        out.print(f"{'*' if cur else ' '} {n:<20} {o.hex()[:12]}")


@app.command()
def tag(
    name: Annotated[Optional[str], typer.Argument(help="The tag to create.")] = None,
    rev: Annotated[str, typer.Argument(help="What it names.")] = "HEAD",
    message: Annotated[Optional[str], typer.Option("-m", "--message", help="Make an annotated tag with this message.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tags, or create one."""
    repo = _repo()
    if name:
        oid = repo.create_tag(name, rev, message)
        out.print(f"Tagged {repo.resolve(oid.hex()).hex()[:12]} as {name}")
        return
    tags = repo.tags()
    if as_json:
        _json([{"name": n, "id": o.hex()} for n, o in tags])
        return
    for n, _o in tags:
        out.print(n)


@app.command("cat-object")
def cat_object(
    oid: Annotated[str, typer.Argument(help="Object id, unique prefix, or revision.", metavar="ID")],
) -> None:
    """Print any stored object, decoded (plumbing, for debugging)."""
    repo = _repo()
    full, kind, decoded = repo.cat_object(oid)
    _json({"id": full.hex(), "kind": kind, "content": decoded})


@app.command("oplog")
def oplog_cmd(
    n: Annotated[Optional[int], typer.Option("-n", help="Show the last N entries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show the audit log of operations on this store."""
    repo = _repo()
    entries = list(repo.oplog())
    if n is not None:
        entries = entries[-n:]
    if as_json:
        for e in entries:
            sys.stdout.write(json.dumps(e, sort_keys=True) + "\n")
        return
    for e in entries:
        status = "ok" if e.get("ok") else f"FAILED: {e.get('error', '')}"
        result = e.get("result") or {}
        commit_id = (result.get("commit") or "")[:12]
        out.print(f"{e.get('time', '?')}  {e.get('who', '?')}  {e.get('op', '?'):<8} {commit_id:<12} {status}")


# --- export / import -----------------------------------------------------------------------


@app.command("export")
def export_cmd(
    rev: Annotated[str, typer.Argument(help="The commit to export.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File (json, .json.zst, sql) or directory (csv) to create.", metavar="PATH")],
    fmt: Annotated[str, typer.Option("--format", help="json, csv or sql.")] = "json",
    tables: Annotated[Optional[str], typer.Option("--tables", help="Only these tables (comma-separated).")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Incremental: only what changed since this commit (json, csv: rows and removed keys; sql: the statements that turn it into REV).", metavar="REV")] = None,
    dialect: Annotated[Optional[str], typer.Option("--dialect", help="SQL dialect: sqlite, postgresql or mysql (default: the source's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a commit to a portable file: JSON, a directory of CSV files, or SQL."""
    repo = _repo()
    result = _progressing(not as_json, lambda p: repo.export(
        rev, output, fmt=fmt, tables=_split_tables(tables), since=since, dialect=dialect, progress=p))
    if as_json:
        _json({"path": str(result.path), "format": result.format, "kind": result.kind, "commit": result.commit.hex(),
               "base": result.base.hex() if result.base else None, "rows": result.rows, "removed": result.removed,
               "bytes": result.bytes, "seconds": round(result.seconds, 3)})
        return
    what = f"changes since {result.base.hex()[:12]}" if result.base else "commit"
    out.print(f"exported {what} {result.commit.hex()[:12]} to {result.path} ({result.format}): "
              f"{result.total_rows:,} rows in {len(result.rows)} tables, {result.bytes:,} bytes, {result.seconds:.2f} s")


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="An export file (json, .json.zst) or CSV export directory.")],
    branch: Annotated[Optional[str], typer.Option("--branch", help="Commit on this branch (created or advanced).", metavar="NAME")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Then merge the imported commit into the live database.")] = False,
    strategy: Annotated[str, typer.Option("--strategy", help="With --merge: backup_wins, database_wins or manual.")] = "backup_wins",
    max_size: Annotated[Optional[int], typer.Option("--max-size", help="Refuse inputs larger than this many bytes (default 10 GiB).", metavar="BYTES")] = None,
    message: Annotated[Optional[str], typer.Option("-m", "--message", help="The commit message.")] = None,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL (for --merge).", metavar="URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Validate an export file completely and make it a commit; nothing is written if it has problems."""
    repo = _repo()
    result = _progressing(not as_json, lambda p: repo.import_file(
        path, branch=branch, merge_strategy=strategy if merge else None, max_size=max_size, message=message,
        db_url=db, progress=p))
    merged = result["merge"]
    if as_json:
        _json({"commit": result["commit"].hex(), "ref": result["ref"], "kind": result["kind"],
               "source_commit": result["source_commit"], "base": result["base"].hex() if result["base"] else None,
               "rows": result["rows"], "seconds": round(result["seconds"], 3),
               "merge": merged.summary() if merged is not None else None})
        return
    out.print(f"imported {path} as commit {result['commit'].hex()[:12]} on {result['ref']} "
              f"({sum(result['rows'].values()):,} rows in {len(result['rows'])} tables)")
    if merged is not None:
        _print_merge(merged, False, "merged")
        if merged.in_progress:
            raise typer.Exit(1)


# --- entry point ----------------------------------------------------------------------------


def main() -> None:
    # At exit the interpreter collects cycles again and again while it tears its modules down:
    # 90-130 ms after a commit, with SQLAlchemy loaded. Nothing of snap's waits on those
    # collections (a command has closed its files and released its locks before it returns),
    # so, last of the exit handlers, the objects left are frozen out of them.
    atexit.register(freeze_gc)
    debug = "--debug" in sys.argv[1:]
    try:
        try:
            app(prog_name="snap")
        finally:
            for note in state.repo.store.locks.notes if state.repo is not None else []:
                err.print(f"note: {note}")
    except SnapError as exc:
        if debug:
            raise
        err.print(f"error: {exc.message}")
        if exc.hint:
            err.print(f"hint: {exc.hint}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        if debug:
            raise
        err.print(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        sys.exit(1)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            raise
        err.print(f"error: internal error: {type(exc).__name__}: {exc}")
        err.print("hint: run again with --debug for the traceback, and report it")
        sys.exit(1)


if __name__ == "__main__":
    main()

