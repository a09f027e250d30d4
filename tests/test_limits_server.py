"""Per-user limits on real servers: one process, and two processes sharing Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from .conftest import need_service, port_open
from .servers import Browser, Server, events_of

pytestmark = [pytest.mark.slow]


def redis_broker() -> str:
    if not port_open("127.0.0.1", 6379):
        need_service("Redis", "nothing listens on 127.0.0.1:6379")
    return f"redis://127.0.0.1:6379/0?prefix=test-limits-{secrets.token_hex(6)}"


StartServers = Callable[..., list[Server]]


@pytest.fixture(params=["one process", "two processes on Redis"])
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServers]:
    """Start one server on the embedded defaults, or two sharing Redis and one SQLite
    file; keyword arguments are extra environment for them."""
    started: list[Server] = []

    def start_servers(**extra: str) -> list[Server]:
        env = {"CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}", **extra}
        names = ["a"]
        if request.param != "one process":
            env["CHATAPP_BROKER_URL"] = redis_broker()
            names.append("b")
        for name in names:
            started.append(Server(tmp_path / name, env).start())
        return started

    try:
        yield start_servers
    finally:
        for server in started:
            server.kill()


class Socket:
    """A websocket that files the events it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: Server, browser: Browser) -> Socket:
        ws = await websockets.connect(server.ws_url, additional_headers=browser.ws_headers(),
                                      open_timeout=20)
        socket = cls(ws)
        await socket.wait_for("hello")
        return socket

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                self.events.extend(events_of(frame))
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event["type"] == kind:
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} in {timeout}s; got {self.events[-5:]}")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


async def refused_status(server: Server, browser: Browser) -> int | None:
    """The HTTP status a refused handshake got, or None if it was accepted."""
    try:
        socket = await Socket.open(server, browser)
    except websockets.InvalidStatus as error:
        return int(error.response.status_code)
    await socket.close()
    return None


def logged_in(server: Server, name: str = "alice") -> Browser:
    browser = Browser(server.base)
    assert browser.register(name) == 303
    return browser


def same_user_on(server: Server, browser: Browser) -> Browser:
    """The same session cookie against another process."""
    other = Browser(server.base)
    for cookie in browser.jar:
        other.jar.set_cookie(cookie)
    return other


# websockets per user ------------------------------------------------------------------

async def test_21st_websocket_of_a_user_is_refused_with_429(start: StartServers) -> None:
    servers = start()
    first, last = servers[0], servers[-1]
    alice = logged_in(first)
    on_last = same_user_on(last, alice)
    sockets = []
    try:
        for i in range(20):  # the default CHATAPP_MAX_CONNECTIONS_PER_USER, spread out
            server, browser = (first, alice) if i % 2 == 0 else (last, on_last)
            sockets.append(await Socket.open(server, browser))
        assert await refused_status(first, alice) == 429
        assert await refused_status(last, on_last) == 429
        # Another user is not affected.
        assert await refused_status(last, logged_in(last, "bob")) is None
        # Closing one (on the other process, if there is one) frees a slot everywhere.
        await sockets.pop().close()
        for _ in range(100):  # until the server has seen the close
            if (status := await refused_status(first, alice)) is None:
                break
            assert status == 429
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a closed websocket's slot was never given back")
    finally:
        for socket in sockets:
            await socket.close()


async def test_a_killed_process_connections_stop_counting(tmp_path: Path) -> None:
    env = {"CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
           "CHATAPP_BROKER_URL": redis_broker(), "CHATAPP_MAX_CONNECTIONS_PER_USER": "3",
           "CHATAPP_REDIS_HEARTBEAT_SECONDS": "2"}  # slots live 6 s, not the default 15 s
    a = Server(tmp_path / "a", env).start()
    b = Server(tmp_path / "b", env).start()
    try:
        alice = logged_in(a)
        on_b = same_user_on(b, alice)
        kept = await Socket.open(a, alice)
        doomed = [await Socket.open(b, on_b) for _ in range(2)]
        assert await refused_status(a, alice) == 429
        b.kill()  # SIGKILL: no goodbye, its slots stay in Redis until they expire
        for socket in doomed:
            socket._task.cancel()
        deadline = time.monotonic() + 60  # slots live 6 s without a heartbeat
        while (status := await refused_status(a, alice)) is not None:
            assert status == 429
            assert time.monotonic() < deadline, "a killed process's websockets count forever"
            await asyncio.sleep(0.5)
        await kept.close()
    finally:
        a.kill()
        b.kill()


# sends per user -----------------------------------------------------------------------

async def test_50_connections_of_one_user_store_only_20_sends(start: StartServers) -> None:
    servers = start(CHATAPP_MAX_CONNECTIONS_PER_USER="50", CHATAPP_SEND_RATE="20/10")
    alice = logged_in(servers[0])
    browsers = [alice] + [same_user_on(s, alice) for s in servers[1:]]
    sockets = [await Socket.open(servers[i % len(servers)], browsers[i % len(servers)])
               for i in range(50)]
    try:
        async def burst(n: int, socket: Socket) -> None:
            for i in range(20):
                await socket.ws.send(json.dumps({"type": "send", "room": "general",
                                                 "body": f"c{n} m{i}", "nonce": f"{n}-{i}"}))
            await socket.ws.send(json.dumps({"type": "ping", "ref": "done"}))
            await socket.wait_for("pong", timeout=60)  # every send before it is answered

        await asyncio.gather(*(burst(n, s) for n, s in enumerate(sockets)))
        acks = [e for s in sockets for e in s.of_type("ack")]
        errors = [e for s in sockets for e in s.of_type("error")]
        assert len(acks) == 20
        assert len(errors) == 980
        assert all(e["code"] == "rate_limited" and 0 < e["retry_after"] <= 10.1
                   for e in errors)
        status, _, body = alice.request("/api/v1/rooms/general/messages?limit=200")
        assert status == 200
        assert len(json.loads(body)["messages"]) == 20
    finally:
        for socket in sockets:
            await socket.close()


# the JSON API, logins and rooms across processes ---------------------------------------

def post(browser: Browser, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    token = browser.csrf("/")
    status, headers, text = browser.request(path, body=body, headers={"X-CSRF-Token": token})
    return status, lower(headers), json.loads(text)


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


async def test_api_rate_is_one_budget_per_user_across_processes(start: StartServers) -> None:
    servers = start(CHATAPP_API_RATE="6/60")
    alice = logged_in(servers[0])
    browsers = [alice] + [same_user_on(s, alice) for s in servers[1:]]
    statuses = [post(browsers[i % len(browsers)], "/api/v1/rooms/general/messages",
                     {"body": f"m{i}"})[0] for i in range(6)]
    assert statuses == [201] * 6
    for browser in browsers:
        status, headers, body = post(browser, "/api/v1/rooms/general/messages", {"body": "x"})
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert 1 <= int(headers["retry-after"]) <= 60
    bob = logged_in(servers[-1], "bob")
    assert post(bob, "/api/v1/rooms/general/messages", {"body": "mine"})[0] == 201


async def test_login_throttle_counts_failures_on_every_process(start: StartServers) -> None:
    servers = start()
    assert logged_in(servers[0]).request("/")[0] == 200
    for i in range(5):
        browser = Browser(servers[i % len(servers)].base)
        assert browser.login("alice", "wrong password") == 401
    for server in servers:
        browser = Browser(server.base)
        token = browser.csrf("/login")
        status, headers, _ = browser.request("/login", form={
            "username": "alice", "password": "correct horse battery", "csrf_token": token})
        headers = lower(headers)
        assert status == 429
        assert 1 <= int(headers["retry-after"]) <= 15 * 60


async def test_room_creation_is_limited_per_user_across_processes(start: StartServers) -> None:
    servers = start()
    alice = logged_in(servers[0])
    browsers = [alice] + [same_user_on(s, alice) for s in servers[1:]]
    for i in range(10):
        status, _, _ = post(browsers[i % len(browsers)], "/api/v1/rooms",
                            {"name": f"room {i}", "kind": "public"})
        assert status == 201, i
    for browser in browsers:
        status, headers, body = post(browser, "/api/v1/rooms", {"name": "one more",
                                                               "kind": "public"})
        assert status == 429
        assert body["error"] == {"status": 429, "code": "rate_limited",
                                 "message": "too many new rooms; try again later"}
        assert 1 <= int(headers["retry-after"]) <= 600
    bob = logged_in(servers[-1], "bob")
    assert post(bob, "/api/v1/rooms", {"name": "bobs", "kind": "public"})[0] == 201


# Redis going away ----------------------------------------------------------------------

async def test_limits_fail_open_per_process_while_redis_is_away(tmp_path: Path) -> None:
    from .test_scaleout import PrivateRedis

    redis = PrivateRedis(tmp_path / "redis").start()
    env = {"CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
           "CHATAPP_BROKER_URL": redis.url, "CHATAPP_MAX_CONNECTIONS_PER_USER": "2",
           "CHATAPP_SEND_RATE": "3/60"}
    server = Server(tmp_path / "a", env).start()
    try:
        alice = logged_in(server)
        redis.kill()
        # Every limit still answers, from this process's own counts; nothing is a 500.
        status, headers, _ = post(alice, "/api/v1/rooms", {"name": "outage", "kind": "public"})
        assert status == 201
        first = await Socket.open(server, alice)
        second = await Socket.open(server, alice)
        assert await refused_status(server, alice) == 429
        for i in range(4):
            await first.ws.send(json.dumps({"type": "send", "room": "general",
                                            "body": f"m{i}", "nonce": f"n{i}"}))
        await first.ws.send(json.dumps({"type": "ping"}))
        await first.wait_for("pong")  # every send before it is answered
        [error] = first.of_type("error")
        assert error["code"] == "rate_limited" and error["nonce"] == "n3"
        assert sorted(a["nonce"] for a in first.of_type("ack")) == ["n0", "n1", "n2"]
        assert "Redis unreachable for limits" in server.output()
        for socket in (first, second):
            await socket.close()
    finally:
        server.kill()
        redis.kill()


async def test_typing_is_relayed_once_per_2s_across_processes(tmp_path: Path) -> None:
    env = {"CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
           "CHATAPP_BROKER_URL": redis_broker()}
    a = Server(tmp_path / "a", env).start()
    b = Server(tmp_path / "b", env).start()
    try:
        alice = logged_in(a)
        bob = await Socket.open(a, logged_in(a, "bob"))
        on_a, on_b = await Socket.open(a, alice), await Socket.open(b, same_user_on(b, alice))
        # Two tabs on two processes, at once (well within the 2 s).
        await on_a.ws.send(json.dumps({"type": "typing", "room": "general"}))
        await on_b.ws.send(json.dumps({"type": "typing", "room": "general"}))
        # A message published after each, on the same room from the same process: once
        # bob has both, a second typing would have arrived too.
        await on_b.ws.send(json.dumps({"type": "send", "room": "general", "body": "hi",
                                       "nonce": "after-typing"}))
        await on_a.ws.send(json.dumps({"type": "send", "room": "general", "body": "hi",
                                       "nonce": "after-typing-a"}))
        deadline = time.monotonic() + 30
        while len(bob.of_type("message")) < 2:
            assert time.monotonic() < deadline, f"bob got {bob.events}"
            await asyncio.sleep(0.02)
        assert len(bob.of_type("typing")) == 1
        for socket in (bob, on_a, on_b):
            await socket.close()
    finally:
        a.kill()
        b.kill()
