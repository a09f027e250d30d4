"""The server's own housekeeping (SPEC §8): rows that have expired are deleted.

One background task per process, started before serving (``services``). Every
``every`` seconds it deletes the sessions unused for ``SESSION_IDLE`` (14 days) and
the login failures older than the throttle's window (15 minutes), in batches of at
most ``batch`` rows: each batch is one short write (on SQLite one operation on the
writer thread, so neither the event loop nor a message waits behind a long
transaction), and the task yields between batches. Several processes pruning one
database is harmless: each row goes once.

Other kinds of expiring rows register a pruner with ``add`` (``services`` adds
orphaned uploads, expired invites and expired password reset links).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from .accounts import FAILURE_WINDOW, SESSION_IDLE
from .storage import Storage, StorageError
from .storage.models import utcnow

log = logging.getLogger(__name__)

EVERY = 600.0  # seconds between rounds
BATCH = 500  # rows per delete
MAX_BATCHES = 200  # per kind and round: a huge backlog drains over several rounds

# (now, limit) -> rows deleted, at most ``limit``
Pruner = Callable[[datetime, int], Awaitable[int]]


class Housekeeper:
    def __init__(self, storage: Storage, pruners: Mapping[str, Pruner] | None = None,
                 every: float = EVERY, batch: int = BATCH) -> None:
        """Sessions and login failures, and ``pruners``: other kinds of expiring rows."""
        self.every = every
        self.batch = batch
        self._pruners: dict[str, Pruner] = {}
        self._task: asyncio.Task[None] | None = None
        self.add("sessions", lambda now, limit: storage.prune_sessions(now - SESSION_IDLE, limit))
        self.add("login_failures",
                 lambda now, limit: storage.prune_login_failures(now - FAILURE_WINDOW, limit))
        for name, pruner in (pruners or {}).items():
            self.add(name, pruner)

    def add(self, name: str, pruner: Pruner) -> None:
        """Prune another kind of expired row every round."""
        self._pruners[name] = pruner

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._rounds(), name="housekeeping")
            self._task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():  # (a crash was logged already)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> dict[str, int]:
        """One round: how many rows of each kind went."""
        now = utcnow()
        counts: dict[str, int] = {}
        for name, prune in self._pruners.items():
            counts[name] = 0
            try:
                for _ in range(MAX_BATCHES):
                    deleted = await prune(now, self.batch)
                    counts[name] += deleted
                    if deleted < self.batch:
                        break
                    await asyncio.sleep(0)  # others' requests go between batches
            except StorageError as error:  # database away: try again next round
                log.warning("housekeeping: pruning %s failed: %s", name, error)
        return counts

    async def _rounds(self) -> None:
        while True:
            counts = await self.run_once()
            if any(counts.values()):
                log.info("housekeeping pruned %s",
                         ", ".join(f"{n} {name}" for name, n in counts.items() if n))
            await asyncio.sleep(self.every)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("housekeeping task crashed", exc_info=task.exception())
