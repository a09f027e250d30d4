"""Throwaway PostgreSQL schemas for tests: one per test, dropped afterwards.

``CHATAPP_TEST_POSTGRES_URL`` points at the server (default: the CI one). Helpers
here are synchronous (they run their own event loop in a worker thread) so sync
fixtures such as ``config`` can use them as well as async ones.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg

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


_claimed: list[str] = []


def claim_schema_url(base_url: str = BASE_URL) -> str:
    """A URL on a fresh schema that ``drop_claimed()`` drops later (e.g. after the test).

    For helpers that build a config without a fixture around them (``test_config``).
    """
    schema = new_schema()
    _claimed.append(schema)
    return schema_url(schema, base_url)


def drop_claimed(base_url: str = BASE_URL) -> None:
    """Drop every schema handed out by ``claim_schema_url`` so far."""
    while _claimed:
        drop_schema_sync(_claimed.pop(), base_url)
