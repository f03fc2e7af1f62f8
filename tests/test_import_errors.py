"""A catalogue of broken export files: each is refused by `snap import` with a clear error naming
the place, a non-zero exit status and no traceback, and leaves the store and the database as
they were."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from snapgit import Repo
from snapgit.exchange.importer import ImportValidationError
from test_cli import make_shop, snap


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _edit(path: Path, fn: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(fn(_lines(path))), encoding="utf-8")


def _row_line(lines: list[str], table: str, n: int = 1) -> int:
    """Index of the n-th data line of a table in an exported JSON file."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f'{{"name":"{table}"'))
    data = next(i for i in range(start, len(lines)) if lines[i] == '"data":[')
    return data + n


def _sub_row(table: str, n: int, old: str, new: str) -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        i = _row_line(lines, table, n)
        assert old in lines[i], lines[i]
        lines[i] = lines[i].replace(old, new, 1)
        return lines

    return fn


def _meta(change: Callable[[dict], None]) -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        doc = json.loads(lines[0][:-1] + "}")
        change(doc["metadata"])
        lines[0] = json.dumps(doc, separators=(",", ":"))[:-1] + ","
        return lines

    return fn


def _header(change: Callable[[dict], None], table: str = "orders") -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        i = next(i for i, line in enumerate(lines) if line.startswith(f'{{"name":"{table}"'))
        h = json.loads(lines[i][:-1] + "}")
        change(h)
        lines[i] = json.dumps(h, separators=(",", ":"))[:-1] + ","
        return lines

    return fn


def _rename_table(name: str) -> Callable[[dict], None]:
    def change(h: dict) -> None:
        h["name"] = name
        h["schema"]["name"] = name

    return change


def _csv_edit(fname: str, fn: Callable[[str], str], fix_hash: bool = True) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        p = d / fname
        with open(p, encoding="utf-8", newline="") as f:
            text = f.read()
        p.write_text(fn(text), encoding="utf-8", newline="")
        if fix_hash:
            m = json.loads((d / "manifest.json").read_text())
            for t in m["tables"]:
                if t["file"] == fname:
                    t["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
            (d / "manifest.json").write_text(json.dumps(m))

    return edit


def _csv_bytes(d: Path, fname: str, fn: Callable[[bytes], bytes]) -> None:
    """``fname``'s bytes changed by ``fn``, its SHA-256 in the manifest fixed to match."""
    p = d / fname
    p.write_bytes(fn(p.read_bytes()))
    m = json.loads((d / "manifest.json").read_text())
    for t in m["tables"]:
        if t["file"] == fname:
            t["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))


def _manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        change(m)
        (d / "manifest.json").write_text(json.dumps(m))

    return edit


def _set(d: dict, key: str, value) -> dict:
    d[key] = value
    return d


# Where things are in the good JSON export of the shop (checked by test_the_good_export_is_laid_out_as_the_cases_expect):
# customers' header on line 3 and its 50 rows on lines 5-54; orders' header on 56, its 200 rows on
# 58-257 and its closing line on 258; tags' header on 259 and its 3 rows on 261-263.
CUSTOMERS, ORDERS, ORDERS_END, TAGS = 3, 56, 258, 259
CUSTOMER_1 = 5  # the line that holds "customer 1"
# the checksum of the tag "a" given for the value 1
ONE_AS_A_TAG = (
    "checksum f9da886c9799c5ea1ae184a59a525704281ea8ee9575260e3dc7fddecca66df6 does not match the values "
    "(they give 9a0e3e9184b8f330283673786bd7f02ec6523cf719b5ccaa83e0ec4347a5de63)"
)

# (id, how the good export is broken, every problem snap import reports, in order)
JSON_CASES: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("empty", lambda p: p.write_text(""), ["broken.json:1: the file is empty"]),
    (
        "truncated",
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        [
            "broken.json:119: table 'orders', row 62: invalid JSON: Expecting value: line 1 column 104 (char 103)",
            "broken.json:120: unexpected end of file: the file is truncated",
        ],
    ),
    (
        "not-json",
        lambda p: p.write_text("hello\n"),
        ['broken.json:1: not in the layout snapgit writes: expected a first line {"metadata":{...},'],
    ),
    (
        "invalid-json-row",
        lambda p: _edit(p, _sub_row("orders", 3, '"values":[', '"values":[[')),
        ["broken.json:60: table 'orders', row 3: invalid JSON: Expecting ',' delimiter: line 1 column 107 (char 106)"],
    ),
    (
        "missing-metadata",
        lambda p: _edit(p, lambda ls: ['{"metadata":null,'] + ls[1:]),
        ["broken.json:1: metadata is missing or not an object"],
    ),
    (
        # another tool's file: said once, without the noise of reading the rest as ours
        "wrong-format",
        lambda p: _edit(
            p, lambda ls: _meta(lambda m: _set(m, "format", "other-tool"))(_sub_row("orders", 1, '"1.50"', "1.5")(ls))
        ),
        ["broken.json:1: metadata format is 'other-tool', expected 'snapgit-export'"],
    ),
    (
        "metadata-not-json",
        lambda p: _edit(p, lambda ls: ['{"metadata":{,'] + ls[1:]),
        ["broken.json:1: invalid JSON: Expecting ',' delimiter: line 1 column 15 (char 14)"],
    ),
    (
        "metadata-lists-a-table-the-file-lacks",
        lambda p: _edit(p, _meta(lambda m: m["tables"].__setitem__("ghost", 3))),
        ["broken.json: table 'ghost': the metadata lists this table, the file does not have it"],
    ),
    (
        "removed-keys-in-a-full-table",
        lambda p: _edit(p, lambda ls: ls[:ORDERS] + ['"removed":[', '{"key":[1]}', "],"] + ls[ORDERS:]),
        [f"broken.json:{ORDERS + 1}: table 'orders': removed keys in a table that is not given as changes"],
    ),
    (
        "removed-keys-in-a-table-of-an-unknown-mode",
        lambda p: _edit(
            p,
            lambda ls: _header(lambda h: _set(h, "mode", "bogus"))(
                ls[:ORDERS] + ['"removed":[', '{"key":[1]}', "],"] + ls[ORDERS:]
            ),
        ),
        [
            f"broken.json:{ORDERS + 1}: table 'orders': removed keys in a table that is not given as changes",
            f"broken.json:{ORDERS}: table 'orders': mode 'bogus' is not full or changes",
        ],
    ),
    (
        "unknown-mode",
        lambda p: _edit(p, _header(lambda h: _set(h, "mode", "partial"))),
        [f"broken.json:{ORDERS}: table 'orders': mode 'partial' is not full or changes"],
    ),
    (
        "tables-array-closed-with-more",
        lambda p: _edit(p, lambda ls: ls[:-2] + ["]}}", ""]),
        ["broken.json:265: not in the layout snapgit writes: expected the closing line ]}"],
    ),
    (
        "tables-array-closed-wrongly",
        lambda p: _edit(p, lambda ls: ls[:-2] + ["]", ""]),
        ["broken.json:265: not in the layout snapgit writes: expected the closing line ]}"],
    ),
    (
        "metadata-tables-a-list",
        lambda p: _edit(p, _meta(lambda m: _set(m, "tables", []))),
        ["broken.json:1: metadata tables is not a map of table name to row count"],
    ),
    (
        "metadata-count-not-a-number",
        lambda p: _edit(p, _meta(lambda m: m["tables"].__setitem__("orders", "many"))),
        ["broken.json:1: metadata tables is not a map of table name to row count"],
    ),
    (
        "incremental-without-a-base",
        lambda p: _edit(p, _meta(lambda m: m.update(kind="incremental"))),
        ["broken.json:1: an incremental export has no base commit id in its metadata"],
    ),
    (
        "a-format-that-sorts-after-ours",
        lambda p: _edit(p, _meta(lambda m: _set(m, "format", "zip-export"))),
        ["broken.json:1: metadata format is 'zip-export', expected 'snapgit-export'"],
    ),
    (
        # a version this snapgit cannot read: said once, the rest not read as if it could
        "wrong-format-version-and-a-bad-row",
        lambda p: _edit(
            p, lambda ls: _meta(lambda m: _set(m, "format_version", 99))(_sub_row("orders", 1, '"1.50"', "1.5")(ls))
        ),
        ["broken.json:1: metadata format_version is 99, this snapgit reads 1 to 2"],
    ),
    (
        # with a bad row too: the file is not read on as if its kind were known
        "an-unknown-kind",
        lambda p: _edit(
            p, lambda ls: _meta(lambda m: _set(m, "kind", "zzz"))(_sub_row("orders", 1, '"1.50"', "1.5")(ls))
        ),
        ["broken.json:1: metadata kind is 'zzz', expected full or incremental"],
    ),
    (
        "wrong-format-version",
        lambda p: _edit(p, _meta(lambda m: _set(m, "format_version", 99))),
        ["broken.json:1: metadata format_version is 99, this snapgit reads 1 to 2"],
    ),
    (
        "wrong-checksum",
        lambda p: _edit(p, _sub_row("orders", 5, '"checksum":"', '"checksum":"0')),
        ['broken.json:62: table \'orders\', row 5: expected {"checksum": 64 hex digits, "values": [...]}'],
    ),
    (
        "wrong-count-in-metadata",
        lambda p: _edit(p, _meta(lambda m: m["tables"].__setitem__("orders", 7))),
        [f"broken.json:{ORDERS}: table 'orders': the header says 200 rows, the metadata 7"],
    ),
    (
        "wrong-count-in-header",
        lambda p: _edit(p, _header(lambda h: _set(h, "rows", 5))),
        [
            f"broken.json:{ORDERS}: table 'orders': the header says 5 rows, the metadata 200",
            f"broken.json:{ORDERS_END}: table 'orders': the table has 200 rows, the header says 5",
        ],
    ),
    (
        "value-of-wrong-type",
        lambda p: _edit(p, _sub_row("customers", 2, '"2024-01-03T10:00:00"', '"yesterday"')),
        [
            "broken.json:6: table 'customers', row 2, column 'created_at': "
            'expected an ISO 8601 timestamp without offset, found "yesterday"'
        ],
    ),
    (
        "decimal-as-number",
        lambda p: _edit(p, _sub_row("orders", 1, '"1.50"', "1.5")),
        ["broken.json:58: table 'orders', row 1, column 'amount': expected a decimal as a string, found 1.5"],
    ),
    (
        "path-traversal-table",
        lambda p: _edit(p, _header(_rename_table("../evil"))),
        [
            f"broken.json:{ORDERS}: table name '../evil' contains a path separator: "
            "refused, it could escape the export directory"
        ],
    ),
    (
        "absolute-table-name",
        lambda p: _edit(p, _header(_rename_table("/etc/passwd"))),
        [
            f"broken.json:{ORDERS}: table name '/etc/passwd' contains a path separator: "
            "refused, it could escape the export directory"
        ],
    ),
    (
        "nul-in-table-name",
        lambda p: _edit(p, _header(_rename_table("a\x00b"))),
        [
            f"broken.json:{ORDERS}: table name 'a\\x00b' contains a NUL character: "
            "refused, it could escape the export directory"
        ],
    ),
    (
        "table-not-in-metadata",
        lambda p: _edit(p, _header(_rename_table("other"))),
        [f"broken.json:{ORDERS}: table 'other': the table is not listed in the metadata"],
    ),
    (
        "missing-column",
        lambda p: _edit(p, _header(lambda h: h["columns"].pop())),
        [
            f"broken.json:{ORDERS}: table 'orders': columns ['amount', 'customer_id', 'id'] are not the "
            "schema's column names in sorted order ['amount', 'customer_id', 'id', 'note']"
        ],
    ),
    (
        "a-column-not-in-the-schema",
        lambda p: _edit(p, _header(lambda h: h["columns"].append("zzz"))),
        [
            f"broken.json:{ORDERS}: table 'orders': columns ['amount', 'customer_id', 'id', 'note', 'zzz'] are not "
            "the schema's column names in sorted order ['amount', 'customer_id', 'id', 'note']"
        ],
    ),
    (
        "schema-of-another-name",
        lambda p: _edit(p, _header(lambda h: h["schema"].__setitem__("name", "aaa"))),
        [f"broken.json:{ORDERS}: table 'orders': the schema is malformed: the schema is of table 'aaa'"],
    ),
    (
        "schema-of-a-name-that-sorts-after",
        lambda p: _edit(p, _header(lambda h: h["schema"].__setitem__("name", "zzz"))),
        [f"broken.json:{ORDERS}: table 'orders': the schema is malformed: the schema is of table 'zzz'"],
    ),
    (
        "schema-not-a-schema",
        lambda p: _edit(p, _header(lambda h: h["schema"].__setitem__("columns", 5))),
        [f"broken.json:{ORDERS}: table 'orders': the schema is malformed: 'int' object is not iterable"],
    ),
    (
        "header-without-a-schema",
        lambda p: _edit(p, _header(lambda h: h.pop("schema"))),
        [f"broken.json:{ORDERS}: table 'orders': the header has no schema"],
    ),
    (
        "column-without-a-type",
        lambda p: _edit(p, _header(lambda h: h["schema"]["columns"][0].pop("type"))),
        [f"broken.json:{ORDERS}: table 'orders': the schema is malformed: it has no 'type'"],
    ),
    (
        "schema-a-list",
        lambda p: _edit(p, _header(lambda h: _set(h, "schema", []))),
        [
            f"broken.json:{ORDERS}: table 'orders': the schema is malformed: list indices must be integers or slices, not str"
        ],
    ),
    (
        "column-type-not-text",
        lambda p: _edit(p, _header(lambda h: h["schema"]["columns"][0].__setitem__("type", 5))),
        [
            f"broken.json:{ORDERS}: table 'orders': the schema is malformed: a column's name and type are text, not 'id' and 5"
        ],
    ),
    (
        "column-name-not-text",
        lambda p: _edit(p, _header(lambda h: h["schema"]["columns"][0].__setitem__("name", 5))),
        [
            f"broken.json:{ORDERS}: table 'orders': the schema is malformed: a column's name and type are text, not 5 and 'integer'"
        ],
    ),
    (
        "key-not-a-list",
        lambda p: _edit(p, _header(lambda h: _set(h, "key", 5))),
        [f"broken.json:{ORDERS}: table 'orders': key 5 is not a list of the table's columns"],
    ),
    (
        "key-not-a-column",
        lambda p: _edit(p, _header(lambda h: _set(h, "key", ["nope"]))),
        [f"broken.json:{ORDERS}: table 'orders': key ['nope'] is not a list of the table's columns"],
    ),
    (
        "a-header-line-not-an-object",
        lambda p: _edit(p, lambda ls: ls[: ORDERS - 1] + ["[" + ls[ORDERS - 1][1:]] + ls[ORDERS:]),
        [f"broken.json:{ORDERS}: not in the layout snapgit writes: expected a table header line {{...,"],
    ),
    (
        # a value of its column's form that the store cannot hold: an interval past 64 bits of
        # microseconds (the tags' one column made an interval, its rows integers)
        "a-value-the-store-cannot-hold",
        lambda p: _edit(
            p,
            lambda ls: _header(lambda h: h["schema"]["columns"][0].__setitem__("type", "interval"), "tags")(
                _sub_row("tags", 1, '"values":["b"]', f'"values":[{2**63}]')(
                    _sub_row("tags", 2, '"values":["a"]', '"values":[1]')(
                        _sub_row("tags", 3, '"values":["a"]', '"values":[1]')(ls)
                    )
                )
            ),
        ),
        [
            "broken.json:261: table 'tags', row 1: interval 106751991 days, 4:00:54.775808 does not fit in 64 bits "
            "of microseconds",
            f"broken.json:262: table 'tags', row 2: {ONE_AS_A_TAG}",
            f"broken.json:263: table 'tags', row 3: {ONE_AS_A_TAG}",
        ],
    ),
    (
        "a-closing-bracket-for-a-header",
        lambda p: _edit(p, lambda ls: ls[: ORDERS - 1] + ["]"] + ls[ORDERS:]),
        [f"broken.json:{ORDERS}: not in the layout snapgit writes: expected a table header line {{...,"],
    ),
    (
        "more-rows-in-the-header-than-the-table-has",
        lambda p: _edit(
            p,
            lambda ls: _header(lambda h: _set(h, "rows", 300))(
                _meta(lambda m: m["tables"].__setitem__("orders", 300))(ls)
            ),
        ),
        [f"broken.json:{ORDERS_END}: table 'orders': the table has 200 rows, the header says 300"],
    ),
    (
        "negative-row-count",
        lambda p: _edit(p, _header(lambda h: _set(h, "rows", -1))),
        [f"broken.json:{ORDERS}: table 'orders': rows is not a row count"],
    ),
    (
        "a-header-that-is-not-json",
        lambda p: _edit(p, lambda ls: ls[: ORDERS - 1] + ['{"name":"orders",,'] + ls[ORDERS:]),
        [
            f"broken.json:{ORDERS}: invalid JSON: Expecting property name enclosed in double quotes: line 1 column 18 (char 17)"
        ],
    ),
    (
        "ends-after-a-header",
        lambda p: _edit(p, lambda ls: ls[:ORDERS]),
        [f'broken.json:{ORDERS + 1}: unexpected end of file: expected "data":['],
    ),
    (
        "ends-between-tables",
        lambda p: _edit(p, lambda ls: ls[:ORDERS_END]),
        [f"broken.json:{ORDERS_END + 1}: unexpected end of file: the tables array is not closed"],
    ),
    (
        "a-second-line-that-sorts-after",
        lambda p: _edit(p, lambda ls: [ls[0], '"tablez":[', *ls[2:]]),
        ['broken.json:2: not in the layout snapgit writes: expected the line "tables":['],
    ),
    (
        "a-second-line-that-sorts-before",
        lambda p: _edit(p, lambda ls: [ls[0], '"table":[', *ls[2:]]),
        ['broken.json:2: not in the layout snapgit writes: expected the line "tables":['],
    ),
    (
        "one-json-document",
        lambda p: p.write_text('{"metadata":{"format":"snapgit-export"}}\n'),
        ['broken.json:1: not in the layout snapgit writes: expected a first line {"metadata":{...},'],
    ),
    (
        "too-few-values",
        lambda p: _edit(p, _sub_row("orders", 2, '"values":["2.50",3,2,null]', '"values":["2.50",3,2]')),
        ["broken.json:59: table 'orders', row 2: expected 4 values, found 3"],
    ),
    (
        # a key past what a key holds (an integer of 2,101 bits), under the checksum of its values
        "a-key-too-big-to-encode",
        lambda p: _edit(p, _huge_key_row),
        [
            f"broken.json:59: table 'orders', row 2: key: cannot encode key [{2**2100}]: value out of range "
            "(bytes must be in range(0, 256))"
        ],
    ),
    (
        "too-many-values",
        lambda p: _edit(p, _sub_row("tags", 1, '"values":[', '"values":[1,')),
        ["broken.json:261: table 'tags', row 1: expected 1 values, found 2"],
    ),
    (
        "a-row-twice",
        lambda p: _edit(p, lambda ls: ls[: ORDERS + 3] + [ls[ORDERS + 2]] + ls[ORDERS + 3 :]),
        [
            f"broken.json:{ORDERS + 4}: table 'orders', row 3: rows are not in key order, or a key repeats",
            f"broken.json:{ORDERS_END + 1}: table 'orders': the table has 201 rows, the header says 200",
        ],
    ),
    (
        "rows-out-of-order",
        lambda p: _edit(p, lambda ls: _swap(ls, _row_line(ls, "orders", 1), _row_line(ls, "orders", 2))),
        ["broken.json:59: table 'orders', row 2: rows are not in key order, or a key repeats"],
    ),
    (
        "trailing-comma",
        lambda p: _edit(p, lambda ls: _comma_last(ls, "tags")),
        ["broken.json:263: invalid JSON: a ',' after the last item of an array"],
    ),
    (
        "incremental-missing-base",
        lambda p: _edit(p, _meta(lambda m: m.update(kind="incremental", base="ab" * 32))),
        [f"broken.json:1: the base commit {'ab' * 32} of this incremental export is not in the store"],
    ),
    (
        "incremental-unknown-table",
        lambda p: _edit(p, lambda ls: _incremental_unknown(ls)),
        [
            f"broken.json:{ORDERS}: table 'brand_new': the table is given as changes, "
            "but the base commit has no such table"
        ],
    ),
    (
        # a line that cannot be read ends the input: that one problem, not a truncated file as well
        "not-utf8",
        lambda p: p.write_bytes(p.read_bytes().replace(b"customer 1", b"customer \xff", 1)),
        [
            f"broken.json:{CUSTOMER_1}: cannot read the file: "
            "'utf-8' codec can't decode byte 0xff in position 140: invalid start byte"
        ],
    ),
]


def _huge_key_row(ls: list[str]) -> list[str]:
    import decimal

    from snapgit.encoding import encode_row
    from snapgit.objects import ObjType, object_id

    i = _row_line(ls, "orders", 2)
    rid = object_id(ObjType.RECORD, encode_row([decimal.Decimal("2.50"), 3, 2**2100, None])).hex()
    ls[i] = f'{{"checksum":"{rid}","values":["2.50",3,{2**2100},null]}},'
    return ls


def _swap(ls: list[str], i: int, j: int) -> list[str]:
    ls[i], ls[j] = ls[j], ls[i]
    return ls


def _comma_last(ls: list[str], table: str) -> list[str]:
    i = _row_line(ls, table, 1)
    while ls[i + 1] not in ("]}", "]},"):
        i += 1
    ls[i] += ","
    return ls


BASE_HEX: dict[str, str] = {}


def _incremental_unknown(ls: list[str]) -> list[str]:
    ls = _meta(lambda m: m.update(kind="incremental", base=BASE_HEX["head"]))(ls)
    return _header(lambda h: (_rename_table("brand_new")(h), _set(h, "mode", "changes")))(
        _meta(lambda m: m["tables"].__setitem__("brand_new", m["tables"].pop("orders")))(ls)
    )


CSV_CASES: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("csv-missing-manifest", lambda d: (d / "manifest.json").unlink(), ["manifest.json: the manifest is missing"]),
    (
        "csv-manifest-hash-mismatch",
        _csv_edit("tags.csv", lambda t: t.replace("a", "z", 1), fix_hash=False),
        [
            "tags.csv: table 'tags': SHA-256 is 4b80746ff7de1b4b2bed056a3fb6c6835bdd41e5b9622ff6c292441253680fa0, "
            "the manifest says 428531bafada2d94ae1a58fe688051fed2abcdba4cf7d3cd4130575f7ea8bdf6",
            "tags.csv:1: table 'tags': the header is ['lzbel'], expected the columns ['label']",
        ],
    ),
    (
        "csv-missing-column",
        _csv_edit("orders.csv", lambda t: "\r\n".join(",".join(line.split(",")[:-1]) for line in t.split("\r\n"))),
        [
            "orders.csv:1: table 'orders': the header is ['amount', 'customer_id', 'id'], "
            "expected the columns ['amount', 'customer_id', 'id', 'note']"
        ],
    ),
    (
        "csv-short-row",
        _csv_edit("tags.csv", lambda t: t.replace("\r\na\r\n", "\r\na,b\r\n", 1)),
        ["tags.csv:3: table 'tags', row 2: expected 1 cells, found 2"],
    ),
    (
        "csv-row-missing-a-cell",
        _csv_edit("orders.csv", lambda t: t.replace("1.50,2,1,\r\n", "1.50,2,1\r\n", 1)),
        ["orders.csv:2: table 'orders', row 1: expected 4 cells, found 3"],
    ),
    (
        "csv-bad-value",
        _csv_edit("orders.csv", lambda t: t.replace("1.50", "one fifty", 1)),
        ["orders.csv:2: table 'orders', row 1, column 'amount': expected a decimal as a string, found \"one fifty\""],
    ),
    (
        "csv-wrong-count",
        _manifest(lambda m: m["tables"][0].__setitem__("rows", 1)),
        [
            "manifest.json: table 'customers': the table's row count is not the metadata's",
            "customers.csv: table 'customers': the file has 50 rows, the manifest says 1",
        ],
    ),
    (
        "csv-columns-not-the-schemas",
        _manifest(lambda m: m["tables"][0].__setitem__("columns", ["name"])),
        [
            "manifest.json: table 'customers': columns ['name'] are not the schema's column names in sorted "
            "order ['created_at', 'email', 'id', 'name']"
        ],
    ),
    (
        "csv-count-above-the-metadata",
        _manifest(lambda m: m["tables"][0].__setitem__("rows", 51)),
        [
            "manifest.json: table 'customers': the table's row count is not the metadata's",
            "customers.csv: table 'customers': the file has 50 rows, the manifest says 51",
        ],
    ),
    (
        "csv-manifest-hash-above",
        _manifest(lambda m: m["tables"][2].__setitem__("sha256", "f" * 64)),
        [
            "tags.csv: table 'tags': SHA-256 is 428531bafada2d94ae1a58fe688051fed2abcdba4cf7d3cd4130575f7ea8bdf6, "
            f"the manifest says {'f' * 64}"
        ],
    ),
    (
        "csv-traversal-file",
        _manifest(lambda m: m["tables"][0].__setitem__("file", "../../etc/passwd")),
        [
            "manifest.json: table 'customers': file name '../../etc/passwd' contains a path separator: "
            "refused, it could escape the export directory"
        ],
    ),
    ("csv-missing-file", lambda d: (d / "orders.csv").unlink(), ["orders.csv: table 'orders': the file is missing"]),
    (
        # a file the csv module cannot read stops that table, not the others
        "csv-unreadable-and-a-bad-value",
        lambda d: (
            _csv_edit("customers.csv", lambda t: t.replace(",customer 1\r\n", ',"customer 1"x\r\n', 1))(d),
            _csv_edit("orders.csv", lambda t: t.replace("1.50", "one fifty", 1))(d),
        ),
        [
            "customers.csv: table 'customers': not a readable CSV file: ',' expected after '\"'",
            "orders.csv:2: table 'orders', row 1, column 'amount': expected a decimal as a string, found \"one fifty\"",
        ],
    ),
    (
        "csv-not-utf8",
        lambda d: _csv_bytes(d, "tags.csv", lambda b: b.replace(b"\r\nb\r\n", b"\r\n\xff\r\n", 1)),
        [
            "tags.csv: table 'tags': not a readable CSV file: 'utf-8' codec can't decode byte 0xff in position 7: invalid start byte"
        ],
    ),
    (
        "csv-manifest-not-json",
        lambda d: (d / "manifest.json").write_text('{"metadata": '),
        ["manifest.json: invalid JSON: Expecting value: line 1 column 14 (char 13)"],
    ),
    (
        "csv-unknown-mode",
        _manifest(lambda m: m["tables"][0].__setitem__("mode", "bogus")),
        ["manifest.json: table 'customers': mode 'bogus' is not full or changes"],
    ),
    (
        "csv-changes-in-a-full-export",
        _manifest(lambda m: m["tables"][0].__setitem__("mode", "changes")),
        ["manifest.json: table 'customers': a table given as changes in a full export"],
    ),
    (
        "csv-incremental-missing-base",
        _manifest(lambda m: m["metadata"].update(kind="incremental", base="ab" * 32)),
        [f"manifest.json:1: the base commit {'ab' * 32} of this incremental export is not in the store"],
    ),
]


def _and_a_later_table(case: tuple[str, Callable[[Path], None], list[str]]) -> tuple:
    """The case, with tags.csv (the last table) broken too: a table's problem ends that table,
    never the reading of the tables after it."""
    name, breaker, expected = case
    short_row = _csv_edit("tags.csv", lambda t: t.replace("\r\na\r\n", "\r\na,b\r\n", 1))
    return (
        name,
        lambda d: (breaker(d), short_row(d)),
        [*expected, "tags.csv:3: table 'tags', row 2: expected 1 cells, found 2"],
    )


_ONE_TABLE_ENDED = (
    "csv-columns-not-the-schemas",
    "csv-missing-column",
    "csv-wrong-count",
    "csv-traversal-file",
    "csv-missing-file",
    "csv-unknown-mode",
    "csv-changes-in-a-full-export",
)
CSV_CASES = [_and_a_later_table(c) if c[0] in _ONE_TABLE_ENDED else c for c in CSV_CASES]


def _listing(root: Path) -> dict[str, bytes]:
    """Every file of the store (but the audit log, which records the refusal) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "oplog.jsonl"
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("exported")
    make_shop(d / "shop.db")
    # (through the API: the importer's mutation run builds this once per mutant)
    with Repo.init(d, f"sqlite:///{d / 'shop.db'}") as repo:
        head = repo.commit("first").commit_id.hex()
        repo.export(head, d / "good.json")
        repo.export(head, d / "good-csv", fmt="csv")
    BASE_HEX["head"] = head
    return d


def _copy_project(exported: Path, work: Path, ignore=None) -> None:
    """A copy of the project whose store points at the copy's database."""
    shutil.copytree(exported, work, ignore=ignore)
    config = work / ".snapstore" / "config.toml"
    config.write_text(config.read_text().replace(str(exported), str(work)))


def _check_refused(
    exported: Path, tmp_path: Path, target: Path, expected: list[str], *args: str, cli: bool = False
) -> None:
    """``target`` is refused with exactly the ``expected`` problems, and the store and the
    database stay as they were; through the Python API (fast: the catalogue is what the
    importer's mutation run leans on), or with ``cli`` through `snap import` in a subprocess,
    which must also exit 1 with one line per problem, no traceback, and log the refusal."""
    work = tmp_path / "work"
    _copy_project(exported, work, shutil.ignore_patterns("good*"))
    store = work / ".snapstore"
    before = _listing(store)
    db_before = (work / "shop.db").read_bytes()
    count = f"{len(expected)} problem{'s' if len(expected) > 1 else ''}"
    if cli:
        proc = snap(work, "import", str(target), *args, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        lines = proc.stderr.splitlines()
        assert lines[0] == f"error: {target}: {count}, nothing imported", proc.stderr
        assert lines[1:] == expected  # each problem names its place: the file, and the line where there are lines
        log = [json.loads(line) for line in (store / "oplog.jsonl").read_text().splitlines()]
        assert log[-1]["op"] == "import" and log[-1]["ok"] is False
    else:
        options = dict(zip(args[::2], args[1::2], strict=True))
        with Repo.open(work) as repo, pytest.raises(ImportValidationError) as caught:
            repo.import_file(
                target,
                merge_strategy=options.get("--strategy"),
                max_size=int(options["--max-size"]) if "--max-size" in options else None,
            )
        assert str(caught.value).splitlines() == [f"{target}: {count}, nothing imported", *expected]
    assert _listing(store) == before
    assert (work / "shop.db").read_bytes() == db_before


def _broken(exported: Path, tmp_path: Path, case) -> Path:
    name, breaker, _expected = case
    if name.startswith("csv-"):
        target = tmp_path / "broken-csv"
        shutil.copytree(exported / "good-csv", target)
    else:
        target = tmp_path / "broken.json"
        shutil.copy(exported / "good.json", target)
    breaker(target)
    return target


@pytest.mark.parametrize("case", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_broken_json_export_is_refused(exported: Path, tmp_path: Path, case) -> None:
    target = _broken(exported, tmp_path, case)
    _check_refused(exported, tmp_path, target, case[2], "--strategy", "backup_wins")


@pytest.mark.parametrize("case", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_broken_csv_export_is_refused(exported: Path, tmp_path: Path, case) -> None:
    target = _broken(exported, tmp_path, case)
    _check_refused(exported, tmp_path, target, case[2])


CLI_CASES = [
    c for c in JSON_CASES + CSV_CASES if c[0] in ("empty", "wrong-count-in-header", "not-utf8", "csv-bad-value")
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_snap_import_refuses_with_a_line_per_problem_and_exit_1(exported: Path, tmp_path: Path, case) -> None:
    target = _broken(exported, tmp_path, case)
    merge = ("--merge", "--strategy", "backup_wins") if target.suffix == ".json" else ()
    _check_refused(exported, tmp_path, target, case[2], *merge, cli=True)


def test_oversized_input_is_refused(exported: Path, tmp_path: Path) -> None:
    size = (exported / "good.json").stat().st_size
    _check_refused(
        exported,
        tmp_path,
        exported / "good.json",
        [f"good.json: the input is {size:,} bytes, more than the maximum 1,000 (--max-size)"],
        "--max-size",
        "1000",
        cli=True,
    )


def test_every_problem_is_reported(exported: Path, tmp_path: Path) -> None:
    target = tmp_path / "broken.json"
    shutil.copy(exported / "good.json", target)
    _edit(target, _sub_row("orders", 1, '"1.50"', "1.5"))
    _edit(target, _sub_row("orders", 4, '"checksum":"', '"checksum":"0'))
    _edit(target, _sub_row("customers", 2, '"2024-01-03T10:00:00"', '"yesterday"'))
    proc = snap(exported, "import", str(target), check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].endswith("3 problems, nothing imported"), proc.stderr
    assert len(proc.stderr.splitlines()) == 4


def test_good_files_import_and_merge(exported: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    _copy_project(exported, work)
    con = sqlite3.connect(work / "shop.db")
    con.execute("DELETE FROM orders WHERE id > 100")
    con.commit()
    con.close()
    proc = snap(work, "import", "good.json", "--branch", "restored", "--merge", "--strategy", "backup_wins")
    assert "imported good.json" in proc.stdout and "100 added" in proc.stdout
    con = sqlite3.connect(work / "shop.db")
    assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 200
    con.close()
    doc = json.loads(snap(work, "import", "good-csv", "--json").stdout)
    assert doc["ref"].startswith("refs/imports/") and doc["rows"]["orders"] == 200


def test_the_good_export_is_laid_out_as_the_cases_expect(exported: Path) -> None:
    lines = _lines(exported / "good.json")
    assert lines[CUSTOMERS - 1].startswith('{"name":"customers"')
    assert "customer 1" in lines[CUSTOMER_1 - 1]
    assert lines[ORDERS - 1].startswith('{"name":"orders"') and lines[ORDERS_END - 1] == "]},"
    assert _row_line(lines, "orders", 200) + 1 == ORDERS_END - 1  # (_row_line counts from 0)
    assert lines[TAGS - 1].startswith('{"name":"tags"') and _row_line(lines, "tags", 3) + 1 == TAGS + 4
