"""Push, fetch, pull and clone through the Python API, on a directory remote and on S3 (moto).

The remote is real (a folder, or a bucket of moto's S3 server); databases are SQLite files,
compared through SQLite's own eyes. The same suite runs on both kinds of remote (``remote_url``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remotekit import change, fingerprint, make_store, rows
from snapgit.errors import SnapError
from snapgit.ops.push import PushRejected
from snapgit.remote.base import RemoteCorrupt
from snapgit.remote.layout import RemoteRepo
from snapgit.remote.open import open_remote
from snapgit.repo import Repo


def test_push_clone_change_push_pull_round_trip(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    first = a.push()
    assert [(u.ref, u.status) for u in first.updates] == [("refs/heads/main", "new")]
    assert first.packs_sent >= 1 and first.objects_sent > 2000
    assert a.refs.read("refs/remotes/origin/main") == a.refs.read("refs/heads/main")

    b, fetched, branch, restored = Repo.clone(remote_url, tmp_path / "b", str(tmp_path / "b.sqlite"), restore=True)
    assert branch == "main" and restored is not None
    assert rows(tmp_path / "b.sqlite") == rows(tmp_path / "a" / "db.sqlite")
    assert b.head() == a.head()
    assert not any(s.total or s.schema for s in (d.stat() for d in b.status()))  # `snap status`: clean

    change(tmp_path / "b.sqlite", "UPDATE items SET price = -1 WHERE id % 100 = 7")
    b.commit("prices")
    assert b.push().updates[0].status == "fast-forward"

    fetched, merged = a.pull(strategy="backup_wins")
    assert "refs/remotes/origin/main" in fetched.updated
    assert rows(tmp_path / "a" / "db.sqlite") == rows(tmp_path / "b.sqlite")
    assert a.head() == b.head() or b.head() in a.read_commit(a.head()).parents
    assert a.verify_remote("origin", read_data=True).ok
    a.close()
    b.close()


def test_a_push_costs_the_change_not_the_database(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a", rows=20000)
    a.remote_add("origin", remote_url)
    first = a.push()
    change(tmp_path / "a" / "db.sqlite", "UPDATE items SET name = name || '!' WHERE id % 100 = 3")  # 1%
    a.commit("one percent")
    second = a.push()
    assert second.objects_sent < first.objects_sent * 0.05, (first.objects_sent, second.objects_sent)
    assert second.bytes_sent < first.bytes_sent * 0.25, (first.bytes_sent, second.bytes_sent)
    again = a.push()
    assert again.updates[0].status == "up to date" and again.objects_sent == 0 and again.bytes_sent == 0
    a.close()


def test_packs_that_arrived_are_not_sent_again(tmp_path: Path, make_remote_url, remote_kind: str) -> None:
    """The state a push killed after its uploads leaves: packs and indexes there, the ref not
    moved. (Made here by copying another remote's packs.) The next push sends no object."""
    a = make_store(tmp_path / "a")
    first_url, url = make_remote_url(remote_kind), make_remote_url(remote_kind)
    a.remote_add("first", first_url)
    a.push("first")
    src, dst = open_remote(first_url), open_remote(url)
    for key in src.list("packs/"):
        dst.put_new(key, src.get(key))
    a.remote_add("origin", url)
    resumed = a.push("origin")
    assert resumed.updates[0].status == "new"
    assert resumed.objects_sent == 0 and resumed.packs_sent == 0
    assert a.verify_remote("origin", read_data=True).ok
    a.close()


def test_not_a_fast_forward_is_rejected_until_forced(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    b, *_ = Repo.clone(remote_url, tmp_path / "b", str(tmp_path / "a" / "db.sqlite"))
    change(tmp_path / "a" / "db.sqlite", "UPDATE items SET price = 0 WHERE id = 1")
    b.commit("b's change", allow_empty=True)
    b.push()
    a.commit("a's change")
    before = fingerprint(tmp_path / "a")
    remote = RemoteRepo(open_remote(remote_url))
    at = remote.read_ref("refs/heads/main")
    with pytest.raises(PushRejected) as rejected:
        a.push()
    assert "fetch first" in str(rejected.value) and rejected.value.hint
    assert remote.read_ref("refs/heads/main") == at
    assert fingerprint(tmp_path / "a") == before
    forced = a.push(force=True)
    assert forced.updates[0].status == "forced"
    assert remote.read_ref("refs/heads/main").id == a.head().hex()
    a.close()
    b.close()


def test_tags_and_branches_travel(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.create_tag("v1", message="release 1")
    a.create_branch("side")
    a.remote_add("origin", remote_url)
    result = a.push(all_branches=True, tags=True)
    assert {u.ref for u in result.updates} == {"refs/heads/main", "refs/heads/side", "refs/tags/v1"}
    b, fetched, _branch, _ = Repo.clone(remote_url, tmp_path / "b")
    assert b.refs.read("refs/tags/v1") == a.refs.read("refs/tags/v1")
    assert b.resolve("origin/side") == a.resolve("side")
    assert a.ls_remote() == ("origin", {r: v for r, v in fetched.refs.items()})
    a.close()
    b.close()


def _damage(remote_url: str, key: str, how: str) -> None:
    remote = open_remote(remote_url)
    data = remote.get(key)
    data = data[: len(data) // 2] if how == "truncate" else data[:100] + bytes([data[100] ^ 1]) + data[101:]
    remote.put(key, data)


@pytest.mark.parametrize("what", ["pack", "idx"])
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_fetch_and_verify_find_damaged_remote_objects(tmp_path: Path, remote_url: str, what: str, how: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    b, *_ = Repo.clone(remote_url, tmp_path / "b")
    remote = RemoteRepo(open_remote(remote_url))
    before_packs = remote.pack_names()[0]
    change(tmp_path / "a" / "db.sqlite", "UPDATE items SET name = 'x' WHERE id < 30")
    a.commit("change")
    a.push()
    (new,) = remote.pack_names()[0] - before_packs
    _damage(remote_url, remote.pack_key(new) if what == "pack" else remote.index_key(new), how)

    before = fingerprint(tmp_path / "b")
    with pytest.raises(RemoteCorrupt) as err:
        b.fetch()
    assert new[:16] in str(err.value) and err.value.exit_code == 3
    assert fingerprint(tmp_path / "b") == before

    report = b.verify_remote("origin", read_data=True)
    assert not report.ok and any(new[:16] in p.describe() for p in report.problems), report.problems
    if what == "idx":  # an index is checked whole even without --read-data
        assert not b.verify_remote("origin").ok
    a.close()
    b.close()


def test_after_gc_a_fetch_rechecks_which_packs_it_holds(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    b, *_ = Repo.clone(remote_url, tmp_path / "b")
    held = b.store.root / "remotes" / "origin" / "packs"
    for n in (1, 2):
        change(tmp_path / "a" / "db.sqlite", "UPDATE items SET name = ? WHERE id < 20", f"v{n}")
        a.commit(f"change {n}")
        a.push()
        if n == 1:
            b.fetch()
            assert held.exists()
            assert b.gc(prune="now").trashed  # small packs merged
            assert not held.exists()  # gc replaced packs: the list may be wrong now
    fetched = b.fetch()
    assert fetched.packs_received == 1  # the new one; the first is found whole in b's packs
    assert held.exists() and b.verify().ok
    assert b.resolve("origin/main") == a.head()
    a.close()
    b.close()


@pytest.mark.parametrize("value", [b"not a commit id\n", ("ab" * 32 + "\n").encode()])
def test_a_damaged_or_dangling_remote_ref_is_found(tmp_path: Path, remote_url: str, value: bytes) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    b, *_ = Repo.clone(remote_url, tmp_path / "b")
    open_remote(remote_url).put("refs/heads/main", value)
    before = fingerprint(tmp_path / "b")
    with pytest.raises(RemoteCorrupt) as err:
        b.fetch()
    assert "refs/heads/main" in str(err.value) and err.value.hint
    assert fingerprint(tmp_path / "b") == before
    for read_data in (False, True):
        report = b.verify_remote("origin", read_data=read_data)
        (problem,) = report.problems
        assert "refs/heads/main" in problem.describe() or "HEAD" in problem.describe(), problem
    a.close()
    b.close()


def test_cloning_an_empty_remote_leaves_nothing(tmp_path: Path, remote_url: str) -> None:
    from snapgit.ops.fetch import EmptyRemoteError

    with pytest.raises(EmptyRemoteError):
        Repo.clone(remote_url, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_pack_gone_from_the_remote_is_found(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    remote = RemoteRepo(open_remote(remote_url))
    (pack,) = remote.pack_names()[0]
    remote.remote.delete(remote.pack_key(pack))
    report = a.verify_remote("origin")
    assert ("pack", "missing (its index is present)") in [(p.what, p.message) for p in report.problems]
    with pytest.raises(RemoteCorrupt, match="missing"):
        Repo.clone(remote_url, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    a.close()


def test_cloning_into_a_store_leaves_that_store_alone(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    before = fingerprint(tmp_path / "a")
    with pytest.raises(SnapError, match="already exists"):
        Repo.clone(remote_url, tmp_path / "a")
    assert fingerprint(tmp_path / "a") == before
    assert (tmp_path / "a" / "db.sqlite").exists()
    a.close()


def test_remote_keys_that_are_no_ref_names_are_ignored(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    head = a.head().hex()
    open_remote(remote_url).put("refs/heads/bad..name", f"{head}\n".encode())
    open_remote(remote_url).put("refs/other/x", f"{head}\n".encode())
    assert a.ls_remote()[1] == {"refs/heads/main": head}
    b, fetched, _branch, _ = Repo.clone(remote_url, tmp_path / "b")
    assert set(b.refs.list("refs/")) == {"refs/heads/main", "refs/remotes/origin/main"}
    assert a.verify_remote("origin").ok
    a.close()
    b.close()


def test_pull_with_conflicts_stops_for_a_manual_merge(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a")
    a.remote_add("origin", remote_url)
    a.push()
    b, *_ = Repo.clone(remote_url, tmp_path / "b", str(tmp_path / "b.sqlite"), restore=True)
    change(tmp_path / "b.sqlite", "UPDATE items SET name = 'theirs' WHERE id = 5")
    b.commit("theirs")
    b.push()
    change(tmp_path / "a" / "db.sqlite", "UPDATE items SET name = 'ours' WHERE id = 5")
    before = rows(tmp_path / "a" / "db.sqlite")
    preview = a.pull(strategy="manual", preview=True)[1]
    assert preview.preview and rows(tmp_path / "a" / "db.sqlite") == before
    _fetched, merged = a.pull(strategy="manual")
    assert merged.in_progress and [len(p.conflicts) for p in merged.plans] == [1]
    assert rows(tmp_path / "a" / "db.sqlite") == before  # nothing written until resolved
    a.resolve_conflicts("theirs")
    a.merge_continue()
    assert rows(tmp_path / "a" / "db.sqlite") == rows(tmp_path / "b.sqlite")
    a.close()
    b.close()
