"""Frozen records the storage engines return; never raw rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

NO_LOGIN = "!bot"  # a bot's password hash: not argon2, no password ever verifies against it


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, as the API promises."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_isoformat(text: str) -> datetime:
    """The moment ``isoformat`` wrote (SQLite stores time as that text)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    is_admin: bool
    password_hash: str
    display_name: str | None = None  # None: people see the username
    active: bool = True  # False: deactivated by an admin (SPEC §11)

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.shown_name,
                "is_admin": self.is_admin}

    def listing_json(self) -> dict[str, Any]:
        """The user as ``user_updated`` and ``GET /api/v1/users`` describe people."""
        return UserListing(self.username, self.shown_name, self.is_admin,
                           active=self.active).to_json()


@dataclass(frozen=True, slots=True)
class Room:
    id: int
    slug: str
    name: str
    kind: str  # "public" | "private" | "dm"
    last_seq: int


NOTIFY_CHOICES = ("all", "mentions", "none")


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as one member sees it: with that member's unread count, unread mentions
    and notification setting; a DM with its members and named after the others."""

    id: int
    slug: str
    name: str
    kind: str
    unread: int
    last_seq: int
    mentions: int = 0
    notify: str = "all"
    members: tuple[str, ...] = ()  # DMs only: every member, the viewer included

    def to_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "slug": self.slug,
            "name": self.name,
            "kind": self.kind,
            "unread": self.unread,
            "mentions": self.mentions,
            "last_seq": self.last_seq,
            "notify": self.notify,
        }
        if self.kind == "dm":
            summary["members"] = list(self.members)
        return summary


def summary_from_row(row: Any, members: Any) -> RoomSummary:
    """A room summary from (id, slug, name, kind, unread, mentions, last_seq, notify,
    the viewer's username) and, for a DM, its members' usernames: a DM is named after
    the others, and always notifies."""
    room_id, slug, name, kind, unread, mentions, last_seq, notify, viewer = row
    if kind != "dm":
        return RoomSummary(room_id, slug, name, kind, unread, last_seq, mentions, notify)
    others = [member for member in members if member != viewer]
    return RoomSummary(room_id, slug, ", ".join(others) or name, kind, unread, last_seq,
                       mentions, "all", tuple(members))


@dataclass(frozen=True, slots=True)
class UserListing:
    """A user as the people list shows them (``GET /api/v1/users``)."""

    username: str
    display_name: str
    is_admin: bool
    bot: bool = False
    active: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "display_name": self.display_name,
                "is_admin": self.is_admin, "bot": self.bot, "active": self.active}


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    users: tuple[str, ...]  # in the order they reacted

    def to_json(self) -> dict[str, Any]:
        return {"emoji": self.emoji, "count": len(self.users), "users": list(self.users)}


def split_mentions(stored: str | None) -> tuple[str, ...]:
    """The stored ``mentions`` (usernames, space-separated, NULL for none) as a tuple."""
    return tuple(stored.split()) if stored else ()


def join_mentions(mentions: tuple[str, ...]) -> str | None:
    return " ".join(mentions) if mentions else None


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded file (SPEC §10); ``disk_key`` names its file on disk (random, never
    from user input), ``message_id`` the message it is attached to, if any."""

    id: int
    owner_id: int
    name: str
    size: int
    content_type: str
    width: int | None
    height: int | None
    disk_key: str
    created_at: str
    message_id: int | None = None

    @property
    def url(self) -> str:
        return f"/uploads/{self.id}/{quote(self.name, safe='')}"

    def to_json(self) -> dict[str, Any]:
        image = self.width is not None
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
            "url": self.url,
            "width": self.width,
            "height": self.height,
            "thumbnail_url": f"/uploads/thumbnails/{self.id}" if image else None,
        }


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
    mentions: tuple[str, ...] = ()  # usernames, "room" for @room
    attachments: tuple[Upload, ...] = ()
    bot: bool = False  # posted by a webhook's bot user (SPEC §12)

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
            "mentions": list(self.mentions),
            "reactions": [r.to_json() for r in self.reactions] if self.reactions else [],
            "attachments": [a.to_json() for a in self.attachments],
            "bot": self.bot,
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
class SessionInfo:
    """One of a user's sessions as their account page lists it."""

    token_hash: str
    created_at: datetime
    last_seen: datetime
    user_agent: str
    address: str

    @property
    def id(self) -> str:
        """The id in URLs: a prefix of the token's hash (the token itself is never shown)."""
        return self.token_hash[:16]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token as its owner (or ``chatapp revoke-token``) sees it: never the token."""

    token_hash: str
    user_id: int
    username: str
    label: str
    created_at: datetime

    @property
    def id(self) -> str:
        return self.token_hash[:16]


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    has_more: bool


@dataclass(frozen=True, slots=True)
class AccountRow:
    """A user as the admin page lists them."""

    username: str
    display_name: str
    is_admin: bool
    active: bool
    last_seen: datetime | None
    sessions: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Invite:
    code: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    uses: int
    used: int
    revoked: bool

    def usable(self, now: datetime) -> bool:
        return not self.revoked and self.used < self.uses and now < self.expires_at


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    address: str


@dataclass(frozen=True, slots=True)
class Webhook:
    """An incoming webhook (SPEC §12): posts to ``room`` as the bot user ``name``."""

    id: int
    room: str
    room_id: int
    bot_id: int
    name: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """What an admin sees of a hook (never its token)."""
        return {"id": self.id, "room": self.room, "name": self.name,
                "created_at": self.created_at}
