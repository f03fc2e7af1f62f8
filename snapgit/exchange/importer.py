"""Import of export files (export.py): validate everything, then build a snapshot tree.

One streaming pass per file: every line (JSON) or record (CSV) is parsed, every value checked
against its column's type, every row's checksum recomputed from the decoded values (the record
id), row order and counts checked against the file's own metadata, CSV files against the SHA-256
in their manifest. Objects are added to the writer as rows pass, but every problem found is
collected rather than raised at once; at the end, any problem raises :class:`ImportValidationError`
listing all of them, the caller's writer aborts, and the store is left as it was.

The JSON reader parses the layout export.py writes (docs/format.md, "Export files"): one row per
line, fixed lines between. A JSON document reformatted by another tool (pretty-printed, or all on
one line) is valid JSON but is refused with "not in the layout snapgit writes": that keeps the
reader a line parser with flat memory and no streaming-JSON dependency.

An age-encrypted file (:mod:`snapgit.exchange.agefile`, recognised by its first line) is
decrypted as it is read, 64 KiB at a time, each chunk authenticated before its rows are parsed;
the passphrase is asked for only then. A chunk that fails is one error, and nothing is imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeGuard

import zstandard

from snapgit.encoding import EncodingError, encode_key, encode_row, key_encoder
from snapgit.errors import SnapError
from snapgit.exchange.fileformat import (
    CSV_FORMAT,
    FORMAT_VERSION,
    JSON_FORMAT,
    MANIFEST,
    OCCURRENCE_COLUMN,
    READABLE_VERSIONS,
    ExportError,
    check_name,
)
from snapgit.exchange.typedvalue import ValueFormError, decoder, from_cell
from snapgit.objects import Node, ObjType, Root, TableEntry, encode_schema, object_id
from snapgit.passphrase import PassphraseSource
from snapgit.passphrase import get as get_passphrase
from snapgit.schema import TableSchema
from snapgit.snapshot.record import store_table
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.store.objectstore import ObjectStore, ObjectWriter
from snapgit.tree.prolly import TreeBuilder, iter_entries

__all__ = [
    "ImportValidationError",
    "ImportedTree",
    "Problem",
    "import_into",
    "is_encrypted",
    "DEFAULT_MAX_SIZE",
    "MAX_LINE",
]

DEFAULT_MAX_SIZE = 10 * 2**30
MAX_PROBLEMS_KEPT = 1000
# The longest line a JSON export may hold (one row, its bytes as base64): the reader holds a line
# whole to parse it, so this bounds its memory whatever the input expands to.
MAX_LINE = 256 * 2**20
_CHUNK = 1 << 20
_ZSTD_FEED = 1 << 10
_REC = ObjType.RECORD


class ImportValidationError(SnapError):
    """An export file with problems; ``problems`` lists each (where, what)."""

    def __init__(self, path: Path, problems: list[Problem], more: int) -> None:
        lines = [p.describe() for p in problems]
        if more:
            lines.append(f"... and {more} more problems")
        total = len(problems) + more
        head = f"{path}: {total} problem{'s' if total != 1 else ''}, nothing imported"
        super().__init__("\n".join([head, *lines]), hint=None)
        self.problems = problems
        self.more = more


@dataclass
class Problem:
    file: str
    line: int | None
    what: str
    table: str | None = None
    row: int | None = None
    column: str | None = None

    def describe(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        parts = []
        if self.table is not None:
            parts.append(f"table {self.table!r}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return f"{where}: " + (", ".join(parts) + ": " if parts else "") + self.what


@dataclass
class ImportedTree:
    tree: bytes
    kind: str  # full or incremental
    source_commit: str | None
    base: bytes | None
    rows: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.more = 0

    def add(self, p: Problem) -> None:
        if len(self.items) < MAX_PROBLEMS_KEPT:
            self.items.append(p)
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.items)


class _TableBuild:
    """One table's tree, built from rows in key order, merged with the base's rows for an
    incremental table. Stops writing (but keeps checking) once the import has a problem."""

    def __init__(
        self,
        objects: ObjectStore,
        writer: ObjectWriter,
        problems: _Problems,
        key: list[str] | None,
        base: TableEntry | None,
        removed: set[bytes],
    ) -> None:
        self.objects = objects
        self.writer = writer
        self.problems = problems
        self.key = key
        self.builder = TreeBuilder(self._emit)
        self._keys: list[bytes] = []
        self._ids: list[bytes] = []
        self._base = iter_entries(objects, base.root) if base is not None else iter(())
        self._head = next(self._base, None)
        self.removed = removed
        self.last_key: bytes | None = None
        self.last_rid: bytes | None = None
        self._nodes: set[bytes] = set()
        self._maybe = objects.might_contain  # no read: most records and nodes are new

    def _emit(self, node: Node, _payloads: Any) -> bytes:
        data = node.encode()
        nid = object_id(ObjType.NODE, data)
        if nid not in self._nodes and not (self._maybe(nid) and self.objects.contains(nid)):
            self.writer.add(ObjType.NODE, data, nid)
        self._nodes.add(nid)
        return nid

    def _put(self, key: bytes, rid: bytes) -> None:
        self._keys.append(key)
        self._ids.append(rid)
        if len(self._keys) >= 2048:
            self._flush()

    def _flush(self) -> None:
        if not self.problems and self._keys:
            self.builder.add_batch(self._keys, self._ids)
        self._keys, self._ids = [], []

    def _base_until(self, key: bytes | None) -> None:
        """Take the base's entries with keys below ``key`` (all when None), minus removed ones."""
        head = self._head
        while head is not None and (key is None or head[0] < key):
            if head[0] in self.removed:
                self.removed.discard(head[0])
            else:
                self._put(*head)
            head = next(self._base, None)
        if head is not None and key is not None and head[0] == key:
            head = next(self._base, None)  # replaced by the file's row
        self._head = head

    def add(self, key: bytes, rid: bytes, data: bytes) -> bool:
        """False when the key is not after the previous one (the caller reports it)."""
        if self.last_key is not None and key <= self.last_key:
            return False
        self.last_key = key
        self._base_until(key)
        if not self.problems:
            if rid != self.last_rid and not (self._maybe(rid) and self.objects.contains(rid)):
                self.writer.add(_REC, data, rid)
            self.last_rid = rid
        self._put(key, rid)
        return True

    def drain(self) -> None:
        """Take the rest of the base's entries."""
        self._base_until(None)

    def finish(self, schema: TableSchema) -> tuple[bytes | None, int]:
        """(table object id, rows); None for the id when the import has problems."""
        self._base_until(None)
        self._flush()
        if self.problems:
            return None, 0
        root, rows = self.builder.finish()
        return store_table(self.objects, self.writer, schema, root, rows, self.key), rows


class _Table:
    """A table's header checked: schema, key, decoders, the key encoder."""

    def __init__(self, name: str, schema: TableSchema, key: list[str] | None) -> None:
        self.name = name
        self.schema = schema
        self.key = key
        self.names = schema.sorted_names
        self.decoders = [decoder(schema.column(n).type) for n in self.names]
        self.cells = [from_cell(schema.column(n).type) for n in self.names]
        self.kenc = key_encoder([self.names.index(k) for k in key]) if key else None
        self.occ_prev: bytes | None = None
        self.occ = 0

    def keyless_key(self, rid: bytes) -> bytes:
        self.occ = self.occ + 1 if rid == self.occ_prev else 0
        self.occ_prev = rid
        return encode_key([rid, self.occ])


def _check_header(h: Any, problems: _Problems, where: tuple[str, int | None]) -> _Table | None:
    """The table header of a JSON table or a CSV manifest entry -> _Table, or None (reported)."""
    file, line = where
    name = h.get("name") if isinstance(h, dict) else None
    try:
        check_name(name)
    except ExportError as exc:
        problems.add(Problem(file, line, exc.message))
        return None
    if "schema" not in h:
        problems.add(Problem(file, line, "the header has no schema", table=name))
        return None
    try:
        schema = TableSchema.from_obj(h["schema"])
        if schema.name != name:
            raise ValueError(f"the schema is of table {schema.name!r}")
        for c in schema.columns:
            if type(c.name) is not str or type(c.type) is not str:
                raise ValueError(f"a column's name and type are text, not {c.name!r} and {c.type!r}")
        encode_schema(schema)
    except KeyError as exc:
        problems.add(Problem(file, line, f"the schema is malformed: it has no {exc}", table=name))
        return None
    except (TypeError, ValueError, AttributeError) as exc:
        problems.add(Problem(file, line, f"the schema is malformed: {exc}", table=name))
        return None
    key = h.get("key")
    if key is not None and (type(key) is not list or not key or any(k not in schema.column_names for k in key)):
        problems.add(Problem(file, line, f"key {key!r} is not a list of the table's columns", table=name))
        return None
    if h.get("columns") != schema.sorted_names:
        problems.add(
            Problem(
                file,
                line,
                f"columns {h.get('columns')!r} are not the schema's column names in "
                f"sorted order {schema.sorted_names!r}",
                table=name,
            )
        )
        return None
    if type(h.get("rows")) is not int or h["rows"] < 0:
        problems.add(Problem(file, line, "rows is not a row count", table=name))
        return None
    return _Table(name, schema, key)


def _check_metadata(meta: Any, fmt: str, problems: _Problems, file: str, line: int | None) -> TypeGuard[dict[str, Any]]:
    """Whether ``meta`` is an export's metadata this snapgit reads; what is wrong is reported."""
    if not isinstance(meta, dict):
        problems.add(Problem(file, line, "metadata is missing or not an object"))
        return False
    ok = True
    if meta.get("format") != fmt:
        problems.add(Problem(file, line, f"metadata format is {meta.get('format')!r}, expected {fmt!r}"))
        ok = False
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        problems.add(
            Problem(
                file,
                line,
                f"metadata format_version is {version!r}, this snapgit reads 1 to {FORMAT_VERSION}",
            )
        )
        ok = False
    if meta.get("kind") not in ("full", "incremental"):
        problems.add(Problem(file, line, f"metadata kind is {meta.get('kind')!r}, expected full or incremental"))
        ok = False
    tables = meta.get("tables")
    if not isinstance(tables, dict) or any(type(v) is not int for v in tables.values()):
        problems.add(Problem(file, line, "metadata tables is not a map of table name to row count"))
        ok = False
    if meta.get("kind") == "incremental" and not _is_hex_id(meta.get("base")):
        problems.add(Problem(file, line, "an incremental export has no base commit id in its metadata"))
        ok = False
    return ok


_HEX_ID = re.compile(r"[0-9a-f]{64}")


def _is_hex_id(v: Any) -> TypeGuard[str]:
    return type(v) is str and _HEX_ID.fullmatch(v) is not None


class _Importer:
    def __init__(self, objects: ObjectStore, writer: ObjectWriter, path: Path, progress: Any = None) -> None:
        self.progress = progress  # a commit.Progress
        self._unreported = 0
        self.objects = objects
        self.writer = writer
        self.path = path
        self.problems = _Problems()
        self.tables: dict[str, bytes] = {}
        self.rows: dict[str, int] = {}
        self.base_tables: dict[str, bytes] = {}
        self.base: bytes | None = None
        self.has_base_tree = False

    def problem(self, file: str, line: int | None, what: str, **kw: Any) -> None:
        self.problems.add(Problem(file, line, what, **kw))

    def set_base(self, meta: dict[str, Any], file: str) -> None:
        if meta.get("kind") != "incremental":
            return
        base = bytes.fromhex(meta["base"])
        try:
            self.base_tables = dict(read_root(self.objects, read_commit(self.objects, base).tree).tables)
            self.base = base
            return
        except SnapError:
            pass
        # The base's snapshot may be here without its commit (imported from a full export: the
        # same tree, another commit); trees are content-addressed, so that is the same base.
        tree = meta.get("base_tree")
        if _is_hex_id(tree):
            try:
                self.base_tables = dict(read_root(self.objects, bytes.fromhex(tree)).tables)
                self.has_base_tree = True
                return
            except SnapError:
                pass
        self.problem(
            file, 1, f"the base commit {meta['base']} of this incremental export is not in the store", table=None
        )

    def start_table(self, name: str, rows: Any) -> None:
        if self.progress is not None:
            self._report()
            self.progress.table(name, rows if type(rows) is int else None)

    def _report(self) -> None:
        if self._unreported:
            self.progress.advance(self._unreported)
            self._unreported = 0

    def row(
        self,
        t: _Table,
        build: _TableBuild,
        file: str,
        line: int | None,
        n: int,
        values: list[Any],
        checksum: str | None,
        occurrence: Any = None,
    ) -> None:
        if self.progress is not None:
            self._unreported += 1
            if self._unreported >= 5000:
                self._report()
        try:
            data = encode_row(values)
        except EncodingError as exc:
            self.problem(file, line, str(exc), table=t.name, row=n)
            return
        rid = object_id(_REC, data)
        if checksum is not None and rid.hex() != checksum:
            self.problem(
                file,
                line,
                f"checksum {checksum} does not match the values (they give {rid.hex()})",
                table=t.name,
                row=n,
            )
            return
        if t.kenc is not None:
            try:
                key = t.kenc(values)
            except EncodingError as exc:
                self.problem(file, line, f"key: {exc}", table=t.name, row=n)
                return
        elif occurrence is not None:
            if type(occurrence) is not int or occurrence < 0:
                self.problem(file, line, "occurrence is not a non-negative integer", table=t.name, row=n)
                return
            key = encode_key([rid, occurrence])
        else:
            key = t.keyless_key(rid)
        if not build.add(key, rid, data):
            self.problem(file, line, "rows are not in key order, or a key repeats", table=t.name, row=n)

    def table_done(self, t: _Table, build: _TableBuild, file: str, line: int | None, expected: int) -> None:
        build.drain()
        if build.removed:
            self.problem(file, line, f"{len(build.removed)} removed keys are not in the base commit", table=t.name)
        tid, rows = build.finish(t.schema)
        if tid is None:
            return
        if rows != expected:
            self.problem(file, line, f"the table has {rows} rows, the metadata says {expected}", table=t.name)
            return
        self.tables[t.name] = tid
        self.rows[t.name] = rows

    def build_for(self, t: _Table, mode: str, file: str, line: int | None, removed: set[bytes]) -> _TableBuild | None:
        base_entry = None
        if mode == "changes":
            if t.name not in self.base_tables:
                if self.base is not None or self.has_base_tree:
                    self.problem(
                        file, line, "the table is given as changes, but the base commit has no such table", table=t.name
                    )
                return None
            base_entry = read_table(self.objects, self.base_tables[t.name])
            if base_entry.key != t.key:
                self.problem(
                    file,
                    line,
                    f"the table is given as changes, but its key {t.key} is not the base's {base_entry.key}",
                    table=t.name,
                )
                return None
        elif mode != "full":
            self.problem(file, line, f"mode {mode!r} is not full or changes", table=t.name)
            return None
        return _TableBuild(self.objects, self.writer, self.problems, t.key, base_entry, removed)

    def finish(self, meta: dict[str, Any], file: str) -> ImportedTree:
        if self.progress is not None:
            self._report()  # the last table's rows since its last batch
        listed = meta.get("tables") or {}
        removed_tables = meta.get("removed_tables") or []
        if self.problems:
            raise ImportValidationError(self.path, self.problems.items, self.problems.more)
        for name in listed:
            if name not in self.tables:
                self.problem(file, None, "the metadata lists this table, the file does not have it", table=name)
        tables = dict(self.base_tables) if (self.base is not None or self.has_base_tree) else {}
        for name in removed_tables:
            tables.pop(name, None)
        tables.update(self.tables)
        if self.problems:
            raise ImportValidationError(self.path, self.problems.items, self.problems.more)
        root = Root(tables).encode()
        tree = object_id(ObjType.ROOT, root)
        if not self.objects.contains(tree):
            self.writer.add(ObjType.ROOT, root, tree)
        return ImportedTree(tree, meta["kind"], meta.get("commit"), self.base, self.rows, meta)


# --- JSON ---------------------------------------------------------------------------------------


class _ReadError(Exception):
    """The input cannot be read further; the message says why, for the user."""


class _Lines:
    """Numbered lines of a byte stream, each at most ``MAX_LINE`` bytes; a read error becomes a
    problem and the end of input (``failed`` then says so).

    Lines are cut from the raw bytes here rather than by a text wrapper, because a wrapper reads a
    line whole before anyone can look at its length: a file of zeros without a newline would be
    held in memory entire (twice) before being refused. Here a line is refused as soon as it passes
    the bound, having held at most the bound and one chunk.
    """

    def __init__(self, chunks: Iterator[bytes], imp: _Importer, file: str) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._start = 0  # where the next line begins in _buf
        self._scanned = 0  # _buf up to here holds no newline after _start
        self._done = False
        self.imp = imp
        self.file = file
        self.n = 0
        self.failed = False

    def _raw_line(self) -> bytearray | None:
        buf = self._buf
        while True:
            i = buf.find(b"\n", max(self._start, self._scanned))
            if i >= 0:
                line = buf[self._start : i]
                self._start = self._scanned = i + 1
                return line
            if len(buf) - self._start > MAX_LINE:
                raise _ReadError(f"the line is longer than {MAX_LINE:,} bytes, the most a line of an export holds")
            if self._done:
                if self._start == len(buf):
                    return None
                line = buf[self._start :]
                self._start = self._scanned = len(buf)
                return line
            del buf[: self._start]
            self._start = 0
            self._scanned = len(buf)
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                buf += chunk

    def next(self) -> str | None:
        if self.failed:
            return None
        try:
            raw = self._raw_line()
            if raw is None:
                return None
            line = raw.decode("utf-8")
        except (_ReadError, UnicodeDecodeError, OSError, ValueError) as exc:
            self.failed = True
            self.imp.problem(self.file, self.n + 1, f"cannot read the file: {exc}")
            return None
        self.n += 1
        return line


def _loads(text: str) -> Any:
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=constant)


def _layout(imp: _Importer, lines: _Lines, expected: str) -> None:
    if not lines.failed:  # (a line that could not be read was reported, and ended the input)
        imp.problem(lines.file, lines.n, f"not in the layout snapgit writes: expected {expected}")


def _ended(lines: _Lines, what: str) -> None:
    """The input ended where ``what`` was due; said only when it really ended, since a line that
    could not be read ends it too and has said why."""
    if not lines.failed:
        lines.imp.problem(lines.file, lines.n + 1, f"unexpected end of file: {what}")


def _read_json(imp: _Importer, chunks: Iterator[bytes]) -> ImportedTree | None:
    file = imp.path.name
    lines = _Lines(chunks, imp, file)
    first = lines.next()
    if first is None:
        if not lines.failed:
            imp.problem(file, 1, "the file is empty")
        return None
    if not first.startswith('{"metadata":') or not first.endswith(","):
        _layout(imp, lines, 'a first line {"metadata":{...},')
        return None
    try:
        meta = _loads(first[:-1] + "}")["metadata"]
    except ValueError as exc:
        imp.problem(file, 1, f"invalid JSON: {exc}")
        return None
    if not _check_metadata(meta, JSON_FORMAT, imp.problems, file, 1):
        return None
    imp.set_base(meta, file)
    if lines.next() != '"tables":[':
        _layout(imp, lines, 'the line "tables":[')
        return None
    seen: set[str] = set()
    while True:
        line = lines.next()
        if line is None:
            _ended(lines, "the tables array is not closed")
            return None
        if line == "]}":
            break
        if not (line.startswith("{") and line.endswith(",")):
            _layout(imp, lines, "a table header line {...,")
            return None
        try:
            header = _loads(line[:-1] + "}")
        except ValueError as exc:
            imp.problem(file, lines.n, f"invalid JSON: {exc}")
            return None
        header_line = lines.n
        t = _check_header(header, imp.problems, (file, header_line))
        if t is not None:
            imp.start_table(t.name, header.get("rows"))
            if t.name in seen:
                imp.problem(file, header_line, "the table appears twice", table=t.name)
            seen.add(t.name)
            if t.name not in meta["tables"]:
                imp.problem(file, header_line, "the table is not listed in the metadata", table=t.name)
            elif meta["tables"][t.name] != header["rows"]:
                imp.problem(
                    file,
                    header_line,
                    f"the header says {header['rows']} rows, the metadata {meta['tables'][t.name]}",
                    table=t.name,
                )
        mode = header.get("mode")
        line = lines.next()
        removed: set[bytes] = set()
        if line == '"removed":[':
            if mode != "changes":
                imp.problem(
                    file, lines.n, "removed keys in a table that is not given as changes", table=header.get("name")
                )
            end = _read_items(imp, lines, lambda text, n: _removed_key(imp, t, text, n, removed, lines), "],")  # noqa: B023 - called before the loop moves on
            if not end:
                return None
            if mode != "changes":
                removed = set()  # reported: not also as keys its base lacks
            line = lines.next()
        if line != '"data":[':
            if line is None:
                _ended(lines, 'expected "data":[')
            else:
                _layout(imp, lines, 'the line "data":[')
            return None
        build = imp.build_for(t, mode, file, header_line, removed) if t is not None else None
        count = 0

        def one(text: str, n: int) -> None:  # called by _read_items below, before the loop moves on
            nonlocal count
            count += 1
            if t is None or build is None:  # noqa: B023 - see above
                return
            _json_row(imp, t, build, text, lines.n, count, mode == "changes")  # noqa: B023 - see above

        end = _read_items(imp, lines, one, ("]}", "]},"))
        if not end:
            return None
        if t is not None and build is not None:
            if mode == "full" and count != header["rows"]:
                imp.problem(
                    file, lines.n, f"the table has {count} rows, the header says {header['rows']}", table=t.name
                )
                build.finish(t.schema)
            else:
                imp.table_done(t, build, file, lines.n, header["rows"])
        if end == "]}":
            if lines.next() != "]}":
                _layout(imp, lines, "the closing line ]}")
                return None
            break
    if lines.next() not in (None, ""):
        _layout(imp, lines, "the end of the file")
        return None
    if lines.next() is not None:
        _layout(imp, lines, "the end of the file")
        return None
    return imp.finish(meta, file)


def _read_items(imp: _Importer, lines: _Lines, each, closers) -> str | None:
    """Lines of an array, one item each, all but the last ending in ','; returns the closing
    line, or None (reported) when the array does not close properly."""
    closers = (closers,) if isinstance(closers, str) else closers
    comma = True
    items = 0
    while True:
        line = lines.next()
        if line is None:
            _ended(lines, "the file is truncated")
            return None
        if line in closers:
            if items and comma:
                imp.problem(imp.path.name, lines.n - 1, "invalid JSON: a ',' after the last item of an array")
                return None
            return line
        items += 1
        if not comma:
            _layout(imp, lines, "a ',' after the previous item")
            return None
        comma = line.endswith(",")
        each(line[:-1] if comma else line, lines.n)


def _removed_key(imp: _Importer, t: _Table | None, text: str, line: int, removed: set[bytes], lines: _Lines) -> None:
    file = imp.path.name
    try:
        item = _loads(text)
    except ValueError as exc:
        imp.problem(file, line, f"removed key: invalid JSON: {exc}", table=t.name if t is not None else None)
        return
    if t is None:
        return
    try:
        if t.key:
            vals = item["key"]
            if type(vals) is not list or len(vals) != len(t.key):
                raise ValueError(f"expected a key of {len(t.key)} values")
            values = [decoder(t.schema.column(k).type)(v) for k, v in zip(t.key, vals, strict=False)]
            removed.add(encode_key(values))
        else:
            if not (
                isinstance(item, dict)
                and type(item.get("checksum")) is str
                and len(item["checksum"]) == 64
                and type(item.get("occurrence")) is int
                and item["occurrence"] >= 0
            ):
                raise ValueError('expected {"checksum": hex, "occurrence": n}')
            removed.add(encode_key([bytes.fromhex(item["checksum"]), item["occurrence"]]))
    except (KeyError, TypeError, ValueError, EncodingError) as exc:
        imp.problem(file, line, f"removed key: {exc}", table=t.name)


def _json_row(imp: _Importer, t: _Table, build: _TableBuild, text: str, line: int, n: int, changes: bool) -> None:
    file = imp.path.name
    try:
        item = _loads(text)
    except ValueError as exc:
        imp.problem(file, line, f"invalid JSON: {exc}", table=t.name, row=n)
        return
    if not isinstance(item, dict) or not _is_hex_id(item.get("checksum")) or type(item.get("values")) is not list:
        imp.problem(file, line, 'expected {"checksum": 64 hex digits, "values": [...]}', table=t.name, row=n)
        return
    raw = item["values"]
    if len(raw) != len(t.names):
        imp.problem(file, line, f"expected {len(t.names)} values, found {len(raw)}", table=t.name, row=n)
        return
    values = _decode_values(imp, t, t.decoders, raw, file, line, n)
    if values is not None:
        occ = item.get("occurrence") if (changes and not t.key) else None
        if changes and not t.key and occ is None:
            imp.problem(
                file, line, "a row of a keyless table given as changes needs its occurrence", table=t.name, row=n
            )
            return
        imp.row(t, build, file, line, n, values, item["checksum"], occ)


# --- CSV ----------------------------------------------------------------------------------------


def _decode_values(imp: _Importer, t: _Table, decoders, raw, file: str, line: int | None, n: int) -> list[Any] | None:
    """A row's values decoded column by column (JSON values or CSV cells); None, with every bad
    value reported, when any does not decode."""
    values: list[Any] = []
    ok = True
    for name, dec, v in zip(t.names, decoders, raw, strict=False):
        try:
            values.append(dec(v))
        except ValueFormError as exc:
            imp.problem(file, line, str(exc), table=t.name, row=n, column=name)
            ok = False
    return values if ok else None


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """Let the csv module read cells up to ``limit`` characters while inside.

    The module refuses fields over 131072 characters by default, yet export writes cells of any
    size; the input as a whole is already bounded by --max-size, so that is the right bound for one
    cell too. The limit is process-wide, hence restored on the way out.
    """
    old = csv.field_size_limit()
    try:
        csv.field_size_limit(limit)
    except OverflowError:  # a C long narrower than the limit (Windows)
        csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _read_csv(imp: _Importer, directory: Path, max_size: int) -> ImportedTree | None:
    with _csv_field_limit(max_size):
        return _read_csv_files(imp, directory)


def _read_csv_files(imp: _Importer, directory: Path) -> ImportedTree | None:
    mfile = MANIFEST
    try:
        manifest = _loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        imp.problem(mfile, None, "the manifest is missing")
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        imp.problem(mfile, None, f"invalid JSON: {exc}")
        return None
    meta = manifest.get("metadata") if isinstance(manifest, dict) else None
    if not _check_metadata(meta, CSV_FORMAT, imp.problems, mfile, None):
        return None
    imp.set_base(meta, mfile)
    entries = manifest.get("tables")
    if type(entries) is not list:
        imp.problem(mfile, None, "tables is missing or not a list")
        return None
    for _i, h in enumerate(entries):
        t = _check_header(h, imp.problems, (mfile, None))
        if t is None:
            continue
        if t.name not in meta["tables"] or meta["tables"][t.name] != h["rows"]:
            imp.problem(mfile, None, "the table's row count is not the metadata's", table=t.name)
        try:
            fname = check_name(h.get("file"), "file name")
        except ExportError as exc:
            imp.problem(mfile, None, exc.message, table=t.name)
            continue
        path = directory / fname
        if not path.is_file():
            imp.problem(fname, None, "the file is missing", table=t.name)
            continue
        digest = _sha256_of(path)
        if digest != h.get("sha256"):
            imp.problem(fname, None, f"SHA-256 is {digest}, the manifest says {h.get('sha256')}", table=t.name)
        mode = h.get("mode", "full")
        if mode == "changes" and meta["kind"] != "incremental":
            imp.problem(mfile, None, "a table given as changes in a full export", table=t.name)
            continue
        removed = _csv_removed(imp, t, directory, h) if mode == "changes" else set()
        if removed is None:
            continue
        build = imp.build_for(t, mode, mfile, None, removed)
        if build is None:
            continue
        occurrence = mode == "changes" and not t.key
        columns = t.names + ([OCCURRENCE_COLUMN] if occurrence else [])
        count = 0
        imp.start_table(t.name, h.get("rows"))
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, strict=True)
            try:
                header = next(reader, None)
                if header != columns:
                    imp.problem(fname, 1, f"the header is {header!r}, expected the columns {columns!r}", table=t.name)
                    continue
                for cells in reader:
                    count += 1
                    line = reader.line_num
                    if len(cells) != len(columns):
                        imp.problem(
                            fname, line, f"expected {len(columns)} cells, found {len(cells)}", table=t.name, row=count
                        )
                        continue
                    values = _decode_values(imp, t, t.cells, cells, fname, line, count)
                    occ = None
                    if occurrence:
                        try:
                            occ = int(cells[-1])
                        except ValueError:
                            imp.problem(
                                fname,
                                line,
                                f"occurrence {cells[-1]!r} is not an integer",
                                table=t.name,
                                row=count,
                                column=OCCURRENCE_COLUMN,
                            )
                            continue
                    if values is not None:
                        imp.row(t, build, fname, line, count, values, None, occ)
            except (csv.Error, UnicodeDecodeError) as exc:
                imp.problem(fname, None, f"not a readable CSV file: {exc}", table=t.name)
                continue
        in_file = h.get("changed_rows") if mode == "changes" else h["rows"]
        if count != in_file:
            imp.problem(fname, None, f"the file has {count} rows, the manifest says {in_file}", table=t.name)
            build.finish(t.schema)
            continue
        imp.table_done(t, build, fname, None, h["rows"])
    return imp.finish(meta, mfile)


def _csv_removed(imp: _Importer, t: _Table, directory: Path, h: dict[str, Any]) -> set[bytes] | None:
    """The keys an incremental CSV export removes from a table (its ``.removed.csv`` file)."""
    try:
        rname = check_name(h.get("removed_file"), "file name")
    except ExportError as exc:
        imp.problem(MANIFEST, None, exc.message, table=t.name)
        return None
    path = directory / rname
    if not path.is_file():
        imp.problem(rname, None, "the file is missing", table=t.name)
        return None
    digest = _sha256_of(path)
    if digest != h.get("removed_sha256"):
        imp.problem(rname, None, f"SHA-256 is {digest}, the manifest says {h.get('removed_sha256')}", table=t.name)
    expected = list(t.key) if t.key else ["checksum", "occurrence"]
    parse = [from_cell(t.schema.column(k).type) for k in t.key] if t.key else None
    removed: set[bytes] = set()
    count = 0
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, None)
            if header != expected:
                imp.problem(rname, 1, f"the header is {header!r}, expected {expected!r}", table=t.name)
                return None
            for cells in reader:
                count += 1
                line = reader.line_num
                try:
                    if len(cells) != len(expected):
                        raise ValueError(f"expected {len(expected)} cells, found {len(cells)}")
                    if parse is not None:
                        removed.add(encode_key([p(c) for p, c in zip(parse, cells, strict=False)]))
                    else:
                        checksum, occ = bytes.fromhex(cells[0]), int(cells[1])
                        if len(checksum) != 32 or occ < 0:
                            raise ValueError("expected a 64-digit checksum and an occurrence >= 0")
                        removed.add(encode_key([checksum, occ]))
                except (ValueError, ValueFormError, EncodingError) as exc:
                    imp.problem(rname, line, f"removed key: {exc}", table=t.name, row=count)
        except (csv.Error, UnicodeDecodeError) as exc:
            imp.problem(rname, None, f"not a readable CSV file: {exc}", table=t.name)
            return None
    if count != h.get("removed"):
        imp.problem(rname, None, f"the file has {count} keys, the manifest says {h.get('removed')}", table=t.name)
    return removed


# --- entry point --------------------------------------------------------------------------------


def _file_chunks(raw: IO[bytes]) -> Iterator[bytes]:
    while chunk := raw.read(_CHUNK):
        yield chunk


def _zstd_chunks(raw: IO[bytes], limit: int) -> Iterator[bytes]:
    """The decompressed bytes of a zstd file, checked to the end of its frame; raises _ReadError
    when the file is not zstd, damaged, truncated, or expands to more than ``limit`` bytes.

    The compressed input is fed a little at a time because one call's output is not bounded
    otherwise: zstd expands a few bytes into up to 128 KiB, so 1 KiB in gives at most 32 MiB out.
    """
    d = zstandard.ZstdDecompressor().decompressobj()
    left = limit
    started = False
    while data := raw.read(_ZSTD_FEED):
        try:
            out = d.decompress(data)
        except zstandard.ZstdError as exc:
            if not started:
                raise _ReadError(f"the file is not zstd-compressed, though its name ends in .zst ({exc})") from None
            raise _ReadError(f"the compressed data is damaged: {exc}") from None
        started = True
        left -= len(out)
        if left < 0:
            raise _ReadError("the decompressed data is larger than the maximum input size (--max-size)")
        if out:
            yield out
        if d.eof:
            if d.unused_data or raw.read(1):
                raise _ReadError("the file goes on after the end of its zstd frame")
            return
    if not started:
        raise _ReadError("the file is empty: not even a zstd header")
    raise _ReadError("the compressed file is truncated: it ends before its zstd frame does")


def _input_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@contextmanager
def _decrypted(raw: IO[bytes], path: Path, passphrase: str | PassphraseSource | None) -> Iterator[io.BufferedReader]:
    """The plaintext of an age-encrypted export (agefile.py) as a stream; any failure to decrypt,
    now or while the rest is read, is one error that names the file."""
    from snapgit.exchange.agefile import CHUNK, AgeError, AgeReader

    try:
        yield io.BufferedReader(AgeReader(raw, get_passphrase(passphrase)), CHUNK)
    except AgeError as exc:
        raise type(exc)(f"cannot decrypt {path.name}: {exc.message}; nothing imported", hint=exc.hint) from None


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` is an encrypted export file (one that needs a passphrase to import)."""
    from snapgit.exchange.agefile import is_age

    try:
        with open(path, "rb") as f:
            return is_age(f.read(64))
    except OSError:
        return False  # a directory, or no file: the import says what is wrong with it


def import_into(
    objects: ObjectStore,
    writer: ObjectWriter,
    path: Path,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    progress: Any = None,
    passphrase: str | PassphraseSource | None = None,
) -> ImportedTree:
    """Validate ``path`` and add its snapshot tree to ``writer``; raises ImportValidationError.
    An age-encrypted file is decrypted as it is read, with ``passphrase`` (None: from the
    environment), and its content is compressed or not whatever its name says."""
    path = Path(path)
    imp = _Importer(objects, writer, path, progress)
    if not path.exists():
        raise ImportValidationError(path, [Problem(str(path), None, "no such file or directory")], 0)
    size = _input_size(path)
    if size > max_size:
        raise ImportValidationError(
            path,
            [Problem(path.name, None, f"the input is {size:,} bytes, more than the maximum {max_size:,} (--max-size)")],
            0,
        )
    result = None
    if path.is_dir():
        result = _read_csv(imp, path, max_size)
    else:
        with open(path, "rb") as raw:
            if is_encrypted(path):
                with _decrypted(raw, path, passphrase) as plain:
                    packed = plain.peek(len(_ZSTD_MAGIC)).startswith(_ZSTD_MAGIC)
                    result = _read_json(imp, _zstd_chunks(plain, max_size) if packed else _file_chunks(plain))
            else:
                chunks = _zstd_chunks(raw, max_size) if path.name.endswith(".zst") else _file_chunks(raw)
                result = _read_json(imp, chunks)
    if imp.problems or result is None:
        if not imp.problems:
            imp.problem(path.name, None, "the file could not be read")
        raise ImportValidationError(path, imp.problems.items, imp.problems.more)
    return result
