"""``snap``: the command line, a thin layer over :class:`snapgit.Repo`.

Each command parses its options, calls one API method and hands the result to a printer of
:mod:`snapgit.cli.render` (rich text for people, ``--json`` for programs, a progress bar on a
terminal). Errors: one line on stderr (``error: ...`` and maybe ``hint: ...``), exit status 1
for a failed operation, 2 for bad usage, 3 for a damaged store, 4 when another process holds a
lock; ``--debug`` shows the traceback instead.

``snapgit.repo`` (and through it the operations) is imported when a command runs, not when this
module loads: ``snap --version`` and ``--help`` need neither.
"""

from __future__ import annotations

import atexit
import copy
import sys
import time
from gc import freeze as freeze_gc  # as: `gc` is the command below
from pathlib import Path
from typing import Annotated

import typer

from snapgit.cli.context import ask_passphrase, open_repo, split_tables, state
from snapgit.cli.render import (
    err,
    out,
    print_branches,
    print_commit_result,
    print_conflicts,
    print_diff,
    print_export,
    print_gc,
    print_import,
    print_json,
    print_log,
    print_merge,
    print_oplog,
    print_show,
    print_status,
    print_verify,
    progress_bar,
    safety_line,
)
from snapgit.errors import SnapError
from snapgit.version import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="snap",
    help="Version control for the data in a live SQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"snap {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    directory: Annotated[
        Path | None, typer.Option("-C", help="Run as if snap was started in DIR.", metavar="DIR")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    state.debug = debug  # first: an error of the options below shows its traceback too
    # an encrypted remote opened by any command asks the terminal when the environment is silent
    from snapgit.passphrase import set_default

    set_default(ask_passphrase)
    if directory is not None:
        if not directory.is_dir():
            raise SnapError(f"cannot change to {directory}: no such directory")
        state.directory = directory


# --- init -----------------------------------------------------------------------------------


@app.command()
def init(
    db: Annotated[str | None, typer.Option("--db", help="Database URL or SQLite file path.", metavar="URL")] = None,
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


@app.command()
def commit(
    message: Annotated[str, typer.Option("-m", "--message", help="The commit message.")],
    tables: Annotated[
        str | None, typer.Option("--tables", help="Only these tables (comma-separated); others stay as they were.")
    ] = None,
    author: Annotated[str | None, typer.Option("--author", help="Who commits (default: config or user@host).")] = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Commit even when nothing changed.")] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Read only rows whose incremental_column (config.toml) changed since the last commit, plus all keys.",
        ),
    ] = False,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (overrides config and environment).", metavar="URL")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Snapshot the live database as a new commit."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        result = repo.commit(
            message,
            tables=split_tables(tables),
            author=author,
            allow_empty=allow_empty,
            db_url=db,
            incremental=incremental,
            progress=progress,
        )
    print_commit_result(result, message, incremental=incremental, as_json=as_json)


# --- log / show -----------------------------------------------------------------------------


@app.command()
def log(
    rev: Annotated[str, typer.Argument(help="Where to start.")] = "HEAD",
    n: Annotated[int | None, typer.Option("-n", "--max-count", help="Show at most N commits.")] = None,
    oneline: Annotated[bool, typer.Option("--oneline", help="One line per commit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show the commit history."""
    repo = open_repo()
    print_log(repo, repo.log(rev, n), oneline=oneline, as_json=as_json)


@app.command()
def show(
    rev: Annotated[str, typer.Argument(help="The commit to show.")] = "HEAD",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a commit: its metadata, tables, row counts and schema."""
    repo = open_repo()
    oid = repo.resolve(rev)
    print_show(oid, repo.read_commit(oid), repo.tables(oid.hex()), as_json=as_json)


# --- diff / status --------------------------------------------------------------------------


@app.command()
def diff(
    a: Annotated[str | None, typer.Argument(help="Old side (default HEAD).", metavar="A")] = None,
    b: Annotated[str | None, typer.Argument(help="New side (default: the live database).", metavar="B")] = None,
    stat: Annotated[
        bool, typer.Option("--stat", help="Per table: rows added, removed, changed; schema changes.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per change and line.")] = False,
    sql: Annotated[bool, typer.Option("--sql", help="SQL statements that turn A into B.")] = False,
    dialect: Annotated[str | None, typer.Option("--dialect", help="sqlite, postgresql or mysql (for --sql).")] = None,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Show at most N row changes.")] = None,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when there are differences.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL for the live side.", metavar="URL")] = None,
) -> None:
    """Show row- and cell-level differences between two commits, or a commit and the live database."""
    if dialect is not None and dialect not in ("sqlite", "postgresql", "mysql"):
        raise SnapError(f"unknown dialect {dialect!r}", hint="use sqlite, postgresql or mysql")
    repo = open_repo()
    with progress_bar(b is None and not as_json) as progress:
        diffs = repo.diff(a, b, tables=table, db_url=db, progress=progress)
    if sql and dialect is None:
        dialect = repo.database_dialect(db) if b is None else "sqlite"
    different = print_diff(diffs, stat=stat, as_json=as_json, sql=sql, dialect=dialect, limit=limit)
    if exit_code and different:
        raise typer.Exit(1)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Compare the live database with HEAD: rows added, removed, changed per table, schema drift."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        diffs = repo.status(db_url=db, progress=progress)
    print_status(diffs, repo.head(), repo.head_ref(), as_json=as_json)


# --- merge / restore / checkout -------------------------------------------------------------


@app.command()
def merge(
    rev: Annotated[str | None, typer.Argument(help="The commit to merge into the live database.")] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="How conflicts are resolved: backup_wins, database_wins or manual.")
    ] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Report what would happen; write nothing.")] = False,
    tables: Annotated[str | None, typer.Option("--tables", help="Only these tables (comma-separated).")] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="Message of the merge commit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cont: Annotated[
        bool, typer.Option("--continue", help="Apply a manual merge once its conflicts are resolved.")
    ] = False,
    abort: Annotated[
        bool, typer.Option("--abort", help="Drop a manual merge in progress; the database is untouched.")
    ] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Three-way merge a snapshot into the live database (non-conflicting changes of both sides survive)."""
    repo = open_repo()
    if abort:
        damaged = repo.merge_abort()
        if damaged:
            err.print(f"warning: {damaged}; removed it")
        out.print("merge aborted; the database was not changed by it")
        return
    if cont:
        with progress_bar(not as_json) as progress:
            result = repo.merge_continue(db_url=db, progress=progress)
        print_merge(result, as_json, "merged")
        if not as_json and (line := safety_line(result, "merge")):
            out.print(line)
        return
    if rev is None or strategy is None:
        raise SnapError(
            "snap merge needs REV and --strategy", hint="snap merge REV --strategy backup_wins|database_wins|manual"
        )
    with progress_bar(not as_json) as progress:
        result = repo.merge(
            rev,
            strategy=strategy,
            preview=preview,
            tables=split_tables(tables),
            message=message,
            db_url=db,
            progress=progress,
        )
    if preview:
        print_merge(result, as_json, "preview (nothing written)")
        return
    if result.in_progress:
        print_merge(result, as_json, "merge stopped on conflicts")
        if not as_json:
            if line := safety_line(result, "merge"):
                out.print(line)
            out.print(
                "resolve them with `snap conflicts resolve --ours|--theirs [--table T] [KEY...]`, then `snap merge --continue`"
            )
        raise typer.Exit(1)
    print_merge(result, as_json, "merged")
    if not as_json and (line := safety_line(result, "merge")):
        out.print(line)


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
    print_conflicts(open_repo().conflicts(), as_json=as_json)


@conflicts_app.command("resolve")
def conflicts_resolve(
    keys: Annotated[list[str] | None, typer.Argument(help="Keys to resolve (e.g. 5 or id=5); default all.")] = None,
    ours: Annotated[bool, typer.Option("--ours", help="Keep the live database's version.")] = False,
    theirs: Annotated[bool, typer.Option("--theirs", help="Take the snapshot's version.")] = False,
    table: Annotated[str | None, typer.Option("--table", help="Only this table.")] = None,
) -> None:
    """Resolve some or all conflicts of the merge in progress."""
    if ours == theirs:
        raise SnapError("give exactly one of --ours and --theirs")
    n = open_repo().resolve_conflicts("ours" if ours else "theirs", table=table, keys=keys)
    out.print(f"resolved {n} conflicts as {'ours' if ours else 'theirs'}")


@app.command()
def restore(
    rev: Annotated[str, typer.Argument(help="The commit to restore.")],
    into: Annotated[
        str | None, typer.Option("--into", help="Restore into a new database at URL instead.", metavar="URL")
    ] = None,
    tables: Annotated[str | None, typer.Option("--tables", help="Only these tables (comma-separated).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Report what would change; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Make the live database (or a new one) exactly equal to a commit. HEAD and the branch do not move."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        result = repo.restore(
            rev, into=into, tables=split_tables(tables), preview=preview, db_url=db, progress=progress
        )
    print_merge(result, as_json, "preview (nothing written)" if preview else "restored")
    if not as_json and (line := safety_line(result, "restore")):
        out.print(line)


@app.command()
def checkout(
    target: Annotated[
        str | None, typer.Argument(help="Branch or commit (with -b: where the branch starts, default HEAD).")
    ] = None,
    new_branch: Annotated[
        str | None, typer.Option("-b", help="Create this branch at TARGET and switch to it.", metavar="NEW")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Save uncommitted database changes to a ref first.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.", metavar="URL")] = None,
) -> None:
    """Switch branches: make the live database match it, then move HEAD."""
    repo = open_repo()
    if new_branch:
        done = repo.checkout(target or "HEAD", new_branch=new_branch, db_url=db)
        out.print(f"Switched to a new branch {new_branch} at {done['commit'].hex()[:12]}")
        return
    if target is None:
        raise SnapError("snap checkout needs a branch or commit", hint="snap checkout BRANCH, or snap checkout -b NEW")
    with progress_bar() as progress:
        done = repo.checkout(target, force=force, db_url=db, progress=progress)
    if done["safety"]:
        short = done["safety"].hex()[:12]
        out.print(f"uncommitted changes saved as {short} in {done['saved']}; to get them back: snap restore {short}")
    out.print(f"Switched to {target} ({done['commit'].hex()[:12]})")


# --- maintenance ----------------------------------------------------------------------------


@app.command()
def unlock() -> None:
    """Remove lock files left by killed snap processes (only when no other snap command runs)."""
    removed = open_repo().unlock()
    if not removed:
        out.print("no locks to remove")
        return
    err.print("warning: removed lock files; if another snap command was still running, run `snap verify`")
    for name in removed:
        out.print(f"removed {name}")


@app.command()
def verify(
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also read every pack: checksums, decompression, re-hash.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="First rebuild broken or missing indexes and move damaged packs to objects/damaged/ (keeping what reads).",
        ),
    ] = False,
    remote: Annotated[
        str | None, typer.Option("--remote", help="Check this remote instead of the store.", metavar="REMOTE")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the store (or a remote): indexes, packs, refs, and that everything reachable exists.

    Exit status 0 when clean, 3 when a problem was found (each is listed), 4 when --repair
    finds another snap command running.
    """
    started = time.monotonic()
    if remote is not None and repair:
        raise SnapError("--repair works on the store, not on a remote", hint="drop --repair, or --remote")
    if remote is not None:
        report = open_repo().verify_remote(remote, read_data=read_data)
        if not read_data and not as_json:
            remote_cli.print_remote_verify(report, time.monotonic() - started)
            if not report.ok:
                raise typer.Exit(3)
            return
    else:
        report = open_repo().verify(read_data=read_data, repair=repair)
    print_verify(report, time.monotonic() - started, read_data=read_data, as_json=as_json)
    if not report.ok:
        raise typer.Exit(3)


@app.command()
def gc(
    prune: Annotated[
        str,
        typer.Option("--prune", help="Grace period: keep packs younger than this (now, 30m, 1h, 2d).", metavar="GRACE"),
    ] = "1h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be removed; write nothing.")] = False,
    expire: Annotated[
        str,
        typer.Option(
            "--expire",
            help="Reflog entries older than this stop keeping commits and are removed (90d, 2w, never).",
            metavar="AGE",
        ),
    ] = "90d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove objects no ref, reflog entry or unfinished merge reaches; merge small packs.

    Exit status 0 when done, 3 when a reachable object cannot be read (nothing is changed),
    4 when other snap commands keep writing.
    """
    report = open_repo().gc(prune=prune, dry_run=dry_run, expire=expire)
    print_gc(report, dry_run=dry_run, as_json=as_json)


# --- branches and tags ----------------------------------------------------------------------


@app.command()
def branch(
    name: Annotated[str | None, typer.Argument(help="Create a branch with this name.")] = None,
    rev: Annotated[str, typer.Argument(help="Where the new branch starts.")] = "HEAD",
    delete: Annotated[str | None, typer.Option("-d", "--delete", help="Delete this branch.", metavar="NAME")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List, create or delete branches."""
    repo = open_repo()
    if delete:
        oid = repo.delete_branch(delete)
        out.print(f"Deleted branch {delete} (was {oid.hex()[:12]})")
        return
    if name:
        oid = repo.create_branch(name, rev)
        out.print(f"Created branch {name} at {oid.hex()[:12]}")
        return
    print_branches(repo.branches(), repo.head_ref(), as_json=as_json)


@app.command()
def tag(
    name: Annotated[str | None, typer.Argument(help="The tag to create.")] = None,
    rev: Annotated[str, typer.Argument(help="What it names.")] = "HEAD",
    message: Annotated[
        str | None, typer.Option("-m", "--message", help="Make an annotated tag with this message.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tags, or create one."""
    repo = open_repo()
    if name:
        oid = repo.create_tag(name, rev, message)
        out.print(f"Tagged {repo.resolve(oid.hex()).hex()[:12]} as {name}")
        return
    tags = repo.tags()
    if as_json:
        print_json([{"name": n, "id": o.hex()} for n, o in tags])
        return
    for n, _o in tags:
        out.print(n)


@app.command("cat-object")
def cat_object(
    oid: Annotated[str, typer.Argument(help="Object id, unique prefix, or revision.", metavar="ID")],
) -> None:
    """Print any stored object, decoded (plumbing, for debugging)."""
    full, kind, decoded = open_repo().cat_object(oid)
    print_json({"id": full.hex(), "kind": kind, "content": decoded})


@app.command("oplog")
def oplog_cmd(
    n: Annotated[int | None, typer.Option("-n", help="Show the last N entries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show the audit log of operations on this store."""
    entries = list(open_repo().oplog())
    if n is not None:
        entries = entries[-n:]
    print_oplog(entries, as_json=as_json)


# --- export / import -----------------------------------------------------------------------


@app.command("export")
def export_cmd(
    rev: Annotated[str, typer.Argument(help="The commit to export.")],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="File (json, .json.zst, sql) or directory (csv) to create.", metavar="PATH"
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="json, csv or sql.")] = "json",
    tables: Annotated[str | None, typer.Option("--tables", help="Only these tables (comma-separated).")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Incremental: only what changed since this commit (json, csv: rows and removed keys; sql: the statements that turn it into REV).",
            metavar="REV",
        ),
    ] = None,
    dialect: Annotated[
        str | None, typer.Option("--dialect", help="SQL dialect: sqlite, postgresql or mysql (default: the source's).")
    ] = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt the file in the age format (age -d decrypts it) with a passphrase from SNAP_PASSPHRASE, SNAP_PASSPHRASE_FILE or the terminal. Not with csv.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a commit to a portable file: JSON, a directory of CSV files, or SQL."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        result = repo.export(
            rev,
            output,
            fmt=fmt,
            tables=split_tables(tables),
            since=since,
            dialect=dialect,
            progress=progress,
            encrypt=encrypt,
            passphrase=ask_passphrase,  # asked once the export is known to be possible
        )
    print_export(result, as_json=as_json)


@app.command("import")
def import_cmd(
    path: Annotated[
        Path, typer.Argument(help="An export file (json, .json.zst, either encrypted) or CSV export directory.")
    ],
    branch: Annotated[
        str | None, typer.Option("--branch", help="Commit on this branch (created or advanced).", metavar="NAME")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Then merge the imported commit into the live database.")
    ] = False,
    strategy: Annotated[
        str, typer.Option("--strategy", help="With --merge: backup_wins, database_wins or manual.")
    ] = "backup_wins",
    max_size: Annotated[
        int | None,
        typer.Option("--max-size", help="Refuse inputs larger than this many bytes (default 10 GiB).", metavar="BYTES"),
    ] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="The commit message.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL (for --merge).", metavar="URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Validate an export file completely and make it a commit; nothing is written if it has problems.

    An encrypted file takes its passphrase from SNAP_PASSPHRASE, SNAP_PASSPHRASE_FILE or the terminal."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        result = repo.import_file(
            path,
            passphrase=ask_passphrase,  # asked only for an encrypted file
            branch=branch,
            merge_strategy=strategy if merge else None,
            max_size=max_size,
            message=message,
            db_url=db,
            progress=progress,
        )
    print_import(result, path, as_json=as_json)
    if result["merge"] is not None and result["merge"].in_progress and not as_json:
        raise typer.Exit(1)


# --- entry point ----------------------------------------------------------------------------


# --- command groups in their own modules -----------------------------------------------------
# Each such module defines its commands on a ``commands = typer.Typer()`` of its own (taking the
# store from snapgit.cli.context), so that it need not import this module; here they join ``snap``.
# List a new module here: COMMAND_MODULES = (remote_cli, ...); they are imported when `snap` starts,
# so a module keeps its own heavy imports inside its commands.
from snapgit.cli import capture as capture_cli  # noqa: E402 - after app: the module list below joins them
from snapgit.cli import remote as remote_cli  # noqa: E402 - after app: the module list below joins them
from snapgit.cli import serve as serve_cli  # noqa: E402 - after app: the module list below joins them

COMMAND_MODULES: tuple = (remote_cli, serve_cli, capture_cli)
for _module in COMMAND_MODULES:
    app.registered_commands.extend(_module.commands.registered_commands)
    app.registered_groups.extend(_module.commands.registered_groups)


def _command_name(info: typer.models.CommandInfo) -> str:
    # typer's own rule for a command without a name: its function's, with dashes
    return info.name or (info.callback.__name__.replace("_", "-") if info.callback is not None else "")


def _for_args(args: list[str]) -> typer.Typer:
    """``app``, with only the command ``args`` runs when they name one.

    Typer makes a click command of every command's signature at each start: 70 ms of a
    100-row commit's 400 for snap's forty commands, where one runs. No command named (options
    only, ``--help`` first), or a name no command has, gets them all: for the listing and the
    suggestions of a misspelt one."""
    rest = iter(args)
    for arg in rest:
        if arg == "-C":  # the one global option that takes a value (a separate argument)
            next(rest, None)
        elif arg in ("-h", "--help", "--"):
            return app
        elif not arg.startswith("-"):
            name = arg
            break
    else:
        return app
    commands = [c for c in app.registered_commands if _command_name(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    only = copy.copy(app)
    only.registered_commands, only.registered_groups = commands, groups
    return only


def main() -> None:
    # At exit the interpreter collects cycles again and again while it tears its modules down:
    # 90-130 ms after a commit, with SQLAlchemy loaded. Nothing of snap's waits on those
    # collections (a command has closed its files and released its locks before it returns),
    # so, last of the exit handlers, the objects left are frozen out of them.
    atexit.register(freeze_gc)
    state.debug = False
    try:
        try:
            _for_args(sys.argv[1:])(prog_name="snap")
        finally:
            for note in state.repo.store.locks.notes if state.repo is not None else []:
                err.print(f"note: {note}")
    except SnapError as exc:
        if state.debug:
            raise
        err.print(f"error: {exc.message}")
        if exc.hint:
            err.print(f"hint: {exc.hint}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit as exc:
        # typer catches a Ctrl-C in the command itself and exits 130 without a word
        if exc.code == 130:
            err.print("interrupted")
        raise
    except OSError as exc:
        if state.debug:
            raise
        err.print(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        sys.exit(1)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if state.debug:
            raise
        err.print(f"error: internal error: {type(exc).__name__}: {exc}")
        err.print("hint: run again with --debug for the traceback, and report it")
        sys.exit(1)


if __name__ == "__main__":
    main()
