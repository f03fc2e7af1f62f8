"""The pages of ``snap serve``: routes over :class:`snapgit.repo.Repo`, rendered by Jinja2.

Every page is rendered on the server and every form works without JavaScript; htmx (vendored,
``static/htmx.min.js``) only polls a running job's progress in place. Reading pages (history, a
commit, diff, status, downloads, the audit log, health) need the ``viewer`` role; everything
that writes (backup, restore, merge, conflicts) needs ``operator`` and is a POST, which
:class:`snapgit.web.guards.Gate` has checked against cross-site requests. A page opens the store
for itself (a :class:`Repo` per request or job, closed after), so requests and jobs share no
state but the files, where the Repo's locks order them as they order CLI commands. Every write
runs inside :meth:`Repo.on_behalf_of`, so its audit log line names the role and the address.

Uploads (export files to restore from) are spooled to a private temporary directory, validated
completely by the importer (every problem listed, nothing written when there is one), committed
under ``refs/imports/``, and removed when the request ends; no path is ever taken from the
client, only the file's extension from a fixed list.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import select_autoescape
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from snapgit.errors import LockedError, NotFoundError, SnapError
from snapgit.ops.mergeflow import conflict_json
from snapgit.repo import Repo
from snapgit.web import views
from snapgit.web.auth import Access
from snapgit.web.guards import BodyLimit, BodyTooLarge, Gate, SecurityHeaders
from snapgit.web.jobs import Jobs
from snapgit.web.settings import Settings

__all__ = ["create_app", "STRATEGIES", "EXPORT_FORMATS"]

HERE = Path(__file__).parent
STRATEGIES = {
    "backup_wins": "backup wins: the backup's side of every conflict",
    "database_wins": "database wins: the live database's side of every conflict",
    "manual": "manual: stop on conflicts and settle them on the conflicts page",
    "exact": "exact restore: make the database equal to the backup (no merge)",
}
EXPORT_FORMATS = {"json": ".json", "json.zst": ".json.zst", "csv": ".zip", "sql": ".sql"}
UPLOAD_SUFFIXES = (".json.zst", ".json", ".zip")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20
REQUEST_WAIT = 30.0  # seconds a page's own write waits for a running job's


class Forbidden(Exception):
    """A page or action the session's role does not allow."""


class BadRequest(SnapError):
    """A form with a missing or wrong field."""


class _Pages:
    """The routes; one instance per app, holding what the routes share."""

    def __init__(self, store_dir: Path, settings: Settings, access: Access) -> None:
        self.store_dir = store_dir
        self.settings = settings
        self.access = access
        self.jobs = Jobs()
        self._writer = threading.Lock()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.autoescape = select_autoescape(default=True, default_for_string=True)

    # -- helpers ---------------------------------------------------------------------------------

    def repo(self) -> Repo:
        return Repo.open(self.store_dir)

    @contextlib.contextmanager
    def writing(self, wait: float | None = None) -> Iterator[None]:
        """One operation that writes at a time in this server. The store's writer lease is one
        file per process (store/lock.py), shared by every thread: two Repos of one process
        writing at once would each drop the other's lease when done, and a gc could start under
        the one still writing. Jobs wait their turn; a page's own write waits ``wait`` seconds."""
        if not self._writer.acquire(timeout=-1 if wait is None else wait):
            raise LockedError(
                "another backup, restore or merge of this server is running",
                hint="try again when it has finished (its page shows its progress)",
            )
        try:
            yield
        finally:
            self._writer.release()

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        state = request.scope.get("state", {})
        context.setdefault("role", state.get("role"))
        context.setdefault("read_only", self.settings.read_only)
        context.setdefault("path", request.url.path)
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    @staticmethod
    def role(request: Request) -> str:
        return request.scope.get("state", {}).get("role", "")

    def need_operator(self, request: Request, what: str) -> None:
        if self.role(request) != "operator":
            why = "the server runs --read-only" if self.settings.read_only else "your session is a viewer's"
            raise Forbidden(f"{what} needs the operator role; {why}")

    @staticmethod
    def client(request: Request) -> dict[str, Any]:
        state = request.scope.get("state", {})
        return {
            "via": "web",
            "role": state.get("role"),
            "login": state.get("via"),
            "address": request.client.host if request.client else None,
        }

    def login_page(self, request: Request, status: int, refused: bool = False) -> Response:
        return self.render(request, "login.html", status_code=status, refused=refused, role=None)

    # -- history, commit -------------------------------------------------------------------------

    def history(self, request: Request) -> Response:
        ref = request.query_params.get("ref") or "HEAD"
        table = request.query_params.get("table") or None
        n = _int(request.query_params.get("n"), 100, 1, 1000)
        with self.repo() as repo:
            deco = decorations(repo)
            commits: list[views.CommitView] = []
            all_tables: set[str] = set()
            if repo.head() is not None or ref != "HEAD":
                walked = repo.log(ref, n=2000 if table else n)
                ids_of: dict[bytes, dict[str, bytes]] = {}

                def table_ids(oid: bytes) -> dict[str, bytes]:
                    if oid not in ids_of:
                        ids_of[oid] = {t.name: t.table_id for t in repo.tables(oid.hex())}
                    return ids_of[oid]

                for oid, c in walked:
                    view = views.commit_view(oid, c, deco.get(oid))
                    all_tables.update(view.rows)
                    if table:
                        mine = table_ids(oid).get(table)
                        theirs = table_ids(c.parents[0]).get(table) if c.parents else None
                        if mine is None or mine == theirs:
                            continue
                    commits.append(view)
                    if len(commits) >= n:
                        break
            branches = [(name, oid.hex()[:12], current) for name, oid, current in repo.branches()]
            tags = [(name, oid.hex()[:12]) for name, oid in repo.tags()]
            head_ref = repo.head_ref()
        return self.render(
            request,
            "history.html",
            commits=commits,
            branches=branches,
            tags=tags,
            head_ref=(head_ref or "detached HEAD").removeprefix("refs/heads/"),
            ref=ref,
            table=table,
            tables=sorted(all_tables | ({table} if table else set())),
        )

    def commit(self, request: Request) -> Response:
        rev = request.path_params["rev"]
        with self.repo() as repo:
            oid = repo.resolve(rev)
            c = repo.read_commit(oid)
            view = views.commit_view(oid, c, decorations(repo).get(oid))
            tables = repo.tables(oid.hex())
        return self.render(request, "commit.html", c=view, tables=tables, formats=list(EXPORT_FORMATS))

    # -- diff, status ----------------------------------------------------------------------------

    def diff(self, request: Request) -> Response:
        q = request.query_params
        a = q.get("a") or "HEAD"
        b = q.get("b") or None
        table = q.get("table") or None
        page = _int(q.get("page"), 1, 1, 10**9)
        with self.repo() as repo:
            if repo.head() is None and b is None and a == "HEAD":
                raise NotFoundError("no commits yet", hint="take a backup first")
            diffs = repo.diff(a, b)
            return self._diff_page(request, "diff.html", diffs, table, page, a=a, b=b or "")

    def status(self, request: Request) -> Response:
        q = request.query_params
        table = q.get("table") or None
        page = _int(q.get("page"), 1, 1, 10**9)
        with self.repo() as repo:
            diffs = repo.status()
            head = repo.head()
            head_ref = (repo.head_ref() or "detached HEAD").removeprefix("refs/heads/")
            return self._diff_page(
                request,
                "status.html",
                diffs,
                table,
                page,
                head=head.hex()[:12] if head else None,
                head_ref=head_ref,
            )

    def _diff_page(self, request: Request, template: str, diffs: list[Any], table: str | None, page: int, **kw: Any):
        stats = [(d, d.stat()) for d in diffs]
        changed = [(d, s) for d, s in stats if s.total or s.schema]
        shown = None
        if changed:
            chosen = next((d for d, _s in changed if d.name == table), changed[0][0])
            shown = views.diff_page(chosen, page)
        return self.render(
            request,
            template,
            stats=[s for _d, s in changed],
            shown=shown,
            totals={
                "added": sum(s.added for _d, s in changed),
                "removed": sum(s.removed for _d, s in changed),
                "changed": sum(s.changed for _d, s in changed),
            },
            **kw,
        )

    # -- backup, downloads -----------------------------------------------------------------------

    def backup_form(self, request: Request) -> Response:
        with self.repo() as repo:
            head = repo.head()
            recent = [views.commit_view(oid, c) for oid, c in repo.log(n=10)] if head else []
        jobs = [j for j in self.jobs.recent() if j.kind == "backup"][:10]
        return self.render(request, "backup.html", recent=recent, jobs=jobs, formats=list(EXPORT_FORMATS))

    async def backup(self, request: Request) -> Response:
        self.need_operator(request, "a backup")
        form = await request.form(max_files=0, max_fields=10)
        message = str(form.get("message") or "").strip() or "backup from the web page"
        client = self.client(request)

        def work(progress: Any) -> Any:
            with self.writing(), self.repo() as repo, repo.on_behalf_of(client):
                return repo.commit(message, progress=progress)

        job = self.jobs.start("backup", f"backup: {message}", self.role(request), work)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def download(self, request: Request) -> Response:
        rev = request.query_params.get("rev") or "HEAD"
        fmt = request.query_params.get("format") or "json"
        if fmt not in EXPORT_FORMATS:
            raise BadRequest(f"unknown export format {fmt!r}", hint="json, json.zst, csv or sql")
        tmp = Path(tempfile.mkdtemp(prefix="snap-export-"))
        try:
            with self.repo() as repo, repo.on_behalf_of(self.client(request)):
                oid = repo.resolve(rev)
                name = f"snap-{oid.hex()[:12]}{EXPORT_FORMATS[fmt]}"
                if fmt == "csv":
                    repo.export(oid.hex(), tmp / "csv", fmt="csv")
                    _zip_dir(tmp / "csv", tmp / name)
                else:
                    repo.export(oid.hex(), tmp / name, fmt="sql" if fmt == "sql" else "json")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        path = tmp / name
        size = path.stat().st_size
        media = {"json": "application/json", "sql": "application/sql", "csv": "application/zip"}.get(
            fmt, "application/zstd"
        )
        return StreamingResponse(
            _read_chunks(path),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(size)},
            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
        )

    # -- restore ---------------------------------------------------------------------------------

    def restore_form(self, request: Request) -> Response:
        self.need_operator(request, "a restore")
        with self.repo() as repo:
            recent = [views.commit_view(oid, c) for oid, c in repo.log(n=30)] if repo.head() else []
            branches = [name for name, _o, _c in repo.branches()]
            tags = [name for name, _o in repo.tags()]
            merging = repo.merge_state() is not None
        return self.render(
            request,
            "restore.html",
            recent=recent,
            branches=branches,
            tags=tags,
            strategies=STRATEGIES,
            merging=merging,
            max_body=self.settings.max_body,
        )

    async def upload(self, request: Request) -> Response:
        self.need_operator(request, "a restore")
        tmp = Path(tempfile.mkdtemp(prefix="snap-upload-"))  # 0700: the upload is nobody else's
        try:
            form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
            try:
                upload = form.get("file")
                strategy = str(form.get("strategy") or "backup_wins")
                if strategy not in STRATEGIES:
                    raise BadRequest(f"unknown strategy {strategy!r}", hint=", ".join(STRATEGIES))
                if not isinstance(upload, UploadFile) or not upload.filename:
                    raise BadRequest("no file was uploaded", hint="choose an export file (.json, .json.zst, .zip)")
                name = _upload_name(upload.filename)
                await run_in_threadpool(_spool, upload, tmp / name)
            finally:
                await form.close()
            client = self.client(request)

            def work() -> dict[str, Any]:
                source = tmp / name
                if name.endswith(".zip"):
                    source = _unzip_flat(source, tmp / "csv", 20 * self.settings.max_body)
                with self.writing(REQUEST_WAIT), self.repo() as repo, repo.on_behalf_of(client):
                    return repo.import_file(source, message=f"upload {name} (web)")

            try:
                imported = await run_in_threadpool(work)
            except SnapError as exc:
                # the problems name the file; not where this server spooled it
                exc.message = exc.message.replace(f"{tmp}{os.sep}", "")
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return RedirectResponse(
            f"/restore/preview?rev={imported['commit'].hex()}&strategy={strategy}&uploaded={name}", status_code=303
        )

    def preview(self, request: Request) -> Response:
        self.need_operator(request, "a restore")
        rev = (request.query_params.get("rev") or "").strip()
        strategy = request.query_params.get("strategy") or "backup_wins"
        if not rev:
            raise BadRequest("choose a commit to restore", hint="pick one from the list or type its id")
        if strategy not in STRATEGIES:
            raise BadRequest(f"unknown strategy {strategy!r}", hint=", ".join(STRATEGIES))
        with self.writing(REQUEST_WAIT), self.repo() as repo:  # a preview holds the lease too
            oid = repo.resolve(rev)
            target = views.commit_view(oid, repo.read_commit(oid))
            if strategy == "exact":
                result = repo.restore(oid.hex(), preview=True)
            else:
                result = repo.merge(oid.hex(), strategy=strategy, preview=True)
        plans = [views.plan_view(p, conflict_json) for p in result.plans]
        return self.render(
            request,
            "preview.html",
            target=target,
            strategy=strategy,
            strategy_text=STRATEGIES[strategy],
            result=result,
            totals=result.totals(),
            plans=plans,
            uploaded=request.query_params.get("uploaded"),
        )

    async def apply(self, request: Request) -> Response:
        self.need_operator(request, "a restore")
        form = await request.form(max_files=0, max_fields=10)
        rev = str(form.get("rev") or "").strip()
        strategy = str(form.get("strategy") or "")
        if not rev or strategy not in STRATEGIES:
            raise BadRequest("the restore form needs a commit and a strategy", hint="start again from the restore page")
        client = self.client(request)

        def work(progress: Any) -> Any:
            with self.writing(), self.repo() as repo, repo.on_behalf_of(client):
                if strategy == "exact":
                    return _slim(repo.restore(rev, progress=progress))
                return _slim(repo.merge(rev, strategy=strategy, progress=progress))

        kind = "restore" if strategy == "exact" else "merge"
        job = self.jobs.start(kind, f"{kind} {rev[:12]} ({strategy})", self.role(request), work)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    # -- conflicts -------------------------------------------------------------------------------

    def conflicts(self, request: Request) -> Response:
        with self.repo() as repo:
            state = repo.merge_state()
            items = repo.conflicts() if state is not None else []
        tables: dict[str, list[views.ConflictView]] = {}
        for plan, c in items:
            tables.setdefault(c.table, []).append(views.conflict_view(plan, c, conflict_json(plan, c)))
        left = sum(1 for _p, c in items if c.resolution is None)
        return self.render(
            request,
            "conflicts.html",
            state=state,
            tables=tables,
            total=len(items),
            left=left,
            merging=state is not None,
        )

    async def resolve(self, request: Request) -> Response:
        self.need_operator(request, "resolving conflicts")
        form = await request.form(max_files=0, max_fields=10)
        side = str(form.get("side") or "")
        if side not in ("ours", "theirs"):
            raise BadRequest("choose ours or theirs")
        table = str(form.get("table") or "") or None
        key = str(form.get("key") or "") or None
        client = self.client(request)

        def work() -> int:
            with self.writing(REQUEST_WAIT), self.repo() as repo, repo.on_behalf_of(client):
                return repo.resolve_conflicts(side, table=table, keys=[key] if key else None)

        await run_in_threadpool(work)
        return RedirectResponse("/conflicts", status_code=303)

    def merge_continue(self, request: Request) -> Response:
        self.need_operator(request, "continuing a merge")
        client = self.client(request)

        def work(progress: Any) -> Any:
            with self.writing(), self.repo() as repo, repo.on_behalf_of(client):
                return _slim(repo.merge_continue(progress=progress))

        job = self.jobs.start("continue", "merge --continue", self.role(request), work)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def merge_abort(self, request: Request) -> Response:
        self.need_operator(request, "aborting a merge")
        with self.writing(REQUEST_WAIT), self.repo() as repo, repo.on_behalf_of(self.client(request)):
            repo.merge_abort()
        return RedirectResponse("/conflicts", status_code=303)

    # -- jobs, audit, health ---------------------------------------------------------------------

    def job(self, request: Request) -> Response:
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            raise NotFoundError("no such job on this server", hint="jobs are kept in memory until the server stops")
        fragment = request.headers.get("hx-request") == "true"
        return self.render(request, "job_status.html" if fragment else "job.html", job=job)

    def audit(self, request: Request) -> Response:
        n = _int(request.query_params.get("n"), 200, 1, 100_000)
        with self.repo() as repo:
            entries = list(repo.oplog())
        entries = list(reversed(entries))[:n]
        return self.render(request, "audit.html", entries=entries, n=n)

    def health(self, request: Request) -> Response:
        with self.repo() as repo:
            store = repo.store.root
            packs = list((store / "objects" / "pack").glob("*.pack"))
            size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
            verifies = [e for e in repo.oplog() if e.get("op") in ("verify", "repair")]
            db = repo.database_health()
            commits = sum(1 for _ in repo.log()) if repo.head() else 0
        return self.render(
            request,
            "health.html",
            store=str(store),
            packs=len(packs),
            pack_bytes=sum(p.stat().st_size for p in packs),
            size=size,
            commits=commits,
            last_verify=verifies[-1] if verifies else None,
            db=db,
        )

    def verify(self, request: Request) -> Response:
        self.need_operator(request, "a verify")
        client = self.client(request)

        def work(_progress: Any) -> Any:
            with self.repo() as repo, repo.on_behalf_of(client):
                return repo.verify()

        job = self.jobs.start("verify", "verify the store", self.role(request), work)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def logout(self, request: Request) -> Response:
        self.access.logout(request.scope.get("state", {}).get("session"))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(self.access.cookie_name, path="/")
        return response

    # -- errors ----------------------------------------------------------------------------------

    def error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, Forbidden):
            return self.render(request, "error.html", status_code=403, message=str(exc), hint=None, problems=[])
        if isinstance(exc, HTTPException):
            return self.render(request, "error.html", status_code=exc.status_code, message=exc.detail, hint=None)
        if isinstance(exc, BodyTooLarge):
            raise exc  # BodyLimit answers 413
        assert isinstance(exc, SnapError)
        lines = exc.message.splitlines()
        status = 400
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, LockedError):
            status = 409
        elif len(lines) > 1:
            status = 422  # an import's refusal: every problem on its own line
        return self.render(
            request, "error.html", status_code=status, message=lines[0], hint=exc.hint, problems=lines[1:]
        )


def decorations(repo: Repo) -> dict[bytes, list[str]]:
    """Branch and tag names per commit, HEAD's branch first."""
    deco: dict[bytes, list[str]] = {}
    for name, oid, current in repo.branches():
        deco.setdefault(oid, []).insert(0 if current else len(deco.get(oid, [])), f"HEAD → {name}" if current else name)
    if repo.head_ref() is None and (head := repo.head()) is not None:
        deco.setdefault(head, []).insert(0, "HEAD")
    for name, _oid in repo.tags():
        try:
            target = repo.resolve(f"refs/tags/{name}")
        except SnapError:
            continue
        deco.setdefault(target, []).append(f"tag: {name}")
    return deco


def _slim(result: Any) -> Any:
    """A merge's result as a finished job keeps it: the rows it wrote dropped (its counts stay),
    so that the server's recent jobs do not hold a big restore's rows in memory."""
    for plan in result.plans:
        plan.inserts, plan.updates, plan.deletes = [], [], []
    return result


def _int(text: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(max(int(text), lo), hi) if text else default
    except ValueError:
        return default


def _upload_name(filename: str) -> str:
    """A name for the spooled upload: the client's base name reduced to safe characters, with
    one of the known extensions; never a path."""
    base = os.path.basename(filename.replace("\\", "/"))
    suffix = next((s for s in UPLOAD_SUFFIXES if base.lower().endswith(s)), None)
    if suffix is None:
        raise BadRequest(
            f"{base[:80]!r} is not an export file snapgit reads",
            hint="upload a .json or .json.zst export, or a CSV export directory as a .zip",
        )
    stem = _SAFE_NAME.sub("_", base[: -len(suffix)]).strip("._")[:80] or "upload"
    return stem + suffix


def _spool(upload: UploadFile, dest: Path) -> None:
    upload.file.seek(0)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(upload.file, out, _CHUNK)


def _unzip_flat(archive: Path, directory: Path, max_bytes: int) -> Path:
    """A CSV export uploaded as a zip: its files, which must sit at its top level (or in one
    folder) with plain names, extracted into ``directory``; refused past ``max_bytes``."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"{archive.name}: not a zip file ({exc})", hint="zip the CSV export directory") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > max_bytes:
            raise BadRequest(f"{archive.name}: unpacks to more than {max_bytes:,} bytes")
        directory.mkdir(mode=0o700)
        for m in members:
            name = m.filename.rsplit("/", 1)[-1]
            if m.filename.count("/") > 1 or not name or _SAFE_NAME.search(name) or name.startswith("."):
                raise BadRequest(f"{archive.name}: unexpected member {m.filename[:80]!r}", hint="zip a CSV export")
            with zf.open(m) as src, open(directory / name, "xb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
    return directory


def _zip_dir(directory: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(directory.iterdir()):
            zf.write(f, f"{directory.name}/{f.name}")


def _read_chunks(path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def create_app(store_dir: str | Path, settings: Settings | None = None) -> Starlette:
    """The ASGI app serving the store in ``store_dir``; ``app.state.access`` holds its tokens."""
    settings = settings or Settings()
    access = Access(read_only=settings.read_only, tokens=settings.tokens)
    pages = _Pages(Path(store_dir), settings, access)
    routes = [
        Route("/", pages.history),
        Route("/commit/{rev}", pages.commit),
        Route("/diff", pages.diff),
        Route("/status", pages.status),
        Route("/backup", pages.backup_form),
        Route("/backup", pages.backup, methods=["POST"]),
        Route("/download", pages.download),
        Route("/restore", pages.restore_form),
        Route("/restore/upload", pages.upload, methods=["POST"]),
        Route("/restore/preview", pages.preview),
        Route("/restore/apply", pages.apply, methods=["POST"]),
        Route("/conflicts", pages.conflicts),
        Route("/conflicts/resolve", pages.resolve, methods=["POST"]),
        Route("/merge/continue", pages.merge_continue, methods=["POST"]),
        Route("/merge/abort", pages.merge_abort, methods=["POST"]),
        Route("/jobs/{job_id}", pages.job),
        Route("/audit", pages.audit),
        Route("/health", pages.health),
        Route("/health/verify", pages.verify, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts),
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=settings.max_body),
        Middleware(Gate, access=access, login_page=pages.login_page),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={SnapError: pages.error, Forbidden: pages.error, HTTPException: pages.error},
    )
    app.state.access = access
    app.state.pages = pages
    return app
