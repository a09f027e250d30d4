"""What one Redis limit check costs (README "Per-user limits"); a measurement, not a test.

    .venv/bin/python -m bench.limits_cost [redis://127.0.0.1:6379/0] [calls]

Runs ``RedisLimits.hit`` (the websocket ``send`` check: 20 per 10 s per user) one at a
time and 32 in flight, over 100 users, and reports wall time per call, this process's
CPU per call and Redis's CPU per call (from ``INFO cpu``). Deletes its keys after.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time

import redis.asyncio as aioredis

from chatapp.config import Rate
from chatapp.limits import MemoryLimits
from chatapp.limits_redis import RedisLimits

SEND_RATE = Rate(20, 10)


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def measure(url: str, calls: int, in_flight: int) -> dict[str, float]:
    prefix = f"bench-limits-{secrets.token_hex(4)}"
    store = RedisLimits(f"{url}?prefix={prefix}")
    await store.connect()
    client = aioredis.Redis.from_url(url)
    try:
        await store.hit("warm", SEND_RATE)
        queue = iter(range(calls))

        async def worker() -> None:
            for n in queue:
                await store.hit(f"send:{n % 100}", SEND_RATE)

        redis_before, cpu_before, wall_before = (
            await redis_cpu(client), time.process_time(), time.perf_counter())
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        redis = await redis_cpu(client) - redis_before
        assert store.available, "Redis did not answer: the figures would be the fallback's"
        return {"wall_us": wall / calls * 1e6, "client_cpu_us": cpu / calls * 1e6,
                "redis_cpu_us": redis / calls * 1e6}
    finally:
        await store.close()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


async def memory(calls: int) -> float:
    store = MemoryLimits()
    started = time.perf_counter()
    for n in range(calls):
        await store.hit(f"send:{n % 100}", SEND_RATE)
    return (time.perf_counter() - started) / calls * 1e6


async def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    print(f"memory store: {await memory(calls):.2f} µs per call")
    for in_flight in (1, 32):
        r = await measure(url, calls, in_flight)
        print(f"redis, {in_flight:>2} in flight: {r['wall_us']:.0f} µs wall, "
              f"{r['client_cpu_us']:.0f} µs client CPU, {r['redis_cpu_us']:.0f} µs Redis CPU "
              "per call")


if __name__ == "__main__":
    asyncio.run(main())
