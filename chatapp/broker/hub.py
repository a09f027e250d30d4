"""Local fan-out: one process's websocket outboxes, grouped by channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from ..events import (
    CLOSE_SLOW_CONSUMER,
    CONTROL_PREFIX,
    ROOM_PREFIX,
    is_sheddable,
    room_event_seq,
)
from ..metrics import Metrics
from ..server import OutFrame, Wire
from ..wakeup import Wakeup
from . import BrokerError, Transport

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 1024  # queued events per connection before it counts as a slow consumer
FRAME_LIMIT = 256  # events coalesced into one frame at most
# ... and characters: clients cap what they accept (the websockets library: 1 MiB by
# default), so a frame of many large events stops here (a single event may be more).
# At most 4 bytes a character: under 1 MiB.
FRAME_CHARS = 256 * 1024 - 2
CATCH_UP_RETRY, CATCH_UP_RETRY_MAX = 0.5, 10.0  # seconds between catch-up attempts


class Outbox:
    """One connection's bounded queue of encoded events, filled without awaiting.

    With a ``wire`` (see ``chatapp.server``), an event is written to the socket at once
    while nothing is queued; under load (see ``FlushPacer``) it is queued and flushed
    with the events that follow it, as one frame, on the pacer's next tick. The
    connection's writer task takes over whenever the socket pushes back or there is
    no wire.

    When the queue is full, typing, presence and viewing events are shed first; if
    only room events remain the connection is closed with 1013 (it recovers with
    ``sync``), so a reader that stalls never holds anyone else back.
    """

    __slots__ = ("_items", "_ready", "limit", "close_code", "close_reason", "channels",
                 "on_control", "shed", "own_typing_suffix", "oldest_at", "frame_events",
                 "wire", "pacer", "_deferred", "on_close", "on_backlog")

    def __init__(
        self, limit: int = OUTBOX_LIMIT, on_control: Callable[[str], None] | None = None
    ) -> None:
        # Lists, not deques: at most ``limit`` items, and far lighter when empty.
        self._items: list[str] = []
        self._ready = Wakeup()
        self.limit = limit
        self.close_code: int | None = None
        self.close_reason = ""
        self.channels: set[str] = set()
        self.on_control = on_control
        self.shed = 0
        # Typing events ending with this (the owner's name) are not echoed back.
        self.own_typing_suffix: str | None = None
        # When the oldest queued event arrived, and how many events the last frame
        # carried: the fan-out latency and delivery metrics.
        self.oldest_at = 0.0
        self.frame_events = 0
        self.wire: Wire | None = None
        self.pacer: FlushPacer | None = None
        self._deferred = False  # waiting in the pacer's list for its next tick
        self.on_close: Callable[[], None] | None = None  # e.g. stop reading the socket
        # Called when events wait for a writer task, for one that only runs while
        # there is a backlog (the wire writes everything else).
        self.on_backlog: Callable[[], None] | None = None

    def attach(self, wire: Wire, pacer: FlushPacer) -> None:
        """Write through ``wire`` from now on (call once the first frame is queued)."""
        self.wire, self.pacer = wire, pacer

    def __len__(self) -> int:
        return len(self._items)

    def push(self, payload: str, frame: OutFrame | None = None, busy: bool | None = None) -> bool:
        """Deliver or queue an event; True if it was written to the socket at once.

        ``frame`` is the event's ``OutFrame`` (framed, and compressed, once for all
        recipients) and ``busy`` the
        pacer's verdict (a broadcast works both out once for every recipient).
        """
        if self.close_code is not None:
            return False
        if payload.startswith(CONTROL_PREFIX):
            if self.on_control is not None:
                self.on_control(payload)
            return False
        if (
            self.own_typing_suffix is not None
            and payload.endswith(self.own_typing_suffix)
            and payload.startswith('{"type":"typing"')
        ):
            return False
        items = self._items
        wire = self.wire
        if wire is None or self.pacer is None:
            busy = False
        elif busy is None:
            busy = self.pacer.busy
        if not items:
            if wire is not None and not busy and wire.write(frame or OutFrame(payload)):
                return True
            self.oldest_at = time.monotonic()
        elif len(items) >= self.limit and not self._make_room(payload):
            return False
        items.append(payload)
        if not busy:
            self._wake()
        elif not self._deferred:
            self._deferred = True
            self.pacer.defer(self)  # type: ignore[union-attr]
        return False

    def push_first(self, payload: str) -> None:
        """Queue an event ahead of everything else (the connection's ``hello``)."""
        if self.close_code is None:
            self._items.insert(0, payload)
            self._wake()

    def _wake(self) -> None:
        """Something is queued for the writer task: wake it, or have one started."""
        self._ready.set()
        if self.on_backlog is not None:
            self.on_backlog()

    def _make_room(self, payload: str) -> bool:
        self.shed += 1
        if is_sheddable(payload):
            return False
        for index, queued in enumerate(self._items):
            if is_sheddable(queued):
                del self._items[index]
                return True
        self.close(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect and sync")
        return False

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._items.clear()
            self._ready.set()
            if self.on_close is not None:
                self.on_close()

    async def next_frame(self, pace: Callable[[], Awaitable[None]] | None = None) -> str | None:
        """Wait for the next frame to send; None once the connection must close.

        Several queued events go out as one JSON array (SPEC §6), which keeps the
        per-frame cost flat when a busy room outpaces one connection. ``pace`` may
        hold the frame back a moment, so more events join it.
        """
        while True:
            while not self._items:
                if self.close_code is not None:
                    return None
                self._ready.clear()
                await self._ready.wait()
            if pace is not None:
                await pace()
            if self.close_code is not None:
                return None
            if self._items:  # else a tick's flush took them meanwhile
                return self._take()

    def flush(self, shared: dict[str, OutFrame] | None = None) -> int:
        """On the pacer's tick: write what is queued as one frame, if the socket takes
        it now; the number of events written (0: the writer task takes over).

        ``shared`` holds this tick's frames by text: connections in the same rooms
        queue the same events, so their frame is built (and compressed) once.
        """
        self._deferred = False
        if self.close_code is not None or not self._items:
            return 0
        wire = self.wire
        if wire is None or not wire.writable():
            self._wake()
            return 0
        text = self._take()
        frame = None if shared is None else shared.get(text)
        if frame is None:
            frame = OutFrame(text)
            if shared is not None:
                shared[text] = frame
        wire.write(frame)
        if self._items:  # more than one frame holds: the writer sends the rest
            self._wake()
        return self.frame_events

    def _take(self) -> str:
        items = self._items
        if len(items) == 1:
            self.frame_events = 1
            return items.pop()
        count = min(len(items), FRAME_LIMIT)
        size = len(items[0])
        for index in range(1, count):
            size += len(items[index]) + 1
            if size > FRAME_CHARS:
                count = index
                break
        self.frame_events = count
        batch = items[:count]
        del items[:count]
        if items:
            self.oldest_at = time.monotonic()
        return "[" + ",".join(batch) + "]"


class FlushPacer:
    """Under load, lets connections flush together on a short tick.

    A frame costs far more to write (and for the client, to read) than an event costs
    to add to it. While the process is quiet, events are written at once (lowest
    latency). Once it is busy, events wait for the next shared tick, so the events of
    several messages leave in one frame: more deliveries per CPU-second on both ends,
    for at most ``tick`` seconds of extra latency. Busy means, over the last window,
    more than ``busy_share`` of a core, or more than ``busy_rate`` deliveries per
    second (a busy room costs its clients per frame even when this process has
    cores to spare, e.g. with several workers). Outboxes with a wire are flushed by
    the tick itself (no task per connection wakes); writer tasks wait for it through
    ``pace``.
    """

    def __init__(self, busy_share: float = 0.85, tick: float = 0.005,
                 window: float = 0.05, busy_rate: float = 20_000,
                 on_flush: Callable[[int, int, float], None] | None = None) -> None:
        self._busy_share = busy_share
        self._busy_rate = busy_rate
        self._tick = tick
        self._window = window
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._busy = False
        self._event: asyncio.Event | None = None
        self._deferred: list[Outbox] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        # Deliveries since the window began (the hub adds each fan-out's recipients).
        self.deliveries = 0
        # Told (events, frames, longest wait) after each tick that wrote something.
        self.on_flush = on_flush

    @property
    def busy(self) -> bool:
        wall = time.monotonic()
        elapsed = wall - self._wall
        if elapsed >= self._window:
            cpu = time.process_time()
            self._busy = (
                cpu - self._cpu > self._busy_share * elapsed
                or self.deliveries > self._busy_rate * elapsed
            )
            self._wall, self._cpu, self.deliveries = wall, cpu, 0
        return self._busy

    async def pace(self) -> None:
        if not self.busy:
            return
        event = self._event
        if event is None:
            event = self._event = asyncio.Event()
            asyncio.get_running_loop().call_later(self._tick, self._release, event)
        await event.wait()

    def _release(self, event: asyncio.Event) -> None:
        self._event = None
        event.set()

    def defer(self, outbox: Outbox) -> None:
        """Flush this outbox on the next tick."""
        self._deferred.append(outbox)
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self._tick, self._flush_deferred
            )

    def _flush_deferred(self) -> None:
        self._flush_timer = None
        deferred, self._deferred = self._deferred, []
        events = frames = 0
        oldest = now = time.monotonic()
        shared: dict[str, OutFrame] = {}
        for outbox in deferred:
            queued_at = outbox.oldest_at
            written = outbox.flush(shared)
            if written:
                events += written
                frames += 1
                oldest = min(oldest, queued_at)
        if frames and self.on_flush is not None:
            self.on_flush(events, frames, now - oldest)


class Hub:
    """Routes every event the transport receives to this process's outboxes.

    The transport is subscribed to a channel only while a local outbox wants it.
    """

    def __init__(self, transport: Transport, metrics: Metrics | None = None) -> None:
        self.transport = transport
        self.metrics = metrics
        self.pacer = FlushPacer(on_flush=self.count_written)
        self._channels: dict[str, set[Outbox]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # The newest room seq this process delivered per room channel; after a lost
        # broker connection, ``catch_up`` replays from storage what came after it.
        self.delivered_seq: dict[str, int] = {}
        self.catch_up: Callable[[dict[str, int]], Awaitable[None]] | None = None

    async def start(self) -> None:
        await self.transport.connect(self.deliver, self._reconnected)

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

    def deliver(self, channel: str, payload: str) -> None:
        if channel.startswith(ROOM_PREFIX):
            seq = room_event_seq(payload)  # any kind of room event; None for typing
            if seq is not None:
                self.note_seq(channel, seq)
        self._fan_out(channel, payload)

    def _fan_out(self, channel: str, payload: str) -> None:
        outboxes = self._channels.get(channel)
        if not outboxes:
            return
        started = time.monotonic()
        pacer = self.pacer
        pacer.deliveries += len(outboxes)
        busy = pacer.busy
        frame = None if payload.startswith(CONTROL_PREFIX) else OutFrame(payload)
        written = 0
        for outbox in tuple(outboxes):
            written += outbox.push(payload, frame, busy)
        if written:
            self.count_written(written, elapsed=time.monotonic() - started)

    def count_written(
        self, events: int, frames: int | None = None, elapsed: float | None = None,
        direct: bool = True,
    ) -> None:
        """Account for events written to sockets (the metrics of SPEC §8).

        ``frames`` defaults to one per event; ``elapsed`` is the longest any of them
        waited (a fan-out loop, a tick's flush, or a writer task's frame); ``direct``
        says they went straight to the socket through a wire (the fast path).
        """
        metrics = self.metrics
        if metrics is not None:
            metrics.events_delivered.inc(events)
            frames = events if frames is None else frames
            metrics.frames_sent.inc(frames)
            if direct:
                metrics.frames_direct.inc(frames)
            if elapsed is not None:
                metrics.fanout_latency.observe(elapsed)

    def note_seq(self, channel: str, seq: int) -> None:
        """Record a seq a client of this process has seen (its hello's snapshot)."""
        if seq > self.delivered_seq.get(channel, 0):
            self.delivered_seq[channel] = seq

    def local_subscribers(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def outboxes(self) -> set[Outbox]:
        return {outbox for group in self._channels.values() for outbox in group}

    async def publish(self, channel: str, payload: str) -> None:
        try:
            await self.transport.publish(channel, payload)
        except BrokerError:
            # The broker is away: this process's own clients still get the event now.
            # Its seq is not noted as delivered, so the catch-up after the reconnect
            # still replays what other processes published meanwhile.
            self._fan_out(channel, payload)
            raise

    async def add(self, outbox: Outbox, channel: str) -> None:
        group = self._channels.setdefault(channel, set())
        first = not group
        group.add(outbox)
        outbox.channels.add(channel)
        if first:
            await self.transport.subscribe(channel)

    async def remove(self, outbox: Outbox, channel: str) -> None:
        if self._detach(outbox, channel):
            await self._unsubscribe(channel)

    def _detach(self, outbox: Outbox, channel: str) -> bool:
        """Drop an outbox from a channel locally; True if it was the last one."""
        outbox.channels.discard(channel)
        group = self._channels.get(channel)
        if group is None:
            return False
        group.discard(outbox)
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

    @contextlib.asynccontextmanager
    async def subscription(self, outbox: Outbox, channels: Iterable[str]) -> AsyncIterator[Outbox]:
        """Subscribe an outbox to channels; always unsubscribe it from all on exit."""
        try:
            for channel in channels:
                await self.add(outbox, channel)
            yield outbox
        finally:
            await self.drop(outbox)

    async def drop(self, outbox: Outbox) -> None:
        """Unsubscribe an outbox from every channel it is in."""
        # Local state is cleaned synchronously, so even a cancelled handler leaves no
        # outbox behind; only the transport calls are awaited.
        emptied = [c for c in list(outbox.channels) if self._detach(outbox, c)]
        for channel in emptied:
            try:
                await self._unsubscribe(channel)
            except Exception:
                log.warning("could not unsubscribe from %s", channel, exc_info=True)
