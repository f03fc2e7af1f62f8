"""Export files: a commit as portable JSON, a directory of CSV files, or SQL statements.

The JSON and CSV layouts are specified in docs/format.md ("Export files"), their names and
version in :mod:`snapgit.exchange.fileformat`; values take the typed forms of
:mod:`snapgit.exchange.typedvalue`. Everything is written as a stream, one row at a time, in the
order of the table's tree (key order), so memory stays flat whatever the size of the commit, and
to a temporary name renamed into place at the end, so a failed export leaves no half file.

The JSON document is written **one row per line**, with fixed lines between (see the format
page): a reader needs no streaming JSON parser, it parses line by line. The whole file is still
one standard JSON document for any other tool.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from snapgit.encoding import decode_row
from snapgit.exchange.fileformat import (
    CSV_FORMAT,
    FORMAT_VERSION,
    FORMATS,
    JSON_FORMAT,
    MANIFEST,
    OCCURRENCE_COLUMN,
    ExportError,
    check_name,
)
from snapgit.exchange.typedvalue import ValueFormError, encoder, to_cell
from snapgit.objects import TableEntry, decode_schema
from snapgit.schema import TableSchema
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.store.objectstore import ObjectReader
from snapgit.store.pack import fsync_dir
from snapgit.store.privatefile import PRIVATE_DIR_MODE, open_private
from snapgit.tree.diff import REMOVED, diff_trees
from snapgit.tree.prolly import iter_leaves
from snapgit.version import __version__

__all__ = ["ExportResult", "check_encryptable", "check_output", "export_commit", "keyless_occurrence"]


@dataclass
class ExportResult:
    path: Path
    format: str
    kind: str  # full or incremental
    commit: bytes
    base: bytes | None
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table
    removed: dict[str, int] = field(default_factory=dict)  # removed keys written per table
    bytes: int = 0
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def keyless_occurrence(key: bytes) -> int:
    """The occurrence number of a keyless table's row key (format.md 8.5: the last 8 bytes)."""
    return int.from_bytes(key[-8:], "big") - 2**63


@dataclass
class _Table:
    name: str
    entry: TableEntry
    schema: TableSchema
    mode: str  # full: every row; changes: rows added or changed, keys removed since the base
    base: TableEntry | None = None
    progress: Any = None  # a commit.Progress, told of the rows as they are written


def _plan(objects: ObjectReader, commit_id: bytes, tables: list[str] | None, base_id: bytes | None):
    root = read_root(objects, read_commit(objects, commit_id).tree).tables
    names = sorted(root)
    if tables:
        missing = [t for t in tables if t not in root]
        if missing:
            raise ExportError(f"no table {missing[0]!r} in commit {commit_id.hex()[:12]}")
        names = [n for n in names if n in tables]
    base_root = read_root(objects, read_commit(objects, base_id).tree).tables if base_id else {}
    out, removed_tables = [], []
    for name in names:
        check_name(name)
        tid = root[name]
        if base_id is not None and base_root.get(name) == tid:
            continue  # unchanged since the base: the importer takes it from there
        entry = read_table(objects, tid)
        schema = decode_schema(objects.get(entry.schema)[1])
        base = read_table(objects, base_root[name]) if name in base_root else None
        mode = "changes" if base is not None and base.key == entry.key else "full"
        out.append(_Table(name, entry, schema, mode, base))
    if base_id is not None:
        removed_tables = sorted(n for n in base_root if n not in root and (not tables or n in tables))
    return out, removed_tables


def _metadata(commit_id, base_id, kind, objects, plan, removed_tables, created_by) -> dict[str, Any]:
    commit = read_commit(objects, commit_id)
    return {
        "format": JSON_FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "commit": commit_id.hex(),
        "tree": commit.tree.hex(),
        "base": base_id.hex() if base_id else None,
        "base_tree": read_commit(objects, base_id).tree.hex() if base_id else None,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "created_by": created_by,
        "snapgit_version": __version__,
        "source_dialect": commit.meta.get("dialect"),
        "tables": {t.name: t.entry.rows for t in plan},
        "removed_tables": removed_tables,
    }


def _rows(objects: ObjectReader, t: _Table, base_reader: ObjectReader) -> Iterator[tuple[bytes, bytes, list[Any]]]:
    """(key, record id, values) of the rows to write, in key order."""
    progress = t.progress
    if progress is not None:
        progress.table(t.name, t.entry.rows if t.mode == "full" else None)
    if t.mode == "full":
        # a leaf's records at once: get_many finds and verifies them in one loop, several
        # times faster than one get each
        for _nid, leaf in iter_leaves(objects, t.entry.root):
            for key, rid, (_t, data) in zip(leaf.keys, leaf.ids, objects.get_many(leaf.ids), strict=False):
                yield key, rid, decode_row(data)
            if progress is not None:
                progress.advance(len(leaf.ids))
        return
    base = t.base
    assert base is not None  # a table is written as changes against its base (_plan)
    n = 0
    for ch in diff_trees(base_reader, base.root, objects, t.entry.root):
        if ch.op != REMOVED:
            new = ch.new
            assert new is not None  # a row added or changed has a record
            yield ch.key, new, decode_row(objects.get(new)[1])
            n += 1
            if progress is not None and n % 5000 == 0:
                progress.advance(5000)
    if progress is not None and n % 5000:
        progress.advance(n % 5000)


def _removed(
    objects: ObjectReader, t: _Table, form: Callable[[str], Callable[[Any], Any]] | None = None
) -> Iterator[dict[str, Any]]:
    # the old row has the base's columns; its key values are written in the new schema's forms
    # (JSON values by default; CSV cells with form=to_cell)
    base = t.base
    assert base is not None  # only a table written as changes has rows removed
    names = decode_schema(objects.get(base.schema)[1]).sorted_names
    key = t.entry.key
    enc = {c.name: (form or encoder)(c.type) for c in t.schema.columns}
    for ch in diff_trees(objects, base.root, objects, t.entry.root):
        if ch.op != REMOVED:
            continue
        rid = ch.old
        assert rid is not None  # a row removed had a record
        if key:
            old = dict(zip(names, decode_row(objects.get(rid)[1]), strict=False))
            yield {"key": [enc[k](old[k]) for k in key]}
        else:
            yield {"checksum": rid.hex(), "occurrence": keyless_occurrence(ch.key)}


def _value_error(t: _Table, rid: bytes, exc: Exception) -> ExportError:
    return ExportError(f"table {t.name!r}, row {rid.hex()[:12]}: {exc}")


# --- output files -------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_file(path: Path, passphrase: str | None = None) -> Iterator[IO[bytes]]:
    """The output file, written under a temporary name and renamed when the block ends; with a
    passphrase, encrypted in the age format (compressed first when the name without ``.age``
    ends in ``.zst``: encrypted bytes do not compress)."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    with _naming(path):
        fd = open_private(tmp)
    try:
        with os.fdopen(fd, "wb") as raw:
            sink: IO[bytes] = raw
            age = None
            if passphrase is not None:
                from snapgit.exchange.agefile import AgeWriter

                # buffered: the JSON writer hands over a line at a time, each chunk sealed once
                age = AgeWriter(raw, passphrase)
                sink = io.BufferedWriter(age, 1 << 16)
            if path.name.removesuffix(".age").endswith(".zst"):
                import zstandard

                with zstandard.ZstdCompressor(level=3).stream_writer(sink, closefd=False) as z:
                    yield z
            else:
                yield sink
            if age is not None:
                sink.flush()
                age.finish()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def check_output(path: Path) -> None:
    """Refuse an output path that exists, or whose folder does not."""
    if path.exists():
        raise ExportError(f"{path} exists already", hint="remove it, or give another -o PATH")
    folder = path.parent
    if not folder.exists():
        raise ExportError(
            f"cannot write {path}: the folder {folder} does not exist",
            hint="create it first, or give another -o PATH",
        )
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: {folder} is not a folder", hint="give another -o PATH")


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Report a failure to create the output under the user's path: the temporary name an
    export writes first is an implementation detail that would only confuse."""
    try:
        yield
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}", hint="give another -o PATH") from exc


# --- JSON ---------------------------------------------------------------------------------------


def _write_json(objects, plan, meta, out: IO[bytes], result: ExportResult) -> None:
    w = io.TextIOWrapper(out, encoding="utf-8", newline="\n", write_through=False)
    w.write('{"metadata":' + dumps(meta) + ",\n")
    w.write('"tables":[\n')
    for ti, t in enumerate(plan):
        header = {
            "name": t.name,
            "mode": t.mode,
            "key": t.entry.key,
            "rows": t.entry.rows,
            "columns": t.schema.sorted_names,
            "schema": t.schema.to_obj(),
        }
        w.write(dumps(header)[:-1] + ",\n")
        if t.mode == "changes":
            w.write('"removed":[')
            n = 0
            for item in _removed(objects, t):
                w.write(("\n" if n == 0 else ",\n") + dumps(item))
                n += 1
            w.write("\n],\n")
            result.removed[t.name] = n
        w.write('"data":[')
        encs = [encoder(t.schema.column(n).type) for n in t.schema.sorted_names]
        keyless = not t.entry.key
        n = 0
        for key, rid, values in _rows(objects, t, objects):
            try:
                row: dict[str, Any] = {
                    "checksum": rid.hex(),
                    "values": [e(v) for e, v in zip(encs, values, strict=False)],
                }
            except ValueFormError as exc:
                raise _value_error(t, rid, exc) from exc
            if keyless and t.mode == "changes":
                row["occurrence"] = keyless_occurrence(key)
            w.write(("\n" if n == 0 else ",\n") + dumps(row))
            n += 1
        result.rows[t.name] = n
        w.write("\n]}" + (",\n" if ti + 1 < len(plan) else "\n"))
    w.write("]}\n")
    w.flush()
    w.detach()


# --- CSV ----------------------------------------------------------------------------------------


class _CsvFile:
    """A CSV file written in the export's dialect, its SHA-256 taken as it is written."""

    def __init__(self, path: Path) -> None:
        self._f = os.fdopen(open_private(path), "w", encoding="utf-8", newline="")
        self._digest = hashlib.sha256()
        digest, f = self._digest, self._f

        class _Hashing:
            def write(self, s: str) -> int:
                digest.update(s.encode("utf-8"))
                return f.write(s)

        self.writer = csv.writer(_Hashing(), lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def close(self) -> str:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return self._digest.hexdigest()


def _write_csv(objects, plan, meta, directory: Path, result: ExportResult) -> None:
    tables = []
    for t in plan:
        fname = check_name(t.name) + ".csv"
        names = t.schema.sorted_names
        cells = [to_cell(t.schema.column(n).type) for n in names]
        # rows of a keyless table given as changes carry their occurrence number (format.md 19.3)
        occurrence = t.mode == "changes" and not t.entry.key
        out = _CsvFile(directory / fname)
        n = 0
        try:
            out.writer.writerow(names + ([OCCURRENCE_COLUMN] if occurrence else []))
            for key, rid, values in _rows(objects, t, objects):
                try:
                    row = [c(v) for c, v in zip(cells, values, strict=False)]
                except ValueFormError as exc:
                    raise _value_error(t, rid, exc) from exc
                out.writer.writerow(row + [str(keyless_occurrence(key))] if occurrence else row)
                n += 1
        finally:
            digest = out.close()
        result.rows[t.name] = n
        # rows: the table's, as in the metadata; a table given as changes has fewer in its file
        entry = {
            "name": t.name,
            "file": fname,
            "key": t.entry.key,
            "rows": t.entry.rows,
            "sha256": digest,
            "columns": names,
            "schema": t.schema.to_obj(),
            "mode": t.mode,
        }
        if t.mode == "changes":
            entry["changed_rows"] = n
            rname = check_name(t.name) + ".removed.csv"
            out = _CsvFile(directory / rname)
            removed = 0
            try:
                out.writer.writerow(list(t.entry.key) if t.entry.key else ["checksum", "occurrence"])
                for item in _removed(objects, t, to_cell):
                    out.writer.writerow(item["key"] if t.entry.key else [item["checksum"], str(item["occurrence"])])
                    removed += 1
            finally:
                digest = out.close()
            result.removed[t.name] = removed
            entry |= {"removed_file": rname, "removed": removed, "removed_sha256": digest}
        tables.append(entry)
    manifest = {
        "metadata": {**meta, "format": CSV_FORMAT},
        "csv": {
            "encoding": "utf-8",
            "dialect": "RFC 4180, CRLF line ends, a header row of column names",
            "null": "the empty cell",
            "empty_string": "'",
            "formula_escape": "'",
            "tagged_prefix": "\\",
        },
        "tables": tables,
    }
    with os.fdopen(open_private(directory / MANIFEST), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=1, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(directory)


# --- SQL ----------------------------------------------------------------------------------------


def _write_sql(objects, plan, meta, out: IO[bytes], dialect: str, result: ExportResult) -> None:
    from snapgit.db.ddl import Target, add_foreign_key_sql, create_table_sql, quote, table_order
    from snapgit.db.params import WriteValueError, column_write
    from snapgit.exchange.sqlgen import DIALECTS, SqlRenderError, literal

    if dialect not in DIALECTS:
        raise ExportError(f"unknown dialect {dialect!r}", hint="use sqlite, postgresql or mysql")
    if meta.get("base"):
        _write_sql_changes(objects, meta, out, dialect, result)
        return
    w = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
    w.write(f"-- snapgit export of commit {meta['commit']} ({meta['created_at']}), dialect {dialect}\n")
    w.write("-- loads into an empty database\n")
    if dialect == "mysql":
        w.write("SET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSET SESSION explicit_defaults_for_timestamp = 1;\n")
        w.write("START TRANSACTION;\n")
    else:
        w.write("BEGIN;\n")
    # SQLite from SQLite: the declared types, whose affinities keep each value's storage class
    target = Target(dialect, source="sqlite" if dialect == "sqlite" == meta.get("source_dialect") else None)
    schemas = [t.schema for t in plan]
    names = {s.name for s in schemas}
    later, made = [], set()
    for s in table_order(schemas):
        inline = []
        for fk in s.foreign_keys:
            if fk.ref_table not in names:
                continue  # a table not exported: its rows are not here either
            if dialect == "sqlite" or fk.ref_table in made or fk.ref_table == s.name:
                inline.append(fk)
            else:
                later.append((s.name, fk))
        for stmt in create_table_sql(s, target, inline):
            w.write(stmt + ";\n")
        made.add(s.name)
    for table, fk in later:
        w.write(add_foreign_key_sql(table, fk, dialect) + ";\n")
    by_name = {t.name: t for t in plan}
    for s in table_order(schemas):
        t = by_name[s.name]
        cols = t.schema.sorted_names
        types = [t.schema.column(c).type for c in cols]
        convs = [column_write(dialect, ty) for ty in types]
        casts = [_pg_cast(ty) if dialect == "postgresql" else "" for ty in types]
        head = f"INSERT INTO {quote(t.name, dialect)} ({', '.join(quote(c, dialect) for c in cols)}) VALUES\n"
        batch: list[str] = []
        n = 0
        for _key, rid, values in _rows(objects, t, objects):
            try:
                lits = []
                for conv, cast, v in zip(convs, casts, values, strict=False):
                    p = conv(v) if conv is not None else v
                    lit = _pg_float(p) if dialect == "postgresql" and type(p) is float else literal(p, dialect)
                    lits.append(lit + cast if p is not None and cast else lit)
            except (WriteValueError, SqlRenderError) as exc:
                raise _value_error(t, rid, exc) from exc
            batch.append("(" + ", ".join(lits) + ")")
            n += 1
            if len(batch) >= 200:
                w.write(head + ",\n".join(batch) + ";\n")
                batch = []
        if batch:
            w.write(head + ",\n".join(batch) + ";\n")
        result.rows[t.name] = n
    w.write("COMMIT;\n")
    w.flush()
    w.detach()


def _write_sql_changes(objects, meta, out: IO[bytes], dialect: str, result: ExportResult) -> None:
    """``--since`` in SQL: the statements that turn a database holding the base commit into one
    holding the exported commit (what ``snap diff BASE REV --sql`` prints), in one transaction."""
    from snapgit.compare.diff import Side, diff_sides
    from snapgit.exchange.sqlgen import SqlRenderError, diff_to_sql

    def side(cid: str) -> Side:
        return Side(objects, dict(read_root(objects, read_commit(objects, bytes.fromhex(cid)).tree).tables), cid[:12])

    diffs = diff_sides(side(meta["base"]), side(meta["commit"]), list(meta["tables"]) or None)
    w = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
    w.write(
        f"-- snapgit export of the changes from commit {meta['base']} to {meta['commit']}"
        f" ({meta['created_at']}), dialect {dialect}\n"
    )
    w.write("-- applies to a database holding the base commit\n")
    w.write("START TRANSACTION;\n" if dialect == "mysql" else "BEGIN;\n")
    try:
        for statement in diff_to_sql(diffs, dialect):
            w.write(statement + "\n")
    except SqlRenderError as exc:
        raise ExportError(f"cannot write the changes as {dialect} SQL: {exc}") from exc
    w.write("COMMIT;\n")
    for d in diffs:
        st = d.stat()
        result.rows[d.name] = st.added + st.changed
        if st.removed:
            result.removed[d.name] = st.removed
    w.flush()
    w.detach()


def _pg_cast(portable: str) -> str:
    from snapgit.db.ddl import Target, column_type

    if portable.startswith("array<") or portable.split("(")[0] in ("json", "timetz", "uuid", "bytes"):
        return "::" + column_type(portable, Target("postgresql"))
    return ""


def _pg_float(v: float) -> str:
    # '-0' and the non-finite values only survive as float8 text: -0.0 as a numeric literal is 0
    if v != v or v in (float("inf"), float("-inf")) or (v == 0 and str(v).startswith("-")):
        text = "NaN" if v != v else "Infinity" if v > 0 else "-Infinity" if v < 0 else "-0"
        return f"'{text}'::float8"
    return repr(v)


# --- entry point --------------------------------------------------------------------------------


def check_encryptable(fmt: str) -> None:
    """Refuse to encrypt a format that is not one file: an age file is one stream, and a CSV
    export is a directory (an archive of it would be a format of its own, which neither
    `snap import` nor a spreadsheet reads directly)."""
    if fmt == "csv":
        raise ExportError(
            "--encrypt writes one file, and a CSV export is a directory",
            hint="encrypt a json (or .json.zst) or sql export instead",
        )


def export_commit(
    objects: ObjectReader,
    commit_id: bytes,
    path: Path,
    *,
    fmt: str,
    tables: list[str] | None = None,
    base_id: bytes | None = None,
    dialect: str | None = None,
    created_by: str = "",
    progress: Any = None,
    passphrase: str | None = None,
) -> ExportResult:
    """Write ``commit_id`` (or, with ``base_id``, what changed since it) to ``path``; with a
    passphrase, as an age-encrypted file (:mod:`snapgit.exchange.agefile`)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}", hint="use json, csv or sql")
    if passphrase is not None:
        check_encryptable(fmt)
    started = time.monotonic()
    path = Path(path)
    check_output(path)
    kind = "incremental" if base_id is not None else "full"
    plan, removed_tables = _plan(objects, commit_id, tables, base_id)
    meta = _metadata(commit_id, base_id, kind, objects, plan, removed_tables, created_by)
    for t in plan:
        t.progress = progress
    result = ExportResult(path, fmt, kind, commit_id, base_id)
    if fmt == "csv":
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        with _naming(path):
            tmp.mkdir(mode=PRIVATE_DIR_MODE)
        try:
            _write_csv(objects, plan, meta, tmp, result)
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        result.bytes = sum(p.stat().st_size for p in path.iterdir())
    else:
        with _atomic_file(path, passphrase) as out:
            if fmt == "json":
                _write_json(objects, plan, meta, out, result)
            else:
                _write_sql(objects, plan, meta, out, dialect or meta.get("source_dialect") or "sqlite", result)
        result.bytes = path.stat().st_size
    result.seconds = time.monotonic() - started
    return result
