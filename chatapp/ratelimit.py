"""Rate limits: a sliding window for websocket sends, token buckets for posts."""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from .config import Rate


class TokenBucket:
    """``rate.count`` events per ``rate.seconds``, with a burst of ``rate.count``."""

    __slots__ = ("_capacity", "_per_second", "_tokens", "_stamp")

    def __init__(self, rate: Rate) -> None:
        self._capacity = float(rate.count)
        self._per_second = rate.count / rate.seconds
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def take(self) -> float | None:
        """Spend one token; return None, or the seconds to wait when none is left."""
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._per_second)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self._per_second


class SlidingWindow:
    """At most ``rate.count`` events in any ``rate.seconds`` (SPEC §6 sends).

    Unlike a token bucket, which refills continuously and so lets a burst be followed
    by more events inside the same period, this remembers the last ``count`` times.
    """

    __slots__ = ("_count", "_seconds", "_times")

    def __init__(self, rate: Rate) -> None:
        self._count = rate.count
        self._seconds = rate.seconds
        self._times: deque[float] | None = None  # made on the first event: most never send

    def take(self) -> float | None:
        """Record one event; return None, or the seconds to wait when the window is full."""
        now = time.monotonic()
        if self._times is None:
            self._times = deque(maxlen=self._count)
        if len(self._times) == self._count:
            wait = self._times[0] + self._seconds - now
            if wait > 0:
                return wait
        self._times.append(now)  # maxlen drops the oldest
        return None


class KeyedLimiter:
    """One bucket per key (a user id), keeping at most ``max_keys`` recent keys."""

    def __init__(self, rate: Rate, max_keys: int = 10_000) -> None:
        self._rate = rate
        self._max_keys = max_keys
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()

    def take(self, key: object) -> float | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take()


class Throttle:
    """At most one event per ``every`` seconds per key (typing, viewing relays).

    Remembers at most ``max_keys`` keys, forgetting the longest-quiet first: a
    forgotten key costs one early relay at worst, never unbounded memory.
    """

    def __init__(self, every: float, max_keys: int = 10_000) -> None:
        self.every = every
        self.max_keys = max_keys
        self._last: OrderedDict[object, float] = OrderedDict()

    def allow(self, key: object) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._last)

    def __contains__(self, key: object) -> bool:
        return key in self._last
