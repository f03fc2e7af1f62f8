"""Export and import: every format gives back the very same snapshot tree.

Commits for the property tests are built from rows in memory (``MemorySnapshot`` below is the
in-memory twin of a database read snapshot: it hands rows to the real commit code), so they can
hold every value the store can, NaN and intervals included, on no database at all. The SQL format
and the database round trips run on real databases.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.db import Database
from snapgit.encoding import Json, canonical_value
from snapgit.exchange.fileformat import ExportError, check_name
from snapgit.exchange.typedvalue import ValueFormError, decoder, encoder, from_cell, to_cell
from snapgit.repo import Repo
from snapgit.schema import Column, TableSchema
from snapgit.snapshot.build import snapshot_database
from snapgit.snapshot.record import commit_snapshot, write_root
from snapgit.store.history import read_commit


class MemorySnapshot:
    """Rows held in memory, read like a database snapshot (rows in sorted-column-name order)."""

    def __init__(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.rows = rows

    def scan(self, schema: TableSchema, key: list[str] | None, values_of=None):
        yield list(self.rows[schema.name])  # values already: what values_of allows too

    def count(self, name: str) -> int:
        return len(self.rows[name])


def commit_rows(repo: Repo, tables: list[tuple[TableSchema, list[str] | None, list[tuple]]]) -> bytes:
    """Commit these tables (schema, key, rows) on the current branch; returns the commit id."""
    keys = {s.name: k for s, k, _ in tables}
    snap = MemorySnapshot({s.name: [tuple(canonical_value(v) for v in r) for r in rows] for s, _, rows in tables})
    head = repo.head()
    with repo.objects.writer() as w:
        written, _ = snapshot_database(
            repo.objects, w, snap, [s for s, _, _ in tables], parent_root=None, keys=lambda s: keys[s.name]
        )
        tree = write_root(repo.objects, w, written)
    cid, _ = commit_snapshot(
        repo.objects,
        repo.refs,
        ref=repo.head_ref(),
        expected_parent=head,
        tree_id=tree,
        author="test",
        message="rows",
        meta={"kind": "full", "dialect": "sqlite"},
        allow_same_tree=True,
    )
    return cid


def tree_of(repo: Repo, cid: bytes) -> bytes:
    return read_commit(repo.objects, cid).tree


# --- values -------------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | _text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
    max_leaves=6,
).map(Json)
_offsets = st.integers(-14 * 3600, 14 * 3600).map(lambda s: dt.timezone(dt.timedelta(seconds=s)))

# (portable type, values of its canonical Python type)
TYPED: list[tuple[str, st.SearchStrategy]] = [
    ("bigint", st.integers()),
    ("boolean", st.booleans()),
    ("double", st.floats()),
    ("numeric", st.decimals(allow_nan=True)),
    ("text", _text),
    ("bytes", st.binary(max_size=12)),
    ("date", st.dates()),
    ("time", st.times()),
    ("timetz", st.times(timezones=_offsets)),
    ("timestamp", st.datetimes()),
    (
        "timestamptz",
        st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1), timezones=_offsets),
    ),
    ("interval", st.timedeltas(-dt.timedelta(days=10**8), dt.timedelta(days=10**8))),
    ("uuid", st.uuids()),
    ("json", _json),
    ("array<integer>", st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=3)),
    ("array<text>", st.lists(st.none() | _text, max_size=3)),
]
_any_value = st.one_of(*(s for _, s in TYPED))


def _values(portable: str, strategy: st.SearchStrategy) -> st.SearchStrategy:
    # mostly the column's own type; sometimes NULL or a value of another type (SQLite allows it)
    return st.one_of(strategy, strategy, st.none(), _any_value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, decimal.Decimal):
        return type(b) is decimal.Decimal and str(a) == str(b)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))
    return (
        type(a) is type(b) and a == b and (not isinstance(a, (dt.time, dt.datetime)) or a.utcoffset() == b.utcoffset())
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPED).flatmap(lambda t: st.tuples(st.just(t[0]), _values(*t))))
def test_every_value_survives_json_and_csv_forms(case: tuple[str, Any]) -> None:
    portable, value = case
    value = canonical_value(value)
    j = json.loads(json.dumps(encoder(portable)(value), allow_nan=False))
    assert _same(value, decoder(portable)(j))
    cell = to_cell(portable)(value)
    assert _same(value, from_cell(portable)(cell))
    if cell and cell[0] in "=+-@":
        raise AssertionError(f"a cell a spreadsheet would run: {cell!r}")


_PORTABLES = [*(p for p, _ in TYPED), "time", "timetz", "boolean", "smallint", "real", "char(3)", "blob"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.fixed_dictionaries({"type": st.sampled_from(["text", "bigint", "x"]), "value": inner})
        ),
        max_leaves=4,
    )
)
def test_a_column_decoder_reads_every_form_as_the_general_rule_does(j: Any) -> None:
    from snapgit.exchange.typedvalue import ValueFormError, _from_typed, kind_of

    for portable in _PORTABLES:
        try:
            want: Any = ("ok", _from_typed(kind_of(portable), j))
        except ValueFormError as exc:
            want = ("error", str(exc))
        try:
            got: Any = ("ok", decoder(portable)(j))
        except ValueFormError as exc:
            got = ("error", str(exc))
        assert repr(got) == repr(want)


def test_csv_cells_are_escaped_for_spreadsheets_and_null_differs_from_empty() -> None:
    cell = to_cell("text")
    assert [cell(v) for v in ("=SUM(A1)", "+1", "-1", "@x", "'q", "\\n", "", None, "plain")] == [
        "'=SUM(A1)",
        "'+1",
        "'-1",
        "'@x",
        "''q",
        "'\\n",
        "'",
        "",
        "plain",
    ]
    parse = from_cell("text")
    assert [parse(c) for c in ("'=SUM(A1)", "''q", "'", "", "plain")] == ["=SUM(A1)", "'q", "", None, "plain"]
    assert to_cell("integer")("abc") == "\\text:abc" and from_cell("integer")("\\text:abc") == "abc"
    assert to_cell("double")(-0.0) == "'-0.0" and math.copysign(1, from_cell("double")("'-0.0")) == -1


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", "a\\b", "nul\x00", ".", "..", ".hidden", ""])
def test_names_that_could_escape_the_directory_are_refused(name: str) -> None:
    with pytest.raises(ExportError, match="refused|non-empty"):
        check_name(name)


# --- round trips through files ------------------------------------------------------------------


def _schema(name: str, types: list[str], keyed: bool) -> TableSchema:
    cols = [Column(f"c{i}_{t.replace('<', '_').replace('>', '')}", t) for i, t in enumerate(types)]
    if keyed:
        cols.insert(0, Column("id", "bigint", nullable=False))
    return TableSchema(name, tuple(cols), primary_key=("id",) if keyed else ())


@st.composite
def random_tables(draw) -> list[tuple[TableSchema, list[str] | None, list[tuple]]]:
    out = []
    for name, keyed in (("keyed", True), ("keyless", False)):
        picked = draw(st.lists(st.sampled_from(TYPED), min_size=1, max_size=5, unique_by=lambda t: t[0]))
        schema = _schema(name, [t for t, _ in picked], keyed)
        by_name = {f"c{i}_{t.replace('<', '_').replace('>', '')}": s for i, (t, s) in enumerate(picked)}
        rows = []
        n = draw(st.integers(0, 6))
        ids = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n, unique=True))
        for i in range(n):
            values = {c: draw(_values("", s)) for c, s in by_name.items()}
            if keyed:
                values["id"] = ids[i]
            rows.append(tuple(values[c] for c in schema.sorted_names))
        if not keyed and rows:
            rows.append(rows[0])  # a duplicate row: keyless tables are multisets
        out.append((schema, ["id"] if keyed else None, rows))
    return out


def _fresh_repo(tmp: Path, name: str) -> Repo:
    d = tmp / name
    d.mkdir()
    return Repo.init(d)


@pytest.mark.parametrize("suffix,fmt", [(".json", "json"), (".json.zst", "json"), ("-csv", "csv")])
def test_export_then_import_gives_the_same_tree(suffix: str, fmt: str) -> None:
    # (at most 25 examples, fewer where the profile asks for fewer: scripts/mutation's 10)
    @settings(
        max_examples=min(25, settings().max_examples),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(random_tables())
    def check(tables) -> None:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            with _fresh_repo(tmp, "src") as src, _fresh_repo(tmp, "dst") as dst:
                cid = commit_rows(src, tables)
                path = tmp / f"out{suffix}"
                src.export(cid.hex(), path, fmt=fmt)
                got = dst.import_file(path)
                assert got["tree"] == tree_of(src, cid)
                assert read_commit(dst.objects, got["commit"]).meta["kind"] == "import"

    check()


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_incremental_export_applied_to_its_base_gives_the_target(fmt: str) -> None:
    @settings(
        max_examples=min(25, settings().max_examples),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(random_tables(), random_tables())
    def check(before, after) -> None:
        # the same tables, other schemas and rows: "after" keeps some rows of "before"
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            with _fresh_repo(tmp, "r") as repo, _fresh_repo(tmp, "o") as other:
                _incremental_case(tmp, repo, other, before, after, fmt)

    check()


def _incremental_case(tmp: Path, repo: Repo, other: Repo, before, after, fmt: str = "json") -> None:
    base = commit_rows(repo, before)
    merged = []
    for (s0, k0, r0), (s1, k1, r1) in zip(before, after, strict=False):
        if s0.portable() == s1.portable():
            r1 = r0[: len(r0) // 2] + r1
            if k0:
                r1 = list({r[s0.sorted_names.index("id")]: r for r in r1}.values())
        merged.append((s1, k1, r1))
    target = commit_rows(repo, merged)
    path = tmp / ("inc.json" if fmt == "json" else "inc-csv")
    result = repo.export(target.hex(), path, fmt=fmt, since=base.hex())
    assert result.kind == "incremental"
    doc = json.loads(path.read_text() if fmt == "json" else (path / "manifest.json").read_text())
    assert doc["metadata"]["base"] == base.hex()
    got = repo.import_file(path)
    assert got["tree"] == tree_of(repo, target)
    # and on top of a store that only has the base, brought there by a full export
    base_path = tmp / ("base.json" if fmt == "json" else "base-csv")
    repo.export(base.hex(), base_path, fmt=fmt)
    assert other.import_file(base_path)["tree"] == tree_of(repo, base)
    assert other.import_file(path)["tree"] == tree_of(repo, target)


def test_incremental_file_lists_only_changes() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = _fresh_repo(tmp, "r")
        schema = _schema("t", ["text"], keyed=True)
        base = commit_rows(repo, [(schema, ["id"], [(f"v{i}", i) for i in range(100)])])
        rows = [(f"v{i}", i) for i in range(100) if i != 7]
        rows[3] = ("changed", 3)
        target = commit_rows(repo, [(schema, ["id"], rows + [("new", 1000)])])
        result = repo.export(target.hex(), tmp / "inc.json", since=base.hex())
        assert result.rows == {"t": 2} and result.removed == {"t": 1}
        assert '{"key":[7]}' in (tmp / "inc.json").read_text()


# --- SQL ----------------------------------------------------------------------------------------

SQLITE_TYPES: list[tuple[str, st.SearchStrategy]] = [
    ("bigint", st.integers(-(2**63), 2**63 - 1)),
    ("boolean", st.booleans()),
    ("double", st.floats(allow_nan=False)),
    ("numeric(15,4)", st.decimals(-(10**10), 10**10, places=4)),
    ("text", st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)),
    ("bytes", st.binary(max_size=12)),
    ("date", st.dates()),
    ("time", st.times()),
    ("timestamp", st.datetimes()),
    (
        "timestamptz",
        st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1), timezones=_offsets),
    ),
    ("uuid", st.uuids()),
    ("json", _json),
]


def _load_sql(url: str, kind: str, script: str, make_engine=None) -> None:
    """Run an exported SQL file as a database's own shell would."""
    if kind == "sqlite":
        con = sqlite3.connect(sa.make_url(url).database)
        con.executescript(script)
        con.close()
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        if kind == "postgresql":
            conn.exec_driver_sql(script)
            return
        for stmt in script.split(";\n"):  # PyMySQL runs one statement per call
            body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--"))
            if body.strip():
                conn.exec_driver_sql(body)


def _write_table(url: str, schema: TableSchema, rows: list[tuple]) -> None:
    with Database.connect(url, create=True) as db:
        with db.write() as tx:
            tx.create_tables([schema])
        with db.write() as tx:
            tx.insert_rows(schema, rows)


def test_sql_export_loads_into_a_fresh_sqlite_database_as_the_same_tree(tmp_path: Path) -> None:
    counter = iter(range(10**6))

    @settings(
        max_examples=min(20, settings().max_examples),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(st.sampled_from(SQLITE_TYPES), min_size=1, max_size=6, unique_by=lambda t: t[0]), st.data())
    def check(picked, data) -> None:
        n = next(counter)
        work = tmp_path / f"case{n}"
        work.mkdir()
        schema = _schema("t", [t for t, _ in picked], keyed=True)
        strategies = {f"c{i}_{t.replace('<', '_').replace('>', '')}": s for i, (t, s) in enumerate(picked)}
        ids = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5, unique=True))
        rows = []
        for i in ids:
            values = {c: data.draw(st.none() | s) for c, s in strategies.items()}
            values["id"] = i
            rows.append(tuple(canonical_value(values[c]) for c in schema.sorted_names))
        src_url = f"sqlite:///{work / 'src.db'}"
        _write_table(src_url, schema, rows)
        (work / "copy").mkdir()
        copy_url = f"sqlite:///{work / 'copy' / 'copy.db'}"
        with Repo.init(work, src_url) as src:
            cid = src.commit("source").commit_id
            src.export(cid.hex(), work / "dump.sql", fmt="sql")
            _load_sql(copy_url, "sqlite", (work / "dump.sql").read_bytes().decode())
            with Repo.init(work / "copy", copy_url) as copy:
                assert copy.commit("copy").tree_id == tree_of(src, cid)

    check()


SHOP_ROWS = [
    (
        1,
        "Ada",
        "=cmd|' /C calc'!A0",
        decimal.Decimal("19.99"),
        dt.datetime(2024, 2, 29, 10, 30, 0, 5),
        b"\x00\x01",
        uuid.UUID(int=1),
        Json({"tags": ["a", "b"], "n": 1.5}),
    ),
    (2, 'Bob\nNewline, "quoted"', "", decimal.Decimal("-0.50"), None, b"", None, Json(None)),
    (3, "", None, None, dt.datetime(1999, 12, 31, 23, 59, 59), None, uuid.UUID(int=2**128 - 1), None),
]
SHOP = TableSchema(
    "shop",
    (
        Column("id", "integer", nullable=False),
        Column("name", "text"),
        Column("note", "varchar(40)"),
        Column("price", "numeric(10,2)"),
        Column("at", "timestamp"),
        Column("raw", "bytes"),
        Column("ref", "uuid"),
        Column("doc", "json"),
    ),
    primary_key=("id",),
)


@pytest.mark.parametrize("fmt,suffix", [("json", ".json"), ("csv", "-csv"), ("sql", ".sql")])
def test_round_trip_on_every_database(
    db_url: str, db_kind: str, make_db_url, make_engine, tmp_path: Path, fmt: str, suffix: str
) -> None:
    names = SHOP.sorted_names
    rows = [tuple(dict(zip([c.name for c in SHOP.columns], r, strict=False))[n] for n in names) for r in SHOP_ROWS]
    _write_table(db_url, SHOP, rows)
    (tmp_path / "src").mkdir()
    src = Repo.init(tmp_path / "src", db_url)
    cid = src.commit("source").commit_id
    src.export("HEAD", tmp_path / f"out{suffix}", fmt=fmt)
    if fmt == "sql":
        copy_url = make_db_url(db_kind)
        _load_sql(copy_url, db_kind, (tmp_path / f"out{suffix}").read_text(), make_engine)
        (tmp_path / "copy").mkdir()
        copy = Repo.init(tmp_path / "copy", copy_url)
        assert copy.commit("copy").tree_id == tree_of(src, cid)
        return
    dst = _fresh_repo(tmp_path, "dst")
    got = dst.import_file(tmp_path / f"out{suffix}", branch="restored")
    assert got["tree"] == tree_of(src, cid)
    assert dst.refs.read("refs/heads/restored") == got["commit"].hex()


def test_import_merge_restores_the_live_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    names = SHOP.sorted_names
    rows = [tuple(dict(zip([c.name for c in SHOP.columns], r, strict=False))[n] for n in names) for r in SHOP_ROWS]
    _write_table(url, SHOP, rows)
    repo = Repo.init(tmp_path, url)
    first = repo.commit("first")
    repo.export("HEAD", tmp_path / "backup.json")
    con = sqlite3.connect(tmp_path / "shop.db")
    con.execute("DELETE FROM shop WHERE id = 2")
    con.commit()
    con.close()
    got = repo.import_file(tmp_path / "backup.json", branch="backup", merge_strategy="backup_wins")
    assert got["merge"].totals()["added"] == 1
    assert repo.status() == [] or not any(t.stat().total for t in repo.status())
    assert got["tree"] == first.tree_id


def test_an_incremental_sql_export_turns_the_base_into_the_target(tmp_path: Path) -> None:
    """--since with --format sql: load the base's full SQL export, run the incremental one on
    top, and a commit of that database is the target's tree."""
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    shop = TableSchema(
        "shop",
        (Column("id", "integer", nullable=False), Column("name", "text"), Column("price", "double")),
        primary_key=("id",),
    )
    _write_table(src_url, shop, [(1, "Ada", 1.5), (2, "Bob\n'quoted'", None), (3, "", -0.0)])
    with Repo.init(tmp_path, src_url) as src:
        base = src.commit("base").commit_id
        engine = sa.create_engine(src_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE shop SET name = 'Ada L.' WHERE id = 1")
            conn.exec_driver_sql("DELETE FROM shop WHERE id = 2")
            conn.exec_driver_sql("INSERT INTO shop (id, name) VALUES (7, 'new')")
        engine.dispose()
        target = src.commit("target").commit_id
        src.export(base.hex(), tmp_path / "base.sql", fmt="sql")
        result = src.export(target.hex(), tmp_path / "changes.sql", fmt="sql", since=base.hex())
        assert result.rows == {"shop": 2} and result.removed == {"shop": 1}
        (tmp_path / "copy").mkdir()
        copy_url = f"sqlite:///{tmp_path / 'copy' / 'copy.db'}"
        _load_sql(copy_url, "sqlite", (tmp_path / "base.sql").read_bytes().decode())
        _load_sql(copy_url, "sqlite", (tmp_path / "changes.sql").read_bytes().decode())
        with Repo.init(tmp_path / "copy", copy_url) as copy:
            assert copy.commit("copy").tree_id == tree_of(src, target)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_timestamp_whose_utc_time_is_past_the_calendar_is_a_form_error(text: str) -> None:
    """Valid ISO 8601, but out of datetime's range once moved to UTC: refused as a value of the
    wrong form (one problem of the import), in JSON and in CSV, not an OverflowError."""
    expected = f'expected an ISO 8601 timestamp with an offset, within years 1 to 9999 in UTC, found "{text}"'
    with pytest.raises(ValueFormError) as caught:
        decoder("timestamptz")(text)
    assert str(caught.value) == expected
    with pytest.raises(ValueFormError) as caught:
        from_cell("timestamptz")(text)
    assert str(caught.value) == expected
