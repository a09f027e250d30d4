"""One contract for every broker transport (memory, Redis), plus the hub above it.

Presence, which the transport no longer keeps, has its own contract
(``test_presence_contract.py``).

Redis tests use a unique key/channel prefix each, so they can share a server with
other runs; tests that stop Redis start a private ``redis-server`` of their own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from chatapp.broker import BrokerError, Transport, open_transport
from chatapp.broker.hub import Hub
from chatapp.channels import PRESENCE_CHANNEL
from chatapp.events import Event, encode
from chatapp.sendqueue import SendQueue

from .conftest import need_service, port_open

REDIS_URL = os.environ.get("CHATAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FAST = {"backoff_max": 0.5}  # reconnect quickly in tests


class Recorder:
    """A transport's receiver and reconnect callback, remembering what it saw."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.reconnects = 0

    def receive(self, channel: str, payload: str) -> None:
        self.events.append((channel, payload))

    async def reconnected(self) -> None:
        self.reconnects += 1

    def on(self, channel: str) -> list[str]:
        return [payload for c, payload in self.events if c == channel]


async def eventually(check: Callable[[], Any], within: float = 5.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(0.02)


def require_redis(url: str = REDIS_URL) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 6379):
        need_service("Redis", f"no server at {parts.hostname}:{parts.port or 6379}")


def with_prefix(url: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}prefix=test-{uuid.uuid4().hex[:12]}"


Factory = Callable[..., Awaitable[tuple[Transport, Recorder]]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_redis()
    return str(request.param)


@pytest.fixture
async def connect(kind: str) -> AsyncIterator[Factory]:
    """Connect transports ("workers") of the backend; Redis ones share one prefix."""
    url = "memory://" if kind == "memory" else with_prefix(REDIS_URL)
    opened: list[Transport] = []

    async def factory(start: bool = True, **options: Any) -> tuple[Transport, Recorder]:
        transport: Transport
        if kind == "memory":
            transport = open_transport(url)
        else:
            from chatapp.broker.redis import RedisTransport

            transport = RedisTransport(url, **options)
        recorder = Recorder()
        opened.append(transport)
        if start:
            await transport.connect(recorder.receive, recorder.reconnected)
        return transport, recorder

    yield factory
    for transport in opened:
        await transport.close()
    if kind == "redis":
        await delete_prefix(url)


async def delete_prefix(url: str) -> None:
    import redis.asyncio as aioredis

    from chatapp.broker.redis import redis_target

    url, prefix = redis_target(url)
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# -- the contract ------------------------------------------------------------------


async def test_publish_reaches_subscriber_in_order(connect: Factory) -> None:
    transport, seen = await connect()
    await transport.subscribe("room:a")
    for n in range(200):
        await transport.publish("room:a", f'{{"n":{n}}}')
    await eventually(lambda: len(seen.events) >= 200, what="200 events")
    assert seen.events == [("room:a", f'{{"n":{n}}}') for n in range(200)]


async def test_only_subscribed_channels_are_delivered(connect: Factory) -> None:
    transport, seen = await connect()
    await transport.subscribe("room:a")
    await transport.subscribe("room:b")
    await transport.unsubscribe("room:a")
    await transport.publish("room:a", "lost")
    await transport.publish("room:c", "never subscribed")
    await transport.publish("room:b", "kept")
    await eventually(lambda: seen.on("room:b"), what="room:b event")
    await asyncio.sleep(0.05)
    assert seen.events == [("room:b", "kept")]


async def test_resubscribe_after_unsubscribe(connect: Factory) -> None:
    transport, seen = await connect()
    await transport.subscribe("room:a")
    await transport.unsubscribe("room:a")
    await transport.subscribe("room:a")
    await transport.publish("room:a", "again")
    await eventually(lambda: seen.events == [("room:a", "again")], what="delivery")


async def test_ping_answers_until_closed(connect: Factory) -> None:
    transport, _ = await connect()
    await transport.ping()
    await transport.close()
    with pytest.raises(BrokerError):
        await transport.ping()
    with pytest.raises(BrokerError):
        await transport.publish("room:a", "closed")


# -- Redis across workers ------------------------------------------------------------


@pytest.fixture
async def workers() -> AsyncIterator[Factory]:
    """Several RedisTransports on one prefix: the workers of one deployment."""
    require_redis()
    from chatapp.broker.redis import RedisTransport

    url = with_prefix(REDIS_URL)
    opened: list[RedisTransport] = []

    async def factory(**options: Any) -> tuple[RedisTransport, Recorder]:
        transport = RedisTransport(url, **{**FAST, **options})
        recorder = Recorder()
        await transport.connect(recorder.receive, recorder.reconnected)
        opened.append(transport)
        return transport, recorder

    yield factory
    for transport in opened:
        await transport.close()
    await delete_prefix(url)


@pytest.mark.redis
async def test_events_cross_workers(workers: Factory) -> None:
    one, _ = await workers()
    two, seen = await workers()
    await two.subscribe("room:a")
    await two.subscribe("user:7")
    await one.publish("room:a", '{"type":"typing","room":"a","user":"alice"}')
    await one.publish("user:7", '{"type":"_read","room":"a","seq":3}')
    await eventually(lambda: len(seen.events) == 2, what="both events")
    assert [c for c, _ in seen.events] == ["room:a", "user:7"]


async def subscriber_id(transport: Any) -> str:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for entry in await client.client_list(_type="pubsub"):
            if entry.get("name") == transport.subscriber_name:
                return str(entry["id"])
        raise AssertionError("no pub/sub connection named " + transport.subscriber_name)
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_killed_subscriber_connection_resubscribes_and_catches_up(
    workers: Factory,
) -> None:
    import redis.asyncio as aioredis

    listener, seen = await workers()
    publisher, _ = await workers()
    await listener.subscribe("room:a")
    await listener.subscribe("room:b")
    await listener.unsubscribe("room:b")
    old = await subscriber_id(listener)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.client_kill_filter(_id=old)
    finally:
        await client.aclose()
    await eventually(lambda: seen.reconnects == 1, what="reconnected() awaited")
    assert await subscriber_id(listener) != old
    await publisher.publish("room:b", "unsubscribed stays unsubscribed")
    await publisher.publish("room:a", "after the reconnect")
    await eventually(lambda: seen.events, what="delivery after reconnect")
    assert seen.events == [("room:a", "after the reconnect")]
    await listener.ping()


# -- Redis going away and coming back (a private server) -----------------------------


class PrivateRedis:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", stdout=asyncio.subprocess.DEVNULL,
        )
        await eventually(lambda: port_open("127.0.0.1", self.port), what="redis-server up")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        need_service("Redis", "no redis-server binary to start a private server")
    server = PrivateRedis()
    await server.start()
    yield server
    await server.stop()


@pytest.mark.redis
async def test_redis_restart_resubscribes_and_catches_up(private_redis: PrivateRedis) -> None:
    from chatapp.broker.redis import RedisTransport

    transport = RedisTransport(private_redis.url, **FAST)
    hub = Hub(transport)
    caught_up: list[dict[str, int]] = []

    async def catch_up(rooms: dict[str, int]) -> None:
        caught_up.append(rooms)

    hub.catch_up = catch_up
    await hub.start()
    outbox = SendQueue()
    try:
        async with hub.subscription(outbox, ["room:a", PRESENCE_CHANNEL]):
            message = '{"type":"message","room":"a","seq":4,"message":{}}'
            await hub.publish("room:a", Event("message", message, 4))
            await eventually(lambda: len(outbox) == 1, what="first message")

            await private_redis.stop()
            with pytest.raises(BrokerError):
                await transport.ping()
            with pytest.raises(BrokerError):
                await hub.publish("room:a", Event("message", "{}", 5))
            await hub.add(outbox, "room:b")  # recorded, applied on reconnect
            await hub.remove(outbox, "room:b")
            await hub.add(outbox, "room:c")

            await private_redis.start()  # empty: no subscriptions
            await eventually(lambda: caught_up, within=5, what="catch-up after restart")
            assert caught_up == [{"room:a": 4, "room:c": 0}]
            await transport.ping()
            typing = encode("typing", room="c", user="x")
            await hub.publish("room:c", typing)
            await eventually(lambda: typing in outbox._items, what="delivery after restart")
    finally:
        await hub.stop()
    assert hub.channel_count == 0


@pytest.mark.redis
async def test_connect_to_missing_redis_starts_and_reports_it() -> None:
    """SPEC §7: the process starts while Redis is unreachable (and reconnects later,
    see tests/test_outages.py); meanwhile ping and publish fail clearly."""
    from chatapp.broker.redis import RedisTransport

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = RedisTransport(f"redis://127.0.0.1:{port}/0")
    recorder = Recorder()
    await transport.connect(recorder.receive, recorder.reconnected)
    try:
        with pytest.raises(BrokerError):
            await transport.ping()
        with pytest.raises(BrokerError, match="publish to Redis failed"):
            await transport.publish("room:a", "{}")
    finally:
        await transport.close()
    assert recorder.reconnects == 0  # nothing came back


# -- the hub above any transport -------------------------------------------------------


@pytest.fixture
async def hub(connect: Factory) -> AsyncIterator[Hub]:
    transport, _ = await connect(start=False)
    hub = Hub(transport)
    await hub.start()
    yield hub


def assert_clean(hub: Hub, outbox: SendQueue) -> None:
    assert hub.channel_count == 0
    assert hub.queues() == set()
    assert outbox.channels == set()
    assert hub.delivered_seq == {}
    assert hub.transport.subscribed_channels == frozenset()  # type: ignore[attr-defined]


CHANNELS = ["room:general", "user:1", "session:abc", PRESENCE_CHANNEL]


async def test_subscription_cleans_up_when_body_raises(hub: Hub) -> None:
    outbox = SendQueue()
    with pytest.raises(RuntimeError):
        async with hub.subscription(outbox, CHANNELS):
            assert hub.channel_count == len(CHANNELS)
            raise RuntimeError("handler failed")
    assert_clean(hub, outbox)


async def test_subscription_cleans_up_when_cancelled(hub: Hub) -> None:
    outbox = SendQueue()
    entered = asyncio.Event()

    async def handler() -> None:
        async with hub.subscription(outbox, CHANNELS):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(handler())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_clean(hub, outbox)


async def test_subscription_delivers_until_exit(hub: Hub) -> None:
    first, second = SendQueue(), SendQueue()
    async with hub.subscription(first, ["room:a"]):
        async with hub.subscription(second, ["room:a"]):
            await hub.publish("room:a", encode("typing", room="a", user="x"))
            await eventually(lambda: len(first) == 1 and len(second) == 1, what="fan-out")
        assert hub.local_subscribers("room:a") == 1
    assert_clean(hub, first)


async def test_many_connections_leave_nothing_behind(hub: Hub, kind: str) -> None:
    cycles = 10_000 if kind == "memory" else 300
    for n in range(cycles):
        outbox = SendQueue()
        async with hub.subscription(outbox, ["room:general", f"user:{n % 7}", PRESENCE_CHANNEL]):
            await hub.publish(f"user:{n % 7}", encode("_read", room="general", seq=1))
    assert_clean(hub, outbox)


@pytest.mark.redis
async def test_idle_connection_is_pinged_not_dropped(workers: Factory) -> None:
    listener, seen = await workers(idle_ping=0.2)
    publisher, _ = await workers()
    await listener.subscribe("room:a")
    await asyncio.sleep(1.5)  # several idle pings answered
    assert seen.reconnects == 0
    await publisher.publish("room:a", "still here")
    await eventually(lambda: seen.events == [("room:a", "still here")], what="delivery")
