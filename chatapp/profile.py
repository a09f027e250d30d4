"""A user's own account (SPEC §11): display name, password, sessions, API tokens.

Every change is stored first, then announced: a new display name reaches every
connection (``user_updated`` on the presence channel, which all of them hear on every
worker and host); an ended session's websockets are told to close with 1008.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from .accounts import (
    FAILURE_WINDOW,
    MAX_FAILURES_PER_USER,
    AccountError,
    check_password,
    token_hash,
)
from .broker.hub import Hub
from .channels import PRESENCE_CHANNEL, session_channel
from .closecodes import CLOSE_LOGGED_OUT
from .devices import Device, describe
from .events import encode
from .names import InvalidNameError, clean_name
from .passwords import Passwords
from .refusals import Code
from .storage import Storage, TokenInfo, User
from .storage.models import utcnow

LABEL_MAX = 64


class ProfileError(AccountError):
    """A change the user must correct (bad_request, forbidden, rate_limited), or an id
    not theirs (not_found)."""


@dataclass(frozen=True, slots=True)
class SessionView:
    id: str
    device: Device
    address: str
    created_at: datetime
    last_seen: datetime
    current: bool


@dataclass(frozen=True, slots=True)
class NewToken:
    info: TokenInfo
    token: str  # shown once, never stored


class Profile:
    def __init__(self, storage: Storage, passwords: Passwords, hub: Hub) -> None:
        self.storage = storage
        self.passwords = passwords
        self.hub = hub

    async def rename(self, user: User, display_name: object) -> User:
        """Set the display name (1–64 characters, any script) and tell every connection."""
        try:
            name = clean_name(display_name, "display_name")
        except InvalidNameError as error:
            raise ProfileError(_sentence(error.message), Code.BAD_REQUEST) from None
        updated = await self.storage.set_display_name(user.id, name)
        if updated is None:
            raise ProfileError("Your account no longer exists.", Code.NOT_FOUND)
        await self.hub.publish(PRESENCE_CHANNEL, encode("user_updated",
                                                        user=updated.listing_json()))
        return updated

    async def change_password(
        self, user: User, current: str, new: str, keep: str | None
    ) -> int:
        """Set a new password (the current one is required); end every other session.

        Returns how many sessions ended. ``keep`` is the session making the change.
        Wrong current passwords count like failed logins (5 in 15 minutes, then
        rate_limited), so a borrowed session cannot guess the password here instead of at /login."""
        key = f"password:{user.id}"
        now = utcnow()
        count, oldest = await self.storage.login_failures(key, now - FAILURE_WINDOW)
        if count >= MAX_FAILURES_PER_USER and oldest is not None:
            wait = (oldest + FAILURE_WINDOW - now).total_seconds()
            raise ProfileError("Too many wrong passwords. Try again later.",
                               Code.RATE_LIMITED, retry_after=max(1, int(wait) + 1))
        fresh = await self.storage.user_by_name(user.username)
        stored = fresh.password_hash if fresh is not None else None
        if not await self.passwords.verify(stored, current[:1024]):
            await self.storage.record_login_failure([key])
            raise ProfileError("The current password is not right.", Code.FORBIDDEN)
        check_password(new)
        await self.storage.set_password_hash(user.id, await self.passwords.hash(new))
        return await self.end_sessions(user, keep_token=keep)

    async def sessions(self, user: User, current_token: str | None) -> list[SessionView]:
        current = token_hash(current_token) if current_token else None
        return [
            SessionView(s.id, describe(s.user_agent), s.address or "unknown", s.created_at,
                        s.last_seen, s.token_hash == current)
            for s in await self.storage.sessions_of(user.id)
        ]

    async def end_session(self, user: User, session_id: str, current_token: str | None) -> bool:
        """End one of the user's sessions by its id (not_found when not theirs).

        Returns whether it was the current one (the caller then clears the cookie)."""
        for record in await self.storage.sessions_of(user.id):
            if record.id == session_id:
                await self.storage.delete_session(record.token_hash)
                await self._close_sockets([record.token_hash])
                return current_token is not None and record.token_hash == token_hash(
                    current_token)
        raise ProfileError("There is no such session.", Code.NOT_FOUND)

    async def end_sessions(self, user: User, keep_token: str | None) -> int:
        """End every session of the user but ``keep_token``'s; how many ended."""
        keep = token_hash(keep_token) if keep_token else None
        ended = await self.storage.delete_sessions_of(user.id, keep)
        await self._close_sockets(ended)
        return len(ended)

    async def _close_sockets(self, hashes: list[str]) -> None:
        close = encode("_close", code=CLOSE_LOGGED_OUT, reason="signed out")
        for hashed in hashes:
            await self.hub.publish(session_channel(hashed), close)

    async def tokens(self, user: User) -> list[TokenInfo]:
        return await self.storage.api_tokens(user_id=user.id)

    async def create_token(self, user: User, label: object) -> NewToken:
        try:
            label = clean_name(label, "label", LABEL_MAX)
        except InvalidNameError as error:
            raise ProfileError(_sentence(error.message), Code.BAD_REQUEST) from None
        token = "chatapp_" + secrets.token_urlsafe(32)
        hashed = token_hash(token)
        await self.storage.create_api_token(hashed, user.id, label)
        found = await self.storage.api_tokens(user_id=user.id, token_id=hashed[:16])
        return NewToken(found[0], token)

    async def revoke_token(self, token_id: str, user: User | None = None) -> TokenInfo:
        """Revoke a token by id: the user's own (not_found otherwise), or any (``user`` None)."""
        found = await self.storage.api_tokens(
            user_id=None if user is None else user.id, token_id=token_id)
        exact = [t for t in found if t.id == token_id]
        if len(exact) != 1:
            raise ProfileError("There is no such token.", Code.NOT_FOUND)
        await self.storage.delete_api_token(exact[0].token_hash)
        return exact[0]


def _sentence(message: str) -> str:
    """names.py speaks of fields ("display_name must be ..."); people read words."""
    text = message.replace("display_name", "A display name").replace("label", "A label")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
