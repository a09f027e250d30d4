"""The storage interface; one engine module per database, chosen by URL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from .models import (
    NOTIFY_CHOICES,
    AccountRow,
    AuditEntry,
    Invite,
    Message,
    MessagePage,
    Reaction,
    Room,
    RoomEvent,
    RoomSummary,
    SessionInfo,
    SessionRecord,
    TokenInfo,
    Upload,
    User,
    UserListing,
    Webhook,
)
from .search import Phrase, SearchQuery

__all__ = [
    "NOTIFY_CHOICES",
    "AccountRow",
    "AuditEntry",
    "Invite",
    "Message",
    "Phrase",
    "SearchQuery",
    "MessageGone",
    "MessagePage",
    "Reaction",
    "Room",
    "RoomEvent",
    "RoomExists",
    "RoomSummary",
    "SessionInfo",
    "SessionRecord",
    "TokenInfo",
    "Storage",
    "StorageError",
    "TooManyReactions",
    "AttachmentRefused",
    "Upload",
    "StorageUnavailable",
    "StoreInUse",
    "User",
    "UserListing",
    "Webhook",
    "UsernameTaken",
    "open_storage",
]

GENERAL_ROOM = "general"
SYNC_LIMIT = 500
MAX_REACTIONS = 20  # distinct emoji per message
# A room summary counts unread messages up to this (the client shows "99+"): a
# room's summary then costs at most this many index rows, however long the backlog.
UNREAD_LIMIT = 100


class StorageError(RuntimeError):
    """The database did not answer as expected."""


class StorageUnavailable(StorageError):  # noqa: N818 - reads as the fact it reports
    """The database cannot be reached now (down, restarting, unreachable, full).

    The web layer answers 503 for it; the operation may succeed once it is back.
    """


class StoreInUse(StorageError):  # noqa: N818 - reads as the fact it reports
    """Another process holds the store for itself (the memory broker serves one)."""


class UsernameTaken(StorageError):  # noqa: N818 - reads as the fact it reports
    """Usernames are unique case-insensitively."""


class RoomExists(StorageError):  # noqa: N818 - reads as the fact it reports
    """Room slugs are unique."""


class MessageGone(StorageError):  # noqa: N818 - reads as the fact it reports
    """No such message, or it was deleted."""


class AttachmentRefused(StorageError):  # noqa: N818 - reads as the fact it reports
    """An upload to attach is unknown, someone else's, or attached to a message already."""


class TooManyReactions(StorageError):  # noqa: N818 - reads as the fact it reports
    """A message carries MAX_REACTIONS distinct emoji already."""


class Storage(ABC):
    """Everything chatapp persists. Engines implement it; nothing else holds SQL.

    Writes that assign a room ``seq`` do so in the same transaction as the insert, so a
    room's event stream has no gaps whatever the number of writers.
    """

    @abstractmethod
    async def connect(self) -> None:
        """Open connections and apply pending schema migrations."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the database does not answer."""

    async def claim_single_process(self) -> None:
        """Keep any other process off this store for as long as this one is connected
        (StoreInUse if one is there). Engines without a server-side way leave it to
        the caller (SQLite: a file lock, see ``services``)."""
        return None

    @abstractmethod
    async def epoch(self) -> str:
        """An id that changes only when the store is replaced."""

    # operations (`chatapp backup` / `chatapp restore`); need no connect()
    async def backup(self, target: str, *, force: bool = False) -> None:
        """Write a consistent copy of the live store to the new file ``target``."""
        raise StorageError("this database is backed up with its own tools")

    async def check_backup(self, source: str) -> None:
        """Raise StorageError unless ``restore`` would accept ``source``."""
        raise StorageError("this database is restored with its own tools")

    async def restore(self, source: str) -> str:
        """Replace the whole store by a backup (no server running); return the new epoch."""
        raise StorageError("this database is restored with its own tools")

    # users
    @abstractmethod
    async def create_user(self, username: str, password_hash: str, *, admin: bool = False) -> User:
        """Insert a user (admin when first or asked), member of the general room."""

    @abstractmethod
    async def user_by_name(self, username: str) -> User | None:
        """Look a user up case-insensitively."""

    @abstractmethod
    async def set_password_hash(self, user_id: int, password_hash: str) -> None: ...

    @abstractmethod
    async def set_display_name(self, user_id: int, display_name: str | None) -> User | None:
        """Set (None: clear) a user's display name; the updated user, None if gone."""

    # sessions
    @abstractmethod
    async def create_session(
        self, token_hash: str, user_id: int, user_agent: str = "", address: str = ""
    ) -> None: ...

    @abstractmethod
    async def sessions_of(self, user_id: int) -> list[SessionInfo]:
        """A user's sessions, most recently used first."""

    @abstractmethod
    async def delete_sessions_of(self, user_id: int, keep: str | None) -> list[str]:
        """Delete a user's sessions but ``keep`` (a token hash); the hashes deleted."""

    @abstractmethod
    async def session(self, token_hash: str, idle_after: datetime) -> SessionRecord | None:
        """Return a live session; one last used before ``idle_after`` is deleted instead."""

    @abstractmethod
    async def touch_session(self, token_hash: str, address: str | None = None) -> None: ...

    @abstractmethod
    async def delete_session(self, token_hash: str) -> None: ...

    # API tokens (bots)
    @abstractmethod
    async def create_api_token(self, token_hash: str, user_id: int, name: str) -> None: ...

    @abstractmethod
    async def user_for_api_token(self, token_hash: str) -> User | None: ...

    @abstractmethod
    async def api_tokens(
        self, *, user_id: int | None = None, token_id: str | None = None
    ) -> list[TokenInfo]:
        """API tokens of a user, or the one(s) whose id (hash prefix) is ``token_id``."""

    @abstractmethod
    async def delete_api_token(self, token_hash: str) -> None: ...

    # failed logins
    @abstractmethod
    async def record_login_failure(self, keys: list[str]) -> None: ...

    @abstractmethod
    async def login_failures(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        """Count failures for ``key`` since a moment, and the oldest of them."""

    # housekeeping (the server prunes in bounded batches, see ``chatapp.housekeeping``)
    @abstractmethod
    async def prune_sessions(self, idle_before: datetime, limit: int) -> int:
        """Delete at most ``limit`` sessions last used before ``idle_before``; how many."""

    @abstractmethod
    async def prune_login_failures(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` login failures recorded before ``before``; how many."""

    # rooms
    @abstractmethod
    async def create_room(self, slug: str, name: str, kind: str, creator_id: int) -> Room:
        """Create a room with its creator as first member; RoomExists if the slug is used."""

    @abstractmethod
    async def room(self, slug: str) -> Room | None: ...

    @abstractmethod
    async def rooms_of(self, user_id: int) -> list[RoomSummary]:
        """The rooms a user belongs to, with unread counts, ordered by name."""

    @abstractmethod
    async def public_rooms(self) -> list[Room]: ...

    @abstractmethod
    async def is_member(self, user_id: int, room_id: int) -> bool: ...

    @abstractmethod
    async def join(self, user_id: int, room_id: int) -> None: ...

    @abstractmethod
    async def leave(self, user_id: int, room_id: int) -> None: ...

    @abstractmethod
    async def mark_read(self, user_id: int, room_id: int, seq: int) -> int:
        """Set the user's read marker to ``seq`` (at most the room's last seq), forward
        or back ("mark unread", SPEC §6); return the marker."""

    @abstractmethod
    async def unread(self, user_id: int, room_id: int) -> tuple[int, int]:
        """A member's unread messages and unread mentions of them in a room (each up
        to UNREAD_LIMIT); (0, 0) for a non-member."""

    @abstractmethod
    async def room_members(self, room_id: int) -> list[str]:
        """The usernames of a room's members."""

    @abstractmethod
    async def create_dm(
        self, slug: str, key: str, name: str, member_ids: list[int]
    ) -> tuple[Room, bool]:
        """The DM of exactly these people (``key``: their ids, sorted), and whether it is
        new; a new one gets ``slug`` and ``name`` and all of them as members at once."""

    @abstractmethod
    async def set_notify(self, user_id: int, room_id: int, notify: str) -> None:
        """A member's notification setting for a room: all, mentions or none."""

    @abstractmethod
    async def users(self) -> list[UserListing]:
        """Every account, by username."""

    # messages and their room events
    @abstractmethod
    async def add_message(
        self, room_id: int, author_id: int, body: str, nonce: str | None,
        reply_to: int | None = None, mentions: tuple[str, ...] = (),
        attachments: tuple[int, ...] = (),
    ) -> tuple[Message, bool]:
        """Store a message and its ``message`` event (the room's next seq) together;
        return it and whether it is new.

        The same nonce from the same author returns the stored message, not a new one.
        ``attachments`` (upload ids) are attached in the same transaction; an upload
        that is unknown, not the author's, or attached already: AttachmentRefused,
        and nothing is stored.
        """

    @abstractmethod
    async def message(self, message_id: int) -> Message | None:
        """A message with its reactions, deleted or not; None if it never existed."""

    @abstractmethod
    async def edit_message(
        self, message_id: int, body: str, mentions: tuple[str, ...] = ()
    ) -> RoomEvent | None:
        """Keep the old body in the edit history, store the new one and append its
        ``message_edited`` event; None when the body is the same (no event),
        MessageGone if it is deleted or unknown."""

    @abstractmethod
    async def delete_message(self, message_id: int) -> RoomEvent:
        """Mark a message deleted, drop its body, earlier bodies and reactions, and
        append its ``message_deleted`` event; MessageGone if already gone."""

    @abstractmethod
    async def react(self, message_id: int, user_id: int, emoji: str, on: bool) -> RoomEvent | None:
        """Add or remove one user's reaction and append its ``reaction`` event; None
        when it is already so (no event). MessageGone for a deleted or unknown message,
        TooManyReactions for a new emoji past MAX_REACTIONS."""

    @abstractmethod
    async def edits(self, message_id: int) -> list[tuple[str, str]]:
        """A message's earlier bodies with the time each was replaced, oldest first."""

    @abstractmethod
    async def messages(
        self, room_id: int, *, before: int | None, after: int | None, limit: int
    ) -> MessagePage:
        """A keyset page by message id, ascending; the newest page when neither is set.
        Deleted messages are left out."""

    @abstractmethod
    async def events_after(self, room_id: int, seq: int, limit: int) -> list[RoomEvent]:
        """Room events of every kind with seq > ``seq`` in order, at most ``limit``,
        each against its message's current state (``RoomEvent.replay``)."""

    @abstractmethod
    async def search(
        self, user_id: int, query: SearchQuery, *, before: int | None, limit: int
    ) -> MessagePage:
        """Live messages matching ``query`` that the user may read (public rooms, rooms
        they are a member of), newest first, ids below ``before``; ``has_more`` when
        more match past this page (see ``storage.search``)."""

    # uploads (SPEC §10)
    @abstractmethod
    async def add_upload(
        self, owner_id: int, name: str, size: int, content_type: str,
        width: int | None, height: int | None, disk_key: str,
    ) -> Upload:
        """Record a stored file, not attached to any message yet."""

    @abstractmethod
    async def upload_for(self, upload_id: int, user_id: int) -> Upload | None:
        """The upload if this user may read it: its owner, or a member of the room of
        the (not deleted) message it is attached to; else None."""

    @abstractmethod
    async def prune_uploads(self, before: datetime, limit: int) -> list[str]:
        """Delete at most ``limit`` uploads created before ``before`` and attached to no
        message; return their disk keys (the caller removes the files)."""


    # administration (SPEC §11; engines: ``sqlite_admin``, ``postgres_admin``)
    @abstractmethod
    async def has_users(self) -> bool: ...

    @abstractmethod
    async def accounts(self) -> list[AccountRow]:
        """Every user with last seen, sessions and API tokens counts, by username."""

    @abstractmethod
    async def set_active(self, user_id: int, active: bool) -> list[str] | None:
        """Deactivate (deleting the user's sessions and API tokens in the same
        transaction; returns the session hashes deleted) or reactivate (returns []).
        None when refused: deactivating the last active admin."""

    @abstractmethod
    async def set_admin(self, user_id: int, admin: bool) -> bool:
        """Grant or revoke admin; False when refused (revoking the last active admin)."""

    @abstractmethod
    async def create_invite(self, code: str, creator_id: int, uses: int,
                            expires_at: datetime) -> None: ...

    @abstractmethod
    async def invites(self) -> list[Invite]:
        """Every invite not yet pruned, newest first."""

    @abstractmethod
    async def invite(self, code: str) -> Invite | None: ...

    @abstractmethod
    async def revoke_invite(self, code: str) -> bool: ...

    @abstractmethod
    async def take_invite(self, code: str, now: datetime, give_back: bool = False) -> bool:
        """Use one of an invite's uses if it is usable at ``now`` (or give one back)."""

    @abstractmethod
    async def create_reset(self, token_hash: str, user_id: int, expires_at: datetime) -> None: ...

    @abstractmethod
    async def reset_user(self, token_hash: str, now: datetime, *, use: bool) -> User | None:
        """The user of an unused, unexpired reset token; ``use`` marks it used (once)."""

    @abstractmethod
    async def add_audit(self, actor: str, action: str, target: str, address: str) -> None: ...

    @abstractmethod
    async def audit(self, limit: int) -> list[AuditEntry]:
        """The newest audit entries, newest first."""

    @abstractmethod
    async def prune_invites(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` invites expired before ``now``; how many."""

    @abstractmethod
    async def prune_resets(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` reset tokens expired before ``now``; how many."""

    # incoming webhooks (SPEC §12; engines: ``sqlite_webhooks``, ``postgres_webhooks``)
    @abstractmethod
    async def create_webhook(
        self, token_hash: str, room_id: int, name: str, creator_id: int | None
    ) -> Webhook:
        """A hook posting as the bot user ``name`` (made now, or shared with the hooks
        already posting as it); UsernameTaken when a person holds that name."""

    @abstractmethod
    async def webhooks(self, room_id: int) -> list[Webhook]: ...

    @abstractmethod
    async def webhook_for_token(self, token_hash: str) -> Webhook | None: ...

    @abstractmethod
    async def delete_webhook(self, webhook_id: int) -> bool: ...

    # bulk import (engines: ``sqlite_admin``, ``postgres_admin``)
    @abstractmethod
    async def import_messages(
        self, room_id: int, messages: Sequence[tuple[int, str, datetime]]
    ) -> tuple[int, int]:
        """Append ``messages`` (author id, body, created_at) to a room, in order, each with
        its ``message`` event at the room's next seq, all in one transaction; the first
        and last new message ids. For loading a large history (an import, the
        benchmarks' seeding): no nonces, mentions or attachments, no per-message answer,
        and nothing is broadcast. A missing room: StorageError and nothing stored; an
        empty list: ValueError. Call it in batches (tens of thousands) for millions."""


def open_storage(url: str, *, timeout: float | None = None) -> Storage:
    """Build the engine for a ``CHATAPP_DATABASE_URL`` (not yet connected). ``timeout``
    (PostgreSQL): seconds any wait on the server may take (CHATAPP_DATABASE_TIMEOUT)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStorage

        return SQLiteStorage(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStorage

        return PostgresStorage(url) if timeout is None else PostgresStorage(url, timeout)
    raise StorageError(f"unsupported database URL: {url}")
