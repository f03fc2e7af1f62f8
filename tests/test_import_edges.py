"""The edges of `snap import`: its size limits to the byte, the progress it reports, and
incremental exports that remove rows, keyless rows and whole tables, well formed or broken.

The broken files' problems are compared whole (file, line, what), as in test_import_errors.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import zstandard

from snapgit import Repo
from snapgit.exchange.importer import DEFAULT_MAX_SIZE, MAX_LINE, ImportValidationError, is_encrypted
from test_cli import make_shop
from test_repo import Recorder


def _problems(exc: ImportValidationError) -> list[str]:
    return [p.describe() for p in exc.problems]


# --- size limits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("project")
    make_shop(d / "shop.db")
    with Repo.init(d, f"sqlite:///{d / 'shop.db'}") as repo:
        repo.export(repo.commit("first").commit_id.hex(), d / "good.json")
    return d


def test_the_default_size_limit_is_ten_gib_to_the_byte(project: Path, tmp_path: Path) -> None:
    """A sparse file one byte over 10 GiB is refused for its size before a byte is read; one of
    exactly 10 GiB is read (and refused for what it holds: zeros, no line)."""
    assert DEFAULT_MAX_SIZE == 10 * 2**30
    over = tmp_path / "over.json"
    with open(over, "wb") as f:
        f.truncate(10 * 2**30 + 1)
    assert _refused(project, over) == [
        "over.json: the input is 10,737,418,241 bytes, more than the maximum 10,737,418,240 (--max-size)"
    ]
    at = tmp_path / "at.json"
    with open(at, "wb") as f:
        f.truncate(10 * 2**30)
    assert _refused(project, at) == [
        "at.json:1: cannot read the file: the line is longer than 268,435,456 bytes, the most a line of an export holds"
    ]


def test_a_compressed_export_may_expand_to_the_limit_and_not_a_byte_more(project: Path, tmp_path: Path) -> None:
    plain = (project / "good.json").read_bytes()
    packed = tmp_path / "good.json.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(plain))
    with Repo.open(project) as repo:
        got = repo.import_file(packed, max_size=len(plain))
        assert got["rows"] == {"customers": 50, "orders": 200, "tags": 3}
        with pytest.raises(ImportValidationError) as caught:
            repo.import_file(packed, max_size=len(plain) - 1)
    assert _problems(caught.value) == [
        "good.json.zst:1: cannot read the file: the decompressed data is larger than the maximum input size (--max-size)"
    ]


def test_a_line_past_the_limit_is_refused_wherever_it_starts(project: Path, tmp_path: Path) -> None:
    """The line limit holds for a line that starts after others (the buffer it is counted in
    was cut at the previous line, so its length never lands on the limit exactly)."""
    first = (project / "good.json").read_bytes().split(b"\n", 1)[0] + b"\n"
    path = tmp_path / "long.json"
    with open(path, "wb") as f:
        f.write(first)
        f.truncate(len(first) + MAX_LINE + 2 * 2**20)  # then zeros, no newline
    assert _refused(project, path) == [
        "long.json:2: cannot read the file: the line is longer than 268,435,456 bytes, the most a line of an export holds"
    ]


def test_a_line_under_the_limit_after_a_long_one_is_read(project: Path, tmp_path: Path) -> None:
    """The limit is on the line being read, not on what the reader still holds of the line
    before: a first line of more than half the limit (whitespace in the metadata's JSON) is
    followed by short ones, and the file imports."""
    lines = (project / "good.json").read_bytes().split(b"\n")
    pad = MAX_LINE // 2 + 2**20
    lines[0] = lines[0][: len(b'{"metadata":')] + b" " * pad + lines[0][len(b'{"metadata":') :]
    path = tmp_path / "wide.json"
    path.write_bytes(b"\n".join(lines))
    del lines
    with Repo.open(project) as repo:
        assert repo.import_file(path)["rows"] == {"customers": 50, "orders": 200, "tags": 3}


def test_a_damaged_or_false_zst_file_is_refused(project: Path, tmp_path: Path) -> None:
    packed = bytearray(zstandard.ZstdCompressor().compress((project / "good.json").read_bytes()))
    packed[len(packed) // 2 :] = bytes(len(packed) - len(packed) // 2)
    damaged = tmp_path / "damaged.json.zst"
    damaged.write_bytes(bytes(packed))
    problems = _refused(project, damaged)
    assert len(problems) == 1 and problems[0].startswith("damaged.json.zst:"), problems
    assert ": cannot read the file: the compressed data is damaged: " in problems[0], problems
    false = tmp_path / "plain.json.zst"
    shutil.copy(project / "good.json", false)
    problems = _refused(project, false)
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "plain.json.zst:1: cannot read the file: the file is not zstd-compressed, though its name ends in .zst ("
    ), problems


def test_is_encrypted_is_false_for_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    assert is_encrypted(tmp_path) is False
    assert is_encrypted(tmp_path / "missing.json") is False


def test_over_a_thousand_problems_are_counted_and_the_first_thousand_listed(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, amount NUMERIC(10,2))")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"{i}.25") for i in range(1_003)])
    con.commit()
    con.close()
    (tmp_path / "p").mkdir()
    with Repo.init(tmp_path / "p", f"sqlite:///{src}") as repo:
        out = tmp_path / "out.json"
        repo.export(repo.commit("t").commit_id.hex(), out)
        text = out.read_text()
        out.write_text(re.sub(r'"values":\["(\d+)\.25"', r'"values":[\1.25', text))  # decimals as numbers
        with pytest.raises(ImportValidationError) as caught:
            repo.import_file(out)
    assert len(caught.value.problems) == 1_000 and caught.value.more == 3
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{out}: 1003 problems, nothing imported"
    assert lines[-1] == "... and 3 more problems" and len(lines) == 1_002


def test_an_import_into_a_store_that_lacks_the_rows_brings_every_one(project: Path, tmp_path: Path) -> None:
    """Into a new store (nothing of the export in it), then read back: every record and node is
    there to read, and a restore gives the rows the database had."""
    (tmp_path / "new").mkdir()
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    dst = tmp_path / "copy.sqlite"
    with Repo.init(tmp_path / "new", f"sqlite:///{tmp_path / 'empty.sqlite'}") as repo:
        got = repo.import_file(project / "good.json")
        report = repo.verify(read_data=True)
        # each object once: the two equal tags are one record, written once
        assert report.ok and report.objects_indexed == report.objects_read, report
        repo.restore(got["commit"].hex(), into=f"sqlite:///{dst}")

    def rows(path: Path, table: str) -> list[tuple]:
        with sqlite3.connect(path) as con:
            return con.execute(f"SELECT quote(id), quote(amount), quote(note) FROM {table} ORDER BY id").fetchall()

    assert rows(dst, "orders") == rows(project / "shop.db", "orders")


# --- progress ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_import_reports_each_table_with_its_rows_and_every_row_of_the_last(tmp_path: Path, fmt: str) -> None:
    """Each table is announced with its row count, and the rows advanced add up to it, the last
    table's included (its rows were counted, never reported, once)."""
    src = tmp_path / "src.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE TABLE b (id INTEGER PRIMARY KEY)")
    con.execute("CREATE TABLE c (v TEXT)")
    con.executemany("INSERT INTO a VALUES (?, ?)", [(i, f"v{i}") for i in range(12_003)])
    con.executemany("INSERT INTO c VALUES (?)", [(f"w{i % 7}",) for i in range(7_001)])
    con.commit()
    con.close()
    (tmp_path / "p").mkdir()
    repo = Repo.init(tmp_path / "p", f"sqlite:///{src}")
    cid = repo.commit("three tables").commit_id
    out = tmp_path / ("out.json" if fmt == "json" else "out-csv")
    repo.export(cid.hex(), out, fmt=fmt)
    seen = Recorder()
    repo.import_file(out, progress=seen)
    repo.close()
    assert seen.per_table() == [("a", 12_003, 12_003), ("b", 0, 0), ("c", 7_001, 7_001)]
    advances = [call[1] for call in seen.calls if call[0] == "advance"]
    # in steps of thousands, not a call per row (a terminal redrawn 19,004 times)
    assert all(n > 0 for n in advances) and len(advances) <= 6, advances


# --- incremental exports -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def incremental(tmp_path_factory) -> tuple[Path, str]:
    """A project with two commits and the second's incremental exports since the first (JSON and
    CSV): an order removed and one changed, a tag (keyless, one of two equal rows) removed and two
    added, and the table zones dropped."""
    d = tmp_path_factory.mktemp("incremental")
    make_shop(d / "shop.db")
    con = sqlite3.connect(d / "shop.db")
    con.execute("CREATE TABLE zones (id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO zones VALUES (?, ?)", [(1, "north"), (2, "south")])
    con.execute("CREATE TABLE events (kind TEXT, at TEXT)")  # keyless, of two columns
    con.execute("INSERT INTO events VALUES ('start', '10:00')")
    con.commit()
    repo = Repo.init(d, f"sqlite:///{d / 'shop.db'}")
    base = repo.commit("first").commit_id.hex()
    con.execute("DELETE FROM orders WHERE id = 7")
    con.execute("UPDATE orders SET note = 'gift' WHERE id = 3")
    con.execute("DELETE FROM tags WHERE rowid = 1")
    con.executemany("INSERT INTO tags VALUES (?)", [("c",), ("d",)])
    con.executemany("INSERT INTO events VALUES (?, ?)", [("stop", "11:00"), ("stop", "12:00")])
    con.execute("DROP TABLE zones")
    con.commit()
    con.close()
    head = repo.commit("second").commit_id.hex()
    repo.export(head, d / "inc.json", since=base)
    repo.export(head, d / "inc-csv", fmt="csv", since=base)
    repo.close()
    return d, base


@pytest.mark.parametrize("name", ["inc.json", "inc-csv"])
def test_an_incremental_export_that_drops_a_table_imports_as_its_commit(incremental, name: str) -> None:
    d, _base = incremental
    with Repo.open(d) as repo:
        got = repo.import_file(d / name)
        head = repo.resolve("HEAD")
        assert got["tree"] == repo.read_commit(head).tree
        assert [t.name for t in repo.tables(got["commit"].hex())] == ["customers", "events", "orders", "tags"]


def _broken_copy(d: Path, name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    if (d / name).is_dir():
        shutil.copytree(d / name, target)
    else:
        shutil.copy(d / name, target)
    return target


def _refused(d: Path, path: Path) -> list[str]:
    with Repo.open(d) as repo:
        with pytest.raises(ImportValidationError) as caught:
            repo.import_file(path)
    return _problems(caught.value)


def _json_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _line_of(lines: list[str], start: str) -> int:
    """The number (from 1) of the first line that starts with ``start``."""
    return next(i for i, line in enumerate(lines) if line.startswith(start)) + 1


def test_a_removed_key_of_the_wrong_length_or_type_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    path = _broken_copy(d, "inc.json", tmp_path)
    lines = _json_lines(path)
    at = _line_of(lines, '{"key":[7]}')
    lines[at - 1] = lines[at - 1].replace('{"key":[7]}', '{"key":[7,8]}')
    path.write_text("\n".join(lines), encoding="utf-8")
    assert _refused(d, path) == [f"inc.json:{at}: table 'orders': removed key: expected a key of 1 values"]
    lines[at - 1] = lines[at - 1].replace('{"key":[7,8]}', '{"key":["seven"]}')
    path.write_text("\n".join(lines), encoding="utf-8")
    problems = _refused(d, path)
    assert len(problems) == 1 and problems[0].startswith(f"inc.json:{at}: table 'orders': removed key: "), problems


def test_an_incremental_table_whose_row_count_is_off_is_refused(incremental, tmp_path: Path) -> None:
    """The rows of a table given as changes are counted once merged with the base's: a count one
    more, or one less, than that is refused."""
    d, _base = incremental
    for claimed in (198, 200):  # orders has 199 rows in the second commit
        (tmp_path / str(claimed)).mkdir()
        path = _broken_copy(d, "inc.json", tmp_path / str(claimed))
        lines = _json_lines(path)
        doc = json.loads(lines[0][:-1] + "}")
        assert doc["metadata"]["tables"]["orders"] == 199
        doc["metadata"]["tables"]["orders"] = claimed
        lines[0] = json.dumps(doc, separators=(",", ":"))[:-1] + ","
        header = _line_of(lines, '{"name":"orders"')
        h = json.loads(lines[header - 1][:-1] + "}")
        h["rows"] = claimed
        lines[header - 1] = json.dumps(h, separators=(",", ":"))[:-1] + ","
        path.write_text("\n".join(lines), encoding="utf-8")
        end = next(i for i in range(header, len(lines)) if lines[i].startswith("]}")) + 1
        assert _refused(d, path) == [
            f"inc.json:{end}: table 'orders': the table has 199 rows, the metadata says {claimed}"
        ]


def _manifest_fixed(directory: Path, fname: str) -> None:
    """The manifest's SHA-256 of ``fname`` set to the file's, so that only the content is wrong."""
    m = json.loads((directory / "manifest.json").read_text())
    for t in m["tables"]:
        if t.get("file") == fname:
            t["sha256"] = hashlib.sha256((directory / fname).read_bytes()).hexdigest()
        if t.get("removed_file") == fname:
            t["removed_sha256"] = hashlib.sha256((directory / fname).read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(m))


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


def test_every_bad_occurrence_of_a_keyless_table_is_reported(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target = _broken_copy(d, "inc-csv", tmp_path)
    m = json.loads((target / "manifest.json").read_text())
    tags = next(t for t in m["tables"] if t["name"] == "tags")
    rows = _csv_rows(target / tags["file"])
    assert rows[0][-1] == "#occurrence" and len(rows) == 3, rows  # the header and the two added tags
    for row in rows[1:]:
        row[-1] = "x"
    _write_csv(target / tags["file"], rows)
    _manifest_fixed(target, tags["file"])
    f = tags["file"]
    assert _refused(d, target) == [
        f"{f}:2: table 'tags', row 1, column '#occurrence': occurrence 'x' is not an integer",
        f"{f}:3: table 'tags', row 2, column '#occurrence': occurrence 'x' is not an integer",
    ]


def test_a_removed_keyless_row_in_json_needs_a_checksum_of_64_digits(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    path = _broken_copy(d, "inc.json", tmp_path)
    lines = _json_lines(path)
    header = _line_of(lines, '{"name":"tags"')
    at = next(i for i in range(header, len(lines)) if lines[i].startswith('{"checksum":')) + 1
    assert lines[at - 2] == '"removed":[', lines[at - 2]
    lines[at - 1] = lines[at - 1].replace('","occurrence"', '00","occurrence"')
    path.write_text("\n".join(lines), encoding="utf-8")
    assert _refused(d, path) == [
        f'inc.json:{at}: table \'tags\': removed key: expected {{"checksum": hex, "occurrence": n}}'
    ]


def test_a_removed_file_whose_hash_is_not_the_manifests_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target = _broken_copy(d, "inc-csv", tmp_path)
    m = json.loads((target / "manifest.json").read_text())
    tags = next(t for t in m["tables"] if t["name"] == "tags")
    actual = tags["removed_sha256"]
    tags["removed_sha256"] = "0" * 64  # below the real one: a comparison that is not != would miss it
    (target / "manifest.json").write_text(json.dumps(m))
    assert _refused(d, target) == [
        f"{tags['removed_file']}: table 'tags': SHA-256 is {actual}, the manifest says {'0' * 64}"
    ]


def _tags_removed(d: Path, tmp_path: Path) -> tuple[Path, dict, dict]:
    """A copy of the incremental CSV export, its manifest, and the tags' entry in it."""
    target = _broken_copy(d, "inc-csv", tmp_path)
    m = json.loads((target / "manifest.json").read_text())
    return target, m, next(t for t in m["tables"] if t["name"] == "tags")


def test_a_removed_file_named_outside_the_export_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target, m, tags = _tags_removed(d, tmp_path)
    tags["removed_file"] = "../removed.csv"
    (target / "manifest.json").write_text(json.dumps(m))
    assert _refused(d, target) == [
        "manifest.json: table 'tags': file name '../removed.csv' contains a path separator: "
        "refused, it could escape the export directory"
    ]


def test_a_removed_file_with_the_wrong_header_or_a_row_of_the_wrong_width_is_refused(incremental, tmp_path) -> None:
    d, _base = incremental
    for case, edit, expected in [
        (
            "header",
            lambda rows: [["key", "occurrence"], *rows[1:]],
            "the header is ['key', 'occurrence'], expected ['checksum', 'occurrence']",
        ),
        ("wide", lambda rows: [rows[0], [*rows[1], "0"]], "row 1: removed key: expected 2 cells, found 3"),
    ]:
        (tmp_path / case).mkdir()
        target, _m, tags = _tags_removed(d, tmp_path / case)
        rname = tags["removed_file"]
        _write_csv(target / rname, edit(_csv_rows(target / rname)))
        _manifest_fixed(target, rname)
        line = 1 if case == "header" else 2
        assert _refused(d, target) == [
            f"{rname}:{line}: table 'tags', {expected}"
            if case == "wide"
            else f"{rname}:{line}: table 'tags': {expected}"
        ]


def test_a_removed_count_above_the_files_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target, m, tags = _tags_removed(d, tmp_path)
    assert tags["removed"] == 1
    tags["removed"] = 2
    (target / "manifest.json").write_text(json.dumps(m))
    assert _refused(d, target) == [f"{tags['removed_file']}: table 'tags': the file has 1 keys, the manifest says 2"]


def test_bytes_after_the_zstd_frame_are_refused_even_at_a_read_boundary(project: Path, tmp_path: Path) -> None:
    """The frame is fed in pieces of 1 KiB: when it ends exactly at the end of one, nothing is
    left over in the decompressor, and only a read past it shows the bytes after."""
    good = (project / "good.json").read_bytes()
    first, rest = good.split(b"\n", 1)
    head = b'{"metadata":'
    rng = random.Random(7)
    noise = bytes(rng.choice(b" \t\r") for _ in range(8_000))
    for pad in range(8_000):  # whitespace in the metadata's JSON moves the frame's end
        plain = head + noise[:pad] + first[len(head) :] + b"\n" + rest
        packed = zstandard.ZstdCompressor(level=3).compress(plain)
        if len(packed) % 1024 == 0:
            break
    else:
        raise AssertionError("no padding puts the frame's end on a 1 KiB boundary")
    path = tmp_path / "tail.json.zst"
    path.write_bytes(packed + b"more")
    assert _refused(project, path)[-1].endswith(
        ": cannot read the file: the file goes on after the end of its zstd frame"
    )
    path.write_bytes(packed)
    with Repo.open(project) as repo:
        assert repo.import_file(path)["rows"] == {"customers": 50, "orders": 200, "tags": 3}


def test_a_missing_path_is_one_problem(project: Path, tmp_path: Path) -> None:
    with Repo.open(project) as repo, pytest.raises(ImportValidationError) as caught:
        repo.import_file(tmp_path / "nowhere.json")
    assert str(caught.value).splitlines() == [
        f"{tmp_path / 'nowhere.json'}: 1 problem, nothing imported",
        f"{tmp_path / 'nowhere.json'}: no such file or directory",
    ]


def test_an_import_into_the_store_it_came_from_stores_nothing_but_its_commit(tmp_path: Path) -> None:
    """Every row and node of the file is in the store already: none is written again (a store
    that re-imports a backup must not grow by the backup). A project of its own: the shared
    one has had other imports."""
    make_shop(tmp_path / "shop.db")
    with Repo.init(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}") as repo:
        head = repo.commit("first").commit_id
        repo.export(head.hex(), tmp_path / "good.json")
        before = repo.verify().objects_indexed
        got = repo.import_file(tmp_path / "good.json")
        report = repo.verify(read_data=True)
        assert report.ok and got["tree"] == repo.read_commit(head).tree
    assert report.objects_indexed - before == 1  # the import's commit


def test_a_bad_occurrence_is_quoted_from_its_own_cell(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target, m, _tags = _tags_removed(d, tmp_path)
    events = next(t for t in m["tables"] if t["name"] == "events")
    rows = _csv_rows(target / events["file"])
    assert rows[0] == ["at", "kind", "#occurrence"] and len(rows) == 3, rows
    rows[1][-1] = "first"
    _write_csv(target / events["file"], rows)
    _manifest_fixed(target, events["file"])
    assert _refused(d, target) == [
        f"{events['file']}:2: table 'events', row 1, column '#occurrence': occurrence 'first' is not an integer"
    ]


def test_a_removed_key_that_is_not_json_or_whose_checksum_is_not_text_is_refused(incremental, tmp_path) -> None:
    d, _base = incremental
    for table, old, new, expected in [
        ("orders", '{"key":[7]}', '{"key":[7]', "table 'orders': removed key: invalid JSON: "),
        ("tags", '{"checksum":"', '{"checksum":5,"was":"', "table 'tags': removed key: expected "),
    ]:
        (tmp_path / table).mkdir()
        path = _broken_copy(d, "inc.json", tmp_path / table)
        lines = _json_lines(path)
        header = _line_of(lines, f'{{"name":"{table}"')
        at = next(i for i in range(header, len(lines)) if lines[i] == '"removed":[') + 2
        assert lines[at - 1].startswith(old), lines[at - 1]
        lines[at - 1] = lines[at - 1].replace(old, new, 1)
        path.write_text("\n".join(lines), encoding="utf-8")
        problems = _refused(d, path)
        assert len(problems) == 1 and problems[0].startswith(f"inc.json:{at}: {expected}"), problems


def test_an_empty_or_truncated_zst_file_is_refused(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json.zst"
    empty.write_bytes(b"")
    assert _refused(project, empty) == [
        "empty.json.zst:1: cannot read the file: the file is empty: not even a zstd header"
    ]
    packed = zstandard.ZstdCompressor().compress((project / "good.json").read_bytes())
    cut = tmp_path / "cut.json.zst"
    cut.write_bytes(packed[:-10])
    assert _refused(project, cut)[-1] == (
        "cut.json.zst:1: cannot read the file: the compressed file is truncated: it ends before its zstd frame does"
    )


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_incremental_export_that_removes_hundreds_of_rows_imports(tmp_path: Path, fmt: str) -> None:
    """Counts past 256 (where CPython's small ints end): 300 rows removed, 300 added."""
    src = tmp_path / "src.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(600)])
    con.commit()
    (tmp_path / "p").mkdir()
    with Repo.init(tmp_path / "p", f"sqlite:///{src}") as repo:
        base = repo.commit("600").commit_id.hex()
        con.execute("DELETE FROM t WHERE id < 300")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"w{i}") for i in range(1000, 1300)])
        con.commit()
        head = repo.commit("300 gone, 300 new").commit_id
        out = tmp_path / ("inc.json" if fmt == "json" else "inc-csv")
        result = repo.export(head.hex(), out, fmt=fmt, since=base)
        assert result.removed == {"t": 300} and result.rows == {"t": 300}
        assert repo.import_file(out)["tree"] == repo.read_commit(head).tree
    con.close()


def test_an_incremental_export_into_a_store_without_its_base_is_one_problem(incremental, tmp_path: Path) -> None:
    d, base = incremental
    (tmp_path / "new").mkdir()
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    with Repo.init(tmp_path / "new", f"sqlite:///{tmp_path / 'empty.sqlite'}") as repo:
        for name in ("inc.json", "inc-csv"):
            with pytest.raises(ImportValidationError) as caught:
                repo.import_file(d / name)
            where = "inc.json:1" if name == "inc.json" else "manifest.json:1"
            assert _problems(caught.value) == [
                f"{where}: the base commit {base} of this incremental export is not in the store"
            ]


def _refused_for_first_line_of(
    d: Path, where: Path, table: str, section: str, pattern: str, new: str, expected: str
) -> None:
    """A copy of ``d``'s inc.json in ``where`` with ``pattern`` replaced by ``new`` in the first
    line of ``table``'s ``section`` (``'"data":['``, ``'"removed":['``) is refused with one
    problem, ``expected``, on that line."""
    path = _broken_copy(d, "inc.json", where)
    lines = _json_lines(path)
    header = _line_of(lines, f'{{"name":"{table}"')
    at = next(i for i in range(header, len(lines)) if lines[i] == section) + 2
    assert re.search(pattern, lines[at - 1]), lines[at - 1]
    lines[at - 1] = re.sub(pattern, new, lines[at - 1], count=1)
    path.write_text("\n".join(lines), encoding="utf-8")
    problems = _refused(d, path)
    assert len(problems) == 1 and problems[0].startswith(f"inc.json:{at}: {expected}"), problems


def test_a_keyless_row_or_removed_row_with_a_bad_occurrence_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    for case, section, old, new, expected in [
        (
            "row",
            '"data":[',
            '"occurrence":0',
            '"occurrence":"x"',
            "table 'tags', row 1: occurrence is not a non-negative integer",
        ),
        ("removed", '"removed":[', r'"occurrence":\d+', '"occurrence":-1', "table 'tags': removed key: expected "),
    ]:
        (tmp_path / case).mkdir()
        _refused_for_first_line_of(d, tmp_path / case, "tags", section, old, new, expected)


def test_a_missing_removed_file_ends_its_table_not_the_others(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target, m, tags = _tags_removed(d, tmp_path)
    orders = next(t for t in m["tables"] if t["name"] == "orders")
    (target / orders["removed_file"]).unlink()
    rows = _csv_rows(target / tags["file"])
    rows[1].append("extra")
    _write_csv(target / tags["file"], rows)
    _manifest_fixed(target, tags["file"])
    assert _refused(d, target) == [
        f"{orders['removed_file']}: table 'orders': the file is missing",
        f"{tags['file']}:2: table 'tags', row 1: expected 2 cells, found 3",
    ]


def test_a_removed_count_below_the_files_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target, m, tags = _tags_removed(d, tmp_path)
    tags["removed"] = 0
    (target / "manifest.json").write_text(json.dumps(m))
    assert _refused(d, target) == [f"{tags['removed_file']}: table 'tags': the file has 1 keys, the manifest says 0"]


def test_an_encrypted_export_imports_with_its_passphrase(project: Path, tmp_path: Path) -> None:
    with Repo.open(project) as repo:
        head = repo.resolve("HEAD")
        out = tmp_path / "secret.json.zst"
        repo.export(head.hex(), out, encrypt=True, passphrase="correct horse")
        got = repo.import_file(out, passphrase="correct horse")
        assert got["tree"] == repo.read_commit(head).tree


def test_a_line_of_exactly_the_limit_is_read(project: Path, tmp_path: Path) -> None:
    """A first line of exactly MAX_LINE bytes is read (and refused for what it is, zeros), not
    refused as too long."""
    path = tmp_path / "exact.json"
    with open(path, "wb") as f:
        f.seek(MAX_LINE)
        f.write(b"\n")
    assert _refused(project, path) == [
        'exact.json:1: not in the layout snapgit writes: expected a first line {"metadata":{...},'
    ]


def test_an_empty_line_at_the_start_of_a_read_is_a_line(project: Path, tmp_path: Path) -> None:
    """The export (its first line padded with whitespace) ends exactly where the first 1 MiB
    read ends, and one empty line follows, as an editor may leave: it is an empty last line,
    which the reader allows, not the start of a line that never ends."""
    good = (project / "good.json").read_bytes()
    assert good.endswith(b"]}\n")
    head = b'{"metadata":'
    padded = head + b" " * (2**20 - len(good)) + good[len(head) :]
    assert len(padded) == 2**20
    path = tmp_path / "gap.json"
    path.write_bytes(padded + b"\n")
    with Repo.open(project) as repo:
        assert repo.import_file(path)["rows"] == {"customers": 50, "orders": 200, "tags": 3}


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_wide_table_imports(tmp_path: Path, fmt: str) -> None:
    """300 columns: counts past 256, where CPython's small ints end."""
    src = tmp_path / "src.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, " + ", ".join(f"c{i} INTEGER" for i in range(299)) + ")")
    con.execute("INSERT INTO wide VALUES (" + ", ".join(str(i) for i in range(300)) + ")")
    con.commit()
    con.close()
    (tmp_path / "p").mkdir()
    with Repo.init(tmp_path / "p", f"sqlite:///{src}") as repo:
        head = repo.commit("wide").commit_id
        out = tmp_path / ("wide.json" if fmt == "json" else "wide-csv")
        repo.export(head.hex(), out, fmt=fmt)
        assert repo.import_file(out)["tree"] == repo.read_commit(head).tree


def test_removed_keys_of_the_wrong_form_are_refused_in_json(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    for n, (table, pattern, new, expected) in enumerate(
        [
            ("orders", r'\{"key":\[7\]\}', '{"key":[]}', "table 'orders': removed key: expected a key of 1 values"),
            (
                "tags",
                r'"checksum":"([0-9a-f]{62})[0-9a-f]{2}"',
                r'"checksum":"\1"',
                "table 'tags': removed key: expected ",
            ),
            ("tags", r'"occurrence":\d+', '"occurrence":"x"', "table 'tags': removed key: expected "),
        ]
    ):
        (tmp_path / str(n)).mkdir()
        _refused_for_first_line_of(d, tmp_path / str(n), table, '"removed":[', pattern, new, expected)


def test_removed_keyless_rows_of_the_wrong_form_are_refused_in_csv(incremental, tmp_path: Path) -> None:
    """A checksum of 33 bytes or of 31, an occurrence below 0."""
    d, _base = incremental
    edits = [lambda row: [row[0] + "00", row[1]], lambda row: [row[0][:-2], row[1]], lambda row: [row[0], "-1"]]
    for n, edit in enumerate(edits):
        (tmp_path / str(n)).mkdir()
        target, _m, tags = _tags_removed(d, tmp_path / str(n))
        rname = tags["removed_file"]
        rows = _csv_rows(target / rname)
        rows[1] = edit(rows[1])
        _write_csv(target / rname, rows)
        _manifest_fixed(target, rname)
        assert _refused(d, target) == [
            f"{rname}:2: table 'tags', row 1: removed key: expected a 64-digit checksum and an occurrence >= 0"
        ]


def test_a_removed_file_whose_hash_is_above_the_manifests_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    target, m, tags = _tags_removed(d, tmp_path)
    actual = tags["removed_sha256"]
    tags["removed_sha256"] = "f" * 64
    (target / "manifest.json").write_text(json.dumps(m))
    assert _refused(d, target) == [
        f"{tags['removed_file']}: table 'tags': SHA-256 is {actual}, the manifest says {'f' * 64}"
    ]


def test_an_encrypted_export_with_the_wrong_passphrase_is_one_clear_error(project: Path, tmp_path: Path) -> None:
    from snapgit.errors import SnapError

    with Repo.open(project) as repo:
        out = tmp_path / "secret.json"
        repo.export(repo.resolve("HEAD").hex(), out, encrypt=True, passphrase="correct horse")
        with pytest.raises(SnapError) as caught:
            repo.import_file(out, passphrase="battery staple")
    assert str(caught.value).startswith("cannot decrypt secret.json: "), str(caught.value)
    assert str(caught.value).endswith("; nothing imported"), str(caught.value)


def test_a_keyless_row_with_a_negative_occurrence_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    path = _broken_copy(d, "inc.json", tmp_path)
    lines = _json_lines(path)
    header = _line_of(lines, '{"name":"tags"')
    at = next(i for i in range(header, len(lines)) if lines[i] == '"data":[') + 2
    lines[at - 1] = re.sub(r'"occurrence":\d+', '"occurrence":-1', lines[at - 1], count=1)
    path.write_text("\n".join(lines), encoding="utf-8")
    assert _refused(d, path) == [f"inc.json:{at}: table 'tags', row 1: occurrence is not a non-negative integer"]


def test_a_removed_file_whose_header_sorts_before_or_whose_row_is_short_is_refused(incremental, tmp_path) -> None:
    d, _base = incremental
    for case, edit, line, expected in [
        (
            "header",
            lambda rows: [["aaa", "occurrence"], *rows[1:]],
            1,
            ": the header is ['aaa', 'occurrence'], expected ['checksum', 'occurrence']",
        ),
        ("narrow", lambda rows: [rows[0], rows[1][:1]], 2, ", row 1: removed key: expected 2 cells, found 1"),
    ]:
        (tmp_path / case).mkdir()
        target, _m, tags = _tags_removed(d, tmp_path / case)
        rname = tags["removed_file"]
        _write_csv(target / rname, edit(_csv_rows(target / rname)))
        _manifest_fixed(target, rname)
        assert _refused(d, target) == [f"{rname}:{line}: table 'tags'{expected}"]


def test_an_occurrence_in_a_full_export_is_not_read(project: Path, tmp_path: Path) -> None:
    """Only rows given as changes carry an occurrence: one written into a full export's keyless
    rows changes nothing (the reader counts equal rows itself)."""
    lines = _json_lines(project / "good.json")
    header = _line_of(lines, '{"name":"tags"')
    for i in range(header + 1, header + 4):
        lines[i] = lines[i].replace('","values"', '","occurrence":7,"values"')
    path = tmp_path / "occ.json"
    path.write_text("\n".join(lines), encoding="utf-8")
    with Repo.open(project) as repo:
        assert repo.import_file(path)["tree"] == repo.read_commit(repo.resolve("HEAD")).tree


def test_a_removed_file_that_is_not_csv_or_not_utf8_is_refused(incremental, tmp_path: Path) -> None:
    d, _base = incremental
    for case, edit, expected in [
        ("quote", lambda b: b.replace(b"\r\n", b'\r\n"x"y,', 1), "not a readable CSV file: ',' expected after '\"'"),
        (
            "bytes",
            lambda b: b.replace(b"\r\n", b"\r\n\xff", 1),
            "not a readable CSV file: 'utf-8' codec can't decode byte 0xff",
        ),
    ]:
        (tmp_path / case).mkdir()
        target, _m, tags = _tags_removed(d, tmp_path / case)
        rname = tags["removed_file"]
        (target / rname).write_bytes(edit((target / rname).read_bytes()))
        _manifest_fixed(target, rname)
        problems = _refused(d, target)
        assert len(problems) == 1 and problems[0].startswith(f"{rname}: table 'tags': {expected}"), problems
