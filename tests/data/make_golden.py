"""Write tests/data/golden_rows.json (and, once, tests/data/golden_pack/).

Run it only after a deliberate change of the store format, together with a bump of
FORMAT_VERSION (snapgit/store/layout.py) and an update of docs/format.md:

    .venv/bin/python tests/data/make_golden.py            # golden_rows.json
    .venv/bin/python tests/data/make_golden.py --new-pack  # also replace the golden pack

The golden pack is kept by default: it stands for a pack written by an earlier snapgit, which the
current reader must still read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from zlib import crc32

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for test_golden

from snapgit.encoding import encode_key, encode_row, record_id  # noqa: E402
from snapgit.objects import Node, ObjType  # noqa: E402
from snapgit.store.objectstore import DiskObjectStore  # noqa: E402
from snapgit.store.pack import PackReader  # noqa: E402
from snapgit.store.packindex import build_index  # noqa: E402
from test_golden import (  # noqa: E402
    build_tree,
    from_tagged,
    golden_index_input,
    golden_objects,
    tree_input,
)

I = lambda n: {"int": str(n)}  # noqa: E731, E741 - short on purpose: the table below reads as data
F = lambda s: {"float": s}  # noqa: E731
D = lambda s: {"decimal": s}  # noqa: E731
DATE = lambda s: {"date": s}  # noqa: E731
TIME = lambda s: {"time": s}  # noqa: E731
DT = lambda s: {"datetime": s}  # noqa: E731
IV = lambda us: {"interval": str(us)}  # noqa: E731
U = lambda s: {"uuid": s}  # noqa: E731
B = lambda h: {"bytes": h}  # noqa: E731
J = lambda v: {"json": v}  # noqa: E731
A = lambda *xs: {"array": list(xs)}  # noqa: E731
S = lambda dialect, v, spelling: {"spelled": [dialect, v, spelling]}  # noqa: E731 - format 2

# Rows: (name, values in sorted-column-name order, decoded values when they differ).
ROWS = [
    ("null_and_bools", [None, True, False], None),
    (
        "small_ints",
        [
            I(0),
            I(1),
            I(127),
            I(128),
            I(255),
            I(256),
            I(65535),
            I(65536),
            I(4294967295),
            I(4294967296),
            I(-1),
            I(-32),
            I(-33),
            I(-128),
            I(-129),
            I(-32768),
            I(-32769),
            I(-2147483648),
            I(-2147483649),
        ],
        None,
    ),
    ("int64_edges", [I(-(2**63)), I(2**63 - 1), I(2**63), I(2**64 - 1)], None),
    ("huge_ints", [I(2**64), I(-(2**63) - 1), I(-(10**30)), I(10**40)], None),
    ("floats", [F("1.5"), F("-2.25"), F("0.1"), F("1e+300"), F("5e-324"), F("-1.7976931348623157e+308")], None),
    ("float_specials", [F("nan"), F("-0.0"), F("0.0"), F("inf"), F("-inf")], None),
    (
        "text",
        ["", "hello", "héllo wörld ✓ 日本語 𝄞", "a\u0000b", "x" * 31, "y" * 32, "z" * 300],
        None,
    ),
    ("bytes", [B(""), B("0001ff"), B("00" * 32), B("ab" * 300)], None),
    (
        "decimals",
        [
            D("1.50"),
            D("1.5"),
            D("-0.001"),
            D("0"),
            D("-0"),
            D("0.00"),
            D("1E+3"),
            D("1000"),
            D("123456789012345678901234567890.123456789"),
            D("NaN"),
            D("Infinity"),
            D("-Infinity"),
        ],
        None,
    ),
    (
        "dates_and_times",
        [
            DATE("2024-02-29"),
            DATE("0001-01-01"),
            DATE("9999-12-31"),
            TIME("00:00:00"),
            TIME("13:45:30.123456"),
            TIME("23:59:59.999999"),
            TIME("13:45:30+05:30"),
            TIME("00:30:00-08:00"),
        ],
        None,
    ),
    (
        "datetimes",
        [
            DT("2024-02-29T13:45:30.123456"),
            DT("1970-01-01T00:00:00"),
            DT("0001-01-01T00:00:00"),
            DT("9999-12-31T23:59:59.999999"),
            DT("2024-02-29T13:45:30.123456+02:00"),
            DT("1970-01-01T00:00:00+00:00"),
            DT("2023-12-31T23:30:00-05:00"),
        ],
        [
            DT("2024-02-29T13:45:30.123456"),
            DT("1970-01-01T00:00:00"),
            DT("0001-01-01T00:00:00"),
            DT("9999-12-31T23:59:59.999999"),
            DT("2024-02-29T11:45:30.123456+00:00"),
            DT("1970-01-01T00:00:00+00:00"),
            DT("2024-01-01T04:30:00+00:00"),
        ],
    ),
    ("intervals", [IV(0), IV(86_400_000_000 + 3_000_004), IV(-1), IV(-400 * 86_400_000_000)], None),
    ("uuids", [U("12345678-1234-5678-9abc-def012345678"), U("00000000-0000-0000-0000-000000000000")], None),
    (
        "json",
        [
            J({"b": [1, 2.5, None, True], "a": "é\u0000", "A": {"z": 1, "y": []}}),
            J([]),
            J("text"),
            J(12345678901234567890123),
            J(None),
            J(1.0),
        ],
        None,
    ),
    (
        "arrays",
        [
            A(I(1), I(2), I(3)),
            A(),
            A("a", None, "b"),
            A(A(I(1), I(2)), A()),
            A(D("1.0"), DATE("2024-02-29"), F("nan"), B("00ff")),
        ],
        None,
    ),
    (
        "typical",
        [
            DT("2024-02-29T13:45:30+01:00"),
            I(42),
            None,
            "Ada Lovelace",
            D("19.99"),
            True,
            U("12345678-1234-5678-9abc-def012345678"),
        ],
        [
            DT("2024-02-29T12:45:30+00:00"),
            I(42),
            None,
            "Ada Lovelace",
            D("19.99"),
            True,
            U("12345678-1234-5678-9abc-def012345678"),
        ],
    ),
]

# Format 2: values kept with their engine's spelling (docs/format.md 7.7)
ROWS.append(
    (
        "spelled",
        [
            S("sqlite", DT("2024-01-05T10:00:00"), "2024-01-05T10:00"),
            S("postgresql", J({"a": 1, "b": [2.5]}), '{"b": [2.50], "a": 1}'),
            S("sqlite", U("01234567-89ab-cdef-0123-456789abcdef"), B("0123456789abcdef0123456789abcdef")),
            S("sqlite", D("Infinity"), F("inf")),
            S("mysql", J([1, 1]), " [1, 1] "),
            S("sqlite", J(3), I(3)),
        ],
        None,
    )
)

# The worked example of docs/format.md: columns (born, id, name, price), key (id).
EXAMPLE = {"row": [DATE("1815-12-10"), I(42), "Ada", D("19.99")], "key": [I(42)]}

RID = "5a" * 32  # a record id, for the keys of a keyless table

# Keys in logical order: types by type code, each type in its own order, shorter tuples first.
KEYS = [
    ("null", [None]),
    ("null_null", [None, None]),
    ("null_1", [None, I(1)]),
    ("bytes_empty", [B("")]),
    ("bytes_00", [B("00")]),
    ("bytes_0000", [B("0000")]),
    ("bytes_0001", [B("0001")]),
    ("bytes_01", [B("01")]),
    ("keyless_5a_0", [B(RID), I(0)]),
    ("keyless_5a_1", [B(RID), I(1)]),
    ("keyless_5a_300", [B(RID), I(300)]),
    ("bytes_ff", [B("ff")]),
    ("text_empty", [""]),
    ("text_nul", ["\u0000"]),
    ("text_A", ["A"]),
    ("text_Z", ["Z"]),
    ("text_a", ["a"]),
    ("text_a_null", ["a", None]),
    ("text_a_b", ["a", "b"]),
    ("text_a_1", ["a", I(1)]),
    ("text_a_nul", ["a\u0000"]),
    ("text_a_nul_b", ["a\u0000b"]),
    ("text_ab", ["ab"]),
    ("text_b", ["b"]),
    ("text_e_acute", ["é"]),
    ("text_cjk", ["日本"]),
    ("text_astral", ["𝄞"]),
    ("array_empty", [A()]),
    ("array_null", [A(None)]),
    ("array_null_1", [A(None, I(1))]),
    ("array_text", [A("x")]),
    ("array_nested_empty", [A(A())]),
    ("array_1", [A(I(1))]),
    ("array_1_null", [A(I(1), None)]),
    ("array_1_2", [A(I(1), I(2))]),
    ("array_1_2_3", [A(I(1), I(2), I(3))]),
    ("array_1_3", [A(I(1), I(3))]),
    ("array_2", [A(I(2))]),
    ("json_string", [J("a")]),
    ("json_number", [J(1)]),
    ("json_array", [J([1])]),
    ("json_null", [J(None)]),
    ("json_object", [J({"b": 1, "a": 2})]),
    ("int_-10e40", [I(-(10**40))]),
    ("int_-2^64", [I(-(2**64))]),
    ("int_-2^64+1", [I(-(2**64) + 1)]),
    ("int_-2^63-1", [I(-(2**63) - 1)]),
    ("int_-2^63", [I(-(2**63))]),
    ("int_-1", [I(-1)]),
    ("int_0", [I(0)]),
    ("int_1", [I(1)]),
    ("int_1_null", [I(1), None]),
    ("int_1_a", [I(1), "a"]),
    ("int_1_b", [I(1), "b"]),
    ("int_1_0", [I(1), I(0)]),
    ("int_1_1", [I(1), I(1)]),
    ("int_2", [I(2)]),
    ("int_2^63-1", [I(2**63 - 1)]),
    ("int_2^63", [I(2**63)]),
    ("int_2^64-1", [I(2**64 - 1)]),
    ("int_2^64", [I(2**64)]),
    ("int_10e40", [I(10**40)]),
    ("float_-inf", [F("-inf")]),
    ("float_-1e300", [F("-1e+300")]),
    ("float_-1.5", [F("-1.5")]),
    ("float_-5e-324", [F("-5e-324")]),
    ("float_-0.0", [F("-0.0")]),
    ("float_0.0", [F("0.0")]),
    ("float_5e-324", [F("5e-324")]),
    ("float_1.5", [F("1.5")]),
    ("float_1e300", [F("1e+300")]),
    ("float_inf", [F("inf")]),
    ("float_nan", [F("nan")]),
    ("decimal_-inf", [D("-Infinity")]),
    ("decimal_-1000", [D("-1E+3")]),
    ("decimal_-12.5", [D("-12.5")]),
    ("decimal_-1.5", [D("-1.5")]),
    ("decimal_-1.25", [D("-1.25")]),
    ("decimal_-1.2", [D("-1.2")]),
    ("decimal_-0.001", [D("-0.001")]),
    ("decimal_0", [D("0")]),
    ("decimal_0.001", [D("0.001")]),
    ("decimal_0.1", [D("0.1")]),
    ("decimal_1.2", [D("1.2")]),
    ("decimal_1.25", [D("1.25")]),
    ("decimal_1.5", [D("1.5")]),
    ("decimal_12.5", [D("12.5")]),
    ("decimal_1000", [D("1000")]),
    ("decimal_1e40", [D("1E+40")]),
    ("decimal_inf", [D("Infinity")]),
    ("decimal_nan", [D("NaN")]),
    ("false", [False]),
    ("true", [True]),
    ("date_0001-01-01", [DATE("0001-01-01")]),
    ("date_1970-01-01", [DATE("1970-01-01")]),
    ("date_2024-02-29", [DATE("2024-02-29")]),
    ("date_9999-12-31", [DATE("9999-12-31")]),
    ("time_00:00", [TIME("00:00:00")]),
    ("time_12:00", [TIME("12:00:00")]),
    ("time_23:59:59.999999", [TIME("23:59:59.999999")]),
    ("timetz_00:30+01:00", [TIME("00:30:00+01:00")]),
    ("timetz_10:00+00:00", [TIME("10:00:00+00:00")]),
    ("timetz_11:00+01:00", [TIME("11:00:00+01:00")]),
    ("timetz_12:00+02:00", [TIME("12:00:00+02:00")]),
    ("timetz_09:00-05:00", [TIME("09:00:00-05:00")]),
    ("datetime_0001-01-01", [DT("0001-01-01T00:00:00")]),
    ("datetime_1970-01-01", [DT("1970-01-01T00:00:00")]),
    ("datetime_2024-02-29", [DT("2024-02-29T13:45:30.123456")]),
    ("datetime_2024-02-29_spelled_T", [S("sqlite", DT("2024-02-29T13:45:30.123456"), "2024-02-29T13:45:30.123456")]),
    ("datetime_2024-02-29_spelled_T0", [S("sqlite", DT("2024-02-29T13:45:30.123456"), "2024-02-29T13:45:30.1234560")]),
    ("datetime_2024-02-29T13:45:30.123457", [DT("2024-02-29T13:45:30.123457")]),
    ("datetime_9999-12-31", [DT("9999-12-31T23:59:59.999999")]),
    ("datetimetz_1970-01-01Z", [DT("1970-01-01T00:00:00+00:00")]),
    ("datetimetz_2024-02-29T12:00+02:00", [DT("2024-02-29T12:00:00+02:00")]),
    ("datetimetz_2024-02-29T11:00Z", [DT("2024-02-29T11:00:00+00:00")]),
    ("interval_-400d", [IV(-400 * 86_400_000_000)]),
    ("interval_-1us", [IV(-1)]),
    ("interval_0", [IV(0)]),
    ("interval_1us", [IV(1)]),
    ("interval_1d", [IV(86_400_000_000)]),
    ("uuid_zero", [U("00000000-0000-0000-0000-000000000000")]),
    ("uuid_0123", [U("01234567-89ab-cdef-0123-456789abcdef")]),
    ("uuid_ffff", [U("ffffffff-ffff-ffff-ffff-ffffffffffff")]),
]

# Values that compare equal in SQL and so share one key.
EQUAL_KEYS = [
    ("decimal_1.5", [[D("1.5")], [D("1.50")], [D("15E-1")]]),
    ("decimal_zero", [[D("0")], [D("-0")], [D("0.000")], [D("0E+5")]]),
    ("decimal_-1000", [[D("-1E+3")], [D("-1000")], [D("-1000.00")]]),
    ("float_nan", [[F("nan")], [F("-nan")]]),
    ("datetimetz_same_instant", [[DT("2024-02-29T12:00:00+02:00")], [DT("2024-02-29T10:00:00+00:00")]]),
]

TREES = {
    "id_name_2000": {"kind": "id_name", "n": 2000},
    "keyless_500": {"kind": "keyless", "n": 500},
    "id_only_300000": {"kind": "id_only", "n": 300_000},
    # 28-byte keys: every leaf boundary is also a boundary of levels 1-3 (docs/format.md, 18).
    "code_key_202": {"kind": "code_key", "n": 202},
    "code_key_483": {"kind": "code_key", "n": 483},
}

CRC_CASES = [
    (encode_key([0]), 0),
    (encode_key([0]), 1),
    (encode_key([0]), 2),
    (b"", 1),
    (b"snapgit", 0),
    (b"snapgit", 3),
]


def rows_section() -> list[dict]:
    out = []
    for name, values, decoded in ROWS:
        data = encode_row([from_tagged(v) for v in values])
        case = {"name": name, "values": values, "hex": data.hex(), "record_id": record_id(data).hex()}
        if decoded is not None:
            case["decoded"] = decoded
        out.append(case)
    return out


def make_pack(force: bool) -> dict:
    """Write a small pack with full and delta entries, once; describe what it holds."""
    target = HERE / "golden_pack"
    if target.exists() and not force:
        spec_path = HERE / "golden_rows.json"
        return json.loads(spec_path.read_text(encoding="utf-8"))["pack"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "objects" / "pack").mkdir(parents=True)
        (root / "tmp").mkdir()
        store = DiskObjectStore(root)
        rows = [[i, f"row {i}"] for i in range(200)]
        datas = [encode_row(r) for r in rows]
        rids = [record_id(d) for d in datas]
        keys = [encode_key([i]) for i in range(200)]
        leaf1 = Node(0, keys, rids).encode()
        rids2 = list(rids)
        rids2[100] = record_id(encode_row([100, "changed"]))
        leaf2 = Node(0, keys, rids2).encode()
        rids3 = list(rids2)
        rids3[150] = record_id(encode_row([150, "changed"]))
        leaf3 = Node(0, keys, rids3).encode()
        with store.writer() as w:
            w.add_full_many(ObjType.RECORD, rids[:3], datas[:3])
            n1 = w.add(ObjType.NODE, leaf1)
            n2 = hashlib.sha256(b"\x02" + leaf2).digest()
            w.add_delta(ObjType.NODE, leaf2, n2, n1)
            n3 = hashlib.sha256(b"\x02" + leaf3).digest()
            w.add_delta(ObjType.NODE, leaf3, n3, n2)
        (name,) = store.pack_names()
        store.close()
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        for suffix in (".pack", ".idx"):
            src = root / "objects" / "pack" / f"pack-{name}{suffix}"
            dst = target / src.name
            shutil.copyfile(src, dst)
        reader = PackReader(target / f"pack-{name}.pack")
        objects = []
        expect = [
            (rids[0], 1, datas[0]),
            (rids[1], 1, datas[1]),
            (rids[2], 1, datas[2]),
            (n1, 2, leaf1),
            (n2, 2, leaf2),
            (n3, 2, leaf3),
        ]
        for (ordinal, entry), (oid, otype, data) in zip(reader.iter_entries(), expect, strict=False):
            objects.append(
                {
                    "ordinal": ordinal,
                    "id": oid.hex(),
                    "type": otype,
                    "entry_kind": entry[0],
                    "data_sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        reader.close()
        assert [o["entry_kind"] for o in objects] == [0, 0, 0, 0, 1, 1], "expected two delta entries"
        return {"name": name, "objects": objects}


def dump(doc: dict) -> str:
    """JSON with one row, key, tree or object per line, so that diffs of the file are readable."""

    def compact(v: object) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))

    parts = []
    for k, v in doc.items():
        if isinstance(v, list):
            body = "[\n" + ",\n".join("  " + compact(x) for x in v) + "\n ]"
        elif isinstance(v, dict):
            body = "{\n" + ",\n".join(f"  {compact(kk)}: {compact(vv)}" for kk, vv in v.items()) + "\n }"
        else:
            body = compact(v)
        parts.append(f" {compact(k)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    force_pack = "--new-pack" in sys.argv[1:]
    trees = {}
    for name, spec in TREES.items():
        keys, ids = tree_input(spec)
        root, rows, levels = build_tree(keys, ids)
        trees[name] = {**spec, "root": root, "nodes_per_level": {str(k): v for k, v in sorted(levels.items())}}
    objects = {}
    for name, (otype, data) in golden_objects({n: t["root"] for n, t in trees.items()}).items():
        objects[name] = {"type": int(otype), "hex": data.hex(), "id": hashlib.sha256(bytes([otype]) + data).hexdigest()}
    ex_row = encode_row([from_tagged(v) for v in EXAMPLE["row"]])
    idx_name, idx_ids = golden_index_input()
    doc = {
        "_about": "Pinned bytes of the snapgit store format (docs/format.md), checked by tests/test_golden.py. "
        "A change here is a format change: bump FORMAT_VERSION and regenerate with tests/data/make_golden.py.",
        "_values": "Tagged values: JSON null/true/false/strings are NULL/booleans/text; otherwise one-key objects "
        "int (decimal text), float (Python repr; nan, inf, -inf, -0.0), bytes (hex), decimal (text), date "
        "(YYYY-MM-DD), time (HH:MM:SS[.ffffff][+HH:MM]), datetime (ISO 8601, offset = aware), interval "
        "(microseconds), uuid, json (the document), array (tagged elements).",
        "example": {
            **EXAMPLE,
            "row_hex": ex_row.hex(),
            "record_id": record_id(ex_row).hex(),
            "key_hex": encode_key([from_tagged(v) for v in EXAMPLE["key"]]).hex(),
        },
        "rows": rows_section(),
        "keys": [{"name": n, "values": v, "hex": encode_key([from_tagged(x) for x in v]).hex()} for n, v in KEYS],
        "equal_keys": [
            {"name": n, "values": vs, "hex": encode_key([from_tagged(x) for x in vs[0]]).hex()} for n, vs in EQUAL_KEYS
        ],
        "crc32": [{"key": k.hex(), "level": lv, "value": crc32(k, lv)} for k, lv in CRC_CASES],
        "trees": trees,
        "objects": objects,
        "index": {
            "pack_name": idx_name,
            "ids": [i.hex() for i in idx_ids],
            "hex": build_index(idx_name, idx_ids).hex(),
        },
        "pack": make_pack(force_pack),
    }
    out = HERE / "golden_rows.json"
    out.write_text(dump(doc), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
