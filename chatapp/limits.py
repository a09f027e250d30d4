"""Per-user limits that hold across connections, workers and hosts (SPEC §6, §7).

One interface, ``Limits``, with a store per broker: ``memory://`` keeps the counts in
this process (it is the only one), ``redis://`` keeps them in Redis
(``limits_redis.py``) so every worker and host spends the same budget. Three kinds:

- ``hit(key, rate)``: a sliding window, at most ``rate.count`` events in any
  ``rate.seconds`` (20 sends per 10 s means 20 in any 10 s, not 20 now and 2 more each
  second after, as a token bucket would allow). Returns None, or the seconds to wait.
- ``once(key, seconds)``: at most one event per period (typing and viewing relays).
- ``open_slot(key, slot, maximum)`` / ``close_slot``: things held open at once (a
  user's websockets); a crashed process's slots stop counting by themselves.

The named limits below are what the web and domain layers call; later features (DMs,
uploads, webhooks) add theirs here and call ``check``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque

from .config import Rate
from .refusals import Code, DomainError

# Defaults for limits without a setting of their own (README "Configuration").
ROOM_CREATE_RATE = Rate(10, 600)  # rooms one user may create per 10 minutes
MEMBER_ADD_RATE = Rate(60, 600)  # people one user may add to rooms per 10 minutes
DM_CREATE_RATE = Rate(30, 600)  # for direct-message creation (SPEC §9), when it lands
UPLOAD_RATE = Rate(60, 600)  # for uploads (SPEC §10), when they land
WEBHOOK_RATE = Rate(600, 60)  # webhook posts (SPEC §12), per hook (chatapp/webhooks.py)


class RateLimitError(DomainError):
    """A limit is spent; ``retry_after`` seconds until the next event is allowed."""

    retry_after: float

    def __init__(self, retry_after: float, message: str = "too many requests; slow down") -> None:
        super().__init__(Code.RATE_LIMITED, message, retry_after=retry_after)


class Limits(ABC):
    """The store behind every per-user limit; keys are strings like ``send:42``."""

    @abstractmethod
    async def connect(self) -> None:
        """Open what the store needs (never fails for an unreachable backend)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the store holds for this process."""

    @abstractmethod
    async def hit(self, key: str, rate: Rate) -> float | None:
        """Record one event unless ``rate`` is spent; else the seconds to wait."""

    @abstractmethod
    async def once(self, key: str, seconds: float) -> bool:
        """True at most once per ``seconds`` for ``key``."""

    @abstractmethod
    async def open_slot(self, key: str, slot: str, maximum: int) -> bool:
        """Hold ``slot`` under ``key`` unless ``maximum`` are held already."""

    @abstractmethod
    async def close_slot(self, key: str, slot: str) -> None:
        """Give ``slot`` back (no error if it is not held)."""

    async def check(self, key: str, rate: Rate, message: str | None = None) -> None:
        """``hit``, raising RateLimitError when the limit is spent."""
        wait = await self.hit(key, rate)
        if wait is not None:
            raise RateLimitError(wait, message or "too many requests; slow down")


class SlidingWindow:
    """The times of the last ``rate.count`` events of one key."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def take(self, rate: Rate, now: float) -> float | None:
        times = self.times
        while times and times[0] <= now - rate.seconds:
            times.popleft()
        if len(times) >= rate.count:
            return times[len(times) - rate.count] + rate.seconds - now
        times.append(now)
        return None


class MemoryLimits(Limits):
    """Limits for one process (the memory broker), also Redis's fallback.

    Remembers at most ``max_keys`` windows and throttles, forgetting the least
    recently used first: a forgotten key costs one early event at worst, never
    unbounded memory.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._windows: OrderedDict[str, SlidingWindow] = OrderedDict()
        self._last: OrderedDict[str, float] = OrderedDict()
        self._slots: dict[str, set[str]] = {}

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        self._slots.clear()

    async def hit(self, key: str, rate: Rate) -> float | None:
        return self.hit_now(key, rate)

    def hit_now(self, key: str, rate: Rate) -> float | None:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow()
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        return window.take(rate, time.monotonic())

    async def once(self, key: str, seconds: float) -> bool:
        return self.once_now(key, seconds)

    def once_now(self, key: str, seconds: float) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < seconds:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True

    async def open_slot(self, key: str, slot: str, maximum: int) -> bool:
        held = self._slots.setdefault(key, set())
        if slot not in held and len(held) >= maximum:
            return False
        held.add(slot)
        return True

    async def close_slot(self, key: str, slot: str) -> None:
        held = self._slots.get(key)
        if held is not None:
            held.discard(slot)
            if not held:
                del self._slots[key]

    def slots(self, key: str) -> int:
        return len(self._slots.get(key, ()))


def open_limits(broker_url: str, heartbeat: float = 5.0) -> Limits:
    """The store that matches ``CHATAPP_BROKER_URL`` (not yet connected); on Redis,
    websocket slots are refreshed every ``heartbeat`` seconds and live 3x that."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        from .limits_redis import RedisLimits

        return RedisLimits(broker_url, heartbeat=heartbeat, ttl=3 * heartbeat)
    return MemoryLimits()
