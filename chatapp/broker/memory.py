"""The in-process transport: the embedded default for one worker."""

from __future__ import annotations

from collections import Counter

from . import BrokerError, Receiver, Reconnected, Transport


class MemoryTransport(Transport):
    """Delivers published events straight to this process's subscribers.

    Only valid in a single process: a second worker would hold its own rooms and
    presence, silently splitting the team (the app refuses to start that way).
    """

    shared_across_processes = False

    def __init__(self) -> None:
        self._receiver: Receiver | None = None
        self._channels: set[str] = set()
        self._present: Counter[str] = Counter()

    async def connect(self, receiver: Receiver, reconnected: Reconnected) -> None:
        self._receiver = receiver  # nothing to lose in one process: no reconnects

    async def close(self) -> None:
        self._receiver = None
        self._channels.clear()

    async def ping(self) -> None:
        if self._receiver is None:
            raise BrokerError("memory broker is closed")

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, payload: str) -> None:
        if self._receiver is None:
            raise BrokerError("memory broker is closed")
        if channel in self._channels:
            self._receiver(channel, payload)

    async def presence_add(self, username: str) -> bool:
        self._present[username] += 1
        return self._present[username] == 1

    async def presence_remove(self, username: str) -> bool:
        if self._present[username] <= 1:
            self._present.pop(username, None)
            return True
        self._present[username] -= 1
        return False

    async def presence_online(self) -> list[str]:
        return sorted(self._present)

    @property
    def subscribed_channels(self) -> frozenset[str]:
        return frozenset(self._channels)
