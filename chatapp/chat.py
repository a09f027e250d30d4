"""The chat domain: rooms and their event streams. Validate, store, then publish."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from . import mentions
from .broker import BrokerError
from .broker.hub import Hub
from .channels import ROOM_PREFIX, room_channel, user_channel
from .emoji import is_reaction
from .events import Event, encode, message_event, message_json, room_event
from .limits import MEMBER_ADD_RATE, ROOM_CREATE_RATE, Limits, MemoryLimits
from .names import InvalidNameError, clean_name, name_keys
from .refusals import Code, DomainError
from .storage import (
    MAX_REACTIONS,
    NOTIFY_CHOICES,
    SYNC_LIMIT,
    AttachmentRefused,
    Message,
    MessageGone,
    MessagePage,
    Room,
    RoomEvent,
    RoomExists,
    RoomSummary,
    Storage,
    TooManyReactions,
    User,
)

log = logging.getLogger(__name__)

MAX_BODY = 4000
MAX_NONCE = 64
MAX_ATTACHMENTS = 10
MAX_ROOM_NAME = 64
MAX_SLUG = 200  # longer than any slug the app makes
PAGE_DEFAULT, PAGE_MAX = 50, 200
TYPING_EVERY = 2.0
VIEWING_EVERY = 5.0
ROOM_KINDS = ("public", "private")
# Past this many missed events a client's next gap leads it to reload the room.
CATCH_UP_LIMIT = 2000


# Told the outcome of a change after its commit, before the room hears of it.
Answer = Callable[["RoomEvent | None"], None]


class ChatError(DomainError):
    """A chat request the domain refuses (a ``Code`` such as ``"invalid"``)."""

    def __init__(self, code: Code | str, message: str, field: str | None = None) -> None:
        super().__init__(code, message, field)


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


def clean_body(body: Any, *, may_be_empty: bool = False) -> str:
    """``may_be_empty``: a message with attachments needs no text (SPEC §5)."""
    if may_be_empty and body is None:
        return ""
    if not is_text(body):
        raise ChatError("invalid", "body must be a string", "body")
    body = body.strip()
    if len(body) > MAX_BODY:
        raise ChatError("too_large", f"body must be at most {MAX_BODY} characters", "body")
    if not body and not may_be_empty:
        raise ChatError("invalid", f"body must be 1–{MAX_BODY} characters", "body")
    if CONTROL_CHARS.search(body):
        raise ChatError("invalid", "body must not contain control characters", "body")
    return body


def clean_attachments(value: Any) -> tuple[int, ...]:
    """Upload ids to attach (SPEC §10): a list of at most MAX_ATTACHMENTS, no repeats."""
    if value is None:
        return ()
    if (not isinstance(value, list) or len(value) > MAX_ATTACHMENTS
            or not all(is_count(v) and v > 0 for v in value) or len(set(value)) != len(value)):
        raise ChatError("invalid", f"attachments must be a list of at most {MAX_ATTACHMENTS}"
                        " different upload ids", "attachments")
    return tuple(value)


def clean_nonce(nonce: Any) -> str | None:
    if nonce is None:
        return None
    if not is_text(nonce) or not 1 <= len(nonce) <= MAX_NONCE:
        raise ChatError("invalid", f"nonce must be a string of 1–{MAX_NONCE} characters", "nonce")
    if CONTROL_CHARS.search(nonce):
        raise ChatError("invalid", "nonce must not contain control characters", "nonce")
    return nonce


def slugify(name: str) -> str:
    """ASCII letters, digits and dashes; accents dropped ("Café" -> "cafe"); may be ""."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48]


@dataclass(frozen=True)
class SyncResult:
    room: str
    events: list[RoomEvent]
    last_seq: int
    recovered: bool

    def encode(self, ref: str | None = None) -> Event:
        fields: dict[str, Any] = {
            "room": self.room,
            "events": [event.to_json() for event in self.events],
            "last_seq": self.last_seq,
            "recovered": self.recovered,
        }
        if ref is not None:
            fields["ref"] = ref
        return encode("synced", **fields)


class Chat:
    def __init__(self, storage: Storage, hub: Hub, limits: Limits | None = None,
                 stored_counter: Any = None) -> None:
        self.storage = storage
        self.hub = hub
        # Per user across every worker and host (SPEC §7), with the broker's store.
        self.limits = limits if limits is not None else MemoryLimits()
        self.stored_counter = stored_counter  # a metrics counter, when metrics are on

    async def room_for(self, user: User, slug: Any, *, to_write: bool = False) -> Room:
        """The room a user may read (public or member) or write (member)."""
        if not is_text(slug) or not slug:
            raise ChatError("invalid", "room must be a room slug", "room")
        # No slug holds a control character (PostgreSQL cannot even look NUL up).
        room = None if len(slug) > MAX_SLUG or CONTROL_CHARS.search(slug) else (
            await self.storage.room(slug))
        if room is None:
            raise ChatError("not_found", f"no room {slug!r}")
        if to_write or room.kind != "public":
            if not await self.storage.is_member(user.id, room.id):
                if room.kind != "public":  # private rooms and DMs: not there for outsiders
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
        reply_to: Any = None,
        attachments: Any = None,
    ) -> Message:
        """Store a message (commit), tell ``stored`` (the sender's ack), then publish.

        ``stored`` gets the message and its JSON (``message_json``), encoded once for
        the ack and the room event. ``reply_to`` names a message of the same room.
        """
        files = clean_attachments(attachments)
        text, nonce = clean_body(body, may_be_empty=bool(files)), clean_nonce(nonce)
        if reply_to is not None:
            await self._replied(room, reply_to)
        try:
            message, created = await self.storage.add_message(
                room.id, user.id, text, nonce, reply_to, await self.mentioned(room, text),
                files,
            )
        except AttachmentRefused:
            raise ChatError("invalid", "attachments must be your own uploads, not attached"
                            " to another message", "attachments") from None
        encoded = message_json(message)
        if stored is not None:
            stored(message, encoded)
        if created and self.stored_counter is not None:
            self.stored_counter.inc()
        if created:
            await self._publish(room_channel(room.slug), message_event(message, encoded))
        return message

    async def mentioned(self, room: Room, body: str) -> tuple[str, ...]:
        """Who a body mentions: members of the room by username, "room" for @room."""
        names = mentions.candidates(body)
        if not names:
            return ()
        members = [] if names == [mentions.ROOM] else await self.storage.room_members(room.id)
        return mentions.resolve(names, members)

    async def _replied(self, room: Room, reply_to: Any) -> None:
        if not is_count(reply_to) or reply_to == 0:
            raise ChatError("invalid", "reply_to must be a message id", "reply_to")
        quoted = await self.storage.message(reply_to)
        if quoted is None or quoted.deleted or quoted.room != room.slug:
            raise ChatError("not_found", "reply_to names no message of this room", "reply_to")

    async def history(
        self, room: Room, before: int | None, after: int | None, limit: int
    ) -> MessagePage:
        return await self.storage.messages(room.id, before=before, after=after, limit=limit)

    # Changes to a sent message (SPEC §9): each commits one room event, answers the
    # caller (``done``), then publishes the event to the room.

    async def edit(
        self, user: User, message_id: Any, body: Any, *, room: Any = None,
        done: Answer | None = None,
    ) -> RoomEvent | None:
        """The author changes a body; the same body again is a no-op (None, no event)."""
        message, where = await self._message_for(user, message_id, room)
        if message.author != user.username:
            raise ChatError("forbidden", "only its author may edit a message", "id")
        text = clean_body(body, may_be_empty=bool(message.attachments))
        event = None if text == message.body else await self._change(
            self.storage.edit_message(message.id, text, await self.mentioned(where, text)))
        return await self._answer(where, event, done)

    async def delete(
        self, user: User, message_id: Any, *, room: Any = None, done: Answer | None = None
    ) -> RoomEvent:
        """The author or an admin deletes a message, its earlier bodies and reactions."""
        message, where = await self._message_for(user, message_id, room, admin=user.is_admin)
        if message.author != user.username and not user.is_admin:
            raise ChatError("forbidden", "only its author or an admin may delete a message", "id")
        event = await self._change(self.storage.delete_message(message.id))
        assert event is not None
        await self._answer(where, event, done)
        return event

    async def react(
        self, user: User, message_id: Any, emoji: Any, on: Any, *, room: Any = None,
        done: Answer | None = None,
    ) -> RoomEvent | None:
        """A member toggles a reaction; toggling to the current state is a no-op."""
        if not is_reaction(emoji):
            raise ChatError("invalid", "emoji must be one emoji or a :short_name: of 1–32"
                            " characters without spaces", "emoji")
        if not isinstance(on, bool):
            raise ChatError("invalid", "on must be true or false", "on")
        message, where = await self._message_for(user, message_id, room)
        try:
            event = await self._change(self.storage.react(message.id, user.id, emoji, on))
        except TooManyReactions:
            raise ChatError("too_large", f"a message takes at most {MAX_REACTIONS} different"
                            " reactions", "emoji") from None
        return await self._answer(where, event, done)

    async def edits(self, user: User, message_id: Any) -> list[dict[str, str]]:
        """A message's earlier bodies, oldest first (members of its room only)."""
        message, _ = await self._message_for(user, message_id, None)
        return [{"body": body, "edited_at": at} for body, at in
                await self.storage.edits(message.id)]

    async def _message_for(
        self, user: User, message_id: Any, slug: Any, *, admin: bool = False
    ) -> tuple[Message, Room]:
        """A live message in a room the user belongs to (an admin: any room). Unknown,
        deleted, elsewhere than ``slug`` or in a room the user cannot see: not_found
        alike, so nothing is revealed."""
        if not is_count(message_id) or message_id == 0:
            raise ChatError("invalid", "id must be a message id", "id")
        message = await self.storage.message(message_id)
        if message is None or message.deleted or slug is not None and message.room != slug:
            raise ChatError("not_found", f"no message {message_id}", "id")
        if admin:
            room = await self.storage.room(message.room)
            if room is not None:
                return message, room
        try:
            room = await self.room_for(user, message.room, to_write=True)
        except ChatError as error:
            if error.code == "not_found":
                raise ChatError("not_found", f"no message {message_id}", "id") from None
            raise
        return message, room

    @staticmethod
    async def _change(change: Awaitable[RoomEvent | None]) -> RoomEvent | None:
        try:
            return await change
        except MessageGone:  # deleted while the request was on its way
            raise ChatError("not_found", "the message is gone", "id") from None

    async def _answer(
        self, room: Room, event: RoomEvent | None, done: Answer | None
    ) -> RoomEvent | None:
        if done is not None:
            done(event)
        if event is not None:
            await self._publish(room_channel(room.slug), room_event(event))
        return event

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

    async def _publish(self, channel: str, event: Event) -> None:
        """Publish after the commit; a broker outage must not undo what was stored.

        Room events are replayed from storage when the broker is back (``catch_up``);
        typing, read and membership notices of the outage are lost, which costs a
        stale indicator at worst.
        """
        try:
            await self.hub.publish(channel, event)
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
            for event in events:
                self.hub.deliver(channel, room_event(event))

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

    async def mark_read(
        self, user: User, room: Room, seq: Any, origin: str
    ) -> tuple[int, int, int]:
        """Set the read marker, forward or back; (marker, unread, unread mentions)."""
        if not is_count(seq):
            raise ChatError("invalid", "seq must be a non-negative integer", "seq")
        marker = await self.storage.mark_read(user.id, room.id, seq)
        unread, mentioned = await self.storage.unread(user.id, room.id)
        # A control event: each of the user's connections but the origin forwards it,
        # with the counts at the new marker (a marker moved back raises them).
        await self._publish(
            user_channel(user.id), encode("_read", room=room.slug, seq=marker, origin=origin,
                                          unread=unread, mentions=mentioned)
        )
        return marker, unread, mentioned

    async def set_notify(self, user: User, slug: Any, notify: Any) -> str:
        """Which new messages of a room the user's browser announces (SPEC §9)."""
        room = await self.room_for(user, slug, to_write=True)
        if notify not in NOTIFY_CHOICES:
            raise ChatError("invalid", "notify must be all, mentions or none", "notify")
        if room.kind == "dm" and notify != "all":
            raise ChatError("invalid", "direct messages always notify", "notify")
        choice = str(notify)
        await self.storage.set_notify(user.id, room.id, choice)
        await self._publish(user_channel(user.id),
                            encode("notify", room=room.slug, notify=choice))
        return choice

    async def create_room(self, user: User, name: Any, kind: Any) -> RoomSummary:
        try:
            name = clean_name(name, "name", MAX_ROOM_NAME)
        except InvalidNameError as refused:
            raise ChatError("invalid", refused.message, refused.field) from None
        if kind not in ROOM_KINDS:
            raise ChatError("invalid", "kind must be public or private", "kind")
        if not any(c.isalnum() for c in name):
            raise ChatError("invalid", "name needs at least one letter or digit", "name")
        await self._refuse_clashing_name(user, name)
        await self.limits.check(f"rooms:{user.id}", ROOM_CREATE_RATE,
                                "too many new rooms; try again later")
        room = await self._create_with_free_slug(name, kind, user)
        summary = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
        await self.announce_joined(user.id, summary)
        return summary

    async def _refuse_clashing_name(self, user: User, name: str) -> None:
        """Refuse (conflict) a name like one of the rooms this user can see (case,
        confusables).

        Rooms they cannot see (others' private rooms, DMs) are not compared: the
        answer must not tell that those exist.
        """
        names = [r.name for r in await self.storage.public_rooms()]
        names += [r.name for r in await self.storage.rooms_of(user.id) if r.kind != "dm"]
        keys = name_keys(name)
        for other in names:
            if not keys.isdisjoint(name_keys(other)):
                raise ChatError("conflict", f"a room named {other!r} exists already", "name")

    async def _create_with_free_slug(self, name: str, kind: str, user: User) -> Room:
        """The name's slug, or when it is taken (by a room the user may not even see,
        or by a visible one with an unlike name) the slug with a random suffix."""
        slug = slugify(name)
        for _ in range(5):
            try:
                return await self.storage.create_room(slug or "room", name, kind, user.id)
            except RoomExists:
                slug = f"{(slug or 'room')[:40]}-{secrets.token_hex(3)}"
        raise ChatError("conflict", "could not find a free slug; try another name", "name")

    async def join(self, user: User, slug: str) -> RoomSummary:
        room = await self.room_for(user, slug)
        if room.kind != "public":
            raise ChatError("forbidden", "private rooms are joined by invitation")
        await self.storage.join(user.id, room.id)
        summary = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
        await self.announce_joined(user.id, summary)
        return summary

    async def add_member(self, user: User, slug: str, username: Any) -> RoomSummary:
        room = await self.room_for(user, slug, to_write=True)
        if room.kind == "dm":
            raise ChatError("forbidden", "nobody can be added to a direct message; start"
                            " one with everyone instead")
        if not is_text(username):
            raise ChatError("invalid", "username must be a string", "username")
        member = await self.storage.user_by_name(username)
        if member is None:
            raise ChatError("not_found", f"no user {username!r}", "username")
        await self.limits.check(f"adds:{user.id}", MEMBER_ADD_RATE,
                                "too many people added; try again later")
        await self.storage.join(member.id, room.id)
        summary = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
        await self.announce_joined(member.id, summary)
        return summary

    async def leave(self, user: User, slug: str) -> None:
        room = await self.room_for(user, slug, to_write=True)
        if room.kind == "dm":
            raise ChatError("forbidden", "a direct message cannot be left")
        await self.storage.leave(user.id, room.id)
        channel = user_channel(user.id)
        await self._publish(channel, encode("_leave", room=room.slug))
        await self._publish(channel, encode("room_left", room=room.slug))

    async def announce_joined(self, user_id: int, summary: RoomSummary) -> None:
        # Connections subscribe to the room first (control), then tell the client.
        channel = user_channel(user_id)
        await self._publish(
            channel,
            encode("_join", room=summary.slug, id=summary.id, name=summary.name, kind=summary.kind),
        )
        await self._publish(channel, encode("room_joined", room=summary.to_json()))
