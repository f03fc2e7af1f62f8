"""``verify``: check that the store is whole, and say exactly what is not.

Every problem is collected, none stops the check (like restic's ``check``). By default:

* every index parses, its checksum holds, its prefixes are sorted and its fanout agrees, and
  its pack is there with the same object count;
* every ref under ``refs/`` and every reflog line parses and names an existing commit (or tag),
  and so do the commits of an unfinished merge (``MERGE_HEAD``): all that gc keeps;
* every object reachable from a ref or a reflog entry exists: commits, snapshot trees, tables,
  schemas and tree nodes are read and decoded; records are looked up in the indexes (shared
  subtrees are walked once).

With ``read_data``, every pack is also read front to back: its checksum, each block's crc32,
every object decompressed (deltas resolved), re-hashed against the index, and re-encoded to the
same canonical bytes.
"""

from __future__ import annotations

import hashlib
import os
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice
from operator import le
from pathlib import Path

from snapgit.encoding import decode_row, encode_row
from snapgit.errors import CorruptError, NotFoundError, SnapError
from snapgit.forked import aside
from snapgit.objects import ObjType, Tag, decode_schema
from snapgit.ops.gc import merge_head_commits
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.store.objectstore import ObjectStore
from snapgit.store.pack import DELTA, MAX_DELTA_DEPTH, PackReader, entry_base, entry_kind
from snapgit.store.packindex import IndexReader
from snapgit.store.refs import ZERO
from snapgit.tree.prolly import load_node

__all__ = ["Problem", "VerifyReport", "verify_store"]


@dataclass
class Problem:
    what: str  # "index", "pack", "ref", "reflog", "merge", "object"
    where: str  # file, ref or object id
    message: str
    commits: list[str] = field(default_factory=list)
    table: str | None = None

    def to_json(self) -> dict:
        return {
            "what": self.what,
            "where": self.where,
            "message": self.message,
            "commits": self.commits,
            "table": self.table,
        }

    def describe(self) -> str:
        extra = ""
        if self.table:
            extra += f" (table {self.table})"
        if self.commits:
            extra += f" (in commit {', '.join(c[:12] for c in self.commits[:3])})"
        return f"{self.what} {self.where}: {self.message}{extra}"


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)  # leftovers of interrupted writes: harmless
    repairs: list[str] = field(default_factory=list)  # what `verify --repair` did first
    packs: int = 0
    objects_indexed: int = 0
    commits: int = 0
    nodes: int = 0
    records_checked: int = 0
    objects_read: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_indexes(store, report: VerifyReport) -> None:
    pack_dir: Path = store.objects.pack_dir
    idx_names = sorted(p for p in pack_dir.iterdir() if p.name.endswith(".idx"))
    pack_names = {p.name[:-5] for p in pack_dir.iterdir() if p.name.endswith(".pack")}
    for path in idx_names:
        stem = path.name[:-4]
        report.packs += 1
        try:
            idx = IndexReader(path)
        except CorruptError as exc:
            report.problems.append(Problem("index", path.name, str(exc)))
            continue
        try:
            report.objects_indexed += idx.count
            if not idx.checksum_ok():
                report.problems.append(Problem("index", path.name, "checksum does not match its content"))
            prefixes = idx.prefixes
            if not all(map(le, prefixes, islice(prefixes, 1, None))):
                report.problems.append(Problem("index", path.name, "ids are not sorted"))
            running = 0
            for b in range(256):
                running = bisect_right(prefixes, ((b + 1) << 56) - 1) if b < 255 else idx.count
                if idx.fanout[b] != running:
                    report.problems.append(
                        Problem("index", path.name, f"fanout[{b}] is {idx.fanout[b]}, expected {running}")
                    )
                    break
            if idx.pack_name != stem.removeprefix("pack-"):
                report.problems.append(Problem("index", path.name, "names another pack than its file name"))
            if stem not in pack_names:
                report.problems.append(Problem("pack", f"{stem}.pack", "missing (its index is present)"))
            else:
                try:
                    rd = PackReader(pack_dir / f"{stem}.pack")
                    if rd.count != idx.count:
                        report.problems.append(
                            Problem("pack", f"{stem}.pack", f"holds {rd.count} objects, its index {idx.count}")
                        )
                    rd.close()
                except CorruptError as exc:
                    report.problems.append(Problem("pack", f"{stem}.pack", str(exc)))
        finally:
            idx.close()
    for stem in sorted(pack_names - {p.name[:-4] for p in idx_names}):
        # a writer killed between publishing a pack and its index: nothing refers to it
        report.garbage.append(f"{stem}.pack (no index: left by an interrupted write)")
    tmp = store.root / "tmp"
    if tmp.is_dir():
        report.garbage.extend(f"tmp/{p.name}" for p in sorted(tmp.iterdir()))


def _roots(store, report: VerifyReport) -> dict[bytes, list[str]]:
    """Commit (or tag) ids named by refs and reflogs, with the names that name them."""
    named: dict[bytes, list[str]] = {}
    refs = store.refs
    try:
        head = refs.read("HEAD")
        if head:
            named.setdefault(bytes.fromhex(head), []).append("HEAD")
        elif (branch := refs.read_symbolic("HEAD")) and refs.list("refs/heads"):
            # Only a new store has a HEAD on a branch without commits, and it has no branch at all.
            report.problems.append(Problem("ref", "HEAD", f"names branch {branch}, which does not exist"))
    except SnapError as exc:
        report.problems.append(Problem("ref", "HEAD", str(exc)))
    # Every ref gc keeps: all of refs/ (heads, tags, snap, imports, ...), not only the familiar ones.
    base = store.root / "refs"
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if not p.is_file() or p.name.endswith(".lock"):
                continue
            name = p.relative_to(store.root).as_posix()
            try:
                value = refs.read(name)
            except SnapError as exc:
                report.problems.append(Problem("ref", name, str(exc)))
                continue
            if value:
                named.setdefault(bytes.fromhex(value), []).append(name)
    logs = store.root / "logs"
    if logs.is_dir():
        for p in sorted(logs.rglob("*")):
            if not p.is_file():
                continue
            if p.name.endswith(".expire"):  # as gc: the temporary file of a reflog being expired
                report.garbage.append(f"logs/{p.relative_to(logs).as_posix()} (left by an interrupted gc)")
                continue
            name = p.relative_to(logs).as_posix()
            try:
                for entry in refs.reflog(name):
                    for v in (entry.old, entry.new):
                        if v != ZERO:
                            named.setdefault(bytes.fromhex(v), []).append(f"reflog of {name}")
            except SnapError as exc:
                report.problems.append(Problem("reflog", name, str(exc)))
    try:
        for side, oid in merge_head_commits(store).items():
            named.setdefault(oid, []).append(f"MERGE_HEAD ({side})")
    except CorruptError as exc:
        report.problems.append(Problem("merge", "MERGE_HEAD", f"{exc.message}; {exc.hint}"))
    return named


_NONE_MISSING: frozenset[bytes] = frozenset()


class _CheckedLeaves:
    """Which records of each leaf are missing, looking up only those its delta base lacks.

    A leaf stored as a delta shares most records with its base, the version of the leaf before
    it (snapgit.store.objectstore chains them): once the base's records are accounted for, a
    leaf's are accounted for by looking up those the base does not have. The base is accounted
    for the same way, down its chain (at most MAX_DELTA_DEPTH links) to a leaf already
    accounted for or one stored whole. A base may belong to no kept commit (gc keeps it as a
    base only, without its records): its missing records are a problem only for a leaf that
    has them, so a leaf's missing records are those of its base it still has, and its own.

    Only the missing records are remembered (almost always none), for the last ``cap`` leaves
    (a leaf forgotten is accounted for again); remembering every record id of the store held
    700 MB at 4M records."""

    def __init__(self, objects: ObjectStore, report: VerifyReport, cap: int = 1 << 18) -> None:
        self.objects = objects
        self.report = report
        self.cap = cap
        self._missing: OrderedDict[bytes, frozenset[bytes]] = OrderedDict()

    def missing(self, nid: bytes, ids: list[bytes], links: int = 0) -> frozenset[bytes]:
        """The records of the leaf ``nid`` (its record ids ``ids``) the store lacks."""
        got = self._missing.get(nid)
        if got is not None:
            self._missing.move_to_end(nid)
            return got
        base: bytes | None = None
        base_ids: list[bytes] | None = None
        base_missing = _NONE_MISSING
        try:
            base = self.objects.delta_base(nid) if links <= MAX_DELTA_DEPTH else None
            if base is not None:
                base_ids = load_node(self.objects, base).ids
        except (NotFoundError, CorruptError):
            base_ids = None
        if base is not None and base_ids is not None:
            base_missing = self.missing(base, base_ids, links + 1)
        known = set(base_ids) if base_ids is not None else set()
        might_contain = self.objects.might_contain
        found = [rid for rid in ids if rid in base_missing]
        new = [rid for rid in ids if rid not in known]
        self.report.records_checked += len(new)
        found.extend(rid for rid in new if not might_contain(rid))
        missing = frozenset(found) if found else _NONE_MISSING
        self._missing[nid] = missing
        if len(self._missing) > self.cap:
            self._missing.popitem(last=False)
        return missing


def _walk(store, report: VerifyReport, named: dict[bytes, list[str]]) -> None:
    objects = store.objects
    seen_commits: set[bytes] = set()
    seen_nodes: set[bytes] = set()
    seen_meta: set[bytes] = set()
    checked = _CheckedLeaves(objects, report)
    stack = [(oid, names[0]) for oid, names in named.items()]
    while stack:
        oid, via = stack.pop()
        if oid in seen_commits:
            continue
        seen_commits.add(oid)
        try:
            otype, data = objects.get(oid)
            if otype == ObjType.TAG:
                stack.append((Tag.decode(data).target, via))
                continue
            commit = read_commit(objects, oid)
        except (NotFoundError, CorruptError) as exc:
            report.problems.append(Problem("object", oid.hex(), f"commit named by {via}: {exc}"))
            continue
        report.commits += 1
        for p in commit.parents:
            stack.append((p, via))
        chex = oid.hex()
        try:
            if commit.tree in seen_meta:
                continue
            seen_meta.add(commit.tree)
            root = read_root(objects, commit.tree)
        except (NotFoundError, CorruptError) as exc:
            report.problems.append(Problem("object", commit.tree.hex(), f"snapshot tree: {exc}", [chex]))
            continue
        for table, tid in sorted(root.tables.items()):
            if tid in seen_meta:
                continue
            seen_meta.add(tid)
            try:
                entry = read_table(objects, tid)
                if entry.schema not in seen_meta:
                    seen_meta.add(entry.schema)
                    otype, data = objects.get(entry.schema)
                    decode_schema(data)
            except (NotFoundError, CorruptError) as exc:
                report.problems.append(Problem("object", tid.hex(), str(exc), [chex], table))
                continue
            nodes = [entry.root]
            while nodes:
                nid = nodes.pop()
                if nid in seen_nodes:
                    continue
                seen_nodes.add(nid)
                try:
                    node = load_node(objects, nid)
                except (NotFoundError, CorruptError) as exc:
                    report.problems.append(Problem("object", nid.hex(), f"tree node: {exc}", [chex], table))
                    continue
                report.nodes += 1
                if node.level:
                    nodes.extend(node.ids)
                    continue
                for rid in sorted(checked.missing(nid, node.ids)):
                    report.problems.append(Problem("object", rid.hex(), "record missing", [chex], table))


def _read_data(store, report: VerifyReport) -> None:
    """Every pack read front to back. Reading is decompressing, resolving and hashing every
    object, all on one core: with a second one, a forked process reads about half of the bytes
    (the biggest packs dealt out in turn to whichever side has fewer) and sends its findings
    back, which are reported in pack order as one process reports them. If it fails, its packs
    are read here."""
    paths = sorted(p for p in store.objects.pack_dir.iterdir() if p.name.endswith(".pack"))
    sizes = {p: _size_of(p) for p in paths}
    theirs: list[Path] = []
    if (
        sum(sizes.values()) >= _SHARED_BYTES
        and len(paths) > 1
        and (os.cpu_count() or 1) > 1
        and os.environ.get("SNAP_WORKERS") != "0"
    ):
        loads = [0, 0]
        for p in sorted(paths, key=lambda p: (-sizes[p], p.name)):
            side = 0 if loads[0] <= loads[1] else 1
            loads[side] += sizes[p]
            if side:
                theirs.append(p)
    apart = set(theirs)
    mine = [p for p in paths if p not in apart]
    found: dict[Path, VerifyReport] = {}
    if theirs:
        with aside(lambda: _read_packs(store, theirs)) as result:
            found.update(_read_packs(store, mine))
            got = result()
        found.update(got if got is not None else _read_packs(store, theirs))
    else:
        found.update(_read_packs(store, mine))
    for p in paths:
        one = found[p]
        report.bytes_read += one.bytes_read
        report.objects_read += one.objects_read
        report.problems += one.problems
        report.garbage += one.garbage


# bytes of packs from which a second process reads half (a fork costs 10-20 ms)
_SHARED_BYTES = 32 * 1024 * 1024


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_packs(store, paths: list[Path]) -> dict[Path, VerifyReport]:
    out = {}
    for path in paths:
        out[path] = one = VerifyReport()
        _read_pack(store.objects, path, one)
    return out


def _read_pack(objects, path: Path, report: VerifyReport) -> None:
    try:
        rd = PackReader(path)
    except CorruptError as exc:
        report.problems.append(Problem("pack", path.name, str(exc)))
        return
    try:
        report.bytes_read += rd.size
        if not rd.checksum_ok():
            report.problems.append(Problem("pack", path.name, "checksum does not match its content (damaged)"))
        idx_path = path.with_suffix(".idx")
        idx = IndexReader(idx_path) if idx_path.exists() else None
        try:
            for ordinal, entry in rd.iter_entries():
                report.objects_read += 1
                try:
                    full, _depth = objects.resolve_entry(rd.name, entry)
                except (CorruptError, NotFoundError) as exc:
                    gone = _gone_link(objects, entry_base(entry)) if entry_kind(entry) == DELTA else None
                    if gone is not None:
                        # A link of its chain is gone, so it cannot be reachable: the walk
                        # above reads every reachable node and would have found that. A gc
                        # killed between moving two old packs away leaves such objects.
                        report.garbage.append(
                            f"{path.name}#{ordinal}: a delta whose chain needs {gone.hex()[:16]}, "
                            "which is gone (unreachable)"
                        )
                        continue
                    report.problems.append(Problem("object", f"{path.name}#{ordinal}", str(exc)))
                    continue
                oid = hashlib.sha256(full).digest()
                if idx is not None and ordinal not in idx.candidates(oid, mapped=True):
                    report.problems.append(
                        Problem("object", oid.hex(), f"in {path.name} at {ordinal}, but its index disagrees")
                    )
                if full[0] == ObjType.RECORD:
                    try:
                        if encode_row(decode_row(full[1:])) != full[1:]:
                            report.problems.append(
                                Problem("object", oid.hex(), "record does not re-encode to the same bytes")
                            )
                    except CorruptError as exc:
                        report.problems.append(Problem("object", oid.hex(), exc.message))
                    except SnapError as exc:
                        report.problems.append(Problem("object", oid.hex(), f"record does not decode: {exc}"))
        finally:
            if idx is not None:
                idx.close()
    except CorruptError as exc:
        report.problems.append(Problem("pack", path.name, str(exc)))
    finally:
        rd.close()


def _gone_link(objects, base: bytes) -> bytes | None:
    """The first link under a delta (its base, the base's bases, ...) that no pack holds, or
    None when every link is there (the delta is damaged some other way)."""
    todo, seen = [base], set()
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        if not objects.might_contain(oid):
            return oid
        try:
            todo.extend(objects.stored_bases(oid))
        except CorruptError:
            pass  # a damaged link is there: not gone
    return None


def verify_store(store, *, read_data: bool = False) -> VerifyReport:
    report = VerifyReport()
    _check_indexes(store, report)
    named = _roots(store, report)
    _walk(store, report, named)
    if read_data:
        _read_data(store, report)
    return report
