"""SQLite: uploads (SPEC §10) and their attachment to messages.

A message with attachments is one writer op: the message, its room event and the
uploads' ``message_id`` in one savepoint, so either all of them land or none.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from . import AttachmentRefused, Message, Upload
from .queries import UPLOAD_COLUMNS
from .sqlite_messages import NewMessage, insert_messages, marks, savepoint

# The uploads attached to some messages (``{ids}``: placeholders), in upload order.
ATTACHMENTS_OF = (
    f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE message_id IN ({{ids}})"
    " ORDER BY message_id, id"
)


def upload_from_row(row: Any) -> Upload:
    return Upload(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                  row[9])


def group_attachments(rows: list[Any]) -> dict[int, tuple[Upload, ...]]:
    grouped: dict[int, list[Upload]] = {}
    for row in rows:
        upload = upload_from_row(row)
        assert upload.message_id is not None
        grouped.setdefault(upload.message_id, []).append(upload)
    return {message_id: tuple(uploads) for message_id, uploads in grouped.items()}


def attachments_now(conn: sqlite3.Connection, message_id: int) -> tuple[Upload, ...]:
    rows = conn.execute(ATTACHMENTS_OF.format(ids="?"), (message_id,)).fetchall()
    return tuple(upload_from_row(row) for row in rows)


def insert_with_attachments(
    conn: sqlite3.Connection, new: NewMessage, upload_ids: tuple[int, ...]
) -> tuple[Message, bool]:
    """On the writer thread: the message and its attachments, all or nothing."""
    with savepoint(conn, "attach"):
        [outcome] = insert_messages(conn, [new])
        if isinstance(outcome, BaseException):
            raise outcome
        message, created = outcome
        if not created:  # a repeated nonce: the stored message, as it was attached
            return replace(message, attachments=attachments_now(conn, message.id)), False
        ids = sorted(set(upload_ids))
        rows = conn.execute(
            f"UPDATE uploads SET message_id = ? WHERE id IN ({marks(ids)})"
            f" AND owner_id = ? AND message_id IS NULL RETURNING {UPLOAD_COLUMNS}",
            (message.id, *ids, new.author_id),
        ).fetchall()
        if len(rows) != len(ids):
            raise AttachmentRefused("an upload is unknown, someone else's, or attached already")
        uploads = sorted((upload_from_row(row) for row in rows), key=lambda u: u.id)
    return replace(message, attachments=tuple(uploads)), True
