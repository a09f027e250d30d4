"""Where chatapp meets its ASGI server: a server-neutral seam, and the Hypercorn adapter.

The seam (this module, ``frames``, ``mailbox``) is what the fan-out (``broker/hub.py``)
and the ``/ws`` endpoint depend on: a ``Wire`` is a connection's short path to its
socket, offered by the server in the websocket scope; without one (the Quart test
client, another server, or an adapter that did not install) the plain ASGI
``receive``/``send`` are used. Importing it imports no server internals.

The Hypercorn adapter is the only code touching private parts of Hypercorn, wsproto
and multiprocessing: ``hypercorn_wire`` (the short path itself), ``wsguard`` (bounded
permessage-deflate, close frames for 1007/1009), ``shutdown`` (1001 on SIGTERM) and
``compat`` (the version and the private shapes they rely on, checked by ``install``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol, runtime_checkable

from .frames import OutFrame, deflate_frame, text_frame
from .mailbox import Mailbox

__all__ = ["SCOPE_KEY", "Mailbox", "OutFrame", "Wire", "deflate_frame", "install", "text_frame",
           "wire_of"]

log = logging.getLogger(__name__)

SCOPE_KEY = "chatapp.wire"


@runtime_checkable
class Wire(Protocol):
    """One accepted websocket's direct writes and claimed inbox."""

    # True when the fan-out's own frames (an ``OutFrame``) are valid on this connection.
    framed: bool
    # When bytes last came from the client (``time.monotonic``), protocol pings and
    # pongs included, which the app never sees (the idle sweeper reads it).
    heard_at: float

    def writable(self) -> bool:
        """True if a frame written now goes straight out, in order."""

    def write(self, frame: OutFrame) -> bool:
        """Write a message now if ``writable``; else False (use the awaited path)."""

    def claim(self) -> bool:
        """Take the incoming messages from here on; False if that would break order."""

    def receive(self) -> Awaitable[str | bytes | None]:
        """The next message, or None once the client is gone."""

    def stop(self) -> None:
        """No more reading: ``receive`` returns None, and what comes in is dropped."""


def wire_of(scope: Any) -> Wire | None:
    """The wire the server offered for this websocket scope, if any."""
    wire = (scope.get("extensions") or {}).get(SCOPE_KEY)
    return wire if isinstance(wire, Wire) else None


def install(compression: bool = False) -> dict[str, bool]:
    """Adapt Hypercorn, as far as its version and private shapes allow.

    ``compression`` is CHATAPP_WS_COMPRESSION: off declines a client's
    permessage-deflate offer, on accepts it without context takeover either way.

    The websocket guard is required: without it a compressed frame could inflate
    without bound, so a mismatch raises and the server refuses to start. The wire and
    the shutdown watcher are optional: on a mismatch the app serves through plain ASGI
    (slower) and SIGTERM closes websockets the way Hypercorn does. Returns what was
    installed.
    """
    from . import compat

    problems = compat.problems()
    if problems["guard"]:
        raise RuntimeError(
            "chatapp cannot bound permessage-deflate on this Hypercorn/wsproto: "
            + "; ".join(problems["guard"])
            + f" (tested with {compat.TESTED})"
        )
    from . import wsguard

    wsguard.install(compression)
    installed = {"guard": True, "wire": False, "shutdown": False}
    for part in ("wire", "shutdown"):
        if problems[part]:
            log.warning("Hypercorn %s not installed, plain ASGI instead: %s (tested with %s)",
                        part, "; ".join(problems[part]), compat.TESTED)
            continue
        # Imported only now: a module whose shapes are gone may not even import.
        module = importlib.import_module(f"{__name__}.{_MODULES[part]}")
        module.install()
        installed[part] = True
    return installed


_MODULES = {"wire": "hypercorn_wire", "shutdown": "shutdown"}
