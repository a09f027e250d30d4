"""PostgreSQL: accounts (SPEC §3): users, sessions, API tokens and failed logins, with
their housekeeping. ``PostgresStorage`` takes these methods as a mixin, as it does the
admin's (``postgres_admin.py``); its pool and connections stay there."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from . import GENERAL_ROOM, SessionInfo, SessionRecord, TokenInfo, UserListing, UsernameTaken
from . import queries as q
from .mixins import PostgresParts
from .models import User, utcnow
from .postgres_admin import _count
from .queries import USER_COLUMNS, numbered, user_from_row


def has_nul(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, so no stored name contains one: a lookup by such
    a name (a crafted login or frame) finds nothing rather than failing."""
    return "\x00" in text


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def _failure_key(key: str) -> str:
    """Keys embed what a stranger typed as a username; keep them storable."""
    return key.replace("\x00", "\\x00")


class PostgresAccounts(PostgresParts):
    # users
    async def create_user(self, username: str, password_hash: str, *, admin: bool = False) -> User:
        now = utcnow()
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    # Serialize registrations so exactly one first user becomes admin.
                    await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                    row = await conn.fetchrow(
                        numbered(q.CREATE_USER),
                        username, username.casefold(), password_hash, admin, now,
                    )
                    user = user_from_row(row)
                    await conn.execute(numbered(q.JOIN_GENERAL), user.id, now, GENERAL_ROOM)
            except asyncpg.UniqueViolationError:
                raise UsernameTaken(username) from None
        return user

    async def user_by_name(self, username: str) -> User | None:
        if has_nul(username):
            return None
        row = await self._one(numbered(q.USER_BY_NAME), username.casefold())
        return user_from_row(row) if row else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._run("UPDATE users SET password_hash = $1 WHERE id = $2", password_hash, user_id)

    async def set_display_name(self, user_id: int, display_name: str | None) -> User | None:
        row = await self._one(
            f"UPDATE users SET display_name = $1 WHERE id = $2 RETURNING {USER_COLUMNS}",
            display_name, user_id,
        )
        return user_from_row(row) if row else None

    async def users(self) -> list[UserListing]:
        rows = await self._all(q.USERS)
        return [UserListing(row[0], row[2], bool(row[1]), bool(row[4]), bool(row[3]))
                for row in rows]

    # sessions
    async def create_session(
        self, token_hash: str, user_id: int, user_agent: str = "", address: str = ""
    ) -> None:
        now = utcnow()
        await self._run(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen, user_agent,"
            " address) VALUES ($1, $2, $3, $3, $4, $5)",
            token_hash, user_id, now, _no_nul(user_agent), _no_nul(address),
        )

    async def sessions_of(self, user_id: int) -> list[SessionInfo]:
        rows = await self._all(numbered(q.SESSIONS_OF), user_id)
        return [SessionInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def delete_sessions_of(self, user_id: int, keep: str | None) -> list[str]:
        rows = await self._all(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash IS DISTINCT FROM $2"
            " RETURNING token_hash",
            user_id, keep,
        )
        return [row[0] for row in rows]

    async def session(self, token_hash: str, idle_after: datetime) -> SessionRecord | None:
        row = await self._one(numbered(q.SESSION), token_hash)
        if row is None:
            return None
        last_seen: datetime = row[0]
        if last_seen < idle_after:
            # Only if still idle: another host may have just touched it.
            await self._run(
                "DELETE FROM sessions WHERE token_hash = $1 AND last_seen < $2",
                token_hash, idle_after,
            )
            return None
        return SessionRecord(token_hash, user_from_row(list(row)[1:]), last_seen)

    async def touch_session(self, token_hash: str, address: str | None = None) -> None:
        await self._run(
            "UPDATE sessions SET last_seen = $1, address = coalesce($3, address)"
            " WHERE token_hash = $2",
            utcnow(), token_hash, None if address is None else _no_nul(address),
        )

    async def delete_session(self, token_hash: str) -> None:
        await self._run("DELETE FROM sessions WHERE token_hash = $1", token_hash)

    # API tokens (bots)
    async def create_api_token(self, token_hash: str, user_id: int, name: str) -> None:
        await self._run(
            "INSERT INTO api_tokens (token_hash, user_id, name, created_at)"
            " VALUES ($1, $2, $3, $4)",
            token_hash, user_id, name, utcnow(),
        )

    async def user_for_api_token(self, token_hash: str) -> User | None:
        row = await self._one(numbered(q.USER_FOR_API_TOKEN), token_hash)
        return user_from_row(row) if row else None

    async def api_tokens(
        self, *, user_id: int | None = None, token_id: str | None = None
    ) -> list[TokenInfo]:
        if token_id is not None and not token_id.isalnum():
            return []  # a token id is a hash prefix: hex only, never a LIKE pattern
        rows = await self._all(
            "SELECT t.token_hash, t.user_id, u.username, t.name, t.created_at"
            " FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE ($1::bigint IS NULL OR t.user_id = $1)"
            " AND ($2::text IS NULL OR starts_with(t.token_hash, $2))"
            " ORDER BY t.created_at DESC",
            user_id, token_id,
        )
        return [TokenInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def delete_api_token(self, token_hash: str) -> None:
        await self._run("DELETE FROM api_tokens WHERE token_hash = $1", token_hash)

    # failed logins
    async def record_login_failure(self, keys: list[str]) -> None:
        if not keys:
            return
        await self._run(
            "INSERT INTO login_failures (key, at) SELECT unnest($1::text[]), $2",
            [_failure_key(key) for key in keys], utcnow(),
        )

    async def login_failures(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        row = await self._one(numbered(q.LOGIN_FAILURES), _failure_key(key), since)
        return int(row[0]), row[1]

    # housekeeping: bounded deletes, each its own short transaction
    async def prune_sessions(self, idle_before: datetime, limit: int) -> int:
        return _count(await self._run(numbered(q.PRUNE_SESSIONS), idle_before, limit))

    async def prune_login_failures(self, before: datetime, limit: int) -> int:
        return _count(await self._run(numbered(q.PRUNE_LOGIN_FAILURES), before, limit))
