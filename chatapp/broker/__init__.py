"""The broker transport: one interface, one module per backend, chosen by URL.

The transport only moves encoded events between processes (pub/sub, as in
encode/broadcaster); local fan-out to websockets lives above it, in ``hub.py``, and
who is online in ``chatapp/presence.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

Receiver = Callable[[str, str], None]
"""Called with (channel, payload) for every event published on a subscribed channel.
It must not block: it only fills bounded queues."""

Reconnected = Callable[[], Awaitable[None]]
"""Awaited after the transport lost its connection and subscribed again: events
published meanwhile may be lost, so the hub makes its clients catch up from storage."""


class BrokerError(RuntimeError):
    """The broker is unreachable or refused an operation."""


class Transport(ABC):
    #: False when every publisher and subscriber must live in this one process.
    shared_across_processes: bool = True

    @abstractmethod
    async def connect(self, receiver: Receiver, reconnected: Reconnected) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise BrokerError when the broker does not answer."""

    @abstractmethod
    async def subscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, payload: str) -> None: ...


def open_transport(url: str) -> Transport:
    """Build the transport for a ``CHATAPP_BROKER_URL`` (not yet connected)."""
    if url in ("memory://", "memory:"):
        from .memory import MemoryTransport

        return MemoryTransport()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisTransport

        return RedisTransport(url)
    raise BrokerError(f"unsupported broker URL: {url} (use memory:// or redis://HOST:PORT/N)")
