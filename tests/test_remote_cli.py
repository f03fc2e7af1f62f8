"""The remote commands through the real `snap` in a subprocess: what a user sees, and that every
error they can hit is one line with a hint, a non-zero exit, no traceback, and changes nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import IN_CI, make_bucket
from remotekit import ConditionIgnoringProxy, change, fingerprint, make_db, make_store


def snap(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def ok(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = snap(cwd, *args, env=env)
    assert proc.returncode == 0, f"snap {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str, code: int = 1) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    make_store(tmp_path / "a").close()
    return tmp_path / "a"


def test_round_trip_through_the_cli(store: Path, tmp_path: Path, remote_url: str) -> None:
    ok(store, "remote", "add", "origin", remote_url)
    assert json.loads(ok(store, "remote", "list", "--json")) == [
        {
            "name": "origin",
            "url": remote_url if "://" in remote_url else str(Path(remote_url).resolve()),
            "encrypted": False,
        }
    ]
    pushed = json.loads(ok(store, "push", "--json"))
    assert pushed["updates"][0]["status"] == "new" and pushed["bytes_sent"] > 0
    assert "[up to date]" in ok(store, "push")
    cloned = json.loads(ok(tmp_path, "clone", remote_url, "b", "--db", "b/copy.sqlite", "--restore", "--json"))
    assert cloned["branch"] == "main" and cloned["restore"]["tables"]["items"]["to_add"] == 2000
    clone_dir = tmp_path / "b"
    assert "clean" in ok(clone_dir, "status")
    change(clone_dir / "copy.sqlite", "DELETE FROM items WHERE id < 10")
    ok(clone_dir, "commit", "-m", "fewer items")
    ok(clone_dir, "push")
    pulled = json.loads(ok(store, "pull", "--strategy", "backup_wins", "--json"))
    assert pulled["merge"]["tables"]["items"]["to_delete"] == 10
    refs = json.loads(ok(store, "ls-remote", "--json"))["refs"]
    head = json.loads(ok(store, "log", "--json", "-n", "1"))[0]
    assert refs["refs/heads/main"] in (head["id"], *head["parents"])
    assert json.loads(ok(store, "verify", "--remote", "origin", "--read-data", "--json"))["ok"]
    fetched = json.loads(ok(store, "fetch", "--json"))
    assert fetched["packs_received"] == 0
    ok(store, "remote", "remove", "origin")
    assert "no remotes" in ok(store, "remote", "list")
    assert not (store / ".snapstore" / "refs" / "remotes" / "origin").exists() or not any(
        (store / ".snapstore" / "refs" / "remotes" / "origin").iterdir()
    )


def test_unknown_remote(store: Path) -> None:
    before = fingerprint(store)
    for args in (["push", "nope"], ["fetch", "nope"], ["ls-remote", "nope"], ["verify", "--remote", "nope"]):
        assert_one_line_error(snap(store, *args), "unknown remote 'nope'")
    assert_one_line_error(snap(store, "push"), "no remote is configured")
    assert fingerprint(store) == before


def test_bad_urls_and_missing_places(store: Path, tmp_path: Path, s3_endpoint: str) -> None:
    before = fingerprint(store)
    assert_one_line_error(snap(store, "remote", "add", "x", "http://example.com/r"), "unsupported remote URL")
    assert_one_line_error(snap(store, "remote", "add", "x", str(tmp_path / "no" / "such" / "dir")), "does not exist")
    assert_one_line_error(snap(store, "remote", "add", "x", "s3://no-such-bucket-here/p"), "bucket", "does not exist")
    assert_one_line_error(snap(store, "remote", "add", "bad name", str(tmp_path)), "invalid remote name")
    assert fingerprint(store) == before


def test_unreachable_endpoint(store: Path, s3_endpoint: str) -> None:
    before = fingerprint(store)
    started = time.monotonic()
    dead = snap(store, "remote", "add", "x", "s3://bucket/p", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert_one_line_error(dead, "does not answer")
    assert time.monotonic() - started < 30
    assert fingerprint(store) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def strict_s3() -> Iterator[str]:
    """A second moto server, in its own process, that checks credentials (none are known to it)."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            if IN_CI:
                pytest.fail("moto.server did not start")
            pytest.skip("moto.server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_bad_credentials(store: Path, strict_s3: str) -> None:
    before = fingerprint(store)
    env = {"AWS_ENDPOINT_URL": strict_s3, "AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wrong"}
    denied = snap(store, "remote", "add", "x", "s3://bucket/p", env=env)
    assert_one_line_error(denied, "access denied")
    assert "AWS_ACCESS_KEY_ID" in denied.stderr and "wrong" not in denied.stderr
    assert fingerprint(store) == before


def test_a_server_ignoring_conditional_writes_is_refused(store: Path, s3_endpoint: str) -> None:
    bucket = make_bucket(s3_endpoint)
    proxy = ConditionIgnoringProxy(s3_endpoint)
    try:
        before = fingerprint(store)
        refused = snap(store, "remote", "add", "x", f"s3://{bucket}/p", env={"AWS_ENDPOINT_URL": proxy.url})
        assert_one_line_error(refused, "ignores conditional writes")
        assert fingerprint(store) == before
        # the same bucket straight from the server is fine
        ok(store, "remote", "add", "x", f"s3://{bucket}/p")
    finally:
        proxy.close()


def test_rejected_non_fast_forward(store: Path, tmp_path: Path, remote_url: str) -> None:
    ok(store, "remote", "add", "origin", remote_url)
    ok(store, "push")
    ok(tmp_path, "clone", remote_url, "b")
    make_db(tmp_path / "b" / "other.sqlite", rows=5)
    ok(tmp_path / "b", "commit", "-m", "theirs", "--db", "other.sqlite")
    ok(tmp_path / "b", "push")
    change(store / "db.sqlite", "UPDATE items SET price = 1 WHERE id = 3")
    ok(store, "commit", "-m", "ours")
    before = fingerprint(store)
    assert_one_line_error(snap(store, "push"), "rejected", "fetch first")
    assert fingerprint(store) == before
    assert "[forced]" in ok(store, "push", "--force")


def test_credentials_from_an_aws_profile(store: Path, tmp_path: Path, s3_endpoint: str) -> None:
    (tmp_path / "credentials").write_text("[snap]\naws_access_key_id = fromprofile\naws_secret_access_key = s3cr3t\n")
    (tmp_path / "config").write_text("[profile snap]\nregion = eu-west-1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    env |= {
        "AWS_PROFILE": "snap",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }
    bucket = make_bucket(s3_endpoint)
    proc = subprocess.run(
        [sys.executable, "-m", "snapgit.cli", "remote", "add", "origin", f"s3://{bucket}/p"],
        cwd=store,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t" not in (store / ".snapstore" / "config.toml").read_text()

    from snapgit.remote.s3 import profile_settings

    os.environ.update({k: env[k] for k in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")})
    try:
        saved = os.environ.pop("AWS_ACCESS_KEY_ID")
        try:
            assert profile_settings() == {
                "access_key_id": "fromprofile",
                "secret_access_key": "s3cr3t",
                "region": "eu-west-1",
            }
        finally:
            os.environ["AWS_ACCESS_KEY_ID"] = saved
        assert profile_settings() == {}  # the environment's keys win
    finally:
        for k in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
            os.environ.pop(k, None)
