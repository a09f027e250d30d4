"""GET /ws: authorize the handshake, then pump frames both ways."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, current_app, g, websocket

from ..accounts import token_hash
from ..connection import Connection
from ..events import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_SLOW_CONSUMER,
    PRESENCE_CHANNEL,
    encode,
    room_channel,
    session_channel,
    user_channel,
)
from ..security import current_user, origin_allowed
from ..services import services
from ..wire import Wire, text_frame, wire_of

bp = Blueprint("ws", __name__)
log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0


@bp.websocket("/ws")
async def ws() -> Any:
    """One connection per tab, carrying every room the user belongs to."""
    user = current_user()
    if user is None:
        return Response("log in first", 401)
    if not origin_allowed(websocket, current_app.config["CHATAPP_ALLOWED_ORIGINS"]):
        return Response("origin not allowed", 403)
    svc = services()
    conn = Connection(svc, user, current_app.config["CHATAPP_SEND_RATE"])
    rooms = await svc.storage.rooms_of(user.id)
    channels = [room_channel(r.slug) for r in rooms]
    channels += [user_channel(user.id), session_channel(token_hash(g.session_token)),
                 PRESENCE_CHANNEL]
    await websocket.accept()
    wire = wire_of(websocket.scope)
    log.info("websocket open user=%s conn=%s", user.username, conn.id)
    svc.connections.add(conn)
    svc.metrics.connections.inc()
    try:
        async with svc.hub.subscription(conn.outbox, channels):
            await svc.presence.connected(user.username)
            try:
                # Subscribed before the snapshot: nothing published after it is missed,
                # and events already queued carry seqs the client de-duplicates.
                snapshot = await svc.storage.rooms_of(user.id)
                conn.remember_rooms(snapshot)
                for summary in snapshot:
                    svc.hub.note_seq(room_channel(summary.slug), summary.last_seq)
                hello = encode(
                    "hello",
                    user=user.to_json(),
                    rooms=[r.to_json() for r in snapshot],
                    online=await svc.presence.online(),
                    epoch=await svc.storage.epoch(),
                )
                conn.outbox.push_first(hello)
                if wire is not None and wire.framed:
                    # Queued behind the hello: from now on events may skip the queue.
                    conn.outbox.attach(wire, svc.hub.pacer)
                await _pump(conn, wire, current_app.config["CHATAPP_IDLE_TIMEOUT"])
            finally:
                await asyncio.shield(svc.presence.disconnected(user.username))
    finally:
        svc.connections.discard(conn)
        svc.metrics.connections.dec()
        if conn.outbox.close_code == CLOSE_SLOW_CONSUMER:
            svc.metrics.slow_consumer_closes.inc()
        log.info(
            "websocket closed user=%s conn=%s code=%s",
            user.username, conn.id, conn.outbox.close_code or "client",
        )


async def _pump(conn: Connection, wire: Wire | None, idle_timeout: float) -> None:
    receive = wire.receive if wire is not None and wire.claim() else websocket.receive
    reader = asyncio.create_task(_read(conn, receive), name=f"ws-read-{conn.id}")
    writer = asyncio.create_task(_write(conn), name=f"ws-write-{conn.id}")
    conn.watch_idle(idle_timeout)
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        conn.stop_watching_idle()
        for task in (reader, writer):
            task.cancel()
        conn.cancel_pending()
        outcomes = await asyncio.gather(reader, writer, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            # A bug, not a bad frame: log it and close this socket alone, with a code
            # the client can act on (reconnect and sync) instead of leaving it hanging.
            log.error("websocket conn=%s crashed", conn.id, exc_info=outcome)
            conn.outbox.close(CLOSE_INTERNAL_ERROR, "internal error")
    if conn.outbox.close_code is not None:
        # The writer may be stuck behind a reader that stopped reading; do not wait
        # forever for the close frame to drain.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                websocket.close(conn.outbox.close_code, conn.outbox.close_reason),
                CLOSE_TIMEOUT,
            )


async def _read(conn: Connection, receive: Callable[[], Awaitable[str | bytes | None]]) -> None:
    """Receive frames until the client goes or the connection is closing."""
    while conn.outbox.close_code is None:
        data = await receive()
        if data is None:  # the client went away (the handler is being cancelled)
            return
        await conn.receive(data)


def _frame_sender() -> Callable[[str], Awaitable[None]]:
    """The accepted websocket's raw send.

    Quart's ``websocket.send`` yields to the loop (``sleep(0)``) and re-runs
    ``accept()`` (a new Headers object) before every frame, for handlers that send in
    a tight loop. Our writer only sends what its outbox holds, so it takes the
    connection's own send (bench s2: 63k -> 87k deliveries per CPU-second).
    """
    current = websocket._get_current_object()  # type: ignore[attr-defined]
    raw = getattr(current, "_send", None)
    return raw if callable(raw) else websocket.send


async def _write(conn: Connection) -> None:
    outbox, metrics = conn.outbox, conn.services.metrics
    pace = conn.services.hub.pacer.pace
    send = _frame_sender()
    while (frame := await outbox.next_frame(pace)) is not None:
        queued_at = outbox.oldest_at
        wire = outbox.wire
        if wire is None or not wire.write(text_frame(frame)):
            await send(frame)
        metrics.frames_sent.inc()
        metrics.events_delivered.inc(outbox.frame_events)
        metrics.fanout_latency.observe(time.monotonic() - queued_at)
