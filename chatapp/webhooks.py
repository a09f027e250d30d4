"""Incoming webhooks (SPEC §12): a secret URL that posts to one room as a bot.

A hook's bot is a user row marked ``bot`` whose password hash argon2 cannot parse, so
no login ever matches it; hooks created with the same name share one bot. Only the
SHA-256 of a hook's token is stored: the lookup by hash is the comparison, so the
time it takes tells nothing about how much of a guessed token was right.
"""

from __future__ import annotations

import secrets
from typing import Any

from .accounts import USERNAME_RE, token_hash
from .chat import Chat, ChatError
from .config import Rate
from .limits import WEBHOOK_RATE, Limits
from .storage import Message, Room, Storage, User, UsernameTaken, Webhook
from .storage.models import NO_LOGIN

TOKEN_PREFIX = "hook_"
MAX_TOKEN = 128  # a real token is 48 characters; longer is not worth hashing
MAX_SLUG = 200
MAX_ID = 2**63 - 1  # ids are 64-bit in both engines


def hook_path(token: str) -> str:
    return f"/hooks/{token}"


class Webhooks:
    def __init__(self, storage: Storage, chat: Chat, limits: Limits,
                 rate: Rate = WEBHOOK_RATE) -> None:
        self.storage = storage
        self.chat = chat
        self.limits = limits
        self.rate = rate  # per hook, across every worker and host

    async def _room(self, admin: User | None, slug: Any) -> Room:
        """The room to manage hooks of; ``admin`` None is the operator at the CLI."""
        if admin is not None and not admin.is_admin:
            raise ChatError("forbidden", "only admins manage webhooks")
        if not isinstance(slug, str) or not slug or len(slug) > MAX_SLUG:
            raise ChatError("not_found", "no such room")
        room = await self.storage.room(slug)
        if room is None:
            raise ChatError("not_found", f"no room {slug!r}")
        return room

    async def create(self, admin: User | None, slug: Any, name: Any) -> tuple[Webhook, str]:
        """A new hook for a room; its token is returned once and never stored."""
        room = await self._room(admin, slug)
        if not isinstance(name, str) or not USERNAME_RE.fullmatch(name):
            raise ChatError("invalid", "name is 3–32 characters: letters, digits, _ . and -",
                            "name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            hook = await self.storage.create_webhook(
                token_hash(token), room.id, name, None if admin is None else admin.id)
        except UsernameTaken:
            raise ChatError("conflict", f"{name!r} is a person's username; pick another name",
                            "name") from None
        return hook, token

    async def of_room(self, admin: User, slug: Any) -> list[Webhook]:
        room = await self._room(admin, slug)
        return await self.storage.webhooks(room.id)

    async def delete(self, admin: User, webhook_id: int) -> None:
        if not admin.is_admin:
            raise ChatError("forbidden", "only admins manage webhooks")
        if not 0 < webhook_id < MAX_ID or not await self.storage.delete_webhook(webhook_id):
            raise ChatError("not_found", f"no webhook {webhook_id}", "id")

    async def post(self, token: str, body: Any, nonce: Any) -> Message:
        """Post as the hook's bot, with the API's validation, limit and idempotency."""
        hook = None
        if token.startswith(TOKEN_PREFIX) and len(token) <= MAX_TOKEN:
            hook = await self.storage.webhook_for_token(token_hash(token))
        if hook is None:
            raise ChatError("not_found", "no such webhook")
        room = await self.storage.room(hook.room)
        if room is None:  # deleted with its room since the lookup
            raise ChatError("not_found", "no such webhook")
        await self.limits.check(f"hook:{hook.id}", self.rate,
                                "too many messages from this webhook; slow down")
        bot = User(hook.bot_id, hook.name, False, NO_LOGIN)
        return await self.chat.post(bot, room, body, nonce)
