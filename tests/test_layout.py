"""The ``.snapstore`` directory (snapgit/store.py): creating it, refusing to clobber it, and
refusing to open a store of another format."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from snapgit.errors import CorruptError, NotFoundError
from snapgit.store import layout as store_mod
from snapgit.store.config import Config
from snapgit.store.layout import FORMAT_VERSION, STORE_DIR, Store, StoreExistsError, find_store


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f"{STORE_DIR}.tmp"))


@pytest.fixture
def store(tmp_path):
    s = Store.init(tmp_path, Config(url="sqlite:///app.db"))
    yield s
    s.close()


def test_init_creates_the_layout(store, tmp_path):
    root = tmp_path / STORE_DIR
    assert store.root == root
    assert (root / "VERSION").read_text() == f"snapgit store {FORMAT_VERSION}\n"
    assert (root / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (root / "config.toml").is_file()
    for sub in ("refs/heads", "refs/tags", "logs", "objects/pack", "tmp"):
        assert (root / sub).is_dir(), sub
    assert store.refs.read_symbolic("HEAD") == "refs/heads/main"
    assert store.refs.read("HEAD") is None
    assert store.config.url == "sqlite:///app.db"
    assert store.project_dir == tmp_path
    assert leftovers(tmp_path) == []


def test_init_is_private(store, tmp_path):
    root = tmp_path / STORE_DIR
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        if p.is_dir():
            assert mode == 0o700, (p, oct(mode))
        else:
            assert mode & 0o077 == 0, (p, oct(mode))


def test_init_restores_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        Store.init(tmp_path, Config()).close()
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)


def test_init_with_another_branch(tmp_path):
    s = Store.init(tmp_path, Config(), initial_branch="trunk")
    assert (s.root / "HEAD").read_text() == "ref: refs/heads/trunk\n"
    s.close()


@pytest.mark.parametrize("kind", ["store", "empty dir", "file"])
def test_init_refuses_an_existing_store(tmp_path, kind):
    target = tmp_path / STORE_DIR
    if kind == "store":
        Store.init(tmp_path, Config(url="sqlite:///first.db")).close()
    elif kind == "empty dir":
        target.mkdir()
    else:
        target.write_text("not a store")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(StoreExistsError) as info:
        Store.init(tmp_path, Config(url="sqlite:///second.db"))
    assert str(target) in str(info.value)
    assert leftovers(tmp_path) == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if kind == "store":
        assert Store.open(tmp_path).config.url == "sqlite:///first.db"


def test_init_loses_a_race_cleanly(tmp_path, monkeypatch):
    """Another `snap init` finishes while this one is building its temporary directory: this
    one must report StoreExistsError, leave the other's store alone and clean up after itself."""
    real_save = store_mod.save_config
    raced = []

    def save_then_let_the_other_finish(path, config):
        real_save(path, config)
        if not raced:
            raced.append(True)
            Store.init(tmp_path, Config(url="sqlite:///winner.db")).close()

    monkeypatch.setattr(store_mod, "save_config", save_then_let_the_other_finish)
    with pytest.raises(StoreExistsError):
        Store.init(tmp_path, Config(url="sqlite:///loser.db"))
    assert leftovers(tmp_path) == []
    s = Store.open(tmp_path)
    assert s.config.url == "sqlite:///winner.db"
    s.close()


def test_init_in_a_missing_directory(tmp_path):
    with pytest.raises(NotFoundError):
        Store.init(tmp_path / "nope", Config())
    assert not (tmp_path / "nope").exists()


def test_open_reads_what_init_wrote(store, tmp_path):
    s = Store.open(tmp_path)
    assert s.root == tmp_path / STORE_DIR
    assert s.config.url == "sqlite:///app.db"
    s.close()


@pytest.mark.parametrize(
    "text", ["snapgit store 4\n", "snapgit store 1", "snapgit store 1\n\n", "", "something else\n", "snapgit store 0\n"]
)
def test_open_refuses_another_version(store, tmp_path, text):
    (store.root / "VERSION").write_text(text)
    with pytest.raises(CorruptError) as info:
        Store.open(tmp_path)
    assert info.value.exit_code == 3
    assert info.value.hint


@pytest.mark.parametrize("earlier", [1, 2])
def test_open_upgrades_a_store_of_an_earlier_format(store, tmp_path, earlier):
    """Formats 2 and 3 only add to the ones before: such a store is read as it is, and marked as
    format 3 so that an earlier snapgit refuses it from then on."""
    (store.root / "VERSION").write_text(f"snapgit store {earlier}\n")
    Store.open(tmp_path).close()
    assert (store.root / "VERSION").read_text() == "snapgit store 3\n"
    assert (store.root / "VERSION").stat().st_mode & 0o777 == 0o600


def test_open_without_version_is_corrupt(store, tmp_path):
    (store.root / "VERSION").unlink()
    with pytest.raises(CorruptError, match="VERSION"):
        Store.open(tmp_path)


def test_open_without_object_directory_is_corrupt(store, tmp_path):
    (store.root / "objects" / "pack").rmdir()
    with pytest.raises(CorruptError):
        Store.open(tmp_path)


def test_find_store_from_a_subdirectory(store, tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_store(deep) == tmp_path / STORE_DIR
    assert find_store(tmp_path) == tmp_path / STORE_DIR
    assert find_store(tmp_path / STORE_DIR / "refs") == tmp_path / STORE_DIR
    s = Store.open(deep)
    assert s.root == tmp_path / STORE_DIR
    s.close()


def test_find_store_finds_the_nearest(store, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    Store.init(inner, Config()).close()
    (inner / "sub").mkdir()
    assert find_store(inner / "sub") == inner / STORE_DIR
    assert find_store(tmp_path / "inner") == inner / STORE_DIR


def test_find_store_outside_any_store(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(NotFoundError) as info:
        find_store(outside)
    assert STORE_DIR in str(info.value)
    assert info.value.hint
    with pytest.raises(NotFoundError):
        Store.open(outside)


def test_a_file_named_like_a_store_is_not_a_store(tmp_path):
    (tmp_path / STORE_DIR).write_text("")
    with pytest.raises(NotFoundError):
        find_store(tmp_path)
