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


def _manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        change(m)
        (d / "manifest.json").write_text(json.dumps(m))

    return edit


def _set(d: dict, key: str, value) -> dict:
    d[key] = value
    return d


# (id, format, how the good export is broken, text the error must contain, extra import args)
JSON_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("empty", lambda p: p.write_text(""), "the file is empty"),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
    ("not-json", lambda p: p.write_text("hello\n"), "not in the layout snapgit writes"),
    ("invalid-json-row", lambda p: _edit(p, _sub_row("orders", 3, '"values":[', '"values":[[')), "orders.jsonl:"),
    ("missing-metadata", lambda p: _edit(p, lambda ls: ['{"metadata":null,'] + ls[1:]), "metadata is missing"),
    (
        "wrong-format-version",
        lambda p: _edit(p, _meta(lambda m: _set(m, "format_version", 99))),
        "format_version is 99",
    ),
    ("wrong-checksum", lambda p: _edit(p, _sub_row("orders", 5, '"checksum":"', '"checksum":"0')), "checksum"),
    (
        "wrong-count-in-metadata",
        lambda p: _edit(p, _meta(lambda m: m["tables"].__setitem__("orders", 7))),
        "the header says 200 rows, the metadata 7",
    ),
    ("wrong-count-in-header", lambda p: _edit(p, _header(lambda h: _set(h, "rows", 5))), "the header says 5"),
    (
        "value-of-wrong-type",
        lambda p: _edit(p, _sub_row("customers", 2, '"2024-01-03T10:00:00"', '"yesterday"')),
        "column 'created_at': expected an ISO 8601 timestamp",
    ),
    ("decimal-as-number", lambda p: _edit(p, _sub_row("orders", 1, '"1.50"', "1.5")), "expected a decimal"),
    ("path-traversal-table", lambda p: _edit(p, _header(_rename_table("../evil"))), "could escape"),
    ("absolute-table-name", lambda p: _edit(p, _header(_rename_table("/etc/passwd"))), "could escape"),
    ("nul-in-table-name", lambda p: _edit(p, _header(_rename_table("a\x00b"))), "NUL"),
    ("table-not-in-metadata", lambda p: _edit(p, _header(_rename_table("other"))), "not listed in the metadata"),
    ("missing-column", lambda p: _edit(p, _header(lambda h: h["columns"].pop())), "columns"),
    ("too-many-values", lambda p: _edit(p, _sub_row("tags", 1, '"values":[', '"values":[1,')), "expected 1 values"),
    (
        "rows-out-of-order",
        lambda p: _edit(p, lambda ls: _swap(ls, _row_line(ls, "orders", 1), _row_line(ls, "orders", 2))),
        "not in key order",
    ),
    ("trailing-comma", lambda p: _edit(p, lambda ls: _comma_last(ls, "tags")), "a ',' after the last item"),
    (
        "incremental-missing-base",
        lambda p: _edit(p, _meta(lambda m: m.update(kind="incremental", base="ab" * 32))),
        "base commit abab",
    ),
    (
        "incremental-unknown-table",
        lambda p: _edit(p, lambda ls: _incremental_unknown(ls)),
        "given as changes, but the base commit has no such table",
    ),
    ("not-utf8", lambda p: p.write_bytes(p.read_bytes().replace(b"customer 1", b"customer \xff", 1)), "cannot read"),
]


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


CSV_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("csv-missing-manifest", lambda d: (d / "manifest.json").unlink(), "the manifest is missing"),
    ("csv-manifest-hash-mismatch", _csv_edit("tags.csv", lambda t: t.replace("a", "z", 1), fix_hash=False), "SHA-256"),
    (
        "csv-missing-column",
        _csv_edit("orders.csv", lambda t: "\r\n".join(",".join(line.split(",")[:-1]) for line in t.split("\r\n"))),
        "the header is",
    ),
    ("csv-short-row", _csv_edit("tags.csv", lambda t: t.replace("\r\na\r\n", "\r\na,b\r\n", 1)), "expected 1 cells"),
    ("csv-bad-value", _csv_edit("orders.csv", lambda t: t.replace("1.50", "one fifty", 1)), "expected a decimal"),
    ("csv-wrong-count", _manifest(lambda m: m["tables"][0].__setitem__("rows", 1)), "row count"),
    ("csv-traversal-file", _manifest(lambda m: m["tables"][0].__setitem__("file", "../../etc/passwd")), "could escape"),
    ("csv-missing-file", lambda d: (d / "orders.csv").unlink(), "the file is missing"),
    (
        "csv-changes-in-a-full-export",
        _manifest(lambda m: m["tables"][0].__setitem__("mode", "changes")),
        "a table given as changes in a full export",
    ),
    (
        "csv-incremental-missing-base",
        _manifest(lambda m: m["metadata"].update(kind="incremental", base="ab" * 32)),
        "is not in the store",
    ),
]


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
    snap(d, "init", "--db", "shop.db")
    snap(d, "commit", "-m", "first")
    snap(d, "export", "HEAD", "-o", "good.json")
    snap(d, "export", "HEAD", "-o", "good-csv", "--format", "csv")
    BASE_HEX["head"] = (d / ".snapstore" / "refs" / "heads" / "main").read_text().strip()
    return d


def _copy_project(exported: Path, work: Path, ignore=None) -> None:
    """A copy of the project whose store points at the copy's database."""
    shutil.copytree(exported, work, ignore=ignore)
    config = work / ".snapstore" / "config.toml"
    config.write_text(config.read_text().replace(str(exported), str(work)))


def _check_refused(exported: Path, tmp_path: Path, target: Path, expected: str, *args: str) -> None:
    work = tmp_path / "work"
    _copy_project(exported, work, shutil.ignore_patterns("good*"))
    store = work / ".snapstore"
    before = _listing(store)
    db_before = (work / "shop.db").read_bytes()
    proc = snap(work, "import", str(target), *args, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: ") and "nothing imported" in lines[0], proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert all(":" in line for line in lines[1:]), proc.stderr  # each problem names its place
    assert _listing(store) == before
    assert (work / "shop.db").read_bytes() == db_before
    log = [json.loads(line) for line in (store / "oplog.jsonl").read_text().splitlines()]
    assert log[-1]["op"] == "import" and log[-1]["ok"] is False


@pytest.mark.parametrize("case", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_broken_json_export_is_refused(exported: Path, tmp_path: Path, case) -> None:
    name, breaker, expected = case
    target = tmp_path / "broken.json"
    shutil.copy(exported / "good.json", target)
    breaker(target)
    if expected == "orders.jsonl:":  # an invalid row: the error names the file and the line
        expected = f"broken.json:{_row_line(_lines(exported / 'good.json'), 'orders', 3) + 1}: table 'orders', row 3: invalid JSON"
    _check_refused(exported, tmp_path, target, expected, "--merge", "--strategy", "backup_wins")


@pytest.mark.parametrize("case", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_broken_csv_export_is_refused(exported: Path, tmp_path: Path, case) -> None:
    name, breaker, expected = case
    target = tmp_path / "broken-csv"
    shutil.copytree(exported / "good-csv", target)
    breaker(target)
    _check_refused(exported, tmp_path, target, expected)


def test_oversized_input_is_refused(exported: Path, tmp_path: Path) -> None:
    _check_refused(
        exported, tmp_path, exported / "good.json", "more than the maximum 1,000 (--max-size)", "--max-size", "1000"
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
