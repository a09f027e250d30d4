"""The module-level app servers import: ``hypercorn chatapp.asgi:app``."""

import os

from . import create_app
from .logs import configure as _configure_logs
from .server import install as _install_server

# One line per request (chatapp.access) and per websocket open/close; never secrets.
# Hypercorn's own messages join them (hypercorn.toml's logconfig_dict).
_configure_logs(
    os.environ.get("CHATAPP_LOG_FORMAT", "text"), os.environ.get("CHATAPP_LOG_LEVEL", "INFO")
)
app = create_app()
# Hypercorn's adapter: refuses to start if the websocket guard cannot be installed.
_install_server(compression=app.config["CHATAPP_WS_COMPRESSION"])
