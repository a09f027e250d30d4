"""A PostgreSQL that stops answering (host frozen, network black hole: the TCP
connections stay open, nothing comes back) must not hang chatapp: every wait on it
ends after CHATAPP_DATABASE_TIMEOUT as ``unavailable`` (API 503, websocket error,
/healthz 503), the connections that timed out are discarded, and once it answers
again traffic recovers without losing an acked message.

The black hole is a TCP proxy of the test's own in front of the real server
(``BlackHole``): frozen, it keeps every socket open and accepts new ones, but forwards
nothing either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatapp.storage import StorageUnavailable
from chatapp.storage.postgres import PostgresStorage

from . import conftest, pg
from .test_outages import (
    GENERAL,
    Gate,
    eventually,
    health,
    healthy,
    make_app,
    postgres_port,
    schema,  # noqa: F401 - the fixture: a private schema, dropped afterwards
    send,
)
from .wsutil import connect

TIMEOUT = 1.0  # CHATAPP_DATABASE_TIMEOUT in these tests
# A send may wait for the batch before it (one timeout) and its own (one more); the
# rest is slack for a busy machine.
WITHIN = 3 * TIMEOUT + 2.0


class BlackHole(Gate):
    """A TCP proxy to the real server that can be frozen: while frozen it accepts
    connections and keeps them open, but no byte passes either way."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self._thawed = asyncio.Event()
        self._thawed.set()
        self.accepted = 0

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def url(self, schema_name: str) -> str:
        base = pg.BASE_URL.replace(f":{self.target_port}/", f":{self.port}/")
        return pg.schema_url(schema_name, base)

    async def close(self) -> None:
        self.thaw()
        await super().close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await super()._forward(reader, writer)

    async def _passing(self) -> None:
        await self._thawed.wait()


@pytest.fixture
async def hole() -> AsyncIterator[BlackHole]:
    hole = BlackHole(postgres_port())
    await hole.open()
    try:
        yield hole
    finally:
        await hole.close()


# -- the storage on its own: each wait ends, the connection is discarded ----------------


async def test_a_command_on_a_frozen_server_times_out_and_its_connection_is_discarded(
    hole: BlackHole, schema: str  # noqa: F811 - the fixture
) -> None:
    timeout = 2.0  # long enough to tell one timeout from two on a busy machine
    storage = PostgresStorage(hole.url(schema), timeout=timeout)
    await storage.connect()
    try:
        alice = await storage.create_user("alice", "not-a-hash")
        general = await storage.room(GENERAL)
        assert general is not None
        pool = storage._pool
        assert pool is not None and pool.get_size() >= 1
        hole.freeze()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await storage.public_rooms()
        # One timeout: the connection is terminated at once, not handed back to the
        # pool, where asyncpg would wait a second timeout for the server to confirm
        # the cancelled command before dropping it.
        assert time.monotonic() - started < 1.5 * timeout
        assert pool.get_size() == 0 and pool.get_idle_size() == 0
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await storage.ping()  # a new connection: its connect times out
        assert time.monotonic() - started < 1.5 * timeout
        # Sends: the writer's own connection times out too, and the queue drains.
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(storage.add_message(general.id, alice.id, f"m{i}", f"n{i}") for i in range(5)),
            return_exceptions=True)
        assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
        assert time.monotonic() - started < 2.5 * timeout

        hole.thaw()
        await storage.ping()
        message, fresh = await storage.add_message(general.id, alice.id, "after", "n-after")
        assert fresh and message.body == "after"
    finally:
        hole.thaw()
        await storage.close()


# -- the app: 503s and `unavailable` within the timeout, then recovery ------------------


async def test_postgres_freezing_mid_run_answers_unavailable_in_time_then_recovers(
    tmp_path: Path, hole: BlackHole, schema: str  # noqa: F811 - the fixture
) -> None:
    app = make_app(tmp_path, CHATAPP_DATABASE_URL=hole.url(schema),
                   CHATAPP_DATABASE_TIMEOUT=str(TIMEOUT))
    async with app.test_app():
        client = app.test_client()
        assert await healthy(client)
        alice, _ = await conftest.AuthActions(app).user("alice")
        async with connect(alice) as ws:
            assert (await send(ws, "before", "n1"))["message"]["seq"] == 1
            hole.freeze()
            started = time.monotonic()
            await ws.send("send", room=GENERAL, body="during", nonce="n2")
            failed = await ws.expect("error", nonce="n2", wait=WITHIN + 5)
            assert failed["code"] == "unavailable" and failed["retry_after"] > 0
            assert time.monotonic() - started < WITHIN

            started = time.monotonic()
            response = await alice.get("/api/v1/rooms")
            assert response.status_code == 503
            error = (await response.get_json())["error"]
            assert (error["status"], error["code"]) == (503, "unavailable")
            assert time.monotonic() - started < WITHIN

            started = time.monotonic()
            status, body = await health(client)
            assert (status, body) == (503, {"status": "unavailable", "failing": ["storage"]})
            assert time.monotonic() - started < 2 * TIMEOUT + 1.5
            await ws.request("ping", "pong")  # the websocket itself stays open

            hole.thaw()
            await eventually(lambda: healthy(client))
            # The same nonce again: stored once, now; every pooled connection works.
            assert (await send(ws, "during", "n2"))["message"]["seq"] == 2
            for _ in range(15):
                response = await alice.get("/api/v1/rooms/general/messages")
                assert response.status_code == 200
            bodies = [m["body"] for m in (await response.get_json())["messages"]]
            assert bodies == ["before", "during"]


async def test_postgres_that_accepts_and_never_answers_at_start_serves_503s(
    tmp_path: Path, hole: BlackHole, schema: str  # noqa: F811 - the fixture
) -> None:
    hole.freeze()
    app = make_app(tmp_path, CHATAPP_DATABASE_URL=hole.url(schema),
                   CHATAPP_DATABASE_TIMEOUT=str(TIMEOUT))
    started = time.monotonic()
    async with app.test_app():
        assert time.monotonic() - started < WITHIN  # started, without its database
        assert hole.accepted >= 1  # it did reach the black hole
        client = app.test_client()
        status, body = await health(client)
        assert (status, body) == (503, {"status": "unavailable", "failing": ["storage"]})
        response = await client.get(
            "/api/v1/rooms", headers={"Authorization": "Bearer not-checkable-now"})
        assert response.status_code == 503

        hole.thaw()
        await eventually(lambda: healthy(client))
        alice, _ = await conftest.AuthActions(app).user("alice")
        async with connect(alice) as ws:
            assert (await send(ws, "hello", "n1"))["message"]["seq"] == 1
