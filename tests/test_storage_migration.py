"""Databases made before room events upgrade in place: every message becomes its
``message`` event at the seq it had, and the stream goes on from there."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from chatapp.search import parse as parse_search
from chatapp.storage import GENERAL_ROOM, Storage, open_storage
from chatapp.storage.migrations import split_sql
from chatapp.storage.postgres import split_url
from chatapp.storage.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from chatapp.storage.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS

from . import pg
from .conftest import need_service

# Made with the code of e63e701 (schema version 2, before room events) by
# ``tests/fixtures/make_v2.py``: alice and bob; general holds "hello 0".."hello 4"
# (seqs 1-5, nonces n0-n4, alternately by alice and bob), bob read up to seq 3; the
# private room ops (alice and bob) holds "ops 0".."ops 2" by bob (seqs 1-3).
FIXTURE = Path(__file__).parent / "fixtures" / "chatapp-v2.db"


async def check_upgraded(storage: Storage) -> None:
    general = await storage.room(GENERAL_ROOM)
    ops = await storage.room("ops")
    assert general is not None and ops is not None
    assert (general.last_seq, ops.last_seq) == (5, 3)
    events = await storage.events_after(general.id, 0, 100)
    assert [(e.seq, e.kind) for e in events] == [(s, "message") for s in range(1, 6)]
    bodies = [e.fields["message"]["body"] for e in events]
    assert bodies == [f"hello {i}" for i in range(5)]
    assert [e.fields["message"]["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert [e.fields["message"]["nonce"] for e in events] == [f"n{i}" for i in range(5)]
    assert [e.fields["message"]["reactions"] for e in events] == [[]] * 5
    ops_events = await storage.events_after(ops.id, 1, 100)
    assert [e.fields["message"]["body"] for e in ops_events] == ["ops 1", "ops 2"]
    bob = await storage.user_by_name("bob")
    alice = await storage.user_by_name("alice")
    assert bob is not None and alice is not None
    (summary,) = [r for r in await storage.rooms_of(bob.id) if r.slug == GENERAL_ROOM]
    assert summary.unread == 1  # "hello 4" by alice, after bob's marker at 3
    # Migration 6 indexed the old messages for search (private ones for members only).
    found = await storage.search(bob.id, parse_search("hel"), before=None, limit=10)
    assert [m.body for m in found.messages] == [f"hello {i}" for i in range(4, -1, -1)]
    found = await storage.search(bob.id, parse_search('"ops 2"'), before=None, limit=10)
    assert [m.body for m in found.messages] == ["ops 2"]

    # The stream goes on where it was, and the new kinds work on old messages.
    message, created = await storage.add_message(general.id, alice.id, "after", "n-new")
    assert created and message.seq == 6
    again, created = await storage.add_message(general.id, alice.id, "dup", "n0")
    assert not created and again.body == "hello 0" and again.seq == 1
    edited = await storage.edit_message(events[0].fields["message"]["id"], "hello 0 (edited)")
    assert edited is not None and edited.seq == 7
    reacted = await storage.react(events[1].fields["message"]["id"], alice.id, "👍", True)
    assert reacted is not None and reacted.seq == 8
    assert [e.seq for e in await storage.events_after(general.id, 5, 100)] == [6, 7, 8]


async def test_sqlite_database_from_before_room_events_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    storage = open_storage(f"sqlite:///{path}")
    await storage.connect()
    try:
        await check_upgraded(storage)
    finally:
        await storage.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(SQLITE_MIGRATIONS),)


async def postgres_at(url: str, version: int) -> asyncpg.Connection:
    """A connection to ``url``'s schema made by the first ``version`` migrations, with
    alice and bob as the code of that version wrote them (nothing else yet)."""
    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or ""})
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute("CREATE TABLE schema_version (version int NOT NULL)")
    for script in PG_MIGRATIONS[:version]:
        await conn.execute(script)
    await conn.execute("INSERT INTO schema_version SELECT generate_series(1, $1)", version)
    await conn.execute("""
        INSERT INTO meta VALUES ('epoch', 'old');
        INSERT INTO users (username, username_key, password_hash, is_admin, created_at)
            VALUES ('alice', 'alice', 'h', true, now()), ('bob', 'bob', 'h', false, now());
    """)
    return conn


@pytest.mark.postgres
async def test_postgres_database_from_before_room_events_upgrades() -> None:
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        # The same content, written by the version 2 schema as the old code did.
        conn = await postgres_at(url, 2)
        try:
            await conn.execute("""
                INSERT INTO rooms (slug, name, kind, last_seq, created_at)
                    VALUES ('general', 'general', 'public', 5, now()),
                           ('ops', 'Ops', 'private', 3, now());
                INSERT INTO memberships (user_id, room_id, last_read_seq, joined_at)
                    VALUES (1, 1, 0, now()), (2, 1, 3, now()), (1, 2, 0, now()),
                           (2, 2, 0, now());
                INSERT INTO messages (room_id, seq, author_id, body, nonce, created_at)
                    SELECT 1, i + 1, 1 + i % 2, 'hello ' || i, 'n' || i, now()
                    FROM generate_series(0, 4) i;
                INSERT INTO messages (room_id, seq, author_id, body, created_at)
                    SELECT 2, i + 1, 2, 'ops ' || i, now() FROM generate_series(0, 2) i;
            """)
        finally:
            await conn.close()
        storage = open_storage(url)
        await storage.connect()
        try:
            await check_upgraded(storage)
            assert await storage.epoch() == "old"
        finally:
            await storage.close()


# Migration 10 (search plans, issue #15): SQLite rebuilds its FTS index with a
# 4-character prefix index too, PostgreSQL adds messages(author_id, id) for ``from:``.
SEARCHABLE = ["deploy the hotfix", "hello world", "help wanted", "hello again"]


async def check_search_after_10(storage: Storage) -> None:
    bob = await storage.user_by_name("bob")
    alice = await storage.user_by_name("alice")
    assert bob is not None and alice is not None
    found = await storage.search(bob.id, parse_search("hell"), before=None, limit=10)
    assert [m.body for m in found.messages] == ["hello again", "hello world"]
    found = await storage.search(bob.id, parse_search("hel from:alice"), before=None,
                                 limit=10)
    assert [m.body for m in found.messages] == ["help wanted"]
    found = await storage.search(bob.id, parse_search('"the hotfix"'), before=None, limit=10)
    assert [m.body for m in found.messages] == ["deploy the hotfix"]
    # The index goes on following sends and deletes.
    general = await storage.room(GENERAL_ROOM)
    assert general is not None
    message, _ = await storage.add_message(general.id, alice.id, "hellish week", "n-10")
    found = await storage.search(bob.id, parse_search("hell"), before=None, limit=10)
    assert [m.body for m in found.messages] == ["hellish week", "hello again", "hello world"]
    await storage.delete_message(message.id)
    found = await storage.search(bob.id, parse_search("hell"), before=None, limit=10)
    assert [m.body for m in found.messages] == ["hello again", "hello world"]


async def test_sqlite_search_index_gets_its_4_letter_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "v9.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for script in SQLITE_MIGRATIONS[:9]:
            for statement in split_sql(script):
                conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', 'old')")
        conn.execute("INSERT INTO rooms (slug, name, kind, created_at)"
                     " VALUES ('general', 'general', 'public', '2026-01-01T00:00:00Z')")
        for name in ("alice", "bob"):
            conn.execute("INSERT INTO users (username, username_key, password_hash,"
                         " is_admin, created_at) VALUES (?, ?, 'h', 0, '2026-01-01')",
                         (name, name))
            conn.execute("INSERT INTO memberships (user_id, room_id, joined_at)"
                         " SELECT id, 1, '2026-01-01' FROM users WHERE username = ?", (name,))
        for seq, body in enumerate(SEARCHABLE, start=1):  # alice, bob, alice, bob
            conn.execute("INSERT INTO messages (room_id, seq, author_id, body, created_at)"
                         " VALUES (1, ?, ?, ?, '2026-01-01')", (seq, 2 - seq % 2, body))
        conn.execute("UPDATE rooms SET last_seq = 4")
        conn.execute("PRAGMA user_version = 9")
        (old,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'"
                              ).fetchone()
        assert "prefix='2 3'" in old
    finally:
        conn.close()
    storage = open_storage(f"sqlite:///{path}")
    await storage.connect()
    try:
        await check_search_after_10(storage)
    finally:
        await storage.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(SQLITE_MIGRATIONS),)
        (new,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'"
                              ).fetchone()
        assert "prefix='2 3 4'" in new
        triggers = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            " AND name LIKE 'messages_fts%'")}
        assert triggers == {"messages_fts_insert", "messages_fts_update",
                            "messages_fts_delete"}
        # The rebuilt index holds every live message (FTS5's own consistency check).
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


@pytest.mark.postgres
async def test_postgres_gets_the_author_index_for_from_searches() -> None:
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        dsn, schema = split_url(url)
        conn = await postgres_at(url, 9)
        try:
            await conn.execute("""
                INSERT INTO rooms (slug, name, kind, last_seq, created_at)
                    VALUES ('general', 'general', 'public', 4, now());
                INSERT INTO memberships (user_id, room_id, last_read_seq, joined_at)
                    VALUES (1, 1, 0, now()), (2, 1, 0, now());
            """)
            for seq, body in enumerate(SEARCHABLE, start=1):
                await conn.execute(
                    "INSERT INTO messages (room_id, seq, author_id, body, created_at)"
                    " VALUES (1, $1, $2, $3, now())", seq, 2 - seq % 2, body)
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1"
                " AND indexname = 'messages_author'", schema) == 0
        finally:
            await conn.close()
        storage = open_storage(url)
        await storage.connect()
        try:
            await check_search_after_10(storage)
        finally:
            await storage.close()
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or ""})
        try:
            definition = await conn.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = $1"
                " AND indexname = 'messages_author'", schema)
            assert definition is not None and "(author_id, id)" in definition
            assert await conn.fetchval("SELECT max(version) FROM schema_version") == len(
                PG_MIGRATIONS)
        finally:
            await conn.close()
