"""Encrypted export files: the age format (age-encryption.org/v1) with a passphrase, as a stream.

``snap export --encrypt`` wraps what it would write in the age format, so that the standard
``age -d`` (or rage, or pyrage) decrypts a backup without snapgit; ``snap import`` recognises
the format by its first line and decrypts it as it reads.

Why not pyrage itself: its passphrase functions take and return whole buffers
(``pyrage.passphrase.encrypt(plaintext, passphrase)``); only its public-key recipients stream.
An export can be gigabytes, and whole-buffer encryption would hold the file twice in memory.
So this module writes the format from its specification with the primitives of
``cryptography``, 64 KiB at a time, and the tests hold it to pyrage and to the ``age`` binary in
both directions.

The format, for a passphrase (one ``scrypt`` recipient stanza, the only one allowed)::

    age-encryption.org/v1
    -> scrypt <salt: 16 bytes, base64> <log2 of scrypt's N>
    <the 16-byte file key sealed by ChaCha20-Poly1305 under scrypt(passphrase), base64>
    --- <HMAC-SHA256 of the header up to "---", base64>
    <16-byte nonce><payload>

The scrypt key is ``scrypt(passphrase, "age-encryption.org/v1/scrypt" + salt, N, r=8, p=1)``
and seals the file key with a zero nonce. The header MAC's key and the payload key are HKDF-SHA256
of the file key (info ``header``; salt the nonce, info ``payload``). The payload is the STREAM
construction: 64 KiB chunks, each sealed by ChaCha20-Poly1305 with the nonce
``chunk counter (11 bytes, big-endian) || last-chunk flag (1 byte)``, so a reader notices a
chunk changed, reordered, dropped or cut off at the end. base64 is the standard alphabet
without padding, and a reader accepts only its canonical form.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
import re
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

from snapgit.errors import SnapError

__all__ = [
    "AgeError",
    "AgeReader",
    "AgeWriter",
    "WrongPassphraseError",
    "DEFAULT_WORK_FACTOR",
    "MAX_WORK_FACTOR",
    "MAGIC",
    "is_age",
]

MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
CHUNK = 64 * 1024
TAG = 16
DEFAULT_WORK_FACTOR = 18  # age's own default: about a second, 256 MiB of memory
# The most a file may ask of the reader (age's own limit): 2**22 takes about 4 GiB and 15 s. A
# file asking more is refused, not obeyed: the work factor is the writer's choice, not trusted.
MAX_WORK_FACTOR = 22
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_MAX_HEADER_LINE = 1024
_MAX_HEADER = 16 * 1024
_B64 = re.compile(rb"[A-Za-z0-9+/]*")


class AgeError(SnapError):
    """An age file that cannot be decrypted: not age, of a kind snapgit does not read, damaged."""


class WrongPassphraseError(AgeError):
    """The passphrase does not open the file's key."""


def is_age(head: bytes) -> bool:
    """Whether a file that begins with ``head`` is an age file (binary or armored)."""
    return head.startswith(MAGIC) or head.startswith(ARMOR_MAGIC)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes, what: str) -> bytes:
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        raise AgeError(f"the age header is damaged: {what} is not base64")
    data = base64.b64decode(text + b"=" * (-len(text) % 4))
    if _b64(data) != text:  # unused bits set: another spelling of the same bytes
        raise AgeError(f"the age header is damaged: {what} is not canonical base64")
    return data


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(key)


def _scrypt(passphrase: str, salt: bytes, log_n: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=2**log_n, r=8, p=1).derive(passphrase.encode("utf-8"))


def _header_mac(file_key: bytes, header: bytes) -> bytes:
    return hmac.digest(_hkdf(file_key, b"", b"header"), header, "sha256")


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class AgeWriter(io.RawIOBase):
    """A writable stream that encrypts what is written to ``out`` in the age format.

    :meth:`finish` seals the last chunk; until then at most one chunk is held (a full chunk
    can only be sealed once more data shows it is not the last). ``out`` is not closed.
    """

    def __init__(self, out: IO[bytes], passphrase: str, *, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        super().__init__()
        if not 1 <= work_factor <= MAX_WORK_FACTOR:
            raise ValueError(f"work factor {work_factor} is outside 1..{MAX_WORK_FACTOR}")
        self._out = out
        file_key = os.urandom(16)
        salt = os.urandom(16)
        wrapped = ChaCha20Poly1305(_scrypt(passphrase, salt, work_factor)).encrypt(bytes(12), file_key, None)
        header = MAGIC + b"-> scrypt " + _b64(salt) + b" %d\n" % work_factor + _b64(wrapped) + b"\n---"
        nonce = os.urandom(16)
        out.write(header + b" " + _b64(_header_mac(file_key, header)) + b"\n" + nonce)
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buf = bytearray()
        self._counter = 0
        self._finished = False

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        if self._finished:
            raise ValueError("write to a finished age stream")
        self._buf += data
        n = len(memoryview(data))
        while len(self._buf) > CHUNK:
            self._seal(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return n

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        self._out.write(self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, None))
        self._counter += 1

    def finish(self) -> None:
        """Seal the last chunk (empty only when nothing was written at all)."""
        if not self._finished:
            self._seal(bytes(self._buf), last=True)
            self._buf.clear()
            self._finished = True


class AgeReader(io.RawIOBase):
    """A readable stream of the plaintext of an age file read from ``raw``.

    The header is read and checked, and the passphrase tried, when the reader is made:
    :class:`WrongPassphraseError` then, before any plaintext. Every chunk is authenticated before
    its bytes are handed out; a changed, missing or extra chunk raises :class:`AgeError`.
    """

    def __init__(self, raw: IO[bytes], passphrase: str, *, max_work_factor: int = MAX_WORK_FACTOR) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        super().__init__()
        self._raw = raw
        file_key = self._open_header(passphrase, max_work_factor)
        nonce = self._read(16)
        if len(nonce) < 16:
            raise AgeError("the age file is truncated: it ends inside its payload nonce")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        self._pending = b""  # ciphertext read ahead to tell whether a full chunk is the last
        self._plain = b""
        self._pos = 0
        self._eof = False

    def _read(self, n: int) -> bytes:
        parts, left = [], n
        while left > 0:
            part = self._raw.read(left)
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _line(self, header: bytearray) -> bytes:
        line = self._raw.readline(_MAX_HEADER_LINE)
        header += line
        if len(header) > _MAX_HEADER:
            raise AgeError("the age header is damaged: it does not end")
        if not line.endswith(b"\n"):
            raise AgeError("the age header is damaged or truncated")
        return line[:-1]

    def _open_header(self, passphrase: str, max_work_factor: int) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        header = bytearray()
        first = self._line(header)
        if first.startswith(ARMOR_MAGIC):
            raise AgeError(
                "the file is ASCII-armored age", hint="decrypt it with age -d first, or use a binary age file"
            )
        if first + b"\n" != MAGIC:
            raise AgeError("not an age file (age-encryption.org/v1)")
        stanzas: list[tuple[list[bytes], bytes]] = []
        line = self._line(header)
        while line.startswith(b"-> "):
            args = line[3:].split(b" ")
            body = b""
            while True:
                part = self._line(header)
                body += part
                if len(part) < 64:
                    break
            stanzas.append((args, _unb64(body, "a recipient's body")))
            line = self._line(header)
        if not line.startswith(b"--- "):
            raise AgeError("the age header is damaged: no MAC line")
        mac = _unb64(line[4:], "the header MAC")
        signed = bytes(header[: len(header) - len(line) - 1]) + b"---"
        if not any(args[:1] == [b"scrypt"] for args, _ in stanzas):
            raise AgeError(
                "the age file is encrypted to public-key recipients, not with a passphrase",
                hint="decrypt it with age -d -i KEYFILE first",
            )
        if len(stanzas) != 1:
            raise AgeError("the age header is damaged: a passphrase stanza must be its only recipient")
        args, body = stanzas[0]
        if len(args) != 3 or not re.fullmatch(rb"[1-9][0-9]?", args[2]):
            raise AgeError("the age header is damaged: a bad scrypt stanza")
        salt = _unb64(args[1], "the scrypt salt")
        log_n = int(args[2])
        if len(salt) != 16 or len(body) != 32:
            raise AgeError("the age header is damaged: a bad scrypt stanza")
        if log_n > max_work_factor:
            raise AgeError(
                f"the age file asks for scrypt work factor {log_n}, more than the {max_work_factor} snapgit allows",
                hint="decrypt it with age -d first",
            )
        try:
            file_key = ChaCha20Poly1305(_scrypt(passphrase, salt, log_n)).decrypt(bytes(12), body, None)
        except InvalidTag:
            raise WrongPassphraseError("wrong passphrase (or the file's header is damaged)") from None
        if not hmac.compare_digest(_header_mac(file_key, signed), mac):
            raise AgeError("the age header is damaged or was changed: its MAC does not match")
        return file_key

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        from cryptography.exceptions import InvalidTag

        data = self._pending + self._read(CHUNK + TAG - len(self._pending))
        self._pending = b""
        if len(data) == CHUNK + TAG:
            self._pending = self._read(1)
            last = not self._pending
        else:
            last = True
        where = f"chunk {self._counter + 1} (at byte {self._counter * (CHUNK + TAG):,} of the payload)"
        if len(data) < TAG:
            raise AgeError(f"the encrypted data is truncated: {where} is cut off")
        try:
            plain = self._aead.decrypt(_chunk_nonce(self._counter, last), data, None)
        except InvalidTag:
            raise AgeError(
                f"the encrypted data fails authentication at {where}: the file is damaged, truncated or was changed"
            ) from None
        if last and not plain and self._counter > 0:
            raise AgeError("the encrypted data is damaged: an empty last chunk")
        self._counter += 1
        self._plain, self._pos, self._eof = plain, 0, last

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while self._pos >= len(self._plain):
            if self._eof:
                return 0
            self._next_chunk()
        n = min(len(view), len(self._plain) - self._pos)
        view[:n] = self._plain[self._pos : self._pos + n]
        self._pos += n
        return n
