"""Throwaway PostgreSQL schemas for tests: one per test, dropped afterwards.

``CHATAPP_TEST_POSTGRES_URL`` points at the server (default: the CI one). Helpers
here are synchronous (they run their own event loop in a worker thread) so sync
fixtures such as ``config`` can use them as well as async ones.

``throwaway_schema`` gives an empty schema (the tests that migrate it themselves).
``claim_schema_url``, what the app suites' PostgreSQL backend runs on, gives an
already-migrated store: a database copied from a template migrated once per test
run (``CREATE DATABASE ... TEMPLATE`` copies files, ~0.05 s; migrating a fresh
schema costs ~0.3-0.7 s, and ~630 tests do it). Each copy gets its own epoch and a
fresh creation time for the general room, as a store migrated just now has.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from chatapp.storage import GENERAL_ROOM
from chatapp.storage.migrations import migrate_postgres
from chatapp.storage.models import utcnow

T = TypeVar("T")
BASE_URL = os.environ.get(
    "CHATAPP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CONNECT_TIMEOUT = 3.0


def schema_url(schema: str, base_url: str = BASE_URL) -> str:
    """The chatapp URL whose tables live in ``schema`` (created on connect)."""
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}schema={schema}"


def new_schema() -> str:
    return "t_" + secrets.token_hex(6)


def _in_thread(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop, never the test's own."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(factory())  # type: ignore[arg-type]
        except BaseException as exc:  # handed back to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="pg-test-helper")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


async def _probe(base_url: str) -> str | None:
    try:
        conn = await asyncpg.connect(base_url, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"cannot connect to {base_url}: {exc!r}"
    await conn.close()
    return None


@functools.cache
def unavailable_reason(base_url: str = BASE_URL) -> str | None:
    """Why PostgreSQL cannot be used (checked once per process), or None."""
    return _in_thread(lambda: _probe(base_url))


async def drop_schema(schema: str, base_url: str = BASE_URL) -> None:
    conn = await asyncpg.connect(base_url, timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def drop_schema_sync(schema: str, base_url: str = BASE_URL) -> None:
    _in_thread(lambda: drop_schema(schema, base_url))


@contextmanager
def throwaway_schema(base_url: str = BASE_URL) -> Iterator[str]:
    """Yield a chatapp DATABASE_URL on a fresh schema; drop the schema afterwards.

    Check ``unavailable_reason()`` first (and skip or fail via ``need_service``).
    """
    schema = new_schema()
    try:
        yield schema_url(schema, base_url)
    finally:
        drop_schema_sync(schema, base_url)


TEMPLATE_SCHEMA = "t_template"  # the schema every copy's tables live in
_claimed: list[str] = []  # databases copied from the template, not yet dropped


def database_url(database: str, base_url: str = BASE_URL) -> str:
    """``base_url`` on another database of the same server."""
    return urlsplit(base_url)._replace(path="/" + database).geturl()


async def _run_in(database: str | None, base_url: str, work: Callable[[Any], Awaitable[Any]]
                  ) -> None:
    """Run ``work(conn)`` on a connection to ``database`` (None: the server's own one,
    for CREATE/DROP DATABASE), in the template's schema."""
    url = base_url if database is None else database_url(database, base_url)
    settings = {} if database is None else {"search_path": TEMPLATE_SCHEMA}
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, server_settings=settings)
    try:
        await work(conn)
    finally:
        await conn.close()


async def _create_template(base_url: str) -> str:
    name = "t_template_" + secrets.token_hex(6)
    await _run_in(None, base_url, lambda conn: conn.execute(f'CREATE DATABASE "{name}"'))
    await _run_in(name, base_url, lambda conn: migrate_postgres(conn, TEMPLATE_SCHEMA))
    return name


# Dropping a database can wait on a checkpoint (up to seconds on a busy server): the
# copies are dropped by this thread while the next tests run; the end of the run waits.
_dropper = ThreadPoolExecutor(1, thread_name_prefix="pg-test-dropper")
_dropping: list[Future[None]] = []


@functools.cache
def template_database(base_url: str = BASE_URL) -> str:
    """A database migrated by chatapp's own migrations, made once per test run and
    dropped when it ends (after the copies still being dropped)."""
    name = _in_thread(lambda: _create_template(base_url))

    def drop_all() -> None:
        for future in _dropping:
            future.result()
        asyncio.run(drop_database(name, base_url))  # at exit: no loop runs, no new threads

    atexit.register(drop_all)
    return name


async def _reseed(conn: Any) -> None:
    """What migration 1 seeds differently in every store: its epoch, the general
    room's creation time."""
    await conn.execute("UPDATE meta SET value = $1 WHERE key = 'epoch'", secrets.token_hex(8))
    await conn.execute("UPDATE rooms SET created_at = $1 WHERE slug = $2", utcnow(), GENERAL_ROOM)


async def _copy_template(name: str, template: str, base_url: str) -> None:
    await _run_in(None, base_url,
                  lambda conn: conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    await _run_in(name, base_url, _reseed)


async def drop_database(name: str, base_url: str = BASE_URL) -> None:
    # FORCE: a connection a killed server left behind does not block the drop.
    await _run_in(None, base_url,
                  lambda conn: conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def drop_database_sync(name: str, base_url: str = BASE_URL) -> None:
    _in_thread(lambda: drop_database(name, base_url))


def claim_schema_url(base_url: str = BASE_URL) -> str:
    """A URL on a fresh, migrated store that ``drop_claimed()`` drops later (e.g.
    after the test): a database of its own copied from ``template_database()``.

    For helpers that build a config without a fixture around them (``test_config``).
    """
    template = template_database(base_url)
    name = "t_" + secrets.token_hex(6)
    _in_thread(lambda: _copy_template(name, template, base_url))
    _claimed.append(name)
    return schema_url(TEMPLATE_SCHEMA, database_url(name, base_url))


def drop_claimed(base_url: str = BASE_URL) -> None:
    """Drop every database handed out by ``claim_schema_url`` so far (in the
    background: nothing uses them any more)."""
    while _claimed:
        _dropping.append(_dropper.submit(drop_database_sync, _claimed.pop(), base_url))
