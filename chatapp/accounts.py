"""Accounts: who may register, how a login is checked, and when it is throttled."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from .devices import MAX_USER_AGENT
from .limits import Limits, MemoryLimits
from .passwords import Passwords
from .refusals import Code, DomainError
from .storage import Storage, User, UsernameTaken
from .storage.models import utcnow

USERNAME_RE = re.compile(r"[A-Za-z0-9_.\-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
SESSION_IDLE = timedelta(days=14)
TOO_MANY_FAILURES = "Too many failed logins. Try again later."
DEACTIVATED = "This account is deactivated. Ask an administrator to reactivate it."
ATTEMPT_WAIT = 30.0  # seconds a login may wait for attempts in flight to finish
SESSION_TOUCH_EVERY = timedelta(minutes=1)


class AccountError(DomainError, ValueError):
    """A registration or login the user must correct; ``retry_after`` in whole seconds."""

    def __init__(self, message: str, code: Code | str = Code.BAD_REQUEST,
                 retry_after: int | None = None) -> None:
        super().__init__(code, message, retry_after=retry_after)


@dataclass(frozen=True)
class Login:
    user: User
    token: str  # goes into the signed cookie; only its hash is stored


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise AccountError("Usernames are 3–32 characters: letters, digits, _ . and -.")
    return username


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(f"Passwords are {PASSWORD_MIN}–{PASSWORD_MAX} characters long.")
    return password


class Accounts:
    def __init__(
        self, storage: Storage, passwords: Passwords, limits: Limits | None = None
    ) -> None:
        self.storage = storage
        self.passwords = passwords
        # Attempts in flight, across every worker and host (see ``authenticate``).
        self.limits = limits if limits is not None else MemoryLimits()

    async def register(self, username: str, password: str, *, admin: bool = False) -> User:
        check_username(username)
        check_password(password)
        if await self.storage.user_by_name(username) is not None:
            raise AccountError("That username is taken.", Code.CONFLICT)
        password_hash = await self.passwords.hash(password)
        try:
            return await self.storage.create_user(username, password_hash, admin=admin)
        except UsernameTaken:
            raise AccountError("That username is taken.", Code.CONFLICT) from None

    async def authenticate(self, username: str, password: str, address: str) -> User:
        """Return the user, or refuse: unauthorized (wrong) or rate_limited (too many failures)."""
        keys = [f"user:{username.casefold()}", f"addr:{address}"]
        attempt = secrets.token_hex(8)
        await self._hold_a_try(keys, attempt)
        try:
            user = await self._verify(username, password, keys)
        finally:
            await self._give_back(keys, attempt)
        if not user.active:  # told only to whoever knows the password
            raise AccountError(DEACTIVATED, Code.FORBIDDEN)
        if self.passwords.needs_rehash(user.password_hash):
            await self.storage.set_password_hash(user.id, await self.passwords.hash(password))
        return user

    async def _verify(self, username: str, password: str, keys: list[str]) -> User:
        user = await self.storage.user_by_name(username) if len(username) <= 64 else None
        ok = await self.passwords.verify(user.password_hash if user else None, password[:1024])
        if user is None or not ok:
            await self.storage.record_login_failure(keys)
            raise AccountError("Invalid username or password", Code.UNAUTHORIZED)
        return user

    async def _hold_a_try(self, keys: list[str], attempt: str) -> None:
        """Hold one of the tries left for every key, waiting while others use them.

        Failures are recorded after the slow password check, so a burst of attempts
        would all pass a check of the recorded ones: attempts in flight (on any
        worker or host) count too. One that finds no try free waits for the others'
        outcome rather than failing, so successful logins are never refused.

        An attempt records its failure before it gives its try back, so reading the
        failures again once the tries are held sees every attempt that finished in
        between; if that changed the count, start over.
        """
        deadline = time.monotonic() + ATTEMPT_WAIT
        while True:
            left = await self._check_throttle(keys)
            held = []
            for key, tries in zip(keys, left, strict=True):
                if not await self.limits.open_slot(f"login:{key}", attempt, tries):
                    break
                held.append(key)
            else:
                try:
                    if await self._check_throttle(keys) == left:
                        return
                except BaseException:
                    await self._give_back(held, attempt)
                    raise
            await self._give_back(held, attempt)
            if time.monotonic() > deadline:
                raise AccountError(TOO_MANY_FAILURES, Code.RATE_LIMITED, retry_after=1)
            await asyncio.sleep(0.05)

    async def _give_back(self, keys: list[str], attempt: str) -> None:
        for key in keys:
            await self.limits.close_slot(f"login:{key}", attempt)

    async def _check_throttle(self, keys: list[str]) -> list[int]:
        """Refuse (rate_limited) when a key has no tries left in the window; else the tries left."""
        now = utcnow()
        left = []
        for key, limit in zip(keys, (MAX_FAILURES_PER_USER, MAX_FAILURES_PER_ADDRESS), strict=True):
            count, oldest = await self.storage.login_failures(key, now - FAILURE_WINDOW)
            if count >= limit and oldest is not None:
                wait = (oldest + FAILURE_WINDOW - now).total_seconds()
                raise AccountError(TOO_MANY_FAILURES, Code.RATE_LIMITED,
                                   retry_after=max(1, int(wait) + 1))
            left.append(limit - count)
        return left

    async def start_session(self, user: User, user_agent: str = "", address: str = "") -> Login:
        token = secrets.token_urlsafe(32)
        await self.storage.create_session(
            token_hash(token), user.id, user_agent[:MAX_USER_AGENT], address[:64])
        return Login(user, token)

    async def resume_session(self, token: str, address: str | None = None) -> User | None:
        """The session's user, refreshing its idle clock (and the address it was last
        used from) at most once a minute: no write per request."""
        now = utcnow()
        hashed = token_hash(token)
        record = await self.storage.session(hashed, now - SESSION_IDLE)
        if record is None or not record.user.active:
            return None
        if now - record.last_seen > SESSION_TOUCH_EVERY:
            await self.storage.touch_session(hashed, None if address is None else address[:64])
        return record.user

    async def create_api_token(self, user: User, name: str) -> str:
        """A new bearer token for a bot acting as ``user``; only its hash is stored."""
        token = "chatapp_" + secrets.token_urlsafe(32)
        await self.storage.create_api_token(token_hash(token), user.id, name)
        return token

    async def user_for_api_token(self, token: str) -> User | None:
        if not token or len(token) > 256:
            return None
        user = await self.storage.user_for_api_token(token_hash(token))
        return user if user is not None and user.active else None

    async def end_session(self, token: str) -> None:
        await self.storage.delete_session(token_hash(token))


