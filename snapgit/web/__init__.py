"""``snap serve``'s web pages: a Starlette app over :class:`snapgit.repo.Repo`.

``app`` (routes and the app factory), ``auth`` (tokens, roles, the cross-site check), ``guards``
(the ASGI layers every request passes), ``jobs`` (long operations in a worker thread),
``views`` (results shaped for the templates), ``settings`` (``[serve]`` of config.toml),
``templates/`` (Jinja2, autoescaped) and ``static/`` (CSS and the vendored htmx). Needs the
``web`` extra: ``pip install 'snapgit[web]'``.
"""
