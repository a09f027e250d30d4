"""The SQLite writer: every write on one connection in its own thread, with group commit.

Its connection settings (``PRAGMAS``) are the reader's too, and ``storage_error`` maps
a driver failure on either to the storage layer's own error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import StorageError, StorageUnavailable
from .sqlite_messages import NewMessage, insert_messages

log = logging.getLogger(__name__)
T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], Any]  # runs on the writer thread

MAX_BATCH = 512
MAX_PENDING_WRITES = 20_000

# busy_timeout first: switching to WAL waits for another process's migration.
# synchronous = FULL: in WAL mode every COMMIT syncs the log to disk before it
# returns, so an acknowledged message survives a power cut (SPEC §6; NORMAL would
# only survive a crash of the process). Group commit pays one sync per batch.
PRAGMAS = ("PRAGMA busy_timeout = 10000", "PRAGMA foreign_keys = ON",
           "PRAGMA synchronous = FULL")


def storage_error(exc: BaseException, doing: str) -> StorageError:
    """The storage layer's own error for a driver failure (never a raw sqlite3 one).

    OperationalError is the database being away (locked past busy_timeout, disk full,
    I/O error, file not openable), not the statement being wrong: a retry may work.
    """
    if isinstance(exc, StorageError):
        return exc
    kind = StorageUnavailable if isinstance(exc, sqlite3.OperationalError) else StorageError
    return kind(f"{doing}: {exc!r}")


class GroupCommitWriter:
    """Runs every write on one connection in its own thread, committing queued writes
    together.

    Each write is a function of the connection that either succeeds or leaves no
    change (one statement, or its own savepoint). A batch goes to the thread in one
    hop (``BEGIN IMMEDIATE``, the writes, ``COMMIT``), not one per statement; callers
    hear back only after the COMMIT, so nothing is acknowledged before it is durable.
    ``BEGIN IMMEDIATE`` takes the write lock up front: a transaction never fails on a
    read-to-write upgrade.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._pending: list[tuple[WriteOp | NewMessage, asyncio.Future[Any]]] = []
        self._in_flight = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False

    async def start(self) -> None:
        await self._in_thread(self._open)
        self._running = True

    def _open(self) -> None:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        self._conn = conn

    async def stop(self) -> None:
        self._running = False
        # Let queued and in-flight writes commit before the connection closes.
        await self._idle.wait()
        if self._conn is not None:
            await self._in_thread(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=False)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def write(self, op: WriteOp | NewMessage) -> Any:
        if not self._running:
            raise StorageUnavailable("the database writer is not running")
        if len(self._pending) >= MAX_PENDING_WRITES:
            raise StorageUnavailable("too many pending writes")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if not self._in_flight:
            self._submit()
        return await future

    def _submit(self) -> None:
        """Send what is pending to the thread as one batch (no task in between: the
        next batch leaves from the previous one's completion callback)."""
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._in_flight = True
        self._idle.clear()
        done = asyncio.wrap_future(self._thread.submit(self._commit, [op for op, _ in batch]))
        done.add_done_callback(lambda outcome: self._settle(batch, outcome))

    def _settle(
        self, batch: list[tuple[WriteOp | NewMessage, asyncio.Future[Any]]],
        done: asyncio.Future[list[Any]],
    ) -> None:
        self._in_flight = False
        if done.cancelled() or done.exception() is not None:
            error = None if done.cancelled() else done.exception()
            log.error("write batch of %d crashed", len(batch), exc_info=error)
            outcomes: list[Any] = [StorageError("database write crashed")] * len(batch)
        else:
            outcomes = done.result()
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller went away; the write still landed
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._pending:
            self._submit()
        else:
            self._idle.set()

    def _commit(self, ops: list[WriteOp | NewMessage]) -> list[Any]:
        """On the writer thread: one transaction for the batch; an outcome per op."""
        conn = self._conn
        assert conn is not None
        outcomes: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            run: list[NewMessage] = []
            for op in ops:
                if isinstance(op, NewMessage):
                    run.append(op)
                    continue
                outcomes += _insert(conn, run)
                run = []
                try:
                    outcomes.append(op(conn))
                except (sqlite3.Error, StorageError) as exc:
                    outcomes.append(storage_error(exc, "database write failed"))
            outcomes += _insert(conn, run)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("write batch of %d failed", len(ops))
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            outcomes = [storage_error(exc, "database write failed")] * len(ops)
        return outcomes


def _insert(conn: sqlite3.Connection, run: list[NewMessage]) -> list[Any]:
    """Insert a run of messages together; if that fails, one by one."""
    if not run:
        return []
    try:
        return insert_messages(conn, run)
    except (sqlite3.Error, StorageError):
        # A failed statement changed nothing: find the culprit message by message.
        results: list[Any] = []
        for new in run:
            try:
                results += insert_messages(conn, [new])
            except (sqlite3.Error, StorageError) as exc:
                results.append(storage_error(exc, "database write failed"))
        return results
