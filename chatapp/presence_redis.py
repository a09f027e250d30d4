"""Presence kept in Redis, shared by every worker and host (``RedisPresence``).

Keys (``P`` is the broker's prefix, ``chatapp:<db>`` unless ``?prefix=`` is given):

- ``P:presence:workers``: sorted set, worker id -> deadline (Redis time, ms).
- ``P:presence:worker:<id>``: set of usernames that worker holds, expiring with it.
- ``P:presence:online``: users announced online and not yet announced offline.

The two shared keys expire ``3 * ttl`` after the last heartbeat of any worker.

A worker refreshes its deadline and its set every ``heartbeat`` seconds (TTL
``ttl``). Each change runs as one Lua script, so it is atomic across workers: the
worker whose script removes a user from ``online`` is the one that announces it
offline. A killed worker stops refreshing; once its deadline passes, the sweep
that every worker runs removes its users from ``online`` and that one sweep
announces them offline (within ``ttl + heartbeat`` seconds).

This process's own set (``_held``) is the truth for its users: a heartbeat puts back
what a restarted Redis forgot and announces those users online again. While Redis is
unreachable the heartbeat is retried with backoff (up to ``backoff_max``), so presence
is back within moments of Redis.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from .broker.redis import REDIS_ERRORS, raise_if_cancelled, redis_target
from .presence import Announce, PresenceError, PresenceStore

log = logging.getLogger(__name__)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: workers, own set, online. ARGV: worker id, ttl ms, user. 1 if newly online.
_ADD = _NOW + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local added = redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 3 * tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[3], 3 * tonumber(ARGV[2]))
return added
"""

# KEYS: workers, own set, online. ARGV: worker key prefix, user.
# 1 if no live worker holds the user any more (and this call took it offline).
_REMOVE = _NOW + """
redis.call('SREM', KEYS[2], ARGV[2])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
for _, id in ipairs(live) do
  if redis.call('SISMEMBER', ARGV[1] .. id, ARGV[2]) == 1 then return 0 end
end
return redis.call('SREM', KEYS[3], ARGV[2])
"""

# KEYS: workers, own set, online. ARGV: worker id, ttl ms, users...
# Rewrites this worker's set; returns the users that were not in ``online``
# (lost with a Redis restart, or swept while this worker was cut off).
_HEARTBEAT = _NOW + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('DEL', KEYS[2])
local fresh = {}
for i = 3, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  if redis.call('SADD', KEYS[3], ARGV[i]) == 1 then fresh[#fresh + 1] = ARGV[i] end
end
if #ARGV >= 3 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
-- Shared keys outlive any live worker, and vanish once every worker is gone.
redis.call('PEXPIRE', KEYS[1], 3 * tonumber(ARGV[2]))
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], 3 * tonumber(ARGV[2])) end
return fresh
"""

# KEYS: workers, online. ARGV: worker key prefix.
# Forgets dead workers; returns (and removes from ``online``) the users no live
# worker holds. Atomic, so each such user is returned to exactly one caller.
_SWEEP = _NOW + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
for _, id in ipairs(dead) do
  redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[1], id)
end
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local gone = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local held = false
  for _, id in ipairs(live) do
    if redis.call('SISMEMBER', ARGV[1] .. id, user) == 1 then held = true break end
  end
  if not held then
    redis.call('SREM', KEYS[2], user)
    gone[#gone + 1] = user
  end
end
return gone
"""

# KEYS: workers. ARGV: worker key prefix. Everyone a live worker holds.
_ONLINE = _NOW + """
local users = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')) do
  for _, user in ipairs(redis.call('SMEMBERS', ARGV[1] .. id)) do users[user] = true end
end
local out = {}
for user in pairs(users) do out[#out + 1] = user end
return out
"""

# KEYS: workers, own set. ARGV: worker id.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
"""

_SCRIPTS = {"add": _ADD, "remove": _REMOVE, "heartbeat": _HEARTBEAT, "sweep": _SWEEP,
            "online": _ONLINE, "release": _RELEASE}


class RedisPresence(PresenceStore):
    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 5.0,
        ttl: float = 15.0,
        backoff_max: float = 5.0,
        max_connections: int = 16,
    ) -> None:
        self._url, self.prefix = redis_target(url)
        self._heartbeat, self._ttl_ms = heartbeat, int(ttl * 1000)
        self._backoff_max, self._max_connections = backoff_max, max_connections
        self.worker_id = uuid.uuid4().hex[:16]
        self._workers_key = f"{self.prefix}presence:workers"
        self._worker_prefix = f"{self.prefix}presence:worker:"
        self._own_key = self._worker_prefix + self.worker_id
        self._online_key = f"{self.prefix}presence:online"
        self._announce: Announce | None = None
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        # Keeps a heartbeat from resurrecting a user between a snapshot of ``_held``
        # and its script.
        self._lock = asyncio.Lock()
        self._held: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def connect(self, announce: Announce) -> None:
        # No round trip: the process starts while Redis is unreachable (SPEC §7); the
        # heartbeat task registers this worker at once and keeps trying.
        self._announce = announce
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url, max_connections=self._max_connections, timeout=5.0,
            socket_timeout=5.0, socket_connect_timeout=2.0, socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1), decode_responses=True,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._scripts = {name: self._redis.register_script(source)
                         for name, source in _SCRIPTS.items()}
        self._task = asyncio.create_task(self._maintain(), name=f"presence-{self.worker_id}")
        self._task.add_done_callback(_log_crash)

    async def close(self) -> None:
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()  # again if it did not stop (see ``raise_if_cancelled``)
            await asyncio.wait({task}, timeout=1.0)
        if self._redis is None:
            return
        try:
            await self._run("release", [self._workers_key, self._own_key], [self.worker_id])
            await self._sweep()  # announce this worker's users offline now
        except PresenceError as error:
            log.warning("could not release presence in Redis: %s", error)
        self._held.clear()
        pool = self._redis.connection_pool
        await self._redis.aclose()
        await pool.aclose()
        self._redis = None

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self._redis is None:
            raise PresenceError("Redis presence is not connected")
        try:
            return await self._scripts[name](keys=keys, args=args)
        except REDIS_ERRORS as error:
            raise_if_cancelled(error)
            raise PresenceError(f"Redis presence {name} failed: {error}") from error

    async def add(self, username: str) -> bool:
        # ``_held`` first: if the script fails, the next heartbeat puts the user in.
        async with self._lock:
            self._held.add(username)
            added = await self._run(
                "add", [self._workers_key, self._own_key, self._online_key],
                [self.worker_id, self._ttl_ms, username],
            )
        return bool(added)

    async def remove(self, username: str) -> bool:
        async with self._lock:
            self._held.discard(username)
            removed = await self._run(
                "remove", [self._workers_key, self._own_key, self._online_key],
                [self._worker_prefix, username],
            )
        return bool(removed)

    async def online(self) -> list[str]:
        return sorted(await self._run("online", [self._workers_key], [self._worker_prefix]))

    async def _beat(self) -> None:
        """Refresh this worker's deadline and set; announce users Redis had lost."""
        async with self._lock:
            fresh = await self._run(
                "heartbeat", [self._workers_key, self._own_key, self._online_key],
                [self.worker_id, self._ttl_ms, *sorted(self._held)],
            )
        for username in fresh:
            await self._tell(username, True)

    async def _sweep(self) -> None:
        """Announce offline the users only dead workers held (once, across workers)."""
        gone = await self._run("sweep", [self._workers_key, self._online_key],
                               [self._worker_prefix])
        for username in gone:
            log.info("presence: %s offline (its worker stopped heartbeating)", username)
            await self._tell(username, False)

    async def _tell(self, username: str, online: bool) -> None:
        if self._announce is None:
            return
        try:
            await self._announce(username, online)
        except Exception as error:  # one failed announcement must not stop the rest
            raise_if_cancelled(error)
            log.exception("announcing %s (online: %s) failed", username, online)

    async def _maintain(self) -> None:
        """Beat and sweep every ``heartbeat`` seconds; retry sooner while Redis is away."""
        retry = 0.1
        down = False
        while True:
            try:
                await self._beat()
                await self._sweep()
            except Exception as error:  # keep beating: a dead loop takes users offline
                raise_if_cancelled(error)
                if not isinstance(error, PresenceError):
                    log.exception("presence heartbeat crashed; retrying")
                elif not down:
                    log.warning("presence heartbeat failed (%s); retrying", error)
                down = True
                delay = random.uniform(retry / 2, retry)
                retry = min(retry * 2, self._backoff_max, self._heartbeat)
            else:
                if down:
                    log.warning("presence heartbeat reaches Redis again")
                down, retry, delay = False, 0.1, self._heartbeat
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # redis-py swallowed a cancel
                raise asyncio.CancelledError
            await asyncio.sleep(delay)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Redis presence task %s crashed", task.get_name(), exc_info=task.exception())
