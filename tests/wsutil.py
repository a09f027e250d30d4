"""A thin client over Quart's websocket test connection that speaks SPEC §6 frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from quart import Quart
from quart.testing import QuartClient
from quart.testing.connections import WebsocketDisconnectError

from chatapp import create_app

from . import conftest
from .hashing import cheap_passwords

TIMEOUT = 5.0  # seconds to wait for an event that must come (only a failure waits)
QUIET = 0.05  # seconds of silence that count as "nothing more is coming"


class ClosedError(Exception):
    """The server closed the websocket; ``code`` is its close code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"websocket closed with {code}")
        self.code = code


class WS:
    """Receives frames, flattens arrays into events, and remembers every event."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._pending: deque[dict[str, Any]] = deque()
        self.events: list[dict[str, Any]] = []  # every event received, in order
        self.frames: list[Any] = []  # every decoded frame, as sent by the server
        self.hello: dict[str, Any] | None = None
        self._refs = 0

    # sending
    async def send(self, type_: str, **fields: Any) -> None:
        await self.conn.send(json.dumps({"type": type_, **fields}))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def request(self, type_: str, reply: str, **fields: Any) -> dict[str, Any]:
        """Send a frame with a fresh ref and wait for the reply of type ``reply``."""
        self._refs += 1
        ref = f"r{self._refs}"
        await self.send(type_, ref=ref, **fields)
        return await self.expect(reply, ref=ref)

    # receiving
    async def _frame(self, wait: float | None) -> None:
        try:
            data = await asyncio.wait_for(self.conn.receive(), wait)
        except WebsocketDisconnectError as error:
            raise ClosedError(error.args[0] if error.args else 1000) from None
        assert isinstance(data, str), f"server sent a non-text frame: {data!r}"
        frame = json.loads(data)
        self.frames.append(frame)
        events = frame if isinstance(frame, list) else [frame]
        for event in events:
            assert isinstance(event, dict) and isinstance(event.get("type"), str), event
            self._pending.append(event)
            self.events.append(event)

    async def next(self, wait: float | None = TIMEOUT) -> dict[str, Any]:
        """The next event, whether it came alone or inside an array."""
        if not self._pending:
            await self._frame(wait)
        return self._pending.popleft()

    async def expect(
        self, type_: str, wait: float = TIMEOUT, **match: Any
    ) -> dict[str, Any]:
        """Skip events until one of ``type_`` whose fields equal ``match``."""
        return await asyncio.wait_for(self._find(type_, match), wait)

    async def _find(self, type_: str, match: dict[str, Any]) -> dict[str, Any]:
        while True:
            event = await self.next(None)
            if event["type"] == type_ and all(event.get(k) == v for k, v in match.items()):
                return event

    async def until_pong(self, wait: float = TIMEOUT) -> list[dict[str, Any]]:
        """Every unread event up to a fresh ping's pong: a barrier proving "nothing came".

        The server handles one connection's frames in order, so anything it queued
        for this connection before the ping arrives ahead of the pong.
        """
        self._refs += 1
        ref = f"barrier{self._refs}"
        await self.send("ping", ref=ref)
        got: list[dict[str, Any]] = []
        while True:
            event = await self.next(wait)
            if event["type"] == "pong" and event.get("ref") == ref:
                return got
            got.append(event)

    async def drain(self, quiet: float = QUIET) -> list[dict[str, Any]]:
        """Everything that arrives until the connection is quiet for ``quiet`` seconds."""
        got: list[dict[str, Any]] = []
        while True:
            try:
                got.append(await self.next(quiet))
            except TimeoutError:
                return got

    async def closed(self, wait: float = TIMEOUT) -> int:
        """Read until the server closes the connection; its close code."""
        async def read_to_close() -> int:
            while True:
                try:
                    await self.next(None)
                except ClosedError as closed:
                    return closed.code

        return await asyncio.wait_for(read_to_close(), wait)


@contextlib.asynccontextmanager
async def connect(client: QuartClient, **headers: str) -> AsyncIterator[WS]:
    """Open /ws for ``client`` and read its ``hello``."""
    async with client.websocket("/ws", headers=headers or None) as conn:
        ws = WS(conn)
        hello = await ws.next()
        assert hello["type"] == "hello", hello
        ws.hello = hello
        yield ws


@contextlib.asynccontextmanager
async def app_with(tmp_path: Path, **overrides: Any) -> AsyncIterator[conftest.AuthActions]:
    """An app built with other settings, served for the block; yields its ``auth``."""
    app: Quart = create_app(conftest.test_config(tmp_path, **overrides))
    cheap_passwords(app)
    async with app.test_app():
        yield conftest.AuthActions(app)


def session_cookie(client: QuartClient) -> str:
    """The ``Cookie`` header value that carries ``client``'s session."""
    assert client.cookie_jar is not None
    return "; ".join(f"{c.name}={c.value}" for c in client.cookie_jar)
