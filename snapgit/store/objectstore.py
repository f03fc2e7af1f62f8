"""Object stores: where objects live, by id. A disk store of packs and an in-memory twin.

Both keep the same promises, held by one contract test suite (tests/test_objectstore.py):

* ``get(oid)`` returns ``(type, data)`` whose hash is ``oid``, or raises ``NotFoundError``
  (absent) or ``CorruptError`` (present but damaged); it never returns wrong bytes.
* objects become readable only when the writer that added them commits; a writer that aborts,
  or a process that dies, leaves nothing readable behind (only a temporary file that gc removes).
* a writer may store an object as a delta against another object it names (a tree node against
  the node it replaces); readers never see the difference.

The disk store publishes a pack in git's order: the pack is written to ``tmp/``, fsynced and
renamed into ``objects/pack/``; then its index is written, fsynced and renamed; the index is what
makes the pack visible. A reader lists indexes, so it sees whole packs or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import tempfile
import weakref
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import zstandard as zstd

from snapgit import native
from snapgit.errors import CorruptError, DiskFullError, MissingObjectError, NotFoundError
from snapgit.forked import end, fork, send_batched
from snapgit.store.pack import (
    DELTA,
    FULL,
    MAX_DELTA_DEPTH,
    BlockCache,
    DeltaDecoder,
    DeltaError,
    PackReader,
    PackWriter,
    delta_encode,
    delta_entry,
    entry_base,
    entry_depth,
    entry_frame,
    entry_full,
    entry_in,
    entry_kind,
    entry_type,
    fsync_dir,
    full_entry,
)
from snapgit.store.packindex import IndexReader, build_index_joined

__all__ = [
    "ObjectReader",
    "ObjectStore",
    "ObjectWriter",
    "DiskObjectStore",
    "DiskWriter",
    "MemoryObjectStore",
    "OverlayObjectStore",
    "MEMORY_PACK",
    "ReadCursor",
    "read_ahead",
    "read_cursor",
    "scratch_store",
]

# A pack is sealed at this many objects: its id list and the sort that builds its index are the
# peak of a big commit's memory (a scale-10 commit peaks at 105 MB with 128K, 121 MB with 256K).
PACK_MAX_OBJECTS = 128 * 1024
PACK_MAX_BYTES = 64 * 1024 * 1024
_RECORD = 1  # the object type of records (objects.ObjType.RECORD, a layer above)
# The name the memory store gives the one "pack" its objects are in (pack_names, iter_objects).
MEMORY_PACK = "memory"


@runtime_checkable
class ObjectReader(Protocol):
    """Reading objects by id: what every layer above the store needs."""

    def get(self, oid: bytes) -> tuple[int, bytes]:
        """(type, data) whose hash is ``oid``; NotFoundError when absent, CorruptError when damaged."""
        ...

    def get_many(self, oids: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """``[get(oid) for oid in oids]``, faster for bulk reads."""
        ...

    def contains(self, oid: bytes) -> bool:
        """Whether ``get(oid)`` would find the object (it may still be damaged)."""
        ...


@runtime_checkable
class ObjectWriter(Protocol):
    """Adding objects: nothing added is readable until :meth:`commit`, and nothing of it ever
    after :meth:`abort`. As a context manager, commits when the block ends cleanly."""

    def add(self, otype: int, data: bytes, oid: bytes | None = None) -> bytes: ...

    def add_full_many(self, otype: int, oids: list[bytes], datas: list[bytes]) -> None: ...

    def add_delta(self, otype: int, data: bytes, oid: bytes, base: bytes) -> bytes: ...

    def deferred(self, otype: int, data: bytes, oid: bytes, base: bytes | None) -> tuple[Callable[[], None], int]: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...

    def seal(self, min_objects: int = 0) -> None: ...

    def __enter__(self) -> ObjectWriter: ...

    def __exit__(self, exc_type, exc, tb) -> None: ...


@runtime_checkable
class ObjectStore(ObjectReader, Protocol):
    """Everything callers do with a store, whichever it is (disk, memory, overlay): the contract
    suite in tests/test_objectstore.py holds the disk and memory stores to it. The disk store
    has more (packs, indexes, raw entries) for gc, verify and repair, which only run on it."""

    def might_contain(self, oid: bytes) -> bool:
        """False only when the store has no object with this id (no read: an 8-byte prefix
        match is all a True promises)."""
        ...

    def might_contain_many(self, oids: Sequence[bytes]) -> list[bool]:
        """``might_contain`` of each id, for a batch."""
        ...

    def get_depth(self, oid: bytes) -> int:
        """How many deltas deep the object is stored (0: whole); NotFoundError when absent."""
        ...

    def delta_base(self, oid: bytes) -> bytes | None:
        """The object ``oid`` is stored as a delta against, None when stored whole;
        NotFoundError when absent."""
        ...

    def find_prefix(self, hex_prefix: str) -> list[bytes]:
        """The ids, sorted, of the objects whose hex id starts with ``hex_prefix``."""
        ...

    def iter_objects(self) -> Iterable[tuple[str, bytes, int, bytes]]:
        """Every stored object: (pack name, id, type, data)."""
        ...

    def pack_names(self) -> list[str]:
        """The packs objects are read from; empty for a store with no object yet (nothing to
        probe for, a commit knows)."""
        ...

    def refresh(self) -> None:
        """Pick up what other processes published since."""
        ...

    def writer(self) -> ObjectWriter: ...

    def block_budget(self, budget: int) -> contextlib.AbstractContextManager[None]:
        """Hold at most ``budget`` bytes of decompressed blocks meanwhile."""
        ...

    def mapped_lookups(self) -> contextlib.AbstractContextManager[None]:
        """Look objects up in a way made for reading every object of the store, meanwhile."""
        ...

    def close(self) -> None: ...


# a delta chain walked: (the root's full bytes, in a raw zstd frame where the C walk read frames
# too, the frames from the object down, the ids read, the packs they were in, the object's
# depth, the root's id); see DiskObjectStore._walk
_Walked = tuple[bytes, list[Any], list[bytes], list[str], int, bytes]
_IN_PYTHON = object()  # the C walk cannot answer this one: the walk in Python does
# walks the C extension starts again for one object, each after loading what it asked for
_WALK_ASKS = 2 * (MAX_DELTA_DEPTH + 1) + 4


def _worth_delta(full: bytes, delta: bytes) -> bool:
    # The full entry will be compressed in its block anyway; a delta has to beat that clearly.
    return len(delta) + 40 < len(full) // 3


# How a node's delta base is chosen (docs/format.md, "Delta chains", says why with figures):
# against the node it replaces (the parent commit's), so that a version costs what changed in
# it, in chains at most MAX_DELTA_DEPTH deep. A full chain restarts from an intermediate
# snapshot: a delta against one of the chain's first SNAPSHOT_LEVELS nodes, the deepest that
# is small enough (at most the full bytes >> its new depth, as Mercurial's sparse revlog), or
# else a whole node. One base in EARLY_RESTART, chosen by its id, has the node that replaces it
# restart before the chain is full: the leaves of a table, all written by one first commit, would
# otherwise all fill their chains, and all restart, in the same commit. Chosen by the base's id,
# not the new node's, so that whoever reads the base knows whether its snapshots will be wanted
# (the read-ahead process sends them along).
SNAPSHOT_LEVELS = 4
EARLY_RESTART = 10


def restarts(base: bytes, depth: int) -> bool:
    """Whether a node replacing ``base``, which is stored ``depth`` deltas deep, restarts the
    chain from one of its snapshots instead of being a delta against ``base``."""
    return depth >= MAX_DELTA_DEPTH or (depth >= SNAPSHOT_LEVELS and base[-1] % EARLY_RESTART == 0)


class _WriterBase:
    """Shared delta logic: the base must be readable (committed) or added by this writer."""

    def __init__(self, store: DiskObjectStore | MemoryObjectStore) -> None:
        self._store = store
        # The last few non-record objects added, so that a delta may name a base this writer has
        # not published yet: id -> (full bytes, depth, the base it is a delta against). Bounded: a
        # big commit writes many nodes, all of them deltas against the parent's (published) nodes.
        self._pending_full: OrderedDict[bytes, tuple[bytes, int, bytes | None]] = OrderedDict()

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def seal(self, min_objects: int = 0) -> None:
        """Finish the pack being written (its index included) now, not at commit, if it holds
        at least ``min_objects``: what is added next goes into a new one. For a writer that
        can do it while others work."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Commit when the block ends cleanly, abort on any exception (one in commit included).
        A full disk becomes :class:`DiskFullError`."""
        if exc_type is None:
            try:
                self.commit()
            except BaseException as failed:
                self.abort()
                full = DiskFullError.of(failed, self._what())
                if full is not None:
                    raise full from failed
                raise
        else:
            self.abort()
            full = DiskFullError.of(exc, self._what())
            if full is not None:
                raise full from exc

    def _what(self) -> str:
        return "objects"

    def _remember(self, oid: bytes, full: bytes, depth: int, base: bytes | None) -> None:
        self._pending_full[oid] = (full, depth, base)
        if len(self._pending_full) > 64:
            self._pending_full.popitem(last=False)

    def _base(self, base: bytes) -> tuple[bytes, int] | None:
        got = self._pending_full.get(base)
        if got is not None:
            return got[0], got[1]
        try:
            t, data = self._store.get(base)
        except NotFoundError:
            return None
        return bytes((t,)) + data, self._store.get_depth(base)

    def _base_of(self, oid: bytes) -> bytes | None:
        got = self._pending_full.get(oid)
        if got is not None:
            return got[2]
        try:
            return self._store.delta_base(oid)
        except NotFoundError:
            return None

    def _chain(self, base: bytes, depth: int) -> list[bytes]:
        """``base`` and the objects its delta chain goes through, shallowest first (the whole
        object at its root first); fewer when a link cannot be read."""
        chain = [base]
        for _ in range(depth):
            parent = self._base_of(chain[-1])
            if parent is None:
                break
            chain.append(parent)
        chain.reverse()
        return chain

    def _encode_delta(self, otype: int, data: bytes, oid: bytes, base: bytes) -> tuple[bytes, int] | None:
        if oid == base or oid in self._pending_full:
            return None  # a delta against itself, or a copy of what its chain holds: a loop
        got = self._base(base)
        if got is None:
            return None
        base_full, base_depth = got
        full = bytes((otype,)) + data
        if not restarts(base, base_depth):
            frame = delta_encode(base_full, full)
            if not _worth_delta(full, frame):
                return None
            return delta_entry(otype, base_depth + 1, base, frame), base_depth + 1
        chain = self._chain(base, base_depth)
        for snapshot in reversed(chain[:SNAPSHOT_LEVELS]):
            got = self._base(snapshot)
            if got is None:
                continue
            snap_full, snap_depth = got
            if snap_depth >= SNAPSHOT_LEVELS:  # a chain of other depths than it says: no snapshot
                continue
            frame = delta_encode(snap_full, full)
            if len(frame) <= len(full) >> (snap_depth + 1) and _worth_delta(full, frame):
                return delta_entry(otype, snap_depth + 1, snapshot, frame), snap_depth + 1
        return None


# --- disk -----------------------------------------------------------------------------------


def _lane(otype: int) -> int:
    # Records in blocks of their own, nodes and metadata in others: a commit after a change
    # reads the parent's leaves, and a block of leaves holds a dozen of them, where a block
    # written in key order beside their rows held two.
    return 0 if otype == _RECORD else 1


class DiskWriter(_WriterBase):
    """The disk store's writer: objects go to packs in ``tmp/``, published by :meth:`commit`.
    Beyond the :class:`ObjectWriter` protocol, :meth:`add_raw` copies entries as stored."""

    def __init__(self, store: DiskObjectStore) -> None:
        super().__init__(store)
        self._disk = store
        self._pack: PackWriter | None = None
        self._sealed: list[tuple[Path, str, Path]] = []  # tmp pack, pack name, tmp index
        self._done = False
        # The names of the packs commit() published. A pack's name is the hash of its bytes, so one
        # may be the name of a pack there before (gc copying a pack's objects as they were).
        self.published: list[str] = []

    @property
    def store(self) -> DiskObjectStore:
        """The store this writer publishes into."""
        return self._disk

    def _current(self) -> PackWriter:
        if self._pack is None:
            tmp = self._disk.tmp_dir / f"pack-{os.urandom(8).hex()}.tmp"
            self._pack = PackWriter(tmp)
        return self._pack

    def _maybe_seal(self) -> None:
        p = self._pack
        if p is not None and (p.count >= PACK_MAX_OBJECTS or p.bytes_written >= PACK_MAX_BYTES):
            self._seal()

    def _seal(self) -> None:
        p = self._pack
        if p is None:
            return
        self._pack = None
        if p.count == 0:
            p.abort()
            return
        itmp = None
        try:
            name = p.finish()
            # The index goes to disk now, not at commit: a big commit seals many packs, and their
            # indexes should not wait in memory.
            itmp = self._disk.tmp_dir / f"pack-{name}.idx.tmp"
            with open(itmp, "wb") as f:
                f.write(build_index_joined(name, p.id_bytes))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            # a failed seal (a full disk) leaves no temporary file behind to fill it further
            p.abort()
            if itmp is not None:
                itmp.unlink(missing_ok=True)
            raise
        self._sealed.append((p.path, name, itmp))

    def seal(self, min_objects: int = 0) -> None:
        if self._pack is not None and self._pack.count >= min_objects:
            self._seal()

    def _what(self) -> str:
        return f"objects to {self._disk.tmp_dir}"

    def add(self, otype: int, data: bytes, oid: bytes | None = None) -> bytes:
        if oid is None:
            oid = hashlib.sha256(bytes((otype,)) + data).digest()
        self._current().add(oid, full_entry(otype, data), _lane(otype))
        if otype != _RECORD:
            self._remember(oid, bytes((otype,)) + data, 0, None)
        self._maybe_seal()
        return oid

    def add_full_many(self, otype: int, oids: list[bytes], datas: list[bytes]) -> None:
        prefix = full_entry(otype)
        step = PACK_MAX_OBJECTS
        for i in range(0, len(oids), step):
            self._current().add_run(prefix, oids[i : i + step], datas[i : i + step], _lane(otype))
            self._maybe_seal()

    def add_raw(self, oid: bytes, entry: bytes) -> None:
        """Copy an entry as it is stored (FULL or DELTA, kind byte first): gc's repack."""
        self._current().add(oid, entry, _lane(entry_type(entry)))
        self._maybe_seal()

    def deferred(self, otype: int, data: bytes, oid: bytes, base: bytes | None) -> tuple[Callable[[], None], int]:
        """``add_delta`` (``add`` without a base) in two steps: the entry is made now, while
        ``data`` is at hand, and added when the function returned is called, or never. With
        the function, the bytes it holds.

        A commit holds such entries until it has probed the store for them in a batch; an
        entry is a delta of a few hundred bytes where its node is kilobytes. It is not
        remembered as a base for later deltas: it may never be added, and the store's copy
        may have another depth."""
        enc = self._encode_delta(otype, data, oid, base) if base is not None else None
        entry = full_entry(otype, data) if enc is None else enc[0]
        del data

        def add() -> None:
            self._current().add(oid, entry, _lane(otype))
            self._maybe_seal()

        return add, len(entry)

    def add_delta(self, otype: int, data: bytes, oid: bytes, base: bytes) -> bytes:
        # An object this store has (a version come back) is not stored again: its copy may be
        # in its base's chain, and a second copy of another depth would make the depth a delta
        # against it records differ from the chain a reader resolves. (A commit probes for its
        # deferred entries likewise, and never adds the stored ones.)
        if oid in self._pending_full or (self._store.might_contain(oid) and self._store.contains(oid)):
            return oid
        enc = self._encode_delta(otype, data, oid, base)
        if enc is None:
            return self.add(otype, data, oid)
        entry, depth = enc
        self._current().add(oid, entry, _lane(otype))
        self._remember(oid, bytes((otype,)) + data, depth, entry_base(entry))
        self._maybe_seal()
        return oid

    def commit(self) -> None:
        """Seal the open pack and publish every pack: pack file first, then its index."""
        if self._done:
            return
        self._seal()
        pack_dir = self._disk.pack_dir
        try:
            for tmp, name, _itmp in self._sealed:
                final = pack_dir / f"pack-{name}.pack"
                os.replace(tmp, final)
                os.chmod(final, 0o400)
            fsync_dir(pack_dir)
            for _tmp, name, itmp in self._sealed:
                final = pack_dir / f"pack-{name}.idx"
                os.replace(itmp, final)
                os.chmod(final, 0o400)
            fsync_dir(pack_dir)
            self.published = [name for _tmp, name, _itmp in self._sealed]
        finally:
            self._done = True
            self._pending_full.clear()
        self._disk.refresh()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._pack is not None:
            self._pack.abort()
            self._pack = None
        for tmp, _name, itmp in self._sealed:
            for path in (tmp, itmp):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        self._pending_full.clear()


class DiskObjectStore:
    """Packs and their indexes under ``objects/pack``; temporary files under ``tmp``.

    ``also``: the roots of other stores whose packs are read too, never written (as git's
    alternates): a scratch store over the real one (:func:`scratch_store`) writes its own packs
    and reads, and deltas against, the real store's."""

    def __init__(self, root: Path, block_budget: int | None = None, also: Sequence[Path] = ()) -> None:
        self.root = root
        self.also = tuple(also)
        self._budget = block_budget
        self.pack_dir = root / "objects" / "pack"
        self.trash_dir = root / "objects" / "trash"
        self.tmp_dir = root / "tmp"
        # where each pack read is (its store's objects/ directory), by pack name
        self._dirs: dict[str, Path] = {}
        self._packs: dict[str, tuple[IndexReader, PackReader | None]] = {}
        self._order: list[str] = []
        self._full_cache: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self._deltas = DeltaDecoder()
        self._blocks = BlockCache() if block_budget is None else BlockCache(block_budget)
        # The packs in the order look-ups try them: the one that answered last first. Neighbours
        # in key order were mostly written together, but a parallel commit writes neighbouring
        # key ranges into different packs: with one "last pack" remembered, a look-up that
        # alternates between two packs tried every pack in between.
        self._mru: list[str] = []
        # The same for the bases of deltas: a node stored as a delta and its base are mostly in
        # different packs (the base written commits before), and one order for both made every
        # read of such a node try the other pack first, twice.
        self._base_mru: list[str] = []
        self.generation = 0  # counts changes to the packs read (ReadCursor follows them)
        self._mapped = False  # look-ups through the indexes' maps (mapped_lookups)
        self._walk_c = native.available()  # delta chains walked in C (_walk_in_c)
        self._delta_bases: dict[bytes, bytes] = {}  # object stored as a delta -> its base
        self._last_delta_base: bytes | None = None
        self._base_packs: dict[str, list[str]] = {}  # pack -> the packs the last bases of its deltas were in
        self._found_in: str | None = None  # the pack the last object found was in
        self._check_links = False  # hash every link of a delta chain, not only its end
        self._links: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()  # links read, unchecked
        self._ahead: _Ahead | None = None  # objects a second process reads ahead (read_ahead)
        # indexes that do not parse (pack name -> why): skipped, so the store still opens (and
        # `verify --repair` can rebuild them); an object not found anywhere else is then damage
        self.unreadable: dict[str, str] = {}
        self.refresh()

    # -- discovery

    def reopen(self, block_budget: int | None = None) -> DiskObjectStore:
        """A store of its own over the same packs, for a forked process."""
        return DiskObjectStore(self.root, block_budget, self.also)

    def refresh(self) -> None:
        """Pick up indexes published since the last look (by this or another process)."""
        found: dict[str, Path] = {}
        for root in (*self.also, self.root):  # a pack in both is read from this store's
            objects = root / "objects"
            try:
                names = [p.name for p in (objects / "pack").iterdir() if p.name.endswith(".idx")]
            except FileNotFoundError as exc:
                raise CorruptError(f"object directory {objects / 'pack'} is missing") from exc
            found.update((fname[len("pack-") : -len(".idx")], objects) for fname in names)
        # gc moved these away (their objects are in newer packs, published first)
        for name in [n for n in self._order if n not in found]:
            self.forget(name)
        for name in sorted(found):
            if name not in self._packs:
                self._dirs[name] = found[name]
                try:
                    self._packs[name] = (IndexReader(found[name] / "pack" / f"pack-{name}.idx"), None)
                except CorruptError as exc:
                    # One damaged index must not make the whole store unreadable (verify could not
                    # even report it): its objects are missing, and reading one says why.
                    self.unreadable[name] = str(exc)
                    continue
                self.unreadable.pop(name, None)
                self._order.insert(0, name)
                self._mru.insert(0, name)
                self._base_mru.insert(0, name)
                self.generation += 1

    def pack_names(self) -> list[str]:
        return list(self._order)

    def _reader(self, name: str) -> PackReader:
        idx, rd = self._packs[name]
        if rd is None:
            objects = self._dirs[name]
            path = objects / "pack" / f"pack-{name}.pack"
            if not path.exists():
                # gc moved it to the trash after this process listed its index: the objects are
                # in a new pack too, but this reader still knows them here
                path = objects / "trash" / f"pack-{name}.pack"
            if not path.exists():
                raise CorruptError(f"pack {name[:16]} is missing but its index is present")
            rd = PackReader(path, self._blocks)
            if rd.count != idx.count:
                raise CorruptError(f"pack {name[:16]} holds {rd.count} objects, its index {idx.count}")
            self._packs[name] = (idx, rd)
        return rd

    def _vanished(self) -> bool:
        return any(not (self._dirs[n] / "pack" / f"pack-{n}.idx").exists() for n in self._order)

    def index(self, name: str) -> IndexReader:
        return self._packs[name][0]

    def pack_reader(self, name: str) -> PackReader:
        return self._reader(name)

    def forget(self, name: str) -> None:
        """Stop reading a pack (gc is about to move it away)."""
        idx, rd = self._packs.pop(name)
        self._dirs.pop(name, None)
        self._order.remove(name)
        self._mru.remove(name)
        self._base_mru.remove(name)
        self.generation += 1
        idx.close()
        if rd is not None:
            rd.close()
        self._base_packs = {k: [p for p in v if p != name] for k, v in self._base_packs.items() if k != name}
        self._full_cache.clear()
        self._delta_bases.clear()
        self._links.clear()
        self._deltas.clear()

    def stored_bases(self, oid: bytes) -> list[bytes]:
        """The bases of every copy of ``oid`` stored as a delta (any pack; prefix matches
        included: keeping one base too many is harmless, one too few is not)."""
        out = []
        for name in self._order:
            for ordinal in self._packs[name][0].candidates(oid, self._mapped):
                entry = self._reader(name).entry(ordinal)
                if entry_kind(entry) == DELTA:
                    out.append(entry_base(entry))
        return out

    @contextlib.contextmanager
    def mapped_lookups(self) -> Iterator[None]:
        """Find objects through the indexes' maps meanwhile, not with pread: for a command
        that reads every node of the store (gc), for which the index pages are no matter and
        a read that misses in many packs would cost a system call each."""
        before, self._mapped = self._mapped, True
        try:
            yield
        finally:
            self._mapped = before

    @contextlib.contextmanager
    def block_budget(self, budget: int) -> Iterator[None]:
        """Hold at most ``budget`` bytes of decompressed blocks meanwhile. A read that goes
        through its objects in the order they were written (a commit reading its parent's
        leaves in key order) uses a block of each pack at a time; the default budget is for
        reads that come back to blocks (deltas, verify)."""
        before = self._blocks.budget
        self._blocks.resize(min(budget, before))
        try:
            yield
        finally:
            self._blocks.budget = before

    def close(self) -> None:
        for idx, rd in self._packs.values():
            idx.close()
            if rd is not None:
                rd.close()
        self._packs.clear()
        self._order.clear()
        self._mru.clear()
        self._base_mru.clear()
        self.generation += 1

    # -- reading

    def resolve_entry(self, name: str, entry: bytes) -> tuple[bytes, int]:
        """(full bytes, depth) of a raw entry of pack ``name`` (:meth:`PackReader.entry`): a
        delta is resolved against its base, looked up in every pack. Damage, a base that is
        gone included, raises CorruptError or NotFoundError. Not checked against an id: the
        caller hashes what it gets (verify, gc, repair read packs front to back)."""
        return self._resolve(name, entry)

    def _resolve(self, name: str, entry: bytes, chain: int = 0) -> tuple[bytes, int]:
        kind = entry_kind(entry)
        if kind == FULL:
            return entry_full(entry), 0
        if kind == DELTA:
            depth = entry_depth(entry)
            base = entry_base(entry)
            if chain >= MAX_DELTA_DEPTH:
                raise CorruptError(f"pack {name[:16]}: delta chain longer than {MAX_DELTA_DEPTH} (a loop?)")
            # A chain's links were written by successive commits, each into packs of its own: the
            # pack that held the last base of this pack's deltas is asked first (in most-recently
            # answered order, a chain of depth d asked about d packs a link).
            self._found_in = None
            hints = self._base_packs.get(name)
            base_full, _ = self._find(base, chain=chain + 1, prefer=hints)
            found = self._found_in
            if found is not None:
                self._hint(name, found)
            self._last_delta_base = base
            try:
                full = self._deltas.decompress(base, base_full, entry_frame(entry))
            except (zstd.ZstdError, DeltaError) as exc:
                raise CorruptError(f"pack {name[:16]}: delta does not decompress: {exc}") from exc
            if full[0] != entry_type(entry):
                raise CorruptError(f"pack {name[:16]}: delta resolves to the wrong type")
            return full, depth
        raise CorruptError(f"pack {name[:16]}: unknown entry kind {kind}")

    def _find(
        self,
        oid: bytes,
        retry: bool = True,
        chain: int = 0,
        order: list[str] | None = None,
        prefer: list[str] | None = None,
    ) -> tuple[bytes, int]:
        """``order``: the packs in the order to try them, kept by a :class:`ReadCursor`
        (default: the store's own); ``prefer``: packs to try before them."""
        cached = self._full_cache.get(oid)
        if cached is None and chain and not self._check_links:
            cached = self._links.get(oid)
        if cached is not None:
            return cached
        if not chain and not self._check_links:
            ahead = self._ahead.take(oid) if self._ahead is not None else None
            if ahead is not None:
                return self._took(oid, *ahead)
            got = self._read_chain(oid, self._mru if order is None else order)
            if got is not None:
                return got
        bad: CorruptError | None = None
        if chain:
            order = self._base_mru
        elif order is None:
            order = self._mru
        # lazily: a look-up usually ends in the first pack or two it asks
        rest = order if not prefer else (n for n in order if n not in prefer)
        for name in itertools.chain(prefer or (), rest):
            try:
                found = self._find_in(name, oid, chain, order)
            except CorruptError as exc:
                bad = exc
                continue
            if found is not None:
                return found
        if bad is not None and retry and self._vanished():
            # a pack went away under us (gc with --prune=now): look again in what is there now
            self.refresh()
            return self._find(oid, retry=False, chain=chain)
        if bad is not None:
            raise CorruptError(f"object {oid.hex()} is damaged: {bad}") from bad
        if retry:
            before = len(self._order)
            self.refresh()
            if len(self._order) != before:
                return self._find(oid, retry=False, chain=chain)
        if self.unreadable:
            why = "; ".join(self.unreadable.values())
            raise MissingObjectError(
                f"object {oid.hex()} not found (an index is damaged: {why})",
                hint="run `snap verify --repair` to rebuild the index from its pack",
            )
        raise MissingObjectError(
            f"object {oid.hex()} not found",
            hint="the store is damaged: run `snap verify` to see what is affected",
        )

    def _read_chain(self, oid: bytes, order: list[str]) -> tuple[bytes, int] | None:
        """(full bytes, depth) of ``oid`` by the quick road, or None: the caller then takes the
        careful one (:meth:`_find_in`), which finds the same object or names the damage.

        A node of a table changed by every commit is a delta chain of up to MAX_DELTA_DEPTH
        links, and the careful road resolved one link a call deep, each with its own look-up
        layers and decompression: three quarters of a ``snap status`` after a spread change at
        ten million rows. Here each link is looked up in the packs in the careful road's order
        (the last bases' packs first) and taken when a pack has its prefix alone (in C where the
        extension is built: :meth:`_walk_in_c`); the frames are decompressed in one call, and
        the end is checked by ``oid``, which a wrong link cannot give. Anything else (a prefix
        two objects share, a link not found, an entry that does not parse, a hash that
        differs) is None."""
        in_c = self._walk_in_c(oid, order) if self._walk_c and not self._mapped else _IN_PYTHON
        walked = self._walk(oid, order) if in_c is _IN_PYTHON else cast("_Walked | None", in_c)
        if walked is None:
            return None
        root, frames, ids, found_in, depth, cur = walked
        try:
            full = self._deltas.decompress_chain(root, frames[::-1]) if frames else root
        except (zstd.ZstdError, DeltaError):
            return None
        if hashlib.sha256(full).digest() != oid:
            return None
        # what the careful road would have learnt: where bases were, and each link's base
        if frames:
            for k in range(1, len(found_in)):
                self._hint(found_in[k - 1], found_in[k])
            self._learn_bases((ids[k], ids[k + 1] if k + 1 < len(ids) else cur) for k in range(len(frames)))
        self._found_in = found_in[0]
        if full[0] != _RECORD:  # nodes and metadata are read again and again
            self._keep_full(oid, full, depth)
        return full, depth

    def _walk_in_c(self, oid: bytes, order: list[str]) -> _Walked | None | object:
        """:meth:`_walk` by the C extension (``native.chain_walk``), which walks the links
        through the packs' index descriptors and the block cache; where it needs a pack's
        reader or descriptor opened, or a block read into the cache, that is done here and the
        walk starts again (the links before are in the cache then). _IN_PYTHON when it
        keeps asking (a block cache too small for one chain's blocks) or a descriptor cannot
        be opened: :meth:`_walk` then walks."""
        for _ in range(_WALK_ASKS):
            got = native.chain_walk(
                oid,
                order,
                self._base_mru,
                self._base_packs,
                self._packs,
                self._blocks.by_key,
                self._full_cache,
                self._links,
                MAX_DELTA_DEPTH,
            )
            if got is None:
                return None
            if len(got) == 6:
                found_in = got[3]
                for k, name in enumerate(found_in):  # as the walk in Python moves them
                    mru = order if k == 0 else self._base_mru
                    if mru and mru[0] != name:
                        self._answered(name, mru)
                return got
            ask, name = got[0], got[1]
            try:
                if ask == "block":
                    self._reader(name).load_block(got[2])
                elif ask == "reader":
                    self._reader(name)
                elif self._packs[name][0].descriptor() is None:
                    return _IN_PYTHON
            except CorruptError:
                return None
        return _IN_PYTHON

    def _walk(self, oid: bytes, order: list[str]) -> _Walked | None:
        """The links of ``oid``'s delta chain, read from the packs: (the root's full bytes,
        the frames from ``oid`` down, the ids read, ``oid`` first, the pack each was in,
        ``oid``'s depth, the root's id); None where the careful road must answer."""
        packs = self._packs
        full_cache, links, mapped = self._full_cache, self._links, self._mapped
        frames: list[memoryview] = []
        ids: list[bytes] = []  # the chain's objects read from packs, oid first
        found_in: list[str] = []  # the pack each was found in
        cur = oid
        prefer: list[str] | None = None
        root: bytes | None = None
        depth = 0  # as the entry of oid says
        try:
            for link in range(MAX_DELTA_DEPTH + 1):
                if link:
                    cached = full_cache.get(cur) or links.get(cur)
                    if cached is not None:
                        root = cached[0]
                        break
                block: memoryview | None = None
                ends: list[int] = []
                i = 0
                for name in itertools.chain(prefer, (n for n in order if n not in prefer)) if prefer else order:
                    got = packs.get(name)
                    if got is None:
                        continue
                    ordinal = got[0].sole(cur, mapped)
                    if ordinal == -1:
                        continue
                    if ordinal < 0:  # several objects share the prefix: the careful road
                        return None
                    reader = got[1]
                    block, ends, i = (reader if reader is not None else self._reader(name)).block_at(ordinal)
                    break
                if block is None:
                    return None
                parsed = entry_in(block, ends[i - 1] if i else 0, ends[i])
                if parsed is None:
                    return None
                if order[0] != name:
                    self._answered(name, order)
                ids.append(cur)
                found_in.append(name)
                kind, link_depth, base, rest = parsed
                if kind == FULL:
                    root = bytes(rest)
                    break
                if not link:
                    depth = link_depth
                cur = base
                frames.append(rest)
                prefer = self._base_packs.get(name)
                order = self._base_mru
            else:
                return None
        except CorruptError:
            return None
        return root, frames, ids, found_in, depth, cur

    @contextlib.contextmanager
    def read_ahead(self, oids: Sequence[bytes]) -> Iterator[None]:
        """Meanwhile, a second process reads ``oids`` (tree nodes, in the order this one will
        ask for them) and sends them over, while this one works on what it read before.

        A read of one of them takes what the other process sent (it read and checked the
        object as :meth:`get` does), waiting for it if need be; an object the other process
        could not read (damage, a missing object) or never sent is read here as without read
        ahead, which names the damage. So the answers are the same; only the time differs.
        The other process is forked (it shares what this one has open, and imports nothing), and
        is gone when the block ends."""
        wanted = list(oids)
        if self._ahead is not None or not wanted:
            yield
            return
        ahead = _Ahead(self, wanted)
        self._ahead = ahead
        try:
            yield
        finally:
            self._ahead = None
            ahead.close()

    def _took(
        self,
        oid: bytes,
        full: bytes,
        depth: int,
        links: list[tuple[bytes, bytes]],
        snapshots: list[tuple[bytes, bytes, int]],
    ) -> tuple[bytes, int]:
        """What :meth:`_find` keeps of an object read by the other process (read_ahead), and of
        the snapshots of its chain the other process sent with it (a writer restarting the
        chain asks for them next)."""
        self._learn_bases(links)
        for sid, sfull, sdepth in snapshots:
            self._keep_full(sid, sfull, sdepth)
        if full[0] != _RECORD:
            self._keep_full(oid, full, depth)
        return full, depth

    def _keep_full(self, oid: bytes, full: bytes, depth: int) -> None:
        self._full_cache[oid] = (full, depth)
        if len(self._full_cache) > 256:
            self._full_cache.popitem(last=False)

    def _learn_bases(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """Remember (object, the base its delta is against) of chains read, the last 65536."""
        bases = self._delta_bases
        bases.update(pairs)
        if len(bases) > 65536:
            for stale in list(itertools.islice(bases, len(bases) - 65536)):
                del bases[stale]

    def _chain_links(self, oid: bytes) -> list[tuple[bytes, bytes]]:
        """(link, its base) down the delta chain of ``oid`` as far as this store knows it."""
        out: list[tuple[bytes, bytes]] = []
        link = oid
        while (base := self._delta_bases.get(link)) is not None and len(out) <= MAX_DELTA_DEPTH:
            out.append((link, base))
            link = base
        return out

    def _hint(self, name: str, found: str) -> None:
        """Remember that a base of a delta of pack ``name`` was in pack ``found``."""
        hints = self._base_packs.get(name)
        if hints is None:
            self._base_packs[name] = [found]
        elif hints[0] != found:  # a commit writes several packs: keep the last few
            if found in hints:
                hints.remove(found)
            hints.insert(0, found)
            del hints[4:]

    def _find_in(self, name: str, oid: bytes, chain: int, order: list[str]) -> tuple[bytes, int] | None:
        """The object from one pack, verified by its hash; None if that pack does not have it."""
        got = self._packs.get(name)
        if got is None:  # forgotten since a cursor's order was made
            return None
        idx = got[0]
        bad: CorruptError | None = None
        ordinals = idx.candidates(oid, self._mapped)
        for ordinal in ordinals:
            digest = None
            full, depth = b"", 0
            try:
                entry = self._reader(name).entry(ordinal)
                retry = not chain and not self._check_links and entry_kind(entry) == DELTA
                try:
                    full, depth = self._resolve(name, entry, chain)
                    if retry:
                        digest = hashlib.sha256(full).digest()
                        retry = digest != oid
                except (CorruptError, NotFoundError):
                    if not retry:
                        raise
                if retry:
                    # An unchecked link may have been another object (an index that sends its
                    # prefix elsewhere, or a prefix two ids share): resolve again, checking every
                    # link, so that the link is read from a pack that has it right, or the
                    # damage named where it is.
                    digest = None
                    self._check_links = True
                    self._links.clear()
                    try:
                        full, depth = self._resolve(name, entry, chain)
                    finally:
                        self._check_links = False
            except CorruptError as exc:
                bad = exc
                continue
            if chain and len(ordinals) == 1 and not self._check_links:
                # A link of a chain being resolved, the only object of this pack with its
                # prefix: its bytes are checked with the object at the end of the chain, by that
                # one's id (a wrong link cannot give it), not by hashing each link. Kept for
                # other chains only (verify reads a leaf, then its base), never for get().
                self._answered(name, order)
                self._found_in = name
                self._links[oid] = (full, depth)
                if len(self._links) > 256:
                    self._links.popitem(last=False)
                return full, depth
            if (digest or hashlib.sha256(full).digest()) == oid:
                self._answered(name, order)
                self._found_in = name
                if full[0] != _RECORD:  # nodes and metadata are read again and again
                    self._keep_full(oid, full, depth)
                    if depth:
                        base = self._last_delta_base
                        assert base is not None  # _resolve sets it whenever it resolves a delta
                        self._delta_bases[oid] = base
                        if len(self._delta_bases) > 65536:
                            self._delta_bases.pop(next(iter(self._delta_bases)))
                return full, depth
        if bad is not None:
            raise bad
        return None

    def get(self, oid: bytes) -> tuple[int, bytes]:
        full, _ = self._find(oid)
        return full[0], full[1:]

    def get_many(self, oids: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """``[self.get(oid) for oid in oids]``, several times faster for bulk reads (restore,
        merge): an object stored whole, the usual case for records, is found and verified in
        one loop over the packs (the one that answered last first) without the layers of
        :meth:`get`; anything else (deltas, a damaged entry, a new pack) takes :meth:`get`."""
        out: list[tuple[int, bytes]] = []
        if native.available():
            return self._get_runs(oids, out)
        append = out.append
        sha = hashlib.sha256
        paths = [self._fast_path(n) for n in self._order]
        # Records were written in key order, so the next id is mostly the next object of the
        # pack that held the last one: try that first, which the hash check makes as safe as a
        # look-up (a wrong guess only costs a hash), and search the indexes only when it misses.
        guess = None
        after = -1
        for oid in oids:
            if guess is not None:
                try:
                    full = guess(after + 1)
                except CorruptError:
                    full = None
                if full is not None and sha(full).digest() == oid:
                    after += 1
                    append((full[0], full[1:]))
                    continue
            got = None
            guess = None
            first = oid[0]
            p = int.from_bytes(oid[:8], "big")
            for k, (fanout, prefixes, ordinals, full_or_none) in enumerate(paths):
                lo = fanout[first - 1] if first else 0
                hi = fanout[first]
                i = bisect_left(prefixes, p, lo, hi)
                if i == hi or prefixes[i] != p:
                    continue
                try:
                    full = full_or_none(ordinals[i])
                except CorruptError:
                    break  # a damaged index or block: get() names the object, or finds another copy
                if full is not None and sha(full).digest() == oid:
                    got = (full[0], full[1:])
                    guess, after = full_or_none, ordinals[i]
                    if k:  # neighbours were mostly written together: ask this pack first
                        paths.insert(0, paths.pop(k))
                break
            append(got if got is not None else self.get(oid))
        return out

    def _get_runs(self, oids: Sequence[bytes], out: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """:meth:`get_many` by runs: an id found in an index starts a run of the objects that
        follow it in its pack, which :func:`snapgit.native.whole_run` reads and verifies in one
        call for as long as they are the next ids wanted (records written together, read
        together). An object that ends a run is looked up anew; one stored as a delta, or
        damaged, takes :meth:`get`, which names the damage or finds another copy."""
        order = [(self._packs[n][0], n) for n in self._order]
        n, j = len(oids), 0
        while j < n:
            oid = oids[j]
            first, p = oid[0], int.from_bytes(oid[:8], "big")
            taken = 0
            for k, (idx, name) in enumerate(order):
                lo = idx.fanout[first - 1] if first else 0
                hi = idx.fanout[first]
                at = bisect_left(idx.prefixes, p, lo, hi)
                if at == hi or idx.prefixes[at] != p:
                    continue
                reader = self._reader(name)
                ordinal = idx.ordinals[at]
                try:
                    while j + taken < n and ordinal < reader.count:
                        data, ends, i = reader.block_at(ordinal)
                        got = native.whole_run(data, ends, i, oids, j + taken, out)
                        taken += got
                        ordinal += got
                        if got == 0 or i + got < len(ends):
                            break
                except CorruptError:
                    pass  # a damaged index or block: get() names the object, or finds another copy
                if taken and k:  # neighbours were mostly written together: ask this pack first
                    order.insert(0, order.pop(k))
                break
            if taken:
                j += taken
            else:
                out.append(self.get(oid))
                j += 1
        return out

    def _fast_path(self, name: str):
        idx, _ = self._packs[name]
        return idx.fanout, idx.prefixes, idx.ordinals, self._reader(name).full_or_none

    def get_depth(self, oid: bytes) -> int:
        return self._find(oid)[1]

    def delta_base(self, oid: bytes) -> bytes | None:
        """The object ``oid`` is stored as a delta against, or None when stored whole."""
        known = self._delta_bases.get(oid)
        if known is not None:  # a link of a chain read (writers walk a chain back from its end)
            return known
        _full, depth = self._find(oid)
        return self._delta_bases.get(oid) if depth else None

    def contains(self, oid: bytes) -> bool:
        try:
            self._find(oid)
        except NotFoundError:
            return False
        return True

    def might_contain(self, oid: bytes) -> bool:
        """True when some index has an id with the same 8-byte prefix (no read)."""
        # IndexReader.candidates, inlined: a miss (a new record, the usual answer) asks every
        # pack, and the calls would cost more than the searches.
        first = oid[0]
        p = int.from_bytes(oid[:8], "big")
        packs = self._packs
        for n in self._mru:
            idx = packs[n][0]
            fanout = idx.fanout
            lo = fanout[first - 1] if first else 0
            hi = fanout[first]
            if lo != hi:
                prefixes = idx.prefixes
                i = bisect_left(prefixes, p, lo, hi)
                if i < hi and prefixes[i] == p:
                    self._answered(n)
                    return True
        return False

    def might_contain_many(self, oids: Sequence[bytes]) -> list[bool]:
        """``might_contain`` of each id, for a batch: each index is read once, with pread, not
        through its map (IndexReader.prefix_hits says why)."""
        if not oids:
            return []
        prefix = int.from_bytes
        asked = [prefix(o[:8], "big") for o in oids]
        wanted = set(asked)
        ordered = sorted(wanted)
        ordered_q = array("Q", ordered)
        hits: set[int] = set()
        for name in self._order:
            hits |= self._packs[name][0].prefix_hits(wanted, ordered, ordered_q)
        return [p in hits for p in asked]

    def _answered(self, name: str, mru: list[str] | None = None) -> None:
        if mru is None:
            mru = self._mru
        if mru[0] != name:
            mru.remove(name)
            mru.insert(0, name)

    def find_prefix(self, hex_prefix: str) -> list[bytes]:
        found: set[bytes] = set()
        for name in self._order:
            idx, _ = self._packs[name]
            for ordinal in idx.prefix_range(hex_prefix):
                try:
                    full, _ = self._resolve(name, self._reader(name).entry(ordinal))
                except CorruptError:
                    continue
                oid = hashlib.sha256(full).digest()
                if oid.hex().startswith(hex_prefix):
                    found.add(oid)
        return sorted(found)

    def iter_objects(self) -> Iterator[tuple[str, bytes, int, bytes]]:
        """Every stored object, pack by pack in pack order: (pack, id, type, data)."""
        for name in list(self._order):
            rd = self._reader(name)
            for _ordinal, entry in rd.iter_entries():
                full, _ = self._resolve(name, entry)
                yield name, hashlib.sha256(full).digest(), full[0], full[1:]

    # -- writing

    def writer(self) -> DiskWriter:
        return DiskWriter(self)


class _Ahead:
    """The reading end of :meth:`DiskObjectStore.read_ahead`: a forked process reads the
    objects in order and sends them in batches of about _AHEAD_BATCH bytes, each as (id, full
    bytes, depth, the links of its delta chain, and the snapshots of the chain when what replaces
    the object will restart it: :func:`restarts`). The pipe's buffer is the only queue: the reader
    waits while this process is behind."""

    def __init__(self, store: DiskObjectStore, oids: list[bytes]) -> None:
        self._index = {oid: i for i, oid in enumerate(oids)}
        self._got: dict[bytes, tuple[bytes, int, list[tuple[bytes, bytes]], list[tuple[bytes, bytes, int]]]] = {}
        self._next = 0  # how far into oids the batches received go
        self._done = False
        # a process forked meanwhile (status's second walk) inherits this: the pipe is not its
        self._pid = os.getpid()
        self._conn, self._proc = fork(_read_ahead, store.root, store.also, oids, pipe_bytes=1 << 20)

    def take(self, oid: bytes) -> tuple[bytes, int, list[tuple[bytes, bytes]], list[tuple[bytes, bytes, int]]] | None:
        """The object as the other process read it, or None: not one of its objects, or one it
        did not send (it failed, or was skipped past: an object asked for after those that
        follow it is read here)."""
        at = self._index.pop(oid, None)
        if at is None or os.getpid() != self._pid:
            return None
        while oid not in self._got and not self._done and self._next <= at:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                msg = None
            if msg is None or msg[0] != "objects":
                self._done = True  # "done", or failed: the rest is read here
                break
            for item in msg[1]:
                self._got[item[0]] = item[1:]
            self._next += len(msg[1])
        got = self._got.pop(oid, None)
        if len(self._got) > 2 * _AHEAD_BEHIND:
            # asked for out of order now and then (a walk looks at the next leaf first), but
            # objects well behind the one asked for are not asked for any more
            index = self._index
            for stale in [o for o in self._got if index.get(o, -1) < at - _AHEAD_BEHIND]:
                del self._got[stale]
        return got

    def close(self) -> None:
        end(self._conn, self._proc)


_AHEAD_BATCH = 64 * 1024
_AHEAD_BEHIND = 64  # objects behind the one asked for that are kept a while


def _item_bytes(item: tuple[bytes, bytes, int, list[tuple[bytes, bytes]], list[tuple[bytes, bytes, int]]]) -> int:
    return len(item[1]) + sum(len(s[1]) for s in item[4])


def _read_ahead(conn: Any, root: Path, also: tuple[Path, ...], oids: list[bytes]) -> None:
    """The forked process of :class:`_Ahead`. Damage stops it without a word: the reader then
    reads the rest itself, and names the damage."""
    store = DiskObjectStore(root, also=also)

    def found(oid: bytes) -> tuple[bytes, bytes, int, list[tuple[bytes, bytes]], list[tuple[bytes, bytes, int]]]:
        full, depth = store._find(oid)
        if not depth:
            return oid, full, 0, [], []
        links = store._chain_links(oid)
        snapshots: list[tuple[bytes, bytes, int]] = []
        if restarts(oid, depth) and len(links) == depth:
            # what replaces this node will be a delta against one of these (or whole)
            for sid in [base for _, base in reversed(links)][:SNAPSHOT_LEVELS]:
                try:
                    snapshots.append((sid, *store._find(sid)))
                except (CorruptError, NotFoundError):
                    break  # the writer reads it itself, and names the damage
        return oid, full, depth, links, snapshots

    send_batched(conn, "objects", map(found, oids), _item_bytes, _AHEAD_BATCH)


class ReadCursor:
    """Reads of a disk store that keep their own order of the packs to try (the one that
    answered last first), for one of several interleaved streams of reads.

    A diff reads a leaf of the old tree, then the same leaf of the new one: each side's leaves
    mostly come from the pack of the commit that wrote them, but with one order for both every
    read tried the other side's pack first, a third of a 1% diff's index look-ups. Everything
    else (caches, verification) is the store's."""

    __slots__ = ("_store", "_order", "_generation")

    def __init__(self, store: DiskObjectStore) -> None:
        self._store = store
        self._order: list[str] = []
        self._generation = -1

    def get(self, oid: bytes) -> tuple[int, bytes]:
        store = self._store
        if self._generation != store.generation:  # packs came or went: start from the store's order
            self._order = list(store._mru)
            self._generation = store.generation
        full, _ = store._find(oid, order=self._order)
        return full[0], full[1:]

    def get_many(self, oids: Sequence[bytes]) -> list[tuple[int, bytes]]:
        return self._store.get_many(oids)

    def contains(self, oid: bytes) -> bool:
        return self._store.contains(oid)


def read_cursor(reader: ObjectReader) -> ObjectReader:
    """A reader of the same objects for one of several interleaved streams of reads: a
    :class:`ReadCursor` of a disk store, any other reader itself."""
    if isinstance(reader, DiskObjectStore):
        return ReadCursor(reader)
    return reader


def read_ahead(reader: ObjectReader, oids: Sequence[bytes]) -> contextlib.AbstractContextManager[None]:
    """:meth:`DiskObjectStore.read_ahead` of the disk store under ``reader`` (itself, a read
    cursor's or an overlay's); nothing for any other. Only where it pays: a second core, and
    enough objects to read (SNAP_WORKERS=0 turns it off)."""
    store: object = reader
    if isinstance(store, ReadCursor):
        store = store._store
    if isinstance(store, OverlayObjectStore):
        store = store.base
    worth = len(oids) >= _AHEAD_MIN and (os.cpu_count() or 1) > 1 and os.environ.get("SNAP_WORKERS") != "0"
    if not worth or not isinstance(store, DiskObjectStore):
        return contextlib.nullcontext()
    return store.read_ahead(oids)


_AHEAD_MIN = 256  # objects: below, a fork (10-20 ms) costs more than it saves


def scratch_store(store: DiskObjectStore) -> DiskObjectStore | None:
    """A store of its own in ``store``'s ``tmp/``, that reads ``store``'s packs too: for
    objects nothing will refer to (``status`` builds the live database's trees in one, with
    the commit's worker processes). It is deleted, with what was written into it, once nothing
    holds it, or at exit; gc deletes one left by a killed process. None when ``tmp/`` cannot
    take it (a store on a read-only mount): the caller keeps its objects in memory."""
    try:
        root = Path(tempfile.mkdtemp(prefix="scratch-", dir=store.tmp_dir))
    except OSError:
        return None
    try:
        (root / "objects" / "pack").mkdir(parents=True)
        (root / "tmp").mkdir()
        scratch = DiskObjectStore(root, store._budget, also=(store.root, *store.also))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    # its readers hold descriptors of their own (pread, not maps), which nothing else closes
    weakref.finalize(scratch, _discard, scratch._packs, root)
    return scratch


def _discard(packs: dict[str, tuple[IndexReader, PackReader | None]], root: Path) -> None:
    for idx, rd in packs.values():
        idx.close()
        if rd is not None:
            rd.close()
    shutil.rmtree(root, ignore_errors=True)


# --- memory ---------------------------------------------------------------------------------


class _MemoryWriter(_WriterBase):
    def __init__(self, store: MemoryObjectStore) -> None:
        super().__init__(store)
        self._mem = store
        self._staged: dict[bytes, tuple[int, bytes, int]] = {}
        self._staged_bases: dict[bytes, bytes] = {}
        self._done = False

    def add(self, otype: int, data: bytes, oid: bytes | None = None) -> bytes:
        if oid is None:
            oid = hashlib.sha256(bytes((otype,)) + data).digest()
        if oid in self._staged or self._mem.contains(oid):
            return oid  # one copy is kept, with the depth and base it was stored with
        self._staged[oid] = (otype, bytes(data), 0)
        if otype != _RECORD:
            self._remember(oid, bytes((otype,)) + data, 0, None)
        return oid

    def add_full_many(self, otype: int, oids: list[bytes], datas: list[bytes]) -> None:
        for oid, d in zip(oids, datas, strict=False):
            self._staged[oid] = (otype, bytes(d), 0)

    def deferred(self, otype: int, data: bytes, oid: bytes, base: bytes | None) -> tuple[Callable[[], None], int]:
        # in memory the node is kept whole anyway
        def add() -> None:
            if base is None:
                self.add(otype, data, oid)
            else:
                self.add_delta(otype, data, oid, base)

        return add, len(data)

    def add_delta(self, otype: int, data: bytes, oid: bytes, base: bytes) -> bytes:
        if oid in self._staged or self._mem.contains(oid):
            return oid
        enc = self._encode_delta(otype, data, oid, base)
        depth = 0 if enc is None else enc[1]
        self._staged[oid] = (otype, bytes(data), depth)
        base_of = None if enc is None else entry_base(enc[0])
        if base_of is not None:
            self._staged_bases[oid] = base_of
        self._remember(oid, bytes((otype,)) + data, depth, base_of)
        return oid

    def commit(self) -> None:
        if not self._done:
            self._mem._objects.update(self._staged)
            self._mem._bases.update(self._staged_bases)
            self._done = True

    def abort(self) -> None:
        self._staged.clear()
        self._done = True


class MemoryObjectStore:
    """The in-memory twin of :class:`DiskObjectStore`, for fast tests of everything above it."""

    def __init__(self) -> None:
        self._objects: dict[bytes, tuple[int, bytes, int]] = {}
        self._bases: dict[bytes, bytes] = {}  # object kept "as a delta" -> its base

    def delta_base(self, oid: bytes) -> bytes | None:
        if oid not in self._objects:
            raise MissingObjectError(f"object {oid.hex()} not found")
        return self._bases.get(oid)

    def get(self, oid: bytes) -> tuple[int, bytes]:
        try:
            t, d, _ = self._objects[oid]
        except KeyError:
            raise MissingObjectError(f"object {oid.hex()} not found") from None
        return t, d

    def get_many(self, oids: Sequence[bytes]) -> list[tuple[int, bytes]]:
        return [self.get(oid) for oid in oids]

    def get_depth(self, oid: bytes) -> int:
        try:
            return self._objects[oid][2]
        except KeyError:
            raise MissingObjectError(f"object {oid.hex()} not found") from None

    def contains(self, oid: bytes) -> bool:
        return oid in self._objects

    def might_contain(self, oid: bytes) -> bool:
        return oid in self._objects

    def might_contain_many(self, oids: Sequence[bytes]) -> list[bool]:
        return [oid in self._objects for oid in oids]

    def find_prefix(self, hex_prefix: str) -> list[bytes]:
        return sorted(o for o in self._objects if o.hex().startswith(hex_prefix))

    def iter_objects(self) -> Iterator[tuple[str, bytes, int, bytes]]:
        for oid, (t, d, _) in self._objects.items():
            yield MEMORY_PACK, oid, t, d

    def pack_names(self) -> list[str]:
        # one "pack" once anything is stored, as a disk store has none until its first commit
        return [MEMORY_PACK] if self._objects else []

    def writer(self) -> _MemoryWriter:
        return _MemoryWriter(self)

    @contextlib.contextmanager
    def block_budget(self, budget: int) -> Iterator[None]:
        yield  # nothing is compressed in memory

    def mapped_lookups(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- overlay --------------------------------------------------------------------------------


class OverlayObjectStore:
    """A memory layer over a store: reads fall through to the base, writes stay in memory.

    ``status`` and ``diff`` against the live database build the live tables' trees with the same
    code as ``commit`` into an overlay where the store cannot take a scratch store (no room in
    ``tmp/``): nodes and records the store already has are read from it, the rest live in
    memory for the length of the command, and nothing is written to disk.
    """

    def __init__(self, base: ObjectStore) -> None:
        self.base = base
        self._mem = MemoryObjectStore()

    def get(self, oid: bytes) -> tuple[int, bytes]:
        if self._mem.contains(oid):
            return self._mem.get(oid)
        return self.base.get(oid)

    def get_many(self, oids: Sequence[bytes]) -> list[tuple[int, bytes]]:
        mem = self._mem
        if not any(map(mem.contains, oids)):
            return self.base.get_many(oids)
        return [self.get(oid) for oid in oids]

    def get_depth(self, oid: bytes) -> int:
        return 0 if self._mem.contains(oid) else self.base.get_depth(oid)

    def delta_base(self, oid: bytes) -> bytes | None:
        return None if self._mem.contains(oid) else self.base.delta_base(oid)

    def contains(self, oid: bytes) -> bool:
        return self._mem.contains(oid) or self.base.contains(oid)

    def might_contain(self, oid: bytes) -> bool:
        return self._mem.contains(oid) or self.base.might_contain(oid)

    def might_contain_many(self, oids: Sequence[bytes]) -> list[bool]:
        mem = self._mem.might_contain_many(oids)
        return [m or b for m, b in zip(mem, self.base.might_contain_many(oids), strict=False)]

    def pack_names(self) -> list[str]:
        # the base's: what the overlay holds lives for one command and is no pack of the store
        return self.base.pack_names()

    def iter_objects(self) -> Iterator[tuple[str, bytes, int, bytes]]:
        yield from self._mem.iter_objects()
        yield from self.base.iter_objects()

    def find_prefix(self, hex_prefix: str) -> list[bytes]:
        return sorted(set(self._mem.find_prefix(hex_prefix)) | set(self.base.find_prefix(hex_prefix)))

    def writer(self) -> _OverlayWriter:
        return _OverlayWriter(self)

    def block_budget(self, budget: int) -> contextlib.AbstractContextManager[None]:
        return self.base.block_budget(budget)

    def mapped_lookups(self) -> contextlib.AbstractContextManager[None]:
        return self.base.mapped_lookups()

    def refresh(self) -> None:
        self.base.refresh()

    def close(self) -> None:
        pass


class _OverlayWriter:
    """Stores full objects in the overlay's memory; no deltas (they would only cost time)."""

    def __init__(self, overlay: OverlayObjectStore) -> None:
        self._objects = overlay._mem._objects

    def add(self, otype: int, data: bytes, oid: bytes | None = None) -> bytes:
        if oid is None:
            oid = hashlib.sha256(bytes((otype,)) + data).digest()
        self._objects[oid] = (otype, bytes(data), 0)
        return oid

    def add_full_many(self, otype: int, oids: list[bytes], datas: list[bytes]) -> None:
        for oid, d in zip(oids, datas, strict=False):
            self._objects[oid] = (otype, d, 0)

    def add_delta(self, otype: int, data: bytes, oid: bytes, base: bytes) -> bytes:
        return self.add(otype, data, oid)

    def deferred(self, otype: int, data: bytes, oid: bytes, base: bytes | None) -> tuple[Callable[[], None], int]:
        def add() -> None:
            self.add(otype, data, oid)

        return add, len(data)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def seal(self, min_objects: int = 0) -> None:
        pass

    def __enter__(self) -> _OverlayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
