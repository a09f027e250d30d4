"""The module-level app servers import: ``hypercorn chatapp.asgi:app``."""

import logging

from . import create_app
from .wire import install as _install_wire
from .wsguard import install as _install_websocket_guards

# One line per websocket open/close beside Hypercorn's access log; never secrets.
logging.basicConfig(
    level=logging.INFO,
    format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
)
_install_websocket_guards()
_install_wire()
app = create_app()
