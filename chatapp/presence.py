"""Who is online: any open connection, on any process, keeps a user online.

``Presence`` turns this process's connections into transitions and announces them;
a ``PresenceStore`` counts, where every process sees it, which processes hold a
user. One store per broker URL (``CHATAPP_BROKER_URL``): ``memory://`` counts in
this process (the only one), ``redis://`` in Redis (``presence_redis.py``), with
TTL heartbeats so a killed worker's users go offline.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable

from .broker import BrokerError
from .broker.hub import Hub
from .channels import PRESENCE_CHANNEL
from .events import presence_event

log = logging.getLogger(__name__)

Announce = Callable[[str, bool], Awaitable[None]]
"""Awaited with (username, online) for a transition the store found by itself: users
a restarted Redis had forgotten (online) or that only a dead worker held (offline)."""


class PresenceError(RuntimeError):
    """The presence store is unreachable or refused an operation."""


class PresenceStore(ABC):
    """Counts, per user, the processes holding a connection of theirs."""

    @abstractmethod
    async def connect(self, announce: Announce) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Release this process's users (announcing those now offline everywhere)."""

    @abstractmethod
    async def add(self, username: str) -> bool:
        """This process holds the user; True if the user was offline everywhere."""

    @abstractmethod
    async def remove(self, username: str) -> bool:
        """This process no longer holds the user; True if now offline everywhere."""

    @abstractmethod
    async def online(self) -> list[str]:
        """Everyone some live process holds, sorted."""


class MemoryPresence(PresenceStore):
    """One process is all there is (the memory broker): a counter, nothing to expire."""

    def __init__(self) -> None:
        self._present: Counter[str] = Counter()

    async def connect(self, announce: Announce) -> None:
        pass  # no other process to lose or to outlive

    async def close(self) -> None:
        self._present.clear()

    async def add(self, username: str) -> bool:
        self._present[username] += 1
        return self._present[username] == 1

    async def remove(self, username: str) -> bool:
        if self._present[username] <= 1:
            self._present.pop(username, None)
            return True
        self._present[username] -= 1
        return False

    async def online(self) -> list[str]:
        return sorted(self._present)


def open_presence_store(broker_url: str, heartbeat: float = 5.0) -> PresenceStore:
    """The store that matches ``CHATAPP_BROKER_URL`` (not yet connected); on Redis,
    each worker's users are refreshed every ``heartbeat`` seconds and live 3x that."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        from .presence_redis import RedisPresence

        return RedisPresence(broker_url, heartbeat=heartbeat, ttl=3 * heartbeat)
    return MemoryPresence()


class Presence:
    """Counts this process's connections per user and reports only transitions.

    The store counts processes that hold a user, so a user is online while any
    worker has a connection; the grace period keeps a page reload from flickering.
    """

    def __init__(self, store: PresenceStore, hub: Hub, grace_seconds: float) -> None:
        self.store = store
        self._hub = hub
        self._grace = grace_seconds
        self._local: Counter[str] = Counter()
        self._leaving: dict[str, asyncio.TimerHandle] = {}

    async def start(self) -> None:
        """Connect the store (after the hub: its announcements are published)."""
        await self.store.connect(self.announce)

    @property
    def local_users(self) -> int:
        return len(self._local) + len(self._leaving)

    async def connected(self, username: str) -> None:
        self._local[username] += 1
        if self._local[username] > 1:
            return
        pending = self._leaving.pop(username, None)
        if pending is not None:  # back within the grace period: never went offline
            pending.cancel()
            return
        try:
            if await self.store.add(username):
                await self.announce(username, True)
        except PresenceError as error:  # the store re-announces once it is back
            log.warning("presence of %s not shared: %s", username, error)

    async def disconnected(self, username: str) -> None:
        self._local[username] -= 1
        if self._local[username] > 0:
            return
        del self._local[username]
        if self._grace <= 0:
            await self._leave(username)
            return
        loop = asyncio.get_running_loop()
        self._leaving[username] = loop.call_later(self._grace, self._grace_over, username)

    def _grace_over(self, username: str) -> None:
        if self._leaving.pop(username, None) is not None:
            self._hub.spawn(self._leave(username), name=f"presence-leave-{username}")

    async def _leave(self, username: str) -> None:
        try:
            if await self.store.remove(username):
                await self.announce(username, False)
        except PresenceError as error:  # the store's sweep announces it later
            log.warning("absence of %s not shared: %s", username, error)

    async def announce(self, username: str, online: bool) -> None:
        try:
            await self._hub.publish(PRESENCE_CHANNEL, presence_event(username, online))
        except BrokerError as error:  # this process's own clients heard it (the hub)
            log.warning("presence of %s (%s) not published: %s", username, online, error)

    async def online(self) -> list[str]:
        try:
            return await self.store.online()
        except PresenceError as error:  # serve the connection without the list
            log.warning("online users unknown: %s", error)
            return []

    async def stop(self) -> None:
        """Release this process's users at shutdown, without waiting out the grace,
        then the store (before the hub stops: the last offline events go through it)."""
        try:
            for username, handle in list(self._leaving.items()):
                handle.cancel()
                del self._leaving[username]
                await self._leave(username)
        finally:
            await self.store.close()
