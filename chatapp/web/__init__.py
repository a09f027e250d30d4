"""Blueprints: they parse and authorize; the domain modules decide."""

from __future__ import annotations

from quart import Quart


def init_app(app: Quart) -> None:
    from . import api, auth, ops, pages, ws

    for module in (auth, pages, api, ops):
        app.register_blueprint(module.bp)
    ws.install(app)
