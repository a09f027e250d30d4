"""PostgreSQL: incoming webhooks (SPEC §12) and the bot users they post as."""

from __future__ import annotations

from typing import Any

from . import queries as q
from .mixins import PostgresParts
from .models import NO_LOGIN, Webhook, isoformat
from .queries import numbered


def _webhook(row: Any) -> Webhook:
    return Webhook(row[0], row[1], row[2], row[3], row[4], isoformat(row[5]))


class PostgresWebhooks(PostgresParts):
    async def create_webhook(
        self, token_hash: str, room_id: int, name: str, creator_id: int | None
    ) -> Webhook:
        from . import UsernameTaken

        async with self._conn() as conn, conn.transaction():
            # The bot's name is taken by the first to insert it; a hook shares an existing bot.
            row = await conn.fetchrow(
                "INSERT INTO users (username, username_key, password_hash, is_admin,"
                " created_at, bot) VALUES ($1, $2, $3, false, clock_timestamp(), true)"
                " ON CONFLICT (username_key) DO UPDATE SET bot = users.bot"
                " RETURNING id, bot",
                name, name.casefold(), NO_LOGIN,
            )
            if not row["bot"]:
                raise UsernameTaken(name)
            hook_id = await conn.fetchval(
                "INSERT INTO webhooks (token_hash, room_id, bot_id, name, created_by,"
                " created_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp()) RETURNING id",
                token_hash, room_id, row["id"], name, creator_id,
            )
            found = await conn.fetchrow(numbered(q.WEBHOOK), hook_id)
        return _webhook(found)

    async def webhooks(self, room_id: int) -> list[Webhook]:
        async with self._conn() as conn:
            rows = await conn.fetch(numbered(q.WEBHOOKS_OF_ROOM), room_id)
        return [_webhook(row) for row in rows]

    async def webhook_for_token(self, token_hash: str) -> Webhook | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(numbered(q.WEBHOOK_FOR_TOKEN), token_hash)
        return None if row is None else _webhook(row)

    async def delete_webhook(self, webhook_id: int) -> bool:
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)
        return bool(status != "DELETE 0")
