"""Limits kept in Redis, so one budget holds across every worker and host.

Keys (``P`` is the broker's prefix, ``chatapp:<db>`` unless ``?prefix=`` is given):

- ``P:limit:<key>``: sorted set of event times (Redis time, µs), trimmed to the
  window by the script that adds to it; expires with the window.
- ``P:once:<key>``: ``SET NX PX``, one event per period.
- ``P:slots:<key>``: sorted set, slot -> deadline (ms). This process refreshes its
  slots every ``heartbeat`` seconds (TTL ``ttl``), so a crashed worker's slots stop
  counting within ``ttl``, like presence (``presence_redis.py``). The refresh also
  puts back slots a restarted Redis forgot: this process's own set is the truth.

Redis unreachable: the limits fail open to a local fallback (``MemoryLimits``): each
process then enforces the limits on its own, so a user may get up to one budget per
process until Redis answers again. The outage is logged once; Redis is tried again
after ``retry`` seconds, so an outage costs no waiting per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from .broker.redis import REDIS_ERRORS, raise_if_cancelled, redis_target
from .config import Rate
from .limits import Limits, MemoryLimits
from .wakeup import Wakeup

log = logging.getLogger(__name__)
T = TypeVar("T")
HIT_BATCH = 256  # hits per pipeline at most
Hit = tuple[str, int, int, str, "asyncio.Future[Any]"]  # key, count, window µs, member

# KEYS: the window. ARGV: count, window µs, a unique member.
# 0 when recorded, else the µs until the oldest event that counts leaves the window.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local count, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < count then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], n - count, n - count, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: the slots. ARGV: slot, maximum, ttl ms. 1 if held (now or already).
_OPEN = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the slots. ARGV: ttl ms, slots... (held by this process: refreshed or put back)
_REFRESH = _NOW_MS + """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""


class RedisLimits(Limits):
    def __init__(
        self, url: str, *, heartbeat: float = 5.0, ttl: float = 15.0, retry: float = 5.0,
        timeout: float = 1.0, max_connections: int = 32,
    ) -> None:
        self._url, self.prefix = redis_target(url)
        self._heartbeat, self._ttl_ms, self._retry = heartbeat, int(ttl * 1000), retry
        self._timeout, self._max_connections = timeout, max_connections
        self.fallback = MemoryLimits()
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._held: dict[str, set[str]] = {}  # slots this process holds, by key
        self._members = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count())
        self._down = False  # Redis was found unreachable (and not yet seen back)
        self._down_until = 0.0  # while down: the monotonic time to try it again
        self._tasks: list[asyncio.Task[None]] = []
        # Hits waiting for the hit task, sent several per round trip (bench.limits_cost:
        # with 32 in flight a check costs this process about a quarter of the CPU).
        self._hits: list[Hit] = []
        self._hits_ready = Wakeup()
        self._sending = 0  # hit round trips in flight

    async def connect(self) -> None:
        # No ping: the process starts (and limits locally) while Redis is unreachable.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url, max_connections=self._max_connections, timeout=self._timeout,
            socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        for name, source in (("hit", _HIT), ("open", _OPEN), ("refresh", _REFRESH)):
            self._scripts[name] = self._redis.register_script(source)
        for coro, name in ((self._refresh_forever(), "limits-heartbeat"),
                           (self._send_hits(), "limits-hits")):
            task = asyncio.create_task(coro, name=name)
            task.add_done_callback(_log_crash)
            self._tasks.append(task)

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._redis is not None:
            held, self._held = self._held, {}
            if held and self.available:
                with contextlib.suppress(*REDIS_ERRORS):
                    pipe = self._redis.pipeline(transaction=False)
                    for key, slots in held.items():
                        pipe.zrem(self.prefix + "slots:" + key, *slots)
                    await pipe.execute()
            pool = self._redis.connection_pool
            await self._redis.aclose()
            await pool.aclose()
            self._redis = None

    @property
    def available(self) -> bool:
        """False while Redis was found unreachable and is not yet tried again."""
        return self._redis is not None and time.monotonic() >= self._down_until

    async def _call(
        self, call: Callable[[], Awaitable[T]], fallback: Callable[[], T], *, probe: bool = False
    ) -> T:
        """Ask Redis; when it is unreachable, answer from the local fallback.

        While it is down, only a ``probe`` (the heartbeat) or a call after ``retry``
        seconds tries it again, so requests do not each wait for a timeout.
        """
        if self._redis is None or (not probe and not self.available):
            return fallback()
        try:
            result = await call()
        except REDIS_ERRORS as error:
            raise_if_cancelled(error)
            if not self._down:
                log.warning("Redis unreachable for limits (%s): each process limits on "
                            "its own until it answers", error)
            self._down = True
            self._down_until = time.monotonic() + self._retry
            return fallback()
        if self._down:
            log.warning("Redis answers again: limits are shared across processes again")
            self._down, self._down_until = False, 0.0
        return result

    # Each ``ask`` runs only while connected (``_call`` checks), before or after that
    # the fallback answers.

    async def hit(self, key: str, rate: Rate) -> float | None:
        member = next(self._members)
        micros = max(1, round(rate.seconds * 1_000_000))

        async def ask() -> float | None:
            if self._sending == 0:  # nothing in flight: straight there, no task switch
                self._sending += 1
                try:
                    wait = await self._scripts["hit"](keys=[self.prefix + "limit:" + key],
                                                      args=[rate.count, micros, member])
                finally:
                    self._sending -= 1
            else:  # others are waiting for Redis: join the next pipeline
                if len(self._tasks) < 2 or self._tasks[1].done():
                    raise RedisConnectionError("the limits' hit task is not running")
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._hits.append(
                    (self.prefix + "limit:" + key, rate.count, micros, member, future))
                self._hits_ready.set()
                wait = await future
            return None if int(wait) == 0 else int(wait) / 1_000_000

        return await self._call(ask, lambda: self.fallback.hit_now(key, rate))

    async def once(self, key: str, seconds: float) -> bool:
        millis = max(1, round(seconds * 1000))

        async def ask() -> bool:
            assert self._redis is not None
            return bool(await self._redis.set(self.prefix + "once:" + key, 1, px=millis, nx=True))

        return await self._call(ask, lambda: self.fallback.once_now(key, seconds))

    async def open_slot(self, key: str, slot: str, maximum: int) -> bool:
        held = self._held.get(key, set())

        async def ask() -> bool:
            return bool(await self._scripts["open"](
                keys=[self.prefix + "slots:" + key], args=[slot, maximum, self._ttl_ms]))

        # Unreachable: only this process's own slots can be counted.
        if await self._call(ask, lambda: slot in held or len(held) < maximum):
            self._held.setdefault(key, set()).add(slot)
            return True
        return False

    async def close_slot(self, key: str, slot: str) -> None:
        held = self._held.get(key)
        if held is None or slot not in held:
            return
        held.discard(slot)
        if not held:
            del self._held[key]

        async def ask() -> None:
            assert self._redis is not None
            await self._redis.zrem(self.prefix + "slots:" + key, slot)

        # Not reachable: the slot is no longer refreshed and expires within the TTL.
        await self._call(ask, lambda: None)

    async def refresh(self) -> None:
        """Extend this process's slots (and put back what Redis lost).

        Also the probe that finds Redis back after an outage, with or without slots.
        """
        if self._redis is None or not (self._held or self._down):
            return
        script, redis = self._scripts["refresh"], self._redis

        async def ask() -> None:
            if not self._held:
                await redis.ping()
                return
            pipe = redis.pipeline(transaction=False)
            for key, slots in list(self._held.items()):
                await script(keys=[self.prefix + "slots:" + key],
                             args=[self._ttl_ms, *slots], client=pipe)
            await pipe.execute()

        await self._call(ask, lambda: None, probe=True)

    async def _send_hits(self) -> None:
        """Send queued hits in order, all that are waiting in one pipeline."""
        batch: list[Hit] = []
        try:
            while True:
                await self._hits_ready.wait()
                self._hits_ready.clear()
                while self._hits:
                    batch = self._hits[:HIT_BATCH]
                    del self._hits[:HIT_BATCH]
                    await self._send_batch(batch)
                    batch = []
        finally:  # closing: the callers fall back to the local limits
            left, self._hits = batch + self._hits, []
            for *_, future in left:
                if not future.done():
                    future.set_exception(RedisConnectionError("limits are closing"))

    async def _send_batch(self, batch: list[Hit]) -> None:
        self._sending += 1
        try:
            results = await self._pipeline_hits(batch)
            if any(isinstance(result, NoScriptError) for result in results):
                assert self._redis is not None  # a restarted Redis forgot the script
                await self._redis.script_load(_HIT)
                results = await self._pipeline_hits(batch)
        except REDIS_ERRORS as error:
            raise_if_cancelled(error)
            results = [error] * len(batch)
        finally:
            self._sending -= 1
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline_hits(self, batch: list[Hit]) -> list[Any]:
        assert self._redis is not None
        sha = self._scripts["hit"].sha
        pipe = self._redis.pipeline(transaction=False)
        for key, count, micros, member, _ in batch:
            pipe.evalsha(sha, 1, key, count, micros, member)
        return list(await pipe.execute(raise_on_error=False))

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            await self.refresh()


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("limits heartbeat crashed", exc_info=task.exception())
