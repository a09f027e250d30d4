"""Durable, tidy storage: synced commits, owner-only files, safe migrations.

Migration tests run on SQLite and on PostgreSQL (a throwaway schema, see
``tests/pg.py``; skipped with a reason when the server is missing unless CI=true or
CHATAPP_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chatapp import create_app
from chatapp.storage import StorageError, migrations, open_storage, postgres, sqlite
from chatapp.storage.migrations import check_version, split_sql
from chatapp.storage.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from chatapp.storage.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS

from . import conftest, pg
from .conftest import need_service
from .servers import Browser, Server


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# 1. an acknowledged write is on disk -------------------------------------------------

async def test_sqlite_commits_sync_to_disk(tmp_path: Path) -> None:
    """synchronous=FULL on both connections: in WAL mode NORMAL would let the last
    commits before a power cut vanish after they were acknowledged."""
    storage = sqlite.SQLiteStorage(str(tmp_path / "chat.db"))
    await storage.connect()
    try:
        writer_level = await storage._write(
            lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        reader_level = (await storage._one("PRAGMA synchronous"))[0]
        journal = (await storage._one("PRAGMA journal_mode"))[0]
    finally:
        await storage.close()
    assert (writer_level, reader_level, journal) == (2, 2, "wal")  # 2 = FULL


# 4. owner-only files -----------------------------------------------------------------

async def test_new_database_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "nested" / "chat.db"
    storage = sqlite.SQLiteStorage(str(path))
    await storage.connect()
    try:
        user = await storage.create_user("alice", "hash")
        assert user.id > 0
        files = [path, path.with_name("chat.db-wal"), path.with_name("chat.db-shm")]
        assert all(file.exists() for file in files)  # open in WAL mode: all three exist
        assert [mode(file) for file in files] == [0o600, 0o600, 0o600]
        assert mode(path.parent) == 0o700
    finally:
        await storage.close()


async def test_world_readable_database_from_before_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    storage = sqlite.SQLiteStorage(str(path))
    await storage.connect()
    try:
        assert mode(path) == 0o600
        assert mode(path.with_name("chat.db-wal")) == 0o600
    finally:
        await storage.close()


async def test_server_started_for_the_first_time_keeps_its_files_private(tmp_path: Path) -> None:
    """The embedded defaults: instance directory, secret and database made at start."""
    instance = tmp_path / "fresh" / "instance"
    config = conftest.test_config(tmp_path, CHATAPP_INSTANCE_PATH=str(instance),
                         CHATAPP_DATABASE_URL="sqlite:///instance/chatapp.db")
    del config["CHATAPP_SECRET_KEY"]  # the development secret is generated too
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/healthz")).status_code == 200
        db = instance / "chatapp.db"
        assert mode(instance) == 0o700
        assert mode(instance / "secret_key") == 0o600
        for file in (db, db.with_name("chatapp.db-wal"), db.with_name("chatapp.db-shm")):
            assert mode(file) == 0o600, file


# 3. migrations -----------------------------------------------------------------------

def test_split_sql_keeps_semicolons_in_literals_comments_and_triggers() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y', "odd;name" TEXT);
    INSERT INTO t (a) VALUES ('it''s; fine');
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'in; trigger' WHERE a = 'never';
    END;
    /* a block; comment */ INSERT INTO t (a) VALUES ('z');
    -- trailing comment
    """
    statements = split_sql(script)
    assert len(statements) == 4
    assert statements[0].endswith("""CREATE TABLE t (a TEXT DEFAULT 'x;y', "odd;name" TEXT);""")
    assert statements[1] == "INSERT INTO t (a) VALUES ('it''s; fine');"
    assert statements[2].startswith("CREATE TRIGGER") and statements[2].endswith("END;")
    conn = sqlite3.connect(":memory:")
    for statement in statements:
        conn.execute(statement)
    assert [row[0] for row in conn.execute("SELECT a FROM t ORDER BY rowid")] == [
        "it's; fine", "z",
    ]


def test_split_sql_refuses_an_unfinished_statement() -> None:
    with pytest.raises(StorageError, match="complete statement"):
        split_sql("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x')")


def test_every_shipped_sqlite_migration_splits_into_complete_statements() -> None:
    for script in SQLITE_MIGRATIONS:
        assert all(sqlite3.complete_statement(s) for s in split_sql(script))


def test_check_version_names_both_versions() -> None:
    check_version(3, 3)
    check_version(0, 3)
    with pytest.raises(StorageError, match=r"version 7.*version 3"):
        check_version(7, 3)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        yield url


def engine_migrations(url: str) -> tuple[str, list[str]]:
    """The name of the engine's list in ``chatapp.storage.migrations``, and the list."""
    if url.startswith("sqlite"):
        return "SQLITE_MIGRATIONS", SQLITE_MIGRATIONS
    return "POSTGRES_MIGRATIONS", PG_MIGRATIONS


async def test_a_semicolon_inside_a_string_literal_migrates(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, shipped = engine_migrations(database_url)
    extra = """
    -- a future migration; its text holds semicolons
    INSERT INTO meta (key, value) VALUES ('motd', 'hello; world -- not a comment');
    INSERT INTO meta (key, value) VALUES ('quote', 'it''s; fine');
    """
    monkeypatch.setattr(migrations, name, [*shipped, extra])
    storage = open_storage(database_url)
    await storage.connect()
    try:
        rows = await _meta(storage)
    finally:
        await storage.close()
    assert rows["motd"] == "hello; world -- not a comment"
    assert rows["quote"] == "it's; fine"


async def _meta(storage: Any) -> dict[str, str]:
    return {row[0]: row[1] for row in await storage._all("SELECT key, value FROM meta")}


async def _set_version(url: str, version: int) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
        return
    dsn, schema = postgres.split_url(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES ($1)',
                           version)
    finally:
        await conn.close()


async def test_a_schema_newer_than_the_code_is_refused(database_url: str) -> None:
    _, shipped = engine_migrations(database_url)
    storage = open_storage(database_url)
    await storage.connect()
    await storage.close()
    newer = len(shipped) + 5
    await _set_version(database_url, newer)
    again = open_storage(database_url)
    with pytest.raises(StorageError) as refused:
        await again.connect()
    message = str(refused.value)
    assert f"version {newer}" in message and f"version {len(shipped)}" in message
    # Nothing was touched: the next release (which knows the version) still finds it.
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        assert conn.execute("PRAGMA user_version").fetchone()[0] == newer
        conn.close()


def test_server_refuses_to_start_on_a_newer_schema(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    assert Browser(server.base).register("alice") == 303
    server.kill()
    db = tmp_path / "chatapp.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(RuntimeError) as refused:
        Server(tmp_path).start()
    output = str(refused.value)
    assert "version 999" in output
    assert f"version {len(SQLITE_MIGRATIONS)}" in output
    assert os.path.exists(db)
