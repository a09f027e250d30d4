"""Broker channels: who gets an event. A connection follows its rooms, its user (all
their tabs), its session (a logout closes it) and presence (everyone)."""

from __future__ import annotations

ROOM_PREFIX = "room:"
PRESENCE_CHANNEL = "presence"


def room_channel(slug: str) -> str:
    return f"{ROOM_PREFIX}{slug}"


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def session_channel(token_hash: str) -> str:
    return f"session:{token_hash}"
