"""PostgreSQL: administration (SPEC §11): accounts, invites, reset links, the audit log.

A refusal that depends on other rows (the last active admin) is decided with the users
table locked against other writers, so two admins demoting each other at once cannot
both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import StorageError
from . import queries as q
from .mixins import PostgresParts
from .models import AccountRow, AuditEntry, Invite, User, utcnow
from .queries import numbered

LOCK_USERS = "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class PostgresAdmin(PostgresParts):
    async def has_users(self) -> bool:
        return bool(await self._all(q.HAS_USERS))

    async def accounts(self) -> list[AccountRow]:
        rows = await self._all(q.ACCOUNTS)
        return [AccountRow(r[0], r[1], bool(r[2]), bool(r[3]), r[4], r[5], r[6]) for r in rows]

    async def set_active(self, user_id: int, active: bool) -> list[str] | None:
        async with self._conn() as conn, conn.transaction():
            if active:
                await conn.execute(
                    "UPDATE users SET deactivated_at = NULL WHERE id = $1", user_id)
                return []
            await conn.execute(LOCK_USERS)
            changed = _count(await conn.execute(
                numbered(q.DEACTIVATE), utcnow(), user_id, user_id))
            if not changed:
                return None
            await conn.execute("DELETE FROM api_tokens WHERE user_id = $1", user_id)
            rows = await conn.fetch(
                "DELETE FROM sessions WHERE user_id = $1 RETURNING token_hash", user_id)
            return [row[0] for row in rows]

    async def set_admin(self, user_id: int, admin: bool) -> bool:
        async with self._conn() as conn, conn.transaction():
            if admin:
                status = await conn.execute(
                    "UPDATE users SET is_admin = true WHERE id = $1", user_id)
            else:
                await conn.execute(LOCK_USERS)
                status = await conn.execute(numbered(q.DEMOTE), user_id, user_id)
            return _count(status) > 0

    async def create_invite(self, code: str, creator_id: int, uses: int,
                            expires_at: datetime) -> None:
        await self._run(
            "INSERT INTO invites (code, created_by, created_at, expires_at, uses)"
            " VALUES ($1, $2, $3, $4, $5)", code, creator_id, utcnow(), expires_at, uses)

    async def _invites(self, where: str, *args: Any) -> list[Invite]:
        rows = await self._all(numbered(q.INVITES + where), *args)
        return [Invite(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def invites(self) -> list[Invite]:
        return await self._invites("ORDER BY i.created_at DESC, i.code")

    async def invite(self, code: str) -> Invite | None:
        if "\x00" in code:
            return None
        found = await self._invites("WHERE i.code = ?", code)
        return found[0] if found else None

    async def revoke_invite(self, code: str) -> bool:
        if "\x00" in code:
            return False
        return _count(await self._run(
            "UPDATE invites SET revoked = true WHERE code = $1", code)) > 0

    async def take_invite(self, code: str, now: datetime, give_back: bool = False) -> bool:
        if "\x00" in code:
            return False
        if give_back:
            status = await self._run(
                "UPDATE invites SET used = used - 1 WHERE code = $1 AND used > 0", code)
        else:
            status = await self._run(
                "UPDATE invites SET used = used + 1 WHERE code = $1 AND NOT revoked"
                " AND used < uses AND expires_at > $2", code, now)
        return _count(status) > 0

    async def create_reset(self, token_hash: str, user_id: int, expires_at: datetime) -> None:
        await self._run(
            "INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4)", token_hash, user_id, utcnow(), expires_at)

    async def reset_user(self, token_hash: str, now: datetime, *, use: bool) -> User | None:
        if use:
            rows = await self._all(numbered(
                f"WITH used AS (UPDATE reset_tokens r SET used_at = ? WHERE {q.LIVE_RESET}"
                f" RETURNING r.user_id) SELECT {q.U_USER_COLUMNS} FROM users u"
                " JOIN used ON used.user_id = u.id"), now, token_hash, now)
        else:
            rows = await self._all(numbered(q.RESET_USER), token_hash, now)
        return q.user_from_row(rows[0]) if rows else None

    async def add_audit(self, actor: str, action: str, target: str, address: str) -> None:
        clean = [text.replace("\x00", "") for text in (actor, action, target, address)]
        await self._run(
            "INSERT INTO audit_log (at, actor, action, target, address)"
            " VALUES ($1, $2, $3, $4, $5)", utcnow(), *clean)

    async def audit(self, limit: int) -> list[AuditEntry]:
        rows = await self._all(numbered(q.AUDIT), limit)
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def prune_invites(self, now: datetime, limit: int) -> int:
        return _count(await self._run(numbered(q.PRUNE_INVITES), now, limit))

    async def prune_resets(self, now: datetime, limit: int) -> int:
        return _count(await self._run(numbered(q.PRUNE_RESETS), now, limit))

    async def import_messages(
        self, room_id: int, messages: Sequence[tuple[int, str, datetime]]
    ) -> tuple[int, int]:
        if not messages:
            raise ValueError("no messages to import")
        # Its own connection without the command timeout: a large import takes longer.
        async with self._unbounded() as conn, conn.transaction():
            # The room's row lock, as a send takes it: seqs stay gapless beside sends.
            last = await conn.fetchval(
                "SELECT last_seq FROM rooms WHERE id = $1 FOR UPDATE", room_id)
            if last is None:
                raise StorageError(f"room {room_id} does not exist")
            await conn.copy_records_to_table(
                "messages",
                records=[(room_id, last + i, author_id, body, at)
                         for i, (author_id, body, at) in enumerate(messages, start=1)],
                columns=["room_id", "seq", "author_id", "body", "created_at"])
            ids = await conn.fetchrow(
                "WITH e AS (INSERT INTO room_events (room_id, seq, kind, message_id)"
                " SELECT room_id, seq, 'message', id FROM messages"
                " WHERE room_id = $1 AND seq > $2 RETURNING message_id)"
                " SELECT min(message_id), max(message_id) FROM e", room_id, last)
            await conn.execute("UPDATE rooms SET last_seq = $2 WHERE id = $1",
                               room_id, last + len(messages))
        return ids[0], ids[1]
