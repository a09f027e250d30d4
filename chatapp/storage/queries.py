"""The SQL both engines run alike, written once, and the domain rules that live in SQL.

Queries here use ``?`` marks, as SQLite takes them; ``numbered`` turns them into
PostgreSQL's ``$1, $2, ...``. Names are ordered byte by byte on both engines:
``COLLATE "C"`` on PostgreSQL, SQLite's default (``BINARY``) there, so ``for_sqlite``
drops it. Where the engines differ in more than that (arrays, the writer's batches,
time stored as text or as timestamptz) each engine keeps its own SQL.

The rules stated here once, for both engines:
- the first user is an admin (``CREATE_USER``: decided in the insert itself, so two
  first registrations at once cannot both win; PostgreSQL locks the table around it);
- a joiner starts with the room read (``JOIN_ROOM``, and a new user joining the general
  room with ``JOIN_GENERAL``: unread counts only what follows);
- one's own messages are never unread (``UNREAD_MESSAGE``);
- the last active admin is never demoted nor deactivated (``OTHER_ADMIN``: decided in
  the update, inside the writer's transaction or with the users table locked).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .models import User

USER_COLUMNS = "id, username, is_admin, password_hash, display_name, deactivated_at IS NULL"
U_USER_COLUMNS = (
    "u.id, u.username, u.is_admin, u.password_hash, u.display_name, u.deactivated_at IS NULL"
)


def user_from_row(row: Any) -> User:
    """A ``USER_COLUMNS`` row as a User."""
    return User(id=row[0], username=row[1], is_admin=bool(row[2]), password_hash=row[3],
                display_name=row[4], active=bool(row[5]))


MESSAGE_COLUMNS = (
    "m.id, r.slug, m.seq, u.username, m.body, m.created_at, m.nonce, m.edited_at,"
    " m.reply_to, m.deleted, m.mentions, u.bot"
)
MESSAGE_FROM = "messages m JOIN users u ON u.id = m.author_id JOIN rooms r ON r.id = m.room_id"
# A room's kind as clients see it: a DM is stored as a private room with a dm_key.
ROOM_KIND = "CASE WHEN r.dm_key IS NULL THEN r.kind ELSE 'dm' END"

# The rules (see the module's docstring).
CREATE_USER = (
    "INSERT INTO users (username, username_key, password_hash, is_admin, created_at)"
    " VALUES (?, ?, ?, ? OR NOT EXISTS (SELECT 1 FROM users), ?)"
    f" RETURNING {USER_COLUMNS}"
)
# A joiner (user, now, then the room's ``where``) starts read up to the room's last seq.
_JOIN = (
    "INSERT INTO memberships (user_id, room_id, last_read_seq, joined_at)"
    " SELECT ?, id, last_seq, ? FROM rooms WHERE "
)
JOIN_ROOM = f"{_JOIN}id = ? ON CONFLICT DO NOTHING"
JOIN_GENERAL = f"{_JOIN}slug = ?"  # a new user, in the general room (slug) at once
# Another active admin than the user ``?`` exists.
OTHER_ADMIN = (
    "EXISTS (SELECT 1 FROM users WHERE is_admin AND deactivated_at IS NULL AND id <> ?)"
)
DEACTIVATE = (  # (now, user id, user id)
    "UPDATE users SET deactivated_at = coalesce(deactivated_at, ?)"
    f" WHERE id = ? AND (NOT is_admin OR {OTHER_ADMIN})"
)
DEMOTE = f"UPDATE users SET is_admin = false WHERE id = ? AND {OTHER_ADMIN}"  # (id, id)
# A message ``m`` the member ``ms`` of room ``r`` has not read.
UNREAD_MESSAGE = (
    "m.room_id = r.id AND m.seq > ms.last_read_seq AND m.author_id <> ms.user_id"
    " AND NOT m.deleted"
)


def unread_counts(mentions_me: str) -> str:
    """A member's unread messages and unread mentions of them (``ms``: the membership,
    ``me``: the user), each counted up to a limit (two ``?``: the limit twice).
    ``mentions_me`` is the engine's test that ``m.mentions`` names ``me`` or the room;
    mentions walk only messages that mention someone (the messages_mentions index)."""
    return (
        f"(SELECT count(*) FROM (SELECT 1 FROM messages m WHERE {UNREAD_MESSAGE}"
        " LIMIT ?) AS unread),"
        " (SELECT count(*) FROM (SELECT 1 FROM messages m WHERE m.mentions IS NOT NULL"
        f" AND {UNREAD_MESSAGE} AND {mentions_me} LIMIT ?) AS mentioned)"
    )


def _prune(table: str, key: str, column: str) -> str:
    """Housekeeping: delete up to ``?`` (the second) rows of ``table`` whose ``column``
    is before ``?`` (the first); bounded, so each delete is a short transaction."""
    return (f"DELETE FROM {table} WHERE {key} IN"
            f" (SELECT {key} FROM {table} WHERE {column} < ? LIMIT ?)")


PRUNE_SESSIONS = _prune("sessions", "token_hash", "last_seen")
PRUNE_LOGIN_FAILURES = _prune("login_failures", "id", "at")
PRUNE_INVITES = _prune("invites", "code", "expires_at")
PRUNE_RESETS = _prune("reset_tokens", "token_hash", "expires_at")

# Reads.
BYTEWISE = ' COLLATE "C"'
EPOCH = "SELECT value FROM meta WHERE key = 'epoch'"
HAS_USERS = "SELECT 1 FROM users LIMIT 1"
USERS = (
    "SELECT username, is_admin, coalesce(display_name, username), deactivated_at IS NULL,"
    f" bot FROM users ORDER BY username_key{BYTEWISE}"
)
ACCOUNTS = (  # every user with their last seen, sessions and API tokens
    "SELECT u.username, coalesce(u.display_name, u.username), u.is_admin,"
    " u.deactivated_at IS NULL,"
    " (SELECT max(last_seen) FROM sessions s WHERE s.user_id = u.id),"
    " (SELECT count(*) FROM sessions s WHERE s.user_id = u.id),"
    " (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id)"
    f" FROM users u ORDER BY u.username_key{BYTEWISE}"
)
USER_BY_NAME = f"SELECT {USER_COLUMNS} FROM users WHERE username_key = ?"
SESSIONS_OF = (
    "SELECT token_hash, created_at, last_seen, user_agent, address FROM sessions"
    " WHERE user_id = ? ORDER BY last_seen DESC, created_at DESC"
)
SESSION = (
    f"SELECT s.last_seen, {U_USER_COLUMNS}"
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?"
)
USER_FOR_API_TOKEN = (
    f"SELECT {U_USER_COLUMNS}"
    " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?"
)
LOGIN_FAILURES = "SELECT count(*), min(at) FROM login_failures WHERE key = ? AND at >= ?"
ROOM = f"SELECT id, slug, name, {ROOM_KIND}, last_seq FROM rooms r WHERE slug = ?"
IS_MEMBER = "SELECT 1 FROM memberships WHERE user_id = ? AND room_id = ?"
ROOM_MEMBERS = (
    "SELECT u.username FROM memberships ms JOIN users u ON u.id = ms.user_id"
    f" WHERE ms.room_id = ? ORDER BY u.username_key{BYTEWISE}"
)
PUBLIC_ROOMS = (
    "SELECT id, slug, name, kind, last_seq FROM rooms WHERE kind = 'public'"
    f" ORDER BY name{BYTEWISE}, id"
)
MESSAGE = f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE m.id = ?"
EDITS = "SELECT body, edited_at FROM message_edits WHERE message_id = ? ORDER BY id"
EVENTS_AFTER = (  # a room's events after a seq, each with its message's current state
    f"SELECT e.seq, e.kind, e.data, {MESSAGE_COLUMNS}"
    " FROM room_events e JOIN messages m ON m.id = e.message_id"
    " JOIN users u ON u.id = m.author_id JOIN rooms r ON r.id = m.room_id"
    " WHERE e.room_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?"
)
INVITES = (  # + a WHERE or ORDER BY
    "SELECT i.code, u.username, i.created_at, i.expires_at, i.uses, i.used, i.revoked"
    " FROM invites i LEFT JOIN users u ON u.id = i.created_by "
)
LIVE_RESET = "r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > ?"
RESET_USER = (
    f"SELECT {U_USER_COLUMNS} FROM reset_tokens r JOIN users u ON u.id = r.user_id"
    f" WHERE {LIVE_RESET}"
)
AUDIT = "SELECT at, actor, action, target, address FROM audit_log ORDER BY id DESC LIMIT ?"
# Unqualified: SQLite's RETURNING cannot name a table alias.
UPLOAD_COLUMNS = (
    "id, owner_id, name, size, content_type, width, height, disk_key, created_at, message_id"
)
# An upload its owner may read, or a member of the room of its live message (the upload,
# the user twice).
UPLOAD_FOR = (
    f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ? AND (owner_id = ?"
    " OR EXISTS (SELECT 1 FROM messages m JOIN memberships ms ON ms.room_id = m.room_id"
    " WHERE m.id = uploads.message_id AND NOT m.deleted AND ms.user_id = ?))"
)
WEBHOOK_SELECT = (
    "SELECT h.id, r.slug, h.room_id, h.bot_id, h.name, h.created_at"
    " FROM webhooks h JOIN rooms r ON r.id = h.room_id"
)
WEBHOOK = f"{WEBHOOK_SELECT} WHERE h.id = ?"
WEBHOOKS_OF_ROOM = f"{WEBHOOK_SELECT} WHERE h.room_id = ? ORDER BY h.id"
WEBHOOK_FOR_TOKEN = (  # a deactivated bot's hooks stop with it (SPEC §11: its tokens end)
    f"{WEBHOOK_SELECT} JOIN users b ON b.id = h.bot_id"
    " WHERE h.token_hash = ? AND b.deactivated_at IS NULL"
)


def message_page(
    room_id: int, before: int | None, after: int | None, limit: int
) -> tuple[str, list[Any], bool]:
    """A page of a room's messages: (SQL, parameters, newest first?); ``limit`` + 1 rows
    (the extra one says there is more). Without ``after`` the reader wants the newest
    page: the query walks back from ``before`` (or the end) and the caller flips it."""
    where, params = "m.room_id = ? AND NOT m.deleted", [room_id]
    if before is not None:
        where += " AND m.id < ?"
        params.append(before)
    if after is not None:
        where += " AND m.id > ?"
        params.append(after)
    newest_first = after is None or before is not None
    sql = (
        f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE {where}"
        f" ORDER BY m.id {'DESC' if newest_first else 'ASC'} LIMIT ?"
    )
    return sql, [*params, limit + 1], newest_first


@lru_cache(maxsize=64)
def for_sqlite(sql: str) -> str:
    """``sql`` as SQLite takes it: its default order is byte order already."""
    return sql.replace(BYTEWISE, "")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``sql`` with its ``?`` marks as PostgreSQL's ``$1, $2, ...`` (a ``?`` inside a
    quoted literal stays as it is)."""
    pieces = sql.split("'")
    count = 0
    for index in range(0, len(pieces), 2):  # outside quotes
        parts = pieces[index].split("?")
        text = parts[0]
        for part in parts[1:]:
            count += 1
            text += f"${count}{part}"
        pieces[index] = text
    return "'".join(pieces)
