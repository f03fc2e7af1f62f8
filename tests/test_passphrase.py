"""Where a passphrase comes from: the environment's two variables, in order, and a source a
program sets; an empty or unreadable one is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapgit import passphrase
from snapgit.passphrase import PassphraseError, from_env, get


def test_the_variable_then_the_file(tmp_path: Path) -> None:
    f = tmp_path / "pass"
    f.write_text("from the file\r\nsecond line is not part of it\n")
    assert from_env({}) is None
    assert from_env({"SNAP_PASSPHRASE_FILE": str(f)}) == "from the file"
    assert from_env({"SNAP_PASSPHRASE": "direct", "SNAP_PASSPHRASE_FILE": str(f)}) == "direct"
    assert from_env({"SNAP_PASSPHRASE": "", "SNAP_PASSPHRASE_FILE": str(f)}) == "from the file"
    f.write_text("  spaces are kept  \n")
    assert from_env({"SNAP_PASSPHRASE_FILE": str(f)}) == "  spaces are kept  "
    assert from_env({"SNAP_NEW_PASSPHRASE": "new one", "SNAP_PASSPHRASE": "old"}, new=True) == "new one"
    assert from_env({"SNAP_PASSPHRASE": "old"}, new=True) is None


def test_an_empty_or_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(PassphraseError, match="is empty"):
        from_env({"SNAP_PASSPHRASE_FILE": str(tmp_path / "empty")})
    with pytest.raises(PassphraseError, match="cannot read SNAP_PASSPHRASE_FILE .*missing"):
        from_env({"SNAP_PASSPHRASE_FILE": str(tmp_path / "missing")})
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PassphraseError, match="cannot read"):
        from_env({"SNAP_PASSPHRASE_FILE": str(tmp_path / "binary")})


def test_get_takes_a_passphrase_a_source_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAP_PASSPHRASE", raising=False)
    monkeypatch.delenv("SNAP_PASSPHRASE_FILE", raising=False)
    assert get("given") == "given"
    asked: list[bool] = []
    assert get(lambda confirm: asked.append(confirm) or "asked", confirm=True) == "asked" and asked == [True]
    with pytest.raises(PassphraseError, match="no passphrase given") as err:
        get(None)
    assert "SNAP_PASSPHRASE" in (err.value.hint or "")
    monkeypatch.setenv("SNAP_PASSPHRASE", "from env")
    assert get(None) == "from env"
    with pytest.raises(PassphraseError, match="empty"):
        get("")
    try:
        passphrase.set_default(lambda confirm: "a program's own")
        assert get(None) == "a program's own"
    finally:
        passphrase.set_default(passphrase.environment)
