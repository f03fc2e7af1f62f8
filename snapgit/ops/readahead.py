"""Records of whole tables, read ahead by a second process while the first writes them out.

A restore into an empty database spends about as long finding and verifying each record in the
packs (an index bisect and a SHA-256 per record, in Python) as decoding and inserting it. With
two cores the two halves can overlap: :func:`leaf_records` forks a reader that walks the tables'
trees leaf by leaf, reads and verifies the records, and sends each leaf's records as one joined
msgpack buffer through a pipe; the caller decodes them with one unpacker and writes them. The
pipe's buffer is the only queue, so memory stays flat: the reader waits when the writer is behind.

Without ``ahead`` (one core, small tables) the same leaves are read in this process. A damaged or
missing record raises the same error either way, in the caller, before the rows of its leaf are
written. The reader stops when its pipe breaks (the caller is gone or gave up); it is forked
and ended by :mod:`snapgit.forked`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from snapgit.errors import CorruptError, MissingObjectError, NotFoundError, SnapError
from snapgit.forked import end, fork, send_batched
from snapgit.tree.prolly import iter_leaves

__all__ = ["leaf_records", "worth_reading_ahead"]

_ERRORS = {c.__name__: c for c in (CorruptError, MissingObjectError, NotFoundError)}
_BATCH_BYTES = 256 * 1024  # leaves are sent in batches of about this much record data


def worth_reading_ahead(rows: int) -> bool:
    """A second process pays off for big tables on a machine with more than one core."""
    return rows >= 50_000 and (os.cpu_count() or 1) > 1 and os.environ.get("SNAP_WORKERS") != "0"


def _leaves(objects: Any, roots: Sequence[bytes]) -> Iterator[tuple[int, bytes, int]]:
    for i, root in enumerate(roots):
        for _nid, leaf in iter_leaves(objects, root):
            if leaf.ids:
                datas = [d for _t, d in objects.get_many(leaf.ids)]
                yield i, b"".join(datas), len(datas)


def leaf_records(objects: Any, roots: Sequence[bytes], *, ahead: bool) -> Iterator[tuple[int, bytes, int]]:
    """``(index of the root, the records of one or more of its leaves joined, how many)``, in
    key order, for each tree root in turn. Every record is verified against its id."""
    if not ahead or not hasattr(objects, "root"):
        yield from _leaves(objects, roots)
        return
    ours, proc = fork(_reader, Path(objects.root), tuple(getattr(objects, "also", ())), list(roots))
    try:
        while True:
            try:
                msg = ours.recv()
            except EOFError:
                raise SnapError(
                    "the process reading records ahead ended without a word",
                    hint="run again; if it persists, run with SNAP_WORKERS=0",
                ) from None
            kind = msg[0]
            if kind == "done":
                return
            if kind == "error":
                _kind, name, message, hint = msg
                raise _ERRORS.get(name, SnapError)(message, hint=hint)
            yield from msg[1]
    finally:
        end(ours, proc)


def _reader(conn: Any, root: Path, also: tuple[Path, ...], roots: list[bytes]) -> None:
    try:
        from snapgit.store.objectstore import DiskObjectStore

        objects = DiskObjectStore(root, also=also)
        send_batched(conn, "leaves", _leaves(objects, roots), lambda item: len(item[1]), _BATCH_BYTES)
    except SnapError as exc:
        try:
            conn.send(("error", type(exc).__name__, exc.message, exc.hint))
        except (OSError, EOFError):
            pass
