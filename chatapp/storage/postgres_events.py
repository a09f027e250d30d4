"""PostgreSQL: what changes a message after it is sent (edit, delete, react) and the
replay of a room's events. Functions of one pooled connection, for ``postgres.py``.

Each change runs in one transaction: it row-locks the message (``FOR NO KEY UPDATE``,
so the changes of one message queue up on any host), then takes the room's next seq by
advancing ``rooms.last_seq`` (the room's row lock orders its whole stream), and
appends the room event beside the change it describes. ``NO KEY``: a send replying to
that message holds its room's lock and then needs a key-share lock on the message for
its foreign key; a full ``FOR UPDATE`` would block it while waiting for the room
itself, a deadlock.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from . import Message, MessageGone, Reaction, RoomEvent, TooManyReactions
from .models import (
    MESSAGE_DELETED,
    MESSAGE_EDITED,
    REACTION,
    isoformat,
    join_mentions,
    split_mentions,
)
from .postgres_uploads import with_attachments
from .queries import EVENTS_AFTER, MESSAGE, numbered

# Emoji in the order they first appeared on the message, users in the order they reacted.
REACTIONS_OF = (
    "SELECT x.message_id, x.emoji, u.username FROM reactions x JOIN users u ON u.id = x.user_id"
    " WHERE x.message_id = ANY($1::bigint[]) ORDER BY x.message_id,"
    " min(x.id) OVER (PARTITION BY x.message_id, x.emoji), x.id"
)


def message_from_row(row: Any) -> Message:
    edited = row[7]
    return Message(
        row[0], row[1], row[2], row[3], row[4], isoformat(row[5]), row[6],
        isoformat(edited) if edited is not None else None, row[8], deleted=bool(row[9]),
        mentions=split_mentions(row[10]), bot=bool(row[11]),
    )


async def with_reactions(conn: asyncpg.Connection, messages: list[Message]) -> list[Message]:
    """The messages with their reactions and attachments (one query for each)."""
    if not messages:
        return messages
    messages = await with_attachments(conn, messages)
    rows = await conn.fetch(REACTIONS_OF, sorted({m.id for m in messages}))
    if not rows:
        return messages
    grouped: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, username in rows:
        grouped.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    reactions = {
        message_id: tuple(Reaction(emoji, tuple(users)) for emoji, users in emojis.items())
        for message_id, emojis in grouped.items()
    }
    return [replace(m, reactions=reactions.get(m.id, ())) for m in messages]


async def load_message(conn: asyncpg.Connection, message_id: int) -> Message | None:
    row = await conn.fetchrow(numbered(MESSAGE), message_id)
    if row is None:
        return None
    return (await with_reactions(conn, [message_from_row(row)]))[0]


async def _lock_live(conn: asyncpg.Connection, message_id: int) -> tuple[int, str]:
    """Row-lock a message that is not deleted: (room id, body); else MessageGone."""
    row = await conn.fetchrow(
        "SELECT room_id, body FROM messages WHERE id = $1 AND NOT deleted FOR NO KEY UPDATE",
        message_id,
    )
    if row is None:
        raise MessageGone(message_id)
    return row[0], row[1]


async def _append(
    conn: asyncpg.Connection, room_id: int, kind: str, message_id: int,
    data: dict[str, Any] | None = None,
) -> int:
    seq = await conn.fetchval(
        "WITH room AS (UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1"
        "  RETURNING last_seq)"
        " INSERT INTO room_events (room_id, seq, kind, message_id, data)"
        " SELECT $1, last_seq, $2, $3, $4 FROM room RETURNING seq",
        room_id, kind, message_id, None if data is None else json.dumps(data),
    )
    return int(seq)


async def _event(
    conn: asyncpg.Connection, kind: str, seq: int, message_id: int,
    data: dict[str, Any] | None = None,
) -> RoomEvent:
    message = await load_message(conn, message_id)
    assert message is not None
    return RoomEvent.replay(kind, seq, message, data)


async def edit(
    conn: asyncpg.Connection, message_id: int, body: str, now: datetime,
    mentions: tuple[str, ...] = (),
) -> RoomEvent | None:
    async with conn.transaction():
        room_id, old = await _lock_live(conn, message_id)
        if old == body:
            return None
        await conn.execute(
            "INSERT INTO message_edits (message_id, body, edited_at) VALUES ($1, $2, $3)",
            message_id, old, now,
        )
        await conn.execute(
            "UPDATE messages SET body = $1, edited_at = $2, mentions = $3 WHERE id = $4",
            body, now, join_mentions(mentions), message_id,
        )
        seq = await _append(conn, room_id, MESSAGE_EDITED, message_id)
    return await _event(conn, MESSAGE_EDITED, seq, message_id)


async def delete(conn: asyncpg.Connection, message_id: int) -> RoomEvent:
    async with conn.transaction():
        room_id, _ = await _lock_live(conn, message_id)
        # The body and every earlier one go; the row stays for its id (replies, links).
        await conn.execute("UPDATE messages SET deleted = true, body = '', mentions = NULL"
                           " WHERE id = $1",
                           message_id)
        await conn.execute("DELETE FROM message_edits WHERE message_id = $1", message_id)
        await conn.execute("DELETE FROM reactions WHERE message_id = $1", message_id)
        # Its files go with it: detached, they are orphans the housekeeping removes.
        await conn.execute("UPDATE uploads SET message_id = NULL WHERE message_id = $1",
                           message_id)
        seq = await _append(conn, room_id, MESSAGE_DELETED, message_id)
    return await _event(conn, MESSAGE_DELETED, seq, message_id)


async def react(
    conn: asyncpg.Connection, message_id: int, user_id: int, emoji: str, on: bool,
    now: datetime, limit: int,
) -> RoomEvent | None:
    async with conn.transaction():
        room_id, _ = await _lock_live(conn, message_id)
        if on:
            distinct, mine, present = await conn.fetchrow(
                "SELECT count(DISTINCT emoji), coalesce(bool_or(emoji = $2 AND user_id = $3),"
                " false), coalesce(bool_or(emoji = $2), false)"
                " FROM reactions WHERE message_id = $1",
                message_id, emoji, user_id,
            )
            if mine:
                return None
            if not present and distinct >= limit:
                raise TooManyReactions(message_id)
            await conn.execute(
                "INSERT INTO reactions (message_id, emoji, user_id, created_at)"
                " VALUES ($1, $2, $3, $4)",
                message_id, emoji, user_id, now,
            )
        else:
            gone = await conn.execute(
                "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
                message_id, emoji, user_id,
            )
            if gone == "DELETE 0":
                return None
        username = await conn.fetchval("SELECT username FROM users WHERE id = $1", user_id)
        data = {"emoji": emoji, "user": username, "on": on}
        seq = await _append(conn, room_id, REACTION, message_id, data)
    return await _event(conn, REACTION, seq, message_id, data)


async def events_after(
    conn: asyncpg.Connection, room_id: int, seq: int, limit: int
) -> list[RoomEvent]:
    rows = await conn.fetch(numbered(EVENTS_AFTER), room_id, seq, limit)
    messages = await with_reactions(conn, [message_from_row(list(row)[3:]) for row in rows])
    return [
        RoomEvent.replay(row[1], row[0], message, json.loads(row[2]) if row[2] else None)
        for row, message in zip(rows, messages, strict=True)
    ]
