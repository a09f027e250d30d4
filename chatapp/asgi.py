"""The module-level app servers import: ``hypercorn chatapp.asgi:app``."""

import logging

from . import create_app
from .server import install as _install_server

# One line per websocket open/close beside Hypercorn's access log; never secrets.
logging.basicConfig(
    level=logging.INFO,
    format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
)
# Hypercorn's adapter: refuses to start if the websocket guard cannot be installed.
_install_server()
app = create_app()
