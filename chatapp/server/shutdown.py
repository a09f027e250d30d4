"""Graceful stop: every websocket hears 1001 before Hypercorn drains the worker.

Hypercorn runs the app in a spawned worker whose parent turns SIGTERM into a shared
``shutdown_event``; the app is told nothing until its connections are cancelled
(which clients see as 1011). This module watches the same signal and closes every
websocket with 1001 first. The stored messages are safe either way: acks follow
commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from typing import Any

from quart import Quart

from ..closecodes import CLOSE_GOING_AWAY

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05
# Set by ``install`` once ``compat`` found Hypercorn's worker arguments where expected.
_installed = False


def install() -> None:
    """Watch Hypercorn's shutdown event in its workers (see ``compat``)."""
    global _installed
    _installed = True


def init_app(app: Quart) -> None:
    watcher: dict[str, asyncio.Task[None]] = {}

    @app.before_serving
    async def watch_for_shutdown() -> None:
        event = _hypercorn_shutdown_event()
        if event is not None:
            task = asyncio.create_task(_poll(app, event), name="shutdown-watch")
            task.add_done_callback(_log_crash)
            watcher["task"] = task
            # A SIGTERM sent to the worker itself (systemd's control group) does the
            # same; the shared event then stops the other workers and the parent.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, event.set)

    @app.after_serving
    async def stop_watching() -> None:
        task = watcher.pop("task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        close_all(app, CLOSE_GOING_AWAY, "server shutting down")


def _hypercorn_shutdown_event() -> Any:
    """The multiprocessing event Hypercorn's parent sets on SIGTERM, if we are a worker."""
    if not _installed:
        return None
    kwargs = getattr(multiprocessing.current_process(), "_kwargs", None) or {}
    event = kwargs.get("shutdown_event")
    return event if hasattr(event, "is_set") else None


async def _poll(app: Quart, event: Any) -> None:
    # A multiprocessing event cannot be awaited: poll it as Hypercorn itself does.
    while not event.is_set():  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    log.info("shutdown requested: closing websockets with 1001")
    close_all(app, CLOSE_GOING_AWAY, "server shutting down")


def close_all(app: Quart, code: int, reason: str) -> None:
    svc = app.extensions.get("chatapp")
    if svc is None:
        return
    svc.draining = True  # /healthz answers 503 from now on (SPEC §8)
    for conn in list(svc.connections):
        conn.queue.close(code, reason)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("shutdown watcher crashed", exc_info=task.exception())
