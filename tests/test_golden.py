"""Golden files: the store format pinned byte for byte (docs/format.md).

``tests/data/golden_rows.json`` holds values in a tagged JSON form (see its ``_values`` field and
:func:`from_tagged`), and the exact bytes snapgit must produce for them: row encodings and record
ids, key encodings, tree root ids, and the canonical bytes and ids of every object kind.
``tests/data/golden_pack/`` holds one pack and its index, as written by an earlier snapgit; the
current reader must still read them.

A failure here means the bytes snapgit writes (or the bytes it accepts) have changed. That is a
change of the store format: existing stores would get different ids for the same data. If it is
deliberate, bump ``FORMAT_VERSION`` (store/layout.py) and the version of what changed, update
docs/format.md, and regenerate with ``python tests/data/make_golden.py``. If it is not, fix the
code, not the golden file.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import shutil
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from snapgit.encoding import (
    Json,
    Spelled,
    canonical_value,
    decode_row,
    encode_key,
    encode_row,
    key_encoder,
    record_id,
)
from snapgit.objects import Commit, Node, ObjType, Root, TableEntry, Tag, encode_schema, object_id
from snapgit.schema import Column, TableSchema
from snapgit.store.objectstore import DiskObjectStore, MemoryObjectStore
from snapgit.store.pack import PackReader
from snapgit.store.packindex import IndexReader, build_index
from snapgit.tree.prolly import TreeBuilder, iter_entries, load_node

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_rows.json"
GOLDEN_PACK = DATA / "golden_pack"

FORMAT_CHANGE = (
    "this is a change of the store format: existing stores would give different ids for the same "
    "data. If it is deliberate, bump FORMAT_VERSION in snapgit/store/layout.py, update docs/format.md and "
    "regenerate with `python tests/data/make_golden.py`; otherwise fix the code"
)


# --- the tagged value form ----------------------------------------------------------------------


def from_tagged(t: Any) -> Any:
    """A Python value from its tagged JSON form.

    JSON null, true, false and strings stand for themselves (NULL, booleans, text). Everything
    else is a one-key object: ``{"int": "<decimal text>"}``, ``{"float": "<repr>"}`` (``nan``,
    ``inf``, ``-inf``, ``-0.0`` allowed), ``{"bytes": "<hex>"}``, ``{"decimal": "<text>"}``,
    ``{"date": "YYYY-MM-DD"}``, ``{"time": "HH:MM:SS[.ffffff][+HH:MM]"}``,
    ``{"datetime": "YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]"}``, ``{"interval": "<microseconds>"}``,
    ``{"uuid": "<8-4-4-4-12>"}``, ``{"json": <any JSON document>}``, ``{"array": [<tagged>...]}``,
    ``{"spelled": [<dialect>, <tagged value>, <tagged spelling>]}``.
    """
    if t is None or isinstance(t, (bool, str)):
        return t
    if not isinstance(t, dict) or len(t) != 1:
        raise ValueError(f"not a tagged value: {t!r}")
    ((tag, v),) = t.items()
    if tag == "int":
        return int(v)
    if tag == "float":
        return float(v)
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "decimal":
        return decimal.Decimal(v)
    if tag == "date":
        return dt.date.fromisoformat(v)
    if tag == "time":
        return dt.time.fromisoformat(v)
    if tag == "datetime":
        return dt.datetime.fromisoformat(v)
    if tag == "interval":
        return dt.timedelta(microseconds=int(v))
    if tag == "uuid":
        return uuid.UUID(v)
    if tag == "json":
        return Json(v)
    if tag == "array":
        return [from_tagged(x) for x in v]
    if tag == "spelled":  # format 2: [dialect, <tagged value>, <tagged spelling>]
        return Spelled(from_tagged(v[1]), from_tagged(v[2]), v[0])
    raise ValueError(f"unknown tag {tag!r}")


def same(a: Any, b: Any) -> bool:
    """Strict equality: same type, float bits, Decimal digits and exponent, UTC offsets."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and (a.tzinfo is None) == (b.tzinfo is None) and a.utcoffset() == b.utcoffset()
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, Json):
        return a.text == b.text
    if isinstance(a, Spelled):
        return a.dialect == b.dialect and same(a.value, b.value) and same(a.spelling, b.spelling)
    return a == b


# --- builders shared with tests/data/make_golden.py ---------------------------------------------


def build_tree(keys: list[bytes], ids: list[bytes]) -> tuple[str, int, dict[int, int]]:
    """(root id hex, row count, {level: node count}) of a tree built into a memory store."""
    store = MemoryObjectStore()
    levels: dict[int, int] = {}
    with store.writer() as w:

        def emit(node: Node, payloads: list[bytes] | None) -> bytes:
            levels[node.level] = levels.get(node.level, 0) + 1
            return w.add(ObjType.NODE, node.encode())

        b = TreeBuilder(emit)
        b.add_batch(keys, ids)
        root, rows = b.finish()
    # The tree reads back as what went in.
    assert list(iter_entries(store, root)) == list(zip(keys, ids, strict=False))
    assert load_node(store, root).row_count == rows
    return root.hex(), rows, levels


def tree_input(spec: dict[str, Any]) -> tuple[list[bytes], list[bytes]]:
    """Keys and record ids of a golden tree, from its description in the golden file."""
    n = spec["n"]
    kind = spec["kind"]
    if kind == "id_name":  # columns (id, name): [i, "row i"], keyed by id
        rows = [[i, f"row {i}"] for i in range(n)]
        return [encode_key([r[0]]) for r in rows], [record_id(encode_row(r)) for r in rows]
    if kind == "id_only":  # one column (id): [i], keyed by id
        return [encode_key([i]) for i in range(n)], [record_id(encode_row([i])) for i in range(n)]
    if kind == "code_key":  # columns (code, n): ["customer-<17 digits of i>", i], keyed by code
        rows = [[f"customer-{i:017d}", i] for i in range(n)]
        return [encode_key([r[0]]) for r in rows], [record_id(encode_row(r)) for r in rows]
    if kind == "keyless":  # columns (g, v): [i % 100, "dup"]; keyless: key = [record id, occurrence]
        ids = sorted(record_id(encode_row([i % 100, "dup"])) for i in range(n))
        keys = []
        prev, occ = None, 0
        for rid in ids:
            occ = occ + 1 if rid == prev else 0
            prev = rid
            keys.append(encode_key([rid, occ]))
        return keys, ids
    raise ValueError(kind)


def golden_schema() -> TableSchema:
    return TableSchema(
        "t",
        (
            Column("id", "bigint", nullable=False, native="INTEGER", autoincrement=True),
            Column("name", "text", nullable=True, default="'x'", native="TEXT"),
        ),
        primary_key=("id",),
    )


def golden_objects(tree_roots: dict[str, str]) -> dict[str, tuple[int, bytes]]:
    """The golden objects of every kind: name -> (type, canonical bytes)."""
    out: dict[str, tuple[int, bytes]] = {}
    schema = encode_schema(golden_schema())
    out["schema"] = (ObjType.SCHEMA, schema)
    schema_id = object_id(ObjType.SCHEMA, schema)
    table = TableEntry(schema_id, bytes.fromhex(tree_roots["id_name_2000"]), 2000, ["id"]).encode()
    out["table"] = (ObjType.TABLE, table)
    keyless = TableEntry(schema_id, bytes.fromhex(tree_roots["keyless_500"]), 500, None).encode()
    out["table_keyless"] = (ObjType.TABLE, keyless)
    root = Root(
        {
            "t": object_id(ObjType.TABLE, table),
            "log": object_id(ObjType.TABLE, keyless),
            "Zeta": object_id(ObjType.TABLE, table),
            "été": object_id(ObjType.TABLE, keyless),
        }
    ).encode()
    out["root"] = (ObjType.ROOT, root)
    commit = Commit(
        tree=object_id(ObjType.ROOT, root),
        parents=[bytes.fromhex("11" * 32), bytes.fromhex("22" * 32)],
        author="Ada Lovelace <ada@example.com>",
        time=1709210730123456,
        tz=120,
        message="nightly snapshot\n\nmerged backup of 2024-02-29",
        meta={
            "snapgit": "0.1.0",
            "kind": "merge",
            "source": "postgresql+psycopg://app@db.internal/shop",
            "rows": {"t": 2000, "log": 500},
            "dialect": "postgresql",
        },
    ).encode()
    out["commit"] = (ObjType.COMMIT, commit)
    tag = Tag(
        target=object_id(ObjType.COMMIT, commit),
        name="v1.0",
        tagger="Ada Lovelace <ada@example.com>",
        time=1709210730999999,
        tz=-300,
        message="first release",
    ).encode()
    out["tag"] = (ObjType.TAG, tag)
    empty_leaf = Node(0, [], []).encode()
    out["empty_tree"] = (ObjType.NODE, empty_leaf)
    return out


def golden_index_input() -> tuple[str, list[bytes]]:
    """A pack name and object ids (in ordinal order); two ids share their 8-byte prefix."""
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    ids.append(ids[2][:8] + bytes(24))
    return "ab" * 32, ids


# --- the tests -----------------------------------------------------------------------------------


def _load() -> dict[str, Any]:
    # make_golden.py imports this module before the golden file exists.
    if not GOLDEN.exists():
        return {"rows": [], "keys": []}
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


_GOLDEN = _load()
ROWS = _GOLDEN["rows"]
KEYS = _GOLDEN["keys"]


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return _GOLDEN


@pytest.mark.parametrize("case", ROWS, ids=[r["name"] for r in ROWS])
def test_row_bytes_and_record_id(case: dict[str, Any]) -> None:
    values = [from_tagged(v) for v in case["values"]]
    data = encode_row(values)
    assert data.hex() == case["hex"], f"row {case['name']!r}: encode_row changed; {FORMAT_CHANGE}"
    assert record_id(data).hex() == case["record_id"], f"row {case['name']!r}: record id changed; {FORMAT_CHANGE}"
    assert record_id(data) == object_id(ObjType.RECORD, data)
    assert hashlib.sha256(b"\x01" + data).hexdigest() == case["record_id"]


@pytest.mark.parametrize("case", ROWS, ids=[r["name"] for r in ROWS])
def test_row_round_trip_gives_canonical_values(case: dict[str, Any]) -> None:
    values = [from_tagged(v) for v in case["values"]]
    expected = [from_tagged(v) for v in case.get("decoded", case["values"])]
    decoded = decode_row(bytes.fromhex(case["hex"]))
    assert same(decoded, expected), f"row {case['name']!r}: decodes to {decoded!r}, expected {expected!r}"
    assert same(decoded, canonical_value(values)), f"row {case['name']!r}: decode differs from canonical_value"
    # Canonical values encode to the very same bytes: decoding and encoding again is stable.
    assert encode_row(decoded).hex() == case["hex"], f"row {case['name']!r}: re-encoding differs; {FORMAT_CHANGE}"


def test_rows_cover_every_value_type(golden: dict[str, Any]) -> None:
    tags: set[str] = set()

    def walk(t: Any) -> None:
        if t is None:
            tags.add("null")
        elif isinstance(t, bool):
            tags.add("bool")
        elif isinstance(t, str):
            tags.add("text")
        else:
            ((tag, v),) = t.items()
            tags.add(tag)
            if tag == "array":
                for x in v:
                    walk(x)
            if tag == "spelled":
                walk(v[1])
                walk(v[2])

    for case in golden["rows"]:
        for v in case["values"]:
            walk(v)
    assert tags >= {
        "null",
        "bool",
        "int",
        "float",
        "text",
        "bytes",
        "decimal",
        "date",
        "time",
        "datetime",
        "interval",
        "uuid",
        "json",
        "array",
        "spelled",
    }


@pytest.mark.parametrize("case", KEYS, ids=[k["name"] for k in KEYS])
def test_key_bytes(case: dict[str, Any]) -> None:
    values = [from_tagged(v) for v in case["values"]]
    assert encode_key(values).hex() == case["hex"], f"key {case['name']!r}: encode_key changed; {FORMAT_CHANGE}"


def test_keys_listed_in_logical_order_encode_strictly_increasing(golden: dict[str, Any]) -> None:
    encoded = [(k["name"], encode_key([from_tagged(v) for v in k["values"]])) for k in golden["keys"]]
    for (na, a), (nb, b) in zip(encoded, encoded[1:], strict=False):
        assert a < b, f"key {na!r} ({a.hex()}) does not sort before {nb!r} ({b.hex()})"


def test_equal_keys(golden: dict[str, Any]) -> None:
    """Values that are equal as SQL compares them share one key (and the pinned bytes)."""
    for group in golden["equal_keys"]:
        for values in group["values"]:
            got = encode_key([from_tagged(v) for v in values]).hex()
            assert got == group["hex"], f"equal keys {group['name']!r}: {values} gives {got}; {FORMAT_CHANGE}"


def test_key_encoder_fast_path_agrees_with_encode_key(golden: dict[str, Any]) -> None:
    for case in golden["keys"]:
        values = [from_tagged(v) for v in case["values"]]
        enc = key_encoder(list(range(len(values))))
        assert enc(values).hex() == case["hex"], case["name"]


def test_worked_example(golden: dict[str, Any]) -> None:
    """The example of docs/format.md."""
    ex = golden["example"]
    values = [from_tagged(v) for v in ex["row"]]
    assert encode_row(values).hex() == ex["row_hex"], FORMAT_CHANGE
    assert record_id(encode_row(values)).hex() == ex["record_id"], FORMAT_CHANGE
    key = [from_tagged(v) for v in ex["key"]]
    assert encode_key(key).hex() == ex["key_hex"], FORMAT_CHANGE
    doc = (Path(__file__).parent.parent / "docs" / "format.md").read_text(encoding="utf-8").replace(" ", "")
    for h in (ex["row_hex"], ex["record_id"], ex["key_hex"]):
        assert h in doc, f"docs/format.md does not show {h}"


@pytest.mark.parametrize("name", sorted(_GOLDEN.get("trees", {})))
def test_tree_root(golden: dict[str, Any], name: str) -> None:
    spec = golden["trees"][name]
    keys, ids = tree_input(spec)
    root, rows, levels = build_tree(keys, ids)
    assert rows == spec["n"]
    assert {str(k): v for k, v in levels.items()} == spec["nodes_per_level"], (
        f"tree {name}: shape changed; {FORMAT_CHANGE}"
    )
    assert root == spec["root"], f"tree {name}: root id changed; {FORMAT_CHANGE}"


def test_tree_root_does_not_depend_on_batching(golden: dict[str, Any]) -> None:
    spec = golden["trees"]["id_name_2000"]
    keys, ids = tree_input(spec)
    store = MemoryObjectStore()
    with store.writer() as w:
        b = TreeBuilder(lambda node, payloads: w.add(ObjType.NODE, node.encode()))
        for i in range(0, len(keys), 7):
            b.add_batch(keys[i : i + 7], ids[i : i + 7])
        root, _ = b.finish()
    assert root.hex() == spec["root"]


def test_empty_tree(golden: dict[str, Any]) -> None:
    store = MemoryObjectStore()
    with store.writer() as w:
        root, rows = TreeBuilder(lambda node, payloads: w.add(ObjType.NODE, node.encode())).finish()
    assert rows == 0
    assert root.hex() == golden["objects"]["empty_tree"]["id"], FORMAT_CHANGE


def test_tree_boundary_hash(golden: dict[str, Any]) -> None:
    """The chunking hash: zlib CRC-32 of the key with the running value set to the level."""
    from zlib import crc32

    for case in golden["crc32"]:
        assert crc32(bytes.fromhex(case["key"]), case["level"]) == case["value"], FORMAT_CHANGE


@pytest.mark.parametrize("name", ["schema", "table", "table_keyless", "root", "commit", "tag", "empty_tree"])
def test_object_bytes_and_id(golden: dict[str, Any], name: str) -> None:
    roots = {n: t["root"] for n, t in golden["trees"].items()}
    otype, data = golden_objects(roots)[name]
    pinned = golden["objects"][name]
    assert otype == pinned["type"]
    assert data.hex() == pinned["hex"], f"object {name!r}: canonical bytes changed; {FORMAT_CHANGE}"
    assert object_id(otype, data).hex() == pinned["id"], f"object {name!r}: id changed; {FORMAT_CHANGE}"


def test_objects_decode_back(golden: dict[str, Any]) -> None:
    roots = {n: t["root"] for n, t in golden["trees"].items()}
    objs = golden_objects(roots)
    assert TableEntry.decode(objs["table"][1]).encode() == objs["table"][1]
    assert TableEntry.decode(objs["table_keyless"][1]).key is None
    assert Root.decode(objs["root"][1]).encode() == objs["root"][1]
    assert Commit.decode(objs["commit"][1]).encode() == objs["commit"][1]
    assert Tag.decode(objs["tag"][1]).encode() == objs["tag"][1]


def test_index_bytes(golden: dict[str, Any]) -> None:
    name, ids = golden_index_input()
    assert build_index(name, ids).hex() == golden["index"]["hex"], f"pack index layout changed; {FORMAT_CHANGE}"


def test_golden_pack_is_still_readable(golden: dict[str, Any], tmp_path: Path) -> None:
    """A pack written by an earlier snapgit (with a delta entry) reads back object for object."""
    spec = golden["pack"]
    pack_dir = tmp_path / "objects" / "pack"
    pack_dir.mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    for suffix in (".pack", ".idx"):
        shutil.copy(GOLDEN_PACK / f"pack-{spec['name']}{suffix}", pack_dir)
    reader = PackReader(pack_dir / f"pack-{spec['name']}.pack")
    index = IndexReader(pack_dir / f"pack-{spec['name']}.idx")
    try:
        assert reader.checksum_ok() and index.checksum_ok()
        assert index.pack_name == spec["name"]
        assert reader.count == index.count == len(spec["objects"])
        kinds = [entry[0] for _, entry in reader.iter_entries()]
        assert kinds == [o["entry_kind"] for o in spec["objects"]]
    finally:
        reader.close()
        index.close()
    store = DiskObjectStore(tmp_path)
    try:
        for obj in spec["objects"]:
            otype, data = store.get(bytes.fromhex(obj["id"]))
            assert otype == obj["type"]
            assert hashlib.sha256(data).hexdigest() == obj["data_sha256"]
    finally:
        store.close()


def test_key_order_matches_value_order_on_samples() -> None:
    """Beyond the listed keys: seeded samples of each type sort the same encoded and as values."""
    import random

    r = random.Random(20240229)

    def check(name: str, values: list[Any], order: Any = None) -> None:
        values = sorted(values, key=order)
        enc = [encode_key([v]) for v in values]
        for (a, ea), (b, eb) in zip(
            zip(values, enc, strict=False), zip(values[1:], enc[1:], strict=False), strict=False
        ):
            if (order(a) if order else a) == (order(b) if order else b):
                assert ea == eb, f"{name}: equal values {a!r} and {b!r} get different keys"
            else:
                assert ea < eb, f"{name}: {a!r} < {b!r} but {ea.hex()} >= {eb.hex()}"

    ints = [r.choice([-1, 1]) * r.getrandbits(r.randint(1, 300)) for _ in range(2000)]
    check("int", ints + [r.randint(-300, 300) for _ in range(300)])
    floats = [struct.unpack(">d", r.getrandbits(64).to_bytes(8, "big"))[0] for _ in range(2000)]
    check("float", [f for f in floats if f == f and f != 0] + [r.uniform(-5, 5) for _ in range(300)])
    decs = [decimal.Decimal(r.randint(-(10**15), 10**15)).scaleb(r.randint(-30, 30)) for _ in range(2000)]
    check("decimal", decs + [decimal.Decimal(r.randint(-99, 99)).scaleb(r.randint(-3, 3)) for _ in range(500)])
    texts = ["".join(r.choice("a\x00bé\U0001d11e") for _ in range(r.randint(0, 5))) for _ in range(2000)]
    check("text", texts, order=lambda s: s.encode("utf-8"))
    check("bytes", [bytes(r.choice([0, 1, 0x80, 0xFF]) for _ in range(r.randint(0, 5))) for _ in range(2000)])
    check("datetime", [dt.datetime(1, 1, 1) + dt.timedelta(microseconds=r.randint(0, 3 * 10**17)) for _ in range(1000)])
    check("interval", [dt.timedelta(microseconds=r.randint(-(10**15), 10**15)) for _ in range(1000)])
    check(
        "array",
        [[r.choice([None, r.randint(-3, 3)]) for _ in range(r.randint(0, 3))] for _ in range(2000)],
        order=lambda a: [(0,) if v is None else (1, v) for v in a],
    )
