"""Commits to portable files and back: ``snap export`` and ``snap import``.

Export writes a commit (or its changes since another) as JSON, CSV or SQL
(:mod:`snapgit.exchange.export`). Import validates an export file completely and only then makes
it a commit of kind ``import`` (:mod:`snapgit.exchange.importer`): on a branch, created or
advanced, or under ``refs/imports/<time>-<source commit>``; an incremental export's commit has
the commit it was taken against as a second parent. Nothing is written when the file has any
problem. ``import --merge`` then merges that commit into the live database
(:func:`snapgit.ops.mergeflow.merge`). The file formats and the merge engine are imported by
the functions that use them: ``Repo`` imports this module, and these commands are rarely run.
``export(encrypt=True)`` writes an age file (:mod:`snapgit.exchange.agefile`), which
``import_file`` recognises and decrypts, with a passphrase given or taken from the environment.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from snapgit.ops.audit import actor, audited
from snapgit.passphrase import PassphraseSource
from snapgit.passphrase import get as get_passphrase
from snapgit.progress import Progress
from snapgit.snapshot.record import commit_snapshot
from snapgit.store.history import resolve
from snapgit.store.layout import Store
from snapgit.store.refs import check_ref_name
from snapgit.version import __version__

__all__ = ["export", "export_result_json", "import_file", "import_result_json"]


def export(
    store: Store,
    rev: str,
    path: str | Path,
    *,
    fmt: str = "json",
    tables: list[str] | None = None,
    since: str | None = None,
    dialect: str | None = None,
    progress: Progress | None = None,
    encrypt: bool = False,
    passphrase: str | PassphraseSource | None = None,
):
    """Write a commit (with ``since``: its changes since that commit) to an export file; with
    ``encrypt``, an age file encrypted with ``passphrase`` (None: from the environment)."""
    from snapgit.exchange.export import check_encryptable, check_output, export_commit

    who = actor(store)
    args: dict[str, Any] = {
        "rev": rev,
        "path": str(path),
        "format": fmt,
        "tables": tables,
        "since": since,
        "dialect": dialect,
    }
    if encrypt:
        args["encrypt"] = True
    with audited(store, who, "export", args, first_line=True) as entry:
        cid = resolve(store.objects, store.refs, rev)
        base = resolve(store.objects, store.refs, since) if since else None
        secret = None
        if encrypt:
            # whatever else can be refused is refused before a passphrase is typed for nothing
            check_encryptable(fmt)
            check_output(Path(path))
            secret = get_passphrase(passphrase, confirm=True)
        result = export_commit(
            store.objects,
            cid,
            Path(path),
            fmt=fmt,
            tables=tables,
            base_id=base,
            dialect=dialect,
            created_by=who,
            progress=progress,
            passphrase=secret,
        )
        entry.result = {"commit": cid.hex(), "rows": result.rows, "bytes": result.bytes}
    return result


def export_result_json(result: Any) -> dict[str, Any]:
    """The JSON form of an export's result (``snap export --json``)."""
    return {
        "path": str(result.path),
        "format": result.format,
        "kind": result.kind,
        "commit": result.commit.hex(),
        "base": result.base.hex() if result.base else None,
        "rows": result.rows,
        "removed": result.removed,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 3),
    }


def import_file(
    store: Store,
    path: str | Path,
    *,
    branch: str | None = None,
    merge_strategy: str | None = None,
    max_size: int | None = None,
    message: str | None = None,
    db_url: str | None = None,
    author: str | None = None,
    progress: Progress | None = None,
    passphrase: str | PassphraseSource | None = None,
) -> dict[str, Any]:
    """Validate an export file and make it a commit (see the module docstring). Returns commit,
    ref, tree, kind, source_commit, base, rows, seconds, and merge (a MergeResult or None).
    An encrypted file is decrypted with ``passphrase`` (None: from the environment)."""
    from snapgit.exchange.importer import DEFAULT_MAX_SIZE, import_into

    who = actor(store, author)
    path = Path(path)
    args = {"path": str(path), "branch": branch, "merge": merge_strategy, "max_size": max_size}
    started = time.monotonic()
    with audited(store, who, "import", args, first_line=True) as entry:
        if branch is not None:
            check_ref_name(branch, "branch")
        with store.objects.writer() as w:
            imported = import_into(
                store.objects,
                w,
                path,
                max_size=max_size or DEFAULT_MAX_SIZE,
                progress=progress,
                passphrase=passphrase,
            )
        src = imported.source_commit or "?"
        if branch is not None:
            ref = f"refs/heads/{branch}"
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            ref = f"refs/imports/{stamp}-{src[:12]}"
        current = store.refs.read(ref)
        parent = bytes.fromhex(current) if current else None
        extra = [imported.base] if imported.base is not None and imported.base != parent else []
        meta: dict[str, Any] = {
            "kind": "import",
            "source_commit": src,
            "export_kind": imported.kind,
            "file": path.name,
            "rows": imported.rows,
            "snapgit": __version__,
        }
        source_dialect = imported.metadata.get("source_dialect")
        if isinstance(source_dialect, str):
            # the engine the exported commit read: restore --into the same kind of database
            # creates the columns with their native types, as from the original commit
            meta["dialect"] = source_dialect
        cid, _ = commit_snapshot(
            store.objects,
            store.refs,
            ref=ref,
            expected_parent=parent,
            tree_id=imported.tree,
            author=who,
            message=message or f"import {path.name} (commit {src[:12]})",
            meta=meta,
            extra_parents=extra,
            allow_same_tree=True,
        )
        entry.result = {"commit": cid.hex() if cid else None, "ref": ref, "rows": imported.rows}
    result: dict[str, Any] = {
        "commit": cid,
        "ref": ref,
        "tree": imported.tree,
        "kind": imported.kind,
        "source_commit": src,
        "base": imported.base,
        "rows": imported.rows,
        "seconds": time.monotonic() - started,
        "merge": None,
    }
    if merge_strategy is not None and cid is not None:
        from snapgit.ops.mergeflow import merge

        result["merge"] = merge(
            store, cid.hex(), strategy=merge_strategy, db_url=db_url, author=author, progress=progress
        )
    return result


def import_result_json(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of :func:`import_file`'s result (``snap import --json``)."""
    merged = result["merge"]
    return {
        "commit": result["commit"].hex(),
        "ref": result["ref"],
        "kind": result["kind"],
        "source_commit": result["source_commit"],
        "base": result["base"].hex() if result["base"] else None,
        "rows": result["rows"],
        "seconds": round(result["seconds"], 3),
        "merge": merged.summary() if merged is not None else None,
    }
