"""The age format of encrypted exports: held to pyrage and to the real ``age`` tool both ways, and
every change to a file's bytes refused."""

from __future__ import annotations

import base64
import io
import os

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapgit.exchange.agefile import CHUNK, TAG, AgeError, AgeReader, AgeWriter, WrongPassphraseError, is_age
from terminal import age_binary, on_terminal

PASS = "correct horse battery staple"
FAST = 4  # scrypt work factor for tests that are not about the passphrase's cost


def seal(data: bytes, passphrase: str = PASS, *, parts: int = 1, work_factor: int = FAST) -> bytes:
    out = io.BytesIO()
    w = AgeWriter(out, passphrase, work_factor=work_factor)
    step = max(1, len(data) // parts)
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    w.finish()
    return out.getvalue()


def unseal(blob: bytes, passphrase: str = PASS) -> bytes:
    return AgeReader(io.BufferedReader(io.BytesIO(blob)), passphrase).read()


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_decrypts_what_we_write_and_we_read_it_back(size: int) -> None:
    data = os.urandom(size)
    blob = seal(data, parts=3)
    assert is_age(blob)
    assert pyrage.passphrase.decrypt(blob, PASS) == data
    assert unseal(blob) == data
    # after the header's MAC line: a 16-byte nonce, then ceil(size / CHUNK) chunks (one when empty)
    chunks = max(1, -(-size // CHUNK))
    assert len(blob) - (blob.index(b"\n", blob.index(b"\n---") + 1) + 1) == 16 + size + chunks * TAG


@given(st.binary(max_size=3 * CHUNK + 100), st.integers(1, 9))
@settings(max_examples=30, deadline=None)
def test_any_bytes_written_in_any_pieces_round_trip(data: bytes, parts: int) -> None:
    assert unseal(seal(data, parts=parts)) == data


def test_we_read_what_pyrage_writes() -> None:
    data = b"row 1,alice\n" * 20000
    blob = pyrage.passphrase.encrypt(data, PASS)  # pyrage picks its own (higher) work factor
    assert unseal(blob) == data


def test_the_age_tool_decrypts_what_we_write_and_we_read_what_it_writes(tmp_path) -> None:
    age = age_binary()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TERM": "dumb"}
    data = os.urandom(CHUNK * 2 + 5)
    (tmp_path / "ours.age").write_bytes(seal(data, work_factor=10))
    status, shown = on_terminal([age, "-d", "-o", "ours.out", "ours.age"], [PASS], cwd=str(tmp_path), env=env)
    assert status == 0, shown
    assert (tmp_path / "ours.out").read_bytes() == data

    (tmp_path / "plain").write_bytes(data)
    status, shown = on_terminal([age, "-p", "-o", "theirs.age", "plain"], [PASS, PASS], cwd=str(tmp_path), env=env)
    assert status == 0, shown
    assert unseal((tmp_path / "theirs.age").read_bytes()) == data


def test_wrong_passphrase_is_told_apart_from_damage() -> None:
    blob = seal(b"secret rows")
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        unseal(blob, "not it")


def test_every_changed_byte_is_refused() -> None:
    data = os.urandom(CHUNK + 300)
    blob = seal(data)
    body = blob.index(b"\n---") + 1
    # each header byte before the MAC line, a sample of the MAC line, the nonce and both chunks
    positions = list(range(body)) + list(range(body, len(blob), 97)) + [len(blob) - 1]
    for i in positions:
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(AgeError):
            unseal(bytes(bad))


def test_truncated_extended_or_reordered_payloads_are_refused() -> None:
    data = os.urandom(3 * CHUNK)
    blob = seal(data)
    payload = len(blob) - 3 * (CHUNK + TAG)
    head, c1, c2, c3 = (
        blob[:payload],
        blob[payload : payload + CHUNK + TAG],
        blob[payload + CHUNK + TAG : payload + 2 * (CHUNK + TAG)],
        blob[payload + 2 * (CHUNK + TAG) :],
    )
    assert head + c1 + c2 + c3 == blob
    for bad, what in [
        (head + c1 + c2, "the last chunk dropped"),
        (head + c1, "two chunks dropped"),
        (head, "no chunk at all"),
        (head + c2 + c1 + c3, "chunks swapped"),
        (blob + b"x", "a byte appended"),
        (blob + c3, "a chunk appended"),
        (blob[:-1], "a byte cut off"),
        (blob[: payload - 3], "cut inside the nonce"),
    ]:
        with pytest.raises(AgeError):
            unseal(bad)
            pytest.fail(what)


def test_a_file_for_public_keys_or_asking_too_much_work_is_refused_clearly() -> None:
    ident = pyrage.x25519.Identity.generate()
    for_key = pyrage.encrypt(b"rows", [ident.to_public()])
    with pytest.raises(AgeError, match="public-key recipients, not with a passphrase"):
        unseal(for_key)

    # a forged header asking for 2**40 scrypt work: refused before any is done
    salt = base64.b64encode(os.urandom(16)).rstrip(b"=")
    body = base64.b64encode(os.urandom(32)).rstrip(b"=")
    forged = b"age-encryption.org/v1\n-> scrypt " + salt + b" 40\n" + body + b"\n--- " + body + b"\n" + bytes(40)
    with pytest.raises(AgeError, match="work factor 40"):
        unseal(forged)

    with pytest.raises(AgeError, match="not an age file"):
        unseal(b'{"metadata":{}}\n')
    with pytest.raises(AgeError, match="armored"):
        unseal(b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHNjcnlwdCBy\n")


def test_a_file_the_age_tool_wrote_reads_without_it() -> None:
    """tests/data/golden_encrypted/by-age.age was written by `age -p` (work factor 18): read here
    even where the age tool is not installed."""
    import hashlib
    import json
    from pathlib import Path

    golden = Path(__file__).parent / "data" / "golden_encrypted"
    expected = json.loads((golden / "expected.json").read_text())
    with open(golden / "by-age.age", "rb") as raw:
        plain = AgeReader(raw, expected["passphrase"]).read()
    assert len(plain) == expected["age_plaintext_bytes"]
    assert hashlib.sha256(plain).hexdigest() == expected["age_plaintext_sha256"]
