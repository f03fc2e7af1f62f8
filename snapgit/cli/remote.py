"""The remote commands: ``remote add|list|remove``, ``push``, ``fetch``, ``pull``, ``clone`` and
``ls-remote`` (``verify --remote`` is an option of ``verify``, in ``app``)."""

from __future__ import annotations

from typing import Annotated

import typer

from snapgit.cli.context import ask_new_passphrase, ask_passphrase, open_repo, state
from snapgit.cli.render import err, out, print_json, print_merge, progress_bar, safety_line

__all__ = ["commands", "print_remote_verify"]

commands = typer.Typer()
remote_group = typer.Typer(help="Name, list and forget remotes.", no_args_is_help=True)
commands.add_typer(remote_group, name="remote")

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@remote_group.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="What to call the remote (e.g. origin).")],
    url: Annotated[str, typer.Argument(help="A directory, file:///path or s3://bucket/prefix.")],
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt everything sent to it, with a key wrapped by a passphrase (SNAP_PASSPHRASE, SNAP_PASSPHRASE_FILE or the terminal).",
        ),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Name a remote; it is checked first (reachable, and keeping conditional writes)."""
    info = open_repo().remote_add(name, url, encrypt=encrypt)
    if as_json:
        print_json({"name": info.name, "url": info.url, "encrypted": info.encrypted})
    else:
        out.print(f"added remote {info.name}: {info.url}{' (encrypted)' if info.encrypted else ''}")


@remote_group.command("passphrase")
def remote_passphrase(
    name: Annotated[str, typer.Argument(help="The encrypted remote.")],
    as_json: _JSON = False,
) -> None:
    """Change an encrypted remote's passphrase: the current one from SNAP_PASSPHRASE(_FILE) or the
    terminal, the new one from SNAP_NEW_PASSPHRASE(_FILE) or typed twice."""
    repo = open_repo()
    old = ask_passphrase()
    removed, made = repo.remote_passphrase(name, old=old, new=ask_new_passphrase())
    if as_json:
        print_json({"name": name, "removed_key": removed, "new_key": made})
    else:
        out.print(f"changed the passphrase of {name} (key {removed[:12]} replaced by {made[:12]})")


@remote_group.command("list")
def remote_list(as_json: _JSON = False) -> None:
    """The configured remotes."""
    remotes = open_repo().remotes()
    if as_json:
        print_json([{"name": r.name, "url": r.url, "encrypted": r.encrypted} for r in remotes])
        return
    if not remotes:
        out.print("no remotes; add one with `snap remote add NAME URL`")
    for r in remotes:
        out.print(f"{r.name}\t{r.url}{'  (encrypted)' if r.encrypted else ''}")


@remote_group.command("remove")
def remote_remove(
    name: Annotated[str, typer.Argument(help="The remote to forget.")],
    as_json: _JSON = False,
) -> None:
    """Forget a remote and its remote-tracking refs (the remote itself is not touched)."""
    info = open_repo().remote_remove(name)
    if as_json:
        print_json({"name": info.name, "url": info.url, "removed": True})
    else:
        out.print(f"removed remote {info.name} ({info.url})")


@commands.command()
def push(
    remote: Annotated[str | None, typer.Argument(help="The remote (default: origin, or the only one).")] = None,
    refs: Annotated[list[str] | None, typer.Argument(help="Branches or tags (default: the current branch).")] = None,
    all_branches: Annotated[bool, typer.Option("--all", help="Push every branch.")] = False,
    tags: Annotated[bool, typer.Option("--tags", help="Push every tag.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite refs that are not fast-forwards.")] = False,
    as_json: _JSON = False,
) -> None:
    """Send the remote the objects it lacks, then move its refs (fast-forwards only, unless --force)."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        result = repo.push(remote, refs or [], all_branches=all_branches, tags=tags, force=force, progress=progress)
    if as_json:
        print_json(result.to_json())
        return
    out.print(f"to {result.remote} ({result.url})")
    for u in result.updates:
        old = u.old[:12] if u.old else "(new)"
        out.print(f"  {u.ref}: {old} -> {u.new[:12]} [{u.status}]")
    out.print(
        f"sent {result.objects_sent:,} objects in {result.packs_sent} packs, "
        f"{result.bytes_sent / 1e6:,.2f} MB ({result.seconds:.2f} s)"
    )


def _print_fetch(result, as_json: bool) -> None:
    if as_json:
        print_json(result.to_json())
        return
    out.print(f"from {result.remote} ({result.url})")
    for ref, (old, new) in sorted(result.updated.items()):
        out.print(f"  {ref}: {old[:12] if old else '(new)'} -> {new[:12]}")
    for note in result.notes:
        out.print(f"note: {note}")
    out.print(f"received {result.packs_received} packs, {result.bytes_received / 1e6:,.2f} MB ({result.seconds:.2f} s)")


@commands.command()
def fetch(
    remote: Annotated[str | None, typer.Argument(help="The remote (default: origin, or the only one).")] = None,
    as_json: _JSON = False,
) -> None:
    """Download what the remote has and this store lacks; update refs/remotes/REMOTE/*."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        result = repo.fetch(remote, progress=progress)
    _print_fetch(result, as_json)


@commands.command()
def pull(
    remote: Annotated[str | None, typer.Argument(help="The remote (default: origin, or the only one).")] = None,
    branch: Annotated[str | None, typer.Argument(help="Its branch (default: the current branch's name).")] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", help="How conflicts are resolved: backup_wins, database_wins or manual.")
    ] = ...,  # type: ignore[assignment]  # typer: a required option
    preview: Annotated[bool, typer.Option("--preview", help="Fetch, then report what the merge would do.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.", metavar="URL")] = None,
    as_json: _JSON = False,
) -> None:
    """Fetch, then merge the remote's branch into the live database (as `snap merge` does)."""
    repo = open_repo()
    with progress_bar(not as_json) as progress:
        fetched, result = repo.pull(remote, branch, strategy=strategy, preview=preview, db_url=db, progress=progress)
    if as_json:
        print_json({"fetch": fetched.to_json(), "merge": result.to_json()})
        if result.in_progress:
            raise typer.Exit(1)
        return
    _print_fetch(fetched, False)
    if preview:
        print_merge(result, False, "preview (nothing written)")
        return
    if result.in_progress:
        print_merge(result, False, "merge stopped on conflicts")
        out.print(
            "resolve them with `snap conflicts resolve --ours|--theirs [--table T] [KEY...]`, then `snap merge --continue`"
        )
        raise typer.Exit(1)
    print_merge(result, False, "merged")
    if line := safety_line(result, "merge"):
        out.print(line)


@commands.command()
def clone(
    url: Annotated[str, typer.Argument(help="The remote: a directory, file:///path or s3://bucket/prefix.")],
    directory: Annotated[
        str | None, typer.Argument(help="Where the new store goes (default: named after URL).")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="The new store's database URL.", metavar="URL")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="The branch to check out.")] = None,
    restore: Annotated[
        bool, typer.Option("--restore", help="Make the (new or empty) database equal to the branch.")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """A new store with a remote's history as origin; --restore also fills the database."""
    from snapgit.repo import Repo

    base = state.directory.resolve()
    target = None if directory is None else str(base / directory)
    if db and "://" not in db:  # a SQLite path is the user's, relative to where snap runs
        db = str(base / db)
    with progress_bar(not as_json) as progress:
        repo, fetched, chosen, restored = Repo.clone(
            url if "://" in url else str(base / url), target, db, branch=branch, restore=restore, progress=progress
        )
    state.repo = repo
    if as_json:
        print_json(
            {
                "store": str(repo.store.root),
                "branch": chosen,
                "fetch": fetched.to_json(),
                "restore": restored.to_json() if restored is not None else None,
            }
        )
        return
    out.print(f"cloned {fetched.url} into {repo.store.project_dir} (branch {chosen})")
    if restored is not None:
        print_merge(restored, False, "restored")
    elif not db:
        err.print("note: no database yet: pass --db URL to commands, or set SNAP_DATABASE_URL")


@commands.command("ls-remote")
def ls_remote(
    remote: Annotated[str | None, typer.Argument(help="The remote (default: origin, or the only one).")] = None,
    as_json: _JSON = False,
) -> None:
    """The remote's branches and tags."""
    name, refs = open_repo().ls_remote(remote)
    if as_json:
        print_json({"remote": name, "refs": refs})
        return
    for ref, oid in sorted(refs.items()):
        out.print(f"{oid}\t{ref}")


def print_remote_verify(report, seconds: float) -> None:
    """`verify --remote` without --read-data: what it checked (indexes and refs, not objects)."""
    for p in report.problems:
        out.print(p.describe())
    if report.garbage:
        out.print(f"{len(report.garbage)} packs without an index, left by interrupted pushes (harmless)")
    out.print(
        f"{report.packs} packs, {report.objects_indexed:,} objects indexed, refs checked against them: "
        + ("ok" if report.ok else f"{len(report.problems)} problems")
        + f" ({seconds:.2f} s; --read-data reads and checks every object)"
    )
