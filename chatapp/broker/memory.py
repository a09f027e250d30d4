"""The in-process transport: the embedded default for one worker."""

from __future__ import annotations

from . import BrokerError, Receiver, Reconnected, Transport


class MemoryTransport(Transport):
    """Delivers published events straight to this process's subscribers.

    Only valid in a single process: a second worker would hold its own rooms,
    silently splitting the team (the app refuses to start that way).
    """

    shared_across_processes = False

    def __init__(self) -> None:
        self._receiver: Receiver | None = None
        self._channels: set[str] = set()

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

    @property
    def subscribed_channels(self) -> frozenset[str]:
        return frozenset(self._channels)
