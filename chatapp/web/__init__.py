"""Blueprints: they parse and authorize; the domain modules decide."""

from __future__ import annotations

from quart import Quart


def init_app(app: Quart) -> None:
    from . import account, admin, api, auth, files, hooks, openapi, ops, pages, ws

    for module in (auth, pages, account, admin, openapi, api, hooks, files, ops):
        app.register_blueprint(module.bp)
    ws.install(app)
    files.install(app)  # the upload route's body flows at the pace it is written
