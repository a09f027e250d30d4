"""Peer 1: the `websockets` library with `websockets.broadcast()` (the Python ceiling).

Receives `{"type": "send", "room", "body", "nonce"}` and broadcasts one `message` event,
JSON-encoded once, to every open connection, the sender's included.

    python -m bench.peers.ws_broadcast --port 8101
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from websockets.asyncio.server import broadcast, serve

from bench.peers.common import Room

CONNECTIONS: set = set()
ROOM = Room()


async def handler(ws) -> None:
    CONNECTIONS.add(ws)
    try:
        await ws.send(json.dumps({"type": "hello"}))
        async for raw in ws:
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            if kind == "send":
                broadcast(CONNECTIONS, json.dumps(ROOM.make_event(frame)))
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
    finally:
        CONNECTIONS.discard(ws)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    # compression=None: the load generator never offers permessage-deflate either.
    async with serve(
        handler, "127.0.0.1", port, compression=None, max_size=65536, ping_interval=20, backlog=1024
    ):
        await stop


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8101)
    asyncio.run(main(p.parse_args().port))
