"""``verify --repair``: rebuild what can be derived, move aside what is damaged, drop nothing.

* A pack whose index is missing or broken (does not parse, fails its checksum, names another
  pack, counts other objects) but which itself is whole gets its index rebuilt: a pack is
  self-describing, so reading it in order, resolving deltas and hashing gives the index back.
* A pack that fails its checksum, a block crc32, or whose objects do not read is damaged: every
  object of it that still reads and hashes is copied into a new pack (published as any writer
  publishes), then the pack and its index are moved to ``objects/damaged/`` (never deleted).
  What is lost shows in the verify that follows: each missing object with its commits and table.

The caller holds the gc lock: no writer runs meanwhile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from snapgit.errors import CorruptError
from snapgit.store.objectstore import DiskObjectStore
from snapgit.store.pack import (
    DELTA,
    FULL,
    PackReader,
    delta_decompress,
    entry_base,
    entry_frame,
    entry_full,
    entry_kind,
    fsync_dir,
    full_entry,
)
from snapgit.store.packindex import IndexReader, build_index

__all__ = ["repair_store"]


def _index_ok(idx_path: Path, name: str, count: int) -> bool:
    try:
        idx = IndexReader(idx_path)
    except CorruptError:
        return False
    try:
        return idx.checksum_ok() and idx.pack_name == name and idx.count == count
    finally:
        idx.close()


def _read_all(objects: DiskObjectStore, rd: PackReader) -> tuple[list[bytes], list[bytes | None]]:
    """(id, type + data) of every entry that reads; ids of entries that do not are b""."""
    ids: list[bytes] = []
    fulls: list[bytes | None] = []
    local: dict[bytes, bytes] = {}  # bases inside this pack (delta bases are nodes: few)
    for ordinal in range(rd.count):
        try:
            entry = rd.entry(ordinal)
            kind = entry_kind(entry)
            if kind == FULL:
                full = entry_full(entry)
            elif kind == DELTA:
                base = entry_base(entry)
                base_full = local.get(base)
                if base_full is None:
                    t, d = objects.get(base)
                    base_full = bytes((t,)) + d
                full = delta_decompress(base_full, entry_frame(entry))
            else:
                raise CorruptError(f"unknown entry kind {kind}")
        except Exception:  # noqa: BLE001 - whatever fails to decode (zstd errors too), this entry is lost
            ids.append(b"")
            fulls.append(None)
            continue
        oid = hashlib.sha256(full).digest()
        if full[0] != 1:
            local[oid] = full
        ids.append(oid)
        fulls.append(full)
    return ids, fulls


def _write_index(objects: DiskObjectStore, name: str, ids: list[bytes]) -> None:
    final = objects.pack_dir / f"pack-{name}.idx"
    tmp = objects.tmp_dir / f"pack-{name}.idx.tmp"
    with open(tmp, "wb") as f:
        f.write(build_index(name, ids))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    os.chmod(final, 0o400)
    fsync_dir(objects.pack_dir)


def repair_store(store) -> list[str]:
    """Repair what can be repaired; returns one line per action."""
    objects = store.objects
    pack_dir: Path = objects.pack_dir
    actions: list[str] = []
    pending = sorted(pack_dir.glob("pack-*.pack"))
    # Whole packs first, and again while a rebuilt index lets another pack's deltas resolve:
    # a delta's base may sit in a pack whose index is broken too, and a pack is moved aside
    # only for what it has itself lost, never for the order in which indexes were rebuilt.
    while True:
        rebuilt = False
        for pack_path in list(pending):
            outcome = _rebuild_index(objects, pack_path)
            if outcome is None:  # needs nothing, or has to wait (or is damaged)
                continue
            pending.remove(pack_path)
            if outcome:
                actions.append(outcome)
                rebuilt = True
                objects.refresh()  # its objects are bases the next packs may need
        if not rebuilt:
            break
    for pack_path in pending:
        if pack_path.exists():
            actions.append(_set_aside(objects, store.root / "objects" / "damaged", pack_path))
    return actions


def _rebuild_index(objects: DiskObjectStore, pack_path: Path) -> str | None:
    """'' when the pack and its index are sound, the action when its index was rebuilt, None
    when it cannot be done now (the pack is damaged, or a delta's base is not readable yet)."""
    name = pack_path.stem.removeprefix("pack-")
    idx_path = pack_path.with_suffix(".idx")
    try:
        rd = PackReader(pack_path)
    except CorruptError:
        return None
    try:
        if not rd.checksum_ok():
            return None
        if _index_ok(idx_path, name, rd.count):
            return ""
        ids, _fulls = _read_all(objects, rd)
        if not all(ids):
            return None
        what = "missing" if not idx_path.exists() else "broken"
        _write_index(objects, name, ids)
        return f"rebuilt the {what} index of pack {name[:16]} ({len(ids)} objects)"
    finally:
        rd.close()


def _set_aside(objects: DiskObjectStore, aside: Path, pack_path: Path) -> str:
    """Copy every object of a damaged pack that still reads into a new pack, and move the pack
    and its index to ``aside`` (a pack whose index could not be rebuilt: it is damaged, or some
    of its deltas' bases are gone).

    The damaged files are linked into ``aside`` first and leave ``objects/pack`` only once the
    copy is published: a crash between leaves every object readable. A copy of every object, in
    order, can be a pack of the bytes the damaged one should have had (damage where no object
    is, as in the header), and so of its name: publishing it put it in the damaged one's place,
    and it stays there."""
    name = pack_path.stem.removeprefix("pack-")
    idx_path = pack_path.with_suffix(".idx")
    aside.mkdir(mode=0o700, exist_ok=True)
    for path in (idx_path, pack_path):
        if path.exists():
            _keep_copy(path, aside / path.name)
    try:
        rd = PackReader(pack_path)
    except CorruptError:
        rd = None
    try:
        ids, fulls = _read_all(objects, rd) if rd is not None else ([], [])
        lost = sum(1 for i in ids if not i) if rd is not None else None
        saved = 0
        with objects.writer() as w:
            for oid, full in zip(ids, fulls, strict=False):
                if full is not None:
                    w.add_raw(oid, full_entry(full[0], full[1:]))
                    saved += 1
    finally:
        if rd is not None:
            rd.close()
    lost_text = "its objects could not be read" if lost is None else f"{lost} objects lost"
    if name in w.published:
        if name in objects.pack_names():  # opened before: the damaged file, and its blocks
            objects.forget(name)
        objects.refresh()
        return f"rewrote damaged pack {name[:16]} whole ({saved} objects saved, {lost_text}; the damaged copy is in objects/damaged/)"
    if name in objects.pack_names():
        objects.forget(name)
    for path in (idx_path, pack_path):  # the index first: it is what makes a pack visible
        path.unlink(missing_ok=True)
    fsync_dir(objects.pack_dir)
    return f"moved damaged pack {name[:16]} to objects/damaged/ ({saved} objects saved, {lost_text})"


def _keep_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src`` (a hard link where the file system has them), replacing
    what was there: a pack damaged again is kept as it is now."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    fsync_dir(dst.parent)
