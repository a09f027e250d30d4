"""The short path between the chat protocol and Hypercorn's websocket stream.

Through Quart's websocket object a frame passes several coroutines and queues each
way: in, Hypercorn's app queue, Quart's receiver task, a signal and Quart's own queue
before the handler sees it; out, Quart, Hypercorn's stream, wsproto and the TCP
server's locked write-and-drain. With one task per connection woken per frame, that
is ~90 µs of CPU per delivered event (bench s1 and s2), where the ``websockets``
library spends ~20 µs.

``WiredWSStream`` (installed into Hypercorn's HTTP/1.1 protocol by ``install``) hands
the app a ``DirectWire`` (the seam's ``Wire``) in ``scope["extensions"]["chatapp.wire"]``
once the handshake is accepted. Through it the app may:

* write its own text frames straight to the socket's transport, synchronously, when
  the client negotiated no extension, or permessage-deflate without context takeover
  (a server frame is then the same bytes for every recipient of its kind, so a
  broadcast is framed, and compressed, once: ``frames.OutFrame``) and nothing else is
  waiting to be written; otherwise it uses the awaited path, which applies
  backpressure;
* claim the incoming messages, which then skip the app queue, Quart's receiver
  task and its queue. The inbox is bounded: when it is full, Hypercorn's reader
  waits, and so does the client's TCP stream.

Everything else (handshake, pings, close frames, inflating, size and UTF-8 checks)
stays with Hypercorn and wsproto. Under the Quart test client, or any other server,
there is no wire and the app uses the ASGI ``receive``/``send`` as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from functools import partial
from typing import Any

from hypercorn.protocol.events import Data
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from wsproto import ConnectionState
from wsproto.extensions import PerMessageDeflate

from . import SCOPE_KEY
from .frames import OutFrame
from .mailbox import Mailbox

# Bytes the transport may hold unsent before writes take the awaited path again.
WRITE_BUFFER_LIMIT = 64 * 1024
INBOX_LIMIT = 16  # received messages held for the app before the reader waits


class DirectWire:
    """One accepted websocket's direct writes and claimed inbox."""

    __slots__ = ("_stream", "_transport", "_send_lock", "framed", "deflate_bits", "claimed",
                 "_passed_to_app", "_inbox", "heard_at")

    def __init__(self, stream: WiredWSStream, transport: Any, send_lock: Any) -> None:
        self._stream = stream
        self._transport = transport
        self._send_lock = send_lock
        # Our own frames are valid without extensions, or with permessage-deflate
        # without server context takeover (each message compressed on its own, so
        # one compressed frame fits every such connection); with context takeover
        # every frame would have to pass through this connection's compressor.
        self.deflate_bits = _deflate_window(stream.connection._proto.extensions)
        self.framed = transport is not None and self.deflate_bits is not None
        if self.deflate_bits == 0:
            self.deflate_bits = None
        self.claimed = False
        self._passed_to_app = False
        self._inbox = Mailbox(INBOX_LIMIT)
        # When bytes last came from the client (``time.monotonic``), frames that never
        # reach the app included: Hypercorn answers protocol pings itself, and a pong
        # or a ping is as good a sign of life as a message (read by ``IdleSweeper``).
        self.heard_at = time.monotonic()

    # out
    def writable(self) -> bool:
        """True if a frame written now goes straight out, in order.

        False means: use the awaited path (closing, a write already waiting for the
        socket to drain, or too much unsent) so ordering and backpressure hold.
        """
        stream = self._stream
        transport = self._transport
        return (
            self.framed
            and not stream.closed
            and stream.state is ASGIWebsocketState.CONNECTED
            and stream.connection.state is ConnectionState.OPEN
            and not self._send_lock.locked()
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= WRITE_BUFFER_LIMIT
        )

    def write(self, frame: OutFrame) -> bool:
        """Write the message now, framed as this connection needs, if ``writable``;
        else False."""
        if not self.writable():
            return False
        bits = self.deflate_bits
        self._transport.write(frame.plain if bits is None else frame.deflated(bits))
        return True

    # in
    def claim(self) -> bool:
        """Take the incoming messages from here on; False if one already went the
        other way (order would break), in which case the app keeps using Quart."""
        if not self._passed_to_app:
            self.claimed = True
        return self.claimed

    def receive(self) -> Awaitable[str | bytes | None]:
        """The next message, or None once the client is gone.

        The inbox's own ``get``, not a coroutine around it: an idle connection then
        keeps one frame less suspended (bench s3)."""
        get: Awaitable[str | bytes | None] = self._inbox.get()
        return get

    async def _put(self, message: dict[str, Any]) -> None:
        data = message.get("bytes")
        await self._inbox.put(data if data is not None else message["text"])

    def stop(self) -> None:
        """No more reading: ``receive`` returns None, and what comes in is dropped."""
        self._inbox.close()


class _LightTaskGroup:
    """Hypercorn's task group, but starting a websocket's app with a ``Mailbox``."""

    def __init__(self, inner: Any, handle: Any) -> None:
        self._inner = inner
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def spawn_app(self, app: Any, config: Any, scope: Any, send: Any) -> Any:
        # As hypercorn.asyncio.task_group.TaskGroup.spawn_app, with a lighter queue.
        loop = asyncio.get_running_loop()
        mailbox = Mailbox(config.max_app_queue_size)

        def call_soon(func: Any, *args: Any) -> Any:  # only sync (WSGI) apps use it
            return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

        self._inner.spawn(self._handle, app, config, scope, mailbox.get, send,
                          partial(loop.run_in_executor, None), call_soon)
        return mailbox.put


class WiredWSStream(WSStream):
    """Hypercorn's websocket stream, offering the app a ``Wire`` once accepted."""

    wire: DirectWire | None = None
    _asgi_put: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        handle = _hypercorn_app_runner(self.task_group)
        if handle is not None:
            self.task_group = _LightTaskGroup(self.task_group, handle)  # type: ignore[assignment]

    # WSStream sets ``app_put`` to the app queue's put when it starts the app; every
    # message to the app passes here, so claimed ones can be routed to the wire.
    @property  # type: ignore[override]
    def app_put(self) -> Any:
        return None if self._asgi_put is None else self._route

    @app_put.setter
    def app_put(self, put: Any) -> None:
        self._asgi_put = put

    async def handle(self, event: Any) -> None:
        wire = self.wire
        if wire is not None and isinstance(event, Data):
            wire.heard_at = time.monotonic()
        await super().handle(event)

    async def _route(self, message: dict[str, Any]) -> None:
        wire = self.wire
        if wire is not None:
            if message["type"] == "websocket.receive":
                if wire.claimed:
                    await wire._put(message)
                    return
                wire._passed_to_app = True
            elif message["type"] == "websocket.disconnect":
                wire.stop()
        await self._asgi_put(message)

    async def app_send(self, message: Any) -> None:
        if self.wire is not None and (message is None or message["type"] == "websocket.close"):
            # The app reads no more: release a reader waiting for inbox room, so the
            # client's close frame is still read and answered.
            self.wire.stop()
        await super().app_send(message)

    async def _accept(self, message: Any) -> None:
        await super()._accept(message)
        transport, send_lock = _socket_of(self)
        self.wire = DirectWire(self, transport, send_lock)
        extensions: dict[str, Any] = self.scope["extensions"]  # type: ignore[assignment]
        extensions[SCOPE_KEY] = self.wire


def _deflate_window(extensions: list[Any]) -> int | None:
    """0 without extensions; the server's window bits for permessage-deflate without
    server context takeover; None for anything else (no direct writes)."""
    if not extensions:
        return 0
    if len(extensions) == 1:
        ext = extensions[0]
        if isinstance(ext, PerMessageDeflate) and ext.server_no_context_takeover:
            return int(ext.server_max_window_bits)
    return None


def _hypercorn_app_runner(task_group: Any) -> Any:
    """Hypercorn's coroutine that runs an ASGI app on asyncio (private: None if it is
    gone, or the stream runs on another worker class)."""
    try:
        from hypercorn.asyncio.task_group import TaskGroup, _handle
    except ImportError:
        return None
    return _handle if isinstance(task_group, TaskGroup) else None


def _socket_of(stream: WSStream) -> tuple[Any, Any]:
    """The asyncio transport and send lock of the TCP server under an HTTP/1.1 stream.

    ``stream.send`` is the H11 protocol's ``stream_send``, whose own ``send`` is the
    TCP server's ``protocol_send``; anything else (trio, HTTP/2) gets no direct writes.
    """
    from hypercorn.asyncio.tcp_server import TCPServer

    protocol = getattr(stream.send, "__self__", None)
    server = getattr(getattr(protocol, "send", None), "__self__", None)
    if isinstance(server, TCPServer):
        return server.writer.transport, server.send_lock
    return None, None


def install() -> None:
    """Serve HTTP/1.1 websockets through ``WiredWSStream``."""
    from hypercorn.protocol import h11

    h11.WSStream = WiredWSStream  # type: ignore[misc]
