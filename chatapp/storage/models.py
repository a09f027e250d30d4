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
class Message:
    id: int
    room: str
    seq: int
    author: str
    body: str
    created_at: str
    nonce: str | None
    edited_at: str | None = None

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
        }


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
