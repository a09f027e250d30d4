"""Frozen records the storage engines return; never raw rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, as the API promises."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    is_admin: bool
    password_hash: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


@dataclass(frozen=True, slots=True)
class Room:
    id: int
    slug: str
    name: str
    kind: str  # "public" | "private"
    last_seq: int


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as one member sees it: with that member's unread count."""

    id: int
    slug: str
    name: str
    kind: str
    unread: int
    last_seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "kind": self.kind,
            "unread": self.unread,
            "last_seq": self.last_seq,
        }


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    users: tuple[str, ...]  # in the order they reacted

    def to_json(self) -> dict[str, Any]:
        return {"emoji": self.emoji, "count": len(self.users), "users": list(self.users)}


@dataclass(frozen=True, slots=True)
class Message:
    """A message's current state (the projection of its room events)."""

    id: int
    room: str
    seq: int  # the room event that created it
    author: str
    body: str
    created_at: str
    nonce: str | None
    edited_at: str | None = None
    reply_to: int | None = None
    reactions: tuple[Reaction, ...] = ()
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "seq": self.seq,
            "author": self.author,
            "body": self.body,
            "created_at": self.created_at,
            "nonce": self.nonce,
            "edited_at": self.edited_at,
            "reply_to": self.reply_to,
            "mentions": [],
            "reactions": [r.to_json() for r in self.reactions] if self.reactions else [],
            "attachments": [],
            "bot": False,
        }


# The kinds of room event (SPEC §9); each has its seq in the room's stream.
MESSAGE = "message"
MESSAGE_EDITED = "message_edited"
MESSAGE_DELETED = "message_deleted"
REACTION = "reaction"
EVENT_KINDS = (MESSAGE, MESSAGE_EDITED, MESSAGE_DELETED, REACTION)


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One event of a room's stream, as clients receive it (``type``, ``room``, ``seq``
    and the kind's own fields)."""

    kind: str
    room: str
    seq: int
    fields: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "room": self.room, "seq": self.seq, **self.fields}

    @classmethod
    def replay(
        cls, kind: str, seq: int, message: Message, data: dict[str, Any] | None
    ) -> RoomEvent:
        """Rebuild a stored event against its message's current state.

        Every event of a deleted message replays as ``message_deleted``: its bodies are
        gone, and a client that syncs ends with the room everyone else sees, at the
        same seqs (no gap).
        """
        if message.deleted or kind == MESSAGE_DELETED:
            return cls(MESSAGE_DELETED, message.room, seq, {"id": message.id})
        if kind == REACTION:
            data = data or {}
            return cls(kind, message.room, seq, {
                "id": message.id, "emoji": data.get("emoji"), "user": data.get("user"),
                "on": bool(data.get("on")),
                "reactions": [reaction.to_json() for reaction in message.reactions],
            })
        return cls(kind, message.room, seq, {"message": message.to_json()})


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A server-side login; the cookie only carries its random token."""

    token_hash: str
    user: User
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    has_more: bool
