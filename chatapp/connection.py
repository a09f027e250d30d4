"""One websocket connection's protocol (SPEC §6): parse a frame, act, reply."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import jsonin
from .channels import room_channel
from .chat import ChatError, is_text
from .closecodes import CLOSE_INTERNAL_ERROR, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED
from .config import Rate
from .events import Event, ack_event, done_event, encode
from .limits import RateLimitError
from .refusals import DomainError
from .sendqueue import SendQueue
from .services import Services
from .storage import Message, Room, RoomEvent, RoomSummary, StorageUnavailable, User
from .web.refusals import answer

log = logging.getLogger(__name__)

MAX_REF = 64
MAX_PIPELINED = 64  # sends of one connection awaiting their commit at once
MAX_FRAME_BYTES = 64 * 1024
UNAVAILABLE_RETRY_AFTER = 5  # seconds, in the ``unavailable`` error

Handler = Callable[["Connection", dict[str, Any], "str | None"], Awaitable[None]]


class FrameError(DomainError):
    """A frame that is not what the protocol asks for (SPEC §6)."""


class Connection:
    """The server side of one tab: its user, send queue and limits."""

    def __init__(self, services: Services, user: User, send_rate: Rate,
                 on_close: Callable[[], None] | None = None,
                 on_backlog: Callable[[], None] | None = None) -> None:
        """``on_close`` and ``on_backlog``: the socket's side of the send queue."""
        self.id = secrets.token_hex(6)
        self.services = services
        self.user = user
        self.send_rate = send_rate  # per user, across all their connections
        self.queue = SendQueue(on_control=self.on_control,
                               own_typing_suffix=f',"user":{json.dumps(user.username)}}}',
                               on_close=on_close, on_backlog=on_backlog)
        # The rooms this user belongs to, kept current by _join/_leave control events,
        # so the hot path (send, typing, read) needs no database read to authorize.
        self.rooms: dict[str, Room] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self.last_frame_at = time.monotonic()  # read by IdleSweeper

    def remember_rooms(self, summaries: Iterable[RoomSummary]) -> None:
        for s in summaries:
            self.rooms[s.slug] = Room(s.id, s.slug, s.name, s.kind, s.last_seq)

    async def member_room(self, slug: Any) -> Room:
        """A room the user may write to: from memory, else the domain's full check."""
        room = self.rooms.get(slug) if isinstance(slug, str) else None
        if room is None:
            room = await self.services.chat.room_for(self.user, slug, to_write=True)
        return room

    # frames from the client
    async def receive(self, data: str | bytes) -> None:
        self.last_frame_at = time.monotonic()  # the event loop's clock
        if isinstance(data, bytes):
            self.queue.close(CLOSE_UNSUPPORTED, "binary frames are not supported")
            return
        # A character is 1-4 bytes of UTF-8: only a long non-ASCII frame needs encoding.
        if len(data) > MAX_FRAME_BYTES or (
            len(data) > MAX_FRAME_BYTES // 4
            and not data.isascii()
            and len(data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES
        ):
            self.queue.close(CLOSE_TOO_BIG, "frames are limited to 64 KiB")
            return
        frame: Any = None
        try:
            frame = jsonin.loads(data)
            if not isinstance(frame, dict):
                raise FrameError("invalid", "a frame must be a JSON object")
            ref = frame.get("ref")
            if ref is not None and (not is_text(ref) or len(ref) > MAX_REF):
                raise FrameError("invalid", f"ref must be a string of at most {MAX_REF} chars")
            kind = frame.get("type")
            handler = HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise FrameError("invalid", f"unknown type {frame.get('type')!r}")
            if handler is _send:
                await self._pipeline(frame, ref)
            else:
                await handler(self, frame, ref)
        except jsonin.JsonError as error:  # not JSON, nested too deep, a huge number
            self.error("invalid", f"a frame must be JSON text: {error.message}", {})
        except (FrameError, ChatError) as error:
            self.error(answer(error).code, error.message, frame)
        except StorageUnavailable as error:
            self.unavailable(error, frame)
        except RateLimitError as error:
            self.error(answer(error).code, error.message, frame,
                       retry_after=round(error.retry_after + 0.05, 1))

    async def _pipeline(self, frame: dict[str, Any], ref: str | None) -> None:
        """Handle a ``send`` without waiting for its commit before reading on.

        Waiting would allow one message per commit per connection; instead up to
        MAX_PIPELINED sends ride the same group commit. Each task stores its message
        in its first step, so the sends of a connection are stored in frame order.
        The rate is checked here, in frame order too: it may ask Redis.
        """
        await self.services.limits.check(f"send:{self.user.id}", self.send_rate,
                                         "too many messages; slow down")
        while len(self._sends) >= MAX_PIPELINED:
            await asyncio.wait(self._sends, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._send_task(frame, ref), name=f"ws-send-{self.id}")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_task(self, frame: dict[str, Any], ref: str | None) -> None:
        try:
            await _send(self, frame, ref)
        except (FrameError, ChatError) as error:
            self.error(answer(error).code, error.message, frame)
        except StorageUnavailable as error:
            self.unavailable(error, frame)
        except Exception:
            log.exception("send on conn=%s crashed", self.id)
            self.queue.close(CLOSE_INTERNAL_ERROR, "internal error")

    def cancel_pending(self) -> None:
        """Stop waiting for acks (the messages still land; a resend is idempotent)."""
        for task in list(self._sends):
            task.cancel()

    def error(self, code: str, message: str, frame: Any, **extra: Any) -> None:
        fields: dict[str, Any] = {"code": code, "message": message}
        if isinstance(frame, dict):
            ref, nonce = frame.get("ref"), frame.get("nonce")
            if is_text(ref) and len(ref) <= MAX_REF:
                fields["ref"] = ref
            if is_text(nonce) and len(nonce) <= MAX_REF:
                fields["nonce"] = nonce
        fields.update(extra)
        self.push(encode("error", **fields))

    def unavailable(self, error: StorageUnavailable, frame: Any) -> None:
        """The database is away (SPEC §7): the connection stays; the frame may be sent
        again (a ``send`` with the same nonce never stores twice)."""
        log.warning("conn=%s: storage unavailable: %s", self.id, error)
        self.error("unavailable", "the database is unavailable; try again shortly", frame,
                   retry_after=UNAVAILABLE_RETRY_AFTER)

    def reply(self, event_type: str, ref: str | None, **fields: Any) -> None:
        if ref is not None:
            fields["ref"] = ref
        self.push(encode(event_type, **fields))

    def push(self, event: Event) -> None:
        """Send an event to this connection alone."""
        if self.queue.push(event):
            self.services.hub.pacer.count_written(1)

    # control events from the broker (never forwarded to the client as they are)
    def on_control(self, control: Event) -> None:
        kind = control.kind
        event = json.loads(control)
        hub = self.services.hub
        if kind == "_close":
            self.queue.close(int(event["code"]), str(event.get("reason", "")))
        elif kind == "_join":
            slug = event["room"]
            self.rooms[slug] = Room(event["id"], slug, event["name"], event["kind"], 0)
            hub.spawn(hub.add(self.queue, room_channel(slug)), name="ws-join")
        elif kind == "_leave":
            self.rooms.pop(event["room"], None)
            hub.spawn(hub.remove(self.queue, room_channel(event["room"])), name="ws-leave")
        elif kind == "_read" and event.get("origin") != self.id:
            self.push(encode("read", room=event["room"], seq=event["seq"],
                             unread=event.get("unread"), mentions=event.get("mentions")))


async def _send(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    chat = conn.services.chat
    if not isinstance(frame.get("nonce"), str):
        raise FrameError("invalid", "send needs a nonce (a string of at most 64 chars)")
    room = await conn.member_room(frame.get("room"))

    def acknowledge(message: Message, encoded: str) -> None:
        conn.push(ack_event(message, encoded, ref))

    await chat.post(conn.user, room, frame.get("body"), frame.get("nonce"), acknowledge,
                    reply_to=frame.get("reply_to"), attachments=frame.get("attachments"))


def _answer(conn: Connection, ref: str | None) -> Callable[[RoomEvent | None], None]:
    """``done`` to the sender after the commit, before the room event goes out."""
    return lambda event: conn.push(done_event(ref, event))


def _message_room(frame: dict[str, Any]) -> str:
    room = frame.get("room")
    if not is_text(room) or not room:
        raise FrameError("invalid", "room must be a room slug")
    return room


async def _edit(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    await conn.services.chat.edit(conn.user, frame.get("id"), frame.get("body"),
                                  room=_message_room(frame), done=_answer(conn, ref))


async def _delete(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    await conn.services.chat.delete(conn.user, frame.get("id"), room=_message_room(frame),
                                    done=_answer(conn, ref))


async def _react(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    await conn.services.chat.react(conn.user, frame.get("id"), frame.get("emoji"),
                                   frame.get("on"), room=_message_room(frame),
                                   done=_answer(conn, ref))


async def _sync(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    chat = conn.services.chat
    room = await chat.room_for(conn.user, frame.get("room"))
    result = await chat.sync(room, frame.get("after"))
    conn.push(result.encode(ref))


async def _typing(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    chat = conn.services.chat
    room = await conn.member_room(frame.get("room"))
    await chat.typing(conn.user, room)


async def _viewing(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    chat = conn.services.chat
    room = await conn.member_room(frame.get("room"))
    await chat.viewing(conn.user, room)


async def _read(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    chat = conn.services.chat
    room = await conn.member_room(frame.get("room"))
    marker, unread, mentions = await chat.mark_read(conn.user, room, frame.get("seq"),
                                                    origin=conn.id)
    if ref is not None:  # asked for an answer (extension): the counts at the new marker
        conn.reply("read", ref, room=room.slug, seq=marker, unread=unread, mentions=mentions)


async def _ping(conn: Connection, frame: dict[str, Any], ref: str | None) -> None:
    # A barrier: every frame received before the ping has had its answer (sends are
    # pipelined, so wait for their acks) when the pong goes out.
    if conn._sends:
        await asyncio.wait(set(conn._sends))
    conn.reply("pong", ref)


HANDLERS: dict[str, Handler] = {
    "send": _send,
    "edit": _edit,
    "delete": _delete,
    "react": _react,
    "sync": _sync,
    "typing": _typing,
    "viewing": _viewing,
    "read": _read,
    "ping": _ping,
}
