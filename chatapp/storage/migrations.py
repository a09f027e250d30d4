"""Schema migrations: each engine's runner, and what they share.

Each engine keeps its migrations in ``<engine>_schema.py`` (a list, applied in order,
one transaction each). SQLite counts them in ``PRAGMA user_version``, PostgreSQL in
``schema_version``; a schema newer than the code is refused, naming both versions.
Several processes may start at once: one migrates, the others find nothing to do.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from typing import TYPE_CHECKING, Any

from . import GENERAL_ROOM, StorageError
from .models import isoformat, utcnow
from .postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from .queries import numbered
from .sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg

log = logging.getLogger(__name__)

# Every PostgreSQL process migrating the same database queues on this lock (any 64-bit
# constant).
MIGRATION_LOCK = 0x63686174_6D696772  # "chatmigr"


def _seed(now: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """What migration 1 adds besides the tables: the store's epoch and the general room."""
    return [
        ("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (secrets.token_hex(8),)),
        ("INSERT INTO rooms (slug, name, kind, created_at) VALUES (?, ?, 'public', ?)",
         (GENERAL_ROOM, GENERAL_ROOM, now)),
    ]


async def migrate_sqlite(conn: aiosqlite.Connection) -> None:
    """Bring a SQLite database up to date, each migration in its own transaction."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    check_version(version, len(SQLITE_MIGRATIONS))
    for number, script in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
        log.info("applying SQLite schema migration %d", number)
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process starting at the same time may have applied it meanwhile.
            async with conn.execute("PRAGMA user_version") as cursor:
                current = await cursor.fetchone()
            if current and int(current[0]) >= number:
                await conn.commit()
                continue
            for statement in split_sql(script):
                await conn.execute(statement)
            if number == 1:
                for sql, values in _seed(isoformat(utcnow())):
                    await conn.execute(sql, values)
            await conn.execute(f"PRAGMA user_version = {number}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise


async def migrate_postgres(conn: asyncpg.Connection, schema: str | None) -> None:
    """Bring a PostgreSQL database (``schema``: its schema, made if missing) up to date
    in one transaction."""
    async with conn.transaction():
        # One process migrates, the others wait and then find nothing left to do.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        if schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)")
        version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        check_version(version, len(POSTGRES_MIGRATIONS))
        for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
            log.info("applying PostgreSQL schema migration %d", number)
            # No arguments: the simple query protocol, where the server itself
            # splits the script into statements (a ";" in a literal is safe).
            await conn.execute(script)
            if number == 1:
                for sql, values in _seed(utcnow()):
                    await conn.execute(numbered(sql), *values)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
        fold = await conn.fetchval("SELECT value FROM meta WHERE key = 'search_fold'")
        if fold == "translate":
            log.warning("PostgreSQL had no unaccent extension when search was set up:"
                        " search folds only Latin-1 accents (README: Search)")


def split_sql(script: str) -> list[str]:
    """Split a SQLite migration into statements where SQLite's own tokenizer says one
    ends (``sqlite3.complete_statement``): a ``;`` in a string literal, a quoted name, a
    comment or a trigger body does not end a statement.

    (PostgreSQL needs no split: a script sent without parameters goes through the
    simple query protocol, and the server parses its statements itself.)"""
    statements: list[str] = []
    current = ""
    for piece in script.split(";")[:-1]:
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    rest = current + script.rsplit(";", 1)[-1]
    if any(line.strip() and not line.strip().startswith("--") for line in rest.splitlines()):
        raise StorageError(f"migration SQL does not end with a complete statement: {rest!r}")
    return statements


def check_version(found: int, known: int) -> None:
    """Refuse a schema newer than this code: it was written by a later chatapp."""
    if found > known:
        raise StorageError(
            f"the database schema is version {found}, newer than this chatapp knows "
            f"(version {known}); run the chatapp release that wrote it, or restore a "
            "backup taken with this one"
        )
