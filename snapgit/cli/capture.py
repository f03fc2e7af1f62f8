"""``snap capture enable|disable|status``: change capture's commands (see :mod:`snapgit.ops.capture`)."""

from __future__ import annotations

from typing import Annotated

import typer

from snapgit.cli.context import open_repo, split_tables
from snapgit.cli.render import err, out, print_capture_status, print_json

__all__ = ["commands"]

commands = typer.Typer()
group = typer.Typer(
    help="Change capture: triggers log the keys of changed rows, so commits read only those rows.",
    no_args_is_help=True,
)
commands.add_typer(group, name="capture")

_DB = typer.Option("--db", help="Database URL (overrides config and environment).", metavar="URL")


@group.command()
def enable(
    tables: Annotated[
        str | None, typer.Option("--tables", help="Only these tables (comma-separated; default: every keyed table).")
    ] = None,
    db: Annotated[str | None, _DB] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Install capture triggers; the next commit reads these tables in full, later ones only what changed."""
    repo = open_repo()
    done, keyless = repo.capture_enable(split_tables(tables), db_url=db)
    if as_json:
        print_json({"enabled": done, "keyless": keyless})
        return
    out.print(f"change capture on for {len(done)} table(s): {', '.join(done) or '-'}")
    for name in keyless:
        err.print(f"note: table {name} has no key: not captured, its commits read every row")


@group.command()
def disable(
    tables: Annotated[
        str | None, typer.Option("--tables", help="Only these tables (comma-separated; default: all of capture).")
    ] = None,
    db: Annotated[str | None, _DB] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Remove capture triggers and logs; commits read every row again."""
    repo = open_repo()
    done = repo.capture_disable(split_tables(tables), db_url=db)
    if as_json:
        print_json({"disabled": done})
        return
    out.print(f"change capture off for {len(done)} table(s): {', '.join(done) or '-'}")


@group.command()
def status(
    db: Annotated[str | None, _DB] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which tables are captured, changes waiting, and how the next commit reads each table."""
    repo = open_repo()
    print_capture_status(repo.capture_status(db_url=db), as_json=as_json)
