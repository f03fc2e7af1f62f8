"""Who may use the pages, and which requests are refused before any page sees them.

**Tokens and roles.** ``snap serve`` makes a random login token per run and prints it in the URL
to open (``/?token=...``, as Jupyter and Datasette do). The first request carrying it swaps it for
a session cookie (``HttpOnly; SameSite=Strict``) and is redirected to the same page without the
token, so it leaves the address bar and the browser's history; the token is then spent. The login
token grants ``operator`` (``viewer`` under ``--read-only``). ``[serve.tokens]`` in config.toml
may name lasting tokens per role, stored as SHA-256 hex digests, never in clear; programs send
them as ``Authorization: Bearer TOKEN``, and a browser may also log in with one through ``?token=``.

Two roles: ``viewer`` reads pages and downloads exports; ``operator`` may also back up, restore,
merge and resolve conflicts. ``--read-only`` makes every token a viewer's.

**Cross-site requests.** Every request that changes anything is a POST, and a POST is refused
unless the browser says it came from this site's own pages: ``Sec-Fetch-Site`` of
``same-origin`` (or ``none``, typed by the user), else, from a browser that does not send it, an
``Origin`` whose host is the request's ``Host``. SameSite cookies are not enough: a page served on
another port of the same host is "same-site" and its forms carry the cookie. A request with
neither header is not from a browser's page (curl, a script), and a Bearer request without a
cookie cannot be forged by one; both pass. This is the check of Go's ``CrossOriginProtection``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from snapgit.errors import SnapError

__all__ = [
    "ROLES",
    "Access",
    "ServeConfigError",
    "cross_site_refusal",
    "hash_token",
]

ROLES = ("viewer", "operator")


class ServeConfigError(SnapError):
    """A ``[serve]`` section of config.toml that cannot be used."""


def hash_token(token: str) -> str:
    """How ``[serve.tokens]`` stores a token: the SHA-256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Session:
    role: str
    via: str  # "login token", "config token"


class Access:
    """The tokens of one server and the sessions they opened (in memory: a restart logs
    everyone out, and prints a new login token)."""

    def __init__(self, *, read_only: bool, tokens: Mapping[str, Iterable[str]] | None = None) -> None:
        self.read_only = read_only
        self.login_token = secrets.token_urlsafe(32)
        self.cookie_name = f"snap_session_{secrets.token_hex(4)}"  # per server: another port's cookie is not ours
        self._login_spent = False
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._hashed: dict[str, str] = {}
        for role, digests in (tokens or {}).items():
            if role not in ROLES:
                raise ServeConfigError(
                    f"config.toml [serve.tokens] names the role {role!r}", hint="the roles are viewer and operator"
                )
            for digest in digests:
                if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
                    raise ServeConfigError(
                        f"config.toml [serve.tokens] {role}: {str(digest)[:12]!r}... is not a SHA-256 hex digest",
                        hint='store hashes, not tokens: printf %s "$TOKEN" | sha256sum',
                    )
                self._hashed[digest.lower()] = role

    def _granted(self, role: str) -> str:
        return "viewer" if self.read_only else role

    def login(self, token: str) -> tuple[str, Session] | None:
        """Swap a token from the URL for a new session: (session id, session), or None."""
        with self._lock:
            if not self._login_spent and hmac.compare_digest(token.encode(), self.login_token.encode()):
                self._login_spent = True
                session = Session(self._granted("operator"), "login token")
            elif (role := self._config_role(token)) is not None:
                session = Session(self._granted(role), "config token")
            else:
                return None
            sid = secrets.token_urlsafe(32)
            self._sessions[sid] = session
            return sid, session

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)

    def logout(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def bearer(self, token: str) -> Session | None:
        """The session of an ``Authorization: Bearer`` token: config tokens only (the login
        token is for one browser login, not for scripts)."""
        role = self._config_role(token)
        return Session(self._granted(role), "bearer token") if role is not None else None

    def _config_role(self, token: str) -> str | None:
        digest = hash_token(token)
        for known, role in self._hashed.items():
            if hmac.compare_digest(known, digest):
                return role
        return None


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def cross_site_refusal(headers: dict[str, str], *, cookie_less_bearer: bool) -> str | None:
    """Why a state-changing request must be refused as cross-site, or None when it may pass."""
    if cookie_less_bearer:
        return None
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site in ("same-origin", "none"):
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is None:
        return None  # not sent by a browser's page: nothing a foreign site could forge
    host = headers.get("host", "")
    if origin != "null" and urlsplit(origin).netloc.lower() == host.lower():
        return None
    return f"cross-site request refused (Origin {origin} is not this server, {host})"
