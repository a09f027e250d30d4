"""Peer 4: a naive Quart + Hypercorn chat.

Per connection an `asyncio.Queue` and a writer task doing `await websocket.send(...)`
per event, and each event JSON-encoded once per recipient, as straightforward code does.

    hypercorn --bind 127.0.0.1:8104 bench.peers.quart_naive:app
"""

from __future__ import annotations

import asyncio
import json

from quart import Quart, websocket

from bench.peers.common import Room

app = Quart(__name__)
QUEUES: set[asyncio.Queue] = set()
ROOM = Room()


@app.get("/")
async def index():
    return "naive quart chat"


@app.websocket("/ws")
async def ws():
    queue: asyncio.Queue = asyncio.Queue()
    QUEUES.add(queue)

    async def writer() -> None:
        while True:
            event = await queue.get()
            await websocket.send(json.dumps(event))

    task = asyncio.ensure_future(writer())
    try:
        await websocket.send(json.dumps({"type": "hello"}))
        while True:
            raw = await websocket.receive()
            try:
                frame = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(frame, dict) and frame.get("type") == "send":
                event = ROOM.make_event(frame)
                for q in QUEUES:
                    q.put_nowait(event)
            elif isinstance(frame, dict) and frame.get("type") == "ping":
                queue.put_nowait({"type": "pong"})
    finally:
        QUEUES.discard(queue)
        task.cancel()
