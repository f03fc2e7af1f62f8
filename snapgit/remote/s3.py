"""A remote in an S3 bucket (AWS, MinIO, SeaweedFS, Ceph RGW, R2, GCS's S3 API), through obstore.

``s3://bucket/prefix``: every key lives under ``prefix/`` in ``bucket``. Credentials, region and
endpoint come from the usual environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``), else from the profile named by
``AWS_PROFILE`` in the AWS tools' shared files; nothing of them is stored or printed.
An ``http://`` endpoint (a server on the local network) is allowed.

``put_new`` is a PUT with ``If-None-Match: *`` and ``put_if`` one with ``If-Match: <etag>``,
both single-part (obstore never splits a conditional put); the server answers 412 to the loser.
A server that ignores those headers is found by :func:`snapgit.remote.open.probe_conditional_writes`
before anything is pushed to it.

obstore is imported when a remote is opened, not when snapgit starts: most commands never use one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from snapgit.remote.base import (
    RemoteAccessDenied,
    RemoteConflict,
    RemoteError,
    RemoteExists,
    RemoteMissing,
    RemoteNoBucket,
    RemoteUnreachable,
)

__all__ = ["S3Remote", "profile_settings"]

_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (and AWS_ENDPOINT_URL for a server other than AWS)"
)


class S3Remote:
    def __init__(self, bucket: str, prefix: str = "", *, url: str | None = None) -> None:
        from obstore.store import S3Store

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = url or f"s3://{bucket}/{self.prefix}".rstrip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        config: dict[str, Any] = profile_settings()
        if endpoint:
            config["endpoint"] = endpoint
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or config.get("region")):
            config["region"] = "us-east-1"
        client: dict[str, Any] = {"connect_timeout": timedelta(seconds=5), "timeout": timedelta(seconds=120)}
        if endpoint and endpoint.startswith("http://"):
            client["allow_http"] = True
        try:
            self._store = S3Store(
                bucket,
                prefix=self.prefix or None,
                config=config,  # type: ignore[arg-type]  # a TypedDict built key by key
                client_options=client,  # type: ignore[arg-type]
                retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=15)},
            )
        except Exception as exc:
            raise RemoteError(f"cannot use {self.url}: {_why(exc)}", hint=_CREDENTIALS_HINT) from exc

    # -- errors

    def _error(self, exc: Exception, key: str) -> RemoteError:
        """The snapgit error for an obstore error (whose text names the HTTP status)."""
        from obstore import exceptions as obx

        text = _why(exc)
        if isinstance(exc, obx.NotFoundError | FileNotFoundError):
            if "NoSuchBucket" in str(exc):
                return self._no_bucket()
            return RemoteMissing(f"{self.url}: no {key}")
        if isinstance(exc, obx.AlreadyExistsError):
            return RemoteExists(f"{self.url}: {key} exists")
        if isinstance(exc, obx.PreconditionError):
            return RemoteConflict(f"{self.url}: {key} changed since it was read")
        if isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError) or _any(
            str(exc), "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden"
        ):
            return RemoteAccessDenied(f"{self.url}: access denied ({_status(exc) or text})", hint=_CREDENTIALS_HINT)
        if "NoSuchBucket" in str(exc):
            return self._no_bucket()
        if _any(str(exc), "error sending request", "Connection refused", "dns error", "timed out", "connect"):
            where = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
            return RemoteUnreachable(
                f"{self.url}: the server at {where} does not answer",
                hint="check AWS_ENDPOINT_URL and the network, then retry",
            )
        return RemoteError(f"{self.url}: {text}")

    def _no_bucket(self) -> RemoteNoBucket:
        return RemoteNoBucket(
            f"bucket {self.bucket!r} does not exist at {self.url}",
            hint="create the bucket first, or check the URL (snap remote list)",
        )

    # -- reading

    def get(self, key: str) -> bytes:
        import obstore

        try:
            return obstore.get(self._store, key).bytes().to_bytes()
        except Exception as exc:
            raise self._error(exc, key) from exc

    def get_range(self, key: str, start: int, end: int) -> bytes:
        import obstore

        if end <= start:
            return b""
        try:
            return obstore.get_range(self._store, key, start=start, end=end).to_bytes()
        except Exception as exc:
            raise self._error(exc, key) from exc

    def head(self, key: str) -> tuple[int, str] | None:
        import obstore

        try:
            meta = obstore.head(self._store, key)
        except Exception as exc:
            err = self._error(exc, key)
            if type(err) is RemoteMissing:
                return None
            raise err from exc
        return meta["size"], meta["e_tag"] or ""

    def list(self, prefix: str) -> Iterator[str]:
        import obstore

        try:
            for batch in obstore.list(self._store, prefix or None, chunk_size=1000):
                for meta in batch:
                    yield meta["path"]
        except Exception as exc:
            raise self._error(exc, prefix) from exc

    # -- writing

    def put(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._store, key, data)
        except Exception as exc:
            raise self._error(exc, key) from exc

    def put_new(self, key: str, data: bytes) -> str:
        import obstore

        try:
            return obstore.put(self._store, key, data, mode="create")["e_tag"] or ""
        except Exception as exc:
            raise self._error(exc, key) from exc

    def put_if(self, key: str, data: bytes, etag: str) -> str:
        import obstore

        try:
            return obstore.put(self._store, key, data, mode={"e_tag": etag})["e_tag"] or ""
        except Exception as exc:
            err = self._error(exc, key)
            if type(err) is RemoteMissing:  # the key is gone: it changed since it was read
                err = RemoteConflict(f"{self.url}: {key} changed since it was read")
            raise err from exc

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, key)
        except Exception as exc:
            err = self._error(exc, key)
            if type(err) is not RemoteMissing:
                raise err from exc


def _any(text: str, *needles: str) -> bool:
    return any(n in text for n in needles)


def profile_settings() -> dict[str, str]:
    """Credentials and region of the AWS profile (``AWS_PROFILE``, else ``default``) from the
    shared files (``~/.aws/credentials`` and ``~/.aws/config``, or ``AWS_SHARED_CREDENTIALS_FILE``
    and ``AWS_CONFIG_FILE``), as the AWS tools read them; obstore reads only the variables.
    Nothing when ``AWS_ACCESS_KEY_ID`` is set: the environment wins, as with the AWS CLI."""
    import configparser

    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return {}
    profile = os.environ.get("AWS_PROFILE") or "default"
    out: dict[str, str] = {}
    home = os.path.expanduser("~")
    files = (
        (os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"), profile),
        (os.environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"), _config_section(profile)),
    )
    keys = {
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
        "aws_session_token": "session_token",
        "region": "region",
    }
    for path, section in files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        if parser.has_section(section):
            for key, ours in keys.items():
                value = parser.get(section, key, fallback=None)
                if value and ours not in out:
                    out[ours] = value.strip()
    return out


def _config_section(profile: str) -> str:
    return "default" if profile == "default" else f"profile {profile}"


def _status(exc: BaseException) -> str | None:
    """The HTTP status an obstore error names ("403 Forbidden"), if any."""
    m = re.search(r"status code: (\d{3} [A-Za-z ]+)", str(exc))
    return m.group(1).strip() if m else None


def _why(exc: BaseException) -> str:
    """The first line of an obstore error, which is long and multi-line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
