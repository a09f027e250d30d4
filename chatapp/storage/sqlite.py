"""The SQLite engine: WAL, reads on one aiosqlite connection, writes through the
group-commit writer (``sqlite_writer.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from . import (
    MAX_REACTIONS,
    UNREAD_LIMIT,
    Message,
    MessagePage,
    Room,
    RoomEvent,
    RoomExists,
    RoomSummary,
    Storage,
    StorageError,
    StorageUnavailable,
    Upload,
)
from . import queries as q
from . import sqlite_messages as one
from . import sqlite_uploads as uploads
from .migrations import migrate_sqlite
from .models import isoformat, summary_from_row, utcnow
from .queries import MESSAGE_COLUMNS, for_sqlite
from .search import SearchQuery, sqlite_search
from .sqlite_accounts import SQLiteAccounts
from .sqlite_admin import SQLiteAdmin
from .sqlite_messages import REACTIONS_OF, NewMessage, group_reactions, marks
from .sqlite_messages import message_from_row as _message
from .sqlite_webhooks import SQLiteWebhooks
from .sqlite_writer import PRAGMAS, GroupCommitWriter, storage_error

log = logging.getLogger(__name__)
T = TypeVar("T")

# Does ``m.mentions`` (space-separated names) name ``me`` or the room?
MENTIONS_ME = (
    "instr(' ' || m.mentions || ' ', ' ' || me.username || ' ') + "
    "instr(' ' || m.mentions || ' ', ' room ') > 0"
)
UNREAD_COUNTS = q.unread_counts(MENTIONS_ME)


async def _configure(conn: aiosqlite.Connection) -> None:
    await conn.execute(PRAGMAS[0])
    await _switch_to_wal(conn)
    for pragma in PRAGMAS[1:]:
        await conn.execute(pragma)


async def _switch_to_wal(conn: aiosqlite.Connection, attempts: int = 100) -> None:
    """Enable WAL, retrying: SQLite answers "locked" at once, without waiting for
    ``busy_timeout``, when several processes open a new database together (Hypercorn
    workers starting side by side)."""
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except aiosqlite.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 + random.random() * 0.05)


class SQLiteStorage(SQLiteAccounts, SQLiteAdmin, SQLiteWebhooks, Storage):
    def __init__(self, path: str) -> None:
        self._path = path
        self._reader: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None

    async def connect(self) -> None:
        reader = None
        try:
            if self._path != ":memory:":
                await asyncio.to_thread(create_private, Path(self._path))
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE).
            reader = await aiosqlite.connect(self._path, isolation_level=None)
            await _configure(reader)
            await migrate_sqlite(reader)
            self._writer = GroupCommitWriter(self._path)
            await self._writer.start()
        except BaseException as exc:
            await self.close()
            if reader is not None:
                await reader.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StorageUnavailable(f"cannot open {self._path}: {exc}") from exc
            raise
        # Reads start once the schema is migrated (a reconnect happens while serving).
        self._reader = reader

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
        if self._reader is not None:
            await self._reader.close()
        self._reader = self._writer = None

    @property
    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageUnavailable("storage is not connected")
        return self._reader

    async def _write(self, op: Callable[[sqlite3.Connection], T] | NewMessage) -> T:
        if self._writer is None:
            raise StorageUnavailable("storage is not connected")
        return await self._writer.write(op)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        """One write statement, committed with the writer's next batch."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._write(op)

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # One trip to the database thread (execute + fetch + close would be three).
        try:
            return list(await self._read.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise storage_error(exc, "database read failed") from exc

    async def ping(self) -> None:
        await self._one("SELECT 1")

    async def epoch(self) -> str:
        row = await self._one(q.EPOCH)
        return str(row[0])

    async def backup(self, target: str, *, force: bool = False) -> None:
        from . import sqlite_backup

        await asyncio.to_thread(sqlite_backup.backup, self._path, target, force=force)

    async def check_backup(self, source: str) -> None:
        from . import sqlite_backup

        await asyncio.to_thread(sqlite_backup.check_database, source)

    async def restore(self, source: str) -> str:
        from . import sqlite_backup

        return await asyncio.to_thread(sqlite_backup.restore, source, self._path)

    # housekeeping (accounts', admin's): a bounded delete on the writer, its own short
    # transaction
    async def _delete_some(self, sql: str, params: tuple[Any, ...]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, params)
            count = cursor.rowcount
            cursor.close()
            return count

        return await self._write(op)

    # rooms
    async def create_room(self, slug: str, name: str, kind: str, creator_id: int) -> Room:
        now = isoformat(utcnow())

        def op(conn: sqlite3.Connection) -> Room:
            try:
                with one.savepoint(conn, "create_room"):
                    cursor = conn.execute(
                        "INSERT INTO rooms (slug, name, kind, created_by, created_at)"
                        " VALUES (?, ?, ?, ?, ?) RETURNING id",
                        (slug, name, kind, creator_id, now),
                    )
                    row = cursor.fetchone()
                    cursor.close()
                    assert row is not None
                    conn.execute(
                        "INSERT INTO memberships (user_id, room_id, joined_at) VALUES (?, ?, ?)",
                        (creator_id, row[0], now),
                    )
            except sqlite3.IntegrityError:
                raise RoomExists(slug) from None
            return Room(row[0], slug, name, kind, 0)

        return await self._write(op)

    async def room(self, slug: str) -> Room | None:
        row = await self._one(q.ROOM, (slug,))
        return Room(*row) if row else None

    async def rooms_of(self, user_id: int) -> list[RoomSummary]:
        rows = await self._all(
            f"SELECT r.id, r.slug, r.name, {q.ROOM_KIND}, {UNREAD_COUNTS}, r.last_seq,"
            " ms.notify, me.username FROM memberships ms JOIN rooms r ON r.id = ms.room_id"
            " JOIN users me ON me.id = ms.user_id"
            " WHERE ms.user_id = ? ORDER BY r.name, r.id",
            (UNREAD_LIMIT, UNREAD_LIMIT, user_id),
        )
        dms = [row[0] for row in rows if row[3] == "dm"]
        members: dict[int, list[str]] = {}
        if dms:
            for room_id, username in await self._all(
                "SELECT ms.room_id, u.username FROM memberships ms"
                f" JOIN users u ON u.id = ms.user_id WHERE ms.room_id IN ({marks(dms)})"
                " ORDER BY ms.room_id, u.username_key",
                tuple(dms),
            ):
                members.setdefault(room_id, []).append(username)
        return [summary_from_row(row, members.get(row[0], ())) for row in rows]

    async def unread(self, user_id: int, room_id: int) -> tuple[int, int]:
        row = await self._one(
            f"SELECT {UNREAD_COUNTS} FROM memberships ms JOIN rooms r ON r.id = ms.room_id"
            " JOIN users me ON me.id = ms.user_id WHERE ms.user_id = ? AND ms.room_id = ?",
            (UNREAD_LIMIT, UNREAD_LIMIT, user_id, room_id),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def room_members(self, room_id: int) -> list[str]:
        rows = await self._all(for_sqlite(q.ROOM_MEMBERS), (room_id,))
        return [row[0] for row in rows]

    async def create_dm(
        self, slug: str, key: str, name: str, member_ids: list[int]
    ) -> tuple[Room, bool]:
        now = isoformat(utcnow())

        def op(conn: sqlite3.Connection) -> tuple[Room, bool]:
            found = conn.execute(
                "SELECT id, slug, name, 'dm', last_seq FROM rooms WHERE dm_key = ?", (key,)
            ).fetchone()
            if found is not None:
                return Room(*found), False
            with one.savepoint(conn, "create_dm"):
                row = conn.execute(
                    "INSERT INTO rooms (slug, name, kind, dm_key, created_by, created_at)"
                    " VALUES (?, ?, 'private', ?, ?, ?) RETURNING id",
                    (slug, name, key, member_ids[0], now),
                ).fetchone()
                conn.executemany(
                    "INSERT INTO memberships (user_id, room_id, joined_at) VALUES (?, ?, ?)",
                    [(member, row[0], now) for member in member_ids],
                )
            return Room(row[0], slug, name, "dm", 0), True

        try:
            return await self._write(op)
        except StorageError as error:
            if "UNIQUE" in str(error):
                raise RoomExists(slug) from None
            raise

    async def set_notify(self, user_id: int, room_id: int, notify: str) -> None:
        await self._execute(
            "UPDATE memberships SET notify = ? WHERE user_id = ? AND room_id = ?",
            (notify, user_id, room_id),
        )

    async def public_rooms(self) -> list[Room]:
        rows = await self._all(for_sqlite(q.PUBLIC_ROOMS))
        return [Room(*row) for row in rows]

    async def is_member(self, user_id: int, room_id: int) -> bool:
        row = await self._one(q.IS_MEMBER, (user_id, room_id))
        return row is not None

    async def join(self, user_id: int, room_id: int) -> None:
        await self._execute(q.JOIN_ROOM, (user_id, isoformat(utcnow()), room_id))

    async def leave(self, user_id: int, room_id: int) -> None:
        await self._execute(
            "DELETE FROM memberships WHERE user_id = ? AND room_id = ?", (user_id, room_id)
        )

    async def mark_read(self, user_id: int, room_id: int, seq: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE memberships SET last_read_seq ="
                " MIN(?, (SELECT last_seq FROM rooms WHERE id = ?))"
                " WHERE user_id = ? AND room_id = ? RETURNING last_read_seq",
                (seq, room_id, user_id, room_id),
            )
            row = cursor.fetchone()
            cursor.close()
            return int(row[0]) if row else 0

        return await self._write(op)

    # messages and their room events
    async def add_message(
        self, room_id: int, author_id: int, body: str, nonce: str | None,
        reply_to: int | None = None, mentions: tuple[str, ...] = (),
        attachments: tuple[int, ...] = (),
    ) -> tuple[Message, bool]:
        new = NewMessage(room_id, author_id, body, nonce, isoformat(utcnow()), reply_to,
                         mentions)
        if attachments:  # its own op: a refused upload must not fail a batch of sends
            return await self._write(
                lambda conn: uploads.insert_with_attachments(conn, new, attachments))
        return await self._write(new)  # type: ignore[no-any-return]

    async def message(self, message_id: int) -> Message | None:
        rows = await self._all(q.MESSAGE, (message_id,))
        found = await self._with_reactions([_message(row) for row in rows])
        return found[0] if found else None

    async def edit_message(
        self, message_id: int, body: str, mentions: tuple[str, ...] = ()
    ) -> RoomEvent | None:
        now = isoformat(utcnow())
        return await self._write(lambda conn: one.edit(conn, message_id, body, now, mentions))

    async def delete_message(self, message_id: int) -> RoomEvent:
        return await self._write(lambda conn: one.delete(conn, message_id))

    async def react(self, message_id: int, user_id: int, emoji: str, on: bool) -> RoomEvent | None:
        now = isoformat(utcnow())
        return await self._write(
            lambda conn: one.react(conn, message_id, user_id, emoji, on, now, MAX_REACTIONS)
        )

    async def edits(self, message_id: int) -> list[tuple[str, str]]:
        rows = await self._all(q.EDITS, (message_id,))
        return [(row[0], row[1]) for row in rows]

    async def _with_reactions(self, messages: list[Message]) -> list[Message]:
        """The messages with their reactions and attachments (one query for each)."""
        ids = sorted({m.id for m in messages})
        if not ids:
            return messages
        attached = await self._all(uploads.ATTACHMENTS_OF.format(ids=marks(ids)), tuple(ids))
        if attached:
            files = uploads.group_attachments(attached)
            messages = [replace(m, attachments=files.get(m.id, ())) for m in messages]
        rows = await self._all(REACTIONS_OF.format(ids=marks(ids)), tuple(ids))
        if not rows:
            return messages
        reactions = group_reactions(rows)
        return [replace(m, reactions=reactions.get(m.id, ())) for m in messages]

    async def messages(
        self, room_id: int, *, before: int | None, after: int | None, limit: int
    ) -> MessagePage:
        sql, params, newest_first = q.message_page(room_id, before, after, limit)
        rows = await self._all(sql, tuple(params))
        has_more = len(rows) > limit
        page = [_message(row) for row in rows[:limit]]
        if newest_first:
            page.reverse()
        return MessagePage(await self._with_reactions(page), has_more)

    async def events_after(self, room_id: int, seq: int, limit: int) -> list[RoomEvent]:
        rows = await self._all(q.EVENTS_AFTER, (room_id, seq, limit))
        messages = await self._with_reactions([_message(row[3:]) for row in rows])
        return [
            RoomEvent.replay(row[1], row[0], message, json.loads(row[2]) if row[2] else None)
            for row, message in zip(rows, messages, strict=True)
        ]

    async def search(
        self, user_id: int, query: SearchQuery, *, before: int | None, limit: int
    ) -> MessagePage:
        sql, params = sqlite_search(query, user_id, before, limit, MESSAGE_COLUMNS)
        rows = await self._all(sql, params)
        page = [_message(row) for row in rows[:limit]]
        return MessagePage(await self._with_reactions(page), len(rows) > limit)

    # uploads (SPEC §10)
    async def add_upload(
        self, owner_id: int, name: str, size: int, content_type: str,
        width: int | None, height: int | None, disk_key: str,
    ) -> Upload:
        now = isoformat(utcnow())

        def op(conn: sqlite3.Connection) -> Upload:
            row = conn.execute(
                "INSERT INTO uploads (owner_id, name, size, content_type, width, height,"
                " disk_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                f" RETURNING {q.UPLOAD_COLUMNS}",
                (owner_id, name, size, content_type, width, height, disk_key, now),
            ).fetchone()
            return uploads.upload_from_row(row)

        return await self._write(op)

    async def upload_for(self, upload_id: int, user_id: int) -> Upload | None:
        row = await self._one(q.UPLOAD_FOR, (upload_id, user_id, user_id))
        return uploads.upload_from_row(row) if row else None

    async def prune_uploads(self, before: datetime, limit: int) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "DELETE FROM uploads WHERE id IN (SELECT id FROM uploads"
                " WHERE message_id IS NULL AND created_at < ? ORDER BY created_at LIMIT ?)"
                " RETURNING disk_key",
                (isoformat(before), limit),
            ).fetchall()
            return [str(row[0]) for row in rows]

        return await self._write(op)


def create_private(path: Path) -> None:
    """Create the database file (and its directory) readable by the owner alone.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's permissions, so
    they follow. Files others may read (made by an older release) are narrowed to
    their owner; an existing directory is left as it is.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):  # absent, or not ours
            mode = file.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning("making %s readable by its owner only (was %o)", file, mode)
                file.chmod(mode & 0o700)
