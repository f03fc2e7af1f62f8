"""snap verify: a clean store passes; damage of each kind is found, named, and exits 3."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from snapgit import Repo
from snapgit.encoding import encode_row
from snapgit.store.pack import PackReader


def snap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"value {i}") for i in range(3000)])
    con.commit()
    # through the API, in process: the tests run `snap verify` itself
    repo = Repo.init(tmp_path, "db.sqlite")
    repo.commit("one")
    con.execute("UPDATE t SET v = 'changed' WHERE id % 100 = 0")
    con.commit()
    con.close()
    repo.commit("two")
    repo.close()
    return tmp_path


def packs(store: Path) -> list[Path]:
    return sorted((store / ".snapstore" / "objects" / "pack").glob("*.pack"))


def commit_on_side(store: Path, value: str) -> None:
    """On a new branch ``side``: ten rows changed to ``value``, committed."""
    assert snap(store, "checkout", "-b", "side").returncode == 0
    con = sqlite3.connect(store / "db.sqlite")
    con.execute("UPDATE t SET v = ? WHERE id < 10", (value,))
    con.commit()
    con.close()
    assert snap(store, "commit", "-m", value).returncode == 0


def flip(path: Path, offset: int) -> None:
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_clean_store(store: Path) -> None:
    for args in (("verify",), ("verify", "--read-data")):
        proc = snap(store, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "ok" in proc.stdout
    doc = json.loads(snap(store, "verify", "--read-data", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 2 and doc["objects_read"] == doc["objects_indexed"]
    assert doc["packs"] == len(packs(store)) and doc["garbage"] == [] and doc["problems"] == []
    assert doc["objects_indexed"] == sum(PackReader(p).count for p in packs(store))
    assert doc["bytes_read"] == sum(p.stat().st_size for p in packs(store))
    quick = json.loads(snap(store, "verify", "--json").stdout)  # reads no pack through
    assert quick["objects_read"] == quick["bytes_read"] == 0 and quick["packs"] == doc["packs"]
    assert quick["commits"] == 2 and quick["objects_indexed"] == doc["objects_indexed"]


def test_flipped_byte_in_pack_is_found_by_read_data(store: Path) -> None:
    biggest = max(packs(store), key=lambda p: p.stat().st_size)
    flip(biggest, biggest.stat().st_size // 2)
    proc = snap(store, "verify", "--read-data", "--json")
    assert proc.returncode == 3
    problems = json.loads(proc.stdout)["problems"]
    assert any(p["where"] == biggest.name and "checksum" in p["message"] for p in problems)


def test_missing_pack_names_the_commit_and_table(store: Path) -> None:
    biggest = max(packs(store), key=lambda p: p.stat().st_size)
    biggest.unlink()
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3
    problems = json.loads(proc.stdout)["problems"]
    assert any("missing" in p["message"] for p in problems)
    assert any(p["table"] == "t" and p["commits"] for p in problems)


def test_damaged_index_and_ref(store: Path) -> None:
    idx = sorted((store / ".snapstore" / "objects" / "pack").glob("*.idx"))[0]
    flip(idx, idx.stat().st_size - 40)
    (store / ".snapstore" / "refs" / "heads" / "main").write_text("not a commit id\n")
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3
    problems = json.loads(proc.stdout)["problems"]
    assert any(p["what"] == "index" and p["where"] == idx.name for p in problems)
    assert any(p["what"] == "ref" and p["where"] == "refs/heads/main" for p in problems)


# --- verify --repair ------------------------------------------------------------------------------


def test_repair_rebuilds_a_missing_or_truncated_index(store: Path) -> None:
    idx = sorted((store / ".snapstore" / "objects" / "pack").glob("*.idx"))
    original = {p: p.read_bytes() for p in idx}
    idx[0].unlink()
    os.chmod(idx[1], 0o600)
    idx[1].write_bytes(original[idx[1]][:100])
    assert snap(store, "verify").returncode == 3
    proc = snap(store, "verify", "--repair", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    repairs = json.loads(proc.stdout)["repairs"]
    assert any("rebuilt the missing index" in r for r in repairs) and any(
        "rebuilt the broken index" in r for r in repairs
    )
    assert {p: p.read_bytes() for p in idx} == original  # the same bytes as the writer's
    assert snap(store, "verify", "--read-data").returncode == 0


def test_repair_moves_a_damaged_pack_aside_keeping_what_reads(store: Path) -> None:
    biggest = max(packs(store), key=lambda p: p.stat().st_size)
    flip(biggest, 200)  # inside the first block
    proc = snap(store, "verify", "--repair", "--json")
    assert proc.returncode == 3  # records were lost: they are listed, with their commits
    doc = json.loads(proc.stdout)
    assert any("moved damaged pack" in r and "objects saved" in r for r in doc["repairs"])
    assert (store / ".snapstore" / "objects" / "damaged" / biggest.name).exists()
    assert not biggest.exists()
    lost = [p for p in doc["problems"] if p["what"] == "object"]
    assert lost and all(p["commits"] and p["table"] == "t" for p in lost)
    saved = json.loads(snap(store, "verify", "--json").stdout)
    assert saved["objects_indexed"] > 1000  # the rest of the pack was copied, not dropped


def test_repair_of_damage_outside_every_object_keeps_the_pack_it_writes_again(store: Path) -> None:
    """A byte flipped in a pack's header (its reserved field) damages no object: every object is
    copied, in order, into a pack of the bytes the damaged one should have had, so of its name.
    That pack is the repair and stays; the damaged one goes to objects/damaged/. (Repair used to
    move the new pack away under the old name: every object of the pack gone from the store.)"""
    biggest = max(packs(store), key=lambda p: p.stat().st_size)
    flip(biggest, 15)
    assert snap(store, "verify", "--read-data").returncode == 3
    proc = snap(store, "verify", "--repair", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any("rewrote damaged pack" in r for r in json.loads(proc.stdout)["repairs"]), proc.stdout
    damaged = store / ".snapstore" / "objects" / "damaged" / biggest.name
    assert damaged.read_bytes() != biggest.read_bytes()
    assert PackReader(biggest).checksum_ok() and not PackReader(damaged).checksum_ok()
    after = json.loads(snap(store, "verify", "--read-data", "--json").stdout)
    assert after["ok"] and after["objects_indexed"] > 3000, after


def test_restore_from_a_damaged_pack_fails_before_writing(store: Path) -> None:
    con = sqlite3.connect(store / "db.sqlite")
    con.execute("UPDATE t SET v = 'live ' || id")
    con.commit()
    before = con.execute("SELECT * FROM t ORDER BY id").fetchall()
    con.close()
    # on a branch at the first commit, main is not in HEAD's history: merging it reads its rows
    assert snap(store, "checkout", "-b", "older", "HEAD~1").returncode == 0
    first = max(packs(store), key=lambda p: p.stat().st_size)
    rd = PackReader(first)
    blocks = [(off, clen) for off, clen, *_ in rd._blocks]
    rd.close()
    for off, clen in blocks:  # its records and its tree nodes (blocks of their own) are damaged
        flip(first, off + clen // 2)
    for args in (("restore", "main~1"), ("merge", "main", "--strategy", "backup_wins")):
        proc = snap(store, *args)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
        con = sqlite3.connect(store / "db.sqlite")
        assert con.execute("SELECT * FROM t ORDER BY id").fetchall() == before
        con.close()
    target = store / "new.sqlite"
    sqlite3.connect(target).close()
    proc = snap(store, "restore", "main~1", "--into", f"sqlite:///{target}")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert sqlite3.connect(target).execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_delta_whose_base_is_gone_is_garbage_when_unreachable_and_damage_when_reachable(store: Path) -> None:
    """What a gc killed between moving two old packs away leaves: an old pack still holding
    nodes stored as deltas against nodes of a pack already gone. Unreachable: garbage; the same
    pack still reachable: damage."""
    from snapgit import Repo
    from snapgit.store.pack import DELTA, PackReader, entry_base, entry_kind

    with Repo.open(store) as repo:
        repo.resolve("HEAD")
        packs = repo.objects.pack_dir
        holding_deltas, bases = None, set()
        for path in sorted(packs.glob("*.pack")):
            rd = PackReader(path)
            deltas = [entry_base(e) for _o, e in rd.iter_entries() if entry_kind(e) == DELTA]
            rd.close()
            if deltas:
                holding_deltas, bases = path, set(deltas)
        assert holding_deltas is not None
        base_packs = [
            p
            for p in packs.glob("*.pack")
            if p != holding_deltas and any(repo.objects.index(p.name[5:-5]).candidates(b) for b in bases)
        ]
    assert base_packs
    trash = store / "moved"
    trash.mkdir()
    for p in base_packs:
        for ext in (".idx", ".pack"):
            os.chmod(p.with_suffix(ext), 0o600)
            p.with_suffix(ext).rename(trash / p.with_suffix(ext).name)
    damaged = snap(store, "verify", "--read-data", "--json")
    assert damaged.returncode == 3  # commit "two" still needs those bases
    doc = json.loads(damaged.stdout)  # every entry is read, those after a damaged one too
    assert doc["objects_read"] == doc["objects_indexed"], doc
    # now nothing reaches commit "two": a new root commit, and no reflog naming the old ones
    for p in trash.iterdir():
        p.rename(packs / p.name)
    con = sqlite3.connect(store / "db.sqlite")
    con.execute("CREATE TABLE other (id INTEGER PRIMARY KEY)")
    con.execute("DROP TABLE t")
    con.commit()
    con.close()
    ref = store / ".snapstore" / "refs" / "heads" / "main"
    ref.unlink()
    for log in (store / ".snapstore" / "logs").rglob("*"):
        if log.is_file():
            log.unlink()
    assert snap(store, "commit", "-m", "unrelated").returncode == 0
    for p in base_packs:
        for ext in (".idx", ".pack"):
            p.with_suffix(ext).unlink()
    clean = snap(store, "verify", "--read-data", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["ok"] and any("which is gone (unreachable)" in g for g in report["garbage"])
    # each such delta is garbage, and the entries after the first are read too
    assert sum("which is gone (unreachable)" in g for g in report["garbage"]) > 1
    assert report["objects_read"] == report["objects_indexed"]


def _delta_bases_by_pack(store: Path) -> dict[str, set[str]]:
    """pack name -> the names of the packs holding the bases of its deltas."""
    from snapgit.store.pack import DELTA, PackReader, entry_base, entry_kind
    from snapgit.store.packindex import IndexReader

    pack_dir = store / ".snapstore" / "objects" / "pack"
    indexes = {p.stem.removeprefix("pack-"): IndexReader(p) for p in pack_dir.glob("*.idx")}
    out: dict[str, set[str]] = {}
    for path in pack_dir.glob("*.pack"):
        name = path.stem.removeprefix("pack-")
        rd = PackReader(path)
        for _ordinal, entry in rd.iter_entries():
            if entry_kind(entry) == DELTA:
                base = entry_base(entry)
                out.setdefault(name, set()).update(
                    n for n, idx in indexes.items() if n != name and idx.candidates(base)
                )
        rd.close()
    for idx in indexes.values():
        idx.close()
    return out


def test_repair_rebuilds_an_index_whose_deltas_need_another_rebuilt_index_first(store: Path) -> None:
    """A pack without its index holds deltas whose bases are in a pack whose index is broken
    too, and it comes first in the repair's order. Both indexes are rebuilt, whatever the
    order: before, the first pack's deltas did not resolve and the whole pack was moved aside
    as damaged, its objects 'lost'."""
    con = sqlite3.connect(store / "db.sqlite")
    pair = None
    for round_ in range(20):  # pack names are hashes: commit until a delta pack sorts first
        deltas = _delta_bases_by_pack(store)
        pair = next(((d, b) for d, bases in sorted(deltas.items()) for b in sorted(bases) if d < b), None)
        if pair:
            break
        con.execute("UPDATE t SET v = ? WHERE id % 97 = ?", (f"round {round_}", round_))
        con.commit()
        assert snap(store, "commit", "-m", f"round {round_}").returncode == 0
    con.close()
    assert pair, "no pack of deltas sorted before the pack of their bases in 20 commits"
    with_deltas, with_bases = (store / ".snapstore" / "objects" / "pack" / f"pack-{n}.idx" for n in pair)
    original = {p: p.read_bytes() for p in (with_deltas, with_bases)}
    with_deltas.unlink()
    os.chmod(with_bases, 0o600)
    with_bases.write_bytes(original[with_bases][:100])
    proc = snap(store, "verify", "--repair", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    repairs = json.loads(proc.stdout)["repairs"]
    assert not any("moved damaged pack" in r for r in repairs), repairs
    assert {p: p.read_bytes() for p in original} == original
    assert snap(store, "verify", "--read-data").returncode == 0


MISSING = "ab" * 32  # a commit id no store holds


@pytest.mark.parametrize("ref", ["refs/imports/20260101T000000-abcdef012345", "refs/other/x"])
def test_every_ref_gc_keeps_is_checked(store: Path, ref: str) -> None:
    path = store / ".snapstore" / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MISSING + "\n")
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert any(p["where"] == MISSING and ref in p["message"] for p in problems), problems


def test_the_commits_of_an_unfinished_merge_are_checked(store: Path) -> None:
    head = (store / ".snapstore" / "refs" / "heads" / "main").read_text().strip()
    state = {"rev": "x", "ours": head, "theirs": MISSING, "base": None, "tables": None, "resolutions": {}}
    (store / ".snapstore" / "MERGE_HEAD").write_text(json.dumps(state))
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert any(p["where"] == MISSING and "MERGE_HEAD" in p["message"] for p in problems), problems
    assert len(problems) == 1, problems


def test_a_damaged_unfinished_merge_is_a_problem_with_the_way_out(store: Path) -> None:
    (store / ".snapstore" / "MERGE_HEAD").write_text('{"ours": "ab')
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert [p["where"] for p in problems] == ["MERGE_HEAD"], problems
    assert "snap merge --abort" in problems[0]["message"]


def test_records_a_leaf_shares_with_its_base_are_missing_from_every_commit_that_has_them(store: Path) -> None:
    """The second commit's changed leaves are deltas against the first's and share most records
    with them: verify checks a leaf's records against its base's, and a record its base lacks is
    lacking in the second commit too, which is the one the user asks about (HEAD)."""
    from snapgit import Repo
    from snapgit.objects import ObjType
    from snapgit.store.history import read_commit, read_root, read_table
    from snapgit.tree.prolly import iter_leaves

    def leaves(repo: Repo, cid: bytes) -> dict[bytes, list[bytes]]:
        tree = read_root(repo.objects, read_commit(repo.objects, cid).tree)
        return {
            nid: leaf.ids
            for tid in tree.tables.values()
            for nid, leaf in iter_leaves(repo.objects, read_table(repo.objects, tid).root)
        }

    with Repo.open(store) as repo:
        first = max(repo.objects.pack_names(), key=lambda n: repo.objects.index(n).count)
        keep = [(t, d) for p, _oid, t, d in repo.objects.iter_objects() if p == first and t != ObjType.RECORD]
        with repo.objects.writer() as w:  # the first commit's pack, but for its records
            for otype, data in keep:
                w.add(otype, data)
        head = repo.head()
        older = leaves(repo, read_commit(repo.objects, head).parents[0])
        changed = {nid: ids for nid, ids in leaves(repo, head).items() if nid not in older}
    for ext in (".idx", ".pack"):
        (store / ".snapstore" / "objects" / "pack" / f"pack-{first}{ext}").unlink()
    with Repo.open(store) as repo:
        stored = {oid for _p, oid, _t, _d in repo.objects.iter_objects()}
        assert all(repo.objects.delta_base(nid) in older for nid in changed)
        report = repo.verify()
    lost = {rid for ids in changed.values() for rid in ids} - stored
    assert len(lost) > 1000  # the unchanged rows of the changed leaves: records shared with their bases
    in_head = {
        bytes.fromhex(p.where) for p in report.problems if p.message == "record missing" and head.hex() in p.commits
    }
    assert lost <= in_head


@pytest.mark.parametrize("off_by", [1, -1])
def test_a_fanout_off_by_one_under_a_valid_checksum_is_found(store: Path, off_by: int) -> None:
    """An index whose fanout says one id more (or fewer) below some first byte than it holds,
    still ascending and with its checksum made again: look-ups in that bucket would miss."""
    import hashlib
    import struct

    idx = max((store / ".snapstore" / "objects" / "pack").glob("*.idx"), key=lambda p: p.stat().st_size)
    data = bytearray(idx.read_bytes())
    fanout = list(struct.unpack_from(">256I", data, 16))
    b = next(b for b in range(1, 255) if fanout[b - 1] < fanout[b] < fanout[b + 1])
    fanout[b] += off_by
    struct.pack_into(">256I", data, 16, *fanout)
    body = bytes(data[:-32])
    os.chmod(idx, 0o600)
    idx.write_bytes(body + hashlib.sha256(body).digest())
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert any(p["what"] == "index" and f"fanout[{b}]" in p["message"] for p in doc["problems"]), doc["problems"]


def test_a_commit_only_a_reflog_names_is_walked_too(store: Path) -> None:
    """gc keeps what reflogs name, so verify checks it: a deleted branch's commit counts."""
    commit_on_side(store, "side")
    assert snap(store, "checkout", "main", "--force").returncode == 0
    assert snap(store, "branch", "-d", "side").returncode == 0
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 3


def test_a_missing_head_commit_is_named_by_head(store: Path) -> None:
    """A commit several names reach is reported by the first: HEAD before its branch and reflogs."""
    from snapgit import Repo

    with Repo.open(store) as repo:
        head = repo.head()
        (holder,) = [p for p, oid, _t, _d in repo.objects.iter_objects() if oid == head]
    for ext in (".idx", ".pack"):
        (store / ".snapstore" / "objects" / "pack" / f"pack-{holder}{ext}").unlink()
    problems = json.loads(snap(store, "verify", "--json").stdout)["problems"]
    assert any(p["where"] == head.hex() and p["message"].startswith("commit named by HEAD:") for p in problems), (
        problems
    )


def distinct_nodes(store: Path) -> int:
    """The tree nodes of every table of every commit of the history, walked here."""
    from snapgit.store.history import read_commit, read_root, read_table
    from snapgit.tree.prolly import load_node

    with Repo.open(store) as repo:
        nodes: set[bytes] = set()
        commits = [repo.head()]
        while commits:
            commit = read_commit(repo.objects, commits.pop())
            commits.extend(commit.parents)
            for tid in read_root(repo.objects, commit.tree).tables.values():
                todo = [read_table(repo.objects, tid).root]
                while todo:
                    nid = todo.pop()
                    if nid not in nodes:
                        nodes.add(nid)
                        node = load_node(repo.objects, nid)
                        todo.extend(node.ids if node.level else [])
    return len(nodes)


def test_the_node_count_is_of_the_distinct_nodes_walked(store: Path) -> None:
    assert json.loads(snap(store, "verify", "--json").stdout)["nodes"] == distinct_nodes(store) > 2


def test_a_table_met_before_does_not_end_the_walk_of_its_commit(store: Path) -> None:
    """A commit whose first table is the same as in a commit walked before: its later tables
    are walked all the same."""
    con = sqlite3.connect(store / "db.sqlite")
    con.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO u VALUES (?, ?)", [(i, "u") for i in range(500)])
    con.commit()
    with Repo.open(store) as repo:
        repo.commit("u added")
        con.execute("UPDATE u SET v = 'changed' WHERE id < 3")
        con.commit()
        repo.commit("only u changed")
    con.close()
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 4 and doc["nodes"] == distinct_nodes(store), doc


def test_a_commit_only_an_annotated_tag_reaches_is_walked(store: Path) -> None:
    """An annotated tag is an object of its own: verify goes through it to its commit."""
    from snapgit import Repo

    commit_on_side(store, "tagged")
    with Repo.open(store) as repo:
        repo.create_tag("release", message="the only way to it")
    assert snap(store, "checkout", "main", "--force").returncode == 0
    assert snap(store, "branch", "-d", "side").returncode == 0
    for log in (store / ".snapstore" / "logs").rglob("*"):  # no reflog line names it either
        if log.is_file():
            log.unlink()
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 3


def test_read_data_finds_a_record_that_does_not_decode(store: Path) -> None:
    """An object stored as a record, hashing right, whose bytes are no row: only re-reading
    every record finds it (no tree names it). It used to stop verify with msgpack's own error."""
    from snapgit import Repo
    from snapgit.objects import ObjType

    with Repo.open(store) as repo, repo.objects.writer() as w:
        bad = w.add(ObjType.RECORD, b"\xc1")  # a byte msgpack never uses
    assert snap(store, "verify", "--json").returncode == 0
    doc = json.loads(snap(store, "verify", "--read-data", "--json").stdout)
    assert [p["where"] for p in doc["problems"]] == [bad.hex()], doc["problems"]
    assert "does not decode" in doc["problems"][0]["message"]
    shown = snap(store, "cat-object", bad.hex())  # a clear error, not msgpack's own (an "internal error")
    assert shown.returncode not in (0, 1) and "does not decode" in shown.stderr, shown.stderr
    assert "internal error" not in shown.stderr and "Traceback" not in shown.stderr


def test_files_left_in_tmp_are_listed_as_garbage(store: Path) -> None:
    (store / ".snapstore" / "tmp" / "pack-left.tmp").write_bytes(b"x")
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["garbage"] == ["tmp/pack-left.tmp"]


@pytest.mark.parametrize("other", ["more", "fewer"])
def test_a_pack_holding_another_number_of_objects_than_its_index_is_found(store: Path, other: str) -> None:
    """A pack file replaced by another pack's bytes: its index counts the objects it had."""
    by_count = sorted(packs(store), key=lambda p: PackReader(p).count)
    few, many = by_count[0], by_count[-1]
    n_few, n_many = PackReader(few).count, PackReader(many).count
    assert n_few < n_many
    victim, source = (few, many) if other == "more" else (many, few)
    os.chmod(victim, 0o600)
    victim.write_bytes(source.read_bytes())
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    held, indexed = (n_many, n_few) if other == "more" else (n_few, n_many)
    assert {"what": "pack", "where": victim.name, "message": f"holds {held} objects, its index {indexed}"} in [
        {k: p[k] for k in ("what", "where", "message")} for p in json.loads(proc.stdout)["problems"]
    ]


def test_ids_out_of_order_under_a_valid_checksum_are_found(store: Path) -> None:
    """Two neighbouring entries of an index swapped (prefixes and ordinals, in one first-byte
    bucket, so the fanout still holds), its checksum made again: a binary search would miss."""
    import hashlib
    import struct

    idx = max((store / ".snapstore" / "objects" / "pack").glob("*.idx"), key=lambda p: p.stat().st_size)
    data = bytearray(idx.read_bytes())
    n = struct.unpack_from(">I", data, 12)[0]
    p0 = 16 + 256 * 4
    o0 = p0 + 8 * n
    prefixes = list(struct.unpack_from(f"<{n}Q", data, p0))
    ordinals = list(struct.unpack_from(f"<{n}I", data, o0))
    j = next(j for j in range(1, n - 2) if prefixes[j] >> 56 == prefixes[j + 1] >> 56 and prefixes[j] < prefixes[j + 1])
    prefixes[j], prefixes[j + 1] = prefixes[j + 1], prefixes[j]
    ordinals[j], ordinals[j + 1] = ordinals[j + 1], ordinals[j]
    struct.pack_into(f"<{n}Q", data, p0, *prefixes)
    struct.pack_into(f"<{n}I", data, o0, *ordinals)
    body = bytes(data[:-32])
    os.chmod(idx, 0o600)
    idx.write_bytes(body + hashlib.sha256(body).digest())
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3
    problems = json.loads(proc.stdout)["problems"]
    assert {"what": "index", "where": idx.name, "message": "ids are not sorted"} in [
        {k: p[k] for k in ("what", "where", "message")} for p in problems
    ], problems


def test_a_commit_met_again_does_not_end_the_walk(store: Path) -> None:
    """HEAD's commit is the first root and so the last walked; the roots after it (main, the
    reflogs' older commits) are all its ancestors, met again on the way: each is passed over,
    and the walk goes on to HEAD's."""
    commit_on_side(store, "side")
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 3, doc


def test_every_record_of_a_first_commit_is_looked_up_once(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"value {i}") for i in range(2500)])
    con.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
    con.executemany("INSERT INTO u VALUES (?)", [(i,) for i in range(7)])
    con.commit()
    con.close()
    with Repo.init(tmp_path, "db.sqlite") as repo:
        repo.commit("one")
    doc = json.loads(snap(tmp_path, "verify", "--json").stdout)
    assert doc["ok"] and doc["records_checked"] == 2507, doc


def test_a_problem_line_names_its_commit_by_a_short_id(store: Path) -> None:
    biggest = max(packs(store), key=lambda p: p.stat().st_size)
    biggest.unlink()
    proc = snap(store, "verify")
    assert proc.returncode == 3
    assert re.search(r"\(table t\) \(in commit [0-9a-f]{12}\)$", proc.stdout + proc.stderr, re.M), proc.stdout


def test_a_new_store_without_commits_verifies(tmp_path: Path) -> None:
    """HEAD names a branch that has no commit yet: the one case where that is no damage."""
    sqlite3.connect(tmp_path / "db.sqlite").close()
    Repo.init(tmp_path, "db.sqlite").close()
    doc = json.loads(snap(tmp_path, "verify", "--json").stdout)
    assert doc["ok"] and doc["problems"] == [] and doc["commits"] == 0, doc


def test_an_index_that_names_another_pack_is_found(store: Path) -> None:
    """Two packs' indexes swapped, whole (their checksums hold): each names the other's pack."""
    one, two = sorted((store / ".snapstore" / "objects" / "pack").glob("*.idx"))[:2]
    a, b = one.read_bytes(), two.read_bytes()
    for path, data in ((one, b), (two, a)):
        os.chmod(path, 0o600)
        path.write_bytes(data)
    proc = snap(store, "verify", "--json")
    assert proc.returncode == 3
    named = {
        p["where"]
        for p in json.loads(proc.stdout)["problems"]
        if p["message"] == "names another pack than its file name"
    }
    assert named == {one.name, two.name}


def test_a_changed_leaf_looks_up_only_the_records_its_base_lacks(store: Path) -> None:
    """The store's second commit changed 30 of 3000 rows: its changed leaves are deltas of the
    first commit's, so verify looks up 30 records more, not the changed leaves' every record."""
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["records_checked"] == 3030, doc


def test_a_commit_whose_first_table_is_missing_has_its_other_tables_walked(store: Path) -> None:
    """A commit (made here object by object) whose table t is missing, whose table u has a
    missing tree and whose table v a missing schema: each is reported, not only the first."""
    import dataclasses

    from snapgit.objects import Commit, ObjType, Root, TableEntry
    from snapgit.store.history import read_commit, read_root, read_table

    with Repo.open(store) as repo:
        head = read_commit(repo.objects, repo.head())
        t_entry = read_table(repo.objects, read_root(repo.objects, head.tree).tables["t"])
        gone_table, gone_node, gone_schema = b"\x11" * 32, b"\x22" * 32, b"\x66" * 32
        u = TableEntry(t_entry.schema, gone_node, 1, t_entry.key)
        v = TableEntry(gone_schema, t_entry.root, t_entry.rows, t_entry.key)  # all there but its schema
        with repo.objects.writer() as w:
            u_id, v_id = w.add(ObjType.TABLE, u.encode()), w.add(ObjType.TABLE, v.encode())
            tree = w.add(ObjType.ROOT, Root({"t": gone_table, "u": u_id, "v": v_id}).encode())
            broken = w.add(ObjType.COMMIT, Commit(**{**dataclasses.asdict(head), "tree": tree, "parents": []}).encode())
        repo.refs.set_if_equals("refs/heads/broken", None, broken.hex(), who="test", message="a broken commit")
    problems = json.loads(snap(store, "verify", "--json").stdout)["problems"]
    assert {(p["where"], p["table"]) for p in problems} == {
        (gone_table.hex(), "t"),
        (gone_node.hex(), "u"),
        (v_id.hex(), "v"),
    }, problems
    assert any(gone_schema.hex() in p["message"] for p in problems if p["table"] == "v"), problems


def name_last_in_mains_reflog(store: Path, commit: str) -> None:
    """A reflog line for main moving to ``commit`` (verify walks the last root named first)."""
    log = store / ".snapstore" / "logs" / "refs" / "heads" / "main"
    _old, new, rest = log.read_text().splitlines()[-1].split(" ", 2)
    os.chmod(log, 0o600)
    with log.open("a") as f:
        f.write(f"{new} {commit} {rest}\n")


def test_a_missing_commit_does_not_end_the_walk(store: Path) -> None:
    """The first root walked (the last a reflog names) is a commit that is gone: the others are
    walked all the same."""
    name_last_in_mains_reflog(store, "33" * 32)
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["commits"] == 2, doc
    assert [p["where"] for p in doc["problems"]] == ["33" * 32], doc["problems"]


def test_lock_files_under_refs_are_not_refs(store: Path) -> None:
    """A lock left by a killed writer holds a half-written value: not a ref to check."""
    lock = store / ".snapstore" / "refs" / "heads" / "main.lock"
    lock.write_text("not a commit id\n")
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["problems"] == [], doc


def test_a_pack_without_its_index_is_read_through_as_garbage(store: Path) -> None:
    """--read-data reads a pack that has no index (left by an interrupted write) too."""
    from snapgit.objects import ObjType

    before = set(packs(store))
    with Repo.open(store) as repo, repo.objects.writer() as w:
        for i in range(5):
            w.add(ObjType.RECORD, encode_row([i, "unreferenced"]))
    (orphan,) = set(packs(store)) - before
    orphan.with_suffix(".idx").unlink()
    proc = snap(store, "verify", "--read-data", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] and any(g.startswith(orphan.name) for g in doc["garbage"]), doc
    assert doc["objects_read"] == doc["objects_indexed"] + PackReader(orphan).count


def test_a_commit_whose_tree_is_missing_does_not_end_the_walk(store: Path) -> None:
    """The first root walked (the last a reflog names): a commit whose snapshot tree is gone."""
    import dataclasses

    from snapgit.objects import Commit, ObjType
    from snapgit.store.history import read_commit

    with Repo.open(store) as repo:
        head = read_commit(repo.objects, repo.head())
        treeless = Commit(**{**dataclasses.asdict(head), "tree": b"\x55" * 32, "parents": []})
        with repo.objects.writer() as w:
            broken = w.add(ObjType.COMMIT, treeless.encode())
    name_last_in_mains_reflog(store, broken.hex())
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["commits"] == 3, doc
    assert [p["where"] for p in doc["problems"]] == ["55" * 32], doc["problems"]


def test_a_fanout_wrong_from_some_byte_on_is_one_problem(store: Path) -> None:
    """Every bucket from some first byte on says one id more: one line for the index, not one
    per bucket."""
    import hashlib
    import struct

    idx = max((store / ".snapstore" / "objects" / "pack").glob("*.idx"), key=lambda p: p.stat().st_size)
    data = bytearray(idx.read_bytes())
    fanout = list(struct.unpack_from(">256I", data, 16))
    struct.pack_into(">256I", data, 16, *fanout[:100], *(f + 1 for f in fanout[100:255]), fanout[255])
    body = bytes(data[:-32])
    os.chmod(idx, 0o600)
    idx.write_bytes(body + hashlib.sha256(body).digest())
    problems = json.loads(snap(store, "verify", "--json").stdout)["problems"]
    assert [p["message"] for p in problems if p["where"] == idx.name] == [
        f"fanout[100] is {fanout[100] + 1}, expected {fanout[100]}"
    ], problems


def test_a_commit_with_the_tree_of_one_walked_before_does_not_end_the_walk(store: Path) -> None:
    """main's newest commit has the tree of its parent (nothing changed); HEAD, on a side
    branch, is walked after it."""
    with Repo.open(store) as repo:
        repo.commit("nothing changed", allow_empty=True)
    commit_on_side(store, "side")
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 4, doc


def _only_side_names(store: Path) -> None:
    """A commit on branch side that HEAD and every reflog but side's own have never named."""
    commit_on_side(store, "side")
    assert snap(store, "checkout", "main", "--force").returncode == 0
    logs = store / ".snapstore" / "logs"
    for log in logs.rglob("*"):
        if log.is_file() and log != logs / "refs" / "heads" / "side":
            log.unlink()


def test_a_ref_that_does_not_read_does_not_end_the_refs(store: Path) -> None:
    _only_side_names(store)
    (store / ".snapstore" / "logs" / "refs" / "heads" / "side").unlink()
    (store / ".snapstore" / "refs" / "heads" / "a-bad").write_text("not an id\n")  # sorts first
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["commits"] == 3, doc
    assert [(p["what"], p["where"]) for p in doc["problems"]] == [("ref", "refs/heads/a-bad")], doc["problems"]


def test_a_reflog_left_being_expired_does_not_end_the_reflogs(store: Path) -> None:
    _only_side_names(store)
    (store / ".snapstore" / "refs" / "heads" / "side").unlink()
    (store / ".snapstore" / "logs" / "refs" / "heads" / "a.expire").write_text("")  # sorts first
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["commits"] == 3, doc
    assert doc["garbage"] == ["logs/refs/heads/a.expire (left by an interrupted gc)"]


@pytest.mark.parametrize("ext", [".idx", ".pack"])
def test_a_file_that_does_not_open_does_not_end_the_checks_of_the_others(store: Path, ext: str) -> None:
    """The first pack's index (or, with --read-data, the pack) cut to a few bytes: each other
    pack is still counted and read."""
    first, *others = packs(store)
    damaged = first.with_suffix(ext)
    os.chmod(damaged, 0o600)
    damaged.write_bytes(damaged.read_bytes()[:10])
    doc = json.loads(snap(store, "verify", "--read-data", "--json").stdout)
    held = sum(PackReader(p).count for p in others)
    if ext == ".idx":
        assert doc["objects_indexed"] == held, doc
    else:
        assert doc["objects_read"] == held, doc
    assert any(p["where"] == damaged.name for p in doc["problems"]), doc["problems"]


def test_read_data_finds_records_not_written_canonically(store: Path) -> None:
    """Records that decode but are not the bytes snapgit writes for their values (a wide int, a
    32-bit float: one sorts after the canonical bytes, one before): two ids for one row."""
    from snapgit.objects import ObjType

    wide_int = b"\x91\xcd\x00\x01"  # [1], canonically 91 01
    short_float = b"\x91\xca\x3f\xc0\x00\x00"  # [1.5], canonically a 64-bit float
    with Repo.open(store) as repo, repo.objects.writer() as w:
        bad = {w.add(ObjType.RECORD, wide_int).hex(), w.add(ObjType.RECORD, short_float).hex()}
    doc = json.loads(snap(store, "verify", "--read-data", "--json").stdout)
    assert {p["where"] for p in doc["problems"]} == bad, doc["problems"]
    assert {p["message"] for p in doc["problems"]} == {"record does not re-encode to the same bytes"}


def test_a_leaf_down_a_long_chain_looks_up_only_its_new_records(store: Path) -> None:
    """Nine more commits, each changing one row of the same leaf: a chain of deltas ten links
    long, and each version one new record to look up."""
    con = sqlite3.connect(store / "db.sqlite")
    with Repo.open(store) as repo:
        for i in range(9):
            con.execute("UPDATE t SET v = ? WHERE id = 1", (f"version {i}",))
            con.commit()
            repo.commit(f"version {i}")
        depth = repo.objects.get_depth(_first_leaf(repo))
    con.close()
    assert depth >= 7, depth
    doc = json.loads(snap(store, "verify", "--json").stdout)
    assert doc["ok"] and doc["records_checked"] == 3030 + 9, doc


def _first_leaf(repo: Repo) -> bytes:
    from snapgit.store.history import read_commit, read_root, read_table
    from snapgit.tree.prolly import load_node

    commit = read_commit(repo.objects, repo.head())
    nid = read_table(repo.objects, read_root(repo.objects, commit.tree).tables["t"]).root
    node = load_node(repo.objects, nid)
    while node.level:
        nid = node.ids[0]
        node = load_node(repo.objects, nid)
    return nid


@pytest.mark.parametrize("other_fails", [False, True])
@pytest.mark.parametrize("damage", ["none", "flip", "truncate", "index"])
def test_read_data_by_two_processes_reports_what_one_reports(
    store: Path, monkeypatch, damage: str, other_fails: bool
) -> None:
    """verify --read-data with a second process reading about half the packs' bytes: the same
    problems, garbage and counts, in the same order, as one process, whether the other process
    ends or fails (its packs are then read here); and it did read its packs."""
    from snapgit.ops import verify as verify_mod

    commit_on_side(store, "side")  # more packs to deal out
    all_packs = packs(store)
    assert len(all_packs) >= 3
    if damage == "flip":
        for p in all_packs[::2]:
            flip(p, p.stat().st_size // 3)
    elif damage == "truncate":
        os.chmod(all_packs[-1], 0o600)
        os.truncate(all_packs[-1], all_packs[-1].stat().st_size // 2)
    elif damage == "index":
        all_packs[0].with_suffix(".idx").unlink()
    here = os.getpid()
    read_here: list[str] = []
    real = verify_mod._read_packs

    def read_packs(st, paths):
        if os.getpid() == here:
            read_here.extend(p.name for p in paths)
        elif other_fails:
            raise RuntimeError("the other process fails")
        return real(st, paths)

    monkeypatch.setattr(verify_mod, "_read_packs", read_packs)

    def report(workers: str) -> tuple:
        monkeypatch.setenv("SNAP_WORKERS", workers)
        with Repo.open(store) as repo:
            r = repo.verify(read_data=True)
        return [p.to_json() for p in r.problems], r.garbage, r.objects_read, r.bytes_read

    alone = report("0")
    assert sorted(read_here) == [p.name for p in all_packs]
    read_here.clear()
    monkeypatch.setattr(verify_mod, "_SHARED_BYTES", 0)
    assert report("1") == alone
    if other_fails:
        assert sorted(read_here) == [p.name for p in all_packs]
    else:  # the other process read some of them, and this one did not
        assert 0 < len(read_here) < len(all_packs)
    assert (damage == "none") == (alone[0] == [] and alone[1] == [])
