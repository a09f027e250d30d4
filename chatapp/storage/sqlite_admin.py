"""SQLite: administration (SPEC §11): accounts, invites, reset links, the audit log.

A refusal that depends on other rows (the last active admin) is decided inside the
writer's transaction, so two admins demoting each other at once cannot both win.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import StorageError
from . import queries as q
from .mixins import SQLiteParts
from .models import AccountRow, AuditEntry, Invite, User, from_isoformat, isoformat, utcnow


def _moment(text: str | None) -> datetime | None:
    return None if text is None else from_isoformat(text)


def _invite(row: Any) -> Invite:
    return Invite(row[0], row[1], _moment(row[2]) or utcnow(), _moment(row[3]) or utcnow(),
                  row[4], row[5], bool(row[6]))


class SQLiteAdmin(SQLiteParts):
    async def has_users(self) -> bool:
        return bool(await self._all(q.HAS_USERS))

    async def accounts(self) -> list[AccountRow]:
        rows = await self._all(q.for_sqlite(q.ACCOUNTS))
        return [AccountRow(r[0], r[1], bool(r[2]), bool(r[3]), _moment(r[4]), r[5], r[6])
                for r in rows]

    async def set_active(self, user_id: int, active: bool) -> list[str] | None:
        now = isoformat(utcnow())

        def op(conn: sqlite3.Connection) -> list[str] | None:
            if active:
                conn.execute("UPDATE users SET deactivated_at = NULL WHERE id = ?", (user_id,))
                return []
            changed = conn.execute(q.DEACTIVATE, (now, user_id, user_id)).rowcount
            if not changed:
                return None
            conn.execute("DELETE FROM api_tokens WHERE user_id = ?", (user_id,))
            rows = conn.execute(
                "DELETE FROM sessions WHERE user_id = ? RETURNING token_hash", (user_id,)
            ).fetchall()
            return [row[0] for row in rows]

        result: list[str] | None = await self._write(op)
        return result

    async def set_admin(self, user_id: int, admin: bool) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            params: tuple[int, ...]
            if admin:
                sql, params = "UPDATE users SET is_admin = 1 WHERE id = ?", (user_id,)
            else:
                sql, params = q.DEMOTE, (user_id, user_id)
            return conn.execute(sql, params).rowcount > 0

        return bool(await self._write(op))

    async def create_invite(self, code: str, creator_id: int, uses: int,
                            expires_at: datetime) -> None:
        await self._execute(
            "INSERT INTO invites (code, created_by, created_at, expires_at, uses)"
            " VALUES (?, ?, ?, ?, ?)",
            (code, creator_id, isoformat(utcnow()), isoformat(expires_at), uses),
        )

    async def _invites(self, where: str, params: tuple[Any, ...]) -> list[Invite]:
        rows = await self._all(q.INVITES + where, params)
        return [_invite(row) for row in rows]

    async def invites(self) -> list[Invite]:
        return await self._invites("ORDER BY i.created_at DESC, i.code", ())

    async def invite(self, code: str) -> Invite | None:
        found = await self._invites("WHERE i.code = ?", (code,))
        return found[0] if found else None

    async def revoke_invite(self, code: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE invites SET revoked = 1 WHERE code = ?", (code,)).rowcount > 0

        return bool(await self._write(op))

    async def take_invite(self, code: str, now: datetime, give_back: bool = False) -> bool:
        params: tuple[str, ...]
        if give_back:
            sql, params = "UPDATE invites SET used = used - 1 WHERE code = ? AND used > 0", (code,)
        else:
            sql = ("UPDATE invites SET used = used + 1 WHERE code = ? AND NOT revoked"
                   " AND used < uses AND expires_at > ?")
            params = (code, isoformat(now))

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, params).rowcount > 0

        return bool(await self._write(op))

    async def create_reset(self, token_hash: str, user_id: int, expires_at: datetime) -> None:
        await self._execute(
            "INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (token_hash, user_id, isoformat(utcnow()), isoformat(expires_at)),
        )

    async def reset_user(self, token_hash: str, now: datetime, *, use: bool) -> User | None:
        if not use:
            rows = await self._all(q.RESET_USER, (token_hash, isoformat(now)))
        else:
            def op(conn: sqlite3.Connection) -> list[Any]:
                used = conn.execute(
                    f"UPDATE reset_tokens AS r SET used_at = ? WHERE {q.LIVE_RESET}"
                    " RETURNING user_id",
                    (isoformat(now), token_hash, isoformat(now))).fetchall()
                if not used:
                    return []
                return conn.execute(
                    f"SELECT {q.USER_COLUMNS} FROM users WHERE id = ?", (used[0][0],)
                ).fetchall()

            rows = await self._write(op)
        return q.user_from_row(rows[0]) if rows else None

    async def add_audit(self, actor: str, action: str, target: str, address: str) -> None:
        await self._execute(
            "INSERT INTO audit_log (at, actor, action, target, address) VALUES (?, ?, ?, ?, ?)",
            (isoformat(utcnow()), actor, action, target, address),
        )

    async def audit(self, limit: int) -> list[AuditEntry]:
        rows = await self._all(q.AUDIT, (limit,))
        return [AuditEntry(_moment(r[0]) or utcnow(), r[1], r[2], r[3], r[4]) for r in rows]

    async def prune_invites(self, now: datetime, limit: int) -> int:
        return await self._delete_some(q.PRUNE_INVITES, (isoformat(now), limit))

    async def prune_resets(self, now: datetime, limit: int) -> int:
        return await self._delete_some(q.PRUNE_RESETS, (isoformat(now), limit))

    async def import_messages(
        self, room_id: int, messages: Sequence[tuple[int, str, datetime]]
    ) -> tuple[int, int]:
        if not messages:
            raise ValueError("no messages to import")
        rows = [(author_id, body, isoformat(at)) for author_id, body, at in messages]

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            # A savepoint: the writer's batch commits other ops beside this one, and a
            # failure half-way must leave none of the import behind.
            conn.execute("SAVEPOINT import_messages")
            try:
                found = conn.execute(
                    "SELECT last_seq FROM rooms WHERE id = ?", (room_id,)).fetchone()
                if found is None:
                    raise StorageError(f"room {room_id} does not exist")
                last = found[0]
                # The search index is filled in one statement, not by its per-row
                # trigger: FTS5 writes its pending terms out at every statement inside
                # a transaction, so row by row a million messages took ~15x as long.
                # The trigger goes back from its own SQL before anything commits.
                fts = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger'"
                    " AND name = 'messages_fts_insert'").fetchone()
                if fts is not None:
                    conn.execute("DROP TRIGGER messages_fts_insert")
                conn.executemany(
                    "INSERT INTO messages (room_id, seq, author_id, body, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    ((room_id, last + i, *row) for i, row in enumerate(rows, start=1)))
                if fts is not None:
                    conn.execute(
                        "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages"
                        " WHERE room_id = ? AND seq > ? ORDER BY seq", (room_id, last))
                    conn.execute(fts[0])
                # The events in one statement; their trigger moves rooms.last_seq.
                conn.execute(
                    "INSERT INTO room_events (room_id, seq, kind, message_id)"
                    " SELECT room_id, seq, 'message', id FROM messages"
                    " WHERE room_id = ? AND seq > ? ORDER BY seq", (room_id, last))
                first_id, last_id = conn.execute(
                    "SELECT min(id), max(id) FROM messages WHERE room_id = ? AND seq > ?",
                    (room_id, last)).fetchone()
            except BaseException:
                conn.execute("ROLLBACK TO import_messages")
                conn.execute("RELEASE import_messages")
                raise
            conn.execute("RELEASE import_messages")
            return first_id, last_id

        result: tuple[int, int] = await self._write(op)
        return result
