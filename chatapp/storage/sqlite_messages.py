"""Group insert of messages for the SQLite writer: a whole batch in a few statements.

Runs on the writer's thread, inside its transaction. A batch of sends takes four
statements, not four per message: read the rooms' counters and the names, look up
repeated nonces, insert every new row with its seq, then every row's ``message``
room event (its trigger moves the room's counter). The writer holds the write lock
(``BEGIN IMMEDIATE``), so the counters cannot move between the read and the insert.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from . import Message, MessageGone, Reaction, RoomEvent, TooManyReactions, batches
from .batches import Outcome
from .models import MESSAGE_DELETED, MESSAGE_EDITED, REACTION, join_mentions, split_mentions
from .queries import MESSAGE, MESSAGE_COLUMNS, MESSAGE_FROM

# Reactions of some messages (``{ids}``: placeholders), emoji in the order they first
# appeared, users in the order they reacted.
REACTIONS_OF = (
    "SELECT x.message_id, x.emoji, u.username FROM reactions x JOIN users u ON u.id = x.user_id"
    " WHERE x.message_id IN ({ids}) ORDER BY x.message_id,"
    " (SELECT MIN(y.id) FROM reactions y WHERE y.message_id = x.message_id"
    " AND y.emoji = x.emoji), x.id"
)


def message_from_row(row: Any) -> Message:
    return Message(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                   deleted=bool(row[9]), mentions=split_mentions(row[10]), bot=bool(row[11]))



def group_reactions(rows: list[Any]) -> dict[int, tuple[Reaction, ...]]:
    """(message id, emoji, username) rows in order -> each message's reactions."""
    grouped: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, username in rows:
        grouped.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    return {
        message_id: tuple(Reaction(emoji, tuple(users)) for emoji, users in emojis.items())
        for message_id, emojis in grouped.items()
    }


def marks(values: list[Any]) -> str:
    return ",".join("?" for _ in values)


@dataclass(frozen=True, slots=True)
class NewMessage:
    room_id: int
    author_id: int
    body: str
    nonce: str | None
    created_at: str
    reply_to: int | None = None
    mentions: tuple[str, ...] = ()


def insert_messages(conn: sqlite3.Connection, batch: list[NewMessage]) -> list[Outcome]:
    """Store a batch in order; each gets (message, created) or its own error."""
    room_ids = sorted({m.room_id for m in batch})
    user_ids = sorted({m.author_id for m in batch})
    rows = conn.execute(
        f"SELECT 0, id, slug, last_seq FROM rooms WHERE id IN ({marks(room_ids)})"
        f" UNION ALL SELECT 1, id, username, bot FROM users WHERE id IN ({marks(user_ids)})",
        (*room_ids, *user_ids),
    ).fetchall()
    slugs: dict[int, str] = {}
    last_seq: dict[int, int] = {}
    usernames: dict[int, str] = {}
    bots: set[int] = set()
    for kind, key, name, seq in rows:
        if kind == 0:
            slugs[key], last_seq[key] = name, seq
        else:
            usernames[key] = name
            if seq:  # the users' half carries the bot flag in this column
                bots.add(key)

    stored = _stored_nonces(conn, batch)
    outcomes: list[Outcome | None] = [None] * len(batch)
    everyone = list(range(len(batch)))
    fresh, first_of = batches.plan(batch, everyone, last_seq, usernames, stored, outcomes)

    if fresh:
        values = ",".join("(?,?,?,?,?,?,?,?)" for _ in fresh)
        params: list[Any] = []
        for index, seq in fresh:
            new = batch[index]
            params += [new.room_id, seq, new.author_id, new.body, new.nonce, new.created_at,
                       new.reply_to, join_mentions(new.mentions)]
        # Two statements: a savepoint keeps them all or nothing (the caller retries a
        # failed run message by message).
        conn.execute("SAVEPOINT insert_messages")
        try:
            inserted = conn.execute(
                "INSERT INTO messages (room_id, seq, author_id, body, nonce, created_at,"
                f" reply_to, mentions) VALUES {values} RETURNING id, room_id, seq",
                params,
            ).fetchall()
            events = ",".join("(?,?,'message',?)" for _ in inserted)
            conn.execute(
                f"INSERT INTO room_events (room_id, seq, kind, message_id) VALUES {events}",
                [part for message_id, room_id, seq in inserted
                 for part in (room_id, seq, message_id)],
            )
        except sqlite3.Error:
            conn.execute("ROLLBACK TO insert_messages")
            conn.execute("RELEASE insert_messages")
            raise
        conn.execute("RELEASE insert_messages")
        ids = {(room_id, seq): message_id for message_id, room_id, seq in inserted}
        for index, seq in fresh:
            new = batch[index]
            message = Message(ids[(new.room_id, seq)], slugs[new.room_id], seq,
                              usernames[new.author_id], new.body, new.created_at, new.nonce,
                              reply_to=new.reply_to, mentions=new.mentions,
                              bot=new.author_id in bots)
            outcomes[index] = (message, True)

    batches.answer_repeats(batch, everyone, first_of, outcomes)
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def _stored_nonces(
    conn: sqlite3.Connection, batch: list[NewMessage]
) -> dict[tuple[int, str], Message]:
    keys = sorted({(m.author_id, m.nonce) for m in batch if m.nonce is not None})
    if not keys:
        return {}
    params = [part for key in keys for part in key]
    # A join with the keys, not ``(author_id, nonce) IN (VALUES ...)``: SQLite scans
    # every message for the latter, and searches the nonce index for the former.
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS}, m.author_id"
        f" FROM (VALUES {','.join('(?,?)' for _ in keys)}) k JOIN {MESSAGE_FROM}"
        " WHERE m.author_id = k.column1 AND m.nonce = k.column2",
        params,
    ).fetchall()
    return {(row[12], row[6]): message_from_row(row) for row in rows}


# Writer-thread helpers for the events that change a message (edit, delete, react).


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """All of the block's statements or none (a writer op must leave no half change)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def load_message(conn: sqlite3.Connection, message_id: int) -> Message | None:
    row = conn.execute(MESSAGE, (message_id,)).fetchone()
    if row is None:
        return None
    rows = conn.execute(REACTIONS_OF.format(ids="?"), (message_id,)).fetchall()
    from .sqlite_uploads import attachments_now  # (it builds on this module)

    return replace(message_from_row(row), reactions=group_reactions(rows).get(message_id, ()),
                   attachments=attachments_now(conn, message_id))


def live_body(conn: sqlite3.Connection, message_id: int) -> str:
    """The body of a message that is not deleted, else MessageGone."""
    row = conn.execute(
        "SELECT body FROM messages WHERE id = ? AND NOT deleted", (message_id,)
    ).fetchone()
    if row is None:
        raise MessageGone(message_id)
    return str(row[0])


def append_event(
    conn: sqlite3.Connection, kind: str, message_id: int, data: dict[str, Any] | None = None
) -> int:
    """Append a room event about a message at its room's next seq; return the seq.

    The ``room_events_seq`` trigger moves the room's counter in the same transaction.
    """
    row = conn.execute(
        "INSERT INTO room_events (room_id, seq, kind, message_id, data)"
        " SELECT m.room_id, r.last_seq + 1, ?, m.id, ?"
        " FROM messages m JOIN rooms r ON r.id = m.room_id WHERE m.id = ? RETURNING seq",
        (kind, None if data is None else json.dumps(data), message_id),
    ).fetchone()
    if row is None:
        raise MessageGone(message_id)
    return int(row[0])


def edit(
    conn: sqlite3.Connection, message_id: int, body: str, now: str,
    mentions: tuple[str, ...] = (),
) -> RoomEvent | None:
    with savepoint(conn, "edit_message"):
        old = live_body(conn, message_id)
        if old == body:
            return None
        conn.execute(
            "INSERT INTO message_edits (message_id, body, edited_at) VALUES (?, ?, ?)",
            (message_id, old, now),
        )
        conn.execute(
            "UPDATE messages SET body = ?, edited_at = ?, mentions = ? WHERE id = ?",
            (body, now, join_mentions(mentions), message_id),
        )
        seq = append_event(conn, MESSAGE_EDITED, message_id)
    message = load_message(conn, message_id)
    assert message is not None
    return RoomEvent.replay(MESSAGE_EDITED, seq, message, None)


def delete(conn: sqlite3.Connection, message_id: int) -> RoomEvent:
    with savepoint(conn, "delete_message"):
        live_body(conn, message_id)
        # The body and every earlier one go; the row stays for its id (replies, links).
        conn.execute("UPDATE messages SET deleted = 1, body = '', mentions = NULL WHERE id = ?",
                     (message_id,))
        conn.execute("DELETE FROM message_edits WHERE message_id = ?", (message_id,))
        conn.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))
        # Its files go with it: detached, they are orphans the housekeeping removes.
        conn.execute("UPDATE uploads SET message_id = NULL WHERE message_id = ?", (message_id,))
        seq = append_event(conn, MESSAGE_DELETED, message_id)
    message = load_message(conn, message_id)
    assert message is not None
    return RoomEvent.replay(MESSAGE_DELETED, seq, message, None)


def react(
    conn: sqlite3.Connection, message_id: int, user_id: int, emoji: str, on: bool, now: str,
    limit: int,
) -> RoomEvent | None:
    with savepoint(conn, "react"):
        live_body(conn, message_id)
        key = (message_id, emoji, user_id)
        if on:
            present = conn.execute(
                "SELECT COUNT(DISTINCT emoji), COALESCE(MAX(emoji = ? AND user_id = ?), 0),"
                " COALESCE(MAX(emoji = ?), 0) FROM reactions WHERE message_id = ?",
                (emoji, user_id, emoji, message_id),
            ).fetchone()
            distinct, mine, emoji_present = present
            if mine:
                return None
            if not emoji_present and distinct >= limit:
                raise TooManyReactions(message_id)
            conn.execute(
                "INSERT INTO reactions (message_id, emoji, user_id, created_at)"
                " VALUES (?, ?, ?, ?)",
                (*key, now),
            )
        else:
            gone = conn.execute(
                "DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND user_id = ?", key
            )
            if gone.rowcount == 0:
                return None
        user = conn.execute("SELECT username FROM users WHERE id = ?", (user_id,)).fetchone()
        data = {"emoji": emoji, "user": user[0], "on": on}
        seq = append_event(conn, REACTION, message_id, data)
    message = load_message(conn, message_id)
    assert message is not None
    return RoomEvent.replay(REACTION, seq, message, data)
