"""The flush pacer: immediate flushes when idle, shared ticks when busy."""

from __future__ import annotations

import asyncio
import json
import time

from chatapp.events import Event
from chatapp.sendqueue import FlushPacer, SendQueue


def looks_busy(pacer: FlushPacer) -> None:
    """As if the process had used a whole core since the window began (burning CPU
    for real proves nothing on a machine shared with other jobs)."""
    pacer._cpu = time.process_time() - 10.0


async def test_idle_process_flushes_at_once() -> None:
    pacer = FlushPacer(window=0.01, tick=0.5)
    await asyncio.sleep(0.02)
    started = time.monotonic()
    await pacer.pace()
    assert time.monotonic() - started < 0.1


async def test_busy_process_coalesces_events_on_the_tick() -> None:
    pacer = FlushPacer(window=0.01, tick=0.05)
    looks_busy(pacer)
    await asyncio.sleep(0.02)  # the window is over: the next look measures it
    queue = SendQueue()
    queue.push(Event("message", json.dumps({"type": "message", "seq": 1}), 1))

    async def late_pushes() -> None:
        await asyncio.sleep(0.01)
        queue.push(Event("message", json.dumps({"type": "message", "seq": 2}), 2))

    pusher = asyncio.create_task(late_pushes())
    frame = await queue.next_frame(pacer.pace)
    await pusher
    assert frame is not None
    assert [event["seq"] for event in json.loads(frame)] == [1, 2]


async def test_a_high_delivery_rate_counts_as_busy_even_with_cpu_to_spare() -> None:
    pacer = FlushPacer(window=0.01, busy_rate=1000)
    await asyncio.sleep(0.02)
    assert not pacer.busy
    pacer.deliveries = 100  # over busy_rate (1,000/s) unless the window took 100 ms
    await asyncio.sleep(0.01)
    assert pacer.busy
    await asyncio.sleep(0.02)  # a quiet window after it
    assert not pacer.busy
