"""GET /ws: authorize the handshake, then pump frames both ways.

The endpoint is a plain ASGI app in front of Quart (``install`` wraps
``app.asgi_app``), not a Quart route. Quart gives every websocket a receiver task, a
handler task, a queue, a signal per frame and a copied request context, which cost
~18 KB and several task switches per connection for nothing this endpoint uses
(bench s3, s1: see README "Performance"). The handshake still goes through Quart's
own session interface and ``Websocket`` wrapper, so cookies, hosts and origins are
read exactly as on every other page; the test client reaches it the same way.

With Hypercorn's wire (``chatapp.server``) the handler task itself reads the frames and
events are written to the socket from the fan-out; a writer task waits only for what
the socket could not take at once. Without it (other servers, the test client) the
ASGI ``receive``/``send`` are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from quart import Quart
from quart.wrappers import Websocket
from werkzeug.datastructures import Headers

from ..accounts import token_hash
from ..channels import PRESENCE_CHANNEL, room_channel, session_channel, user_channel
from ..closecodes import CLOSE_INTERNAL_ERROR, CLOSE_SLOW_CONSUMER
from ..connection import Connection
from ..events import Event, encode
from ..security import origin_allowed, session_user
from ..server import OutFrame, Wire, wire_of
from ..services import Services
from ..storage import StorageUnavailable, User

log = logging.getLogger(__name__)

PATH = "/ws"
CLOSE_TIMEOUT = 5.0

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def install(app: Quart) -> None:
    """Serve /ws ahead of Quart's routing; everything else goes to Quart."""
    app.asgi_app = WebsocketEndpoint(app, app.asgi_app)  # type: ignore[method-assign,assignment]


class WebsocketEndpoint:
    def __init__(self, app: Quart, inner: ASGIApp) -> None:
        self.app = app
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _route_path(scope) == PATH:
            await serve(self.app, scope, receive, send)
        else:
            await self.inner(scope, receive, send)


def _route_path(scope: dict[str, Any]) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


async def serve(app: Quart, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """One connection per tab, carrying every room the user belongs to.

    The ``websocket.connect`` message is not awaited first: Quart's test client never
    sends one, and Hypercorn needs nothing read before the accept.
    """
    svc: Services = app.extensions["chatapp"]
    try:
        handshake = _handshake(app, scope)
        user, session_token = await _identify(app, svc, handshake)
    except StorageUnavailable as error:  # SPEC §7: 503, the client retries with backoff
        log.warning("websocket refused: storage unavailable: %s", error)
        await _reject(scope, send, 503, "the database is unavailable; try again shortly")
        return
    except Exception:
        log.exception("websocket handshake failed")
        await _reject(scope, send, 500, "internal error")
        return
    if user is None or session_token is None:
        await _reject(scope, send, 401, "log in first")
        return
    if not origin_allowed(handshake, app.config["CHATAPP_ALLOWED_ORIGINS"]):
        await _reject(scope, send, 403, "origin not allowed")
        return
    del handshake
    # SPEC §6: open websockets per user, all workers and hosts together.
    slot = await _open_slot(app, svc, user)
    if slot is None:
        await _reject(scope, send, 429, "too many open connections; close one first")
        return
    await _accept(svc, user, slot, send)
    wire = wire_of(scope)
    frames: Frames = wire if wire is not None and wire.claim() else AsgiFrames(receive)
    writer = Writer(send)
    # A closed queue stops the reading; a backlog has the writer start a task.
    conn = Connection(svc, user, app.config["CHATAPP_SEND_RATE"],
                      on_close=frames.stop, on_backlog=writer.backlog)
    address = _client_address(scope)  # the real one behind trusted proxies (chatapp.front)
    _log_open(conn, address)
    svc.connections.add(conn)
    svc.metrics.connections.inc()
    unavailable = False
    try:
        await _session(svc, conn, session_token, frames, wire, writer, send)
    except StorageUnavailable as error:
        # The database went away while the connection was set up: "try again later"
        # (1013), and the client's reconnect syncs what it missed.
        log.warning("websocket conn=%s closed: storage unavailable: %s", conn.id, error)
        # 1013 is also a slow consumer's code; ``unavailable`` keeps the metric apart.
        unavailable = True
        conn.queue.close(CLOSE_SLOW_CONSUMER, "database unavailable: reconnect and sync")
        await _close(conn, send)
    except Exception:
        # A bug, not a bad frame: log it and close this socket alone, with a code the
        # client can act on (reconnect and sync) instead of leaving it hanging.
        log.exception("websocket conn=%s crashed", conn.id)
        conn.queue.close(CLOSE_INTERNAL_ERROR, "internal error")
        await _close(conn, send)
    finally:
        svc.connections.discard(conn)
        svc.hub.spawn(svc.limits.close_slot(_slot_key(user), slot), name="ws-slot")
        svc.metrics.connections.dec()
        if conn.queue.close_code == CLOSE_SLOW_CONSUMER and not unavailable:
            svc.metrics.slow_consumer_closes.inc()
        _log_closed(conn, address)


# Logging from helpers: finding the caller's line would otherwise give ``serve``'s
# coroutine a frame object that stays for the connection's lifetime.
def _log_open(conn: Connection, address: str) -> None:
    log.info("websocket open user=%s conn=%s addr=%s", conn.user.username, conn.id, address)


def _log_closed(conn: Connection, address: str) -> None:
    log.info("websocket closed user=%s conn=%s addr=%s code=%s",
             conn.user.username, conn.id, address, conn.queue.close_code or "client")


def _client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _slot_key(user: User) -> str:
    return f"ws:{user.id}"


async def _open_slot(app: Quart, svc: Services, user: User) -> str | None:
    """Hold one of the user's CHATAPP_MAX_CONNECTIONS_PER_USER slots, or None."""
    slot = secrets.token_hex(8)
    maximum = app.config["CHATAPP_MAX_CONNECTIONS_PER_USER"]
    return slot if await svc.limits.open_slot(_slot_key(user), slot, maximum) else None


async def _accept(svc: Services, user: User, slot: str, send: Send) -> None:
    try:
        await send({"type": "websocket.accept"})
    except BaseException:
        await svc.limits.close_slot(_slot_key(user), slot)
        raise


def _handshake(app: Quart, scope: dict[str, Any]) -> Websocket:
    """Quart's view of the upgrade request (headers, cookies, host), for the checks."""
    headers = Headers()
    for name, value in scope["headers"]:
        headers.add(name.decode("latin1").title(), value.decode("latin1"))

    async def unused(*_: Any) -> None:
        raise RuntimeError("the handshake object only answers questions")

    return app.websocket_class(
        scope["path"], scope["query_string"], scope["scheme"], headers,
        scope.get("root_path", ""), scope.get("http_version", "1.1"),
        list(scope.get("subprotocols", [])), unused, unused, unused, unused,
        scope=scope,  # type: ignore[arg-type]
    )


async def _identify(
    app: Quart, svc: Services, handshake: Websocket
) -> tuple[User | None, str | None]:
    """The signed session cookie's user and token, read as for every page."""
    session = await app.session_interface.open_session(app, handshake)
    found = None if session is None else await session_user(svc.accounts, session)
    return (None, None) if found is None else found


async def _reject(scope: dict[str, Any], send: Send, status: int, text: str) -> None:
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close"})  # the server answers 403
        return
    body = text.encode()
    await send({
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})


async def _session(
    svc: Services, conn: Connection, session_token: str, frames: Frames, wire: Wire | None,
    writer: Writer, send: Send,
) -> None:
    # Setup lives in helpers: their locals (room lists, the hello) are freed before
    # the long wait, not kept in this frame for the connection's lifetime.
    username = conn.user.username
    async with svc.hub.subscription(conn.queue, await _channels(svc, conn, session_token)):
        await svc.presence.connected(username)
        try:
            conn.queue.push_first(await _hello(svc, conn))
            if wire is not None and wire.framed:
                # Queued behind the hello: from now on events may skip the queue.
                conn.queue.attach(wire, svc.hub.pacer)
            await _pump(conn, frames, writer, send)
        finally:
            await asyncio.shield(svc.presence.disconnected(username))


async def _channels(svc: Services, conn: Connection, session_token: str) -> list[str]:
    """What a connection follows: its rooms, its user, its session, and presence."""
    user = conn.user
    rooms = await svc.storage.rooms_of(user.id)
    channels = [room_channel(r.slug) for r in rooms]
    channels += [user_channel(user.id), session_channel(token_hash(session_token)),
                 PRESENCE_CHANNEL]
    return channels


async def _hello(svc: Services, conn: Connection) -> Event:
    # Subscribed before the snapshot: nothing published after it is missed, and
    # events already queued carry seqs the client de-duplicates.
    snapshot = await svc.storage.rooms_of(conn.user.id)
    conn.remember_rooms(snapshot)
    for summary in snapshot:
        svc.hub.note_seq(room_channel(summary.slug), summary.last_seq)
    return encode(
        "hello",
        user=conn.user.to_json(),
        rooms=[r.to_json() for r in snapshot],
        online=await svc.presence.online(),
        epoch=await svc.storage.epoch(),
    )


class Frames(Protocol):
    """Where a connection's incoming frames come from (a ``Wire``, or ``AsgiFrames``)."""

    def receive(self) -> Awaitable[str | bytes | None]:
        """The next frame; None once the client is gone or ``stop`` was called."""

    def stop(self) -> None:
        """Make a pending and every later ``receive`` return None."""


class AsgiFrames:
    """Frames from the ASGI ``receive`` callable (no wire: test client, other servers)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._next: asyncio.Future[dict[str, Any]] | None = None
        self._stopped = asyncio.get_running_loop().create_future()

    async def receive(self) -> str | bytes | None:
        while True:
            if self._next is None:
                self._next = asyncio.ensure_future(self._receive())
            await asyncio.wait({self._next, self._stopped},
                               return_when=asyncio.FIRST_COMPLETED)
            if self._stopped.done():  # (stop also cancelled the pending receive)
                return None
            message, self._next = self._next.result(), None
            if message["type"] == "websocket.receive":
                data = message.get("bytes")
                return data if data is not None else message.get("text", "")
            if message["type"] != "websocket.connect":
                return None  # websocket.disconnect

    def stop(self) -> None:
        if not self._stopped.done():
            self._stopped.set_result(None)
        if self._next is not None and not self._next.done():
            self._next.cancel()


class Writer:
    """A task sending what the socket could not take at once, started only while the
    connection is pumped. With a framed wire it runs only while there is such a
    backlog (an idle connection then holds no task of its own but the reading one);
    otherwise it lives as long as the connection."""

    __slots__ = ("send", "_conn", "_linger", "_task")

    def __init__(self, send: Send) -> None:
        self.send = send
        self._conn: Connection | None = None  # while pumped
        self._linger = False
        self._task: asyncio.Task[None] | None = None

    def backlog(self) -> None:
        """Events wait in the queue: start a task unless one runs or none may."""
        conn = self._conn
        if conn is not None and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(_write(conn, self.send, self._linger),
                                             name=f"ws-write-{conn.id}")
            self._task.add_done_callback(lambda task: _writer_done(conn, task))

    def start(self, conn: Connection) -> None:
        self._conn, self._linger = conn, conn.queue.wire is None
        self.backlog()  # the hello is queued

    async def stop(self) -> None:
        self._conn = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _pump(conn: Connection, frames: Frames, writer: Writer, send: Send) -> None:
    """Read in this task until the client goes or the send queue closes."""
    queue = conn.queue
    writer.start(conn)
    try:
        while queue.close_code is None:
            data = await frames.receive()
            if data is None:
                break
            await conn.receive(data)
    finally:
        frames.stop()
        conn.cancel_pending()
        await writer.stop()
    await _close(conn, send)


def _writer_done(conn: Connection, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("websocket conn=%s writer crashed", conn.id, exc_info=task.exception())
        conn.queue.close(CLOSE_INTERNAL_ERROR, "internal error")


async def _close(conn: Connection, send: Send) -> None:
    if conn.queue.close_code is None:
        return
    # The socket may be stuck behind a client that stopped reading: do not wait
    # forever for the close frame to drain.
    with contextlib.suppress(asyncio.TimeoutError, Exception):
        await asyncio.wait_for(
            send({"type": "websocket.close", "code": conn.queue.close_code,
                  "reason": conn.queue.close_reason}),
            CLOSE_TIMEOUT,
        )


async def _write(conn: Connection, send: Send, linger: bool) -> None:
    """Send queued frames; without ``linger``, return once the queue is empty."""
    queue, pacer = conn.queue, conn.services.hub.pacer
    while linger or len(queue):
        frame = await queue.next_frame(pacer.pace)
        if frame is None:
            return
        queued_at = queue.oldest_at
        wire = queue.wire
        direct = wire is not None and wire.write(OutFrame(frame))
        if not direct:
            await send({"type": "websocket.send", "text": frame})
        pacer.count_written(queue.frame_events, frames=1,
                            elapsed=time.monotonic() - queued_at, direct=direct)
