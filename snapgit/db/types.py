"""Native column types -> portable types, and how each column is read.

Reflection maps every column's native type to a portable type (the names of
:mod:`snapgit.schema`); a scan reads each column with a SELECT expression, an ORDER BY expression
and, where the driver's value is not canonical already, a converter (:mod:`snapgit.db.values`).
Both are decided here, from the portable type and the native spelling alone, so that a scan works
from a stored schema as well as from a fresh reflection.

The rule: the same logical rows, read from SQLite, PostgreSQL and MariaDB into columns whose
portable types agree, give identical Python values and so identical row bytes.

Mapping (native -> portable -> canonical Python value)
------------------------------------------------------

=================== ========================= ============================ ==========================
portable            SQLite (declared type)    PostgreSQL                   MariaDB / MySQL
=================== ========================= ============================ ==========================
smallint  -> int    SMALLINT INT2 TINYINT     smallint                     tinyint, tinyint unsigned,
                                                                           smallint, year
integer   -> int    INTEGER INT MEDIUMINT,    integer                      smallint unsigned,
                    any name with "INT"                                    mediumint [unsigned], int
bigint    -> int    BIGINT INT8               bigint, oid                  int unsigned, bigint
                    "UNSIGNED BIG INT"                                     [unsigned] (exact beyond
                                                                           2**63), bit(n>1)
boolean   -> bool   BOOLEAN BOOL (0/1; other  boolean                      tinyint(1) (0/1; other
                    values stay as stored)                                 values stay ints), bit(1)
real      -> float  (none: see double)        real, read as float8         float, read as DOUBLE
double    -> float  REAL FLOAT DOUBLE         double precision             double, real
                    DOUBLE PRECISION FLOAT8
numeric(p,s)        NUMERIC DECIMAL [(p,s)],  numeric [(p,s)], money       decimal(p,s)
  -> Decimal        any other name (SQLite's  (read as numeric)
                    NUMERIC affinity)
text      -> str    TEXT CLOB, no type, ANY   text, varchar, citext,       tinytext..longtext,
                                              name, enum, inet, cidr,      enum, set, inet4, inet6
                                              macaddr, xml, bit, varbit,
                                              tsvector, tsquery, and any
                                              type without a typed form
                                              (ranges, geometric,
                                              composite, hstore, ...),
                                              all read as ::text
varchar(n) -> str   VARCHAR NVARCHAR          character varying(n)         varchar(n)
                    "VARYING CHARACTER"
char(n)   -> str    CHAR NCHAR CHARACTER      character(n) (::text strips  char(n) (the server
                    (kept as stored)          the padding)                 strips the padding)
bytes     -> bytes  BLOB BINARY VARBINARY     bytea                        binary varbinary *blob,
                                                                           geometry, point, ...
date      -> date   DATE ('YYYY-MM-DD')       date                         date
time      -> time   TIME ('HH:MM:SS.ffffff')  time                         time (within a day;
                                                                           durations stay
                                                                           timedelta)
timetz    -> time   TIMETZ, "TIME WITH TIME   time with time zone          (none)
  (aware)           ZONE" (text with offset)
timestamp           DATETIME TIMESTAMP        timestamp                    datetime
  -> naive datetime ('YYYY-MM-DD HH:MM:SS[.f]')
timestamptz         TIMESTAMPTZ, "TIMESTAMP   timestamp with time zone     timestamp (read in a
  -> aware, UTC     WITH TIME ZONE" (text     (session TimeZone UTC)       '+00:00' session)
                    with offset)
interval            (none)                    interval (a month counts     (none)
  -> timedelta                                30 days: psycopg's rule)
uuid -> UUID        UUID GUID UNIQUEIDENTIFIER uuid                        uuid
                    (32 or 36 lower-case hex
                    digits, or 16 bytes)
json -> Json        JSON JSONB (text; a bare  json, jsonb (read as text,   json (longtext with
                    number is a JSON number)  so JSON null != SQL NULL)    json_valid(), and MySQL's)
array<T> -> list    (none)                    T[] for any supported T      (none)
=================== ========================= ============================ ==========================

NULL is None everywhere. A value that does not have the form its column promises (text in a
SQLite INTEGER column, a MariaDB zero date, JSON text that does not parse) is kept as the driver
returned it: snapgit never loses data to a conversion.

Worth knowing:

* ``real`` is read as the exact double value of the stored float4 (0.1 reads 0.10000000149011612)
  on both PostgreSQL and MariaDB: MariaDB prints FLOAT with 6 digits, which loses data.
* Floats: PostgreSQL keeps NaN and -0.0; SQLite stores NaN as NULL, and SQLite and MariaDB store
  -0.0 as 0.0. One NaN is canonical (psycopg parses every NaN to the same bits).
* SQLite's NUMERIC affinity (any declared type it does not know, ``UUID`` and ``JSON`` included)
  turns text that looks like a number into a number *when it is written*: a hex UUID of only
  digits, or the JSON text ``2.0``, is stored as an integer. Reading cannot undo that.
* SQLite texts are converted only in ISO forms ('YYYY-MM-DD HH:MM[:SS[.f]]', 'T' accepted).
  A value whose text (or storage class) is not the one its canonical value is written back as
  (:data:`snapgit.db.params.SQLITE_CANONICAL`) keeps it: a :class:`snapgit.encoding.Spelled`.
  So do PostgreSQL ``json`` and MariaDB JSON documents whose text is not canonical.
* PostgreSQL ``interval`` becomes a timedelta, with the server's text as its spelling where
  a timedelta would print otherwise ('1 day -00:00:01', '49:00:00'; a timedelta evens days
  and time out). A date, time,
  timestamp or interval value that Python's types cannot hold (a BC date, ``infinity``,
  ``24:00:00``, an interval beyond 999,999,999 days) is read as its text, value by value
  (:func:`snapgit.db.values.register_pg_text_fallback`): the other values of the column keep
  their typed form, and the text is written back as it was read. So is an interval with
  months or years (psycopg counts a year as 365 days, PostgreSQL's comparison as 360), and an
  array whose lower bounds are not 1 (``'[0:2]={7,8,9}'``), which a list cannot say.
* MariaDB ``bigint unsigned`` above 2**63-1 and ``time`` values outside a day stay exact Python
  ints and timedeltas, but a restore into another database's bigint or time cannot hold them.

* MariaDB/MySQL spatial types (geometry, point, ...) are read as the server's own bytes of the
  value (its SRID, 4 bytes little-endian, then the WKB), which a write gives back as they are:
  ``bytes`` on other engines.

Not supported (:class:`~snapgit.db.errors.UnsupportedTypeError` at reflect time):
MariaDB/MySQL vector. SQLite supports every declared
type, by its type affinity; PostgreSQL every type, by its text form.

Key order
---------
Scans in key order must agree with :func:`snapgit.encoding.encode_key`: text by code point
(PostgreSQL ``COLLATE "C"``; MariaDB ``CAST(... AS BINARY)`` of the UTF-8 text, which also sorts
enums and sets by label; SQLite ``COLLATE BINARY``), NULLs first (PostgreSQL ``NULLS FIRST``; the
others sort NULL first already), MariaDB UUIDs by their bytes (the server's own order swaps the
time fields of version-1 UUIDs).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass

from snapgit.db import values as V
from snapgit.db.params import canonical_write
from snapgit.db.values import Converter
from snapgit.encoding import Json, Spelled

__all__ = [
    "ColumnRead",
    "PgType",
    "sqlite_portable",
    "postgresql_portable",
    "mysql_portable",
    "mysql_native",
    "column_read",
]


@dataclass(frozen=True)
class ColumnRead:
    """How a scan reads one column. ``select`` and ``order`` are SQL with ``{c}`` standing for the
    quoted column name; ``convert`` is None when the driver's values are canonical already."""

    select: str
    convert: Converter | None
    order: str


_PLAIN = ColumnRead("{c}", None, "{c}")


def _args(portable: str) -> tuple[str, list[int]]:
    """("numeric", [10, 2]) for "numeric(10,2)"."""
    m = re.fullmatch(r"([a-z]+)\((\d+)(?:,(-?\d+))?\)", portable)
    if not m:
        return portable, []
    return m.group(1), [int(g) for g in m.groups()[1:] if g is not None]


def _element(portable: str) -> str | None:
    if portable.startswith("array<") and portable.endswith(">"):
        return portable[6:-1]
    return None


# --- SQLite -------------------------------------------------------------------------------------

_SQLITE_NAMES = {
    "INTEGER": "integer",
    "INT": "integer",
    "MEDIUMINT": "integer",
    "BIGINT": "bigint",
    "INT8": "bigint",
    "UNSIGNED BIG INT": "bigint",
    "SMALLINT": "smallint",
    "INT2": "smallint",
    "TINYINT": "smallint",
    "BOOLEAN": "boolean",
    "BOOL": "boolean",
    "REAL": "double",
    "FLOAT": "double",
    "FLOAT4": "double",
    "FLOAT8": "double",
    "DOUBLE": "double",
    "DOUBLE PRECISION": "double",
    "NUMERIC": "numeric",
    "DECIMAL": "numeric",
    "TEXT": "text",
    "CLOB": "text",
    "ANY": "text",
    "": "text",
    "VARCHAR": "varchar",
    "NVARCHAR": "varchar",
    "VARYING CHARACTER": "varchar",
    "CHARACTER VARYING": "varchar",
    "CHAR": "char",
    "NCHAR": "char",
    "CHARACTER": "char",
    "NATIVE CHARACTER": "char",
    "BLOB": "bytes",
    "BINARY": "bytes",
    "VARBINARY": "bytes",
    "BYTEA": "bytes",
    "DATE": "date",
    "TIME": "time",
    "TIME WITHOUT TIME ZONE": "time",
    "TIMETZ": "timetz",
    "TIME WITH TIME ZONE": "timetz",
    "DATETIME": "timestamp",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITHOUT TIME ZONE": "timestamp",
    "TIMESTAMPTZ": "timestamptz",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "JSON": "json",
    "JSONB": "json",
    "UUID": "uuid",
    "GUID": "uuid",
    "UNIQUEIDENTIFIER": "uuid",
}
_SQLITE_DECL = re.compile(r"([A-Z0-9_ ]*?)\s*(?:\(\s*([+-]?\d+)\s*(?:,\s*([+-]?\d+)\s*)?\))?")


def sqlite_portable(declared: str) -> str:
    """The portable type of a SQLite column declared as ``declared`` (never unsupported)."""
    d = " ".join((declared or "").upper().split())
    m = _SQLITE_DECL.fullmatch(d)
    name, a, b = (m.group(1).strip(), m.group(2), m.group(3)) if m else (d, None, None)
    p = _SQLITE_NAMES.get(name)
    if p is None:  # SQLite's affinity rules, in SQLite's order
        if "INT" in d:
            return "integer"
        if "CHAR" in d or "CLOB" in d or "TEXT" in d:
            return "text"
        if "BLOB" in d:
            return "bytes"
        if "REAL" in d or "FLOA" in d or "DOUB" in d:
            return "double"
        return "numeric"
    if p == "numeric" and a is not None:
        return f"numeric({int(a)},{int(b) if b is not None else 0})"
    if p in ("varchar", "char"):
        return f"{p}({int(a)})" if a is not None else "text"
    return p


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgType:
    """A PostgreSQL type with domains resolved: ``pg_type.typname``, ``typtype`` ('b' base,
    'e' enum, 'r' range, ...), the typmod, and the element type of an array."""

    name: str
    kind: str
    mod: int = -1
    element: PgType | None = None


_PG_NAMES = {
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "oid": "bigint",
    "bool": "boolean",
    "float4": "real",
    "float8": "double",
    "money": "numeric",
    "text": "text",
    "citext": "text",
    "name": "text",
    "char": "char(1)",
    "bytea": "bytes",
    "date": "date",
    "time": "time",
    "timetz": "timetz",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "interval": "interval",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "json",
    "inet": "text",
    "cidr": "text",
    "macaddr": "text",
    "macaddr8": "text",
    "xml": "text",
    "bit": "text",
    "varbit": "text",
    "tsvector": "text",
    "tsquery": "text",
}


def postgresql_portable(t: PgType) -> str | None:
    """The portable type of a PostgreSQL type. A type snapgit has no typed form for (an enum, a
    range, a composite or geometric type, hstore, any extension's type) is ``text``: every
    PostgreSQL type has a text form, read with ``::text`` and written back as text the server
    casts, while the column's ``native`` type keeps what it was. Never None: the ``str | None``
    is the signature the other engines share."""
    if t.element is not None:
        e = postgresql_portable(t.element)
        return "array<text>" if e is None or e.startswith("array<") else f"array<{e}>"
    if t.kind != "b":
        return "text"
    if t.name == "numeric":
        if t.mod < 4:
            return "numeric"
        m = t.mod - 4
        scale = ((m & 0x7FF) ^ 1024) - 1024  # PostgreSQL 15 allows negative scales
        return f"numeric({(m >> 16) & 0xFFFF},{scale})"
    if t.name in ("varchar", "bpchar"):
        if t.mod < 4:
            return "text"
        return f"{'varchar' if t.name == 'varchar' else 'char'}({t.mod - 4})"
    return _PG_NAMES.get(t.name, "text")


_PG_PLAIN_TEXT = re.compile(r"(text|character varying(\(\d+\))?|character(\(\d+\))?|bpchar|name)")
_PG_TEXTLIKE = ("text", "varchar", "char")


def _pg_read(portable: str, native: str) -> ColumnRead:
    base, _ = _args(portable)
    elem = _element(portable)
    if base in _PG_TEXTLIKE:
        # ::text strips char(n) padding (as MariaDB does) and reads enums, inet, xml... as text
        bare = native.split(" COLLATE ", 1)[0]
        order = '{c} COLLATE "C"' if _PG_PLAIN_TEXT.fullmatch(bare) else '{c}::text COLLATE "C"'
        return ColumnRead("{c}::text", None, order)
    if base == "json":
        # json keeps the text it was given, jsonb its own normal form of the document
        exact = native.split(" COLLATE ", 1)[0] == "json"
        return ColumnRead("{c}::text", _PG_JSON if exact else _pg_jsonb, '{c}::text COLLATE "C"')
    if base == "real":
        return ColumnRead("{c}::float8", None, "{c}")
    if base == "numeric":
        return ColumnRead("{c}::numeric", None, "{c}")  # money reads as numeric too
    if elem is not None:
        ebase, _ = _args(elem)
        if ebase in _PG_TEXTLIKE:
            return ColumnRead("{c}::text[]", None, '{c}::text[] COLLATE "C"')
        if ebase == "json":
            return ColumnRead("{c}::text[]", V.array_of(V.text_to_json), "{c}::text[]")
        if ebase == "real":
            return ColumnRead("{c}::float8[]", None, "{c}")
        if ebase == "numeric":
            return ColumnRead("{c}::numeric[]", None, "{c}")
        if ebase == "interval":
            return ColumnRead("{c}", _PG_INTERVALS, "{c}")
    return _PLAIN


# --- MariaDB / MySQL ----------------------------------------------------------------------------

_MY_SIMPLE = {
    "mediumint": "integer",
    "bigint": "bigint",
    "float": "real",
    "double": "double",
    "real": "double",
    "double precision": "double",
    "tinytext": "text",
    "text": "text",
    "mediumtext": "text",
    "longtext": "text",
    "enum": "text",
    "set": "text",
    "inet4": "text",
    "inet6": "text",
    "binary": "bytes",
    "varbinary": "bytes",
    "tinyblob": "bytes",
    "blob": "bytes",
    "mediumblob": "bytes",
    "longblob": "bytes",
    "date": "date",
    "datetime": "timestamp",
    "timestamp": "timestamptz",
    "time": "time",
    "year": "smallint",
    "uuid": "uuid",
    "json": "json",
    # spatial types: the server's own bytes (a 4-byte SRID, then the WKB), which it takes back
    # as they are; the column's native type keeps what it was
    "geometry": "bytes",
    "point": "bytes",
    "linestring": "bytes",
    "polygon": "bytes",
    "multipoint": "bytes",
    "multilinestring": "bytes",
    "multipolygon": "bytes",
    "geometrycollection": "bytes",
    "geomcollection": "bytes",
}
_UTF8_CHARSETS = ("utf8mb4", "utf8mb3", "utf8", "ascii", "binary")


def mysql_portable(data_type: str, column_type: str, is_json: bool = False) -> str | None:
    """The portable type of a MariaDB/MySQL column (``information_schema.COLUMNS.DATA_TYPE`` and
    ``COLUMN_TYPE``; ``is_json`` for MariaDB's JSON, a longtext checked by json_valid())."""
    dt = data_type.lower()
    ct = column_type.lower()
    unsigned = " unsigned" in ct
    if is_json:
        return "json"
    if dt == "tinyint":
        return "boolean" if ct.startswith("tinyint(1)") else "smallint"
    if dt == "smallint":
        return "integer" if unsigned else "smallint"
    if dt in ("int", "integer"):
        return "bigint" if unsigned else "integer"
    if dt == "bit":
        return "boolean" if ct.startswith("bit(1)") else "bigint"
    if dt in ("decimal", "numeric", "fixed"):
        m = re.match(r"\w+\((\d+)(?:,(\d+))?\)", ct)
        return f"numeric({m.group(1)},{m.group(2) or 0})" if m else "numeric"
    if dt in ("char", "varchar"):
        m = re.match(r"\w+\((\d+)\)", ct)
        return f"{dt}({m.group(1)})" if m else "text"
    return _MY_SIMPLE.get(dt)


def mysql_native(column_type: str, charset: str | None, collation: str | None, is_json: bool) -> str:
    """The native spelling kept in the schema: the column type, with the character set and
    collation of text columns (a faithful restore needs them, and so does the key order)."""
    if is_json:
        return "json"
    if charset and collation:
        return f"{column_type} CHARACTER SET {charset} COLLATE {collation}"
    return column_type


def _my_text_order(native: str) -> str:
    m = re.search(r" CHARACTER SET (\w+) COLLATE (\w+)", native)
    if m and m.group(2).endswith("_nopad_bin") and m.group(1) in _UTF8_CHARSETS:
        return "{c}"  # the index order is code point order already
    if m and m.group(1) in _UTF8_CHARSETS:
        return "CAST({c} AS BINARY)"
    return "CAST(CONVERT({c} USING utf8mb4) AS BINARY)"


def _my_read(portable: str, native: str) -> ColumnRead:
    base, _ = _args(portable)
    n = native.lower()
    if base == "boolean":
        return ColumnRead("{c}", V.bits_to_bool if n.startswith("bit") else V.int_to_bool, "{c}")
    if base == "real":
        return ColumnRead("CAST({c} AS DOUBLE)", None, "{c}")
    if base == "bigint" and n.startswith("bit"):
        return ColumnRead("CAST({c} AS UNSIGNED)", None, "{c}")
    if base == "timestamptz":
        return ColumnRead("{c}", V.attach_utc, "{c}")
    if base == "time":
        return ColumnRead("{c}", V.duration_to_time, "{c}")
    if base == "json":
        return ColumnRead("{c}", _MY_JSON, "CAST({c} AS BINARY)")
    if base == "uuid":
        return ColumnRead("{c}", V.to_uuid, "CAST({c} AS BINARY)")
    if base in ("text", "varchar", "char"):
        if n.startswith("inet"):
            return ColumnRead("{c}", None, "CAST(CAST({c} AS CHAR) AS BINARY)")
        return ColumnRead("{c}", None, _my_text_order(native))
    return _PLAIN


# --- SQLite reads -------------------------------------------------------------------------------

_SQLITE_CONVERTERS: dict[str, Converter] = {
    "boolean": V.int_to_bool,
    "date": V.text_to_date,
    "time": V.text_to_time,
    "timetz": V.text_to_timetz,
    "timestamp": V.text_to_datetime,
    "timestamptz": V.text_to_datetime_utc,
    "json": V.to_json,
    "uuid": V.to_uuid,
}


def _sqlite_read(portable: str) -> ColumnRead:
    base, args = _args(portable)
    if base == "numeric":
        conv: Converter | None = V.to_decimal(args[1] if len(args) == 2 else None)
    else:
        conv = _SQLITE_CONVERTERS.get(base)
    if conv is not None and base != "boolean":  # 0 and 1 are written back as 0 and 1
        conv = _sqlite_spelled(conv, portable)
    # BINARY is SQLite's default collation, but a column may declare NOCASE or RTRIM
    return ColumnRead("{c}", conv, "{c} COLLATE BINARY")


# SQLite's NUMERIC affinity (every converted column has it: DATE, DATETIME, JSON, UUID, NUMERIC,
# ...) stores text that is a well-formed number as that number
_SQLITE_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_SQLITE_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_I64 = 2**63


def _numeric_affinity(v: object) -> object:
    """What a column of NUMERIC affinity stores when ``v`` is written to it."""
    if type(v) is not str or not _SQLITE_NUMBER.fullmatch(v):
        return v
    if _SQLITE_INTEGER.fullmatch(v):
        i = int(v)
        if -_I64 <= i < _I64:
            return i
    f = _sqlite_text_to_real(v)
    if f == f and abs(f) < _I64 and f == int(f):
        return int(f)
    return f


_text_to_real: sqlite3.Connection | None = None
_text_to_real_lock = threading.Lock()


def _sqlite_text_to_real(text: str) -> float:
    """The double SQLite makes of ``text``, which is not always the nearest one that Python's
    float() gives (SQLite 3.40 reads ``-3.818524346993651e-306`` one unit in the last place off):
    asked of SQLite itself, which converts a CAST as it converts text under NUMERIC affinity."""
    global _text_to_real
    with _text_to_real_lock:
        if _text_to_real is None:
            _text_to_real = sqlite3.connect(":memory:", check_same_thread=False)
        return float(_text_to_real.execute("SELECT CAST(? AS REAL)", (text,)).fetchone()[0])


def _sqlite_spelled(conv: Converter, portable: str) -> Converter:
    """``conv``, except that where the canonical value it gives would not be written back as
    the very value SQLite held (the same storage class and the same text: the writer's
    canonical form, through the column's NUMERIC affinity), the value keeps that spelling."""
    write = canonical_write("sqlite", portable)
    assert write is not None

    def convert(v: object) -> object:
        out = conv(v)
        if out is v:
            return v
        try:
            back = write(out)
            if back != v or type(back) is not type(v):  # else the common case: the same text
                back = _numeric_affinity(back)
        except ValueError:  # a value the writer refuses: its spelling is all a write could use
            back = None
        if type(back) is type(v) and back == v:
            return out
        return Spelled(out, v, "sqlite")

    return convert


def _exact_json(dialect: str) -> Converter:
    """JSON text (PostgreSQL ``json``, MariaDB JSON, which keep a document as written) -> Json,
    with the text as its spelling when it is not the canonical text."""

    def convert(v: object) -> object:
        out = V.text_to_json(v)
        if type(out) is Json and out.text != v:
            return Spelled(out, v, dialect)
        return out

    return convert


_PG_JSON = _exact_json("postgresql")
_MY_JSON = _exact_json("mysql")


def _pg_jsonb(v: object) -> object:
    """jsonb text -> Json, with the text as its spelling when the canonical text, stored as
    jsonb, would print otherwise (jsonb keeps a number's digits: ``2.50``, ``1e2`` as ``100``)."""
    out = V.text_to_json(v)
    if type(out) is Json:
        try:
            same = V.pg_jsonb_text(out.value) == v
        except (TypeError, ValueError, ArithmeticError):
            same = False
        if not same:
            return Spelled(out, v, "postgresql")
    return out


def _unspelled(v: object) -> object:
    """An array element kept with its spelling -> that text: an array holding text is written
    back as text, element by element (:mod:`snapgit.db.params`), as the server printed it."""
    return v.spelling if type(v) is Spelled else v


# the loader keeps an interval's text beside its timedelta where they differ (db.values)
_PG_INTERVALS = V.array_of(_unspelled)


def column_read(dialect: str, portable: str, native: str | None) -> ColumnRead:
    """How to read a column of ``portable`` type (spelled ``native`` by the database)."""
    if dialect == "sqlite":
        return _sqlite_read(portable)
    if dialect == "postgresql":
        return _pg_read(portable, native or "")
    if dialect == "mysql":
        return _my_read(portable, native or "")
    raise ValueError(f"unknown dialect {dialect!r}")
