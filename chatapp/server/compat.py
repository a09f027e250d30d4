"""The Hypercorn, wsproto and multiprocessing internals the adapter relies on, checked.

Each part of the adapter names the private attributes and call shapes it uses; ``install``
(in ``chatapp.server``) installs a part only when every one of them is where it expects,
and the test suite asserts they all are on the pinned versions (tests/test_wire.py).
A version outside the tested range is reported too, so a shape check that passes by luck
on an untested release still says so in the log.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any

TESTED = "hypercorn 0.17-0.18, wsproto 1.2-1.3"
TESTED_VERSIONS = {"hypercorn": ("0.17", "0.18"), "wsproto": ("1.2", "1.3")}


def _module(name: str) -> Any:
    import importlib

    return importlib.import_module(name)


def _attr(path: str) -> Any:
    """``package.module:Class.attr`` → the object (raises if any part is gone)."""
    module_name, _, dotted = path.partition(":")
    obj = _module(module_name)
    for part in filter(None, dotted.split(".")):
        obj = getattr(obj, part)
    return obj


def _names(path: str) -> set[str]:
    """Global and attribute names a function's code uses (``self.x = ...`` included)."""
    code = _attr(path).__code__
    names = set(code.co_names)
    for const in code.co_consts:  # strings, and tuples of them (keyword names)
        names.update(c for c in (const if isinstance(const, tuple) else (const,))
                     if isinstance(c, str))
    return names


def _params(path: str) -> list[str]:
    return list(inspect.signature(_attr(path)).parameters)


# (what the adapter relies on, a check that is true when it holds)
Check = tuple[str, Callable[[], bool]]

GUARD: list[Check] = [
    ("hypercorn.protocol.ws_stream:PerMessageDeflate, built by Handshake.accept",
     lambda: "PerMessageDeflate" in _names("hypercorn.protocol.ws_stream:Handshake.accept")
     and _attr("hypercorn.protocol.ws_stream:PerMessageDeflate") is not None),
    ("hypercorn.protocol.ws_stream:Connection, built by Handshake.accept",
     lambda: "Connection" in _names("hypercorn.protocol.ws_stream:Handshake.accept")),
    ("wsproto PerMessageDeflate's inbound state (_inbound_compressed, "
     "_inbound_is_compressible, _decompressor) and no-context-takeover flags",
     lambda: {"_inbound_compressed", "_inbound_is_compressible", "_decompressor",
              "client_no_context_takeover", "server_no_context_takeover"}
     <= _names("wsproto.extensions:PerMessageDeflate.__init__")
     and {"frame_inbound_payload_data", "frame_inbound_complete", "accept"}
     <= set(vars(_attr("wsproto.extensions:PerMessageDeflate")))),
    ("wsproto Connection._state and events()",
     lambda: "_state" in _names("wsproto.connection:Connection.__init__")
     and callable(_attr("wsproto.connection:Connection.events"))),
]

WIRE: list[Check] = [
    ("hypercorn.protocol.h11:WSStream, built by H11Protocol for an upgrade",
     lambda: issubclass(_attr("hypercorn.protocol.h11:WSStream"),
                        _attr("hypercorn.protocol.ws_stream:WSStream"))),
    ("WSStream.__init__(app, config, context, task_group, ssl, client, server, send, stream_id)"
     " setting app_put, task_group, send, closed, state",
     lambda: _params("hypercorn.protocol.ws_stream:WSStream.__init__")
     == ["self", "app", "config", "context", "task_group", "ssl", "client", "server", "send",
         "stream_id"]
     and {"app_put", "task_group", "send", "closed", "state"}
     <= _names("hypercorn.protocol.ws_stream:WSStream.__init__")),
    ("WSStream._accept(message), app_send(message), handle(event) calling "
     "task_group.spawn_app and receiving the client's bytes as protocol.events.Data",
     lambda: _params("hypercorn.protocol.ws_stream:WSStream._accept") == ["self", "message"]
     and _params("hypercorn.protocol.ws_stream:WSStream.app_send") == ["self", "message"]
     and _params("hypercorn.protocol.ws_stream:WSStream.handle") == ["self", "event"]
     and {"spawn_app", "app_put", "Data"}
     <= _names("hypercorn.protocol.ws_stream:WSStream.handle")
     and _attr("hypercorn.protocol.events:Data") is not None),
    ("WSStream.connection._proto.extensions (wsproto Connection._proto)",
     lambda: "_proto" in _names("wsproto.connection:Connection.__init__")
     and "extensions" in _names("wsproto.frame_protocol:FrameProtocol.__init__")),
    ("ASGIWebsocketState.CONNECTED, wsproto ConnectionState.OPEN",
     lambda: _attr("hypercorn.protocol.ws_stream:ASGIWebsocketState.CONNECTED") is not None
     and _attr("wsproto:ConnectionState.OPEN") is not None),
    ("H11Protocol.stream_send, H11Protocol.send set in __init__",
     lambda: callable(_attr("hypercorn.protocol.h11:H11Protocol.stream_send"))
     and "send" in _names("hypercorn.protocol.h11:H11Protocol.__init__")),
    ("asyncio TCPServer.protocol_send, .writer and .send_lock",
     lambda: callable(_attr("hypercorn.asyncio.tcp_server:TCPServer.protocol_send"))
     and {"writer", "send_lock"} <= _names("hypercorn.asyncio.tcp_server:TCPServer.__init__")),
    ("asyncio TaskGroup.spawn_app/spawn and _handle(app, config, scope, receive, send, "
     "sync_spawn, call_soon)",
     lambda: _params("hypercorn.asyncio.task_group:TaskGroup.spawn_app")
     == ["self", "app", "config", "scope", "send"]
     and callable(_attr("hypercorn.asyncio.task_group:TaskGroup.spawn"))
     and len(_params("hypercorn.asyncio.task_group:_handle")) == 7),
]

SHUTDOWN: list[Check] = [
    ("hypercorn.run passes shutdown_event to each worker process's kwargs",
     lambda: {"shutdown_event", "kwargs"} <= _names("hypercorn.run:_populate")),
    ("multiprocessing BaseProcess._kwargs",
     lambda: "_kwargs" in _names("multiprocessing.process:BaseProcess.__init__")),
]

PARTS: dict[str, list[Check]] = {"guard": GUARD, "wire": WIRE, "shutdown": SHUTDOWN}


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # a module, class or attribute is gone: the shape does not hold
        return False


def version_problems() -> list[str]:
    problems = []
    for package, tested in TESTED_VERSIONS.items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed")
            continue
        if ".".join(version.split(".")[:2]) not in tested:
            problems.append(f"{package} {version} is untested")
    return problems


def problems() -> dict[str, list[str]]:
    """Per part, what does not hold (empty lists: install everything).

    An untested version disables the optional parts (wire, shutdown watcher) even when
    their shapes hold; the guard is then installed if its shapes hold, else refused.
    """
    versions = version_problems()
    found = {part: [what for what, check in checks if not _holds(check)]
             for part, checks in PARTS.items()}
    for part in ("wire", "shutdown"):
        found[part] = versions + found[part]
    return found
