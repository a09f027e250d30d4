"""A one-waiter ``asyncio.Event`` that costs nothing until someone waits.

Every open websocket holds a few of these (its send queue, its inbox). An
``asyncio.Event`` carries a deque of waiters, ~0.9 KB even when empty; with 10,000
idle connections that is tens of MB for nothing (bench s3).
"""

from __future__ import annotations

import asyncio


class Wakeup:
    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        """Return once set; only one task may wait at a time."""
        if self._flag:
            return
        if self._waiter is not None:
            raise RuntimeError("Wakeup already has a waiter")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
