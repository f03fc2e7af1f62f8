"""snap serve over HTTP: the real app (Starlette's TestClient), a real store, a real SQLite file.

One request per security rule that must be refused (no token, a bad or spent token, a viewer
posting a restore, a cross-site POST, a foreign Host, an oversize or chunked upload), the
untrusted data rendered escaped under a CSP without inline script, and the pages' work checked
through the database's own eyes: a backup in the history, an uploaded export restored, a manual
conflict resolved, a broken upload refused with the database unchanged.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="snap serve needs the web extra: pip install 'snapgit[web]'")

from starlette.testclient import TestClient

from snapgit.repo import Repo
from snapgit.web.app import create_app
from snapgit.web.auth import hash_token
from snapgit.web.settings import settings_from

SAME_ORIGIN = {"sec-fetch-site": "same-origin"}
VIEWER_TOKEN = "viewer-token-for-tests-0123456789"
OPERATOR_TOKEN = "operator-token-for-tests-0123456789"


def make_project(root: Path) -> Path:
    """A SQLite database with a table whose rows include a <script>, its store, and one commit."""
    db = root / "app.db"
    con = sqlite3.connect(db)
    con.execute("create table t (id integer primary key, name text, n integer)")
    con.executemany("insert into t values (?, ?, ?)", [(i, f"row{i}", i) for i in range(1, 21)])
    con.commit()
    con.close()
    with Repo.init(root, db_url=str(db)) as repo:
        repo.config.serve = {"tokens": {"viewer": [hash_token(VIEWER_TOKEN)], "operator": [hash_token(OPERATOR_TOKEN)]}}
        repo.store.save_config()
        repo.commit("first")
    return db


def db_rows(db: Path) -> dict[int, tuple]:
    con = sqlite3.connect(db)
    try:
        return {r[0]: r[1:] for r in con.execute("select id, name, n from t")}
    finally:
        con.close()


def db_exec(db: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


def make_app(root: Path, *, read_only: bool = False, **serve):
    with Repo.open(root) as repo:
        config = {**repo.config.serve, **serve}
    return create_app(root, settings_from(config, read_only=read_only, bind_host="testserver"))


def login(app, token: str | None = None) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    r = client.get("/?token=" + (token or app.state.access.login_token))
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path, make_project(tmp_path)


@pytest.fixture
def operator(project) -> TestClient:
    return login(make_app(project[0]))


def wait_job(client: TestClient, location: str) -> str:
    assert location.startswith("/jobs/"), location
    for _ in range(200):
        page = client.get(location).text
        if 'job-running"' not in page and "job job-running" not in page:
            return page
        time.sleep(0.05)
    raise AssertionError(f"job {location} did not finish: {page}")


def refs(root: Path) -> dict[str, str]:
    with Repo.open(root) as repo:
        return {**repo.refs.list("refs/heads"), **repo.refs.list("refs/imports")}


# -- access ----------------------------------------------------------------------------------------


def test_no_token_is_refused(project) -> None:
    client = TestClient(make_app(project[0]), follow_redirects=False)
    for path in ("/", "/status", "/diff", "/audit", "/download?rev=HEAD", "/restore", "/jobs/x"):
        assert client.get(path).status_code == 401, path
    r = client.post("/backup", data={"message": "x"}, headers=SAME_ORIGIN)
    assert r.status_code == 401
    assert list(refs(project[0]).values()) == list(refs(project[0]).values())  # readable
    with Repo.open(project[0]) as repo:
        assert len(repo.log()) == 1


def test_bad_token_refused_and_login_token_works_once(project) -> None:
    app = make_app(project[0])
    client = TestClient(app, follow_redirects=False)
    r = client.get("/?token=not-the-token")
    assert r.status_code == 401 and 'id="refused"' in r.text
    assert "set-cookie" not in r.headers
    r = client.get("/status?token=" + app.state.access.login_token + "&x=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/status?x=1"  # the token leaves the address bar
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    assert client.get("/status").status_code == 200
    # spent: a second browser cannot log in with it
    other = TestClient(app, follow_redirects=False)
    assert other.get("/?token=" + app.state.access.login_token).status_code == 401


def test_bearer_tokens_from_config(project) -> None:
    app = make_app(project[0])
    client = TestClient(app, follow_redirects=False)
    assert client.get("/", headers={"authorization": "Bearer " + VIEWER_TOKEN}).status_code == 200
    assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    # a script's POST (no cookie, no browser headers) passes the cross-site check; a viewer's is refused
    r = client.post("/backup", data={"message": "x"}, headers={"authorization": "Bearer " + VIEWER_TOKEN})
    assert r.status_code == 403
    r = client.post("/backup", data={"message": "by a script"}, headers={"authorization": "Bearer " + OPERATOR_TOKEN})
    assert r.status_code == 303
    wait_job(client, r.headers["location"])


def test_config_tokens_must_be_hashes(tmp_path: Path) -> None:
    from snapgit.web.auth import ServeConfigError

    with pytest.raises(ServeConfigError, match="not a SHA-256"):
        create_app(tmp_path, settings_from({"tokens": {"operator": ["plain-token"]}}, read_only=False))
    with pytest.raises(ServeConfigError, match="role 'admin'"):
        create_app(tmp_path, settings_from({"tokens": {"admin": [hash_token("x")]}}, read_only=False))


def test_viewer_cannot_restore(project) -> None:
    root, db = project
    db_exec(db, "update t set name = 'changed' where id = 3")
    before = db_rows(db)
    oplog_before = len(list(Repo.open(root).oplog()))
    viewer = login(make_app(root), VIEWER_TOKEN)
    assert viewer.get("/").status_code == 200
    r = viewer.post("/restore/apply", data={"rev": "HEAD", "strategy": "exact"}, headers=SAME_ORIGIN)
    assert r.status_code == 403 and "operator role" in r.text
    assert viewer.get("/restore").status_code == 403
    r = viewer.post("/backup", data={"message": "x"}, headers=SAME_ORIGIN)
    assert r.status_code == 403
    r = viewer.post("/conflicts/resolve", data={"side": "ours"}, headers=SAME_ORIGIN)
    assert r.status_code == 403
    time.sleep(0.2)
    assert db_rows(db) == before
    assert len(list(Repo.open(root).oplog())) == oplog_before


def test_read_only_server_grants_only_viewer(project) -> None:
    app = make_app(project[0], read_only=True)
    client = login(app, OPERATOR_TOKEN)
    page = client.get("/").text
    assert 'id="role">viewer' in page
    assert client.post("/backup", data={"message": "x"}, headers=SAME_ORIGIN).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # another port of the same host: SameSite cookies pass, this must not
        {"origin": "http://evil.example"},
        {"origin": "http://testserver:9999"},
        {"origin": "null"},
    ],
    ids=["cross-site", "same-site", "foreign-origin", "other-port-origin", "null-origin"],
)
def test_cross_site_post_is_refused(project, operator: TestClient, headers: dict[str, str]) -> None:
    r = operator.post("/backup", data={"message": "forged"}, headers=headers)
    assert r.status_code == 403 and "cross-site" in r.text
    with Repo.open(project[0]) as repo:
        assert [c.message for _o, c in repo.log()] == ["first"]


def test_same_origin_post_passes(operator: TestClient) -> None:
    r = operator.post("/backup", data={"message": "ok"}, headers={"origin": "http://testserver"})
    assert r.status_code == 303


def test_foreign_host_is_refused(project) -> None:
    app = make_app(project[0])
    client = TestClient(app, follow_redirects=False)
    token = app.state.access.login_token
    r = client.get("/?token=" + token, headers={"host": "evil.example"})
    assert r.status_code == 400
    assert client.get("/?token=" + token).status_code == 303  # the token was not spent by the refused request
    allowed = TestClient(make_app(project[0], allowed_hosts=["snap.example.com"]), follow_redirects=False)
    assert allowed.get("/", headers={"host": "snap.example.com"}).status_code == 401  # allowed host: on to the login


def spooled_uploads() -> list[str]:
    return [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("snap-upload-")]


def test_oversize_upload_is_refused(project) -> None:
    root, db = project
    app = make_app(root, max_body=64 * 1024)
    client = login(app)
    before = refs(root)
    big = b"x" * (200 * 1024)
    r = client.post(
        "/restore/upload", files={"file": ("big.json", big)}, data={"strategy": "backup_wins"}, headers=SAME_ORIGIN
    )
    assert r.status_code == 413 and "65,536" in r.text

    def chunks():
        for _ in range(50):
            yield b"y" * 8192

    r = client.post(
        "/restore/upload",
        content=chunks(),
        headers={**SAME_ORIGIN, "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 413
    assert refs(root) == before
    assert spooled_uploads() == []


def test_script_in_a_cell_is_rendered_as_text(project, operator: TestClient) -> None:
    root, db = project
    db_exec(db, "update t set name = ? where id = 2", "<script>alert('x')</script>")
    db_exec(db, "insert into t values (99, ?, 1)", '<img src=x onerror="alert(1)">')
    for path in ("/status", "/diff"):
        page = operator.get(path).text
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page, path
        assert "<script>alert" not in page and "<img src=x" not in page
    r = operator.post("/backup", data={"message": "<b>bold</b>"}, headers=SAME_ORIGIN)
    wait_job(operator, r.headers["location"])
    history = operator.get("/").text
    assert "&lt;b&gt;bold&lt;/b&gt;" in history and "<b>bold" not in history
    commit = operator.get("/commit/HEAD").text
    assert "&lt;b&gt;bold&lt;/b&gt;" in commit


def test_csp_allows_no_inline_script(operator: TestClient) -> None:
    for path in ("/", "/status", "/diff", "/backup", "/restore", "/conflicts", "/audit", "/health", "/commit/HEAD"):
        r = operator.get(path)
        assert r.status_code == 200, (path, r.text)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        for tag in re.findall(r"<script\b[^>]*>", r.text):
            assert re.search(r'\bsrc="/static/', tag), (path, tag)
        assert not re.search(r"\son[a-z]+=", r.text), path  # no inline event handlers either
    assert operator.get("/static/htmx.min.js").status_code == 200


def test_no_path_from_the_client(operator: TestClient) -> None:
    for path in ("/static/../app.db", "/static/..%2f..%2fapp.db", "/static/%2e%2e/%2e%2e/app.db"):
        assert operator.get(path).status_code in (400, 404), path
    r = operator.get("/download?rev=HEAD&format=../../etc/passwd")
    assert r.status_code == 400
    r = operator.post(
        "/restore/upload",
        files={"file": ("../../evil.sh", b"#!/bin/sh")},
        data={"strategy": "backup_wins"},
        headers=SAME_ORIGIN,
    )
    assert r.status_code == 400 and "not an export file" in r.text


# -- the pages at work -----------------------------------------------------------------------------


def test_backup_shows_in_history_and_audit_log(project, operator: TestClient) -> None:
    root, db = project
    db_exec(db, "update t set n = 500 where id = 5")
    r = operator.post("/backup", data={"message": "nightly from the web"}, headers=SAME_ORIGIN)
    assert r.status_code == 303
    page = wait_job(operator, r.headers["location"])
    assert "Backed up as commit" in page
    with Repo.open(root) as repo:
        (head, commit), _first = repo.log(n=2)
    assert commit.message == "nightly from the web"
    history = operator.get("/").text
    assert head.hex()[:12] in history and "nightly from the web" in history
    entry = [e for e in Repo.open(root).oplog() if e["op"] == "commit"][-1]
    assert entry["client"]["role"] == "operator" and entry["client"]["address"] == "testclient"
    assert entry["client"]["via"] == "web"
    audit = operator.get("/audit").text
    assert "web: operator from testclient" in audit
    # the diff of that commit shows the changed cell, old and new
    diff = operator.get(f"/diff?a=HEAD~1&b={head.hex()}").text
    assert re.search(r'<td class="changed"><del><span class="">5</span></del> → <ins><span class="">500</span>', diff)


def test_history_filters_by_table(project, operator: TestClient) -> None:
    root, db = project
    con = sqlite3.connect(db)
    con.execute("create table other (id integer primary key)")
    con.commit()
    con.close()
    with Repo.open(root) as repo:
        repo.commit("adds other")
    page = operator.get("/?table=other").text
    assert "adds other" in page and ">first<" not in page
    page = operator.get("/?table=t").text
    assert "first" in page and "adds other" not in page


def test_download_is_an_export_file(project, operator: TestClient) -> None:
    for fmt, check in (
        ("json", b'"format"'),
        ("sql", b"CREATE TABLE"),
        ("csv", b"PK"),
        ("json.zst", b"\x28\xb5\x2f\xfd"),
    ):
        r = operator.get(f"/download?rev=HEAD&format={fmt}")
        assert r.status_code == 200, r.text
        assert "attachment" in r.headers["content-disposition"]
        assert check in r.content[:200] or check in r.content, fmt


def export_of(root: Path, rev: str = "HEAD") -> bytes:
    out = root / "export.json"
    with Repo.open(root) as repo:
        repo.export(rev, out)
    data = out.read_bytes()
    out.unlink()
    return data


def test_upload_preview_and_restore_backup_wins(project, operator: TestClient) -> None:
    root, db = project
    backup = export_of(root)
    original = db_rows(db)
    db_exec(db, "update t set name = 'damaged' where id = 4")
    db_exec(db, "delete from t where id = 7")
    r = operator.post(
        "/restore/upload",
        files={"file": ("nightly.json", backup)},
        data={"strategy": "backup_wins"},
        headers=SAME_ORIGIN,
    )
    assert r.status_code == 303, r.text
    preview = operator.get(r.headers["location"])
    assert preview.status_code == 200, preview.text
    assert "Restore preview" in preview.text and "nightly.json" in preview.text
    assert db_rows(db)[4] == ("damaged", 4)  # the preview wrote nothing
    rev = re.search(r'name="rev" value="([0-9a-f]{64})"', preview.text).group(1)
    r = operator.post("/restore/apply", data={"rev": rev, "strategy": "backup_wins"}, headers=SAME_ORIGIN)
    page = wait_job(operator, r.headers["location"])
    assert "Done:" in page, page
    assert db_rows(db) == original
    assert 'id="undo">snap restore' in page
    assert spooled_uploads() == []


def test_broken_upload_is_refused_with_every_problem(project, operator: TestClient) -> None:
    root, db = project
    lines = export_of(root).decode().splitlines()
    broken = []
    for line in lines:
        if '"values":[1,1,"row1"]' in line:
            line = line.replace('"row1"', '"tampered"')  # its checksum no longer matches
        if '"values":[2,2,"row2"]' in line:
            line = line.replace('"row2"', "12")  # a number where text belongs
        broken.append(line)
    before_rows, before_refs = db_rows(db), refs(root)
    r = operator.post(
        "/restore/upload",
        files={"file": ("broken.json", "\n".join(broken).encode())},
        data={"strategy": "backup_wins"},
        headers=SAME_ORIGIN,
    )
    assert r.status_code == 422, r.text
    problems = re.findall(r"<li>(.*?)</li>", r.text.split('id="problems"')[1])
    assert len(problems) >= 2, r.text
    assert "broken.json: 2 problems, nothing imported" in r.text
    assert tempfile.gettempdir() not in r.text  # where the server spooled it is its own business
    assert db_rows(db) == before_rows and refs(root) == before_refs
    assert spooled_uploads() == []


def test_manual_conflict_resolved_in_the_page(project, operator: TestClient) -> None:
    root, db = project
    backup = export_of(root)  # row 3 is 'row3' there
    db_exec(db, "update t set name = 'ours' where id = 3")
    with Repo.open(root) as repo:
        repo.commit("ours")
    r = operator.post(
        "/restore/upload", files={"file": ("b.json", backup)}, data={"strategy": "manual"}, headers=SAME_ORIGIN
    )
    rev = re.search(r"rev=([0-9a-f]{64})", r.headers["location"]).group(1)
    preview = operator.get(r.headers["location"]).text
    assert "ours" in preview and "row3" in preview  # the conflict's cells, both sides
    r = operator.post("/restore/apply", data={"rev": rev, "strategy": "manual"}, headers=SAME_ORIGIN)
    page = wait_job(operator, r.headers["location"])
    assert "stopped on" in page
    page = operator.get("/conflicts").text
    assert 'id="left">1<' in page and 'data-key="3"' in page
    assert db_rows(db)[3] == ("ours", 3)
    r = operator.post("/conflicts/resolve", data={"side": "theirs", "table": "t", "key": "3"}, headers=SAME_ORIGIN)
    assert r.status_code == 303
    assert 'id="left">0<' in operator.get("/conflicts").text
    r = operator.post("/merge/continue", headers=SAME_ORIGIN)
    page = wait_job(operator, r.headers["location"])
    assert "Done:" in page, page
    assert db_rows(db)[3] == ("row3", 3)
    assert 'id="no-merge"' in operator.get("/conflicts").text


def test_job_progress_fragment_for_htmx(project, operator: TestClient) -> None:
    r = operator.post("/backup", data={"message": "x"}, headers=SAME_ORIGIN)
    wait_job(operator, r.headers["location"])
    fragment = operator.get(r.headers["location"], headers={"hx-request": "true"}).text
    assert fragment.lstrip().startswith("{") is False and fragment.lstrip().startswith("<section")
    assert operator.get("/jobs/nope").status_code == 404


def test_health_page(project, operator: TestClient) -> None:
    root, db = project
    page = operator.get("/health").text
    assert re.search(r'id="reachable"><span class="ok">yes', page)
    assert f"sqlite {sqlite3.sqlite_version}" in page and ": t</dd>" in page
    assert f"{db.stat().st_size:,} bytes" in page and "packs" in page
    assert 'id="last-verify">none recorded' in page
    r = operator.post("/health/verify", headers=SAME_ORIGIN)
    assert "The store is sound" in wait_job(operator, r.headers["location"])
    assert re.search(r'id="last-verify">[^<]*\(verify, web\): <span class="ok">ok', operator.get("/health").text)
    db.rename(root / "gone.db")
    page = operator.get("/health").text
    assert re.search(r'id="reachable"><span class="error">no: ', page)


# -- the command -----------------------------------------------------------------------------------


def test_snap_help_does_not_import_the_web_stack() -> None:
    code = (
        "import sys\nsys.argv = ['snap', '--help']\nfrom snapgit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('starlette', 'jinja2', 'uvicorn', 'multipart', 'snapgit.web') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
    assert "serve" in proc.stdout


def test_snap_serve_prints_the_url_first_and_serves(project) -> None:
    import httpx2 as httpx  # (the package the test extra installs for TestClient)

    root, _db = project
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapgit.cli", "serve", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{40,}", first), first
        base = first.split("/?")[0]
        for _ in range(100):
            try:
                httpx.get(base + "/static/snap.css", timeout=1)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        with httpx.Client(follow_redirects=True) as client:
            assert client.get(base + "/").status_code == 401
            r = client.get(first)
            assert r.status_code == 200 and "first" in r.text
            assert str(r.url) == base + "/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_snap_serve_port_in_use_is_one_line(project) -> None:
    import socket

    root, _db = project
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "snapgit.cli", "serve", "--port", str(port)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot listen on 127.0.0.1") and "Traceback" not in proc.stderr


def test_oplog_line_without_client_is_unchanged(project) -> None:
    root, _db = project
    entry = list(Repo.open(root).oplog())[-1]
    assert entry["op"] == "commit" and "client" not in entry
    assert json.dumps(entry)


def test_restore_page_round_trip_on_every_engine(tmp_path: Path, db_url: str, db_engine) -> None:
    """Preview and restore through the pages on SQLite, PostgreSQL and MariaDB; the health page
    reaches each engine."""
    import sqlalchemy as sa

    with db_engine.begin() as conn:
        conn.execute(sa.text("create table items (id integer primary key, label varchar(40), qty integer)"))
        conn.execute(sa.text("insert into items values (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)"))
    with Repo.init(tmp_path, db_url=db_url) as repo:
        first = repo.commit("first").commit_id.hex()
    with db_engine.begin() as conn:
        conn.execute(sa.text("update items set label = '<i>x</i>' where id = 2"))
        conn.execute(sa.text("delete from items where id = 3"))
        conn.execute(sa.text("insert into items values (4, 'four', 4)"))
    client = login(create_app(tmp_path, settings_from({}, read_only=False, bind_host="testserver")))
    assert re.search(r'id="reachable"><span class="ok">yes', client.get("/health").text)
    status = client.get("/status").text
    assert "&lt;i&gt;x&lt;/i&gt;" in status
    preview = client.get(f"/restore/preview?rev={first}&strategy=exact")
    assert preview.status_code == 200, preview.text
    assert re.search(r"<tfoot><tr><th>total</th><th class=\"num\">1</th><th class=\"num\">1</th>", preview.text)
    r = client.post("/restore/apply", data={"rev": first, "strategy": "exact"}, headers=SAME_ORIGIN)
    page = wait_job(client, r.headers["location"])
    assert "Done:" in page, page
    with db_engine.connect() as conn:
        rows = conn.execute(sa.text("select id, label, qty from items order by id")).all()
    assert [tuple(r) for r in rows] == [(1, "one", 1), (2, "two", 2), (3, "three", 3)]


def test_logout_ends_the_session(operator: TestClient) -> None:
    assert operator.get("/").status_code == 200
    r = operator.post("/logout", headers=SAME_ORIGIN)
    assert r.status_code == 303
    assert operator.get("/").status_code == 401


@pytest.mark.parametrize("fmt", ["json.zst", "csv"])
def test_a_download_uploads_back(project, operator: TestClient, fmt: str) -> None:
    """What the backup page downloads, the restore page takes: json.zst as it is, CSV as a zip."""
    root, db = project
    r = operator.get(f"/download?rev=HEAD&format={fmt}")
    assert r.status_code == 200
    name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
    db_exec(db, "update t set name = 'after the download' where id = 8")
    r = operator.post(
        "/restore/upload", files={"file": (name, r.content)}, data={"strategy": "backup_wins"}, headers=SAME_ORIGIN
    )
    assert r.status_code == 303, r.text
    rev = re.search(r"rev=([0-9a-f]{64})", r.headers["location"]).group(1)
    r = operator.post("/restore/apply", data={"rev": rev, "strategy": "backup_wins"}, headers=SAME_ORIGIN)
    assert "Done:" in wait_job(operator, r.headers["location"])
    assert db_rows(db)[8] == ("row8", 8)


def test_a_zip_with_paths_is_refused(operator: TestClient) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../escape.csv", "x")
    r = operator.post(
        "/restore/upload",
        files={"file": ("x.zip", buf.getvalue())},
        data={"strategy": "backup_wins"},
        headers=SAME_ORIGIN,
    )
    assert r.status_code == 400 and "unexpected member" in r.text


def test_writes_of_one_server_take_turns(project, operator: TestClient) -> None:
    """Two backups asked for at once run one after the other (the store's writer lease is one
    per process): the second finds nothing new, and no lease is left behind."""
    root, db = project
    db_exec(db, "update t set n = 7000 where id = 7")
    first = operator.post("/backup", data={"message": "one"}, headers=SAME_ORIGIN).headers["location"]
    second = operator.post("/backup", data={"message": "two"}, headers=SAME_ORIGIN).headers["location"]
    pages = [wait_job(operator, first), wait_job(operator, second)]
    assert sum("Backed up as commit" in p for p in pages) == 1
    assert sum("Nothing to back up" in p for p in pages) == 1
    assert list((root / ".snapstore" / "locks").glob("writer-*")) == []


def test_snap_serve_on_all_interfaces_warns(project) -> None:
    root, _db = project
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapgit.cli", "serve", "--host", "0.0.0.0", "--port", "0", "--read-only"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        warning = proc.stderr.readline()
        assert warning.startswith("warning: listening on 0.0.0.0") and "allowed_hosts" in warning
        assert proc.stderr.readline().startswith("note: read-only")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
