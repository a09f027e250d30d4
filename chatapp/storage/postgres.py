"""The PostgreSQL engine (asyncpg): a connection pool shared by any number of hosts.

A room's seq comes from ``rooms.last_seq``, advanced under the room's row lock in the
transaction that appends the event: sends in batches (``postgres_writer``, group
commit on a connection of its own), edits, deletions and reactions one at a time
(``postgres_events``). Writers to one room queue up on any host, so the stream has no
gaps and no duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

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
    StoreInUse,
    Upload,
)
from . import postgres_events as events
from . import postgres_uploads as uploads
from . import queries as q
from .migrations import migrate_postgres
from .models import isoformat, summary_from_row, utcnow
from .postgres_accounts import PostgresAccounts, has_nul
from .postgres_admin import PostgresAdmin
from .postgres_events import message_from_row as _message
from .postgres_events import with_reactions
from .postgres_webhooks import PostgresWebhooks
from .postgres_writer import NewMessage, PostgresWriter
from .queries import MESSAGE_COLUMNS, numbered
from .search import SearchQuery, postgres_search

log = logging.getLogger(__name__)

POOL_MIN = 1
POOL_MAX = 10
CLOSE_TIMEOUT = 10.0
# Every wait on the server (connect, pool acquire, each command) ends after this many
# seconds (CHATAPP_DATABASE_TIMEOUT): a server that stops answering with its TCP
# connections still open fails as StorageUnavailable instead of hanging the caller.
DEFAULT_TIMEOUT = 10.0
PING_TIMEOUT = 1.5  # under /healthz's own 2 s: the ping fails (and discards) by itself
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# The server is away (down, restarting, unreachable, out of connections or disk),
# not refusing this statement: the caller may retry once it is back.
UNAVAILABLE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


# Does ``m.mentions`` (space-separated names) name ``me`` or the room?
MENTIONS_ME = "string_to_array(m.mentions, ' ') && ARRAY[me.username, 'room']"
UNREAD_COUNTS = q.unread_counts(MENTIONS_ME)


def storage_error(exc: BaseException, doing: str) -> StorageError:
    """The storage layer's own error for a driver failure (never a raw asyncpg one)."""
    kind = StorageUnavailable if isinstance(exc, UNAVAILABLE_ERRORS) else StorageError
    return kind(f"{doing}: {exc!r}")


def split_url(url: str) -> tuple[str, str | None]:
    """Take chatapp's own ``schema`` parameter off a URL: (asyncpg DSN, schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = [(key, value) for key, value in query if key != "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not SCHEMA_NAME.fullmatch(schema):
        raise StorageError(f"schema must be a lower-case SQL identifier, got {schema!r}")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


class PostgresStorage(PostgresAccounts, PostgresAdmin, PostgresWebhooks, Storage):
    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not 0 < timeout < float("inf"):
            raise StorageError(f"the database timeout must be a positive number, got {timeout!r}")
        self._dsn, self._schema = split_url(url)
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._claim: asyncpg.Connection | None = None  # holds the single-process lock
        self._writer: PostgresWriter | None = None  # sends, committed in batches

    async def connect(self) -> None:
        settings = {"search_path": self._schema} if self._schema else {}
        try:
            # timeout: each connect (a server that accepts and never answers);
            # command_timeout: each command on a pooled connection.
            pool = await asyncpg.create_pool(
                self._dsn, min_size=POOL_MIN, max_size=POOL_MAX, server_settings=settings,
                timeout=self._timeout, command_timeout=self._timeout,
            )
        except DRIVER_ERRORS as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc
        try:
            await self._migrate(settings)
        except BaseException:
            pool.terminate()
            raise
        # Only a migrated database is in use (a reconnect happens while serving).
        self._pool = pool
        if self._writer is None:
            self._writer = PostgresWriter(
                lambda: asyncpg.connect(self._dsn, server_settings=settings,
                                        timeout=self._timeout, command_timeout=self._timeout),
                storage_error,
            )

    async def claim_single_process(self) -> None:
        """Hold a session-level advisory lock, per schema, on a connection of its own.

        The lock lives as long as that connection: a killed process releases it, and
        a second process asking for it is refused with StoreInUse.
        """
        key = int.from_bytes(
            hashlib.sha256(f"chatapp-memory-broker:{self._schema or ''}".encode()).digest()[:8],
            "big", signed=True,
        )
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout,
                                         command_timeout=self._timeout)
        except DRIVER_ERRORS as exc:
            raise storage_error(exc, "cannot claim the database") from exc
        try:
            claimed = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        except DRIVER_ERRORS as exc:
            conn.terminate()
            raise storage_error(exc, "cannot claim the database") from exc
        if not claimed:
            await conn.close()
            raise StoreInUse("another chatapp process already serves this PostgreSQL database")
        if self._claim is not None:
            await self._claim.close()
        self._claim = conn

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:  # queued sends commit first
            await writer.stop()
        claim, self._claim = self._claim, None
        if claim is not None:
            try:
                await asyncio.wait_for(claim.close(), CLOSE_TIMEOUT)
            except (*DRIVER_ERRORS, TimeoutError):
                claim.terminate()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("PostgreSQL pool did not close in %.0f s; terminating", CLOSE_TIMEOUT)
            pool.terminate()

    async def _migrate(self, settings: dict[str, str]) -> None:
        # Not on the pool: a long migration (or waiting for another host's) must not be
        # cut off by the command timeout and retried forever.
        async with self._unbounded(settings) as conn:
            await migrate_postgres(conn, self._schema)

    @asynccontextmanager
    async def _unbounded(
        self, settings: dict[str, str] | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own with no command timeout, for work whose length grows
        with the data (migrations, bulk imports); its connect is bounded. Driver
        failures surface as StorageError."""
        if settings is None:
            settings = {"search_path": self._schema} if self._schema else {}
        try:
            conn = await asyncpg.connect(self._dsn, server_settings=settings,
                                         timeout=self._timeout)
        except DRIVER_ERRORS as exc:
            raise storage_error(exc, "cannot connect to PostgreSQL") from exc
        try:
            yield conn
        except DRIVER_ERRORS as exc:
            raise storage_error(exc, "database operation failed") from exc
        finally:
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except DRIVER_ERRORS:
                conn.terminate()

    @asynccontextmanager
    async def _conn(self, pool: asyncpg.Pool | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; driver failures surface as StorageError.

        Acquiring waits at most the timeout, and each command too (the pool's
        ``command_timeout``). A connection that failed as unavailable (a command timed
        out, the link broke) is terminated here, never handed back to the pool in an
        unknown state (asyncpg would otherwise wait up to the timeout again for the
        server to confirm the cancelled command before discarding it)."""
        pool = pool or self._pool
        if pool is None:
            raise StorageUnavailable("PostgreSQL is not connected")
        try:
            async with pool.acquire(timeout=self._timeout) as conn:
                try:
                    yield conn
                except UNAVAILABLE_ERRORS:
                    conn.terminate()
                    raise
        except DRIVER_ERRORS as exc:
            raise storage_error(exc, "database operation failed") from exc

    async def _one(self, sql: str, *args: Any) -> Any:
        async with self._conn() as conn:
            return await conn.fetchrow(sql, *args)

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        async with self._conn() as conn:
            return list(await conn.fetch(sql, *args))

    async def _run(self, sql: str, *args: Any) -> str:
        async with self._conn() as conn:
            return str(await conn.execute(sql, *args))

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1", timeout=min(self._timeout, PING_TIMEOUT))
        if self._claim is not None and self._claim.is_closed():
            # The server restarted and dropped the lock with the session: take it again.
            await self.claim_single_process()

    async def epoch(self) -> str:
        row = await self._one(q.EPOCH)
        return str(row[0])

    # `chatapp backup`/`restore` are for SQLite; PostgreSQL has its own tools.
    async def backup(self, target: str, *, force: bool = False) -> None:
        raise StorageError(
            "PostgreSQL: back up with pg_dump, e.g. pg_dump -Fc -f chatapp.dump DATABASE_URL "
            "(README: Running in production, Backups)"
        )

    async def check_backup(self, source: str) -> None:
        raise StorageError(
            "PostgreSQL: restore with pg_restore, e.g. pg_restore --clean --if-exists "
            "-d DATABASE_URL chatapp.dump (README: Running in production, Backups)"
        )

    async def restore(self, source: str) -> str:
        await self.check_backup(source)
        raise AssertionError("unreachable")

    # rooms
    async def create_room(self, slug: str, name: str, kind: str, creator_id: int) -> Room:
        now = utcnow()
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    room_id = await conn.fetchval(
                        "INSERT INTO rooms (slug, name, kind, created_by, created_at)"
                        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        slug, name, kind, creator_id, now,
                    )
                    await conn.execute(
                        "INSERT INTO memberships (user_id, room_id, joined_at)"
                        " VALUES ($1, $2, $3)",
                        creator_id, room_id, now,
                    )
            except asyncpg.UniqueViolationError:
                raise RoomExists(slug) from None
        return Room(room_id, slug, name, kind, 0)

    async def room(self, slug: str) -> Room | None:
        if has_nul(slug):
            return None
        row = await self._one(numbered(q.ROOM), slug)
        return Room(*row) if row else None

    async def rooms_of(self, user_id: int) -> list[RoomSummary]:
        rows = await self._all(numbered(
            f"SELECT r.id, r.slug, r.name, {q.ROOM_KIND}, {UNREAD_COUNTS}, r.last_seq,"
            " ms.notify, me.username FROM memberships ms JOIN rooms r ON r.id = ms.room_id"
            " JOIN users me ON me.id = ms.user_id"
            " WHERE ms.user_id = ? ORDER BY r.name COLLATE \"C\", r.id"),
            UNREAD_LIMIT, UNREAD_LIMIT, user_id,
        )
        dms = [row[0] for row in rows if row[3] == "dm"]
        members: dict[int, list[str]] = {}
        if dms:
            for room_id, username in await self._all(
                "SELECT ms.room_id, u.username FROM memberships ms"
                " JOIN users u ON u.id = ms.user_id WHERE ms.room_id = ANY($1::bigint[])"
                " ORDER BY ms.room_id, u.username_key COLLATE \"C\"",
                dms,
            ):
                members.setdefault(room_id, []).append(username)
        return [summary_from_row(tuple(row), members.get(row[0], ())) for row in rows]

    async def unread(self, user_id: int, room_id: int) -> tuple[int, int]:
        row = await self._one(numbered(
            f"SELECT {UNREAD_COUNTS} FROM memberships ms JOIN rooms r ON r.id = ms.room_id"
            " JOIN users me ON me.id = ms.user_id WHERE ms.user_id = ? AND ms.room_id = ?"),
            UNREAD_LIMIT, UNREAD_LIMIT, user_id, room_id,
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def room_members(self, room_id: int) -> list[str]:
        rows = await self._all(numbered(q.ROOM_MEMBERS), room_id)
        return [row[0] for row in rows]

    async def create_dm(
        self, slug: str, key: str, name: str, member_ids: list[int]
    ) -> tuple[Room, bool]:
        now = utcnow()
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    room_id = await conn.fetchval(
                        "INSERT INTO rooms (slug, name, kind, dm_key, created_by, created_at)"
                        " VALUES ($1, $2, 'private', $3, $4, $5)"
                        " ON CONFLICT (dm_key) WHERE dm_key IS NOT NULL DO NOTHING RETURNING id",
                        slug, name, key, member_ids[0], now,
                    )
                    if room_id is not None:
                        await conn.execute(
                            "INSERT INTO memberships (user_id, room_id, joined_at)"
                            " SELECT unnest($1::bigint[]), $2, $3",
                            member_ids, room_id, now,
                        )
                        return Room(room_id, slug, name, "dm", 0), True
            except asyncpg.UniqueViolationError:
                raise RoomExists(slug) from None
            row = await conn.fetchrow(
                "SELECT id, slug, name, 'dm', last_seq FROM rooms WHERE dm_key = $1", key
            )
        if row is None:
            raise StorageError("a direct message vanished while it was looked up")
        return Room(*row), False

    async def set_notify(self, user_id: int, room_id: int, notify: str) -> None:
        await self._run(
            "UPDATE memberships SET notify = $1 WHERE user_id = $2 AND room_id = $3",
            notify, user_id, room_id,
        )

    async def public_rooms(self) -> list[Room]:
        rows = await self._all(q.PUBLIC_ROOMS)
        return [Room(*row) for row in rows]

    async def is_member(self, user_id: int, room_id: int) -> bool:
        row = await self._one(numbered(q.IS_MEMBER), user_id, room_id)
        return row is not None

    async def join(self, user_id: int, room_id: int) -> None:
        await self._run(numbered(q.JOIN_ROOM), user_id, utcnow(), room_id)

    async def leave(self, user_id: int, room_id: int) -> None:
        await self._run(
            "DELETE FROM memberships WHERE user_id = $1 AND room_id = $2", user_id, room_id
        )

    async def mark_read(self, user_id: int, room_id: int, seq: int) -> int:
        row = await self._one(
            "UPDATE memberships ms SET last_read_seq = LEAST($1::bigint, r.last_seq)"
            " FROM rooms r WHERE r.id = ms.room_id AND ms.user_id = $2 AND ms.room_id = $3"
            " RETURNING ms.last_read_seq",
            seq, user_id, room_id,
        )
        return int(row[0]) if row else 0

    # messages and their room events
    async def add_message(
        self, room_id: int, author_id: int, body: str, nonce: str | None,
        reply_to: int | None = None, mentions: tuple[str, ...] = (),
        attachments: tuple[int, ...] = (),
    ) -> tuple[Message, bool]:
        # Group commit (postgres_writer): queued in the order they were made, so one
        # author's pipelined sends commit in that order.
        if self._writer is None:
            raise StorageUnavailable("PostgreSQL is not connected")
        return await self._writer.send(NewMessage(
            room_id, author_id, body, nonce, reply_to, mentions, attachments))

    async def messages(
        self, room_id: int, *, before: int | None, after: int | None, limit: int
    ) -> MessagePage:
        sql, params, newest_first = q.message_page(room_id, before, after, limit)
        async with self._conn() as conn:
            rows = await conn.fetch(numbered(sql), *params)
            has_more = len(rows) > limit
            page = [_message(row) for row in rows[:limit]]
            if newest_first:
                page.reverse()
            return MessagePage(await with_reactions(conn, page), has_more)

    async def events_after(self, room_id: int, seq: int, limit: int) -> list[RoomEvent]:
        async with self._conn() as conn:
            return await events.events_after(conn, room_id, seq, limit)

    async def search(
        self, user_id: int, query: SearchQuery, *, before: int | None, limit: int
    ) -> MessagePage:
        sql, params = postgres_search(query, user_id, before, limit, MESSAGE_COLUMNS)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *params)
            page = [_message(row) for row in rows[:limit]]
            return MessagePage(await with_reactions(conn, page), len(rows) > limit)

    async def message(self, message_id: int) -> Message | None:
        async with self._conn() as conn:
            return await events.load_message(conn, message_id)

    async def edit_message(
        self, message_id: int, body: str, mentions: tuple[str, ...] = ()
    ) -> RoomEvent | None:
        async with self._conn() as conn:
            return await events.edit(conn, message_id, body, utcnow(), mentions)

    async def delete_message(self, message_id: int) -> RoomEvent:
        async with self._conn() as conn:
            return await events.delete(conn, message_id)

    async def react(self, message_id: int, user_id: int, emoji: str, on: bool) -> RoomEvent | None:
        async with self._conn() as conn:
            return await events.react(conn, message_id, user_id, emoji, on, utcnow(),
                                      MAX_REACTIONS)

    async def edits(self, message_id: int) -> list[tuple[str, str]]:
        rows = await self._all(numbered(q.EDITS), message_id)
        return [(row[0], isoformat(row[1])) for row in rows]

    # uploads (SPEC §10)
    async def add_upload(
        self, owner_id: int, name: str, size: int, content_type: str,
        width: int | None, height: int | None, disk_key: str,
    ) -> Upload:
        row = await self._one(uploads.INSERT, owner_id, name, size, content_type, width,
                              height, disk_key)
        return uploads.upload_from_row(row)

    async def upload_for(self, upload_id: int, user_id: int) -> Upload | None:
        row = await self._one(numbered(q.UPLOAD_FOR), upload_id, user_id, user_id)
        return uploads.upload_from_row(row) if row else None

    async def prune_uploads(self, before: datetime, limit: int) -> list[str]:
        rows = await self._all(uploads.PRUNE, before, limit)
        return [str(row[0]) for row in rows]
