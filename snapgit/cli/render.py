"""How the ``snap`` commands show their results: text for people, JSON for programs.

:data:`out` and :data:`err` write to stdout and stderr: through rich (colours, tables) on a
terminal, as plain lines when piped, so scripts read stable text. rich is imported only when a
terminal needs it (it costs ~30 ms), which keeps ``snap diff | ...`` and other scripted uses
quick to start; likewise the parts of snapgit a printer needs are imported by that printer, so
``snap --version`` and ``--help`` load none of them. :func:`progress_bar` draws a bar per table on stderr while a long operation
runs, on a terminal only.

The JSON shapes of results belong to the API (``MergeResult.to_json``,
:func:`snapgit.ops.commit.commit_result_json`, ...); this module prints them. What is shaped
here is presentation only: the text forms, and the JSON of log entries, diffs and status lines,
which are views of store objects the CLI chooses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from snapgit.errors import SnapError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

__all__ = [
    "Stream",
    "out",
    "err",
    "RichProgress",
    "progress_bar",
    "print_json",
    "pairs_text",
    "print_commit_result",
    "print_log",
    "print_show",
    "print_diff",
    "print_status",
    "safety_line",
    "print_merge",
    "print_conflicts",
    "print_verify",
    "print_gc",
    "print_branches",
    "print_oplog",
    "print_export",
    "print_import",
]


class Stream:
    """stdout or stderr: rich (colors, tables) on a terminal, plain writes when piped."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

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

    def table(
        self, headers: list[str], rows: list[list[str]], right: Collection[str] = frozenset(), title: str | None = None
    ) -> None:
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
            cells = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, headers, strict=True)]
            lines.append("  ".join(cells).rstrip())
        self.stream.write("\n".join(lines) + "\n")


out = Stream(stderr=False)
err = Stream(stderr=True)


class RichProgress:
    """A :class:`snapgit.progress.Progress` drawn by rich on stderr: one bar per table, the
    previous one hidden when the next starts; the bars vanish when it stops."""

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
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
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


@contextlib.contextmanager
def progress_bar(wanted: bool = True) -> Iterator[RichProgress | None]:
    """A progress bar while the block runs, when ``wanted`` and stderr is a terminal; else None
    (never with ``--json``: callers pass ``wanted=not as_json``)."""
    if wanted and err.is_terminal:
        with RichProgress() as progress:
            yield progress
    else:
        yield None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _json_line(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _when(micros: int, tz_minutes: int) -> str:
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    return dt.datetime.fromtimestamp(micros / 1_000_000, tz).strftime("%Y-%m-%d %H:%M:%S %z")


def _iso(micros: int, tz_minutes: int) -> str:
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    return dt.datetime.fromtimestamp(micros / 1_000_000, tz).isoformat()


def pairs_text(values: dict[str, Any]) -> str:
    """``col=value, ...``: a row's key or its cells in one line, each value cut at 40 characters."""
    from snapgit.jsonvalue import to_text

    return ", ".join(f"{k}={to_text(v, 40)}" for k, v in values.items())


# -- commit, log, show ---------------------------------------------------------------------------


def print_commit_result(result: Any, message: str, *, incremental: bool, as_json: bool) -> None:
    from snapgit.ops.commit import commit_result_json

    if incremental and not as_json:
        if result.incremental_note:
            err.print(f"warning: read every table in full: {result.incremental_note}")
        for t in result.tables:
            if t.note:
                err.print(f"warning: table {t.name} read in full: {t.note}")
    if not as_json:
        for t in result.tables:
            if t.capture_note and t.capture_note != "change capture is not on for it":
                err.print(f"note: table {t.name} read in full: {t.capture_note}")
    if as_json:
        print_json(commit_result_json(result, incremental=incremental))
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
        mark = (
            ("" if t.changed else "  (unchanged)")
            + ("  (incremental)" if t.incremental else "")
            + ("  (from the change log)" if t.captured else "")
        )
        out.print(f"  {t.name:<{width}}  {t.rows:>12,} rows{mark}")
    out.print(f"{result.rows:,} rows in {len(result.tables)} tables, {result.seconds:.2f} s")


def _decorations(repo: Any) -> dict[bytes, list[str]]:
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


def _commit_json(oid: bytes, c: Any) -> dict[str, Any]:
    return {
        "id": oid.hex(),
        "parents": [p.hex() for p in c.parents],
        "tree": c.tree.hex(),
        "author": c.author,
        "time": _iso(c.time, c.tz),
        "message": c.message,
        "meta": c.meta,
    }


def print_log(repo: Any, commits: list[tuple[bytes, Any]], *, oneline: bool, as_json: bool) -> None:
    if as_json:
        print_json([_commit_json(oid, c) for oid, c in commits])
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


def print_show(oid: bytes, c: Any, tables: list[Any], *, as_json: bool) -> None:
    if as_json:
        doc = _commit_json(oid, c)
        doc["tables"] = {t.name: {"rows": t.rows, "key": t.key, "schema": t.schema.to_obj()} for t in tables}
        print_json(doc)
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
            [[col.name, col.type, "yes" if col.nullable else "no", col.default or ""] for col in t.schema.columns],
            title=f"{t.name}: {t.rows:,} rows, key {key}",
        )
        for fk in t.schema.foreign_keys:
            out.print(f"  foreign key ({', '.join(fk.columns)}) -> {fk.ref_table} ({', '.join(fk.ref_columns)})")
        out.print()


# -- diff and status -----------------------------------------------------------------------------

_OP_MARK = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


def _row_change_json(row: Any) -> dict[str, Any]:
    from snapgit.jsonvalue import to_json

    old: dict[str, Any] | None
    new: dict[str, Any] | None
    if row.op == "changed":
        cols = row.changed_columns
        old = {c: to_json(row.old.get(c)) for c in cols}
        new = {c: to_json(row.new.get(c)) for c in cols}
    else:
        old = {c: to_json(v) for c, v in row.old.items()} if row.old is not None else None
        new = {c: to_json(v) for c, v in row.new.items()} if row.new is not None else None
    return {
        "table": row.table,
        "op": row.op,
        "key": {k: to_json(v) for k, v in row.key.items()},
        "old": old,
        "new": new,
    }


def _print_diff_stat(diffs: list[Any], *, as_json: bool) -> bool:
    stats = [d.stat() for d in diffs]
    changed = [s for s in stats if s.total or s.schema]
    if as_json:
        print_json(
            {
                s.table: {
                    "added": s.added,
                    "removed": s.removed,
                    "changed": s.changed,
                    "schema": [c.describe() for c in s.schema],
                }
                for s in changed
            }
        )
        return bool(changed)
    if not changed:
        return False
    out.table(
        ["table", "added", "removed", "changed", "schema"],
        [
            [s.table, f"{s.added:,}", f"{s.removed:,}", f"{s.changed:,}", "; ".join(c.describe() for c in s.schema)]
            for s in changed
        ],
        right={"added", "removed", "changed"},
    )
    out.print(
        f"{len(changed)} tables changed: {sum(s.added for s in changed):,} rows added, "
        f"{sum(s.removed for s in changed):,} removed, {sum(s.changed for s in changed):,} changed"
    )
    return True


def print_diff(
    diffs: list[Any], *, stat: bool, as_json: bool, sql: bool, dialect: str | None, limit: int | None
) -> bool:
    """Print diffs in the asked form; returns whether there was any difference."""

    any_diff = False
    if sql:
        from snapgit.exchange.sqlgen import diff_to_sql

        for statement in diff_to_sql(diffs, dialect or "sqlite", limit=limit):
            any_diff = True
            sys.stdout.write(statement + "\n")
        return any_diff or any(d.schema for d in diffs)
    if stat:
        return _print_diff_stat(diffs, as_json=as_json)
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
                _json_line(_row_change_json(row))
                continue
            if not header_done:
                out.print(f"table {d.name}", style="bold" if color else None)
                header_done = True
            mark, color_name = _OP_MARK[row.op]
            style = color_name if color else None
            if row.op == "added":
                out.print(f"{mark} {pairs_text(row.key)}: {pairs_text(row.new)}", style=style)
            elif row.op == "removed":
                out.print(f"{mark} {pairs_text(row.key)}: {pairs_text(row.old)}", style=style)
            else:
                out.print(f"{mark} {pairs_text(row.key)}", style=style)
                for c in row.changed_columns:
                    for line in _cell_change(c, row.old.get(c), row.new.get(c)):
                        out.print(line, style=style)
    return any_diff


# A changed cell prints as ``col: old -> new``, each side cut at to_text's width. Two long values
# usually share their beginning, and then that line shows two equal prefixes: so a long value is
# shown from where it first differs instead, with a window of context on both sides.
_TEXT_WIDTH = 60  # to_text's default
_WINDOW: dict[type, tuple[int, int]] = {
    str: (20, 40),
    bytes: (8, 16),
}  # (before, after) the first difference: characters, bytes


def _cell_change(column: str, old: Any, new: Any) -> list[str]:
    from snapgit.encoding import Json
    from snapgit.jsonvalue import to_text

    a, b = (old.text, new.text) if type(old) is Json and type(new) is Json else (old, new)
    kind = type(a)
    if kind not in _WINDOW or type(b) is not kind or not (_is_long(a) or _is_long(b)):
        return [f"    {column}: {to_text(old)} -> {to_text(new)}"]
    at = _first_difference(a, b)
    before, after = _WINDOW[kind]
    start = max(at - before, 0)
    unit = "bytes" if kind is bytes else "characters"
    return [
        f"    {column}: first difference at offset {at:,} (length {len(a):,} -> {len(b):,} {unit})",
        f"      old: {_window(a, start, at + after)}",
        f"      new: {_window(b, start, at + after)}",
    ]


def _is_long(v: str | bytes) -> bool:
    """Whether to_text would cut ``v``."""
    if type(v) is bytes:
        return 2 + 2 * len(v) > _TEXT_WIDTH
    return len(v) >= _TEXT_WIDTH or len(repr(v)) > _TEXT_WIDTH


def _window(v: str | bytes, start: int, end: int) -> str:
    part = v[start:end]
    text = "\\x" + part.hex() if isinstance(part, bytes) else repr(part)
    return ("…" if start > 0 else "") + text + ("…" if end < len(v) else "")


def _first_difference(a: str | bytes, b: str | bytes) -> int:
    """The offset of the first element where ``a`` and ``b`` differ (the shorter's length when it
    is a prefix of the other). Slices are compared, in C, a block at a time and then by halving
    the block that differs: a 5 MB value takes milliseconds, where a loop over it takes seconds."""
    n = min(len(a), len(b))
    lo = hi = 0
    while lo < n:
        hi = min(lo + 65536, n)
        if a[lo:hi] != b[lo:hi]:
            break
        lo = hi
    else:
        return n
    while hi - lo > 1:  # the first difference is in [lo, hi)
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def print_status(diffs: list[Any], head: bytes | None, head_ref: str | None, *, as_json: bool) -> None:
    stats = [d.stat() for d in diffs]
    changed = [s for s in stats if s.total or s.schema]
    where = head_ref or "detached HEAD"
    if as_json:
        print_json(
            {
                "branch": where.removeprefix("refs/heads/"),
                "head": head.hex() if head else None,
                "clean": not changed,
                "tables": {
                    s.table: {
                        "added": s.added,
                        "removed": s.removed,
                        "changed": s.changed,
                        "schema": [c.to_json() for c in s.schema],
                    }
                    for s in changed
                },
            }
        )
        return
    out.print(
        f"On branch {where.removeprefix('refs/heads/')}" + (f" at {head.hex()[:12]}" if head else " (no commits yet)")
    )
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


# -- merge, restore, conflicts -------------------------------------------------------------------


def _conflict_key_text(plan: Any, c: Any) -> str:
    from snapgit.ops.mergeflow import conflict_key

    return ", ".join(
        f"{k}={v}" for k, v in conflict_key(plan, c).items()
    )  # JSON values, as `conflicts resolve` takes them


def safety_line(result: Any, what: str) -> str | None:
    """One line: where the live database as a merge or restore found it is kept, and (when the
    operation wrote into it) how to undo; None when there is nothing to say."""
    if result.pre is None or result.preview or result.up_to_date:
        return None
    short = result.pre.hex()[:12]
    if result.safety is not None:
        where = f"the database before the {what} was saved as {short} in refs/snap/safety"
    elif result.in_progress:
        return None  # the database equals HEAD, and nothing was written
    else:
        where = f"the database before the {what} is commit {short}"
    return f"{where}; to undo: snap restore {short}" if result.undo() else where


def print_merge(result: Any, as_json: bool, verb: str) -> None:
    """A merge's or restore's plan per table, its conflicts (20 per table), and its totals."""
    if as_json:
        print_json(result.to_json())
        return
    if result.up_to_date:
        out.print(
            f"already up to date: {result.rev} ({result.theirs.hex()[:12]}) is in HEAD's history; nothing to merge"
        )
        out.print(f"hint: to make the database equal to it, run `snap restore {result.rev}`")
        return
    totals = result.totals()
    if result.plans:
        out.table(
            ["table", "add", "update", "delete", "skip", "conflicts"],
            [
                [p.name, f"{p.added:,}", f"{p.updated:,}", f"{p.deleted:,}", f"{p.skipped:,}", f"{len(p.conflicts):,}"]
                for p in result.plans
            ],
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


def print_conflicts(items: list[tuple[Any, Any]], *, as_json: bool) -> None:
    from snapgit.ops.mergeflow import conflict_json

    for plan, c in items:
        doc = conflict_json(plan, c)
        if as_json:
            _json_line({"table": c.table, **doc})
            continue
        how = c.resolution or "unresolved"
        out.print(f"{c.table} {_conflict_key_text(plan, c)}: {c.kind} [{how}]")
        for col in c.columns:
            shown = [
                "-" if doc[side] is None else json.dumps(doc[side][col], ensure_ascii=False)
                for side in ("base", "ours", "theirs")
            ]
            out.print(f"    {col}: base {shown[0]}  ours {shown[1]}  theirs {shown[2]}")
    if not as_json:
        left = sum(1 for _p, c in items if c.resolution is None)
        out.print(f"{len(items)} conflicts, {left} unresolved")


# -- maintenance ---------------------------------------------------------------------------------


def print_verify(report: Any, seconds: float, *, read_data: bool, as_json: bool) -> None:
    if as_json:
        from snapgit.ops.maintenance import verify_report_json

        print_json(verify_report_json(report, seconds))
        return
    for line in report.repairs:
        out.print(f"repaired: {line}")
    for p in report.problems:
        out.print(p.describe())
    if report.garbage:
        out.print(f"{len(report.garbage)} leftover files of interrupted writes (harmless; not referenced)")
    extra = f", {report.objects_read:,} objects re-read ({report.bytes_read / 1e6:,.1f} MB)" if read_data else ""
    out.print(
        f"{report.packs} packs, {report.objects_indexed:,} objects indexed, {report.commits} commits, "
        f"{report.nodes:,} tree nodes, {report.records_checked:,} record references{extra}: "
        + ("ok" if report.ok else f"{len(report.problems)} problems")
        + f" ({seconds:.2f} s)"
    )


def print_gc(report: Any, *, dry_run: bool, as_json: bool) -> None:
    doc = report.to_json()
    if as_json:
        print_json(doc)
        return
    for warning in report.warnings:
        err.print(f"warning: {warning['message']}")
        if warning["hint"]:
            err.print(f"hint: {warning['hint']}")
    verb = "would drop" if dry_run else "dropped"
    out.print(
        f"{doc['packs_before']} packs -> {doc['packs_after'] if not dry_run else '?'} packs; "
        f"{verb} {doc['objects_dropped']:,} of {doc['objects_before']:,} objects "
        f"({doc['reachable']:,} reachable; {doc['packs_dropped']} packs dead, {doc['packs_repacked']} repacked, "
        f"{doc['packs_young']} younger than the grace period)"
    )
    if report.reflog_expired:
        out.print(f"{report.reflog_expired:,} reflog entries older than --expire removed")
    if not dry_run:
        out.print(
            f"{report.bytes_reclaimed / 1e6:,.1f} MB reclaimed from objects/pack, "
            f"{report.bytes_deleted / 1e6:,.1f} MB deleted for good, {report.seconds:.2f} s"
        )


def print_branches(branches: list[tuple[str, bytes, bool]], head_ref: str | None, *, as_json: bool) -> None:
    if as_json:
        print_json([{"name": n, "commit": o.hex(), "current": cur} for n, o, cur in branches])
        return
    if not branches and head_ref:
        out.print(f"* {head_ref.removeprefix('refs/heads/')} (no commits yet)")
    for n, o, cur in branches:
        out.print(f"{'*' if cur else ' '} {n:<20} {o.hex()[:12]}")


def print_oplog(entries: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for e in entries:
            sys.stdout.write(json.dumps(e, sort_keys=True) + "\n")
        return
    for e in entries:
        status = "ok" if e.get("ok") else f"FAILED: {e.get('error', '')}"
        result = e.get("result") or {}
        commit_id = (result.get("commit") or "")[:12]
        out.print(f"{e.get('time', '?')}  {e.get('who', '?')}  {e.get('op', '?'):<8} {commit_id:<12} {status}")


# -- export and import ---------------------------------------------------------------------------


def print_export(result: Any, *, as_json: bool) -> None:
    if as_json:
        from snapgit.ops.transfer import export_result_json

        print_json(export_result_json(result))
        return
    what = f"changes since {result.base.hex()[:12]}" if result.base else "commit"
    out.print(
        f"exported {what} {result.commit.hex()[:12]} to {result.path} ({result.format}): "
        f"{result.total_rows:,} rows in {len(result.rows)} tables, {result.bytes:,} bytes, {result.seconds:.2f} s"
    )


def print_import(result: dict[str, Any], path: Any, *, as_json: bool) -> None:
    if as_json:
        from snapgit.ops.transfer import import_result_json

        print_json(import_result_json(result))
        return
    out.print(
        f"imported {path} as commit {result['commit'].hex()[:12]} on {result['ref']} "
        f"({sum(result['rows'].values()):,} rows in {len(result['rows'])} tables)"
    )
    if result["merge"] is not None:
        print_merge(result["merge"], False, "merged")
        if line := safety_line(result["merge"], "merge"):
            out.print(line)


def print_capture_status(result: Any, *, as_json: bool) -> None:
    if as_json:
        print_json(result.to_json())
        return
    if not result.supported:
        out.print(f"change capture is not available on {result.dialect} yet: commits read every row")
        return
    if result.token is None:
        out.print("change capture is off (snap capture enable turns it on)")
    width = max((len(t.name) for t in result.tables), default=0)
    for t in result.tables:
        if not t.captured:
            out.print(f"  {t.name:<{width}}  not captured ({t.why})")
            continue
        line = f"  {t.name:<{width}}  captured, {t.pending:,} changes logged; the next commit {t.next_commit}"
        out.print(line + (f" ({t.why})" if t.why else ""))
