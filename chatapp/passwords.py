"""argon2id hashing, always off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hash and verify passwords in a worker thread.

    A reference hash lets a login for an unknown user cost one full verification,
    so response time does not reveal which usernames exist.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._reference: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; ``None`` (unknown user) costs the same and fails."""
        if password_hash is None:
            if self._reference is None:
                self._reference = await self.hash(secrets.token_urlsafe(16))
            await asyncio.to_thread(self._check, self._reference, password)
            return False
        return await asyncio.to_thread(self._check, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
