"""Half-open connections are closed; any frame from the client, protocol-level pings
and pongs included, shows it is alive (SPEC §6). A real Hypercorn process with a short
CHATAPP_IDLE_TIMEOUT and the ``websockets`` client, whose own keepalive is off."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.protocol import State

from .servers import Browser, Server, events_of

pytestmark = pytest.mark.slow

TIMEOUT = 1.5  # CHATAPP_IDLE_TIMEOUT for these servers


async def close_code(ws: Any, timeout: float = 30) -> int | None:
    """Read until the server closes; return the close code it sent."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def pong(ws: Any) -> None:
    """An app-level ping answered: the connection is open and served."""
    await ws.send(json.dumps({"type": "ping"}))
    while True:
        frame = await asyncio.wait_for(ws.recv(), 30)
        if any(event["type"] == "pong" for event in events_of(frame)):
            return


@pytest.mark.parametrize("keepalive", ["ping", "pong"])
async def test_protocol_frames_alone_keep_a_connection_open(tmp_path: Path, keepalive: str) -> None:
    server = Server(tmp_path, {"CHATAPP_IDLE_TIMEOUT": str(TIMEOUT)}).start()
    try:
        alice = Browser(server.base)
        assert alice.register("alice") == 303
        connect: Any = websockets.connect  # the library's own pings off: we decide
        async with connect(server.ws_url, additional_headers=alice.ws_headers(),
                           ping_interval=None) as silent, \
                connect(server.ws_url, additional_headers=alice.ws_headers(),
                        ping_interval=None) as bot:
            await pong(silent)
            await pong(bot)

            async def keep_alive() -> None:
                while True:  # a protocol ping (answered by the server) or a bare pong
                    await (bot.ping() if keepalive == "ping" else bot.pong())
                    await asyncio.sleep(TIMEOUT / 8)

            beating = asyncio.create_task(keep_alive())
            try:
                # The silent one goes as half-open: the timeout has passed for both.
                assert await close_code(silent) == 1001
                await asyncio.sleep(2 * TIMEOUT)  # and passes twice more
                assert bot.state is State.OPEN
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            await pong(bot)
            # Once it falls silent too, it is closed like the other.
            assert await close_code(bot) == 1001
    finally:
        server.kill()
