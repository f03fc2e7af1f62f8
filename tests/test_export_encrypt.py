"""``snap export --encrypt`` and the import of what it writes, through the real ``snap`` command:
the same snapshot comes back, the file holds no plaintext, ``age`` reads it, and a wrong, missing
or mistyped passphrase or a changed byte is one clear error that changes nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from snapgit.exchange.agefile import MAGIC, AgeReader
from snapgit.repo import Repo
from snapgit.store.history import read_commit
from terminal import age_binary, on_terminal
from test_cli import make_shop

PASS = "tangerine anvil 42"
SNAP = [sys.executable, "-m", "snapgit.cli"]
# what the shop database holds, none of which may appear in an encrypted file
SECRETS = [b"customers", b"orders", b"customer_id", b"c17@example.com", b"customer 17", b"tags", b"quarterly close"]


def run(cwd: Path, *args: str, passphrase: str | None = PASS, extra: dict[str, str] | None = None):
    """``snap`` with no terminal (stdin is /dev/null) and the passphrase, if any, in SNAP_PASSPHRASE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAP_PASSPHRASE", "SNAP_DATABASE", "DATABASE"))}
    if passphrase is not None:
        env["SNAP_PASSPHRASE"] = passphrase
    env.update(extra or {})
    return subprocess.run(
        [*SNAP, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def refused(proc: subprocess.CompletedProcess, *expected: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and 1 <= len(lines) <= 2, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr


def listing(store: Path) -> dict[str, bytes]:
    """Every file of the store but the audit log (which records the refusal), with its bytes."""
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "oplog.jsonl"
    }


def head_tree(d: Path, rev: str = "HEAD") -> bytes:
    repo = Repo.open(d)
    try:
        return read_commit(repo.objects, repo.resolve(rev)).tree
    finally:
        repo.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("encrypted")
    make_shop(d / "shop.db")
    con = sqlite3.connect(d / "shop.db")  # enough rows that every file is many 64 KiB chunks
    con.executemany(
        "INSERT INTO orders VALUES (?,?,?,?)", [(i, i % 50 + 1, f"{i}.25", f"note {i}") for i in range(201, 4001)]
    )
    con.commit()
    con.close()
    ok(run(d, "init", "--db", "shop.db"))
    ok(run(d, "commit", "-m", "quarterly close"))
    (d / "pass.txt").write_text(PASS + "\n")
    ok(run(d, "export", "HEAD", "-o", "plain.json"))
    ok(run(d, "export", "HEAD", "-o", "plain.sql", "--format", "sql"))
    ok(run(d, "export", "HEAD", "-o", "enc.json.age", "--encrypt"))
    from_file = {"SNAP_PASSPHRASE_FILE": str(d / "pass.txt")}
    ok(run(d, "export", "HEAD", "-o", "enc.json.zst.age", "--encrypt", passphrase=None, extra=from_file))
    ok(run(d, "export", "HEAD", "-o", "enc.sql.age", "--encrypt", "--format", "sql"))
    return d


@pytest.fixture
def work(project: Path, tmp_path: Path) -> Path:
    """A copy of the project (its config pointing at the copy's database), without the exports."""
    w = tmp_path / "work"
    shutil.copytree(project, w, ignore=shutil.ignore_patterns("enc*", "plain*"))
    config = w / ".snapstore" / "config.toml"
    config.write_text(config.read_text().replace(str(project), str(w)))
    return w


def test_encrypted_exports_are_age_files_without_plaintext(project: Path) -> None:
    plain = (project / "plain.json").read_bytes()
    for secret in SECRETS[:-1]:
        assert secret in plain or secret in (project / "shop.db").read_bytes(), secret  # the check can fail
    commit = json.loads(plain.split(b"\n")[0][len('{"metadata":') : -1])["commit"]
    for name in ("enc.json.age", "enc.json.zst.age", "enc.sql.age"):
        raw = (project / name).read_bytes()
        assert raw.startswith(MAGIC), name
        for secret in [*SECRETS, commit.encode(), commit[:12].encode(), b"snapgit", b"INSERT"]:
            assert secret not in raw, (name, secret)
    # compressed before it was encrypted: encrypted bytes would not compress
    assert (project / "enc.json.zst.age").stat().st_size < (project / "enc.json.age").stat().st_size / 2


@pytest.mark.parametrize("name", ["enc.json.age", "enc.json.zst.age"])
def test_an_encrypted_export_imports_as_the_same_snapshot(project: Path, work: Path, name: str) -> None:
    shutil.copy(project / name, work / name)
    proc = ok(run(work, "import", name, "--branch", "restored", "--json"))
    assert json.loads(proc.stdout)["rows"] == {"customers": 50, "orders": 4000, "tags": 3}
    assert head_tree(work, "restored") == head_tree(project)


def test_the_age_tool_decrypts_an_export_that_snap_imports(project: Path, work: Path) -> None:
    age = age_binary()
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "TERM": "dumb"}
    status, shown = on_terminal(
        [age, "-d", "-o", "by-age.json", str(project / "enc.json.age")], [PASS], cwd=str(work), env=env
    )
    assert status == 0, shown
    ok(run(work, "import", "by-age.json", "--branch", "via-age", passphrase=None))
    assert head_tree(work, "via-age") == head_tree(project)


def test_an_encrypted_sql_export_is_the_plain_one_and_loads_into_sqlite(project: Path, tmp_path: Path) -> None:
    with open(project / "enc.sql.age", "rb") as raw:
        script = io.TextIOWrapper(io.BufferedReader(AgeReader(raw, PASS)), encoding="utf-8").read()
    plain = (project / "plain.sql").read_text(encoding="utf-8")
    # the same statements; only the first comment line's time of export differs
    assert script.split("\n")[1:] == plain.split("\n")[1:] and len(script) > 2 * 65536
    loaded = sqlite3.connect(tmp_path / "loaded.db")
    loaded.executescript(script)
    counts = {t: loaded.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("customers", "orders", "tags")}
    assert counts == {"customers": 50, "orders": 4000, "tags": 3}
    loaded.close()


def test_a_wrong_passphrase_is_one_line_and_imports_nothing(project: Path, work: Path) -> None:
    shutil.copy(project / "enc.json.zst.age", work / "backup.age")
    before = listing(work / ".snapstore")
    refused(run(work, "import", "backup.age", passphrase="tangerine anvil 43"), "wrong passphrase", "nothing imported")
    assert listing(work / ".snapstore") == before


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_changed_encrypted_file_is_refused_and_imports_nothing(project: Path, work: Path, damage: str) -> None:
    data = bytearray((project / "enc.json.age").read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x20
    else:
        del data[-100:]
    (work / "backup.age").write_bytes(bytes(data))
    before = listing(work / ".snapstore")
    refused(run(work, "import", "backup.age"), "fails authentication", "nothing imported")
    assert listing(work / ".snapstore") == before


def test_no_passphrase_anywhere_is_one_clear_error(project: Path, work: Path) -> None:
    refused(
        run(work, "export", "HEAD", "-o", "x.json.age", "--encrypt", passphrase=None),
        "no passphrase",
        "SNAP_PASSPHRASE",
    )
    assert not (work / "x.json.age").exists()
    shutil.copy(project / "enc.json.age", work / "backup.age")
    before = listing(work / ".snapstore")
    refused(run(work, "import", "backup.age", passphrase=None), "no passphrase")
    assert listing(work / ".snapstore") == before
    missing = {"SNAP_PASSPHRASE_FILE": str(work / "nope.txt")}
    refused(run(work, "import", "backup.age", passphrase=None, extra=missing), "nope.txt")


def test_csv_cannot_be_encrypted(work: Path) -> None:
    refused(run(work, "export", "HEAD", "-o", "out-csv", "--format", "csv", "--encrypt"), "CSV export is a directory")
    # refused before any passphrase is looked for
    refused(run(work, "export", "HEAD", "-o", "out-csv", "--format", "csv", "--encrypt", passphrase=None), "CSV")
    assert not (work / "out-csv").exists()


def test_the_passphrase_is_typed_twice_on_a_terminal(project: Path, work: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAP_PASSPHRASE")}
    argv = [*SNAP, "export", "HEAD", "-o", "typed.json.age", "--encrypt"]
    status, shown = on_terminal(argv, [PASS, PASS + "!"], cwd=str(work), env=env)
    assert status == 1 and "do not match" in shown, shown
    assert not (work / "typed.json.age").exists()
    status, shown = on_terminal(argv, [PASS, PASS], cwd=str(work), env=env)
    assert status == 0, shown
    assert PASS not in shown  # not echoed
    # an export that cannot be written is refused before anyone types a passphrase for it
    status, shown = on_terminal(argv, [], cwd=str(work), env=env, timeout=60)
    assert status == 1 and "exists already" in shown and "assphrase" not in shown, shown
    unknown = [*SNAP, "export", "no-such-rev", "-o", "other.json.age", "--encrypt"]
    status, shown = on_terminal(unknown, [], cwd=str(work), env=env, timeout=60)
    assert status == 1 and "no-such-rev" in shown and "assphrase" not in shown, shown
    ok(run(work, "import", "typed.json.age", "--branch", "typed"))
    assert head_tree(work, "typed") == head_tree(project)


def test_a_plain_import_never_asks_for_a_passphrase(project: Path, work: Path) -> None:
    def never(confirm: bool) -> str:
        raise AssertionError("asked for a passphrase to import a plain file")

    repo = Repo.open(work)
    try:
        result = repo.import_file(project / "plain.json", branch="plain", passphrase=never)
        assert read_commit(repo.objects, result["commit"]).tree == head_tree(project)
        result = repo.import_file(project / "enc.json.age", branch="api", passphrase=lambda confirm: PASS)
        assert read_commit(repo.objects, result["commit"]).tree == head_tree(project)
    finally:
        repo.close()
