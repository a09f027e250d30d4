"""argon2id hashing, always off the event loop."""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")


def default_workers() -> int:
    # Hashing is CPU-bound and releases the GIL: leave one core to the event loop, so a
    # burst of logins never stalls the websockets of everyone else.
    return max(1, (os.cpu_count() or 2) - 1)


class Passwords:
    """Hash and verify passwords in a small dedicated thread pool.

    A reference hash lets a login for an unknown user cost one full verification,
    so response time does not reveal which usernames exist.
    """

    def __init__(self, hasher: PasswordHasher | None = None, workers: int | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._workers = workers or default_workers()
        self._pool: ThreadPoolExecutor | None = None
        self._reference: str | None = None

    async def _run(self, func: Any, *args: Any) -> Any:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="argon2")
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def hash(self, password: str) -> str:
        return str(await self._run(self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; ``None`` (unknown user) costs the same and fails."""
        if password_hash is None:
            if self._reference is None:
                self._reference = await self.hash(secrets.token_urlsafe(16))
            await self._run(self._check, self._reference, password)
            return False
        return bool(await self._run(self._check, password_hash, password))

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
