"""``snap serve``: the web pages (:mod:`snapgit.web`) on a local HTTP server.

Starlette, Jinja2 and uvicorn are the optional ``web`` extra and are imported inside the
command only (as are socket and webbrowser): every other command starts as fast without them, and a machine without them gets
one line saying what to install.
"""

from __future__ import annotations

from typing import Annotated

import typer

from snapgit.cli.context import open_repo
from snapgit.cli.render import err
from snapgit.errors import SnapError

__all__ = ["commands"]

commands = typer.Typer()


@commands.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (anything but loopback is reachable by others).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on; 0 picks a free one.")] = 8470,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Grant only the viewer role: no backup, restore or merge.")
    ] = False,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the pages in a browser.")] = False,
) -> None:
    """Serve web pages for the history, diffs, backups and restores of this store.

    The first line printed is the URL to open, with a one-time login token.
    """
    import socket
    import sys
    import webbrowser

    try:
        import uvicorn

        from snapgit.web.app import create_app
        from snapgit.web.settings import settings_from
    except ImportError as exc:
        raise SnapError(
            f"snap serve needs the web extra ({exc.name} is not installed)", hint="pip install 'snapgit[web]'"
        ) from None
    # a request that meets an encrypted file takes its passphrase from the environment, never
    # from this terminal (a prompt there would hang the request until someone typed)
    from snapgit.passphrase import environment, set_default

    set_default(environment)
    repo = open_repo()
    settings = settings_from(repo.config.serve, read_only=read_only, bind_host=host)
    app = create_app(repo.store.root.parent, settings)
    repo.close()
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise SnapError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="choose another --port (0 picks a free one)"
        ) from None
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    url = f"http://{shown}:{bound}/?token={app.state.access.login_token}"
    # the first line, flushed at once: a program that started the server reads it to connect
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"warning: listening on {host}, reachable from other machines; put TLS in front of it "
            "(a reverse proxy) and name its host in [serve] allowed_hosts"
        )
    if settings.read_only:
        err.print("note: read-only: every session is a viewer")
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
