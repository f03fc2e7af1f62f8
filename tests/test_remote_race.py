"""Two `snap push` processes to the same branch at once: exactly one wins, the other is rejected,
and nothing is lost: the remote stays whole, the loser keeps its commit and gets it in after a
pull. On a directory and on S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from remotekit import make_store


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snapgit.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _ok(cwd: Path, *args: str) -> str:
    proc = _start(cwd, *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"snap {' '.join(args)}: {out}\n{err}"
    return out


def test_two_pushes_to_one_branch_have_one_winner(tmp_path: Path, remote_url: str) -> None:
    a = make_store(tmp_path / "a", rows=3000)
    a.remote_add("origin", remote_url)
    a.push()
    a.close()
    for name in ("b", "c"):
        _ok(tmp_path, "clone", remote_url, name, "--db", str(tmp_path / "a" / "db.sqlite"))
    for round_ in range(3):
        for name in ("b", "c"):
            _ok(tmp_path / name, "pull", "--strategy", "backup_wins")
            _ok(tmp_path / name, "commit", "--allow-empty", "-m", f"{name} round {round_}")
        heads = {n: (tmp_path / n / ".snapstore/refs/heads/main").read_text().strip() for n in ("b", "c")}
        procs = {n: _start(tmp_path / n, "push") for n in ("b", "c")}
        results = {n: (p.communicate(timeout=120), p.returncode) for n, p in procs.items()}
        winners = [n for n, (_, rc) in results.items() if rc == 0]
        assert len(winners) == 1, results
        loser = "c" if winners == ["b"] else "b"
        (_, err), rc = results[loser]
        assert rc == 1 and "rejected" in err and "Traceback" not in err, err
        remote = json.loads(_ok(tmp_path / "b", "ls-remote", "--json"))["refs"]
        assert remote["refs/heads/main"] == heads[winners[0]]
        # the loser's commit is kept, and goes in once merged with the winner's
        assert (tmp_path / loser / ".snapstore/refs/heads/main").read_text().strip() == heads[loser]
        _ok(tmp_path / loser, "pull", "--strategy", "backup_wins")
        _ok(tmp_path / loser, "push")
        log = json.loads(_ok(tmp_path / loser, "log", "--json"))
        assert {heads["b"], heads["c"]} <= {c["id"] for c in log}
        assert json.loads(_ok(tmp_path / loser, "verify", "--remote", "origin", "--read-data", "--json"))["ok"]
