"""The limits store (chatapp/limits.py): one contract, run on memory and on Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from chatapp.config import Rate
from chatapp.limits import Limits, MemoryLimits, RateLimitError, open_limits
from chatapp.limits_redis import RedisLimits
from chatapp.web.refusals import retry_after_header

from .conftest import need_service, port_open
from .servers import free_port


def redis_url(prefix: str) -> str:
    if not port_open("127.0.0.1", 6379):
        need_service("Redis", "nothing listens on 127.0.0.1:6379")
    return f"redis://127.0.0.1:6379/0?prefix={prefix}"


async def forget(prefix: str) -> None:
    """Delete the keys a test made (never a flush: others share this Redis)."""
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"test-limits-{secrets.token_hex(6)}"
    yield name
    if port_open("127.0.0.1", 6379):
        await forget(name)


@pytest.fixture(params=["memory", "redis"])
async def limits(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Limits]:
    store = MemoryLimits() if request.param == "memory" else RedisLimits(redis_url(prefix))
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


async def peers(prefix: str, n: int = 2, **options: Any) -> list[RedisLimits]:
    """Stores of ``n`` processes sharing one Redis prefix (as workers do)."""
    stores = [RedisLimits(redis_url(prefix), **options) for _ in range(n)]
    for store in stores:
        await store.connect()
    return stores


# the contract --------------------------------------------------------------------------

async def test_hit_allows_count_then_says_how_long_to_wait(limits: Limits) -> None:
    rate = Rate(3, 10)
    assert [await limits.hit("send:1", rate) for _ in range(3)] == [None, None, None]
    wait = await limits.hit("send:1", rate)
    assert wait is not None and 0 < wait <= 10
    assert await limits.hit("send:1", rate) is not None  # refused hits are not recorded


async def test_keys_have_budgets_of_their_own(limits: Limits) -> None:
    rate = Rate(1, 10)
    assert await limits.hit("send:1", rate) is None
    assert await limits.hit("send:1", rate) is not None
    assert await limits.hit("send:2", rate) is None
    assert await limits.hit("api:1", rate) is None


async def test_window_slides(limits: Limits) -> None:
    rate = Rate(2, 0.3)
    assert await limits.hit("k", rate) is None
    assert await limits.hit("k", rate) is None
    wait = await limits.hit("k", rate)
    assert wait is not None and wait <= 0.3
    await asyncio.sleep(wait + 0.05)  # waiting longer than told is always enough
    assert await limits.hit("k", rate) is None


async def test_concurrent_hits_never_exceed_the_count(limits: Limits) -> None:
    rate = Rate(20, 10)
    results = await asyncio.gather(*(limits.hit("send:7", rate) for _ in range(60)))
    assert sum(r is None for r in results) == 20


async def test_check_raises_rate_limit_error_with_retry_after(limits: Limits) -> None:
    rate = Rate(1, 600)
    await limits.check("rooms:1", rate)
    with pytest.raises(RateLimitError) as caught:
        await limits.check("rooms:1", rate, "too many rooms")
    assert caught.value.code == "rate_limited" and caught.value.message == "too many rooms"
    assert 0 < caught.value.retry_after <= 600
    assert 1 <= int(retry_after_header(caught.value) or 0) <= 600


async def test_once_allows_one_per_period(limits: Limits) -> None:
    assert await limits.once("typing:1:2", 0.3) is True
    assert await limits.once("typing:1:2", 0.3) is False
    assert await limits.once("typing:1:3", 0.3) is True
    await asyncio.sleep(0.35)
    assert await limits.once("typing:1:2", 0.3) is True


async def test_slots_up_to_maximum(limits: Limits) -> None:
    assert all([await limits.open_slot("ws:1", f"c{i}", 3) for i in range(3)])
    assert await limits.open_slot("ws:1", "c3", 3) is False
    assert await limits.open_slot("ws:1", "c0", 3) is True  # held already: still fine
    assert await limits.open_slot("ws:2", "c9", 3) is True  # another user
    await limits.close_slot("ws:1", "c1")
    await limits.close_slot("ws:1", "c1")  # twice is harmless
    await limits.close_slot("ws:1", "never")
    assert await limits.open_slot("ws:1", "c3", 3) is True
    assert await limits.open_slot("ws:1", "c4", 3) is False


def test_open_limits_follows_the_broker_url() -> None:
    assert isinstance(open_limits("memory://"), MemoryLimits)
    assert isinstance(open_limits("redis://127.0.0.1:6379/0?prefix=x"), RedisLimits)


def test_memory_store_forgets_least_recently_used_keys() -> None:
    store = MemoryLimits(max_keys=2)
    rate = Rate(1, 60)
    assert store.hit_now("a", rate) is None
    assert store.hit_now("b", rate) is None
    assert store.hit_now("a", rate) is not None  # a is now the most recent
    assert store.hit_now("c", rate) is None  # b is forgotten
    assert store.hit_now("a", rate) is not None
    assert store.hit_now("b", rate) is None


# Redis: shared by processes, crash-safe, failing open ----------------------------------

async def test_redis_budget_is_shared_by_processes(prefix: str) -> None:
    first, second = await peers(prefix)
    try:
        rate = Rate(10, 60)
        results = await asyncio.gather(
            *(store.hit("send:1", rate) for _ in range(15) for store in (first, second))
        )
        assert sum(r is None for r in results) == 10
        assert await first.open_slot("ws:1", "a", 2) and await second.open_slot("ws:1", "b", 2)
        assert await first.open_slot("ws:1", "c", 2) is False
        assert await second.open_slot("ws:1", "d", 2) is False
        assert await first.once("typing:1:1", 60) is True
        assert await second.once("typing:1:1", 60) is False
    finally:
        await first.close()
        await second.close()


async def test_closing_a_store_gives_its_slots_back(prefix: str) -> None:
    first, second = await peers(prefix)
    try:
        assert await first.open_slot("ws:1", "a", 1)
        assert await second.open_slot("ws:1", "b", 1) is False
        await first.close()
        assert await second.open_slot("ws:1", "b", 1) is True
    finally:
        await second.close()


async def test_a_crashed_process_slots_expire_and_a_live_one_keeps_its_own(prefix: str) -> None:
    # Heartbeats every 0.1 s with a 1 s TTL; the "crashed" store stops refreshing.
    crashed, alive, other = await peers(prefix, 3, heartbeat=0.1, ttl=1.0)
    try:
        assert await crashed.open_slot("ws:1", "dead", 2)
        assert await alive.open_slot("ws:1", "live", 2)
        assert await other.open_slot("ws:1", "x", 2) is False
        crashed._tasks[0].cancel()  # no more heartbeats, no goodbye
        for _ in range(100):  # until the TTL passes, however slow the machine
            if await other.open_slot("ws:1", "x", 2):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a dead process's slot never expired")
        # The live store's slot was refreshed all along: the user is at the maximum.
        assert await other.open_slot("ws:1", "y", 2) is False
    finally:
        crashed._held.clear()
        for store in (crashed, alive, other):
            await store.close()


async def test_refresh_puts_back_slots_redis_forgot(prefix: str) -> None:
    first, second = await peers(prefix)
    try:
        assert await first.open_slot("ws:1", "a", 1)
        await forget(prefix)  # as after a Redis restart
        await first.refresh()
        assert await second.open_slot("ws:1", "b", 1) is False
    finally:
        await first.close()
        await second.close()


async def test_unreachable_redis_fails_open_to_a_local_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisLimits(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    await store.connect()  # starts although nothing answers
    try:
        rate = Rate(2, 60)
        assert await store.hit("send:1", rate) is None
        assert await store.hit("send:1", rate) is None
        assert await store.hit("send:1", rate) is not None  # still limited, per process
        assert await store.once("typing:1:1", 60) is True
        assert await store.once("typing:1:1", 60) is False
        assert await store.open_slot("ws:1", "a", 1) is True
        assert await store.open_slot("ws:1", "b", 1) is False
        await store.close_slot("ws:1", "a")
        assert await store.open_slot("ws:1", "b", 1) is True
        assert not store.available
        warnings = [r for r in caplog.records if "Redis unreachable for limits" in r.message]
        assert len(warnings) == 1  # logged once per outage, not per call
    finally:
        await store.close()


async def test_redis_store_answers_locally_before_connect_and_after_close(prefix: str) -> None:
    store = RedisLimits(redis_url(prefix))
    assert await store.hit("send:1", Rate(1, 60)) is None  # not connected yet
    assert await store.once("typing:1:1", 60) is True
    await store.connect()
    assert await store.open_slot("ws:1", "a", 1)
    await store.close()
    await store.close_slot("ws:1", "a")  # a connection that ends after shutdown
    assert await store.hit("send:1", Rate(1, 60)) is not None


async def test_batched_hits_survive_a_redis_that_forgot_its_scripts(tmp_path: Any) -> None:
    from .test_scaleout import PrivateRedis

    redis = PrivateRedis(tmp_path / "redis").start()
    store = RedisLimits(redis.url)
    await store.connect()
    client = aioredis.Redis.from_url(redis.url)
    try:
        rate = Rate(30, 60)
        first = await asyncio.gather(*(store.hit("send:1", rate) for _ in range(20)))
        await client.script_flush()  # as after a Redis restart
        second = await asyncio.gather(*(store.hit("send:1", rate) for _ in range(20)))
        assert sum(r is None for r in first + second) == 30
        assert store.available  # answered by Redis, not by the fallback
        assert len(await client.zrange("chatapp:0:limit:send:1", 0, -1)) == 30
    finally:
        await client.aclose()
        await store.close()
        redis.kill()
