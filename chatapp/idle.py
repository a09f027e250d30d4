"""Closing websockets that went silent (a half-open TCP connection sends nothing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from .closecodes import CLOSE_GOING_AWAY


class IdleSweeper:
    """Closes connections that sent no frame for ``timeout`` seconds, with 1001.

    One timer for the whole process, sweeping every tenth of the timeout (between
    50 ms and 5 s): a frame just notes the time, and an idle connection holds no
    timer of its own. Any frame counts (SPEC §6): the app's own (``last_frame_at``)
    and, through the server's wire (``heard_at``), protocol pings and pongs, which
    Hypercorn answers without the app seeing them.
    """

    def __init__(self, timeout: float, connections: Iterable[Any]) -> None:
        self.timeout = timeout
        self._connections = connections
        self._period = min(max(timeout / 10, 0.05), 5.0)
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Sweep from now until ``stop`` (the app starts it before serving)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._period, self._sweep)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self._connections):
            if now - conn.last_frame_at >= self.timeout and (
                now - getattr(conn.queue.wire, "heard_at", 0.0) >= self.timeout
            ):
                conn.queue.close(CLOSE_GOING_AWAY, "no frame within the idle timeout")
        self._timer = asyncio.get_running_loop().call_later(self._period, self._sweep)
