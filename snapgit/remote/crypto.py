"""The keys of an encrypted remote, and sealing and opening what it stores (restic's model).

An encrypted remote has one random 256-bit **master key**, made when the remote is set up
(``snap remote add NAME URL --encrypt``). It never leaves the client unwrapped: the remote holds
it in ``keys/<id>`` objects, each the master key encrypted under a key derived from a passphrase,
with the derivation's parameters beside it (a JSON document)::

    {"snapgit_key": 1,
     "kdf": {"name": "argon2id", "salt": B64, "memory_kib": 65536, "iterations": 3, "lanes": 4},
     "nonce": B64, "master": B64}   # master: AES-256-GCM(derived key, nonce, master key)

(``"name": "scrypt"`` with ``n``, ``r``, ``p`` where the ``cryptography`` build lacks Argon2id.)
Opening tries every key object until one opens with the passphrase; none is
:class:`WrongPassphraseError`. Parameters a key object asks for are bounded, so a hostile server
cannot make the client spend unbounded memory or time.

From the master key two keys are derived (HKDF-SHA256): a **data key** that seals every value
with AES-256-GCM under a random 96-bit nonce and the value's remote key name as associated data
(a value moved or copied to another name fails to open), as ``version (1 byte) || nonce (12) ||
ciphertext || tag (16)``; and a **name key** that encrypts key names deterministically with
AES-SIV (the same name gives the same stored name, which is what a look-up needs), padded to 16
bytes so that the stored name does not give away the name's exact length.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from snapgit.passphrase import PassphraseError
from snapgit.remote.base import RemoteCorrupt, RemoteStore

__all__ = [
    "MasterKey",
    "WrongPassphraseError",
    "KEYS",
    "SEAL_OVERHEAD",
    "create_key",
    "open_key",
    "key_names",
    "derive",
    "new_kdf",
]

KEYS = "keys/"
_VERSION = b"\x01"
SEAL_OVERHEAD = 1 + 12 + 16
_KEY_AD = b"snapgit remote master key"
_VALUE_AD = b"snapgit remote value\x00"
# what a key object may ask for: well above the defaults, far below what would hurt
_MAX_ARGON2_KIB = 1 << 20  # 1 GiB
_MAX_ARGON2_ITERATIONS = 32
_MAX_SCRYPT_LOG_N = 20
ARGON2_DEFAULT = {"memory_kib": 65536, "iterations": 3, "lanes": 4}  # RFC 9106's second choice
SCRYPT_DEFAULT = {"n": 2**17, "r": 8, "p": 1}


class WrongPassphraseError(PassphraseError):
    """No key object of the remote opens with the passphrase."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=SHA256(), length=length, salt=None, info=info).derive(secret)


def _argon2_available() -> bool:
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        Argon2id(salt=bytes(16), length=32, iterations=1, lanes=1, memory_cost=8).derive(b"probe")
    except Exception:  # noqa: BLE001 - ImportError or UnsupportedAlgorithm: an older build
        return False
    return True


def new_kdf(*, cheap: bool = False) -> dict[str, Any]:
    """The derivation parameters of a new key object (a fresh salt). ``cheap``: tiny costs, for
    tests that are not about the derivation."""
    salt = _b64(os.urandom(16))
    if _argon2_available():
        params = {"memory_kib": 64, "iterations": 1, "lanes": 1} if cheap else ARGON2_DEFAULT
        return {"name": "argon2id", "salt": salt, **params}
    return {"name": "scrypt", "salt": salt, **({"n": 2**4, "r": 8, "p": 1} if cheap else SCRYPT_DEFAULT)}


def _ints(kdf: dict[str, Any], *names: str) -> list[int]:
    values = [kdf.get(n) for n in names]
    if not all(type(v) is int for v in values):
        raise ValueError(f"{kdf.get('name')} parameters are not integers")
    return [v for v in values if isinstance(v, int)]


def derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    """The 256-bit key that wraps the master key; ValueError for parameters out of bounds."""
    secret = passphrase.encode("utf-8")
    salt = _unb64(kdf.get("salt"))
    if len(salt) < 16:
        raise ValueError("salt shorter than 16 bytes")
    name = kdf.get("name")
    if name == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        mem, its, lanes = _ints(kdf, "memory_kib", "iterations", "lanes")
        if not (1 <= lanes <= 64 and 8 * lanes <= mem <= _MAX_ARGON2_KIB and 1 <= its <= _MAX_ARGON2_ITERATIONS):
            raise ValueError(f"argon2id parameters out of bounds: {mem} KiB, {its} iterations, {lanes} lanes")
        return Argon2id(salt=salt, length=32, iterations=its, lanes=lanes, memory_cost=mem).derive(secret)
    if name == "scrypt":
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        n, r, p = _ints(kdf, "n", "r", "p")
        if not (2 <= n <= 2**_MAX_SCRYPT_LOG_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError(f"scrypt parameters out of bounds: n={n} r={r} p={p}")
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)
    raise ValueError(f"unknown key derivation {name!r}")


class MasterKey:
    """An unlocked remote: seals and opens values, encrypts and decrypts key names."""

    def __init__(self, secret: bytes, key_id: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

        if len(secret) != 32:
            raise ValueError("a master key is 32 bytes")
        self.secret = secret
        self.key_id = key_id  # the key object that opened it
        self._data = AESGCM(_hkdf(secret, b"snapgit remote data"))
        self._names = AESSIV(_hkdf(secret, b"snapgit remote names", 64))

    def seal(self, name: str, plain: bytes) -> bytes:
        """``plain`` encrypted and authenticated for the remote key ``name``."""
        nonce = os.urandom(12)
        return _VERSION + nonce + self._data.encrypt(nonce, plain, _VALUE_AD + name.encode("utf-8"))

    def open(self, name: str, sealed: bytes, where: str = "the remote") -> bytes:
        """The plaintext of a value stored under ``name``; :class:`RemoteCorrupt` when it was
        changed, cut short, or sealed for another name or another remote."""
        from cryptography.exceptions import InvalidTag

        if len(sealed) < SEAL_OVERHEAD or sealed[:1] != _VERSION:
            raise RemoteCorrupt(f"{name} on {where} is not an encrypted value of this format ({len(sealed)} bytes)")
        try:
            return self._data.decrypt(sealed[1:13], sealed[13:], _VALUE_AD + name.encode("utf-8"))
        except InvalidTag:
            raise RemoteCorrupt(
                f"{name} on {where} fails authentication: damaged, or written by someone without the key",
                hint="run `snap verify --remote` to see what else is affected",
            ) from None

    def seal_name(self, scope: str, name: str) -> str:
        """``name`` encrypted deterministically within ``scope`` (the key's first component), as
        lower-case base32: safe for S3 keys and case-insensitive file systems."""
        raw = name.encode("utf-8")
        raw += b"\x00" * (-len(raw) % 16)
        sealed = self._names.encrypt(raw, [scope.encode("utf-8")])
        return base64.b32encode(sealed).decode("ascii").rstrip("=").lower()

    def open_name(self, scope: str, stored: str) -> str | None:
        """The name a stored name stands for; None for one this key did not make."""
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b32decode(stored.upper() + "=" * (-len(stored) % 8))
            return self._names.decrypt(raw, [scope.encode("utf-8")]).rstrip(b"\x00").decode("utf-8")
        except (ValueError, InvalidTag, UnicodeDecodeError):
            return None


def key_names(remote: RemoteStore) -> list[str]:
    """The remote's key objects (empty: the remote is not encrypted)."""
    return sorted(remote.list(KEYS))


def _key_object(master: bytes, passphrase: str, kdf: dict[str, Any]) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    wrapped = AESGCM(derive(passphrase, kdf)).encrypt(nonce, master, _KEY_AD)
    doc = {"snapgit_key": 1, "kdf": kdf, "nonce": _b64(nonce), "master": _b64(wrapped)}
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def create_key(
    remote: RemoteStore, passphrase: str, *, master: MasterKey | None = None, cheap: bool = False
) -> MasterKey:
    """Write a key object that opens with ``passphrase``: of a new master key, or of ``master``
    (another passphrase for the same remote). Create-only, named by its content's hash."""
    secret = master.secret if master is not None else os.urandom(32)
    data = _key_object(secret, passphrase, new_kdf(cheap=cheap))
    key_id = hashlib.sha256(data).hexdigest()
    remote.put_new(KEYS + key_id, data)
    return MasterKey(secret, key_id)


def _parse(data: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("snapgit_key") != 1 or not isinstance(doc.get("kdf"), dict):
        raise ValueError("not a snapgit key object of version 1")
    return doc["kdf"], _unb64(doc.get("nonce")), _unb64(doc.get("master"))


def open_key(remote: RemoteStore, passphrase: str) -> MasterKey:
    """The master key, from the first key object that opens with ``passphrase``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    names = key_names(remote)
    if not names:
        raise PassphraseError(f"{remote.url} is not encrypted: it holds no key")
    damaged = []
    for name in names:
        try:
            kdf, nonce, wrapped = _parse(remote.get(name))
            secret = AESGCM(derive(passphrase, kdf)).decrypt(nonce, wrapped, _KEY_AD)
        except (ValueError, UnicodeDecodeError) as exc:
            damaged.append(f"{name}: {exc}")  # another key object may still open
            continue
        except InvalidTag:
            continue
        return MasterKey(secret, name.removeprefix(KEYS))
    if len(damaged) == len(names):
        raise RemoteCorrupt(f"no usable key on {remote.url}: {damaged[0]}", hint="restore keys/ from a backup")
    raise WrongPassphraseError(
        f"wrong passphrase for {remote.url} (none of its {len(names)} key{'s' if len(names) != 1 else ''} opens with it)",
        hint="give the passphrase the remote was set up with (SNAP_PASSPHRASE, SNAP_PASSPHRASE_FILE or the terminal)",
    )
