"""One contract for every presence store (memory, Redis), plus ``Presence`` above it.

Redis tests use a unique key prefix each, as the broker contract does, so they can
share a server with other runs; tests that stop Redis start a private
``redis-server`` of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from chatapp.broker import BrokerError
from chatapp.broker.hub import Hub
from chatapp.channels import PRESENCE_CHANNEL
from chatapp.events import presence_event
from chatapp.presence import (
    MemoryPresence,
    Presence,
    PresenceError,
    PresenceStore,
    open_presence_store,
)

from .test_broker_contract import (  # noqa: F401 - private_redis is a fixture
    REDIS_URL,
    PrivateRedis,
    delete_prefix,
    eventually,
    private_redis,
    require_redis,
    with_prefix,
)

FAST: dict[str, Any] = {"heartbeat": 0.2, "ttl": 1.0, "backoff_max": 0.5}  # test timings


class Heard:
    """A store's announcements: (username, online) in the order they came."""

    def __init__(self) -> None:
        self.said: list[tuple[str, bool]] = []

    async def announce(self, username: str, online: bool) -> None:
        self.said.append((username, online))


Factory = Callable[..., Awaitable[tuple[PresenceStore, Heard]]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest) -> str:
    """A ``CHATAPP_BROKER_URL``; a Redis one with a prefix of this test's own."""
    if request.param == "memory":
        return "memory://"
    require_redis()
    return with_prefix(REDIS_URL)


async def _open_stores(url: str) -> AsyncIterator[Factory]:
    opened: list[PresenceStore] = []

    async def factory(**options: Any) -> tuple[PresenceStore, Heard]:
        if url.startswith("redis"):
            from chatapp.presence_redis import RedisPresence

            store: PresenceStore = RedisPresence(url, **{**FAST, **options})
        else:
            store = open_presence_store(url)
        heard = Heard()
        await store.connect(heard.announce)
        opened.append(store)
        return store, heard

    yield factory
    for store in opened:
        await store.close()
    if url.startswith("redis"):
        await delete_prefix(url)


@pytest.fixture
async def stores(url: str) -> AsyncIterator[Factory]:
    """Connect stores of the backend ("workers" of one deployment, sharing a prefix)."""
    async for factory in _open_stores(url):
        yield factory


@pytest.fixture
async def workers() -> AsyncIterator[Factory]:
    """Several RedisPresence stores on one prefix: the workers of one deployment."""
    require_redis()
    async for factory in _open_stores(with_prefix(REDIS_URL)):
        yield factory


async def crash(store: Any) -> None:
    """Stop a worker like ``kill -9``: no heartbeat, no cleanup of its keys."""
    task, store._task = store._task, None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    pool = store._redis.connection_pool
    await store._redis.aclose()
    await pool.aclose()
    store._redis = None


# -- the contract ------------------------------------------------------------------


def test_the_broker_url_chooses_the_store() -> None:
    from chatapp.presence_redis import RedisPresence

    assert isinstance(open_presence_store("memory://"), MemoryPresence)
    redis_store = open_presence_store("redis://127.0.0.1:6379/3?prefix=team")
    assert isinstance(redis_store, RedisPresence)
    assert redis_store.prefix == "team:"  # the broker's own prefix (and its default)
    assert open_presence_store("redis://127.0.0.1:6379/3").prefix == "chatapp:3:"  # type: ignore[attr-defined]


async def test_transitions(stores: Factory) -> None:
    store, heard = await stores()
    assert await store.add("alice") is True
    assert await store.add("bob") is True
    assert await store.online() == ["alice", "bob"]
    assert await store.remove("alice") is True
    assert await store.online() == ["bob"]
    assert await store.remove("bob") is True
    assert await store.online() == []
    assert await store.add("alice") is True  # a new session: online again
    assert heard.said == []  # the caller announces what add and remove report


async def test_online_is_sorted(stores: Factory) -> None:
    store, _ = await stores()
    for name in ("zoe", "adam", "mia"):
        await store.add(name)
    assert await store.online() == ["adam", "mia", "zoe"]


async def test_close_forgets_this_process(stores: Factory) -> None:
    store, _ = await stores()
    await store.add("carl")
    await store.close()
    other, _ = await stores()
    assert await other.online() == []


# -- Redis across workers ------------------------------------------------------------


@pytest.mark.redis
async def test_counts_workers_not_calls(workers: Factory) -> None:
    one, _ = await workers()
    two, _ = await workers()
    assert await one.add("alice") is True
    assert await two.add("alice") is False  # already online on worker one
    assert await two.online() == ["alice"]
    assert await one.remove("alice") is False  # still on worker two
    assert await one.online() == ["alice"]
    assert await two.remove("alice") is True
    assert await one.online() == []
    assert await one.add("alice") is True


@pytest.mark.redis
async def test_crashed_worker_users_go_offline_once(workers: Factory) -> None:
    doomed, _ = await workers()
    one, heard_one = await workers()
    two, heard_two = await workers()
    assert await doomed.add("carol") is True
    assert await doomed.add("dave") is True
    assert await one.add("dave") is False  # dave is also on a live worker
    await crash(doomed)

    def offline() -> list[tuple[str, bool]]:
        return heard_one.said + heard_two.said

    # Deadline = ttl after the last heartbeat, then the next sweep (heartbeat).
    await eventually(offline, within=FAST["ttl"] + 2, what="carol offline")
    await asyncio.sleep(3 * FAST["heartbeat"])  # every worker has swept again
    assert offline() == [("carol", False)]  # once, by one worker, and not dave
    assert await two.online() == ["dave"]


@pytest.mark.redis
async def test_closing_a_worker_takes_its_users_offline(workers: Factory) -> None:
    leaving, heard_leaving = await workers()
    staying, heard_staying = await workers()
    await leaving.add("erin")
    await staying.add("fred")
    await leaving.close()
    assert heard_leaving.said == [("erin", False)]  # at once, by the worker that left
    assert await staying.online() == ["fred"]
    await asyncio.sleep(3 * FAST["heartbeat"])
    assert heard_staying.said == []


@pytest.mark.redis
async def test_heartbeat_restores_presence_redis_forgot(workers: Factory) -> None:
    one, heard = await workers()
    await one.add("frank")
    # As after a Redis restart without persistence: every presence key is gone.
    await delete_prefix(f"{REDIS_URL}?prefix={one.prefix[:-1]}")  # type: ignore[attr-defined]
    assert await one.online() == []
    await eventually(lambda: ("frank", True) in heard.said, what="frank re-announced")
    assert await one.online() == ["frank"]
    assert await one.remove("frank") is True


@pytest.mark.redis
async def test_redis_restart_restores_presence(private_redis: PrivateRedis) -> None:  # noqa: F811
    from chatapp.presence_redis import RedisPresence

    store = RedisPresence(private_redis.url, **FAST)
    heard = Heard()
    await store.connect(heard.announce)
    try:
        assert await store.add("gina") is True
        await private_redis.stop()
        with pytest.raises(PresenceError):
            await store.add("hank")  # held here all the same: restored with gina
        with pytest.raises(PresenceError):
            await store.online()
        await asyncio.sleep(3 * FAST["heartbeat"])  # heartbeats fail meanwhile
        await private_redis.start()  # empty: no presence keys
        await eventually(lambda: len(heard.said) == 2, what="both re-announced")
        assert sorted(heard.said) == [("gina", True), ("hank", True)]
        assert await store.online() == ["gina", "hank"]
        assert await store.remove("gina") is True
    finally:
        await store.close()


@pytest.mark.redis
async def test_starts_without_redis_and_fails_clearly() -> None:
    """SPEC §7: the process starts while Redis is unreachable; presence calls fail
    with PresenceError (which ``Presence`` logs) and the heartbeat keeps trying."""
    from chatapp.presence_redis import RedisPresence

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisPresence(f"redis://127.0.0.1:{port}/0", **FAST)
    heard = Heard()
    await store.connect(heard.announce)
    try:
        with pytest.raises(PresenceError, match="Redis presence add failed"):
            await store.add("ivy")
        with pytest.raises(PresenceError):
            await store.online()
    finally:
        await store.close()  # releasing fails too, and is only logged
    assert heard.said == []


# -- Presence above any store ---------------------------------------------------------


class Published:
    """Stands in for the hub: what ``Presence`` publishes, and the tasks it spawns."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def publish(self, channel: str, event: str) -> None:
        self.events.append((channel, str(event)))

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def said(self) -> list[str]:
        assert all(channel == PRESENCE_CHANNEL for channel, _ in self.events)
        return [event for _, event in self.events]


@contextlib.asynccontextmanager
async def presence_on(url: str, grace: float = 0) -> AsyncIterator[tuple[Presence, Published]]:
    """``Presence`` as the app wires it: its store from the broker URL."""
    published = Published()
    people = Presence(open_presence_store(url), cast(Hub, published), grace_seconds=grace)
    await people.start()
    try:
        yield people, published
    finally:
        await people.stop()
        if url.startswith("redis"):
            await delete_prefix(url)


async def test_presence_announces_only_transitions(url: str) -> None:
    async with presence_on(url) as (people, published):
        await people.connected("alice")
        await people.connected("alice")  # a second tab
        assert await people.online() == ["alice"]
        await people.disconnected("alice")  # one of two tabs closed
        assert published.said() == [presence_event("alice", True)]
        await people.disconnected("alice")
        assert published.said() == [presence_event("alice", True),
                                    presence_event("alice", False)]
        assert await people.online() == []
        assert people.local_users == 0


async def test_presence_grace_keeps_a_reload_online(url: str) -> None:
    async with presence_on(url, grace=0.3) as (people, published):
        await people.connected("bea")
        await people.disconnected("bea")
        await people.connected("bea")  # back within the grace period
        await people.disconnected("bea")
        assert await people.online() == ["bea"]
        await eventually(lambda: len(published.events) == 2, what="bea offline after grace")
        assert published.said() == [presence_event("bea", True), presence_event("bea", False)]
        await people.connected("cy")
        await people.disconnected("cy")
        await people.stop()  # shutdown does not wait out the grace
        assert published.said()[-1] == presence_event("cy", False)


async def test_many_connections_leave_nothing_behind(url: str) -> None:
    cycles = 10_000 if url == "memory://" else 300
    async with presence_on(url) as (people, published):
        for n in range(cycles):
            await people.connected(f"user{n % 13}")
            await people.disconnected(f"user{n % 13}")
        assert people.local_users == 0
        assert await people.online() == []
        assert len(published.events) == 2 * cycles


async def test_an_unreachable_store_never_fails_a_connection() -> None:
    class Down(MemoryPresence):
        async def add(self, username: str) -> bool:
            raise PresenceError("down")

        async def remove(self, username: str) -> bool:
            raise PresenceError("down")

        async def online(self) -> list[str]:
            raise PresenceError("down")

    published = Published()
    people = Presence(Down(), cast(Hub, published), grace_seconds=0)
    await people.start()
    try:
        await people.connected("dora")  # logged, not raised
        assert await people.online() == []  # the hello goes out without the list
        await people.disconnected("dora")
        assert people.local_users == 0
        assert published.events == []
    finally:
        await people.stop()


async def test_a_broker_outage_never_fails_a_connection() -> None:
    class Unpublished(Published):
        async def publish(self, channel: str, event: str) -> None:
            raise BrokerError("broker down")

    people = Presence(MemoryPresence(), cast(Hub, Unpublished()), grace_seconds=0)
    await people.start()
    try:
        await people.connected("eve")  # counted, the announcement only logged
        assert await people.online() == ["eve"]
        await people.disconnected("eve")
        assert await people.online() == []
    finally:
        await people.stop()
