"""chatapp: a self-hosted, real-time team chat on Quart and Hypercorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from quart import Quart

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent  # the checkout, when running from one
MAX_REQUEST_BYTES = 1024 * 1024


def asset(name: str) -> Path:
    """``templates``, ``static`` or ``hypercorn.toml``: inside an installed package
    (setup.py copies them to ``chatapp/_assets/``), else the checkout's top level."""
    packaged = PACKAGE / "_assets" / name
    return packaged if packaged.exists() else ROOT / name


def create_app(config: dict[str, Any] | None = None) -> Quart:
    """Wire config, storage, broker and blueprints into a new app."""
    from . import cli, errors, front, security, web
    from . import config as settings
    from .server import shutdown
    from .services import build_services
    from .web import lifecycle

    # The instance folder is ./instance where the server starts, unless
    # CHATAPP_INSTANCE_PATH says otherwise (an installed copy has no checkout).
    loaded = settings.load(config, Path.cwd() / "instance")
    app = Quart(
        __name__,
        template_folder=str(asset("templates")),
        static_folder=str(asset("static")),
        instance_path=str(Path(loaded["CHATAPP_INSTANCE_PATH"]).resolve()),
    )
    app.config.update(loaded)
    app.secret_key = loaded["CHATAPP_SECRET_KEY"]
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None
    logging.getLogger("chatapp").setLevel(loaded["CHATAPP_LOG_LEVEL"])

    lifecycle.init_app(app, build_services(loaded))
    security.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    front.install(app)  # proxies, allowed hosts, access log: ahead of everything
    shutdown.init_app(app)
    cli.init_app(app)
    return app
