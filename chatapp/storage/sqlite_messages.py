"""Group insert of messages for the SQLite writer: a whole batch in a few statements.

Runs on the writer's thread, inside its transaction. A batch of sends takes three
statements, not three per message: read the rooms' counters and the names, look up
repeated nonces, insert every new row with its seq. The writer holds the write lock
(``BEGIN IMMEDIATE``), so the counters cannot move between the read and the insert.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from . import Message, StorageError

MESSAGE_COLUMNS = "m.id, r.slug, m.seq, u.username, m.body, m.created_at, m.nonce, m.edited_at"
MESSAGE_FROM = "messages m JOIN users u ON u.id = m.author_id JOIN rooms r ON r.id = m.room_id"


def message_from_row(row: Any) -> Message:
    return Message(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


@dataclass(frozen=True, slots=True)
class NewMessage:
    room_id: int
    author_id: int
    body: str
    nonce: str | None
    created_at: str


Outcome = tuple[Message, bool] | BaseException


def insert_messages(conn: sqlite3.Connection, batch: list[NewMessage]) -> list[Outcome]:
    """Store a batch in order; each gets (message, created) or its own error."""
    room_ids = sorted({m.room_id for m in batch})
    user_ids = sorted({m.author_id for m in batch})
    rows = conn.execute(
        f"SELECT 0, id, slug, last_seq FROM rooms WHERE id IN ({_marks(room_ids)})"
        f" UNION ALL SELECT 1, id, username, 0 FROM users WHERE id IN ({_marks(user_ids)})",
        (*room_ids, *user_ids),
    ).fetchall()
    slugs: dict[int, str] = {}
    last_seq: dict[int, int] = {}
    usernames: dict[int, str] = {}
    for kind, key, name, seq in rows:
        if kind == 0:
            slugs[key], last_seq[key] = name, seq
        else:
            usernames[key] = name

    stored = _stored_nonces(conn, batch)
    outcomes: list[Outcome | None] = [None] * len(batch)
    first_of: dict[tuple[int, str], int] = {}
    fresh: list[tuple[int, int]] = []  # (index in batch, seq)
    for index, new in enumerate(batch):
        if new.room_id not in slugs or new.author_id not in usernames:
            outcomes[index] = StorageError(f"room {new.room_id} or user {new.author_id} is gone")
            continue
        if new.nonce is not None:
            key = (new.author_id, new.nonce)
            if key in stored:
                outcomes[index] = (stored[key], False)
                continue
            if key in first_of:  # the same nonce twice in one batch: one message
                continue
            first_of[key] = index
        last_seq[new.room_id] += 1
        fresh.append((index, last_seq[new.room_id]))

    if fresh:
        values = ",".join("(?,?,?,?,?,?)" for _ in fresh)
        params: list[Any] = []
        for index, seq in fresh:
            new = batch[index]
            params += [new.room_id, seq, new.author_id, new.body, new.nonce, new.created_at]
        inserted = conn.execute(
            "INSERT INTO messages (room_id, seq, author_id, body, nonce, created_at)"
            f" VALUES {values} RETURNING id, room_id, seq",
            params,
        ).fetchall()
        ids = {(room_id, seq): message_id for message_id, room_id, seq in inserted}
        for index, seq in fresh:
            new = batch[index]
            message = Message(ids[(new.room_id, seq)], slugs[new.room_id], seq,
                              usernames[new.author_id], new.body, new.created_at, new.nonce)
            outcomes[index] = (message, True)

    for index, new in enumerate(batch):
        if outcomes[index] is None and new.nonce is not None:
            first = outcomes[first_of[(new.author_id, new.nonce)]]
            assert isinstance(first, tuple)
            outcomes[index] = (first[0], False)
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
    return {(row[8], row[6]): message_from_row(row) for row in rows}


def _marks(values: list[int]) -> str:
    return ",".join("?" for _ in values)
