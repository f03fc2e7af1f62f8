"""Encrypted remotes end to end: push, clone, pull through the wrapper on a directory and on S3
(moto); what the server holds, read byte by byte, has no name, value or message in it; a wrong,
missing or unexpected passphrase situation is one clear error that changes nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from remotekit import change, fingerprint, server_bytes
from snapgit.passphrase import PassphraseError
from snapgit.remote.base import RemoteCorrupt
from snapgit.remote.crypto import KEYS, WrongPassphraseError, open_key
from snapgit.remote.encrypted import EncryptedRemote, NoKeyError
from snapgit.remote.open import open_remote
from snapgit.repo import Repo

PASS = "quiet lantern 7"
MARKER = "zq-unmistakable-marker-8f1c2e9a7b6d5c4e3f2a1b0c9d8e7f6a"
# a value that compression leaves as it is (random bytes), so that a plain remote shows it
BLOB = os.urandom(4096)
# names and values of the database and the history, none of which the server may see
SECRETS = [b"invoices_secret", b"customer_email", b"amount_cents", b"payroll before the audit", BLOB[1000:1064]]


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAP_PASSPHRASE_FILE", raising=False)
    monkeypatch.setenv("SNAP_PASSPHRASE", PASS)


def make_secret_store(directory: Path) -> Repo:
    directory.mkdir(parents=True)
    db = directory / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE invoices_secret (id INTEGER PRIMARY KEY, customer_email TEXT, amount_cents INTEGER, scan BLOB)"
    )
    con.executemany(
        "INSERT INTO invoices_secret VALUES (?, ?, ?, NULL)",
        [(i, f"person{i}@hidden.example", i * 7) for i in range(3000)],
    )
    con.execute("INSERT INTO invoices_secret VALUES (99999, ?, 1, ?)", (MARKER, BLOB))
    con.commit()
    con.close()
    repo = Repo.init(directory, str(db))
    repo.commit("payroll before the audit")
    return repo


def test_an_encrypted_directory_remote_holds_no_plaintext(tmp_path: Path) -> None:
    a = make_secret_store(tmp_path / "a")
    a.create_branch("quarterly-invoices_secret-fix")
    a.remote_add("plain", str(tmp_path / "plain"))
    a.remote_add("safe", str(tmp_path / "safe"), encrypt=True)
    a.push("plain", all_branches=True)
    a.push("safe", all_branches=True)
    plain, safe = server_bytes(tmp_path / "plain"), server_bytes(tmp_path / "safe")
    # the search can fail: without encryption the server sees the names (values it sees too,
    # but zstd-compressed inside the packs, where a byte search does not find them)
    for secret in [*SECRETS[:4], b"quarterly", b"heads/main", b"snapgit remote"]:
        assert secret in plain, secret
    for secret in [
        *SECRETS,
        MARKER.encode(),
        b"quarterly",
        b"heads/main",
        b"snapgit remote",
        a.head().hex()[:16].encode(),
    ]:
        assert secret not in safe, secret
    # and every object but the key is one sealed value, that the key opens under its own name
    raw = open_remote(str(tmp_path / "safe"))
    key = open_key(raw, PASS)
    wrapper = EncryptedRemote(raw, key)
    stored = sorted(raw.list(""))
    assert [k for k in stored if k.startswith(KEYS)] == [KEYS + key.key_id]
    names = sorted(wrapper.list(""))
    assert len(names) == len(stored) - 1 and any(n.startswith("packs/") for n in names)
    for name in names:
        assert key.open(name, raw.get(wrapper.stored_name(name))) == wrapper.get(name)
    assert a.verify_remote("safe", read_data=True).ok
    a.close()


def test_push_clone_change_push_pull_round_trip(tmp_path: Path, remote_url: str) -> None:
    a = make_secret_store(tmp_path / "a")
    info = a.remote_add("origin", remote_url, encrypt=True)
    assert info.encrypted
    assert a.push().updates[0].status == "new"

    b, _fetched, branch, restored = Repo.clone(remote_url, tmp_path / "b", str(tmp_path / "b.sqlite"), restore=True)
    assert branch == "main" and restored is not None and b.head() == a.head()
    assert b.remotes()[0].encrypted  # the clone learnt it, and will not take the remote as plain again
    change(tmp_path / "b.sqlite", "UPDATE invoices_secret SET amount_cents = -1 WHERE id % 100 = 7")
    b.commit("corrections")
    assert b.push().updates[0].status == "fast-forward"

    a.pull(strategy="backup_wins")
    con_a, con_b = sqlite3.connect(tmp_path / "a" / "db.sqlite"), sqlite3.connect(tmp_path / "b.sqlite")
    query = "SELECT * FROM invoices_secret ORDER BY id"
    assert con_a.execute(query).fetchall() == con_b.execute(query).fetchall()
    con_a.close()
    con_b.close()
    assert a.verify_remote("origin", read_data=True).ok
    # read raw, without the key, the remote is not a snapgit remote at all
    raw = open_remote(remote_url)
    assert sorted({k.split("/")[0] for k in raw.list("")}) == ["_", "keys", "packs", "refs"]
    a.close()
    b.close()


def test_a_wrong_passphrase_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_secret_store(tmp_path / "a")
    a.remote_add("origin", str(tmp_path / "remote"), encrypt=True)
    a.push()
    change(tmp_path / "a" / "db.sqlite", "DELETE FROM invoices_secret WHERE id < 10")
    a.commit("later")
    before, remote_before = fingerprint(tmp_path / "a"), server_bytes(tmp_path / "remote")
    monkeypatch.setenv("SNAP_PASSPHRASE", PASS + "?")
    with pytest.raises(WrongPassphraseError):
        a.push()
    with pytest.raises(WrongPassphraseError):
        a.fetch()
    with pytest.raises(WrongPassphraseError):
        Repo.clone(str(tmp_path / "remote"), tmp_path / "b", str(tmp_path / "b.sqlite"), restore=True)
    assert not (tmp_path / "b").exists()
    monkeypatch.delenv("SNAP_PASSPHRASE")
    with pytest.raises(PassphraseError, match="no passphrase"):
        a.push()
    assert fingerprint(tmp_path / "a") == before and server_bytes(tmp_path / "remote") == remote_before
    a.close()


def test_a_remote_whose_keys_vanished_is_never_written_in_the_clear(tmp_path: Path) -> None:
    a = make_secret_store(tmp_path / "a")
    a.remote_add("origin", str(tmp_path / "remote"), encrypt=True)
    a.push()
    for key in (tmp_path / "remote" / KEYS).iterdir():  # a hostile or careless server
        key.unlink()
    with pytest.raises(NoKeyError, match="holds no key"):
        a.push()
    assert BLOB[1000:1064] not in server_bytes(tmp_path / "remote")
    a.close()


def test_a_plain_remote_with_data_cannot_be_encrypted_in_place(tmp_path: Path) -> None:
    a = make_secret_store(tmp_path / "a")
    a.remote_add("plain", str(tmp_path / "remote"))
    a.push("plain")
    before = fingerprint(tmp_path / "a")
    with pytest.raises(Exception, match="cannot be encrypted in place") as err:
        a.remote_add("again", str(tmp_path / "remote"), encrypt=True)
    assert getattr(err.value, "hint", None)
    assert fingerprint(tmp_path / "a") == before
    a.close()


def snap(cwd: Path, *args: str, passphrase: str | None = PASS) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAP_PASSPHRASE")}
    if passphrase is not None:
        env["SNAP_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_cli_sets_up_pushes_and_clones_an_encrypted_remote(tmp_path: Path) -> None:
    make_secret_store(tmp_path / "a").close()
    a, remote = tmp_path / "a", str(tmp_path / "remote")
    proc = snap(a, "remote", "add", "origin", remote, "--encrypt", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["encrypted"] is True
    assert "(encrypted)" in snap(a, "remote", "list").stdout
    assert snap(a, "push").returncode == 0

    for passphrase, words in [(PASS + "!", "wrong passphrase"), (None, "no passphrase")]:
        proc = snap(tmp_path, "clone", remote, "b", "--db", "b.sqlite", "--restore", passphrase=passphrase)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
        assert len(lines) == 2 and lines[1].startswith("hint: ") and "Traceback" not in proc.stderr
        assert not (tmp_path / "b").exists()

    proc = snap(tmp_path, "clone", remote, "b", "--db", str(tmp_path / "b.sqlite"), "--restore")
    assert proc.returncode == 0, proc.stderr
    assert rows_of(tmp_path / "b.sqlite") == rows_of(a / "db.sqlite")


def rows_of(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT * FROM invoices_secret ORDER BY id").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("what", ["packs/", "refs/"])
def test_fetch_and_verify_find_a_changed_encrypted_object(tmp_path: Path, what: str) -> None:
    a = make_secret_store(tmp_path / "a")
    url = str(tmp_path / "remote")
    a.remote_add("origin", url, encrypt=True)
    a.push()
    b, *_ = Repo.clone(url, tmp_path / "b")
    change(tmp_path / "a" / "db.sqlite", "UPDATE invoices_secret SET amount_cents = 0 WHERE id < 30")
    a.commit("change")
    a.push()
    raw = open_remote(url)
    wrapper = EncryptedRemote(raw, open_key(raw, PASS))
    # a pack (every one: the fetch needs the newest), or the branch: a byte of its sealed value changed
    names = [n for n in wrapper.list("packs/") if n.endswith(".pack")] if what == "packs/" else ["refs/heads/main"]
    for name in names:
        path = tmp_path / "remote" / wrapper.stored_name(name)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    before = fingerprint(tmp_path / "b")
    with pytest.raises(RemoteCorrupt, match="fails authentication"):
        b.fetch()
    assert fingerprint(tmp_path / "b") == before
    assert not b.verify_remote("origin", read_data=True).ok
    a.close()
    b.close()


def test_the_passphrase_is_typed_on_a_terminal_to_set_up_and_to_clone(tmp_path: Path) -> None:
    from terminal import on_terminal

    make_secret_store(tmp_path / "a").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAP_PASSPHRASE")}
    snap_cmd = [sys.executable, "-m", "snapgit.cli"]
    remote = str(tmp_path / "remote")
    add = [*snap_cmd, "remote", "add", "origin", remote, "--encrypt"]
    status, shown = on_terminal(add, [PASS, PASS + "x"], cwd=str(tmp_path / "a"), env=env)
    assert status == 1 and "do not match" in shown, shown
    assert not (tmp_path / "remote" / "keys").exists() or not os.listdir(tmp_path / "remote" / "keys")
    status, shown = on_terminal(add, [PASS, PASS], cwd=str(tmp_path / "a"), env=env)
    assert status == 0 and "(encrypted)" in shown, shown
    status, shown = on_terminal([*snap_cmd, "push"], [PASS], cwd=str(tmp_path / "a"), env=env)
    assert status == 0, shown
    clone = [*snap_cmd, "clone", remote, "b", "--db", "b.sqlite", "--restore"]
    status, shown = on_terminal(clone, [PASS], cwd=str(tmp_path), env=env)
    assert status == 0, shown
    assert PASS not in shown
    assert rows_of(tmp_path / "b.sqlite") == rows_of(tmp_path / "a" / "db.sqlite")


def test_the_passphrase_changes_without_re_encrypting_anything(tmp_path: Path, monkeypatch) -> None:
    a = make_secret_store(tmp_path / "a")
    url = str(tmp_path / "remote")
    a.remote_add("origin", url, encrypt=True)
    a.remote_add("plain", str(tmp_path / "plain"))
    a.push()
    stored = {p: p.read_bytes() for p in (tmp_path / "remote").rglob("*") if p.is_file() and KEYS not in str(p)}
    with pytest.raises(WrongPassphraseError):
        a.remote_passphrase("origin", old="not it", new="brand new words")
    removed, made = a.remote_passphrase("origin", new="brand new words")  # the old one from SNAP_PASSPHRASE
    assert removed != made and os.listdir(tmp_path / "remote" / "keys") == [made]
    # the objects are the same bytes: only the key's wrapping changed
    assert {p: p.read_bytes() for p in stored} == stored
    with pytest.raises(WrongPassphraseError):
        a.fetch()
    monkeypatch.setenv("SNAP_PASSPHRASE", "brand new words")
    b, *_ = Repo.clone(url, tmp_path / "b")
    assert b.head() == a.head()
    with pytest.raises(Exception, match="not encrypted"):
        a.remote_passphrase("plain", new="x y z")
    a.close()
    b.close()


def test_the_cli_changes_the_passphrase(tmp_path: Path) -> None:
    make_secret_store(tmp_path / "a").close()
    a = tmp_path / "a"
    assert snap(a, "remote", "add", "origin", str(tmp_path / "remote"), "--encrypt").returncode == 0
    proc = snap(a, "remote", "passphrase", "origin")  # no new passphrase, no terminal
    assert proc.returncode == 1 and "no new passphrase" in proc.stderr and "Traceback" not in proc.stderr
    env = {**os.environ, "SNAP_PASSPHRASE": PASS, "SNAP_NEW_PASSPHRASE": "second words"}
    proc = subprocess.run(
        [sys.executable, "-m", "snapgit.cli", "remote", "passphrase", "origin", "--json"],
        cwd=a,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["new_key"] in os.listdir(tmp_path / "remote" / "keys")
    assert "wrong passphrase" in snap(a, "ls-remote").stderr
    assert snap(a, "ls-remote", passphrase="second words").returncode == 0


def test_a_second_store_adding_an_encrypted_remote_without_the_flag_opens_it(tmp_path: Path) -> None:
    a = make_secret_store(tmp_path / "a")
    url = str(tmp_path / "remote")
    a.remote_add("origin", url, encrypt=True)
    a.push()
    other = make_secret_store(tmp_path / "other")
    info = other.remote_add("shared", url)  # no --encrypt: the remote says it is, and is opened
    assert info.encrypted and other.remotes()[0].encrypted
    assert other.ls_remote("shared") == ("shared", {"refs/heads/main": a.head().hex()})
    a.close()
    other.close()


def test_commands_that_do_not_encrypt_never_load_the_cryptography_library(tmp_path: Path) -> None:
    make_secret_store(tmp_path / "a").close()
    for args in (["--version"], ["log"], ["status"], ["export", "HEAD", "-o", "plain.json"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "snapgit.cli", *args],
            cwd=tmp_path / "a",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "snapgit.cli" in proc.stderr and "cryptography" not in proc.stderr, args
