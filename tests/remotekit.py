"""Helpers of the remote tests: small SQLite stores with rows to push, and a fingerprint of
everything a store holds, to show that a failed command changed nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from snapgit.repo import Repo


def make_db(path: Path, rows: int = 2000) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)")
    con.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i * 1.5) for i in range(rows)])
    con.commit()
    con.close()
    return path


def make_store(directory: Path, rows: int = 2000) -> Repo:
    """A store in ``directory`` over a new SQLite database ``db.sqlite`` with one commit."""
    directory.mkdir(parents=True, exist_ok=True)
    db = make_db(directory / "db.sqlite", rows)
    repo = Repo.init(directory, str(db))
    repo.commit("base")
    return repo


def change(db: Path, sql: str, *params: object) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, params)
    con.commit()
    con.close()


def rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, name, price FROM items ORDER BY id").fetchall()
    finally:
        con.close()


def fingerprint(store_dir: Path) -> dict[str, str]:
    """Every file of a store (but the audit log, which records failures too) and its hash."""
    root = store_dir / ".snapstore"
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "oplog.jsonl":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def server_bytes(root: Path) -> bytes:
    """Everything a directory remote's server holds: every path and every file's bytes, for a
    search that what is stored never shows in plaintext."""
    out = bytearray()
    for p in sorted(root.rglob("*")):
        out += str(p.relative_to(root)).encode() + b"\n"
        if p.is_file():
            out += p.read_bytes() + b"\n"
    return bytes(out)


class ConditionIgnoringProxy:
    """An HTTP proxy in front of an S3 server that drops ``If-Match`` and ``If-None-Match``
    from every request: a server that ignores conditional writes, as some S3 look-alikes do
    (``rclone serve s3``). Only for the test that `snap remote add` refuses one."""

    def __init__(self, upstream: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        target = urlsplit(upstream)

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("if-match", "if-none-match", "host")
                }
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # no body: its Content-Length is the object's
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection") and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
