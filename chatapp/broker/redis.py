"""The Redis transport: pub/sub fan-out shared by every worker and host.

Pub/sub is at-most-once, so a lost subscriber connection is re-established with
backoff and the hub is told (``reconnected``) to replay room events from storage.
Channels and keys carry a prefix (``chatapp:<db>`` unless ``?prefix=`` is given,
``redis_target``), which presence (``presence_redis.py``) and the limits
(``limits_redis.py``) share.
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

from ..wakeup import Wakeup
from . import BrokerError, Receiver, Reconnected, Transport

log = logging.getLogger(__name__)

# Redis unreachable shows up as either of these, depending on where it fails.
REDIS_ERRORS = (RedisError, OSError)
PUBLISH_BATCH = 256  # publishes per pipeline at most

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


def redis_target(url: str) -> tuple[str, str]:
    """The URL for redis-py, and the prefix of our keys and channels (ending in ``:``)."""
    url, prefix = split_url(url)
    options = aioredis.ConnectionPool.from_url(url).connection_kwargs
    return url, f"{prefix or 'chatapp:' + str(options.get('db', 0))}:"


class RedisTransport(Transport):
    shared_across_processes = True

    def __init__(
        self,
        url: str,
        *,
        backoff_max: float = 5.0,
        ping_timeout: float = 1.0,
        idle_ping: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self._url, self.prefix = redis_target(url)
        self._backoff_max, self._ping_timeout, self._idle_ping = (
            backoff_max, ping_timeout, idle_ping)
        self._max_connections = max_connections
        self.worker_id = uuid.uuid4().hex[:16]
        # Keeps the pub/sub connection subscribed even with no app channel.
        self._control = f"{self.prefix}_worker:{self.worker_id}"
        self.subscriber_name = f"chatapp-sub-{self.worker_id}"  # CLIENT LIST shows it

        self._receiver: Receiver | None = None
        self._reconnected: Reconnected | None = None
        self._redis: aioredis.Redis | None = None
        self._sub_redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._sub_lock = asyncio.Lock()
        self._channels: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
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
        try:
            await self._open_pubsub()
        except (*REDIS_ERRORS, BrokerError) as error:
            raise_if_cancelled(error)
            # Start anyway (SPEC §7): the listener keeps reconnecting, then has the
            # hub catch up; /healthz says 503 until then.
            log.warning("Redis unreachable at %s at start (%s); serving without it and "
                        "reconnecting in the background", self._safe_url(), error)
            await self._drop_pubsub()
        self._spawn(self._listen(), "redis-listener")
        self._spawn(self._publisher(), "redis-publisher")

    async def close(self) -> None:
        await self._stop_tasks()
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
