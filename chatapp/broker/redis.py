"""The Redis transport: pub/sub fan-out and presence shared by every worker and host.

Pub/sub is at-most-once, so a lost subscriber connection is re-established with
backoff and the hub is told (``reconnected``) to replay room events from storage.

Presence keys (``P`` is the prefix, ``chatapp:<db>`` unless ``?prefix=`` is given):

- ``P:presence:workers``: sorted set, worker id -> deadline (Redis time, ms).
- ``P:presence:worker:<id>``: set of usernames that worker holds, expiring with it.
- ``P:presence:online``: users announced online and not yet announced offline.

The two shared keys expire ``3 * ttl`` after the last heartbeat of any worker.

A worker refreshes its deadline and its set every ``heartbeat`` seconds (TTL
``ttl``). Each change runs as one Lua script, so it is atomic across workers: the
worker whose script removes a user from ``online`` is the one that announces it
offline. A killed worker stops refreshing; once its deadline passes, the sweep
that every worker runs removes its users from ``online`` and that one sweep
publishes them offline (within ``ttl + heartbeat`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from ..channels import PRESENCE_CHANNEL
from ..events import presence_event
from ..wakeup import Wakeup
from . import BrokerError, Receiver, Reconnected, Transport

log = logging.getLogger(__name__)

# Redis unreachable shows up as either of these, depending on where it fails.
REDIS_ERRORS = (RedisError, OSError)
PUBLISH_BATCH = 256  # publishes per pipeline at most

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


def raise_if_cancelled(error: BaseException) -> None:
    """Re-raise a cancellation redis-py turned into a connection error.

    redis-py (8.1) can report a task cancelled mid-command as ``ConnectionError``;
    treating that as an outage would keep a cancelled task running.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from error


def split_url(url: str) -> tuple[str, str | None]:
    """Take our own ``prefix`` option out of the URL before redis-py parses it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for key, value in query if key == "prefix"), None)
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix or None


class RedisTransport(Transport):
    shared_across_processes = True

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 5.0,
        ttl: float = 15.0,
        backoff_max: float = 5.0,
        ping_timeout: float = 1.0,
        idle_ping: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self._url, prefix = split_url(url)
        self._heartbeat, self._ttl_ms = heartbeat, int(ttl * 1000)
        self._backoff_max, self._ping_timeout, self._idle_ping = (
            backoff_max, ping_timeout, idle_ping)
        self._max_connections = max_connections
        self.worker_id = uuid.uuid4().hex[:16]
        options = aioredis.ConnectionPool.from_url(self._url).connection_kwargs
        self.prefix = f"{prefix or 'chatapp:' + str(options.get('db', 0))}:"
        self._workers_key = f"{self.prefix}presence:workers"
        self._worker_prefix = f"{self.prefix}presence:worker:"
        self._own_key = self._worker_prefix + self.worker_id
        self._online_key = f"{self.prefix}presence:online"
        # Keeps the pub/sub connection subscribed even with no app channel.
        self._control = f"{self.prefix}_worker:{self.worker_id}"
        self.subscriber_name = f"chatapp-sub-{self.worker_id}"  # CLIENT LIST shows it

        self._receiver: Receiver | None = None
        self._reconnected: Reconnected | None = None
        self._redis: aioredis.Redis | None = None
        self._sub_redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._sub_lock = asyncio.Lock()
        self._presence_lock = asyncio.Lock()
        self._channels: set[str] = set()
        self._held: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._scripts: dict[str, Any] = {}
        self.reconnects = 0
        # Publishes waiting for the publisher task; None while it is not running.
        self._outgoing: list[tuple[str, str, asyncio.Future[None]]] | None = None
        self._publish_ready = Wakeup()

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self, receiver: Receiver, reconnected: Reconnected) -> None:
        self._receiver, self._reconnected = receiver, reconnected
        common: dict[str, Any] = {
            "decode_responses": True, "socket_connect_timeout": 2.0, "socket_keepalive": True,
        }
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url, max_connections=self._max_connections, timeout=5.0,
            socket_timeout=5.0, retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            **common,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        # No retries on the subscriber: redis-py would otherwise reconnect and
        # resubscribe silently, and nobody would catch up what was lost meanwhile.
        self._sub_redis = aioredis.Redis.from_url(
            self._url, retry=Retry(NoBackoff(), 0), client_name=self.subscriber_name, **common
        )
        for name, source in (("add", _ADD), ("remove", _REMOVE), ("heartbeat", _HEARTBEAT),
                             ("sweep", _SWEEP), ("online", _ONLINE), ("release", _RELEASE)):
            self._scripts[name] = self._redis.register_script(source)
        try:
            await self._open_pubsub()
            await self._beat()
        except (*REDIS_ERRORS, BrokerError) as error:
            raise_if_cancelled(error)
            # Start anyway (SPEC §7): the listener keeps reconnecting, then restores
            # presence and has the hub catch up; /healthz says 503 until then.
            log.warning("Redis unreachable at %s at start (%s); serving without it and "
                        "reconnecting in the background", self._safe_url(), error)
            await self._drop_pubsub()
        self._spawn(self._listen(), "redis-listener")
        self._spawn(self._maintain_presence(), "redis-presence")
        self._spawn(self._publisher(), "redis-publisher")

    async def close(self) -> None:
        await self._stop_tasks()
        if self._redis is not None:
            try:
                await self._scripts["release"](
                    keys=[self._workers_key, self._own_key], args=[self.worker_id]
                )
                await self._sweep()  # announce this worker's users offline now
            except (*REDIS_ERRORS, BrokerError) as error:
                log.warning("could not release presence in Redis: %s", error)
        self._held.clear()
        self._channels.clear()
        await self._close_clients()

    async def _stop_tasks(self) -> None:
        tasks = set(self._tasks)
        while tasks:
            for task in tasks:
                task.cancel()
            # Cancel again if a task did not stop (see ``raise_if_cancelled``).
            _, tasks = await asyncio.wait(tasks, timeout=1.0)

    async def _close_clients(self) -> None:
        await self._drop_pubsub()
        if self._sub_redis is not None:
            await self._sub_redis.aclose()
            self._sub_redis = None
        if self._redis is not None:
            pool = self._redis.connection_pool
            await self._redis.aclose()
            await pool.aclose()
            self._redis = None

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{name}-{self.worker_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Redis transport task %s crashed", task.get_name(),
                      exc_info=task.exception())

    def _safe_url(self) -> str:
        parts = urlsplit(self._url)
        host = parts.hostname or parts.path
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")

    # -- pub/sub -------------------------------------------------------------------

    async def _open_pubsub(self) -> None:
        assert self._sub_redis is not None
        pubsub = self._sub_redis.pubsub()
        try:
            await pubsub.subscribe(self._control)  # connects, or raises
            async with self._sub_lock:
                # Channels subscribed meanwhile were only recorded: apply them all.
                if self._channels:
                    await pubsub.subscribe(*(self.prefix + c for c in self._channels))
                self._pubsub = pubsub
        except BaseException:
            await pubsub.aclose()
            raise

    async def _drop_pubsub(self) -> None:
        async with self._sub_lock:
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()

    async def _listen(self) -> None:
        """Read events forever; on a lost connection resubscribe and catch up."""
        while True:
            try:
                if self._pubsub is not None:  # None: Redis was unreachable at start
                    await self._read(self._pubsub)
            except REDIS_ERRORS as error:
                raise_if_cancelled(error)
                log.warning("Redis pub/sub connection lost (%s); reconnecting", error)
            except Exception as error:
                raise_if_cancelled(error)
                log.exception("Redis pub/sub listener failed; reconnecting")
            await self._drop_pubsub()
            await self._reopen_with_backoff()
            self.reconnects += 1
            try:
                await self._beat()  # a restarted Redis has forgotten our presence
            except (*REDIS_ERRORS, BrokerError) as error:
                raise_if_cancelled(error)
                log.warning("presence heartbeat after reconnect failed: %s", error)
            if self._reconnected is not None:
                try:
                    await self._reconnected()
                except Exception as error:
                    raise_if_cancelled(error)
                    log.exception("catching up after a broker reconnect failed")

    async def _reopen_with_backoff(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._open_pubsub()
                log.warning("Redis pub/sub reconnected: %d channels", len(self._channels))
                return
            except REDIS_ERRORS as error:
                raise_if_cancelled(error)
                log.warning("Redis unreachable (%s); retrying in up to %.1fs", error, delay)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self._backoff_max)

    async def _read(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged: float | None = None
        prefix_len = len(self.prefix)
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            now = loop.time()
            if message is None:
                # A silent connection may be half-open: ask, and give up on no answer.
                if pinged is None and now - heard >= self._idle_ping:
                    await pubsub.ping()
                    pinged = now
                elif pinged is not None and now - pinged > max(self._idle_ping, 2.0):
                    raise ConnectionError("Redis did not answer a ping on pub/sub")
                continue
            heard, pinged = now, None
            if message["type"] != "message":
                continue
            channel = message["channel"][prefix_len:]
            if channel in self._channels and self._receiver is not None:
                try:
                    self._receiver(channel, message["data"])
                except Exception:
                    log.exception("delivering an event on %s failed", channel)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        await self._apply("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)  # stops delivery now, whatever Redis says
        await self._apply("unsubscribe", channel)

    async def _apply(self, command: str, channel: str) -> None:
        """Tell Redis if connected; otherwise the reconnect applies ``_channels``."""
        async with self._sub_lock:
            if self._pubsub is None:
                return
            try:
                await getattr(self._pubsub, command)(self.prefix + channel)
            except REDIS_ERRORS as error:
                raise_if_cancelled(error)
                # The listener sees the same failure and resubscribes everything.
                log.warning("Redis %s %s failed: %s", command, channel, error)

    async def publish(self, channel: str, payload: str) -> None:
        if self._redis is None:
            raise BrokerError("Redis transport is not connected")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (self.prefix + channel, payload, future)
        if self._outgoing is None:  # no publisher task (starting or closing): directly
            await self._publish_batch([item])
        else:
            self._outgoing.append(item)
            self._publish_ready.set()
        await future

    async def _publisher(self) -> None:
        """Send queued publishes in order, several per round trip (a pipeline).

        One PUBLISH per command costs a pool checkout, a write and a read each; under
        load the events of many senders share one pipeline instead (bench s7).
        """
        outgoing: list[tuple[str, str, asyncio.Future[None]]] = []
        self._outgoing = outgoing
        batch: list[tuple[str, str, asyncio.Future[None]]] = []
        try:
            while True:
                await self._publish_ready.wait()
                self._publish_ready.clear()
                while outgoing:
                    batch = outgoing[:PUBLISH_BATCH]
                    del outgoing[:PUBLISH_BATCH]
                    await self._publish_batch(batch)
                    batch = []
        finally:
            self._outgoing = None
            failure = BrokerError("Redis transport closed before publishing")
            for _, _, future in batch + outgoing:
                if not future.done():
                    future.set_exception(failure)

    async def _publish_batch(self, batch: list[tuple[str, str, asyncio.Future[None]]]) -> None:
        assert self._redis is not None
        try:
            if len(batch) == 1:
                await self._redis.publish(batch[0][0], batch[0][1])
            else:
                pipe = self._redis.pipeline(transaction=False)
                for channel, payload, _ in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
        except REDIS_ERRORS as error:
            raise_if_cancelled(error)
            failure = BrokerError(f"publish to Redis failed: {error}")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(failure)
        else:
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def ping(self) -> None:
        if self._redis is None:
            raise BrokerError("Redis transport is not connected")
        try:
            await asyncio.wait_for(self._redis.ping(), self._ping_timeout)
        except (*REDIS_ERRORS, TimeoutError) as error:
            raise_if_cancelled(error)
            raise BrokerError(f"Redis does not answer: {error!r}") from error
        if self._pubsub is None:
            raise BrokerError("Redis pub/sub is reconnecting")

    @property
    def subscribed_channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    # -- presence ------------------------------------------------------------------

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self._redis is None:
            raise BrokerError("Redis transport is not connected")
        try:
            return await self._scripts[name](keys=keys, args=args)
        except REDIS_ERRORS as error:
            raise_if_cancelled(error)
            raise BrokerError(f"Redis presence {name} failed: {error}") from error

    async def presence_add(self, username: str) -> bool:
        # ``_held`` is the truth for this worker: the heartbeat restores it in Redis
        # if this call fails. The lock keeps a heartbeat from resurrecting a user
        # between a snapshot of ``_held`` and its script.
        async with self._presence_lock:
            self._held.add(username)
            added = await self._run(
                "add", [self._workers_key, self._own_key, self._online_key],
                [self.worker_id, self._ttl_ms, username],
            )
        return bool(added)

    async def presence_remove(self, username: str) -> bool:
        async with self._presence_lock:
            self._held.discard(username)
            removed = await self._run(
                "remove", [self._workers_key, self._own_key, self._online_key],
                [self._worker_prefix, username],
            )
        return bool(removed)

    async def presence_online(self) -> list[str]:
        return sorted(await self._run("online", [self._workers_key], [self._worker_prefix]))

    async def _beat(self) -> None:
        """Refresh this worker's deadline and set; announce users Redis had lost."""
        async with self._presence_lock:
            fresh = await self._scripts["heartbeat"](
                keys=[self._workers_key, self._own_key, self._online_key],
                args=[self.worker_id, self._ttl_ms, *sorted(self._held)],
            )
        for username in fresh:
            await self.publish(PRESENCE_CHANNEL, presence_event(username, True))

    async def _sweep(self) -> list[str]:
        """Announce offline the users only dead workers held (once, across workers)."""
        gone: list[str] = await self._scripts["sweep"](
            keys=[self._workers_key, self._online_key], args=[self._worker_prefix]
        )
        for username in gone:
            log.info("presence: %s offline (its worker stopped heartbeating)", username)
            await self.publish(PRESENCE_CHANNEL, presence_event(username, False))
        return gone

    async def _maintain_presence(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat()
                await self._sweep()
            except (*REDIS_ERRORS, BrokerError) as error:
                raise_if_cancelled(error)
                log.warning("presence heartbeat failed: %s", error)
            except Exception as error:  # keep beating: a dead loop takes users offline
                raise_if_cancelled(error)
                log.exception("presence heartbeat crashed")
