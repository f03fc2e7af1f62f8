"""Tables from stored schemas: the DDL ``restore --into`` runs on a new database.

A stored schema says which portable type each column has (:mod:`snapgit.schema`) and how the
source database spelled it (``native``). Into another kind of database, tables are created from
the **portable types**: the same schema gives the same tables whatever its source, and reflecting
them gives the portable types back wherever the target can hold them. Into the same kind of
database the native spelling is what makes a restore exact: SQLite columns are created with
their declared type as it was written (``varchar(100)``, ``bigint``, no type at all), PostgreSQL
and MariaDB/MySQL columns as below. Defaults (SQL of the source database), CHECK constraints,
SQLite's AUTOINCREMENT, expression indexes and index methods are not carried over. Whether each
value fits the column it goes into is checked by :mod:`snapgit.db.fit`; the user's view of both
is docs/types.md.

Native types (MariaDB/MySQL from MariaDB/MySQL)
-----------------------------------------------

When :attr:`Target.source` says the schemas were read from MariaDB/MySQL, each column is created
with its ``COLUMN_TYPE`` and, for text, its ``CHARACTER SET`` and ``COLLATE``
(:func:`mysql_native_type`): unsigned integers, ``bit(n)``, ``enum``, ``set``, ``inet4``/``inet6``,
spatial types (an index on one spatial column is a SPATIAL INDEX),
``year``, ``datetime`` precision, ``tinyint``/``mediumint``, text sizes, ``(var)binary(n)`` and
collations all come back as the application made them, so its values keep their bytes and its
lookups match as before. What the schema does not keep:

* the table's own default character set and collation: the one most of its text columns have is
  used (:func:`mysql_table_charset`);
* prefix lengths of keys on text and blob columns: such a key takes the column's share of
  InnoDB's key limit (a UNIQUE key on MariaDB takes the whole value, as its long UNIQUE does);
* MariaDB's own types on MySQL, and UUID before MariaDB 10.7: those columns get the portable
  mapping.

Foreign keys
------------

Whatever the source, a foreign-key column is created with the portable type of the key column it
refers to (:func:`with_referenced_types`), as MariaDB requires: Django's SQLite tables refer to an
``integer`` primary key from a ``bigint`` column.

Mapping (portable -> created column type)
-----------------------------------------

============== ================== ======================== ===============================
portable       SQLite             PostgreSQL               MariaDB / MySQL
============== ================== ======================== ===============================
smallint       SMALLINT           smallint                 SMALLINT
integer        INTEGER            integer                  INT
bigint         BIGINT             bigint                   BIGINT
boolean        BOOLEAN            boolean                  BOOLEAN (tinyint(1))
real           REAL (*double*)    real                     FLOAT
double         DOUBLE             double precision         DOUBLE
numeric        NUMERIC            numeric                  DECIMAL(65,30) (*numeric(65,30)*)
numeric(p,s)   NUMERIC(p,s)       numeric(p,s)             DECIMAL(p,s)
text           TEXT               text                     LONGTEXT; VARCHAR(k) in a key
varchar(n)     VARCHAR(n)         varchar(n)               VARCHAR(n)
char(n)        CHAR(n)            char(n)                  CHAR(n)
bytes          BLOB               bytea                    LONGBLOB; VARBINARY(k) in a key
date           DATE               date                     DATE
time           TIME               time                     TIME(6)
timetz         TIMETZ             time with time zone      VARCHAR(32), ISO text (*varchar(32)*)
timestamp      DATETIME           timestamp                DATETIME(6)
timestamptz    TIMESTAMPTZ        timestamp with time zone TIMESTAMP(6) (1970 to 2038 only)
interval       BIGINT, µs         interval                 BIGINT, µs (*bigint*)
               (*bigint*)
uuid           UUID               uuid                     UUID (MariaDB 10.7+; else CHAR(36))
json           JSON               jsonb                    JSON
array<T>       JSON (*json*)      T[]                      JSON (*json*)
============== ================== ======================== ===============================

Types in *italics* are what reflecting the new table gives when it is not the portable type put
in: the target has no such type, and the values are kept in the nearest type that loses nothing
(an interval as its microseconds, an array as a JSON array, a timetz as its ISO text). SQLite's
``real`` is a double. PostgreSQL's ``jsonb`` keeps the value of a document, not its spelling
(a float written ``1e+16`` comes back as the integer ``10000000000000000``; no ``\\u0000``).

Restoring into the engine a schema was read from is the exception on PostgreSQL: there each
column is created with its ``native`` type (``Target.source``), so an ``inet``, a ``money``,
a ``varchar(20) COLLATE "C"``, a ``mood[]`` or an ``int4range`` come back as they were. The
enum, domain and composite types the columns use are in the schema (``pg_types``,
:mod:`snapgit.db.pgtypes`) and are created first; extension types (``citext``) are not: the
target must have them already, and the restore refuses, before it creates any table, a column
whose type or collation the target does not know.

Keys and the rest:

* NOT NULL, the primary key, unique constraints, foreign keys (with their names) and indexes are
  created. An autoincrement integer primary key becomes SQLite's ``INTEGER PRIMARY KEY`` (the
  rowid: its type reads back as ``integer``), PostgreSQL's ``GENERATED BY DEFAULT AS IDENTITY``
  and MariaDB's ``AUTO_INCREMENT``.
* MariaDB cannot index LONGTEXT or LONGBLOB, so a text or bytes column in a primary key, unique
  constraint, index or foreign key is a VARCHAR/VARBINARY sharing InnoDB's 3072-byte key limit
  (768 characters for a one-column key). Tables use ``utf8mb4`` with a binary, no-pad collation
  (``utf8mb4_nopad_bin``; MySQL: ``utf8mb4_0900_bin``), so keys compare as PostgreSQL and SQLite
  compare them ('a' and 'A', 'a' and 'a ' are different keys) and scans need no re-sort.
* Tables are created parents first. A foreign key to a table created later (a cycle) is added
  with ALTER TABLE once every table exists (SQLite accepts forward references as they are).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from snapgit.db.errors import DatabaseError
from snapgit.schema import Column, ForeignKey, Index, TableSchema

__all__ = [
    "Target",
    "column_type",
    "pg_native_type",
    "pg_type_of_native",
    "pg_collation_of_native",
    "mysql_native_type",
    "mysql_table_charset",
    "with_referenced_types",
    "table_order",
    "create_table_sql",
    "key_sql",
    "add_foreign_key_sql",
    "quote",
]

_INNODB_KEY_BYTES = 3072


@dataclass(frozen=True)
class Target:
    """The database tables are created in: ``dialect`` (sqlite, postgresql, mysql); for mysql
    whether it is MariaDB, and whether it has a UUID type (MariaDB 10.7+). ``source``: the
    dialect the schemas were read from, when known; on MariaDB/MySQL, schemas read from the
    same kind of database are created with their native column types (see the module notes)."""

    dialect: str
    mariadb: bool = True
    has_uuid: bool = True
    # the kind of database the schemas were read from: a column is created with its native
    # type when it is this one (PostgreSQL: pg_native_type; MariaDB/MySQL: mysql_native_type)
    source: str | None = None


def quote(name: str, dialect: str) -> str:
    """An identifier for statements run without parameters ("%" stays "%")."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _args(portable: str) -> tuple[str, list[int]]:
    m = re.fullmatch(r"([a-z]+)\((\d+)(?:,(-?\d+))?\)", portable)
    if not m:
        return portable, []
    return m.group(1), [int(g) for g in m.groups()[1:] if g is not None]


_SQLITE = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "real": "REAL",
    "double": "DOUBLE",
    "numeric": "NUMERIC",
    "text": "TEXT",
    "bytes": "BLOB",
    "date": "DATE",
    "time": "TIME",
    "timetz": "TIMETZ",
    "timestamp": "DATETIME",
    "timestamptz": "TIMESTAMPTZ",
    "interval": "BIGINT",
    "uuid": "UUID",
    "json": "JSON",
}
_PG = {
    "smallint": "smallint",
    "integer": "integer",
    "bigint": "bigint",
    "boolean": "boolean",
    "real": "real",
    "double": "double precision",
    "numeric": "numeric",
    "text": "text",
    "bytes": "bytea",
    "date": "date",
    "time": "time",
    "timetz": "time with time zone",
    "timestamp": "timestamp",
    "timestamptz": "timestamp with time zone",
    "interval": "interval",
    "uuid": "uuid",
    "json": "jsonb",
}
_MYSQL = {
    "smallint": "SMALLINT",
    "integer": "INT",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "real": "FLOAT",
    "double": "DOUBLE",
    "numeric": "DECIMAL(65,30)",
    "text": "LONGTEXT",
    "bytes": "LONGBLOB",
    "date": "DATE",
    "time": "TIME(6)",
    "timetz": "VARCHAR(32)",
    "timestamp": "DATETIME(6)",
    "timestamptz": "TIMESTAMP(6)",
    "interval": "BIGINT",
    "uuid": "UUID",
    "json": "JSON",
}
_INTEGERS = ("smallint", "integer", "bigint")


def column_type(portable: str, target: Target, key_bytes: int | None = None) -> str:
    """The column type to create for ``portable`` on ``target``. ``key_bytes``: MariaDB only,
    the bytes this column may take in an index (text and bytes columns that are in one)."""
    base, args = _args(portable)
    d = target.dialect
    if portable.startswith("array<") and portable.endswith(">"):
        if d == "postgresql":
            return column_type(portable[6:-1], target) + "[]"
        return "JSON"
    if base in ("numeric", "varchar", "char") and args:
        if base == "numeric":
            spelled = "DECIMAL" if d == "mysql" else "NUMERIC" if d == "sqlite" else "numeric"
            return f"{spelled}({args[0]},{args[1] if len(args) > 1 else 0})"
        return f"{base.upper() if d != 'postgresql' else base}({args[0]})"
    if d == "mysql":
        if key_bytes is not None and base == "text":
            return f"VARCHAR({max(1, key_bytes // 4)})"
        if key_bytes is not None and base == "bytes":
            return f"VARBINARY({max(1, key_bytes)})"
        if base == "uuid" and not (target.mariadb and target.has_uuid):
            return "CHAR(36)"
    names = {"sqlite": _SQLITE, "postgresql": _PG, "mysql": _MYSQL}[d]
    if base not in names:
        raise DatabaseError(f"snapgit has no column type for the portable type {portable}")
    return names[base]


def pg_native_type(native: str | None, portable: str) -> str:
    """The column type a PostgreSQL column read from PostgreSQL is created with: its ``native``
    spelling (``format_type``: length, precision, array brackets, with ``COLLATE "x"`` when not
    the default), or the portable type's when the schema has none."""
    if not native:
        return column_type(portable, Target("postgresql"))
    return native


def pg_type_of_native(native: str) -> str:
    """The type in a PostgreSQL ``native`` spelling, without its COLLATE clause."""
    return native.split(" COLLATE ", 1)[0]


def pg_collation_of_native(native: str) -> str | None:
    """The collation a PostgreSQL ``native`` spelling names, or None."""
    m = re.search(r' COLLATE "((?:[^"]|"")+)"$', native)
    return m.group(1).replace('""', '"') if m else None


# --- MariaDB / MySQL: native column types ------------------------------------------------------

# The data types information_schema.COLUMNS.COLUMN_TYPE starts with, as snapgit reflects them
_MYSQL_NATIVE = re.compile(
    r"(tinyint|smallint|mediumint|int|integer|bigint|bit|float|double|real|double precision|decimal|numeric|"
    r"fixed|char|varchar|binary|varbinary|tinytext|text|mediumtext|longtext|tinyblob|blob|mediumblob|longblob|"
    r"enum|set|date|datetime|timestamp|time|year|uuid|inet4|inet6|json|geometry|point|linestring|polygon|"
    r"multipoint|multilinestring|multipolygon|geometrycollection|geomcollection)\b(.*)",
    re.DOTALL,
)
_MARIADB_ONLY = ("uuid", "inet4", "inet6")
# text and blob types an index can hold only a prefix of, and the most bytes that prefix may take
_MYSQL_PREFIXED = {
    "tinytext": 255,
    "text": _INNODB_KEY_BYTES,
    "mediumtext": _INNODB_KEY_BYTES,
    "longtext": _INNODB_KEY_BYTES,
    "tinyblob": 255,
    "blob": _INNODB_KEY_BYTES,
    "mediumblob": _INNODB_KEY_BYTES,
    "longblob": _INNODB_KEY_BYTES,
}
_MYSQL_CHARSET = re.compile(r" CHARACTER SET (\w+) COLLATE (\w+)$")


def mysql_native_type(col: Column, target: Target) -> str | None:
    """The column type to create for a column read from MariaDB/MySQL into ``target`` (also
    MariaDB/MySQL): its native spelling (``COLUMN_TYPE``, with the character set and collation of
    text columns, as :func:`snapgit.db.types.mysql_native` keeps it), or None when that spelling
    is missing or cannot be created there (MariaDB's own types on MySQL, or UUID before 10.7),
    and the portable type must do."""
    native = col.native
    if target.dialect != "mysql" or target.source != "mysql" or not native:
        return None
    m = _MYSQL_NATIVE.match(native)
    if m is None:
        return None
    name = m.group(1)
    if name in _MARIADB_ONLY and not target.mariadb:
        return None
    if name == "uuid" and not target.has_uuid:
        return None
    return native


def _mysql_prefix(native: str, share: int) -> int | None:
    """The prefix length (characters of text, bytes of a blob) a key on a column of this native
    type needs, or None when the whole value can be in a key."""
    m = _MYSQL_NATIVE.match(native)
    limit = _MYSQL_PREFIXED.get(m.group(1)) if m else None
    if limit is None:
        return None
    width = 1 if "blob" in native.split(" ", 1)[0] else 4  # utf8mb4 takes up to 4 bytes a character
    return max(1, min(share, limit) // width)


def mysql_table_charset(schema: TableSchema) -> tuple[str, str] | None:
    """The default character set and collation for a table whose columns are created with their
    native types. The schema does not keep the source table's own default, so this is the one
    most of its text columns have (the first of those in column order on a tie); None when no
    column says."""
    seen: dict[tuple[str, str], int] = {}
    for col in schema.columns:
        m = _MYSQL_CHARSET.search(col.native or "")
        if m:
            pair = (m.group(1), m.group(2))
            seen[pair] = seen.get(pair, 0) + 1
    if not seen:
        return None
    return max(seen, key=lambda pair: seen[pair])  # max keeps the first of equal counts


# --- foreign keys -------------------------------------------------------------------------------


def with_referenced_types(schemas: Sequence[TableSchema]) -> list[TableSchema]:
    """``schemas`` with each foreign-key column given the portable type of the key column it
    refers to (among these schemas), so that the tables created from them have equal types on
    both sides of every foreign key: MariaDB refuses a constraint between an ``int`` key and a
    ``bigint`` column (errno 150), which is the shape of Django's SQLite schemas. The values
    stored in such a column are values of the key, so the key's type holds them. A column in
    several foreign keys takes the type of the first; chains of keys are followed to their
    end. Native spellings are left alone: a schema created with them comes from a database that
    accepted its foreign keys as they are."""
    by_name = {s.name: s for s in schemas}

    def referenced(table: str, column: str, depth: int = 0) -> str | None:
        s = by_name.get(table)
        if s is None or depth > len(by_name):
            return None
        for fk in s.foreign_keys:
            if column in fk.columns:
                ref = fk.ref_columns[fk.columns.index(column)]
                if (fk.ref_table, ref) != (table, column):
                    found = referenced(fk.ref_table, ref, depth + 1)
                    if found is not None:
                        return found
        return next((c.type for c in s.columns if c.name == column), None)

    out = []
    for s in schemas:
        columns = []
        for col in s.columns:
            wanted = referenced(s.name, col.name) if any(col.name in fk.columns for fk in s.foreign_keys) else None
            columns.append(col if wanted is None or wanted == col.type else replace(col, type=wanted))
        out.append(replace(s, columns=tuple(columns)))
    return out


def table_order(schemas: Sequence[TableSchema]) -> list[TableSchema]:
    """Parents before children (by foreign keys between these tables); a cycle is broken in
    name order."""
    by_name = {s.name: s for s in schemas}
    order: list[TableSchema] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return
        state[name] = 1
        for fk in sorted(by_name[name].foreign_keys, key=lambda f: f.ref_table):
            if fk.ref_table in by_name:
                visit(fk.ref_table)
        order.append(by_name[name])

    for name in sorted(by_name):
        visit(name)
    return order


def _mysql_key_bytes(schema: TableSchema) -> dict[str, int]:
    """For each text or bytes column in some index: its share of InnoDB's key limit, the
    smallest over the indexes it is in (foreign key columns get an index too)."""
    kinds = {c.name: _args(c.type)[0] for c in schema.columns}
    keys: list[Sequence[str]] = [schema.primary_key, *schema.unique]
    keys += [ix.columns for ix in schema.indexes]
    keys += [fk.columns for fk in schema.foreign_keys]
    out: dict[str, int] = {}
    for cols in keys:
        wide = [c for c in cols if kinds.get(c) in ("text", "bytes")]
        for c in wide:
            share = _INNODB_KEY_BYTES // len(wide)
            out[c] = min(out.get(c, share), share)
    return out


def _autoincrement_column(schema: TableSchema) -> str | None:
    """The integer primary key column that the database numbers, if the schema has one."""
    if len(schema.primary_key) != 1:
        return None
    name = schema.primary_key[0]
    col = next((c for c in schema.columns if c.name == name), None)
    if col is None or not col.autoincrement or col.type not in _INTEGERS:
        return None
    return name


def _cols(names: Sequence[str], dialect: str) -> str:
    return ", ".join(quote(n, dialect) for n in names)


def _key_cols(names: Sequence[str], prefixes: dict[str, int]) -> str:
    """MariaDB/MySQL key columns, with a prefix length where the column needs one."""
    return ", ".join(quote(n, "mysql") + (f"({prefixes[n]})" if n in prefixes else "") for n in names)


def _foreign_key(fk: ForeignKey, dialect: str) -> str:
    name = f"CONSTRAINT {quote(fk.name, dialect)} " if fk.name else ""
    return (
        f"{name}FOREIGN KEY ({_cols(fk.columns, dialect)}) "
        f"REFERENCES {quote(fk.ref_table, dialect)} ({_cols(fk.ref_columns, dialect)})"
    )


def _index_name(table: str, ix: Index) -> str:
    return ix.name or "ix_" + "_".join([table, *ix.columns])


def _creatable(ix: Index, schema: TableSchema, target: Target) -> bool:
    """Expression indexes are not stored; MariaDB cannot index JSON (or arrays, kept as JSON)."""
    kinds = {c.name: c.type for c in schema.columns}
    if not ix.columns or any(c not in kinds for c in ix.columns):
        return False
    if target.dialect == "mysql" and not ix.unique:
        return not any(kinds[c] == "json" or kinds[c].startswith("array<") for c in ix.columns)
    return True


_SPATIAL = frozenset(
    "geometry point linestring polygon multipoint multilinestring multipolygon geometrycollection "
    "geomcollection".split()
)


def _spatial(ix: Index, natives: dict[str, str]) -> bool:
    """Whether ``ix`` was a SPATIAL index: the schema keeps no index kind, but a MariaDB index
    on one spatial column is one (an ordinary key there would hold a prefix of its bytes)."""
    return (
        not ix.unique and len(ix.columns) == 1 and natives.get(ix.columns[0], "").split(" ", 1)[0].lower() in _SPATIAL
    )


def create_table_sql(
    schema: TableSchema, target: Target, foreign_keys: Sequence[ForeignKey], *, keys: bool = True
) -> list[str]:
    """CREATE TABLE for ``schema`` with ``foreign_keys`` inline, then its indexes (inline on
    MariaDB, where a foreign key would otherwise create an index of the same name first).
    ``keys`` False (PostgreSQL only): without its primary key, unique constraints and indexes,
    which :func:`key_sql` adds once the rows are in: an index built once from all the rows
    costs a fraction of one kept up to date row by row (pg_dump's order)."""
    d = target.dialect
    if not keys and d != "postgresql":
        raise ValueError("only PostgreSQL tables are created without their keys")
    auto = _autoincrement_column(schema)
    key_bytes = _mysql_key_bytes(schema) if d == "mysql" else {}
    natives = {c.name: n for c in schema.columns if (n := mysql_native_type(c, target)) is not None}
    # a key on a native text or blob column holds a prefix of it (MariaDB's long UNIQUE holds all)
    prefixes = {n: p for n, native in natives.items() if (p := _mysql_prefix(native, key_bytes.get(n, 0)))}
    lines = []
    for col in schema.columns:
        if d == "sqlite" and target.source == "sqlite" and col.native is not None:
            spelled = col.native  # as declared: an INTEGER primary key stays the rowid
        elif d == "sqlite" and col.name == auto:
            spelled = "INTEGER"  # the rowid: SQLite numbers it
        elif d == "postgresql" and target.source == "postgresql":
            spelled = pg_native_type(col.native, col.type)
        elif d == "sqlite" and target.source == "sqlite" and col.native is not None:
            # the declared type decides the column's affinity, and so the storage class of
            # every value written to it: no type (or ANY) keeps 3.5 a REAL where TEXT makes it '3.5'
            spelled = col.native
        elif col.name in natives:
            spelled = natives[col.name]
        else:
            spelled = column_type(col.type, target, key_bytes.get(col.name))
        line = f"{quote(col.name, d)} {spelled}"
        if not col.nullable:
            line += " NOT NULL"
        elif d == "mysql":
            line += " NULL"  # a TIMESTAMP is NOT NULL by default where explicit_defaults_for_timestamp is off
        if col.name == auto:
            if d == "postgresql":
                line += " GENERATED BY DEFAULT AS IDENTITY"
            elif d == "mysql":
                line += " AUTO_INCREMENT"
        lines.append(line)
    if schema.primary_key and keys:
        key = _key_cols(schema.primary_key, prefixes) if d == "mysql" else _cols(schema.primary_key, d)
        lines.append(f"PRIMARY KEY ({key})")
    whole = {} if target.mariadb else prefixes  # MySQL has no long UNIQUE: a prefix there too
    for cols in schema.unique if keys else ():
        lines.append(f"UNIQUE ({_key_cols(cols, whole) if d == 'mysql' else _cols(cols, d)})")
    indexes = [ix for ix in schema.indexes if keys and _creatable(ix, schema, target)]
    if d == "mysql":
        for ix in indexes:
            kind = "UNIQUE INDEX" if ix.unique else "SPATIAL INDEX" if _spatial(ix, natives) else "INDEX"
            spelled = _key_cols(ix.columns, whole if ix.unique else prefixes)
            lines.append(f"{kind} {quote(_index_name(schema.name, ix), d)} ({spelled})")
    for fk in foreign_keys:
        lines.append(_foreign_key(fk, d))
    body = ",\n  ".join(lines)
    sql = f"CREATE TABLE {quote(schema.name, d)} (\n  {body}\n)"
    if d == "mysql":
        charset, collation = "utf8mb4", "utf8mb4_nopad_bin" if target.mariadb else "utf8mb4_0900_bin"
        if natives:
            charset, collation = mysql_table_charset(schema) or (charset, collation)
        sql += f" ENGINE=InnoDB DEFAULT CHARSET={charset} COLLATE={collation}"
    return [sql, *(_create_index_sql(schema, ix, d) for ix in (indexes if d != "mysql" else ()))]


def _create_index_sql(schema: TableSchema, ix: Index, d: str) -> str:
    unique = "UNIQUE " if ix.unique else ""
    return f"CREATE {unique}INDEX {quote(_index_name(schema.name, ix), d)} ON {quote(schema.name, d)} ({_cols(ix.columns, d)})"


def key_sql(schema: TableSchema, target: Target) -> list[str]:
    """What ``create_table_sql(..., keys=False)`` leaves out (PostgreSQL): the primary key and
    unique constraints, named as CREATE TABLE names them, then the indexes."""
    d = target.dialect
    t = quote(schema.name, d)
    out = [f"ALTER TABLE {t} ADD PRIMARY KEY ({_cols(schema.primary_key, d)})"] if schema.primary_key else []
    out += [f"ALTER TABLE {t} ADD UNIQUE ({_cols(cols, d)})" for cols in schema.unique]
    return out + [_create_index_sql(schema, ix, d) for ix in schema.indexes if _creatable(ix, schema, target)]


def add_foreign_key_sql(table: str, fk: ForeignKey, dialect: str) -> str:
    """ALTER TABLE adding a foreign key (PostgreSQL, MariaDB: for cycles between new tables)."""
    return f"ALTER TABLE {quote(table, dialect)} ADD {_foreign_key(fk, dialect)}"
