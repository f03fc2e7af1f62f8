"""Keys of an encrypted remote and what its wrapper stores: the passphrase opens the key and only
it does; every value is authenticated and bound to its name; the server's bytes (file names
included) hold nothing of what was stored. (The RemoteStore promises of the wrapper are in
test_remote_contract.py, with every other back end.)"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from remotekit import server_bytes
from snapgit.remote.base import RemoteCorrupt, RemoteError
from snapgit.remote.crypto import (
    KEYS,
    SEAL_OVERHEAD,
    MasterKey,
    WrongPassphraseError,
    create_key,
    derive,
    key_names,
    new_kdf,
    open_key,
)
from snapgit.remote.directory import DirRemote
from snapgit.remote.encrypted import EncryptedRemote
from snapgit.remote.memory import MemoryRemote

PASS = "plum orbit velvet"


def test_the_passphrase_opens_the_key_and_no_other_does() -> None:
    remote = MemoryRemote()
    made = create_key(remote, PASS, cheap=True)
    assert key_names(remote) == [KEYS + made.key_id]
    assert open_key(remote, PASS).secret == made.secret
    with pytest.raises(WrongPassphraseError) as err:
        open_key(remote, PASS + " ")
    assert "wrong passphrase" in err.value.message and err.value.hint
    # the key object holds the master key wrapped, and nothing that opens it without the passphrase
    doc = json.loads(remote.get(KEYS + made.key_id))
    assert set(doc) == {"snapgit_key", "kdf", "nonce", "master"}
    assert made.secret not in remote.get(KEYS + made.key_id) and made.secret.hex() not in str(doc)


def test_a_second_passphrase_opens_the_same_master_key() -> None:
    remote = MemoryRemote()
    first = create_key(remote, PASS, cheap=True)
    second = create_key(remote, "another one", master=first, cheap=True)
    assert second.key_id != first.key_id and len(key_names(remote)) == 2
    assert open_key(remote, "another one").secret == open_key(remote, PASS).secret == first.secret


def test_the_default_derivation_is_argon2id_with_its_costs_and_scrypt_keys_open_too() -> None:
    kdf = new_kdf()
    assert kdf["name"] == "argon2id" and kdf["memory_kib"] == 65536 and kdf["iterations"] == 3
    # a key object written with scrypt (a cryptography build without Argon2id) opens as well
    remote = MemoryRemote()
    secret = os.urandom(32)
    scrypt = {"name": "scrypt", "salt": base64.b64encode(os.urandom(16)).decode(), "n": 2**10, "r": 8, "p": 1}
    nonce = os.urandom(12)
    wrapped = AESGCM(derive(PASS, scrypt)).encrypt(nonce, secret, b"snapgit remote master key")
    doc = {
        "snapgit_key": 1,
        "kdf": scrypt,
        "nonce": base64.b64encode(nonce).decode(),
        "master": base64.b64encode(wrapped).decode(),
    }
    remote.put_new(KEYS + "k1", json.dumps(doc).encode())
    assert open_key(remote, PASS).secret == secret


@pytest.mark.parametrize(
    "kdf",
    [
        {"name": "argon2id", "memory_kib": 2**24, "iterations": 3, "lanes": 4},
        {"name": "argon2id", "memory_kib": 65536, "iterations": 1000, "lanes": 4},
        {"name": "argon2id", "memory_kib": "64", "iterations": 3, "lanes": 4},
        {"name": "scrypt", "n": 2**30, "r": 8, "p": 1},
        {"name": "scrypt", "n": 1000, "r": 8, "p": 1},
        {"name": "pbkdf2", "iterations": 1},
    ],
)
def test_a_hostile_key_object_cannot_make_the_client_work_without_bound(kdf: dict) -> None:
    remote = MemoryRemote()
    kdf = {**kdf, "salt": base64.b64encode(os.urandom(16)).decode()}
    doc = {"snapgit_key": 1, "kdf": kdf, "nonce": base64.b64encode(bytes(12)).decode(), "master": "AAAA"}
    remote.put_new(KEYS + "evil", json.dumps(doc).encode())
    with pytest.raises(RemoteCorrupt, match="no usable key"):
        open_key(remote, PASS)


def test_values_are_authenticated_and_bound_to_their_name() -> None:
    key = MasterKey(os.urandom(32), "k")
    sealed = key.seal("refs/heads/main", b"a" * 64 + b"\n")
    assert len(sealed) == 65 + SEAL_OVERHEAD
    assert key.seal("refs/heads/main", b"x") != key.seal("refs/heads/main", b"x")  # random nonces
    assert key.open("refs/heads/main", sealed) == b"a" * 64 + b"\n"
    with pytest.raises(RemoteCorrupt, match="fails authentication"):
        key.open("refs/heads/other", sealed)  # moved to another name
    with pytest.raises(RemoteCorrupt, match="fails authentication"):
        MasterKey(os.urandom(32), "k").open("refs/heads/main", sealed)  # another remote's key
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x80
        with pytest.raises(RemoteCorrupt):
            key.open("refs/heads/main", bytes(bad))
    with pytest.raises(RemoteCorrupt):
        key.open("refs/heads/main", sealed[:-1])


def test_names_are_deterministic_per_scope_and_hide_their_length() -> None:
    key = MasterKey(os.urandom(32), "k")
    a = key.seal_name("refs", "heads/main")
    assert a == key.seal_name("refs", "heads/main") and a != key.seal_name("packs", "heads/main")
    assert key.open_name("refs", a) == "heads/main" and key.open_name("packs", a) is None
    assert len(key.seal_name("refs", "heads/a")) == len(key.seal_name("refs", "heads/abcdefghi"))
    assert a == a.lower() and set(a) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert key.open_name("refs", "not-base32!") is None
    assert MasterKey(os.urandom(32), "k").open_name("refs", a) is None


def test_a_directory_remote_behind_the_wrapper_holds_no_plaintext(tmp_path: Path) -> None:
    inner = DirRemote(tmp_path / "remote", str(tmp_path / "remote"))
    (tmp_path / "remote").mkdir()
    remote = EncryptedRemote(inner, create_key(inner, PASS, cheap=True))
    secrets = [b"invoice_total", b"refs/heads/customer-migration", b"alice@example.com", b"merged prices"]
    remote.put_new("snapgit-remote", b"snapgit remote 1\n")
    remote.put_new("HEAD", b"ref: refs/heads/customer-migration\n")
    remote.put_new("refs/heads/customer-migration", b"invoice_total alice@example.com\n")
    remote.put("packs/pack-" + "ab" * 32 + ".pack", b"merged prices " * 100)
    raw = server_bytes(tmp_path / "remote")
    for secret in [*secrets, b"customer", b"snapgit remote", b"heads", b"main", b"ab" * 8]:
        assert secret not in raw, secret
    assert b"refs" in raw and b"packs" in raw  # the kinds of objects stay readable (documented)
    # the wrapper reads it all back, through a new key opened with the passphrase
    again = EncryptedRemote(inner, open_key(inner, PASS))
    assert sorted(again.list("refs/")) == ["refs/heads/customer-migration"]
    assert sorted(again.list("")) == sorted(
        ["snapgit-remote", "HEAD", "refs/heads/customer-migration", "packs/pack-" + "ab" * 32 + ".pack"]
    )
    assert again.get("HEAD") == b"ref: refs/heads/customer-migration\n"
    assert again.head("packs/pack-" + "ab" * 32 + ".pack") == (
        len(b"merged prices " * 100),
        inner.head(next(inner.list("packs/")))[1],
    )  # type: ignore[index]


def test_a_value_swapped_on_the_server_is_refused(tmp_path: Path) -> None:
    inner = MemoryRemote()
    remote = EncryptedRemote(inner, create_key(inner, PASS, cheap=True))
    remote.put_new("refs/heads/main", b"1" * 64 + b"\n")
    remote.put_new("refs/heads/old", b"2" * 64 + b"\n")
    stored = {remote.key.open_name("refs", k.split("/", 1)[1]): k for k in inner.list("refs/")}
    # the server answers for main with old's (validly sealed) value: refused, not believed
    inner.put(stored["heads/main"], inner.get(stored["heads/old"]))
    with pytest.raises(RemoteCorrupt, match="refs/heads/main.*fails authentication"):
        remote.get("refs/heads/main")
    with pytest.raises(RemoteError, match="reserved"):
        remote.put("keys/x", b"")


GOLDEN = Path(__file__).parent / "data" / "golden_encrypted"


def test_the_golden_encrypted_remote_still_reads(tmp_path: Path) -> None:
    """tests/data/golden_encrypted/remote was written by an earlier snapgit (make_golden_encrypted.py):
    its key must still open, its names and values read back, and the same master key must still
    give the same stored names (docs/format.md 20.4). A failure is a change of the format."""
    expected = json.loads((GOLDEN / "expected.json").read_text())
    inner = DirRemote(GOLDEN / "remote", "golden")
    key = open_key(inner, expected["passphrase"])
    assert key.secret.hex() == expected["master_key"]
    remote = EncryptedRemote(inner, key)
    assert sorted(remote.list("")) == sorted(expected["values"])
    for name, value in expected["values"].items():
        assert remote.get(name) == value.encode()
        assert remote.stored_name(name) == expected["stored_names"][name]
    again = EncryptedRemote(MemoryRemote(), MasterKey(bytes.fromhex(expected["master_key"]), "k"))
    assert {n: again.stored_name(n) for n in expected["values"]} == expected["stored_names"]


_names = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40),
    min_size=1,
    max_size=4,
).map("/".join)


@given(st.lists(_names, min_size=1, max_size=8, unique=True))
@settings(max_examples=40, deadline=None)
def test_any_names_round_trip_and_list_under_their_prefixes(names: list[str]) -> None:
    names = [n for n in names if not n.startswith(("keys/", "_/")) and not n.endswith("/")]
    inner = MemoryRemote()
    remote = EncryptedRemote(inner, MasterKey(bytes(32), "k"))
    for i, name in enumerate(names):
        remote.put(name, str(i).encode())
    assert sorted(remote.list("")) == sorted(names)
    for i, name in enumerate(names):
        assert remote.get(name) == str(i).encode()
        scope = name.split("/")[0] + "/" if "/" in name else name[:1]
        assert sorted(remote.list(scope)) == sorted(n for n in names if n.startswith(scope))
    # (a name of 9+ characters showing up in random base32 by chance: about 2**-45)
    assert not any(name in stored for name in names if len(name) > 8 for stored in inner.list(""))
