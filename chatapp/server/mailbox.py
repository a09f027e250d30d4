"""A bounded queue with one consumer, lighter than ``asyncio.Queue``."""

from __future__ import annotations

import asyncio
from typing import Any

from ..wakeup import Wakeup


class Mailbox:
    """A bounded queue with one consumer: ``asyncio.Queue``'s ``get``/``put`` without
    its four deques (~3.3 KB per connection, bench s3), plus ``close``.

    Serves as Hypercorn's per-websocket app queue (which, once a wire has claimed the
    frames, carries two events in a connection's life: connect and disconnect) and as
    the wire's inbox. While it is full, producers wait (and with them the client's TCP
    stream); once closed, ``get`` returns None when it is empty and ``put`` drops.
    """

    __slots__ = ("_items", "_maxsize", "_ready", "_room", "closed")

    def __init__(self, maxsize: int = 0) -> None:
        self._items: list[Any] = []
        self._maxsize = maxsize
        self._ready = Wakeup()
        # Producers may be several (Hypercorn's reader, its writer on a lost socket).
        self._room: asyncio.Future[None] | None = None
        self.closed = False

    async def put(self, item: Any) -> None:
        while 0 < self._maxsize <= len(self._items) and not self.closed:
            if self._room is None or self._room.done():
                self._room = asyncio.get_running_loop().create_future()
            await self._room
        if self.closed:  # the consumer has stopped reading: nobody will take it
            return
        self._items.append(item)
        self._ready.set()

    async def get(self) -> Any:
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._items.pop(0)
        self._make_room()
        return item

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._make_room()

    def _make_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
