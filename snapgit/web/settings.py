"""``snap serve``'s settings: the command's options joined with ``[serve]`` of config.toml.

```toml
[serve]
allowed_hosts = ["snap.example.com"]   # Host names the server answers to, besides loopback
max_body = 104857600                   # bytes a request body may hold (uploads); 413 beyond

[serve.tokens]                         # lasting tokens per role, as SHA-256 hex digests
operator = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
viewer = []
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapgit.web.auth import ServeConfigError

__all__ = ["DEFAULT_MAX_BODY", "LOOPBACK_HOSTS", "Settings", "settings_from"]

DEFAULT_MAX_BODY = 100 * 2**20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass
class Settings:
    read_only: bool = False
    allowed_hosts: list[str] = field(default_factory=lambda: list(LOOPBACK_HOSTS))
    max_body: int = DEFAULT_MAX_BODY
    tokens: dict[str, list[str]] = field(default_factory=dict)


def settings_from(serve: dict[str, Any], *, read_only: bool, bind_host: str | None = None) -> Settings:
    """The settings of ``[serve]`` (as read from config.toml) and the command's options."""
    hosts = list(LOOPBACK_HOSTS)
    extra = serve.get("allowed_hosts", [])
    if not isinstance(extra, list) or not all(isinstance(h, str) and h for h in extra):
        raise ServeConfigError(
            "config.toml [serve] allowed_hosts must be a list of host names",
            hint='e.g. allowed_hosts = ["snap.example.com"]',
        )
    hosts += extra
    if bind_host and bind_host not in ("0.0.0.0", "::") and bind_host not in hosts:
        hosts.append(bind_host)
    max_body = serve.get("max_body", DEFAULT_MAX_BODY)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body <= 0:
        raise ServeConfigError(
            f"config.toml [serve] max_body must be a positive number of bytes, not {max_body!r}",
            hint="e.g. max_body = 104857600",
        )
    tokens = serve.get("tokens", {})
    if not isinstance(tokens, dict) or not all(isinstance(v, list) for v in tokens.values()):
        raise ServeConfigError(
            "config.toml [serve.tokens] must map a role to a list of SHA-256 hex digests",
            hint='e.g. operator = ["<sha256 of the token>"]',
        )
    return Settings(read_only=read_only, allowed_hosts=hosts, max_body=max_body, tokens=tokens)
