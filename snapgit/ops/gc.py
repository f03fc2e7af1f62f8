"""``gc``: remove what nothing reaches, merge small packs, in an order a crash cannot hurt.

**What is kept.** Roots are HEAD, every ref under ``refs/`` (heads, tags, ``refs/snap/*``), every
id of every reflog line (old and new) younger than the expiry (default 90 days, as git's
``gc.reflogExpire``; older lines are removed, but for the newest of a ref that exists, so a
deleted branch's commits go once its reflog has expired), and the commits of an unfinished merge
(``MERGE_HEAD``; a damaged one names none, and is reported with its way out, ``snap merge --abort``).
From them: commits and their parents, tags and their targets, snapshot trees, tables, schemas,
tree nodes and records. A node stored as a delta needs its base to be read, so every base of a
kept node is kept too (rather than rewriting the node whole: deltas are what keep a version of a
table small, and the base is nearly always the parent commit's node, reachable anyway). Every
pack younger than the grace period is kept whole, with the bases of its deltas; so is every pack
gc does not repack, with the chains of its dead deltas (each entry of a pack must read).

**Marks** are the first 8 bytes of ids, as the indexes store them: a dead object that shares a
prefix with a live one is kept (harmless), a live one is never dropped.

**Order** (each step leaves a readable store if the process dies right after it):

1. take the gc lock: no writer holds a lease, and none can start (lock.py);
2. mark; packs with no live object are dropped, packs with much dead data or small ones are
   repacked: their live objects copied into new packs, published as every writer publishes
   (pack, fsync, rename; then the index): from now on, every live object is in a new pack;
3. move each old index, then its pack, to ``objects/trash/`` (the index first: it is what makes
   a pack visible). A reader that listed the old index before still finds the pack there;
4. delete, in the trash, packs moved there longer ago than the grace period (by an earlier gc);
   in ``tmp/``, files and directories older than it (left by killed writers, and the scratch
   stores of killed ``status`` and ``diff`` commands); in ``objects/pack``, packs without an
   index older than it (a writer killed between the two renames).

With ``--prune=now`` the grace period is 0: step 4 also empties what step 3 just moved. That is
safe against killed processes (the lock covers running ones), not against readers that opened the
store before gc started: the documented unsafe escape hatch, as in git.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import re
import shutil
import sys
import time
from array import array
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path

from snapgit.errors import CorruptError, NotFoundError, SnapError
from snapgit.objects import Node, ObjType, Tag
from snapgit.ops.marks import Marks, repeated_prefixes
from snapgit.ops.remotes import forget_held_packs
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.store.objectstore import DiskObjectStore
from snapgit.store.pack import DELTA, entry_base, entry_kind, fsync_dir, full_entry
from snapgit.store.privatefile import stale_temporary_files
from snapgit.store.refs import ZERO

__all__ = ["GcReport", "collect_garbage", "merge_head_commits", "parse_grace", "DEFAULT_GRACE", "MERGE_SIDES"]

DEFAULT_GRACE = 3600.0
SMALL_PACK = 4 * 1024 * 1024  # smaller packs are merged into one when there are several
MIN_LIVE = 0.8  # a pack with less than this share of live objects is repacked

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DEFAULT_EXPIRE = 90 * 86400  # reflog entries older than this stop keeping commits (git's gc.reflogExpire)


def parse_grace(text: str) -> float:
    """Seconds of ``now``, ``90``, ``45s``, ``30m``, ``1h``, ``2d``, ``1w``."""
    t = text.strip().lower()
    if t == "now":
        return 0.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", t)
    if not m:
        raise SnapError(
            f"cannot read the grace period {text!r}", hint="use now, or a number with s, m, h, d or w (e.g. 30m)"
        )
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass
class GcReport:
    dry_run: bool
    grace_seconds: float
    packs_before: int = 0
    packs_after: int = 0
    bytes_before: int = 0  # of objects/pack
    bytes_after: int = 0
    objects_before: int = 0  # index entries
    objects_after: int = 0
    reachable: int = 0  # ids marked (records, nodes, metadata)
    objects_dropped: int = 0
    packs_repacked: int = 0
    packs_dropped: int = 0  # no live object at all
    reflog_expired: int = 0  # reflog entries removed for being older than the expiry
    packs_young: int = 0  # kept whole: younger than the grace period
    trashed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # files removed for good
    bytes_deleted: int = 0
    # what gc found wrong but could work around, each {"message", "hint"}: a damaged MERGE_HEAD
    warnings: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes_reclaimed(self) -> int:
        """Bytes that left objects/pack (some may wait in the trash) plus trash and tmp deleted."""
        return max(self.bytes_before - self.bytes_after, 0)

    def to_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "grace_seconds": self.grace_seconds,
            "packs_before": self.packs_before,
            "packs_after": self.packs_after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "bytes_reclaimed": self.bytes_reclaimed,
            "bytes_deleted": self.bytes_deleted,
            "objects_before": self.objects_before,
            "objects_after": self.objects_after,
            "objects_kept": self.objects_before - self.objects_dropped,
            "objects_dropped": self.objects_dropped,
            "reachable": self.reachable,
            "packs_repacked": self.packs_repacked,
            "packs_dropped": self.packs_dropped,
            "packs_young": self.packs_young,
            "reflog_expired": self.reflog_expired,
            "trashed": self.trashed,
            "deleted": self.deleted,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


# --- mark -------------------------------------------------------------------------------------


def root_ids(store, expire_before: float | None = None, damaged: list[CorruptError] | None = None) -> set[bytes]:
    """Every commit or tag id a ref, a reflog line or an unfinished merge names; reflog lines
    older than ``expire_before`` (unix seconds) left out, but for the newest of a ref that exists.

    A damaged MERGE_HEAD names nothing gc can keep, and nothing can be done with it but
    ``snap merge --abort``: with ``damaged`` given, its error is added there and the rest counted,
    rather than raised."""
    refs = store.refs
    out: set[bytes] = set()

    def add(value: str | None) -> None:
        if value and value != ZERO:
            out.add(bytes.fromhex(value))

    add(refs.read("HEAD"))
    base = store.root / "refs"
    for p in sorted(base.rglob("*")) if base.is_dir() else []:
        if p.is_file() and not p.name.endswith(".lock"):
            add(refs.read(p.relative_to(store.root).as_posix()))
    logs = store.root / "logs"
    for p in sorted(logs.rglob("*")) if logs.is_dir() else []:
        if p.is_file() and not p.name.endswith(".expire"):
            name = p.relative_to(logs).as_posix()
            entries = refs.reflog(name)
            if expire_before is not None:
                kept = [e for e in entries if e.time >= expire_before]
                entries = kept or (entries[-1:] if refs.read(name) is not None else [])
            for entry in entries:
                add(entry.old)
                add(entry.new)
    try:
        out.update(merge_head_commits(store).values())
    except CorruptError as exc:
        if damaged is None:
            raise
        damaged.append(exc)
    return out


MERGE_SIDES = ("ours", "theirs", "base")


def merge_head_commits(store) -> dict[str, bytes]:
    """The commits an unfinished manual merge names (``MERGE_HEAD``), by side: ours, theirs, base
    ({} when no merge is in progress). Only the ids are read here, for gc and verify to keep and
    check them; the rest of the state is :mod:`snapgit.ops.mergeflow`'s."""
    path = store.root / "MERGE_HEAD"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise _damaged_merge_head(f"{exc}") from exc
    if not isinstance(state, dict):
        raise _damaged_merge_head("it is not a JSON object")
    out = {}
    for side in MERGE_SIDES:
        value = state.get(side)
        if value is None:
            continue
        if not isinstance(value, str) or not re.fullmatch("[0-9a-f]{64}", value):
            raise _damaged_merge_head(f"its {side} is not a commit id")
        out[side] = bytes.fromhex(value)
    if "theirs" not in out:
        raise _damaged_merge_head("it names no commit to merge")
    return out


def _damaged_merge_head(why: str) -> CorruptError:
    return CorruptError(f"MERGE_HEAD is damaged: {why}", hint="drop the unfinished merge with `snap merge --abort`")


def _mark(objects: DiskObjectStore, roots: set[bytes]) -> Marks:
    """Everything reachable from ``roots``, and the delta bases of the nodes among them: the
    marks are not final yet (gc adds what young packs need, then finishes them)."""
    with objects.mapped_lookups():  # every node of every version, each looked for in many packs
        return _reachable(objects, roots)


def _reachable(objects: DiskObjectStore, roots: set[bytes]) -> Marks:
    # Commits, trees, tables, schemas, nodes and delta bases are few (thousands per version):
    # they are kept in a set, to be walked once each. Records are millions: only marked.
    marks = Marks()
    keep = marks.few
    commits = list(roots)
    nodes: list[bytes] = []
    while commits:
        oid = commits.pop()
        if oid in keep:
            continue
        keep.add(oid)
        otype, data = objects.get(oid)
        if otype == ObjType.TAG:
            commits.append(Tag.decode(data).target)
            continue
        commit = read_commit(objects, oid)
        commits.extend(commit.parents)
        if commit.tree in keep:
            continue
        keep.add(commit.tree)
        for tid in read_root(objects, commit.tree).tables.values():
            if tid in keep:
                continue
            keep.add(tid)
            entry = read_table(objects, tid)
            keep.add(entry.schema)
            objects.get(entry.schema)
            nodes.append(entry.root)
    # Visited nodes apart from kept ids: a node already kept as some delta's base must still be
    # walked when a tree reaches it, or its records would be dropped.
    walked: set[bytes] = set()
    while nodes:
        nid = nodes.pop()
        if nid in walked:
            continue
        walked.add(nid)
        keep.add(nid)
        otype, data = objects.get(nid)
        node = Node.decode(data)
        if node.level:
            nodes.extend(node.ids)
        else:
            marks.add_joined(b"".join(node.ids))
        _keep_bases(objects, nid, keep)
    return marks


def _keep_bases(objects: DiskObjectStore, oid: bytes, keep: set[bytes]) -> None:
    todo = objects.stored_bases(oid)
    while todo:
        base = todo.pop()
        if base not in keep:
            keep.add(base)
            todo.extend(objects.stored_bases(base))


def _keep_chains_of_dead_deltas(
    objects: DiskObjectStore, whole: list[str], marks: Marks, drop: list[str], repack: list[str]
) -> None:
    """A pack kept whole keeps its dead objects too, and each of them must still read: a
    version that comes back is looked for there, and verify reads every entry. So the chains of
    its dead deltas are kept (marked late; a pack about to be dropped that holds a link is
    repacked instead). A pack with a dead delta whose chain is already broken (left by a gc
    killed between moving two packs away) is repacked, which drops that delta."""
    late: set[bytes] = set()
    for name in list(whole):
        idx = objects.index(name)
        column = idx.prefix_column()
        live = marks.hits(column)
        if len(live) == idx.count:
            continue
        prefixes = array("Q")
        prefixes.frombytes(column)
        if sys.byteorder != "little":  # pragma: no cover - the column is little-endian
            prefixes.byteswap()
        dead = sorted(compress(idx.ordinals, map(operator.not_, map(live.__contains__, prefixes))))
        chains: set[bytes] = set()
        try:
            for base in objects.pack_reader(name).delta_bases(dead):
                if base not in chains:
                    objects.get(base)  # every link of its chain reads
                    chains.add(base)
                    _keep_bases(objects, base, chains)
        except (NotFoundError, CorruptError):
            whole.remove(name)
            repack.append(name)
            continue
        late |= chains
    if not late:
        return
    marks.add_final(late)
    for name in list(drop):
        if marks.count_in(objects.index(name).prefix_column()):
            drop.remove(name)
            repack.append(name)


def _prefix(oid: bytes) -> int:
    return int.from_bytes(oid[:8], "big")


# --- sweep ------------------------------------------------------------------------------------


def _size(*paths: Path) -> int:
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def _pack_dir_state(pack_dir: Path) -> tuple[int, int]:
    names = [p for p in pack_dir.iterdir() if p.name.endswith(".idx")]
    return len(names), _size(*pack_dir.iterdir())


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False


def _delete(path: Path, report: GcReport, root: Path) -> None:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return
    report.bytes_deleted += size
    report.deleted.append(path.relative_to(root).as_posix())


def _tree_older(path: Path, cutoff: float) -> bool:
    """Whether nothing in the directory changed since ``cutoff``: a directory's own mtime
    moves only when its entries do, and a status writing its packs deep inside keeps it young."""
    try:
        newest = max(p.lstat().st_mtime for p in [path, *path.rglob("*")])
    except OSError:  # something went while looking: in use
        return False
    return newest <= cutoff


def _delete_tree(path: Path, report: GcReport, root: Path) -> None:
    size = sum(_size(p) for p in path.rglob("*") if p.is_file())
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        return  # not all of it could go: gc will try again
    report.bytes_deleted += size
    report.deleted.append(path.relative_to(root).as_posix() + "/")


def _expire_reflogs(store, before: float) -> int:
    logs = store.root / "logs"
    dropped = 0
    for p in sorted(logs.rglob("*")) if logs.is_dir() else []:
        if p.is_file() and not p.name.endswith(".expire"):
            dropped += store.refs.expire_reflog(p.relative_to(logs).as_posix(), before)
    return dropped


def collect_garbage(
    store, *, grace: float = DEFAULT_GRACE, dry_run: bool = False, expire: float | None = DEFAULT_EXPIRE
) -> GcReport:
    """Run gc on ``store`` (the caller holds the gc lock unless ``dry_run``). Reflog entries
    older than ``expire`` seconds (None: never) stop being roots and are removed."""
    started = time.monotonic()
    objects = store.objects
    objects.refresh()
    pack_dir: Path = objects.pack_dir
    trash: Path = objects.trash_dir
    report = GcReport(dry_run, grace)
    report.packs_before, report.bytes_before = _pack_dir_state(pack_dir)
    now = time.time()
    cutoff = now - grace
    names = objects.pack_names()
    young = [n for n in names if not _older(pack_dir / f"pack-{n}.pack", cutoff)]
    report.packs_young = len(young)
    try:
        expire_before = None if expire is None else now - expire
        damaged: list[CorruptError] = []
        marks = _mark(objects, root_ids(store, expire_before, damaged))
        report.warnings.extend({"message": exc.message, "hint": exc.hint or ""} for exc in damaged)
        keep = marks.few
        for name in young:  # kept whole; what their deltas need must stay readable
            for _ordinal, entry in objects.pack_reader(name).iter_entries():
                if entry_kind(entry) == DELTA:
                    base = entry_base(entry)
                    _keep_bases(objects, base, keep)
                    keep.add(base)
    except (NotFoundError, CorruptError) as exc:
        raise CorruptError(
            f"gc stopped before changing anything: a reachable object cannot be read: {exc}",
            hint="run `snap verify` (and `snap verify --repair`) first",
        ) from exc
    marks.finish()
    report.reachable = len(marks)

    drop, repack, small = [], [], []
    for name in names:
        idx = objects.index(name)
        report.objects_before += idx.count
        if name in young:
            continue
        alive = marks.count_in(idx.prefix_column())
        if alive == 0:
            drop.append(name)
        elif alive < MIN_LIVE * idx.count:
            repack.append(name)
        elif _size(pack_dir / f"pack-{name}.pack") < SMALL_PACK:
            small.append(name)
    if len(small) > 1:
        repack.extend(small)
    whole = [n for n in names if n not in young and n not in drop and n not in repack]
    _keep_chains_of_dead_deltas(objects, whole, marks, drop, repack)
    report.objects_dropped += sum(objects.index(name).count for name in drop)
    report.packs_repacked = len(repack)
    report.packs_dropped = len(drop)

    if dry_run:
        for name in repack:
            idx = objects.index(name)
            report.objects_dropped += idx.count - marks.count_in(idx.prefix_column())
        report.objects_after = report.objects_before - report.objects_dropped
        report.seconds = time.monotonic() - started
        return report

    if expire_before is not None:
        # before anything is swept: a reflog line must never name a commit that is gone
        report.reflog_expired = _expire_reflogs(store, expire_before)
    made = _repack(objects, repack, marks, report) if repack else set()
    if repack or drop:
        # objects go: the remotes' lists of packs "held here" may no longer be true (ops/remotes.py)
        forget_held_packs(store)
        trash.mkdir(mode=0o700, exist_ok=True)
        # A new pack may have the name of one it replaces: the same objects copied in the same
        # order (a gc killed after publishing leaves its new packs beside the old ones, and the
        # next gc copies one of them first). It is the new pack now, and stays.
        for name in [n for n in repack + drop if n not in made]:
            objects.forget(name)
            for ext in (".idx", ".pack"):  # the index first: it is what makes a pack visible
                src = pack_dir / f"pack-{name}{ext}"
                dst = trash / src.name
                os.replace(src, dst)
                os.utime(dst)  # the grace period of the trash starts now
                report.trashed.append(dst.relative_to(store.root).as_posix())
            fsync_dir(pack_dir)
        fsync_dir(trash)
    # second phase: what earlier runs (or this one, with a grace period of 0) left behind
    cutoff = time.time() - grace
    if trash.is_dir():
        for p in sorted(trash.iterdir()):
            if _older(p, cutoff):
                _delete(p, report, store.root)
    for p in sorted(store.root.joinpath("tmp").iterdir()):
        if p.is_dir() and not p.is_symlink():  # a killed status's scratch store, and the like
            if _tree_older(p, cutoff):
                _delete_tree(p, report, store.root)
        elif _older(p, cutoff) and p.is_file():
            _delete(p, report, store.root)
    for p in stale_temporary_files(store.root):  # MERGE_HEAD.tmp and the like, of killed writers
        if _older(p, cutoff):
            _delete(p, report, store.root)
    indexed = {f"pack-{n}.pack" for n in objects.pack_names()}
    for p in sorted(pack_dir.glob("pack-*.pack")):
        if p.name not in indexed and not p.with_suffix(".idx").exists() and _older(p, cutoff):
            _delete(p, report, store.root)
    report.packs_after, report.bytes_after = _pack_dir_state(pack_dir)
    report.objects_after = sum(objects.index(n).count for n in objects.pack_names())
    report.seconds = time.monotonic() - started
    return report


def _repack(objects: DiskObjectStore, names: list[str], marks: Marks, report: GcReport) -> set[str]:
    """Copy the live objects of ``names`` into new packs and publish them; their names."""
    columns = [objects.index(name).prefix_column() for name in names]
    # The same object in two of these packs (or twice in one) is copied once: only ids whose
    # prefix occurs more than once are remembered, not every id copied.
    twice = repeated_prefixes(columns)
    seen: set[bytes] = set()
    with objects.writer() as w:
        for name, column in zip(names, columns, strict=True):
            idx = objects.index(name)
            rd = objects.pack_reader(name)
            live = marks.hits(column)
            prefix_of = [0] * idx.count
            for p, ordinal in idx.iter_sorted():
                prefix_of[ordinal] = p
            for ordinal, entry in rd.iter_entries():
                prefix = prefix_of[ordinal]
                if prefix not in live:
                    report.objects_dropped += 1
                    continue
                full, _depth = objects.resolve_entry(name, entry)
                oid = hashlib.sha256(full).digest()
                if _prefix(oid) != prefix:
                    raise CorruptError(
                        f"pack {name[:16]}: object {ordinal} does not match its index",
                        hint="run `snap verify --repair`, then gc",
                    )
                if prefix in twice:
                    if oid in seen:  # one copy is enough
                        report.objects_dropped += 1
                        continue
                    seen.add(oid)
                if entry_kind(entry) == DELTA and entry_base(entry) not in marks:
                    entry = full_entry(full[0], full[1:])  # its base goes: store it whole
                w.add_raw(oid, entry)
    return set(w.published)
