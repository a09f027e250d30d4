"""SQLite: incoming webhooks (SPEC §12) and the bot users they post as."""

from __future__ import annotations

import sqlite3
from typing import Any

from . import queries as q
from .mixins import SQLiteParts
from .models import NO_LOGIN, Webhook, isoformat, utcnow


def _webhook(row: Any) -> Webhook:
    return Webhook(row[0], row[1], row[2], row[3], row[4], row[5])


class SQLiteWebhooks(SQLiteParts):
    async def create_webhook(
        self, token_hash: str, room_id: int, name: str, creator_id: int | None
    ) -> Webhook:
        from . import UsernameTaken

        now = isoformat(utcnow())

        def op(conn: sqlite3.Connection) -> Webhook:
            row = conn.execute("SELECT id, bot FROM users WHERE username_key = ?",
                               (name.casefold(),)).fetchone()
            if row is not None and not row[1]:
                raise UsernameTaken(name)
            if row is None:
                row = conn.execute(
                    "INSERT INTO users (username, username_key, password_hash, is_admin,"
                    " created_at, bot) VALUES (?, ?, ?, 0, ?, 1) RETURNING id, bot",
                    (name, name.casefold(), NO_LOGIN, now),
                ).fetchone()
            cursor = conn.execute(
                "INSERT INTO webhooks (token_hash, room_id, bot_id, name, created_by,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (token_hash, room_id, row[0], name, creator_id, now),
            )
            hook_id = cursor.fetchone()[0]
            cursor.close()
            found = conn.execute(q.WEBHOOK, (hook_id,)).fetchone()
            return _webhook(found)

        result: Webhook = await self._write(op)
        return result

    async def webhooks(self, room_id: int) -> list[Webhook]:
        rows = await self._all(q.WEBHOOKS_OF_ROOM, (room_id,))
        return [_webhook(row) for row in rows]

    async def webhook_for_token(self, token_hash: str) -> Webhook | None:
        row = await self._one(q.WEBHOOK_FOR_TOKEN, (token_hash,))
        return None if row is None else _webhook(row)

    async def delete_webhook(self, webhook_id: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0

        deleted: bool = await self._write(op)
        return deleted
