"""A damaged MERGE_HEAD (the state of an unfinished manual merge) is not a dead end:
`snap merge --abort` removes it and says it was damaged, and gc reports it with that way out
instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli import make_shop, no_traceback, snap

DAMAGED = {
    "truncated": b'{"ours": "ab',
    "not json": b"\x00\xff garbage",
    "not an object": b"[]",
    "not a commit id": b'{"ours": null, "theirs": "zz", "base": null}',
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    snap(tmp_path, "commit", "-m", "first")
    return tmp_path


@pytest.mark.parametrize("content", [DAMAGED["truncated"], DAMAGED["not json"]], ids=["truncated", "not json"])
def test_abort_removes_a_damaged_merge_head(store: Path, content: bytes) -> None:
    merge_head = store / ".snapstore" / "MERGE_HEAD"
    merge_head.write_bytes(content)
    assert snap(store, "merge", "main", check=False).returncode != 0  # the state is in the way
    proc = snap(store, "merge", "--abort", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "damaged" in proc.stdout + proc.stderr
    assert "merge aborted" in proc.stdout
    assert not merge_head.exists()
    assert snap(store, "verify").returncode == 0


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_gc_reports_a_damaged_merge_head_with_a_hint(store: Path, content: bytes) -> None:
    merge_head = store / ".snapstore" / "MERGE_HEAD"
    merge_head.write_bytes(content)
    proc = snap(store, "gc", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "MERGE_HEAD is damaged" in proc.stderr, proc.stderr
    assert "snap merge --abort" in proc.stderr, proc.stderr
    assert merge_head.read_bytes() == content  # reported, not touched: abort is the user's call
    proc = snap(store, "gc", "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MERGE_HEAD is damaged" in proc.stdout


def test_abort_without_a_merge_still_refuses(store: Path) -> None:
    proc = snap(store, "merge", "--abort", check=False)
    assert proc.returncode != 0
    no_traceback(proc)
    assert "no merge in progress" in proc.stderr
