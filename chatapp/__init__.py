"""chatapp: a self-hosted, real-time team chat on Quart and Hypercorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from quart import Quart

ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 1024 * 1024


def create_app(config: dict[str, Any] | None = None) -> Quart:
    """Wire config, storage, broker and blueprints into a new app."""
    from . import cli, errors, security, services, web
    from . import config as settings
    from .server import shutdown

    app = Quart(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    loaded = settings.load(config, Path(app.instance_path))
    app.config.update(loaded)
    app.secret_key = loaded["CHATAPP_SECRET_KEY"]
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None
    logging.getLogger("chatapp").setLevel(logging.INFO)

    services.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    shutdown.init_app(app)
    cli.init_app(app)
    return app
