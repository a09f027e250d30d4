"""Local fan-out: routes each event to this process's websocket send queues by channel."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..channels import ROOM_PREFIX
from ..events import Event
from ..metrics import Metrics
from ..sendqueue import FlushPacer, SendQueue
from ..server import OutFrame
from . import BrokerError, Transport

log = logging.getLogger(__name__)

CATCH_UP_RETRY, CATCH_UP_RETRY_MAX = 0.5, 10.0  # seconds between catch-up attempts


# Replays from storage the room events after these seqs (room channel -> seq).
CatchUp = Callable[[dict[str, int]], Awaitable[None]]


class Hub:
    """Routes every event the transport receives to this process's send queues.

    The transport is subscribed to a channel only while a local queue wants it. Events
    cross the transport packed (``Event.pack``): their kind and seq travel with them,
    so the fan-out never reads their JSON.
    """

    def __init__(self, transport: Transport, metrics: Metrics | None = None,
                 catch_up: CatchUp | None = None) -> None:
        self.transport = transport
        # This process's send side: its load (the fan-out adds its deliveries), the
        # shared flush tick, and the count of what reached the sockets.
        self.pacer = FlushPacer(metrics)
        self._channels: dict[str, set[SendQueue]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # The newest room seq this process delivered per room channel; after a lost
        # broker connection, ``catch_up`` replays from storage what came after it.
        self.delivered_seq: dict[str, int] = {}
        self.catch_up = catch_up

    async def start(self) -> None:
        await self.transport.connect(self._received, self._reconnected)

    def _received(self, channel: str, packed: str) -> None:
        try:
            event = Event.unpack(packed)
        except ValueError:
            # Not from a process of this version (the envelope is ours alone).
            log.warning("dropped a broker message on %s that is not a packed event: %.60r",
                        channel, packed)
            return
        self.deliver(channel, event)

    async def _reconnected(self) -> None:
        rooms = {
            channel: self.delivered_seq.get(channel, 0)
            for channel in self._channels
            if channel.startswith(ROOM_PREFIX)
        }
        log.warning("broker reconnected: catching up %d rooms from storage", len(rooms))
        if self.catch_up is not None and rooms:
            try:
                await self.catch_up(rooms)
            except Exception:
                # Storage is away too: retry from the same seqs (events arriving
                # meanwhile must not move the starting point past what was lost).
                log.warning("catching up from storage failed; retrying", exc_info=True)
                self.spawn(self._retry_catch_up(rooms), name="hub-catch-up")

    async def _retry_catch_up(self, rooms: dict[str, int]) -> None:
        delay = CATCH_UP_RETRY
        while True:
            await asyncio.sleep(delay)
            assert self.catch_up is not None
            try:
                await self.catch_up({c: seq for c, seq in rooms.items() if c in self._channels})
            except Exception as error:
                log.warning("catching up from storage failed again: %s", error)
                delay = min(delay * 2, CATCH_UP_RETRY_MAX)
            else:
                log.warning("caught up %d rooms from storage", len(rooms))
                return

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.transport.close()

    def deliver(self, channel: str, event: Event) -> None:
        """Hand an event to this process's subscribers of ``channel``."""
        if event.seq is not None:  # a room event, of any kind
            self.note_seq(channel, event.seq)
        self._fan_out(channel, event)

    def _fan_out(self, channel: str, event: Event) -> None:
        queues = self._channels.get(channel)
        if not queues:
            return
        started = time.monotonic()
        pacer = self.pacer
        pacer.deliveries += len(queues)
        busy = pacer.busy
        frame = None if event.control else OutFrame(event)
        written = 0
        for queue in tuple(queues):
            written += queue.push(event, frame, busy)
        if written:
            pacer.count_written(written, elapsed=time.monotonic() - started)

    def note_seq(self, channel: str, seq: int) -> None:
        """Record a seq a client of this process has seen (its hello's snapshot)."""
        if seq > self.delivered_seq.get(channel, 0):
            self.delivered_seq[channel] = seq

    def local_subscribers(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def queues(self) -> set[SendQueue]:
        return {queue for group in self._channels.values() for queue in group}

    async def publish(self, channel: str, event: Event) -> None:
        try:
            await self.transport.publish(channel, event.pack())
        except BrokerError:
            # The broker is away: this process's own clients still get the event now.
            # Its seq is not noted as delivered, so the catch-up after the reconnect
            # still replays what other processes published meanwhile.
            self._fan_out(channel, event)
            raise

    async def add(self, queue: SendQueue, channel: str) -> None:
        group = self._channels.setdefault(channel, set())
        first = not group
        group.add(queue)
        queue.channels.add(channel)
        if first:
            await self.transport.subscribe(channel)

    async def remove(self, queue: SendQueue, channel: str) -> None:
        if self._detach(queue, channel):
            await self._unsubscribe(channel)

    def _detach(self, queue: SendQueue, channel: str) -> bool:
        """Drop a queue from a channel locally; True if it was the last one."""
        queue.channels.discard(channel)
        group = self._channels.get(channel)
        if group is None:
            return False
        group.discard(queue)
        if group:
            return False
        del self._channels[channel]
        self.delivered_seq.pop(channel, None)
        return True

    async def _unsubscribe(self, channel: str) -> None:
        await self.transport.unsubscribe(channel)
        if channel in self._channels:  # someone subscribed again while we awaited
            await self.transport.subscribe(channel)

    def spawn(self, coro: Any, name: str) -> None:
        """Run a follow-up (e.g. subscribe a new room) in the background, logging a crash."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hub task %s crashed", task.get_name(), exc_info=task.exception())

    def subscription(self, queue: SendQueue, channels: Iterable[str]) -> Subscription:
        """``async with hub.subscription(queue, channels)``: the queue gets the channels'
        events inside, and is unsubscribed from every channel on exit, however it
        exits (``/ws`` holds one per connection)."""
        return Subscription(self, queue, channels)

    async def drop(self, queue: SendQueue) -> None:
        """Unsubscribe a queue from every channel it is in."""
        # Local state is cleaned synchronously, so even a cancelled handler leaves no
        # queue behind; only the transport calls are awaited.
        emptied = [c for c in list(queue.channels) if self._detach(queue, c)]
        for channel in emptied:
            try:
                await self._unsubscribe(channel)
            except Exception:
                log.warning("could not unsubscribe from %s", channel, exc_info=True)


class Subscription:
    """One queue's subscription (``Hub.subscription``). A class rather than a generator:
    it outlives every connection's setup, so it keeps nothing but its hub and queue."""

    __slots__ = ("_hub", "_queue", "_channels")

    def __init__(self, hub: Hub, queue: SendQueue, channels: Iterable[str]) -> None:
        self._hub, self._queue, self._channels = hub, queue, channels

    async def __aenter__(self) -> SendQueue:
        channels, self._channels = self._channels, ()
        try:
            for channel in channels:
                await self._hub.add(self._queue, channel)
        except BaseException:
            await self._hub.drop(self._queue)
            raise
        return self._queue

    async def __aexit__(self, *exc_info: object) -> None:
        await self._hub.drop(self._queue)
