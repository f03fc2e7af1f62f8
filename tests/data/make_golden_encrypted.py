"""Write tests/data/golden_encrypted/ (run from the repository root, with `age` installed):
an age file made by the age tool, and a small encrypted directory remote with the names, values
and master key it must read back as (expected.json). Regenerate only for a deliberate format change."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "golden_encrypted"
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for terminal.py

from snapgit.remote.crypto import create_key  # noqa: E402
from snapgit.remote.directory import DirRemote  # noqa: E402
from snapgit.remote.encrypted import EncryptedRemote  # noqa: E402
from terminal import on_terminal  # noqa: E402

PASS = "golden passphrase"


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    HERE.mkdir()
    plain = b"".join(b"line %06d of a snapgit export, written by the age tool\n" % i for i in range(2000))
    (HERE / "plain.txt").write_bytes(plain)
    env = {"PATH": os.environ["PATH"], "HOME": str(HERE), "TERM": "dumb"}
    status, shown = on_terminal(["age", "-p", "-o", "by-age.age", "plain.txt"], [PASS, PASS], cwd=str(HERE), env=env)
    assert status == 0, shown
    (HERE / "plain.txt").unlink()

    root = HERE / "remote"
    root.mkdir()
    inner = DirRemote(root, "golden")
    key = create_key(inner, PASS, cheap=True)
    remote = EncryptedRemote(inner, key)
    values = {
        "snapgit-remote": "snapgit remote 1\n",
        "HEAD": "ref: refs/heads/main\n",
        "refs/heads/main": "ab" * 32 + "\n",
        "refs/tags/v1": "cd" * 32 + "\n",
    }
    for name, value in values.items():
        remote.put_new(name, value.encode())
    shutil.rmtree(root / ".tmp", ignore_errors=True)
    expected = {
        "passphrase": PASS,
        "age_plaintext_sha256": hashlib.sha256(plain).hexdigest(),
        "age_plaintext_bytes": len(plain),
        "master_key": key.secret.hex(),
        "values": values,
        "stored_names": {name: remote.stored_name(name) for name in values},
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
