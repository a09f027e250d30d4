"""One websocket's send queue, and the pacer that lets busy ones flush together.

The hub hands each event to the ``SendQueue`` of every local subscriber; the queue
writes it to the socket at once or keeps it (bounded) for a coalesced frame. Not to
be confused with the browser's ``static/outbox.js``: the messages a tab has yet to
send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .closecodes import CLOSE_SLOW_CONSUMER
from .events import TYPING, Event
from .metrics import Metrics
from .server import OutFrame, Wire
from .wakeup import Wakeup

QUEUE_LIMIT = 1024  # queued events per connection before it counts as a slow consumer
FRAME_LIMIT = 256  # events coalesced into one frame at most
# ... and characters: clients cap what they accept (the websockets library: 1 MiB by
# default), so a frame of many large events stops here (a single event may be more).
# At most 4 bytes a character: under 1 MiB.
FRAME_CHARS = 256 * 1024 - 2


class SendQueue:
    """One connection's bounded queue of encoded events, filled without awaiting.

    With a ``wire`` (see ``chatapp.server``), an event is written to the socket at once
    while nothing is queued; under load (see ``FlushPacer``) it is queued and flushed
    with the events that follow it, as one frame, on the pacer's next tick. The
    connection's writer task takes over whenever the socket pushes back or there is
    no wire.

    When the queue is full, sheddable events (typing, presence, viewing: by their
    ``kind``) are shed first; if only room events remain the connection is closed with
    1013 (it recovers with ``sync``), so a reader that stalls never holds anyone else
    back. Control events go to ``on_control`` instead of the socket.
    """

    __slots__ = ("_items", "_ready", "limit", "close_code", "close_reason", "channels",
                 "on_control", "shed", "own_typing_suffix", "oldest_at", "frame_events",
                 "wire", "pacer", "_deferred", "on_close", "on_backlog")

    def __init__(
        self, limit: int = QUEUE_LIMIT, on_control: Callable[[Event], None] | None = None,
        own_typing_suffix: str | None = None, on_close: Callable[[], None] | None = None,
        on_backlog: Callable[[], None] | None = None,
    ) -> None:
        # Lists, not deques: at most ``limit`` items, and far lighter when empty.
        self._items: list[Event] = []
        self._ready = Wakeup()
        self.limit = limit
        self.close_code: int | None = None
        self.close_reason = ""
        self.channels: set[str] = set()
        self.on_control = on_control
        self.shed = 0
        # Typing events ending with this (the owner's name field) are not echoed back.
        self.own_typing_suffix = own_typing_suffix
        # When the oldest queued event arrived, and how many events the last frame
        # carried: the fan-out latency and delivery metrics.
        self.oldest_at = 0.0
        self.frame_events = 0
        self.wire: Wire | None = None
        self.pacer: FlushPacer | None = None
        self._deferred = False  # waiting in the pacer's list for its next tick
        self.on_close = on_close  # e.g. stop reading the socket
        # Called when events wait for a writer task, for one that only runs while
        # there is a backlog (the wire writes everything else).
        self.on_backlog = on_backlog

    def attach(self, wire: Wire, pacer: FlushPacer) -> None:
        """Write through ``wire`` from now on (call once the first frame is queued)."""
        self.wire, self.pacer = wire, pacer

    def __len__(self) -> int:
        return len(self._items)

    def push(self, event: Event, frame: OutFrame | None = None, busy: bool | None = None) -> bool:
        """Deliver or queue an event; True if it was written to the socket at once.

        ``frame`` is the event's ``OutFrame`` (framed, and compressed, once for all
        recipients) and ``busy`` the
        pacer's verdict (a broadcast works both out once for every recipient).
        """
        if self.close_code is not None:
            return False
        if event.control:
            if self.on_control is not None:
                self.on_control(event)
            return False
        own = self.own_typing_suffix
        if own is not None and event.kind == TYPING and event.endswith(own):
            return False
        items = self._items
        wire = self.wire
        if wire is None or self.pacer is None:
            busy = False
        elif busy is None:
            busy = self.pacer.busy
        if not items:
            if wire is not None and not busy and wire.write(frame or OutFrame(event)):
                return True
            self.oldest_at = time.monotonic()
        elif len(items) >= self.limit and not self._make_room(event):
            return False
        items.append(event)
        if not busy:
            self._wake()
        elif not self._deferred:
            self._deferred = True
            self.pacer.defer(self)  # type: ignore[union-attr]
        return False

    def push_first(self, event: Event) -> None:
        """Queue an event ahead of everything else (the connection's ``hello``)."""
        if self.close_code is None:
            self._items.insert(0, event)
            self._wake()

    def _wake(self) -> None:
        """Something is queued for the writer task: wake it, or have one started."""
        self._ready.set()
        if self.on_backlog is not None:
            self.on_backlog()

    def _make_room(self, event: Event) -> bool:
        self.shed += 1
        if event.sheddable:
            return False
        for index, queued in enumerate(self._items):
            if queued.sheddable:
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
    cores to spare, e.g. with several workers). Queues with a wire are flushed by
    the tick itself (no task per connection wakes); writer tasks wait for it through
    ``pace``. Whatever reaches a socket, by any of these ways, is counted in
    ``metrics`` (``count_written``).
    """

    def __init__(self, metrics: Metrics | None = None, busy_share: float = 0.85,
                 tick: float = 0.005, window: float = 0.05,
                 busy_rate: float = 20_000) -> None:
        self.metrics = metrics
        self._busy_share = busy_share
        self._busy_rate = busy_rate
        self._tick = tick
        self._window = window
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._busy = False
        self._event: asyncio.Event | None = None
        self._deferred: list[SendQueue] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        # Deliveries since the window began (the hub adds each fan-out's recipients).
        self.deliveries = 0

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

    def defer(self, queue: SendQueue) -> None:
        """Flush this queue on the next tick."""
        self._deferred.append(queue)
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
        for queue in deferred:
            queued_at = queue.oldest_at
            written = queue.flush(shared)
            if written:
                events += written
                frames += 1
                oldest = min(oldest, queued_at)
        if frames:
            self.count_written(events, frames, now - oldest)

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
