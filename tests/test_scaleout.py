"""Several real Hypercorn processes sharing Redis and one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from . import pg
from .conftest import need_service, port_open
from .servers import Browser, Server, close_code, events_of, free_port

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


class Client:
    """A websocket that files every event it receives, for assertions later."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: Server, browser: Browser) -> Client:
        ws = await websockets.connect(
            server.ws_url, additional_headers={**browser.ws_headers(), "Origin": server.base}
        )
        client = cls(ws)
        await client.wait_for(lambda e: e["type"] == "hello")
        return client

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                self.events.extend(events_of(frame))
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, match: Any, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if match(event):
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching event in {timeout}s; got {self.events[-5:]}")

    def seqs(self, room: str = "general") -> list[int]:
        return [e["seq"] for e in self.events if e["type"] == "message" and e["room"] == room]

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


def shared_redis() -> str:
    if not port_open("127.0.0.1", 6379):
        need_service("Redis", "nothing listens on 127.0.0.1:6379")
    return f"redis://127.0.0.1:6379/0?prefix=t{secrets.token_hex(4)}"


@pytest.fixture
def database() -> Iterator[str]:
    reason = pg.unavailable_reason()
    if reason:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        yield url


def pair(tmp_path: Path, broker: str, database: str, **extra: str) -> tuple[Server, Server]:
    env = {"CHATAPP_BROKER_URL": broker, "CHATAPP_DATABASE_URL": database,
           "CHATAPP_SEND_RATE": "100000/1", **extra}
    first = Server(tmp_path / "a", env).start()
    try:
        second = Server(tmp_path / "b", env).start()
    except BaseException:
        first.kill()
        raise
    return first, second


async def alice_on_a_bob_on_b(a: Server, b: Server) -> tuple[Browser, Client, Browser, Client]:
    """Register alice on one process and bob on the other, each with an open socket."""
    alice, bob = Browser(a.base), Browser(b.base)
    assert alice.register("alice") == 303
    assert bob.register("bob") == 303
    return alice, await Client.open(a, alice), bob, await Client.open(b, bob)


async def test_two_processes_share_rooms_presence_typing_and_sessions(
    tmp_path: Path, database: str
) -> None:
    a, b = pair(tmp_path, shared_redis(), database)
    try:
        alice, on_a, bob, on_b = await alice_on_a_bob_on_b(a, b)
        # Presence crosses over.
        await on_a.wait_for(lambda e: e == {"type": "presence", "user": "bob", "online": True})
        # A message sent on one process reaches the other with its seq.
        await on_a.send({"type": "send", "room": "general", "body": "hi bob", "nonce": "n1"})
        ack = await on_a.wait_for(lambda e: e["type"] == "ack")
        got = await on_b.wait_for(lambda e: e["type"] == "message")
        assert got["seq"] == ack["message"]["seq"] == 1
        assert got["message"]["body"] == "hi bob"
        # Typing crosses over.
        await on_b.send({"type": "typing", "room": "general"})
        await on_a.wait_for(lambda e: e == {"type": "typing", "room": "general", "user": "bob"})
        # Alice's session cookie works on the other process too.
        alice_on_b = Browser(b.base)
        for cookie in alice.jar:
            alice_on_b.jar.set_cookie(cookie)
        status, _, body = alice_on_b.request("/api/v1/me")
        assert status == 200 and json.loads(body)["username"] == "alice"
        second_tab = await Client.open(b, alice_on_b)
        await second_tab.close()
        for client in (on_a, on_b):
            await client.close()
    finally:
        a.kill()
        b.kill()


async def test_account_changes_reach_the_other_process(tmp_path: Path, database: str) -> None:
    """A display name set on one process reaches sockets on the other as user_updated;
    "sign out everywhere else" on one process closes the session's socket on the other."""
    a, b = pair(tmp_path, shared_redis(), database)
    try:
        alice, on_a, bob, on_b = await alice_on_a_bob_on_b(a, b)
        status, _, _ = await asyncio.to_thread(alice.request, "/account/profile", form={
            "display_name": "Alice Liddell", "csrf_token": alice.csrf("/account")})
        assert status == 303
        got = await on_b.wait_for(lambda e: e["type"] == "user_updated")
        assert got["user"]["username"] == "alice"
        assert got["user"]["display_name"] == "Alice Liddell"
        # alice's second device, connected to process B, is signed out from A.
        phone = Browser(b.base)
        assert await asyncio.to_thread(phone.login, "alice") == 303
        ws = await websockets.connect(b.ws_url, additional_headers=phone.ws_headers())
        status, _, _ = await asyncio.to_thread(
            alice.request, "/account/sessions/revoke-others",
            form={"csrf_token": alice.csrf("/account")})
        assert status == 303
        assert await close_code(ws) == 1008
        assert (await asyncio.to_thread(phone.request, "/api/v1/me"))[0] == 401
        assert (await asyncio.to_thread(alice.request, "/api/v1/me"))[0] == 200
        for client in (on_a, on_b):
            await client.close()
    finally:
        a.kill()
        b.kill()


async def test_killed_process_users_go_offline_elsewhere(tmp_path: Path, database: str) -> None:
    # A 2 s heartbeat (keys live 6 s): the sweep comes within ~8 s, not the default's
    # ~20 s; the bound checked is still SPEC §6's 30 s.
    a, b = pair(tmp_path, shared_redis(), database, CHATAPP_REDIS_HEARTBEAT_SECONDS="2")
    try:
        alice, on_a, bob, on_b = await alice_on_a_bob_on_b(a, b)
        hello = await on_b.wait_for(lambda e: e["type"] == "hello")
        assert "alice" in hello["online"]
        killed_at = time.monotonic()
        a.kill()  # SIGKILL: no cleanup, no goodbye
        await on_b.wait_for(
            lambda e: e == {"type": "presence", "user": "alice", "online": False}, timeout=30
        )
        assert time.monotonic() - killed_at < 30
        status, _, body = bob.request("/api/v1/online")
        assert json.loads(body)["online"] == ["bob"]
        await on_b.close()
        on_a._task.cancel()
    finally:
        a.kill()
        b.kill()


class PrivateRedis:
    """A redis-server of our own, so the test may kill and restart it."""

    def __init__(self, data_dir: Path) -> None:
        if shutil.which("redis-server") is None:
            need_service("redis-server", "the binary is not installed")
        self.port = free_port()
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


async def test_redis_restart_mid_stream_loses_nothing(tmp_path: Path, database: str) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    a, b = pair(tmp_path, redis.url, database)
    try:
        alice, bob = Browser(a.base), Browser(b.base)
        assert alice.register("alice") == 303
        assert bob.register("bob") == 303
        sender = await Client.open(a, alice)
        watchers = [sender, await Client.open(b, bob), await Client.open(a, bob)]
        total = 300
        for number in range(total):
            if number == 100:
                redis.kill()
            if number == 200:
                redis.start()
            await sender.send({"type": "send", "room": "general", "body": f"m{number}",
                               "nonce": f"n{number}"})
            await asyncio.sleep(0.01)
        acked = await _acked_seqs(sender, total)
        assert acked == set(range(1, total + 1))
        deadline = time.monotonic() + 30
        for watcher in watchers:
            while set(watcher.seqs()) != acked and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            missing = acked - set(watcher.seqs())
            assert not missing, f"{len(missing)} acknowledged messages never arrived"
        for watcher in watchers:
            await watcher.close()
    finally:
        a.kill()
        b.kill()
        redis.kill()


async def _acked_seqs(client: Client, total: int, timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acks = {e["message"]["seq"] for e in client.events if e["type"] == "ack"}
        if len(acks) >= total:
            return acks
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(acks)} of {total} sends were acknowledged")
