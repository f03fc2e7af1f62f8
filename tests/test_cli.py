"""The `snap` command, run for real in a subprocess against real SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SNAP = [sys.executable, "-m", "snapgit.cli"]


def snap(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SNAP_DATABASE_URL", "DATABASE_URL")}
    full_env.update(env or {})
    proc = subprocess.run([*SNAP, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"snap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_shop(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, created_at DATETIME);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                             amount NUMERIC(10,2), note TEXT);
        CREATE TABLE tags (label TEXT);
        """
    )
    con.executemany(
        "INSERT INTO customers VALUES (?,?,?,?)",
        [(i, f"customer {i}", f"c{i}@example.com", f"2024-01-{i % 28 + 1:02d} 10:00:00") for i in range(1, 51)],
    )
    con.executemany("INSERT INTO orders VALUES (?,?,?,?)", [(i, i % 50 + 1, f"{i}.50", None) for i in range(1, 201)])
    con.executemany("INSERT INTO tags VALUES (?)", [("a",), ("b",), ("a",)])
    con.commit()
    con.close()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    return tmp_path


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr


def test_init_creates_private_store(shop: Path) -> None:
    store = shop / ".snapstore"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert (store / "VERSION").read_text() == "snapgit store 3\n"
    assert "shop.db" in (store / "config.toml").read_text()


def test_init_twice_refuses(shop: Path) -> None:
    proc = snap(shop, "init", "--db", "shop.db", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "already exists" in proc.stderr


def test_commit_log_show_roundtrip(shop: Path) -> None:
    first = snap(shop, "commit", "-m", "first", "--json")
    doc = json.loads(first.stdout)
    assert doc["tables"]["customers"]["rows"] == 50
    assert doc["tables"]["orders"]["rows"] == 200
    assert doc["tables"]["tags"]["rows"] == 3
    assert doc["branch"] == "main" and doc["parent"] is None

    again = snap(shop, "commit", "-m", "again")
    assert "nothing to commit" in again.stdout

    con = sqlite3.connect(shop / "shop.db")
    con.execute("UPDATE orders SET note = 'gift' WHERE id = 7")
    con.commit()
    con.close()
    second = json.loads(snap(shop, "commit", "-m", "second", "--json").stdout)
    assert second["parent"] == doc["commit"]
    assert second["tables"]["orders"]["changed"] and not second["tables"]["customers"]["changed"]
    assert second["tables"]["orders"]["records_written"] == 1

    log = json.loads(snap(shop, "log", "--json").stdout)
    assert [c["message"] for c in log] == ["second", "first"]
    assert log[0]["parents"] == [doc["commit"]]
    oneline = snap(shop, "log", "--oneline").stdout.splitlines()
    assert oneline[0].startswith(second["commit"][:12]) and "HEAD -> main" in oneline[0]

    shown = json.loads(snap(shop, "show", "HEAD~1", "--json").stdout)
    assert shown["id"] == doc["commit"]
    assert shown["tables"]["tags"]["key"] is None
    assert shown["tables"]["orders"]["key"] == ["id"]
    cols = {c["name"]: c["type"] for c in shown["tables"]["orders"]["schema"]["columns"]}
    assert cols["amount"].startswith("numeric")

    prefix = json.loads(snap(shop, "show", doc["commit"][:8], "--json").stdout)
    assert prefix["id"] == doc["commit"]


def test_allow_empty(shop: Path) -> None:
    snap(shop, "commit", "-m", "one")
    proc = json.loads(snap(shop, "commit", "-m", "two", "--allow-empty", "--json").stdout)
    assert proc["commit"] is not None
    assert len(json.loads(snap(shop, "log", "--json").stdout)) == 2


def test_branch_tag_cat_object(shop: Path) -> None:
    c1 = json.loads(snap(shop, "commit", "-m", "one", "--json").stdout)["commit"]
    snap(shop, "branch", "feature")
    snap(shop, "tag", "v1", "-m", "release one")
    snap(shop, "tag", "light")
    branches = json.loads(snap(shop, "branch", "--json").stdout)
    assert {b["name"]: (b["commit"], b["current"]) for b in branches} == {
        "feature": (c1, False),
        "main": (c1, True),
    }
    assert json.loads(snap(shop, "show", "v1", "--json").stdout)["id"] == c1
    assert json.loads(snap(shop, "show", "light", "--json").stdout)["id"] == c1
    obj = json.loads(snap(shop, "cat-object", c1).stdout)
    assert obj["kind"] == "commit" and obj["content"]["message"] == "one"
    tree = json.loads(snap(shop, "cat-object", obj["content"]["tree"]).stdout)
    assert set(tree["content"]) == {"customers", "orders", "tags"}
    snap(shop, "branch", "-d", "feature")
    assert [b["name"] for b in json.loads(snap(shop, "branch", "--json").stdout)] == ["main"]
    bad = snap(shop, "branch", "-d", "main", check=False)
    assert bad.returncode == 1 and "HEAD is on it" in bad.stderr


def test_tables_option_keeps_other_tables(shop: Path) -> None:
    snap(shop, "commit", "-m", "all")
    con = sqlite3.connect(shop / "shop.db")
    con.execute("DELETE FROM orders WHERE id > 100")
    con.execute("UPDATE customers SET name = 'x' WHERE id = 1")
    con.commit()
    con.close()
    doc = json.loads(snap(shop, "commit", "-m", "orders only", "--tables", "orders", "--json").stdout)
    assert list(doc["tables"]) == ["orders"]
    shown = json.loads(snap(shop, "show", "--json").stdout)
    assert shown["tables"]["orders"]["rows"] == 100
    assert shown["tables"]["customers"]["rows"] == 50  # kept from the parent
    # the change to customers is still uncommitted
    doc = json.loads(snap(shop, "commit", "-m", "rest", "--json").stdout)
    assert doc["tables"]["customers"]["changed"]


def test_C_option(shop: Path, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    doc = json.loads(snap(elsewhere, "-C", str(shop), "commit", "-m", "from afar", "--json").stdout)
    assert doc["commit"]


def test_oplog_records_commits(shop: Path) -> None:
    snap(shop, "commit", "-m", "one")
    snap(shop, "commit", "-m", "two")
    (shop / "shop.db").unlink()
    snap(shop, "commit", "-m", "three", check=False)
    lines = [json.loads(x) for x in snap(shop, "oplog", "--json").stdout.splitlines()]
    assert [e["op"] for e in lines] == ["commit", "commit", "commit"]
    assert lines[0]["ok"] and lines[0]["result"]["commit"]
    assert lines[1]["ok"] and lines[1]["result"]["commit"] is None
    assert not lines[2]["ok"] and lines[2]["error"]


# --- errors: one line, non-zero, no traceback, nothing changed -----------------------------------


def test_not_in_a_store(tmp_path: Path) -> None:
    proc = snap(tmp_path, "log", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "not inside a snapgit store" in proc.stderr


def test_bad_url_creates_nothing(tmp_path: Path) -> None:
    proc = snap(tmp_path, "init", "--db", "nosuchdriver://x/y", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert not (tmp_path / ".snapstore").exists()


def test_missing_sqlite_file(tmp_path: Path) -> None:
    proc = snap(tmp_path, "init", "--db", "missing.db", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "missing.db" in proc.stderr
    assert not (tmp_path / ".snapstore").exists()


def test_unreachable_server_and_password_never_shown(tmp_path: Path) -> None:
    proc = snap(tmp_path, "init", "--db", "postgresql://bob:s3cr3t@127.0.0.1:1/x", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "s3cr3t" not in proc.stderr + proc.stdout
    assert not (tmp_path / ".snapstore").exists()


def test_empty_database(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()
    snap(tmp_path, "init", "--db", "empty.db")
    proc = snap(tmp_path, "commit", "-m", "x", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "no tables" in proc.stderr
    assert snap(tmp_path, "log", check=False).returncode == 1


def test_unknown_revision_and_table(shop: Path) -> None:
    snap(shop, "commit", "-m", "one")
    proc = snap(shop, "show", "nosuchthing", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "unknown revision 'nosuchthing'" in proc.stderr
    proc = snap(shop, "show", "HEAD~5", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    proc = snap(shop, "commit", "-m", "x", "--tables", "nosuchtable", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "nosuchtable" in proc.stderr


def test_unknown_store_version_refuses(shop: Path) -> None:
    (shop / ".snapstore" / "VERSION").write_text("snapgit store 99\n")
    proc = snap(shop, "log", check=False)
    assert proc.returncode == 3
    no_traceback(proc)
    assert "format" in proc.stderr


def test_locked_ref(shop: Path) -> None:
    snap(shop, "commit", "-m", "one")
    lock = shop / ".snapstore" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    con = sqlite3.connect(shop / "shop.db")
    con.execute("DELETE FROM tags")
    con.commit()
    con.close()
    before = (shop / ".snapstore" / "refs" / "heads" / "main").read_text()
    proc = snap(shop, "commit", "-m", "two", check=False, env={"SNAP_LOCK_TIMEOUT": "0.2"})
    assert proc.returncode == 4
    no_traceback(proc)
    assert "locked" in proc.stderr
    assert (shop / ".snapstore" / "refs" / "heads" / "main").read_text() == before
    unlocked = snap(shop, "unlock")
    assert "removed refs/heads/main.lock" in unlocked.stdout and "warning" in unlocked.stderr
    assert not lock.exists()
    snap(shop, "commit", "-m", "two")


def test_debug_shows_traceback(tmp_path: Path) -> None:
    proc = snap(tmp_path, "--debug", "log", check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_concurrent_commits_lose_nothing(shop: Path) -> None:
    snap(shop, "commit", "-m", "base")
    n = 4
    env = {k: v for k, v in os.environ.items() if k not in ("SNAP_DATABASE_URL", "DATABASE_URL")}
    procs = [
        subprocess.Popen(
            [*SNAP, "commit", "--allow-empty", "-m", f"c{i}"],
            cwd=shop,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _o, _e, rc in results), results
    log = json.loads(snap(shop, "log", "--json").stdout)
    assert sorted(c["message"] for c in log) == sorted(["base"] + [f"c{i}" for i in range(n)])
    # a straight chain: every commit's parent is the next one in the log
    for newer, older in zip(log, log[1:], strict=False):
        assert newer["parents"] == [older["id"]]


_FROZEN_AT_EXIT = """
import atexit, gc, sys
# registered before snap's own exit handlers, so it runs after them
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
from snapgit.cli.app import main
sys.argv = ["snap", *sys.argv[1:]]
main()
"""


def test_objects_left_at_exit_are_frozen_out_of_the_final_collections(shop: Path) -> None:
    # the collections the interpreter runs while it tears its modules down cost a commit
    # 90-130 ms; snap closes everything before a command returns, so it freezes what is left
    snap(shop, "commit", "-m", "first")
    for args in (["log", "--oneline"], ["commit", "-m", "nothing"], ["show", "nope"]):
        proc = subprocess.run(
            [sys.executable, "-c", _FROZEN_AT_EXIT, *args], cwd=shop, capture_output=True, text=True, timeout=120
        )
        assert proc.stdout.rstrip().endswith("frozen at exit: True"), (args, proc.stdout, proc.stderr)
    assert len(snap(shop, "log", "--oneline").stdout.splitlines()) == 1  # the store is intact
