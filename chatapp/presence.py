"""Who is online: any open connection, on any process, keeps a user online."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from .broker import BrokerError
from .broker.hub import Hub
from .channels import PRESENCE_CHANNEL
from .events import presence_event

log = logging.getLogger(__name__)


class Presence:
    """Counts this process's connections per user and reports only transitions.

    The transport counts processes that hold a user, so a user is online while any
    worker has a connection; the grace period keeps a page reload from flickering.
    """

    def __init__(self, hub: Hub, grace_seconds: float) -> None:
        self._hub = hub
        self._grace = grace_seconds
        self._local: Counter[str] = Counter()
        self._leaving: dict[str, asyncio.TimerHandle] = {}

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
            if await self._hub.transport.presence_add(username):
                await self._hub.publish(PRESENCE_CHANNEL, presence_event(username, True))
        except BrokerError as error:  # the transport re-announces once it is back
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
            if await self._hub.transport.presence_remove(username):
                await self._hub.publish(PRESENCE_CHANNEL, presence_event(username, False))
        except BrokerError as error:  # the transport's sweep announces it later
            log.warning("absence of %s not shared: %s", username, error)

    async def online(self) -> list[str]:
        try:
            return await self._hub.transport.presence_online()
        except BrokerError as error:  # serve the connection without the list
            log.warning("online users unknown: %s", error)
            return []

    async def stop(self) -> None:
        """Release this process's users at shutdown, without waiting out the grace."""
        for username, handle in list(self._leaving.items()):
            handle.cancel()
            del self._leaving[username]
            await self._leave(username)
