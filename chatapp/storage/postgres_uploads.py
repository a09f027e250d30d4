"""PostgreSQL: uploads (SPEC §10) and their attachment to messages.

The uploads of a message are attached inside the transaction that inserts it
(``attach``, called by ``postgres.py``); a refused one rolls the message back too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from . import AttachmentRefused, Message, Upload
from .models import isoformat
from .queries import UPLOAD_COLUMNS

ATTACHMENTS_OF = (
    f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE message_id = ANY($1::bigint[])"
    " ORDER BY message_id, id"
)
INSERT = (
    "INSERT INTO uploads (owner_id, name, size, content_type, width, height, disk_key,"
    f" created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())"
    f" RETURNING {UPLOAD_COLUMNS}"
)
PRUNE = (
    "DELETE FROM uploads WHERE id IN (SELECT id FROM uploads WHERE message_id IS NULL"
    " AND created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " RETURNING disk_key"
)


def upload_from_row(row: Any) -> Upload:
    return Upload(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                  isoformat(row[8]), row[9])


async def with_attachments(conn: asyncpg.Connection, messages: list[Message]) -> list[Message]:
    """The messages with their attachments (one query for all of them)."""
    if not messages:
        return messages
    rows = await conn.fetch(ATTACHMENTS_OF, sorted({m.id for m in messages}))
    if not rows:
        return messages
    grouped: dict[int, list[Upload]] = {}
    for row in rows:
        grouped.setdefault(row["message_id"], []).append(upload_from_row(row))
    return [replace(m, attachments=tuple(grouped.get(m.id, ()))) for m in messages]


async def attach(
    conn: asyncpg.Connection, message_id: int, author_id: int, upload_ids: tuple[int, ...]
) -> tuple[Upload, ...]:
    """Inside the message's transaction: mark the uploads as its attachments."""
    ids = sorted(set(upload_ids))
    rows = await conn.fetch(
        "UPDATE uploads SET message_id = $1 WHERE id = ANY($2::bigint[]) AND owner_id = $3"
        f" AND message_id IS NULL RETURNING {UPLOAD_COLUMNS}",
        message_id, ids, author_id,
    )
    if len(rows) != len(ids):
        raise AttachmentRefused("an upload is unknown, someone else's, or attached already")
    return tuple(sorted((upload_from_row(row) for row in rows), key=lambda u: u.id))
