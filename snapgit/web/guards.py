"""The ASGI layers every request passes before a page: security headers, the body cap, the login.

From the outside in (see :func:`snapgit.web.app.create_app`): Starlette's trusted-host check
(a foreign ``Host`` is DNS rebinding: 400), :class:`SecurityHeaders`, :class:`BodyLimit` and
:class:`Gate` (the login, the session, and the cross-site check of every POST; see
:mod:`snapgit.web.auth`).

The body cap is counted, not trusted: a ``Content-Length`` over the cap is refused at once, and a
body sent in chunks (no length) is counted as it arrives, so neither kind can make the server
spool more than the cap to disk. Past the cap the request gets 413 and the page never runs (or,
when it was already reading, its reading fails and nothing it wrote stays: an upload lives in a
temporary file removed when the request ends).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snapgit.web.auth import Access, cross_site_refusal

__all__ = ["BodyLimit", "BodyTooLarge", "Gate", "SecurityHeaders", "CSP"]

# No inline script, no script from anywhere but this server (htmx is served from /static), no
# framing (clickjacking), no <base> games, forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class BodyTooLarge(Exception):
    """Raised into the page reading a body that grew past the cap."""


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"  # the login token once sat in the URL
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                await PlainTextResponse("bad Content-Length", status_code=400)(scope, receive, send)
                return
            if too_big:
                await self._refuse(scope, receive, send)
                return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        text = f"request body too large: the limit is {self.max_bytes:,} bytes ([serve] max_body in config.toml)"
        response = PlainTextResponse(text, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


class Gate:
    """Login by token, sessions by cookie or Bearer, and the cross-site check of every POST.

    Sets ``scope["state"]["role"]`` (and ``"via"``, ``"session"``) for the pages."""

    OPEN_PREFIXES = ("/static/",)

    def __init__(self, app: ASGIApp, access: Access, login_page: Any) -> None:
        self.app = app
        self.access = access
        self.login_page = login_page  # (request, status) -> Response, for a request without a session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        if path.startswith(self.OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = request.query_params.get("token")
        if token is not None and scope["method"] in ("GET", "HEAD"):
            await self._login(request, token)(scope, receive, send)
            return
        sid = request.cookies.get(self.access.cookie_name)
        session = self.access.session(sid)
        bearer_only = False
        if session is None:
            auth = request.headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                session = self.access.bearer(value.strip())
                bearer_only = session is not None and sid is None
        if session is None:
            await self.login_page(request, 401)(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            why = cross_site_refusal({k: v for k, v in request.headers.items()}, cookie_less_bearer=bearer_only)
            if why is not None:
                await PlainTextResponse(why, status_code=403)(scope, receive, send)
                return
        state = scope.setdefault("state", {})
        state["role"] = session.role
        state["via"] = session.via
        state["session"] = sid
        await self.app(scope, receive, send)

    def _login(self, request: Request, token: str) -> Response:
        opened = self.access.login(token)
        if opened is None:
            return self.login_page(request, 401, refused=True)
        sid, _session = opened
        query = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != "token"])
        target = request.url.path + (f"?{query}" if query else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            self.access.cookie_name,
            sid,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response
