"""The RemoteStore contract, held by every back end: memory, a directory, and S3 (moto's server).

A back end that joins snapgit joins this suite (remote/base.py states the promises)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapgit.remote.base import RemoteConflict, RemoteExists, RemoteMissing, RemoteStore, RemoteUnsupported
from snapgit.remote.crypto import create_key
from snapgit.remote.directory import DirRemote
from snapgit.remote.encrypted import EncryptedRemote
from snapgit.remote.memory import MemoryRemote
from snapgit.remote.open import normalize_url, open_remote, probe_conditional_writes


@pytest.fixture(params=["memory", "dir", "s3", "encrypted-memory", "encrypted-dir", "encrypted-s3"])
def remote(request: pytest.FixtureRequest, make_remote_url: Callable[[str], str]) -> Iterator[RemoteStore]:
    kind = request.param.removeprefix("encrypted-")
    inner = MemoryRemote() if kind == "memory" else open_remote(make_remote_url(kind))
    if request.param.startswith("encrypted-"):
        # the same promises through the encrypting wrapper (remote/encrypted.py), its key on the inner store
        yield EncryptedRemote(inner, create_key(inner, "contract passphrase", cheap=True))
    else:
        yield inner


def test_get_put_head_list_delete(remote: RemoteStore) -> None:
    assert remote.head("a/b") is None
    with pytest.raises(RemoteMissing):
        remote.get("a/b")
    with pytest.raises(RemoteMissing):
        remote.get_range("a/b", 0, 1)
    remote.put("a/b", b"hello world")
    assert remote.get("a/b") == b"hello world"
    assert remote.get_range("a/b", 6, 11) == b"world"
    assert remote.get_range("a/b", 0, 5) == b"hello"
    size, etag = remote.head("a/b") or (0, "")
    assert size == 11 and etag
    remote.put("a/b", b"other")
    assert remote.get("a/b") == b"other"
    assert remote.head("a/b") != (size, etag)
    remote.put("a/c/d", b"1")
    remote.put("x", b"2")
    assert sorted(remote.list("a/")) == ["a/b", "a/c/d"]
    assert sorted(remote.list("")) == ["a/b", "a/c/d", "x"]
    assert list(remote.list("nothing/")) == []
    remote.delete("a/b")
    remote.delete("a/b")  # gone already: no error
    assert remote.head("a/b") is None
    assert sorted(remote.list("a/")) == ["a/c/d"]


def test_put_new_creates_once(remote: RemoteStore) -> None:
    etag = remote.put_new("refs/heads/main", b"one\n")
    assert remote.head("refs/heads/main") == (4, etag)
    with pytest.raises(RemoteExists):
        remote.put_new("refs/heads/main", b"two\n")
    assert remote.get("refs/heads/main") == b"one\n"


def test_put_if_swaps_only_from_the_etag_read(remote: RemoteStore) -> None:
    first = remote.put_new("ref", b"one\n")
    second = remote.put_if("ref", b"two\n", first)
    assert second != first
    assert remote.get("ref") == b"two\n"
    # a stale etag (the server must answer 412): the value stays
    with pytest.raises(RemoteConflict):
        remote.put_if("ref", b"three\n", first)
    assert remote.get("ref") == b"two\n"
    assert remote.head("ref") == (4, second)
    # a key that is gone has no etag to match
    with pytest.raises(RemoteConflict):
        remote.put_if("absent", b"x\n", first)
    assert remote.head("absent") is None


def test_racing_writers_have_one_winner(remote: RemoteStore) -> None:
    etag = remote.put_new("ref", b"base\n")
    barrier = threading.Barrier(6)
    won: list[str] = []
    lost: list[str] = []

    def swap(n: int) -> None:
        barrier.wait()
        try:
            remote.put_if("ref", f"writer {n}\n".encode(), etag)
            won.append(f"swap {n}")
        except RemoteConflict:
            lost.append(f"swap {n}")

    def create(n: int) -> None:
        barrier.wait()
        try:
            remote.put_new("new-ref", f"writer {n}\n".encode())
            won.append(f"create {n}")
        except RemoteExists:
            lost.append(f"create {n}")

    threads = [threading.Thread(target=swap, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=create, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(w.split()[0] for w in won) == ["create", "swap"], (won, lost)
    assert remote.get("ref") == f"writer {[w for w in won if w.startswith('swap')][0].split()[1]}\n".encode()


def test_probe_accepts_conditional_writes_and_leaves_nothing(remote: RemoteStore) -> None:
    probe_conditional_writes(remote)
    assert list(remote.list("")) == []


def test_probe_refuses_a_server_that_ignores_conditions(tmp_path) -> None:
    for fake in (MemoryRemote(ignores_conditions=True), DirRemote(tmp_path, ignores_conditions=True)):
        with pytest.raises(RemoteUnsupported) as err:
            probe_conditional_writes(fake)
        assert "ignores conditional writes" in str(err.value) and err.value.hint
        assert list(fake.list("")) == []


def test_normalize_url(tmp_path) -> None:
    assert normalize_url("s3://bucket/a/b/") == "s3://bucket/a/b"
    assert normalize_url("s3://bucket") == "s3://bucket"
    assert normalize_url("file://" + str(tmp_path)) == str(tmp_path.resolve())
    assert normalize_url("rel", cwd=tmp_path) == str((tmp_path / "rel").resolve())
    for bad in ("", "http://host/x", "s3://", "s3://key:secret@bucket/x"):
        with pytest.raises(Exception) as err:
            normalize_url(bad)
        assert err.value.hint  # type: ignore[attr-defined]


_KEYS = st.sampled_from(["refs/heads/main", "refs/tags/v1", "packs/pack-a.pack", "x"])
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "put_new", "put_if_right", "put_if_stale", "delete", "get", "head", "list"]),
        _KEYS,
        st.binary(max_size=40),
    ),
    max_size=30,
)


def _apply(remote: RemoteStore, op: str, key: str, data: bytes, etags: dict[str, str]) -> object:
    try:
        if op == "put":
            remote.put(key, data)
            return None
        if op == "put_new":
            remote.put_new(key, data)
            return None
        if op.startswith("put_if"):
            head = remote.head(key)
            etag = head[1] if head is not None and op == "put_if_right" else etags.get(key, "stale")
            remote.put_if(key, data, etag)
            return None
        if op == "delete":
            remote.delete(key)
            return None
        if op == "get":
            return remote.get(key)
        if op == "head":
            head = remote.head(key)
            if head is not None:
                etags.setdefault(key, head[1])  # an etag that may go stale, for put_if_stale
            return None if head is None else head[0]
        return sorted(remote.list(""))
    except (RemoteExists, RemoteConflict, RemoteMissing) as exc:
        return type(exc).__name__


@settings(max_examples=max(25, settings.default.max_examples // 4))
@given(ops=_OPS)
def test_the_directory_behaves_as_the_memory_model(tmp_path_factory, ops) -> None:
    """Any sequence of operations gives the same answers from a directory as from memory."""
    model, real = MemoryRemote(), DirRemote(tmp_path_factory.mktemp("dir"))
    etags_model: dict[str, str] = {}
    etags_real: dict[str, str] = {}
    for op, key, data in ops:
        assert _apply(real, op, key, data, etags_real) == _apply(model, op, key, data, etags_model), (op, key)
