"""Administration (SPEC §11): registration modes, invites, reset links, deactivation,
the admin role and the audit log.

Every action is stored first, then announced: a deactivated user's or a reset
password's sessions are deleted, then their websockets are told to close with 1008.
Every admin action and every login lands in the audit log (who, what, on whom, from
which address).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from .accounts import AccountError, Accounts, check_password, token_hash
from .broker.hub import Hub
from .channels import PRESENCE_CHANNEL, session_channel, user_channel
from .closecodes import CLOSE_LOGGED_OUT
from .events import encode
from .refusals import Code
from .storage import AccountRow, AuditEntry, Invite, Storage, User
from .storage.models import utcnow

RESET_VALID = timedelta(hours=24)
MAX_INVITE_USES = 1000
MAX_INVITE_DAYS = 365
AUDIT_SHOWN = 200
CLI_ACTOR = "(command line)"


class AdminError(AccountError):
    """An admin action refused: bad_request, forbidden, not_found (unknown) or conflict."""


@dataclass(frozen=True, slots=True)
class Overview:
    accounts: list[AccountRow]
    invites: list[Invite]
    audit: list[AuditEntry]


class Administration:
    def __init__(self, storage: Storage, accounts: Accounts, hub: Hub, registration: str) -> None:
        self.storage = storage
        self.accounts = accounts
        self.hub = hub
        self.registration = registration

    # registration
    async def open_registration(self) -> bool:
        """Whether /register takes anyone: open mode, or no account exists yet."""
        return self.registration == "open" or not await self.storage.has_users()

    async def register(self, username: str, password: str, address: str) -> User:
        if not await self.open_registration():
            why = ("Registration is by invitation only." if self.registration == "invite"
                   else "Registration is closed: ask an administrator for an account.")
            raise AdminError(why, Code.FORBIDDEN)
        user = await self.accounts.register(username, password)
        await self.record(user.username, "register", user.username, address)
        return user

    async def usable_invite(self, code: str) -> Invite | None:
        if len(code) > 64:
            return None
        invite = await self.storage.invite(code)
        return invite if invite is not None and invite.usable(utcnow()) else None

    async def join(self, code: str, username: str, password: str, address: str) -> User:
        """Register through an invite; one of its uses goes only if the account is made."""
        if len(code) > 64 or not await self.storage.take_invite(code, utcnow()):
            raise AdminError("This invite link is expired, used up or revoked.", Code.NOT_FOUND)
        try:
            user = await self.accounts.register(username, password)
        except BaseException:
            await self.storage.take_invite(code, utcnow(), give_back=True)
            raise
        await self.record(user.username, "register (invite)", code[:8] + "…", address)
        return user

    # invites
    async def create_invite(self, actor: User, uses: str, expires_days: str,
                            address: str) -> Invite:
        count = _whole(uses, "Uses", 1, MAX_INVITE_USES)
        days = _whole(expires_days, "Days until it expires", 1, MAX_INVITE_DAYS)
        code = secrets.token_urlsafe(18)
        await self.storage.create_invite(code, actor.id, count,
                                         utcnow() + timedelta(days=days))
        await self.record(actor.username, "create invite",
                          f"{code[:8]}… ({_plural(count, 'use')}, {_plural(days, 'day')})", address)
        invite = await self.storage.invite(code)
        assert invite is not None
        return invite

    async def revoke_invite(self, actor: User, code: str, address: str) -> None:
        if len(code) > 64 or not await self.storage.revoke_invite(code):
            raise AdminError("There is no such invite.", Code.NOT_FOUND)
        await self.record(actor.username, "revoke invite", code[:8] + "…", address)

    # accounts
    async def create_user(self, actor: User, username: str, password: str,
                          address: str) -> User:
        user = await self.accounts.register(username, password)
        await self.record(actor.username, "create user", user.username, address)
        return user

    async def reset_link(self, actor: str, username: str, address: str) -> str:
        """A new one-time reset token for the user (only its hash is stored)."""
        user = await self._user(username)
        token = secrets.token_urlsafe(32)
        await self.storage.create_reset(token_hash(token), user.id, utcnow() + RESET_VALID)
        await self.record(actor, "reset link", user.username, address)
        return token

    async def reset_target(self, token: str) -> User | None:
        if not token or len(token) > 128:
            return None
        return await self.storage.reset_user(token_hash(token), utcnow(), use=False)

    async def reset_password(self, token: str, password: str, address: str) -> User:
        """Set a new password through a reset link (once) and end every session."""
        check_password(password)
        if not token or len(token) > 128:
            raise AdminError("This reset link is used or expired.", Code.NOT_FOUND)
        password_hash = await self.accounts.passwords.hash(password)
        user = await self.storage.reset_user(token_hash(token), utcnow(), use=True)
        if user is None:
            raise AdminError("This reset link is used or expired.", Code.NOT_FOUND)
        await self.storage.set_password_hash(user.id, password_hash)
        ended = await self.storage.delete_sessions_of(user.id, None)
        await self._close(user, ended)
        await self.record(user.username, "password reset", user.username, address)
        return user

    async def deactivate(self, actor: str, username: str, address: str) -> None:
        user = await self._user(username)
        ended = await self.storage.set_active(user.id, False)
        if ended is None:
            raise AdminError("The last admin cannot be deactivated.", Code.CONFLICT)
        await self._close(user, ended)
        await self._announce(username)
        await self.record(actor, "deactivate", user.username, address)

    async def reactivate(self, actor: str, username: str, address: str) -> None:
        user = await self._user(username)
        await self.storage.set_active(user.id, True)
        await self._announce(username)
        await self.record(actor, "reactivate", user.username, address)

    async def set_admin(self, actor: str, username: str, admin: bool, address: str) -> None:
        user = await self._user(username)
        if not await self.storage.set_admin(user.id, admin):
            raise AdminError("The last admin cannot be revoked.", Code.CONFLICT)
        await self._announce(username)
        await self.record(actor, "grant admin" if admin else "revoke admin", user.username,
                          address)

    async def overview(self) -> Overview:
        return Overview(await self.storage.accounts(), await self.storage.invites(),
                        await self.storage.audit(AUDIT_SHOWN))

    async def record(self, actor: str, action: str, target: str, address: str) -> None:
        await self.storage.add_audit(actor[:64], action, target[:128], address[:64])

    async def _user(self, username: str) -> User:
        user = await self.storage.user_by_name(username) if len(username) <= 64 else None
        if user is None:
            raise AdminError("There is no such user.", Code.NOT_FOUND)
        return user

    async def _close(self, user: User, hashes: list[str]) -> None:
        close = encode("_close", code=CLOSE_LOGGED_OUT, reason="signed out")
        for hashed in hashes:
            await self.hub.publish(session_channel(hashed), close)
        await self.hub.publish(user_channel(user.id), close)

    async def _announce(self, username: str) -> None:
        """Everyone's people list follows (``active``, ``is_admin``) without a reload."""
        fresh = await self.storage.user_by_name(username)
        if fresh is not None:
            await self.hub.publish(PRESENCE_CHANNEL,
                                   encode("user_updated", user=fresh.listing_json()))


def _whole(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text.strip()) if len(text) < 12 else -1
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise AdminError(f"{what} must be a whole number from {low} to {high}.",
                         Code.BAD_REQUEST)
    return value


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
