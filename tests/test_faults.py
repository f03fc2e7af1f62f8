"""Fault injection: damaged files, concurrent writers, a full disk, an unknown format, and a merge
whose writes fail half-way. Real files, real processes (tests/forkrun.py), real databases.

kill -9 during commit and merge is in test_crash.py.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import forkrun
from snapgit.store.layout import FORMAT_VERSION

SEED = int(os.environ.get("SNAP_FAULT_SEED", "20240229"))
# offsets drawn per region of a file; SNAP_FAULT_OFFSETS scales the hunt up
OFFSETS = int(os.environ.get("SNAP_FAULT_OFFSETS", "1"))


def ok(cwd: Path, *args: str) -> str:
    proc = forkrun.run(cwd, *args)
    assert proc.returncode == 0, f"snap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def clean_error(proc) -> bool:
    """One `error:` line and maybe a `hint:` line; no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return "Traceback" not in proc.stderr and 1 <= len(lines) <= 2 and lines[0].startswith("error: ")


def sqlite_rows(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("t", "u")}
    finally:
        con.close()


# --- a small store, built once --------------------------------------------------------------


@dataclass
class Template:
    root: Path
    log: str  # `snap log --json` of the undamaged store
    rows: dict[str, dict[str, list[tuple]]]  # rev -> table -> rows

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.root, dest, symlinks=True)
        return dest


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("template")
    con = sqlite3.connect(root / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    con.execute("CREATE TABLE u (k TEXT PRIMARY KEY, w INTEGER)")
    rng = random.Random(7)
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(i, "".join(rng.choice("abcdefgh ") for _ in range(60)), i / 3) for i in range(3000)],
    )
    con.executemany("INSERT INTO u VALUES (?, ?)", [(f"k{i}", i) for i in range(50)])
    con.commit()
    ok(root, "init", "--db", "db.sqlite")
    ok(root, "commit", "-m", "one")
    rows = {"HEAD~1": sqlite_rows(root / "db.sqlite")}
    con.execute("UPDATE t SET v = 'changed' WHERE id % 10 = 0")
    con.execute("DELETE FROM u WHERE w > 40")
    con.commit()
    con.close()
    ok(root, "commit", "-m", "two")
    rows["HEAD"] = sqlite_rows(root / "db.sqlite")
    return Template(root, ok(root, "log", "--json"), rows)


def reads_ok_or_fail_cleanly(tpl: Template, cwd: Path) -> list[str]:
    """Run the reading commands on a damaged store. Each either gives exactly the undamaged
    answer or fails with exit 3 and a one-line error. Returns what went wrong (empty: fine), and
    appends "failed" once per read that refused (for the callers' counts)."""
    bad = []
    proc = forkrun.run(cwd, "log", "--json")
    results = [("log", proc, proc.returncode == 0 and proc.stdout == tpl.log)]
    for rev in ("HEAD~1", "HEAD"):
        target = cwd / f"restored-{rev.replace('~', '_')}.sqlite"
        proc = forkrun.run(cwd, "restore", rev, "--into", str(target))
        right = proc.returncode == 0 and sqlite_rows(target) == tpl.rows[rev]
        results.append((f"restore {rev}", proc, right))
    for name, proc, right in results:
        if proc.returncode == 0:
            if not right:
                bad.append(f"{name}: exit 0 with WRONG output")
        elif proc.returncode != 3 or not clean_error(proc):
            bad.append(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        else:
            bad.append("failed")
    return bad


# --- damage at random offsets of every region of every file -----------------------------------


def pack_regions(data: bytes) -> dict[str, tuple[int, int]]:
    size = len(data)
    table_off, nblocks = struct.unpack_from("<QI", data, size - 56)
    return {
        "header": (0, 16),
        "blocks": (16, table_off),
        "block table": (table_off, size - 56),
        "footer": (size - 56, size - 32),
        "checksum": (size - 32, size),
    }


def idx_regions(data: bytes) -> dict[str, tuple[int, int]]:
    n = struct.unpack_from(">I", data, 12)[0]
    p0 = 16 + 1024
    return {
        "header": (0, 16),
        "fanout": (16, p0),
        "prefixes": (p0, p0 + 8 * n),
        "ordinals": (p0 + 8 * n, p0 + 12 * n),
        "pack name": (p0 + 12 * n, p0 + 12 * n + 32),
        "checksum": (p0 + 12 * n + 32, p0 + 12 * n + 64),
    }


def ref_regions(data: bytes) -> dict[str, tuple[int, int]]:
    return {"id": (0, 64), "newline": (64, 65)}


def head_regions(data: bytes) -> dict[str, tuple[int, int]]:
    return {"ref: ": (0, 5), "ref name": (5, len(data) - 1), "newline": (len(data) - 1, len(data))}


def reflog_regions(data: bytes) -> dict[str, tuple[int, int]]:
    # Structure only: the free text of a line (time digits, who, message) carries no checksum, and
    # a changed letter there leaves a valid line.
    line = data[: data.index(b"\n") + 1]
    tab = line.index(b"\t")
    return {
        "old id": (0, 64),
        "new id": (65, 129),
        "separators": (64, 65),
        "tab": (tab, tab + 1),
        "time zone": (line.index(b" ", 130) + 1, line.index(b" ", 130) + 6),
        "newline": (len(line) - 1, len(line)),
    }


def version_regions(data: bytes) -> dict[str, tuple[int, int]]:
    return {"text": (0, len(data))}


FILES: dict[str, tuple[Callable[[Path], list[Path]], Callable[[bytes], dict], str]] = {
    # kind: (files of that kind, regions, the verify that must see it)
    "pack": (lambda s: sorted((s / "objects" / "pack").glob("*.pack")), pack_regions, "--read-data"),
    "index": (lambda s: sorted((s / "objects" / "pack").glob("*.idx")), idx_regions, ""),
    "branch ref": (lambda s: [s / "refs" / "heads" / "main"], ref_regions, ""),
    "reflog": (lambda s: [s / "logs" / "refs" / "heads" / "main"], reflog_regions, ""),
    "HEAD": (lambda s: [s / "HEAD"], head_regions, ""),
    "VERSION": (lambda s: [s / "VERSION"], version_regions, ""),
}


def damages(tpl: Template, kind: str) -> list[tuple[str, int, str, Callable[[bytes], bytes]]]:
    """(file name, file number, description, damage) for every region of every file of a kind:
    OFFSETS flipped bytes per region, truncations at random offsets, and an empty file."""
    files, regions, _ = FILES[kind]
    rng = random.Random(f"{SEED}-{kind}")
    out = []
    for i, path in enumerate(files(tpl.root / ".snapstore")):
        data = path.read_bytes()
        for region, (lo, hi) in regions(data).items():
            for _ in range(OFFSETS):
                off, mask = rng.randrange(lo, hi), rng.randrange(1, 256)
                out.append(
                    (
                        path.name,
                        i,
                        f"byte {off} ({region}) ^ {mask:#04x}",
                        lambda d, off=off, mask=mask: d[:off] + bytes([d[off] ^ mask]) + d[off + 1 :],
                    )
                )
        for _ in range(OFFSETS):
            cut = rng.randrange(1, len(data))
            while kind == "reflog" and data[cut - 1 : cut] == b"\n":
                cut = rng.randrange(1, len(data))  # a reflog cut between lines is a shorter reflog
            out.append((path.name, i, f"truncated to {cut} bytes", lambda d, cut=cut: d[:cut]))
        if kind != "reflog":  # an empty reflog is a valid one
            out.append((path.name, i, "empty", lambda d: b""))
    return out


@pytest.mark.parametrize("kind", list(FILES))
def test_damage_is_always_detected(template: Template, tmp_path: Path, kind: str) -> None:
    """One flipped byte or a truncation anywhere in a file: `snap verify` (with --read-data for
    pack data) exits 3 and names the damage; reads give the right answer or exit 3 cleanly."""
    files, _regions, verify_flag = FILES[kind]
    missed, refused, trials = [], 0, 0
    for n, (name, i, what, damage) in enumerate(damages(template, kind)):
        cwd = template.copy(tmp_path / f"t{n}")
        path = files(cwd / ".snapstore")[i]
        original = path.read_bytes()
        changed = damage(original)
        if kind in ("branch ref", "HEAD") and changed.decode(errors="replace").strip() == original.decode().strip():
            continue  # only the surrounding whitespace changed: the same ref, as readers read it
        os.chmod(path, 0o600)
        path.write_bytes(changed)
        trials += 1
        check = forkrun.run(cwd, "verify", "--json", *([verify_flag] if verify_flag else []))
        if check.returncode != 3:
            missed.append(
                f"{name} {what}: verify exited {check.returncode}: {check.stdout[-300:]} {check.stderr[-300:]}"
            )
        elif kind != "VERSION" and not json.loads(check.stdout)["problems"]:
            missed.append(f"{name} {what}: verify exited 3 without naming a problem")
        for problem in reads_ok_or_fail_cleanly(template, cwd):
            if problem == "failed":
                refused += 1
            else:
                missed.append(f"{name} {what}: {problem}")
        shutil.rmtree(cwd)
    assert not missed, f"{len(missed)} of {trials} damaged {kind} files:\n" + "\n".join(missed)
    if kind != "reflog":  # reads do not consult the reflog; verify is what must see it
        assert refused, f"no read of a damaged {kind} ever refused: the test cannot see damage"


# --- one test per bug the damage hunt found (each fails without its fix) -----------------------


def damaged_copy(template: Template, tmp_path: Path, rel: str, content: bytes) -> Path:
    cwd = template.copy(tmp_path / "store")
    path = cwd / ".snapstore" / rel
    os.chmod(path, 0o600)
    path.write_bytes(content)
    return cwd


def assert_refuses(cwd: Path, *args: str, says: str) -> None:
    proc = forkrun.run(cwd, *args)
    assert proc.returncode == 3 and clean_error(proc), proc.stderr
    assert says in proc.stderr, proc.stderr


def verify_problems(cwd: Path) -> list[dict]:
    proc = forkrun.run(cwd, "verify", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["problems"]


def test_ref_that_is_not_text_is_damage(template: Template, tmp_path: Path) -> None:
    ref = (template.root / ".snapstore" / "refs" / "heads" / "main").read_bytes()
    cwd = damaged_copy(template, tmp_path, "refs/heads/main", ref[:10] + b"\xe4" + ref[11:])
    assert_refuses(cwd, "log", says="ref refs/heads/main is damaged: it is not text")
    assert any(p["where"] == "refs/heads/main" for p in verify_problems(cwd))


def test_head_naming_no_valid_ref_is_damage(template: Template, tmp_path: Path) -> None:
    cwd = damaged_copy(template, tmp_path, "HEAD", b"ref: refs/heads/ma\x01n\n")
    assert_refuses(cwd, "log", says="not a valid ref")
    assert any(p["where"] == "HEAD" for p in verify_problems(cwd))


def test_head_naming_a_missing_branch_is_damage(template: Template, tmp_path: Path) -> None:
    cwd = damaged_copy(template, tmp_path, "HEAD", b"ref: refs/heads/maim\n")
    assert_refuses(cwd, "log", says="HEAD names branch 'maim', which does not exist")
    assert any(p["where"] == "HEAD" and "does not exist" in p["message"] for p in verify_problems(cwd))


@pytest.mark.parametrize("damage", ["newline", "tab", "time zone", "cut short", "not text"])
def test_reflog_damage_is_found(template: Template, tmp_path: Path, damage: str) -> None:
    log = (template.root / ".snapstore" / "logs" / "refs" / "heads" / "main").read_bytes()
    first = log.index(b"\n")
    tab = log.index(b"\t")
    tz = log.index(b" ", 130) + 1
    changed = {
        "newline": log[:first] + b"\x0e" + log[first + 1 :],  # two entries run together
        "tab": log[:tab] + b"\x0f" + log[tab + 1 :],
        "time zone": log[:tz] + b"*" + log[tz + 1 :],
        "cut short": log[:-3],
        "not text": log[:20] + b"\xff" + log[21:],
    }[damage]
    cwd = damaged_copy(template, tmp_path, "logs/refs/heads/main", changed)
    assert any(p["what"] == "reflog" for p in verify_problems(cwd))


def test_ref_naming_a_missing_commit_is_damage_not_a_typo(template: Template, tmp_path: Path) -> None:
    cwd = damaged_copy(template, tmp_path, "refs/heads/main", b"ab" * 32 + b"\n")
    assert_refuses(cwd, "log", says=f"object {'ab' * 32} not found")
    typo = forkrun.run(cwd, "show", "abcd" * 4)  # a revision nothing names: the user's typo, exit 1
    assert typo.returncode == 1 and clean_error(typo)


def test_store_with_a_broken_index_opens_and_verify_reports_it(template: Template, tmp_path: Path) -> None:
    idx = max((template.root / ".snapstore" / "objects" / "pack").glob("*.idx"), key=lambda p: p.stat().st_size)
    cwd = damaged_copy(template, tmp_path, f"objects/pack/{idx.name}", idx.read_bytes()[:100])
    problems = verify_problems(cwd)  # a report, not one error that stops verify
    assert any(p["what"] == "index" and p["where"] == idx.name and "truncated" in p["message"] for p in problems)
    assert any("not found (an index is damaged" in p["message"] for p in problems)
    assert_refuses(cwd, "restore", "HEAD", "--into", str(cwd / "new.sqlite"), says="an index is damaged")


def test_index_fanout_running_backwards_is_damage(template: Template, tmp_path: Path) -> None:
    idx = max((template.root / ".snapstore" / "objects" / "pack").glob("*.idx"), key=lambda p: p.stat().st_size)
    data = bytearray(idx.read_bytes())
    data[16 + 4 * 100 : 16 + 4 * 101] = struct.pack(">I", 0xFFFF)  # fanout[100] far past the count
    cwd = damaged_copy(template, tmp_path, f"objects/pack/{idx.name}", bytes(data))
    assert any(p["where"] == idx.name and "fanout" in p["message"] for p in verify_problems(cwd))
    assert_refuses(cwd, "restore", "HEAD", "--into", str(cwd / "new.sqlite"), says="fanout is not ascending")


def test_version_file_that_is_not_text_refuses_to_open(template: Template, tmp_path: Path) -> None:
    cwd = damaged_copy(template, tmp_path, "VERSION", b"snapgit \xe9tore 1\n")
    assert_refuses(cwd, "verify", says=f"this snapgit reads formats 1 to {FORMAT_VERSION}")


# --- concurrent committers ---------------------------------------------------------------------


def worker_db(path: Path, worker: int, step: int) -> dict[str, list[tuple]]:
    """Worker ``worker``'s database after its ``step``-th change (step 0: as created)."""
    rows = [(i, f"w{worker} row {i}") for i in range(40 + worker)]
    for s in range(1, step + 1):
        rows[s] = (s, f"w{worker} step {s}")
    return {"t": rows}


def write_db(path: Path, state: dict[str, list[tuple]]) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("DELETE FROM t")
    con.executemany("INSERT INTO t VALUES (?, ?)", state["t"])
    con.commit()
    con.close()


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_committers_lose_no_commit(tmp_path: Path, workers: int) -> None:
    """N processes commit M times each to the same branch at once, each from its own database:
    every commit ends up in one straight history, and each holds exactly what its process read."""
    steps = 4
    for w in range(workers):
        write_db(tmp_path / f"w{w}.sqlite", worker_db(tmp_path, w, 0))
    ok(tmp_path, "init", "--db", str(tmp_path / "w0.sqlite"))
    ok(tmp_path, "commit", "-m", "base")

    def work(w: int) -> int:
        db = tmp_path / f"w{w}.sqlite"
        for step in range(1, steps + 1):
            write_db(db, worker_db(tmp_path, w, step))
            proc = forkrun.run(tmp_path, "commit", "--db", f"sqlite:///{db}", "-m", f"w{w} step {step}")
            if proc.returncode:
                print(proc.stderr)
                return proc.returncode
        return 0

    children = [forkrun.start(tmp_path, call=lambda w=w: work(w)) for w in range(workers)]
    results = [c.result(["worker"]) for c in children]
    assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results]
    log = json.loads(ok(tmp_path, "log", "--json"))
    expected = ["base"] + [f"w{w} step {s}" for w in range(workers) for s in range(1, steps + 1)]
    assert sorted(c["message"] for c in log) == sorted(expected)
    for newer, older in zip(log, log[1:], strict=False):  # one straight chain: no commit was dropped by a race
        assert newer["parents"] == [older["id"]]
    ok(tmp_path, "verify", "--read-data")
    for c in log[:-1]:
        w, s = (int(x) for x in c["message"].removeprefix("w").split(" step "))
        target = tmp_path / f"restored-{c['id'][:12]}.sqlite"
        ok(tmp_path, "restore", c["id"], "--into", str(target))
        con = sqlite3.connect(target)
        assert con.execute("SELECT * FROM t ORDER BY id").fetchall() == worker_db(tmp_path, w, s)["t"], c["message"]
        con.close()


# --- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs mounted for the test (CI runs as root, like this machine); None when mounting
    is not allowed, and the tests fall back to RLIMIT_FSIZE or skip, saying why (under CI=true
    they fail instead)."""
    yield from mounted_tmpfs(tmp_path / "disk", "size=4m,mode=0700")


@pytest.fixture
def few_inodes(tmp_path: Path):
    """A tmpfs with room for bytes but for only 64 files: creating a file there fails with ENOSPC
    once they are used up. None, as for small_disk, where mounting is not allowed."""
    yield from mounted_tmpfs(tmp_path / "inodes", "size=4m,nr_inodes=64,mode=0700")


def mounted_tmpfs(mnt: Path, options: str):
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        if os.environ.get("CI") == "true":  # CI runs as root: a fallback there would hide a broken set-up
            pytest.fail(f"CI=true, and tmpfs cannot be mounted: {proc.stderr.strip()}", pytrace=False)
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def free_bytes(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def fill(mnt: Path, leave: int) -> Path:
    """Fill the file system with one file until ``leave`` bytes are free."""
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free_bytes(mnt) - leave))
    return filler


def committed_project(root: Path, db: Path, rows: int) -> tuple[Path, sqlite3.Connection]:
    """A table t of ``rows`` rows in ``db`` (kept apart from a small disk), and a project in
    ``root`` that committed it; with the connection, for the test's next change."""
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"value {i}") for i in range(rows)])
    con.commit()
    project = root / "project"
    project.mkdir()
    ok(project, "init", "--db", f"sqlite:///{db}")
    ok(project, "commit", "-m", "base")
    return project, con


def limit_file_size() -> None:
    """In a forked child, where a tmpfs cannot be mounted: writes past 64 KB a file fail with
    EFBIG (the signal that would kill the process ignored), a full disk's stand-in."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def assert_disk_full_error(proc, what: str) -> None:
    assert proc.returncode == 1 and clean_error(proc), proc.stderr
    assert f"no space left on device while writing {what}" in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith("; free space and retry"), proc.stderr


def test_disk_full_during_commit_is_a_clear_error_and_leaves_the_store_working(small_disk, tmp_path: Path) -> None:
    """ENOSPC at points throughout a commit (a real, small tmpfs holds the store; the database is
    elsewhere): one clear line, exit 1, the branch unmoved, nothing half-written left behind,
    verify clean even on the full disk; once space is freed, the next commit works. Where
    mounting is not allowed, the same is checked with RLIMIT_FSIZE in the child (EFBIG)."""
    project, con = committed_project(small_disk or tmp_path, tmp_path / "db.sqlite", 500)
    rng = random.Random(SEED)
    con.executemany(
        "INSERT INTO t VALUES (?, ?)",
        [(i, "".join(rng.choice("abcdefghijklmnop") for _ in range(80))) for i in range(500, 6000)],
    )
    con.commit()
    con.close()
    store = project / ".snapstore"
    template = tmp_path / "template.snapstore"
    shutil.copytree(store, template)
    head = (store / "refs" / "heads" / "main").read_text()

    if small_disk is None:  # the documented fallback: a file size limit gives EFBIG on the pack
        proc = forkrun.start(project, "commit", "-m", "big", before=limit_file_size).result(["commit"])
        assert proc.returncode == 1 and clean_error(proc), proc.stderr
        assert "file size limit exceeded (ulimit -f) while writing objects" in proc.stderr
        assert not list((store / "tmp").iterdir())
        ok(project, "verify", "--read-data")
        ok(project, "commit", "-m", "big")
        pytest.skip("tmpfs cannot be mounted here: checked with RLIMIT_FSIZE (EFBIG) only")

    before = free_bytes(small_disk)
    ok(project, "commit", "-m", "measure")  # how much room a whole commit takes
    used = before - free_bytes(small_disk)
    page = 4096
    phases: set[str] = set()
    # out of room at once, half-way, and page by page around the end: the last pack, its index,
    # the commit object's pack and index, the writer's lease (rewritten when it takes the ref
    # lock, so a peak of a page over what the commit leaves used), the ref lock, the reflog
    for leave in [0, used // 2, *range(used - 4 * page, used + 6 * page, page)]:
        shutil.rmtree(store)
        shutil.copytree(template, store)
        filler = fill(small_disk, leave)
        proc = forkrun.run(project, "commit", "-m", "big")
        if proc.returncode == 0:
            phases.add("fits")
        else:
            assert_disk_full_error(proc, "")
            phases.add(proc.stderr.split("while writing ")[1].split(" ")[0])
            assert (store / "refs" / "heads" / "main").read_text() == head
            assert not list((store / "tmp").iterdir()), "a failed write left its temporary files"
            assert not list((store / "refs" / "heads").glob("*.lock"))
        ok(project, "verify", "--read-data")  # on the full disk
        filler.unlink()
        ok(project, "commit", "-m", "after freeing space", "--allow-empty")
        ok(project, "verify", "--read-data")
    # the pack write and the ref update (its lease record or the ref itself) both ran out
    assert {"objects", "fits"} <= phases and phases & {"ref", "lock"}, phases


def test_status_on_a_full_disk_reads_into_memory_and_says_what_it_says_with_room(small_disk, tmp_path: Path) -> None:
    """`snap status` and `snap diff` build the live side in a scratch store in tmp/: on a disk
    too full for it they read again into memory, with the same answer, and leave nothing
    behind. Where mounting is not allowed, a file size limit in the child (EFBIG) stands in."""
    project, con = committed_project(small_disk or tmp_path, tmp_path / "db.sqlite", 40_000)
    rng = random.Random(SEED)
    # every row changed, to random text: the live side's records and leaves take megabytes
    con.executemany(
        "UPDATE t SET v = ? WHERE id = ?",
        [("".join(rng.choice("abcdefghijklmnop") for _ in range(40)), i) for i in range(40_000)],
    )
    con.commit()
    con.close()
    store = project / ".snapstore"
    with_room = {cmd: ok(project, *cmd) for cmd in (("status", "--json"), ("diff", "--stat"))}

    def left() -> list[str]:
        return sorted(p.name for p in (store / "tmp").iterdir())

    if small_disk is None:
        for cmd, out in with_room.items():
            proc = forkrun.start(project, *cmd, before=limit_file_size).result(list(cmd))
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == out
        assert left() == []
        pytest.skip("tmpfs cannot be mounted here: checked with RLIMIT_FSIZE (EFBIG) only")
    filler = fill(small_disk, 64 * 1024)
    for cmd, out in with_room.items():
        assert ok(project, *cmd) == out
        assert left() == []
    filler.unlink()


def test_disk_full_while_logging_a_ref_move_leaves_no_torn_line(small_disk, template: Template) -> None:
    """A reflog append that only half fits (a short write at a page boundary) is undone: the ref
    does not move, the reflog has no torn line, and verify stays clean."""
    if small_disk is None:
        pytest.skip("tmpfs cannot be mounted here, and a file size limit cannot give a short append")
    project = template.copy(small_disk / "project")
    ok(project, "branch", "feature")
    reflog = project / ".snapstore" / "logs" / "refs" / "heads" / "feature"
    entry = reflog.read_text().split("\t")[0]
    with open(reflog, "a") as f:  # a valid entry that leaves 60 bytes of the page for the next one
        f.write(entry + "\tpadding " + "x" * (4096 - 60 - reflog.stat().st_size - len(entry) - 10) + "\n")
    assert reflog.stat().st_size == 4096 - 60
    # deleting a branch writes no lock content, only the log line, and the writer's lease (a
    # page, rewritten in place when the ref lock is taken): room for the lease alone
    filler = fill(small_disk, 4096)
    proc = forkrun.run(project, "branch", "-d", "feature")
    assert_disk_full_error(proc, "ref refs/heads/feature")
    assert reflog.stat().st_size == 4096 - 60
    assert (project / ".snapstore" / "refs" / "heads" / "feature").exists()
    ok(project, "verify")
    filler.unlink()
    ok(project, "branch", "-d", "feature")
    ok(project, "verify")


def test_disk_full_while_writing_a_ref_leaves_no_lock_and_no_open_file(small_disk) -> None:
    """The new value is written into the ref's lock file first; when that write finds the disk
    full, the lock goes, its descriptor is closed, and the ref keeps its value."""
    if small_disk is None:
        pytest.skip("tmpfs cannot be mounted here")
    from snapgit.errors import DiskFullError
    from snapgit.store.refs import DiskRefs

    refs = DiskRefs(small_disk / "store")
    main = "refs/heads/main"
    refs.set_if_equals(main, None, "a" * 64, who="t", message="one")
    filler = fill(small_disk, 0)
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(DiskFullError, match="while writing ref refs/heads/main; free space and retry"):
        refs.set_if_equals(main, "a" * 64, "b" * 64, who="t", message="two")
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert not list((small_disk / "store").rglob("*.lock"))
    assert refs.read(main) == "a" * 64
    filler.unlink()
    refs.set_if_equals(main, "a" * 64, "b" * 64, who="t", message="two")
    assert refs.read(main) == "b" * 64


def test_no_room_for_the_new_file_while_expiring_a_reflog_is_a_clear_error(few_inodes) -> None:
    """gc rewrites an expiring reflog through a temporary file. When not even that file can be
    created, the error says the disk is full (not that the temporary file it never made is
    missing), and the reflog is as it was."""
    if few_inodes is None:
        pytest.skip("tmpfs cannot be mounted here")
    from snapgit.errors import DiskFullError
    from snapgit.store.refs import DiskRefs

    refs = DiskRefs(few_inodes / "store")
    main = "refs/heads/main"
    refs.set_if_equals(main, None, "a" * 64, who="t", message="one")
    refs.set_if_equals(main, "a" * 64, "b" * 64, who="t", message="two")
    log = few_inodes / "store" / "logs" / main
    before = log.read_bytes()
    used = 0
    while True:  # use up the file system's inodes
        try:
            (few_inodes / f"f{used}").touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            break
        used += 1
    with pytest.raises(DiskFullError, match="while writing the reflog of refs/heads/main; free space and retry"):
        refs.expire_reflog(main, before=time.time() + 3600)
    assert log.read_bytes() == before
    assert not list((few_inodes / "store").rglob("*.expire"))


# --- an unknown format, a broken config --------------------------------------------------------


@pytest.mark.parametrize("command", [("log",), ("verify",), ("commit", "-m", "x"), ("status",)])
def test_store_of_an_unknown_format_refuses_to_open(template: Template, tmp_path: Path, command) -> None:
    newer = f"snapgit store {FORMAT_VERSION + 1}"
    cwd = damaged_copy(template, tmp_path, "VERSION", f"{newer}\n".encode())
    before = sorted((p.relative_to(cwd), p.stat().st_mtime_ns) for p in (cwd / ".snapstore").rglob("*"))
    proc = forkrun.run(cwd, *command)
    assert proc.returncode == 3 and clean_error(proc), proc.stderr
    assert f"is a store of format {newer!r}; this snapgit reads formats 1 to {FORMAT_VERSION}" in proc.stderr
    assert "hint: use the snapgit version that wrote it" in proc.stderr
    assert sorted((p.relative_to(cwd), p.stat().st_mtime_ns) for p in (cwd / ".snapstore").rglob("*")) == before


def test_broken_config_is_a_clear_error(template: Template, tmp_path: Path) -> None:
    config = (template.root / ".snapstore" / "config.toml").read_bytes()
    cwd = damaged_copy(template, tmp_path, "config.toml", config[: config.index(b'"') + 3])  # inside a string
    proc = forkrun.run(cwd, "log")
    assert proc.returncode != 0 and clean_error(proc), proc.stderr
    assert "config.toml is not valid TOML" in proc.stderr


# --- a merge whose writes fail half-way ---------------------------------------------------------


def test_merge_failing_half_way_leaves_database_and_store_as_they_were(
    db_kind: str, make_db_url, tmp_path: Path
) -> None:
    """theirs adds a user whose email the live database has meanwhile given to another: the merge
    deletes, updates and inserts in one transaction until the unique index refuses. Afterwards
    every table is exactly as before, the branch has not moved, the pre-merge snapshot is on the
    safety ref only, and the store verifies."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from snapgit import Repo

    url = make_db_url(db_kind)
    engine = sa.create_engine(url, poolclass=NullPool)
    meta = sa.MetaData()
    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(40), nullable=False, unique=True),
    )
    notes = sa.Table(
        "notes",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("text", sa.String(40)),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": i, "email": f"u{i}@x"} for i in range(1, 101)])
        conn.execute(notes.insert(), [{"id": i, "user_id": i % 100 + 1, "text": f"n{i}"} for i in range(1, 201)])
    repo = Repo.init(tmp_path, url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    with engine.begin() as conn:  # theirs: deletes, updates, then new users and their notes
        conn.execute(notes.delete().where(notes.c.id > 180))
        conn.execute(notes.update().where(notes.c.id < 50).values(text="theirs"))
        conn.execute(users.insert(), [{"id": i, "email": f"u{i}@x"} for i in range(101, 121)])
        conn.execute(notes.insert(), [{"id": i, "user_id": i - 100, "text": "new"} for i in range(201, 221)])
    repo.commit("theirs")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    with engine.begin() as conn:  # ours: back to base, plus a user who took u110@x
        conn.execute(notes.delete().where(notes.c.id > 200))
        conn.execute(
            notes.update().where(notes.c.id < 50).values(text=sa.literal("n") + sa.cast(notes.c.id, sa.String))
        )
        conn.execute(notes.insert(), [{"id": i, "user_id": i - 100, "text": f"n{i}"} for i in range(181, 201)])
        conn.execute(users.delete().where(users.c.id > 100))
        conn.execute(users.insert(), [{"id": 500, "email": "u110@x"}])
    old_head = repo.head()
    repo.close()

    def tables() -> dict[str, list[tuple]]:
        with engine.connect() as conn:
            return {
                t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))]
                for t in ("users", "notes")
            }

    before = tables()
    proc = forkrun.run(tmp_path, "merge", "feature", "--strategy", "backup_wins")
    assert proc.returncode == 1 and clean_error(proc), proc.stderr
    assert "users" in proc.stderr
    assert tables() == before
    log = json.loads(ok(tmp_path, "log", "--json"))
    assert log[0]["id"] == old_head.hex()  # the branch did not move
    safety = json.loads(ok(tmp_path, "log", "refs/snap/safety", "--json", "-n", "1"))[0]
    assert safety["message"].startswith("snapshot of the database before merging")
    assert safety["parents"] == [old_head.hex()]  # the pre-merge snapshot, off the branch
    assert not (tmp_path / ".snapstore" / "MERGE_HEAD").exists()
    ok(tmp_path, "verify", "--read-data")
    ok(tmp_path, "status")
    engine.dispose()
