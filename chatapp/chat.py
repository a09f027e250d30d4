"""The chat domain: rooms and their event streams. Validate, store, then publish."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from .broker import BrokerError
from .broker.hub import Hub
from .events import (
    ROOM_PREFIX,
    encode,
    message_event,
    message_json,
    room_channel,
    user_channel,
)
from .limits import MEMBER_ADD_RATE, ROOM_CREATE_RATE, Limits, MemoryLimits
from .storage import SYNC_LIMIT, Message, MessagePage, Room, RoomExists, RoomSummary, Storage, User

log = logging.getLogger(__name__)

MAX_BODY = 4000
MAX_NONCE = 64
MAX_ROOM_NAME = 64
PAGE_DEFAULT, PAGE_MAX = 50, 200
TYPING_EVERY = 2.0
VIEWING_EVERY = 5.0
ROOM_KINDS = ("public", "private")
# Past this many missed events a client's next gap leads it to reload the room.
CATCH_UP_LIMIT = 2000


class ChatError(Exception):
    """A request the domain refuses; ``code`` is the websocket error code."""

    STATUS = {"invalid": 422, "forbidden": 403, "not_found": 404, "conflict": 409}

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return self.STATUS.get(self.code, 400)


# Lone surrogates (from JSON escapes like "\\ud800") are not text: SQLite and the
# websocket's UTF-8 encoding both reject them, so they are refused at the door.
_SURROGATE = re.compile("[\ud800-\udfff]")
# The largest seq or id storage can hold (a signed 64-bit integer).
MAX_INT = 2**63 - 1
# C0 controls but tab, newline and carriage return: never chat text, and PostgreSQL
# cannot store NUL.
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_text(value: Any) -> TypeGuard[str]:
    """A str that encodes as UTF-8 (no lone surrogates)."""
    return isinstance(value, str) and (value.isascii() or not _SURROGATE.search(value))


def is_count(value: Any) -> bool:
    """A non-negative integer that fits storage (bool is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT


def clean_body(body: Any) -> str:
    if not is_text(body):
        raise ChatError("invalid", "body must be a string", "body")
    body = body.strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise ChatError("invalid", f"body must be 1–{MAX_BODY} characters", "body")
    if CONTROL_CHARS.search(body):
        raise ChatError("invalid", "body must not contain control characters", "body")
    return body


def clean_nonce(nonce: Any) -> str | None:
    if nonce is None:
        return None
    if not is_text(nonce) or not 1 <= len(nonce) <= MAX_NONCE:
        raise ChatError("invalid", f"nonce must be a string of 1–{MAX_NONCE} characters", "nonce")
    if CONTROL_CHARS.search(nonce):
        raise ChatError("invalid", "nonce must not contain control characters", "nonce")
    return nonce


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]


@dataclass(frozen=True)
class SyncResult:
    room: str
    events: list[Message]
    last_seq: int
    recovered: bool

    def encode(self, ref: str | None = None) -> str:
        fields: dict[str, Any] = {
            "room": self.room,
            "events": [
                {"type": "message", "room": m.room, "seq": m.seq, "message": m.to_json()}
                for m in self.events
            ],
            "last_seq": self.last_seq,
            "recovered": self.recovered,
        }
        if ref is not None:
            fields["ref"] = ref
        return encode("synced", **fields)


class Chat:
    def __init__(self, storage: Storage, hub: Hub, limits: Limits | None = None) -> None:
        self.storage = storage
        self.hub = hub
        # Per user across every worker and host (SPEC §7), with the broker's store.
        self.limits = limits if limits is not None else MemoryLimits()
        self.stored_counter: Any = None  # a metrics counter, when metrics are on

    async def room_for(self, user: User, slug: Any, *, to_write: bool = False) -> Room:
        """The room a user may read (public or member) or write (member)."""
        if not is_text(slug) or not slug:
            raise ChatError("invalid", "room must be a room slug", "room")
        room = await self.storage.room(slug)
        if room is None:
            raise ChatError("not_found", f"no room {slug!r}")
        if to_write or room.kind == "private":
            if not await self.storage.is_member(user.id, room.id):
                if room.kind == "private":  # do not reveal private rooms to outsiders
                    raise ChatError("not_found", f"no room {slug!r}")
                raise ChatError("forbidden", f"join {slug!r} first")
        return room

    async def post(
        self,
        user: User,
        room: Room,
        body: Any,
        nonce: Any,
        stored: Callable[[Message, str], None] | None = None,
    ) -> Message:
        """Store a message (commit), tell ``stored`` (the sender's ack), then publish.

        ``stored`` gets the message and its JSON (``message_json``), encoded once for
        the ack and the room event.
        """
        text, nonce = clean_body(body), clean_nonce(nonce)
        message, created = await self.storage.add_message(room.id, user.id, text, nonce)
        encoded = message_json(message)
        if stored is not None:
            stored(message, encoded)
        if created and self.stored_counter is not None:
            self.stored_counter.inc()
        if created:
            await self._publish(room_channel(room.slug), message_event(message, encoded))
        return message

    async def history(
        self, room: Room, before: int | None, after: int | None, limit: int
    ) -> MessagePage:
        return await self.storage.messages(room.id, before=before, after=after, limit=limit)

    async def sync(self, room: Room, after: Any) -> SyncResult:
        if not is_count(after):
            raise ChatError("invalid", "after must be a non-negative integer seq", "after")
        events = await self.storage.events_after(room.id, after, SYNC_LIMIT + 1)
        if len(events) > SYNC_LIMIT:
            current = await self.storage.room(room.slug)
            return SyncResult(room.slug, [], current.last_seq if current else 0, False)
        if events:
            return SyncResult(room.slug, events, events[-1].seq, True)
        current = await self.storage.room(room.slug)
        return SyncResult(room.slug, [], current.last_seq if current else 0, True)

    async def _publish(self, channel: str, payload: str) -> None:
        """Publish after the commit; a broker outage must not undo what was stored.

        Room events are replayed from storage when the broker is back (``catch_up``);
        typing, read and membership notices of the outage are lost, which costs a
        stale indicator at worst.
        """
        try:
            await self.hub.publish(channel, payload)
        except BrokerError as error:
            log.warning("could not publish on %s: %s", channel, error)

    async def catch_up(self, rooms: dict[str, int]) -> None:
        """Replay from storage, to this process's subscribers, room events after a seq.

        Called when the broker lost events (a Redis reconnect); clients drop the
        duplicates by seq.
        """
        for channel, after in rooms.items():
            room = await self.storage.room(channel.removeprefix(ROOM_PREFIX))
            if room is None:
                continue
            events = await self.storage.events_after(room.id, after, CATCH_UP_LIMIT)
            for message in events:
                self.hub.deliver(channel, message_event(message))

    async def typing(self, user: User, room: Room) -> None:
        """Tell the room someone is typing, at most once per 2 s per user and room."""
        if not await self.limits.once(f"typing:{user.id}:{room.id}", TYPING_EVERY):
            return
        await self._publish(room_channel(room.slug), encode("typing", room=room.slug,
                                                               user=user.username))

    async def viewing(self, user: User, room: Room) -> None:
        """Tell the room who is looking at it, at most once per 5 s per user and room.

        Nothing is stored: clients forget a viewer they have not heard from lately.
        """
        if not await self.limits.once(f"viewing:{user.id}:{room.id}", VIEWING_EVERY):
            return
        await self._publish(room_channel(room.slug), encode("viewing", room=room.slug,
                                                               user=user.username))

    async def mark_read(self, user: User, room: Room, seq: Any, origin: str) -> int:
        if not is_count(seq):
            raise ChatError("invalid", "seq must be a non-negative integer", "seq")
        marker = await self.storage.mark_read(user.id, room.id, seq)
        # A control event: each of the user's connections but the origin forwards it.
        await self._publish(
            user_channel(user.id), encode("_read", room=room.slug, seq=marker, origin=origin)
        )
        return marker

    async def create_room(self, user: User, name: Any, kind: Any) -> RoomSummary:
        if not is_text(name) or not 1 <= len(name.strip()) <= MAX_ROOM_NAME:
            raise ChatError("invalid", f"name must be 1–{MAX_ROOM_NAME} characters", "name")
        if CONTROL_CHARS.search(name):
            raise ChatError("invalid", "name must not contain control characters", "name")
        if kind not in ROOM_KINDS:
            raise ChatError("invalid", "kind must be public or private", "kind")
        name = name.strip()
        slug = slugify(name)
        if not slug:
            raise ChatError("invalid", "name needs at least one letter or digit", "name")
        await self.limits.check(f"rooms:{user.id}", ROOM_CREATE_RATE,
                                "too many new rooms; try again later")
        try:
            room = await self.storage.create_room(slug, name, kind, user.id)
        except RoomExists:
            raise ChatError("conflict", f"a room {slug!r} exists already", "name") from None
        summary = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
        await self._announce_joined(user.id, summary)
        return summary

    async def join(self, user: User, slug: str) -> RoomSummary:
        room = await self.room_for(user, slug)
        if room.kind != "public":
            raise ChatError("forbidden", "private rooms are joined by invitation")
        await self.storage.join(user.id, room.id)
        summary = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
        await self._announce_joined(user.id, summary)
        return summary

    async def add_member(self, user: User, slug: str, username: Any) -> RoomSummary:
        room = await self.room_for(user, slug, to_write=True)
        if not is_text(username):
            raise ChatError("invalid", "username must be a string", "username")
        member = await self.storage.user_by_name(username)
        if member is None:
            raise ChatError("not_found", f"no user {username!r}", "username")
        await self.limits.check(f"adds:{user.id}", MEMBER_ADD_RATE,
                                "too many people added; try again later")
        await self.storage.join(member.id, room.id)
        summary = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
        await self._announce_joined(member.id, summary)
        return summary

    async def leave(self, user: User, slug: str) -> None:
        room = await self.room_for(user, slug, to_write=True)
        await self.storage.leave(user.id, room.id)
        channel = user_channel(user.id)
        await self._publish(channel, encode("_leave", room=room.slug))
        await self._publish(channel, encode("room_left", room=room.slug))

    async def _announce_joined(self, user_id: int, summary: RoomSummary) -> None:
        # Connections subscribe to the room first (control), then tell the client.
        channel = user_channel(user_id)
        await self._publish(
            channel,
            encode("_join", room=summary.slug, id=summary.id, name=summary.name, kind=summary.kind),
        )
        await self._publish(channel, encode("room_joined", room=summary.to_json()))
