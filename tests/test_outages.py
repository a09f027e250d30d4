"""Through outages (SPEC §7, §8): Redis or PostgreSQL away at start or mid-stream.

Nothing here touches the shared Redis or PostgreSQL: Redis outages use a redis-server
of the test's own (``PrivateRedis``), PostgreSQL outages a TCP gate in front of the
shared server that the test opens and closes (closing it also cuts every connection
through it, as a restart would).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from chatapp import create_app
from chatapp.storage import StorageUnavailable
from chatapp.storage.sqlite import SQLiteStorage

from . import conftest, pg
from .conftest import need_service, port_open
from .hashing import cheap_passwords
from .servers import HYPERCORN, ROOT, Browser, Server, events_of, free_port
from .wsutil import WS, connect

GENERAL = "general"
WAIT = 30.0  # seconds a recovery may take at most on a busy machine (only failures wait)


async def eventually(check: Any, timeout: float = WAIT, every: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {check}")
        await asyncio.sleep(every)


# -- a Redis and a PostgreSQL the test may take away ------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free port, so the test may kill and restart it."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            need_service("redis-server", "the binary is not installed")
        self.port = port or free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Gate:
    """A TCP forwarder on a free port to a real server, opened and closed by the test.

    Closed, its port refuses connections (the server is down); ``close`` also aborts
    every connection through it (the server went away mid-stream).
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._links):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _passing(self) -> None:
        """Waited on before anything passes (a new connection, each read and write): a
        subclass holds traffic here (``test_pg_hang.BlackHole``)."""

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.add(writer)
        await self._passing()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._links.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await self._passing()
                    data = await src.read(65536)
                    await self._passing()  # what was read just before a hold waits
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()
                self._links.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def postgres_port() -> int:
    reason = pg.unavailable_reason()
    if reason:
        need_service("PostgreSQL", reason)
    return int(pg.BASE_URL.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema name on the shared PostgreSQL, dropped afterwards."""
    postgres_port()
    name = pg.new_schema()
    try:
        yield name
    finally:
        pg.drop_schema_sync(name)


def gated_url(gate: Gate, schema: str) -> str:
    """The test database's URL, reached through ``gate``."""
    base = pg.BASE_URL.replace(f":{gate.target_port}/", f":{gate.port}/")
    return pg.schema_url(schema, base)


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    gate = Gate(postgres_port())
    try:
        yield gate
    finally:
        await gate.close()


# -- apps and clients -------------------------------------------------------------------


def make_app(tmp_path: Path, **overrides: Any) -> Quart:
    app = create_app(conftest.test_config(tmp_path, **overrides))
    cheap_passwords(app)
    return app


async def health(client: Any) -> tuple[int, dict[str, Any]]:
    response = await client.get("/healthz")
    return response.status_code, await response.get_json()


async def healthy(client: Any) -> bool:
    return (await health(client))[0] == 200


async def send(ws: WS, body: str, nonce: str) -> dict[str, Any]:
    await ws.send("send", room=GENERAL, body=body, nonce=nonce)
    return await ws.expect("ack", nonce=nonce)


# -- 1. Redis unreachable at start ------------------------------------------------------


async def test_redis_down_at_start_serves_then_recovers(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis")  # not started: its port refuses
    app = make_app(tmp_path, CHATAPP_BROKER_URL=redis.url)
    try:
        async with app.test_app():
            client = app.test_client()
            status, body = await health(client)
            assert (status, body) == (503, {"status": "unavailable", "failing": ["broker"]})
            # Pages, the API and websockets on this process work meanwhile.
            auth = conftest.AuthActions(app)
            alice, csrf = await auth.user("alice")
            assert (await alice.get("/")).status_code == 200
            async with connect(alice) as ws, connect(alice) as other_tab:
                ack = await send(ws, "hello while Redis is away", "n1")
                assert ack["message"]["seq"] == 1
                got = await other_tab.expect("message")
                assert got["message"]["body"] == "hello while Redis is away"
                response = await alice.post(
                    "/api/v1/rooms/general/messages", json={"body": "via the API"},
                    headers={"X-CSRF-Token": csrf})
                assert response.status_code == 201
                assert (await other_tab.expect("message"))["seq"] == 2

                redis.start()
                await eventually(lambda: healthy(client))
                # Presence and fan-out run through Redis again.
                assert (await alice.get("/api/v1/online")).status_code == 200
                await eventually(lambda: _online(alice, "alice"))
                ack = await send(ws, "Redis is back", "n3")
                assert ack["message"]["seq"] == 3
                assert (await other_tab.expect("message", seq=3))["message"]["body"] == (
                    "Redis is back")
    finally:
        redis.kill()


async def _online(client: Any, username: str) -> bool:
    response = await client.get("/api/v1/online")
    return username in (await response.get_json())["online"]


async def test_catch_up_after_a_reconnect_retries_from_the_same_seqs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis came back but the database is away: the catch-up is retried, from the
    seqs of the reconnect, not from what live events delivered since."""
    from chatapp.broker import hub as hub_module
    from chatapp.broker.hub import Hub
    from chatapp.broker.memory import MemoryTransport
    from chatapp.channels import room_channel
    from chatapp.sendqueue import SendQueue

    monkeypatch.setattr(hub_module, "CATCH_UP_RETRY", 0.01)
    hub = Hub(MemoryTransport())
    await hub.start()
    channel = room_channel(GENERAL)
    calls: list[dict[str, int]] = []

    async def catch_up(rooms: dict[str, int]) -> None:
        calls.append(dict(rooms))
        if len(calls) < 3:
            raise StorageUnavailable("still away")

    hub.catch_up = catch_up
    try:
        await hub.add(SendQueue(), channel)
        hub.note_seq(channel, 10)
        await hub._reconnected()
        hub.note_seq(channel, 16)  # a live event after the reconnect
        await eventually(lambda: len(calls) == 3, timeout=10)
        await asyncio.sleep(0.05)
        assert calls == [{channel: 10}] * 3
    finally:
        await hub.stop()


# -- 2. two processes through a Redis blip ----------------------------------------------


class Client:
    """A real websocket (``websockets``) that files every event it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: Server, browser: Browser) -> Client:
        import websockets

        ws = await websockets.connect(
            server.ws_url, additional_headers={**browser.ws_headers(), "Origin": server.base}
        )
        client = cls(ws)
        await client.wait_for(lambda e: e["type"] == "hello")
        return client

    async def _read(self) -> None:
        import websockets

        try:
            async for frame in self.ws:
                self.events.extend(events_of(frame))
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, match: Any, timeout: float = WAIT) -> dict[str, Any]:
        return await eventually(lambda: next((e for e in self.events if match(e)), None),
                                timeout, every=0.02)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    def room_events(self) -> list[tuple[int, int]]:
        """(seq, message id) of every message event, live or inside a ``synced``."""
        found = []
        for event in self.events:
            if event["type"] == "message" and event["room"] == GENERAL:
                found.append((event["seq"], event["message"]["id"]))
            elif event["type"] == "synced" and event["room"] == GENERAL:
                found += [(e["seq"], e["message"]["id"]) for e in event["events"]
                          if e["type"] == "message"]
        return found

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


class Process(Server):
    """A real Hypercorn process that may start while a service is away."""

    def launch(self) -> Process:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [*HYPERCORN, "--config", str(self.config_file), "--bind",
             f"127.0.0.1:{self.port}", "chatapp.asgi:app"],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def health(self) -> tuple[int, dict[str, Any]] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"server exited:\n{self.output()}")
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None  # not listening yet


async def health_is(process: Process, status: int, timeout: float = WAIT) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = process.health()
        return found[1] if found is not None and found[0] == status else None

    return await eventually(check, timeout)  # type: ignore[no-any-return]


def online(browser: Browser) -> list[str]:
    status, _, body = browser.request("/api/v1/online")
    assert status == 200, body
    return list(json.loads(body)["online"])


@pytest.fixture
def database(schema: str) -> str:
    return pg.schema_url(schema)


def processes(tmp_path: Path, broker: str, database: str) -> tuple[Process, Process]:
    env = {"CHATAPP_BROKER_URL": broker, "CHATAPP_DATABASE_URL": database,
           "CHATAPP_SEND_RATE": "100000/1"}
    return Process(tmp_path / "a", dict(env)), Process(tmp_path / "b", dict(env))


@pytest.mark.slow
async def test_websockets_on_two_processes_lose_nothing_through_a_redis_restart(
    tmp_path: Path, database: str
) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    a, b = processes(tmp_path, redis.url, database)
    try:
        a.start()
        b.start()
        alice, bob = Browser(a.base), Browser(b.base)
        assert alice.register("alice") == 303
        bob_on_a = Browser(a.base)
        assert bob.register("bob") == 303
        assert bob_on_a.login("bob") == 303
        senders = [await Client.open(a, alice), await Client.open(b, bob)]
        clients = [*senders, await Client.open(b, bob), await Client.open(a, bob_on_a)]
        total = 240
        for number in range(total):
            if number == 80:
                redis.kill()
            if number == 160:
                redis.start()
                # Redis took presence with it: both processes must be back on it
                # before the last third, so those messages go through Redis again.
                await health_is(a, 200)
                await health_is(b, 200)
                # Presence too: each process's heartbeat puts its users back.
                for browser in (alice, bob):
                    await eventually(lambda who=browser: online(who) == ["alice", "bob"])
            await senders[number % 2].send(
                {"type": "send", "room": GENERAL, "body": f"m{number}", "nonce": f"n{number}"})
            await asyncio.sleep(0.01)

        def acks() -> set[int]:
            return {e["message"]["seq"] for s in senders for e in s.events if e["type"] == "ack"}

        await eventually(lambda: len(acks()) == total)
        acked = acks()
        assert acked == set(range(1, total + 1))  # one seq per message, no gap

        # Live delivery alone (with the catch-up after the reconnect) brings every
        # acknowledged message to every client.
        for client in clients:
            await eventually(lambda c=client: {seq for seq, _ in c.room_events()} >= acked)
        # A client then syncs from the last seq it holds: nothing new, nothing twice.
        for client in clients:
            last = max(seq for seq, _ in client.room_events())
            await client.send({"type": "sync", "room": GENERAL, "after": last, "ref": "s"})
            synced = await client.wait_for(lambda e: e["type"] == "synced")
            assert synced["events"] == [] and synced["last_seq"] == total
            assert synced["recovered"] is True
        # One message per seq everywhere: de-duplicating by seq leaves each exactly once.
        ids_of_seq: dict[int, set[int]] = {}
        for client in clients:
            for seq, message_id in client.room_events():
                ids_of_seq.setdefault(seq, set()).add(message_id)
        assert sorted(ids_of_seq) == list(range(1, total + 1))
        assert all(len(ids) == 1 for ids in ids_of_seq.values())
        assert len({next(iter(ids)) for ids in ids_of_seq.values()}) == total
        # A client that missed everything gets each event exactly once from sync.
        await clients[2].send({"type": "sync", "room": GENERAL, "after": 0, "ref": "all"})
        full = await clients[2].wait_for(lambda e: e["type"] == "synced" and e["ref"] == "all")
        assert [e["seq"] for e in full["events"]] == list(range(1, total + 1))
        for client in clients:
            await client.close()
    finally:
        a.kill()
        b.kill()
        redis.kill()


@pytest.mark.slow
async def test_two_processes_started_without_redis_work_once_it_comes(
    tmp_path: Path, database: str
) -> None:
    redis = PrivateRedis(tmp_path / "redis")  # not running yet
    a, b = processes(tmp_path, redis.url, database)
    try:
        a.launch()
        b.launch()
        assert await health_is(a, 503) == {"status": "unavailable", "failing": ["broker"]}
        assert await health_is(b, 503) == {"status": "unavailable", "failing": ["broker"]}
        redis.start()
        await health_is(a, 200)
        await health_is(b, 200)
        alice, bob = Browser(a.base), Browser(b.base)
        assert alice.register("alice") == 303
        assert bob.register("bob") == 303
        on_a, on_b = await Client.open(a, alice), await Client.open(b, bob)
        await on_a.wait_for(lambda e: e == {"type": "presence", "user": "bob", "online": True})
        await on_a.send({"type": "send", "room": GENERAL, "body": "across", "nonce": "x"})
        got = await on_b.wait_for(lambda e: e["type"] == "message")
        assert got["message"]["body"] == "across" and got["seq"] == 1
        await on_b.send({"type": "send", "room": GENERAL, "body": "and back", "nonce": "y"})
        back = await on_a.wait_for(lambda e: e["type"] == "message" and e["seq"] == 2)
        assert back["message"]["body"] == "and back"
        for client in (on_a, on_b):
            await client.close()
    finally:
        a.kill()
        b.kill()
        redis.kill()


# -- 3. PostgreSQL unreachable at start, 6. and going away mid-run ----------------------


async def test_postgres_down_at_start_serves_503s_then_connects(
    tmp_path: Path, gate: Gate, schema: str
) -> None:
    app = make_app(tmp_path, CHATAPP_DATABASE_URL=gated_url(gate, schema))
    async with app.test_app():  # the gate is closed: nothing answers on its port
        client = app.test_client()
        status, body = await health(client)
        assert (status, body) == (503, {"status": "unavailable", "failing": ["storage"]})
        auth = conftest.AuthActions(app)
        # A page that needs the database: the error page, 503, not a 500.
        response = await auth.register(client, "alice")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert "unavailable" in await response.get_data(as_text=True)
        # The API: the JSON error body.
        response = await client.get(
            "/api/v1/rooms", headers={"Authorization": "Bearer not-checkable-now"})
        assert response.status_code == 503
        assert (await response.get_json())["error"]["code"] == "unavailable"

        await gate.open()
        await eventually(lambda: healthy(client))
        alice, csrf = await auth.user("alice")
        response = await alice.get("/api/v1/rooms")
        assert response.status_code == 200
        assert [r["slug"] for r in (await response.get_json())["rooms"]] == [GENERAL]


async def test_postgres_going_away_mid_run_answers_503_and_unavailable(
    tmp_path: Path, gate: Gate, schema: str
) -> None:
    await gate.open()
    app = make_app(tmp_path, CHATAPP_DATABASE_URL=gated_url(gate, schema))
    async with app.test_app():
        client = app.test_client()
        assert await healthy(client)
        auth = conftest.AuthActions(app)
        alice, csrf = await auth.user("alice")
        async with connect(alice) as ws:
            assert (await send(ws, "before", "n1"))["message"]["seq"] == 1

            await gate.close()  # every pooled connection is cut, new ones refused
            status, body = await health(client)
            assert (status, body) == (503, {"status": "unavailable", "failing": ["storage"]})
            response = await alice.get("/api/v1/rooms")
            assert response.status_code == 503
            error = (await response.get_json())["error"]
            assert (error["status"], error["code"]) == (503, "unavailable")
            assert (await alice.get("/")).status_code == 503
            # The websocket stays open: the send gets an error naming its nonce.
            await ws.send("send", room=GENERAL, body="during", nonce="n2")
            failed = await ws.expect("error", nonce="n2")
            assert failed["code"] == "unavailable" and failed["retry_after"] > 0
            await ws.request("ping", "pong")

            await gate.open()
            await eventually(lambda: healthy(client))
            # The same nonce again: stored once, now.
            assert (await send(ws, "during", "n2"))["message"]["seq"] == 2
            response = await alice.get("/api/v1/rooms/general/messages")
            bodies = [m["body"] for m in (await response.get_json())["messages"]]
            assert bodies == ["before", "during"]


async def test_websocket_handshake_while_postgres_is_away_is_503(
    tmp_path: Path, gate: Gate, schema: str
) -> None:
    await gate.open()
    app = make_app(tmp_path, CHATAPP_DATABASE_URL=gated_url(gate, schema))
    async with app.test_app():
        alice, _ = await conftest.AuthActions(app).user("alice")
        await gate.close()
        with pytest.raises(Exception) as refused:
            async with connect(alice):
                pass
        assert "503" in repr(refused.value)


async def test_websocket_losing_storage_during_setup_closes_1013(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    async with app.test_app():
        alice, _ = await conftest.AuthActions(app).user("alice")
        storage = app.extensions["chatapp"].storage

        async def away(*_: Any) -> Any:
            raise StorageUnavailable("gone between the handshake and the hello")

        monkeypatch.setattr(storage, "rooms_of", away)
        async with alice.websocket("/ws") as conn:
            ws = WS(conn)
            assert await ws.closed() == 1013  # "try again later": reconnect and sync
        assert app.extensions["chatapp"].metrics.slow_consumer_closes._value.get() == 0


async def test_sqlite_driver_errors_surface_as_storage_errors(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    storage = SQLiteStorage(str(tmp_path / "a-directory.db"))
    with pytest.raises(StorageUnavailable):
        await storage.connect()
    storage = SQLiteStorage(str(tmp_path / "ok.db"))
    with pytest.raises(StorageUnavailable):
        await storage.ping()  # not connected yet
    await storage.connect()
    await storage.ping()
    await storage.close()


async def test_sqlite_unopenable_at_start_serves_503(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    app = make_app(tmp_path, CHATAPP_DATABASE_URL=f"sqlite:///{tmp_path / 'a-directory.db'}")
    async with app.test_app():
        client = app.test_client()
        assert await health(client) == (
            503, {"status": "unavailable", "failing": ["storage"]})
        response = await conftest.AuthActions(app).register(client, "alice")
        assert response.status_code == 503


# -- 4. /healthz during a graceful shutdown ---------------------------------------------


async def test_healthz_is_503_once_a_graceful_shutdown_begins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hypercorn hands its workers this event and sets it on SIGTERM (see
    # chatapp/server/shutdown.py); here the test plays Hypercorn's part.
    from chatapp.server import shutdown

    event = multiprocessing.get_context("spawn").Event()
    monkeypatch.setattr(multiprocessing.current_process(), "_kwargs",
                        {"shutdown_event": event}, raising=False)
    monkeypatch.setattr(shutdown, "_installed", True, raising=False)
    app = make_app(tmp_path)
    async with app.test_app():
        client = app.test_client()
        assert await health(client) == (200, {"status": "ok"})
        event.set()

        async def draining() -> bool:
            return (await health(client)) == (
                503, {"status": "unavailable", "failing": [], "shutting_down": True})

        await eventually(draining, timeout=10)


# -- 5. the memory broker on PostgreSQL serves one process -------------------------------


@pytest.mark.slow
async def test_memory_broker_refuses_a_second_process_on_one_postgres_database(
    tmp_path: Path, database: str
) -> None:
    env = {"CHATAPP_BROKER_URL": "memory://", "CHATAPP_DATABASE_URL": database}
    first = Process(tmp_path / "a", dict(env))
    second = Process(tmp_path / "b", dict(env))
    try:
        first.start()
        second.launch()
        assert second.process is not None
        second.process.wait(30)  # exits (Hypercorn's parent says 0 even so)
        assert "another chatapp process already serves this database" in second.output()
        assert first.health() == (200, {"status": "ok"})
    finally:
        first.kill()
        second.kill()
    # Once the first is gone (killed: its session, and the lock, end with it), a new
    # process may serve the database.
    third = Process(tmp_path / "c", dict(env))
    try:
        third.start()
    finally:
        third.kill()
