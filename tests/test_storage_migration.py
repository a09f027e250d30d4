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


@pytest.mark.postgres
async def test_postgres_database_from_before_room_events_upgrades() -> None:
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        # The same content, written by the version 2 schema as the old code did.
        dsn, schema = split_url(url)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or ""})
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute("CREATE TABLE schema_version (version int NOT NULL)")
            for script in PG_MIGRATIONS[:2]:
                await conn.execute(script)
            await conn.execute("""
                INSERT INTO schema_version VALUES (1), (2);
                INSERT INTO meta VALUES ('epoch', 'old');
                INSERT INTO users (username, username_key, password_hash, is_admin, created_at)
                    VALUES ('alice', 'alice', 'h', true, now()), ('bob', 'bob', 'h', false, now());
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
