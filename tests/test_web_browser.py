"""snap serve in a real browser: Playwright driving the system's Chromium against `snap serve`
started for real in a subprocess (its first line is the URL with the login token).

Debian's ``chromium`` package is used through ``executable_path`` (``playwright install``, which
downloads browsers, is never run). Without it or without Playwright these tests skip with the
reason, except under ``CI=true``, where they fail: CI installs both (.ci/run).

``SNAP_WEB_SCREENSHOTS=1`` also writes the screenshots of the history and of a restore preview
to ``docs/img/`` (the README shows them); otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapgit.repo import Repo
from test_web import VIEWER_TOKEN, db_exec, db_rows, export_of, make_project, refs

IN_CI = os.environ.get("CI") == "true"
CHROMIUM = os.environ.get("SNAP_TEST_CHROMIUM", "/usr/bin/chromium")
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


MISSING = _missing()
if MISSING and IN_CI:
    pytestmark = pytest.mark.usefixtures("_fail_in_ci")
elif MISSING:
    pytestmark = pytest.mark.skip(reason=MISSING)


@pytest.fixture
def _fail_in_ci() -> None:
    pytest.fail(f"browser tests cannot run under CI: {MISSING}")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield b
        b.close()


class Server:
    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snapgit.cli", "serve", "--port", "0", *args],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.login_url = self.proc.stdout.readline().strip()
        assert self.login_url.startswith("http://127.0.0.1:"), self.proc.stderr.read() if self.proc.stderr else ""
        self.base = self.login_url.split("/?")[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, Path, Server]]:
    db = make_project(tmp_path)
    server = Server(tmp_path)
    yield tmp_path, db, server
    server.stop()


@pytest.fixture
def page(browser, project):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(project[2].login_url)
    yield page
    context.close()
    csp = [e for e in errors if "Content Security Policy" in e]
    assert not csp, csp  # the pages and htmx run under the CSP without a violation


def screenshot(page, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get("SNAP_WEB_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOCS_IMG / name)


def wait_done(page) -> str:
    from playwright.sync_api import expect

    expect(page.locator("#job-state")).not_to_contain_text("running", timeout=60_000)
    return page.locator("#job").inner_text()


def test_login_backup_history_and_diff(page, project) -> None:
    from playwright.sync_api import expect

    root, db, server = project
    assert "token=" not in page.url  # swapped for a cookie, and gone from the address bar
    expect(page.locator("#role")).to_contain_text("operator")
    # htmx loaded from /static under the CSP, with its settings from the page's meta tag
    assert page.evaluate("() => typeof htmx === 'object' && htmx.config.allowEval === false")
    db_exec(db, "update t set name = 'renamed' where id = 6")
    db_exec(db, "insert into t values (42, 'answer', 42)")
    page.click("text=Backup")
    page.fill("input[name=message]", "nightly backup from the page")
    page.click("text=take a backup now")
    text = wait_done(page)
    assert "Backed up as commit" in text
    page.click("nav >> text=History")
    expect(page.locator("#log")).to_contain_text("nightly backup from the page")
    expect(page.locator("#log tbody tr").first).to_contain_text("t 21")
    with Repo.open(root) as repo:
        # a few more commits, so the history looks like one
        db_exec(db, "delete from t where id = 20")
        repo.commit("remove row 20")
        repo.create_tag("v1", "HEAD", "release 1")
    page.reload()
    screenshot(page, root, "history.png")
    # the diff of the web backup against its parent: the changed cell, old and new
    page.click("#log tbody tr:nth-child(2) a.oid")
    page.click("a.parent-diff")
    changed = page.locator("td.changed").first
    expect(changed).to_contain_text("row6")
    expect(changed).to_contain_text("renamed")
    expect(page.locator("#diff-rows")).to_contain_text("answer")


def upload(page, path: Path, strategy: str) -> None:
    page.click("nav >> text=Restore")
    page.set_input_files("#restore-upload input[type=file]", str(path))
    page.check(f"#u-{strategy}")
    page.click("text=upload and preview")


def test_upload_preview_and_restore_backup_wins(page, project) -> None:
    from playwright.sync_api import expect

    root, db, _server = project
    backup = root / "nightly.json"
    backup.write_bytes(export_of(root))
    original = db_rows(db)
    db_exec(db, "update t set name = 'broken by a bad deploy' where id = 4")
    db_exec(db, "update t set n = -1 where id = 9")
    db_exec(db, "delete from t where id = 12")
    upload(page, backup, "backup_wins")
    expect(page.locator("h1")).to_have_text("Restore preview")
    expect(page.locator("#plan")).to_contain_text("t")
    expect(page.locator("details.conflict").first).to_contain_text("broken by a bad deploy")
    screenshot(page, root, "restore-preview.png")
    assert db_rows(db)[4] == ("broken by a bad deploy", 4)  # previewing wrote nothing
    page.click("text=restore now")
    text = wait_done(page)
    assert "Done:" in text and "snap restore" in text
    assert db_rows(db) == original


def test_manual_conflict_resolved_in_the_page(page, project) -> None:
    from playwright.sync_api import expect

    root, db, _server = project
    backup = root / "b.json"
    backup.write_bytes(export_of(root))
    db_exec(db, "update t set name = 'ours' where id = 3")
    upload(page, backup, "manual")
    page.click("text=restore now")
    text = wait_done(page)
    assert "stopped on 1 conflicts" in text
    page.click("text=Resolve them")
    expect(page.locator("#left")).to_have_text("1")
    row = page.locator('tbody.conflict[data-key="3"]')
    expect(row).to_contain_text("ours")
    expect(row).to_contain_text("row3")
    row.locator("button[value=theirs]").click()
    expect(page.locator("#left")).to_have_text("0")
    assert db_rows(db)[3] == ("ours", 3)  # nothing written before continuing
    page.click("#continue")
    text = wait_done(page)
    assert "Done:" in text
    assert db_rows(db)[3] == ("row3", 3)


def test_broken_upload_refused_with_problems(page, project) -> None:
    from playwright.sync_api import expect

    root, db, _server = project
    text = export_of(root).decode()
    broken = root / "broken.json"
    broken.write_text(
        text.replace('"values":[5,5,"row5"]', '"values":[5,5,"forged"]').replace('"rows":20', '"rows":21')
    )
    before_rows, before_refs = db_rows(db), refs(root)
    upload(page, broken, "backup_wins")
    expect(page.locator("#error")).to_contain_text("nothing imported")
    problems = page.locator("#problems li")
    assert problems.count() >= 2
    expect(problems.first).to_be_visible()
    assert db_rows(db) == before_rows and refs(root) == before_refs


def test_viewer_is_refused_a_restore(browser, project) -> None:
    from playwright.sync_api import expect

    root, db, server = project
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.base}/?token={VIEWER_TOKEN}")
    expect(page.locator("#role")).to_contain_text("viewer")
    page.goto(f"{server.base}/restore")
    expect(page.locator("#error")).to_contain_text("needs the operator role")
    # the form itself, posted from the page: refused too
    before = db_rows(db)
    response = page.request.post(f"{server.base}/restore/apply", form={"rev": "HEAD", "strategy": "exact"})
    assert response.status == 403
    page.goto(f"{server.base}/backup")
    expect(page.locator("#backup-form")).to_have_count(0)
    assert db_rows(db) == before
    context.close()


def test_a_cell_holding_script_stays_text(page, project) -> None:
    root, db, server = project
    db_exec(db, "update t set name = ? where id = 2", "<script>document.title='pwned'</script><b>bold</b>")
    page.goto(f"{server.base}/status")
    assert page.title() != "pwned"
    cell = page.locator("td.changed ins").first
    assert cell.inner_text() == "<script>document.title='pwned'</script><b>bold</b>"
    assert page.locator("td.changed b").count() == 0
