"""The app's long-lived resources: built with the app, opened before serving and closed
after (the hooks are in ``web/lifecycle.py``); nothing here knows Quart."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .accounts import Accounts
from .admin import Administration
from .broker import Transport, open_transport
from .broker.hub import Hub
from .chat import Chat
from .config import ConfigError
from .housekeeping import Housekeeper
from .idle import IdleSweeper
from .limits import Limits, open_limits
from .metrics import Metrics, create_metrics
from .passwords import Passwords
from .presence import Presence, open_presence_store
from .profile import Profile
from .storage import Storage, StorageUnavailable, StoreInUse, open_storage
from .uploads import Uploads

log = logging.getLogger(__name__)


@dataclass
class Services:
    storage: Storage
    transport: Transport
    hub: Hub
    presence: Presence
    accounts: Accounts
    profile: Profile
    admin: Administration
    chat: Chat
    limits: Limits
    metrics: Metrics
    idle: IdleSweeper
    housekeeper: Housekeeper
    uploads: Uploads
    connections: set[Any] = field(default_factory=set)
    lock: IO[str] | None = None  # held while serving (``_claim_single_process``)
    link: StorageLink | None = None
    # Set when a graceful shutdown begins: /healthz answers 503 from then on.
    draining: bool = False


def build_services(config: Mapping[str, Any]) -> Services:
    """Every long-lived object, each given its collaborators as it is made; nothing is
    connected yet (``web/lifecycle.py`` opens them before serving)."""
    storage = open_storage(config["CHATAPP_DATABASE_URL"],
                           timeout=config.get("CHATAPP_DATABASE_TIMEOUT"))
    transport = open_transport(config["CHATAPP_BROKER_URL"])
    heartbeat = config["CHATAPP_REDIS_HEARTBEAT_SECONDS"]
    limits = open_limits(config["CHATAPP_BROKER_URL"], heartbeat)  # shared where the broker is
    presence_store = open_presence_store(config["CHATAPP_BROKER_URL"], heartbeat)  # likewise
    metrics = create_metrics()
    # After a lost broker connection the hub asks chat to replay what it missed; chat
    # publishes through the hub, so the hub gets a call that finds chat when it runs.
    hub = Hub(transport, metrics, catch_up=lambda rooms: chat.catch_up(rooms))
    chat = Chat(storage, hub, limits, stored_counter=metrics.messages_stored)
    connections: set[Any] = set()
    passwords = Passwords()
    accounts = Accounts(storage, passwords, limits)
    uploads = Uploads(storage, limits, Path(config["CHATAPP_UPLOAD_DIR"]),
                      int(config["CHATAPP_UPLOAD_MAX_MB"] * 1024 * 1024))
    housekeeper = Housekeeper(storage, {
        "uploads": uploads.prune,  # orphans (SPEC §10)
        "invites": storage.prune_invites,  # expired (SPEC §8, §11)
        "reset_links": storage.prune_resets,
    })
    return Services(
        storage=storage,
        transport=transport,
        hub=hub,
        presence=Presence(presence_store, hub, config["CHATAPP_PRESENCE_GRACE_SECONDS"]),
        accounts=accounts,
        profile=Profile(storage, passwords, hub),
        admin=Administration(storage, accounts, hub, config["CHATAPP_REGISTRATION"]),
        chat=chat,
        limits=limits,
        metrics=metrics,
        idle=IdleSweeper(config["CHATAPP_IDLE_TIMEOUT"], connections),
        housekeeper=housekeeper,
        uploads=uploads,
        connections=connections,
    )


async def open_services(services: Services, database_url: str) -> None:
    """Connect what the services hold, before serving."""
    exclusive = not services.transport.shared_across_processes
    # Shared broker: a shared lock, so `chatapp restore` sees that a server runs.
    services.lock = _claim_single_process(database_url, shared=not exclusive)
    # Neither an unreachable database nor an unreachable Redis stops the start
    # (SPEC §7): both connect later by themselves and /healthz says 503 meanwhile.
    services.link = StorageLink(services.storage, exclusive)
    await services.link.start()
    await services.limits.connect()
    await services.hub.start()
    await services.presence.start()  # after the hub: it announces through it
    services.idle.start()
    services.housekeeper.start()  # prunes expired rows (SPEC §8)


async def close_services(services: Services) -> None:
    """Stop and close what the services hold, after serving."""
    services.draining = True
    services.idle.stop()
    await services.housekeeper.stop()
    await presence_shutdown(services)  # before the hub: its last offline events
    await services.hub.stop()
    await services.limits.close()
    if services.link is not None:
        await services.link.stop()
    else:
        await services.storage.close()
    services.accounts.passwords.close()
    if services.lock is not None:
        services.lock.close()
    services.metrics.retire()


SINGLE_PROCESS = (
    "another chatapp process already serves this database with the in-memory "
    "broker (CHATAPP_BROKER_URL=memory://). With workers > 1 or several "
    "processes each would hold its own rooms and presence; set "
    "CHATAPP_BROKER_URL=redis://HOST:PORT/N to share them."
)


class StorageLink:
    """Connects storage; while the database is unreachable, keeps retrying with backoff.

    ``exclusive`` (the memory broker) also claims the store for this process alone.
    """

    def __init__(self, storage: Storage, exclusive: bool, backoff_max: float = 10.0) -> None:
        self.storage = storage
        self.exclusive = exclusive
        self.backoff_max = backoff_max
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._connect()
        except StoreInUse:
            raise ConfigError(SINGLE_PROCESS) from None
        except StorageUnavailable as error:
            log.warning("storage unavailable at start (%s); serving without it and "
                        "reconnecting in the background", error)
            self._task = asyncio.create_task(self._retry(), name="storage-reconnect")
            self._task.add_done_callback(_log_crash)

    async def _connect(self) -> None:
        self.attempts += 1
        await self.storage.connect()
        if self.exclusive:
            try:
                await self.storage.claim_single_process()
            except BaseException:
                await self.storage.close()
                raise

    async def _retry(self) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff_max)
            try:
                await self._connect()
            except StorageUnavailable as error:
                log.warning("storage still unavailable (%s); retrying in up to %.1fs",
                            error, delay)
                continue
            except StoreInUse:
                # Started while the database was away: refusing to start is too late
                # now, so stay without storage (/healthz 503) and say why.
                log.error("storage not used: %s", SINGLE_PROCESS)
                continue
            self._task = None
            log.warning("storage connected after %d attempts", self.attempts)
            return

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.storage.close()


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s crashed", task.get_name(), exc_info=task.exception())


async def presence_shutdown(services: Services) -> None:
    try:
        await services.presence.stop()
    except Exception:
        log.warning("could not release presence at shutdown", exc_info=True)


def _claim_single_process(database_url: str, *, shared: bool = False) -> IO[str] | None:
    """Refuse a second process on the memory broker: it would split every room.

    An SQLite database's lock file: a server on the memory broker holds it alone, one
    on a shared broker (``shared``) holds it with its other workers, and ``chatapp
    restore`` (``claim_offline``) holds it alone while it replaces the file.
    """
    if not database_url.startswith("sqlite:///") or database_url.endswith(":memory:"):
        return None
    path = database_url.removeprefix("sqlite:///") + ".memory-broker.lock"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handle = open(path, "w")  # noqa: SIM115 - held open for the process lifetime
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        if shared:
            raise ConfigError(
                "another chatapp process holds this database alone (a server on the "
                "in-memory broker, or `chatapp restore`)"
            ) from None
        raise ConfigError(SINGLE_PROCESS) from None
    return handle


def claim_offline(database_url: str) -> IO[str] | None:
    """Hold an SQLite database while no server runs on it (close the handle to release);
    ConfigError when a server (any broker) has it open."""
    try:
        return _claim_single_process(database_url)
    except ConfigError:
        raise ConfigError(
            "a chatapp server is running on this database: stop it first"
        ) from None
