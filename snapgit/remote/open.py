"""From a remote's URL to its back end, and the check that a server keeps conditional writes.

A URL is ``s3://bucket/prefix``, ``file:///path`` or a plain directory path. :func:`open_remote` is
the one place a remote is opened: whoever needs to add a layer (encryption) wraps this function.
:func:`snapgit.ops.remotes.connect_url` does, with :func:`snapgit.remote.encrypted.unlock`: a
remote that holds keys is read and written through an :class:`EncryptedRemote`. What this
function returns is the raw store, as the server holds it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from snapgit.remote.base import RemoteExists, RemoteStore, RemoteUnsupported, RemoteUrlError

__all__ = ["open_remote", "normalize_url", "probe_conditional_writes", "PROBE_PREFIX"]

PROBE_PREFIX = "probe/"


def normalize_url(url: str, cwd: Path | None = None) -> str:
    """The URL as it is kept in the config: an absolute path for a directory, ``s3://bucket/prefix``
    with no trailing slash for S3. Raises :class:`RemoteUrlError` for a URL snapgit cannot use."""
    url = url.strip()
    if not url:
        raise RemoteUrlError("empty remote URL", hint="give a directory, file:///path or s3://bucket/prefix")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        bucket = parts.netloc
        if not bucket or len(bucket) < 3:
            raise RemoteUrlError(f"{url!r}: no bucket name", hint="write it as s3://bucket/prefix")
        if "@" in bucket or parts.query or parts.password:
            raise RemoteUrlError(
                f"{url!r}: credentials and options do not go in the URL",
                hint="set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL in the environment",
            )
        prefix = parts.path.strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise RemoteUrlError(f"{url!r}: a file URL names a local path", hint="write it as file:///absolute/path")
        return str(Path(unquote(parts.path)).resolve())
    if scheme and len(scheme) > 1:  # "c:" would be a Windows drive
        raise RemoteUrlError(
            f"unsupported remote URL {url!r}",
            hint="a remote is a directory path, file:///path or s3://bucket/prefix",
        )
    return str(((cwd or Path.cwd()) / Path(url).expanduser()).resolve())


def open_remote(url: str, options: Mapping[str, Any] | None = None) -> RemoteStore:
    """The back end for a remote's (normalized) URL. ``options`` are the remote's other settings
    in the config (none are used here yet; a wrapper may read its own)."""
    url = normalize_url(url)
    if url.startswith("s3://"):
        from snapgit.remote.s3 import S3Remote

        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3Remote(bucket, prefix, url=url)
    from snapgit.remote.directory import DirRemote

    return DirRemote(Path(url), url)


def probe_conditional_writes(remote: RemoteStore) -> None:
    """Create a scratch key twice with a create-only write, and remove it. A server that lets the
    second write through ignores ``If-None-Match`` (so it would ignore ``If-Match`` too), and two
    pushes could then both move a ref: :class:`RemoteUnsupported`."""
    key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    remote.put_new(key, b"probe 1\n")
    try:
        try:
            remote.put_new(key, b"probe 2\n")
        except RemoteExists:
            return
        raise RemoteUnsupported(
            f"{remote.url} ignores conditional writes (a second create-only write of one key succeeded)",
            hint="use a server that honours If-None-Match and If-Match (AWS S3, MinIO, SeaweedFS, R2), or a directory",
        )
    finally:
        remote.delete(key)
