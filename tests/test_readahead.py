"""Records read ahead by a forked process (readahead.py): the same leaves, in the same order, as
reading them here; damage raised in the caller, as a read here would raise it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from snapgit import Repo
from snapgit.encoding import decode_joined, decode_row
from snapgit.errors import CorruptError
from snapgit.ops.readahead import leaf_records
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.tree.prolly import iter_entries


@pytest.fixture
def repo(tmp_path: Path):
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, n REAL)")
    con.execute("CREATE TABLE empty (id INTEGER PRIMARY KEY)")
    con.executemany("INSERT INTO a VALUES (?, ?)", [(i, f"value {i}" * 3) for i in range(6000)])
    con.executemany("INSERT INTO b VALUES (?, ?)", [(i, i / 7) for i in range(2500)])
    con.commit()
    con.close()
    with Repo.init(tmp_path, db_url=str(tmp_path / "db.sqlite")) as r:
        r.commit("one")
        yield r


def roots_of(repo: Repo) -> list[bytes]:
    tables = read_root(repo.objects, read_commit(repo.objects, repo.head()).tree).tables
    return [read_table(repo.objects, tables[name]).root for name in ("b", "empty", "a")]


def test_ahead_gives_what_reading_here_gives(repo: Repo) -> None:
    roots = roots_of(repo)
    here = list(leaf_records(repo.objects, roots, ahead=False))
    ahead = list(leaf_records(repo.objects, roots, ahead=True))
    assert ahead == here
    rows = {i: [] for i in range(3)}
    for i, data, n in ahead:
        rows[i].extend(decode_joined(data, n))
    for i, root in enumerate(roots):
        expected = [decode_row(repo.objects.get(rid)[1]) for _k, rid in iter_entries(repo.objects, root)]
        assert rows[i] == expected
    assert [len(rows[i]) for i in range(3)] == [2500, 0, 6000]


def test_damage_is_raised_in_the_caller(repo: Repo) -> None:
    roots = roots_of(repo)
    pack = max(repo.objects.pack_dir.glob("*.pack"), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside a block of records
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    with Repo.open(repo.store.project_dir) as fresh:
        with pytest.raises(CorruptError):
            for _item in leaf_records(fresh.objects, roots, ahead=True):
                pass


def test_stopping_early_stops_the_reader(repo: Repo) -> None:
    import multiprocessing

    gen = leaf_records(repo.objects, roots_of(repo), ahead=True)
    next(gen)
    gen.close()
    assert not multiprocessing.active_children()


def dies_in_the_reader(monkeypatch, after: int) -> None:
    """Make the forked reader die (SIGKILL) after sending ``after`` leaves; this process reads on."""
    import os
    import signal

    from snapgit.ops import readahead

    here = os.getpid()
    real = readahead._leaves

    def leaves(objects, roots):
        for n, item in enumerate(real(objects, roots)):
            if n == after and os.getpid() != here:
                os.kill(os.getpid(), signal.SIGKILL)
            yield item

    monkeypatch.setattr(readahead, "_leaves", leaves)


def test_a_reader_that_dies_is_an_error_in_the_caller(repo: Repo, monkeypatch) -> None:
    import multiprocessing

    from snapgit.errors import SnapError

    dies_in_the_reader(monkeypatch, after=3)
    got = []
    with pytest.raises(SnapError, match="the process reading records ahead ended without a word"):
        for item in leaf_records(repo.objects, roots_of(repo), ahead=True):
            got.append(item)
    assert len(got) <= 3  # what it sent before it died, and not a leaf more
    assert not multiprocessing.active_children()


def test_restore_into_fails_cleanly_when_the_reader_dies(monkeypatch, tmp_path: Path) -> None:
    """restore --into reads ahead for big tables: a dead reader fails the restore with one clear
    error, and the tables it created in the new database are dropped again."""
    from snapgit.errors import SnapError
    from snapgit.ops.readahead import worth_reading_ahead

    rows = 60_000  # enough for restore --into to read ahead
    if not worth_reading_ahead(rows):
        pytest.skip("this machine has one core (or SNAP_WORKERS=0): restore --into does not read ahead")
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO big VALUES (?, ?)", [(i, f"v{i}") for i in range(rows)])
    con.commit()
    con.close()
    with Repo.init(tmp_path, db_url=str(tmp_path / "db.sqlite")) as repo:
        repo.commit("big")
        dies_in_the_reader(monkeypatch, after=2)
        target = tmp_path / "copy.sqlite"
        with pytest.raises(SnapError, match="ended without a word"):
            repo.restore("HEAD", into=str(target))
        con = sqlite3.connect(target)
        assert con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
        con.close()
        monkeypatch.undo()  # and once the reader lives, the same restore works
        repo.restore("HEAD", into=str(target))
        assert all(not list(t.rows()) for t in repo.diff("HEAD", None, db_url=f"sqlite:///{target}"))
