"""SQLite: accounts (SPEC §3): users, sessions, API tokens and failed logins, with their
housekeeping. Reads on the engine's reader, writes through its writer; ``SQLiteStorage``
takes these methods as a mixin, as it does the admin's (``sqlite_admin.py``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from . import GENERAL_ROOM, SessionInfo, SessionRecord, TokenInfo, UserListing, UsernameTaken
from . import queries as q
from . import sqlite_messages as one
from .mixins import SQLiteParts
from .models import User, from_isoformat, isoformat, utcnow
from .queries import USER_COLUMNS, for_sqlite, user_from_row


class SQLiteAccounts(SQLiteParts):
    # users
    async def create_user(self, username: str, password_hash: str, *, admin: bool = False) -> User:
        now = isoformat(utcnow())

        def op(conn: sqlite3.Connection) -> User:
            try:
                with one.savepoint(conn, "create_user"):
                    cursor = conn.execute(
                        q.CREATE_USER, (username, username.casefold(), password_hash, admin, now)
                    )
                    user = user_from_row(cursor.fetchone())
                    cursor.close()
                    conn.execute(q.JOIN_GENERAL, (user.id, now, GENERAL_ROOM))
            except sqlite3.IntegrityError:
                raise UsernameTaken(username) from None
            return user

        return await self._write(op)

    async def user_by_name(self, username: str) -> User | None:
        row = await self._one(q.USER_BY_NAME, (username.casefold(),))
        return user_from_row(row) if row else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )

    async def set_display_name(self, user_id: int, display_name: str | None) -> User | None:
        def op(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                f"UPDATE users SET display_name = ? WHERE id = ? RETURNING {USER_COLUMNS}",
                (display_name, user_id),
            ).fetchone()
            return user_from_row(row) if row else None

        return await self._write(op)

    async def users(self) -> list[UserListing]:
        rows = await self._all(for_sqlite(q.USERS))
        return [UserListing(row[0], row[2], bool(row[1]), bool(row[4]), bool(row[3]))
                for row in rows]

    # sessions
    async def create_session(
        self, token_hash: str, user_id: int, user_agent: str = "", address: str = ""
    ) -> None:
        now = isoformat(utcnow())
        await self._execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen, user_agent,"
            " address) VALUES (?, ?, ?, ?, ?, ?)",
            (token_hash, user_id, now, now, user_agent, address),
        )

    async def sessions_of(self, user_id: int) -> list[SessionInfo]:
        rows = await self._all(q.SESSIONS_OF, (user_id,))
        return [SessionInfo(r[0], from_isoformat(r[1]), from_isoformat(r[2]), r[3], r[4])
                for r in rows]

    async def delete_sessions_of(self, user_id: int, keep: str | None) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "DELETE FROM sessions WHERE user_id = ? AND token_hash IS NOT ?"
                " RETURNING token_hash",
                (user_id, keep),
            ).fetchall()
            return [row[0] for row in rows]

        return await self._write(op)

    async def session(self, token_hash: str, idle_after: datetime) -> SessionRecord | None:
        row = await self._one(q.SESSION, (token_hash,))
        if row is None:
            return None
        last_seen = from_isoformat(row[0])
        if last_seen < idle_after:
            await self.delete_session(token_hash)
            return None
        return SessionRecord(token_hash, user_from_row(row[1:]), last_seen)

    async def touch_session(self, token_hash: str, address: str | None = None) -> None:
        now = isoformat(utcnow())
        await self._execute(
            "UPDATE sessions SET last_seen = ?, address = coalesce(?, address)"
            " WHERE token_hash = ?",
            (now, address, token_hash),
        )

    async def delete_session(self, token_hash: str) -> None:
        await self._execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # API tokens (bots)
    async def create_api_token(self, token_hash: str, user_id: int, name: str) -> None:
        now = isoformat(utcnow())
        await self._execute(
            "INSERT INTO api_tokens (token_hash, user_id, name, created_at)"
            " VALUES (?, ?, ?, ?)",
            (token_hash, user_id, name, now),
        )

    async def user_for_api_token(self, token_hash: str) -> User | None:
        row = await self._one(q.USER_FOR_API_TOKEN, (token_hash,))
        return user_from_row(row) if row else None

    async def api_tokens(
        self, *, user_id: int | None = None, token_id: str | None = None
    ) -> list[TokenInfo]:
        # A token id is a hash prefix: hex only, so it can be no LIKE pattern.
        if token_id is not None and not token_id.isalnum():
            return []
        rows = await self._all(
            "SELECT t.token_hash, t.user_id, u.username, t.name, t.created_at"
            " FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE (? IS NULL OR t.user_id = ?) AND (? IS NULL OR t.token_hash LIKE ? || '%')"
            " ORDER BY t.created_at DESC",
            (user_id, user_id, token_id, token_id),
        )
        return [TokenInfo(r[0], r[1], r[2], r[3], from_isoformat(r[4])) for r in rows]

    async def delete_api_token(self, token_hash: str) -> None:
        await self._execute("DELETE FROM api_tokens WHERE token_hash = ?", (token_hash,))

    # failed logins
    async def record_login_failure(self, keys: list[str]) -> None:
        now = isoformat(utcnow())
        await self._write(
            lambda conn: conn.executemany(
                "INSERT INTO login_failures (key, at) VALUES (?, ?)", [(k, now) for k in keys]
            )
        )

    async def login_failures(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        row = await self._one(q.LOGIN_FAILURES, (key, isoformat(since)))
        oldest = from_isoformat(row[1]) if row[1] else None
        return int(row[0]), oldest

    # housekeeping: bounded deletes on the writer, each its own short transaction
    async def prune_sessions(self, idle_before: datetime, limit: int) -> int:
        return await self._delete_some(q.PRUNE_SESSIONS, (isoformat(idle_before), limit))

    async def prune_login_failures(self, before: datetime, limit: int) -> int:
        return await self._delete_some(q.PRUNE_LOGIN_FAILURES, (isoformat(before), limit))
