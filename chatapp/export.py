"""A room's history as one document (``chatapp export``): JSON or Markdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from .storage import Message, Room, Storage
from .storage.models import isoformat, utcnow

FORMATS = ("json", "markdown")
PAGE = 200


class ExportError(LookupError):
    """Nothing to export under that name."""


async def room_history(storage: Storage, slug: str) -> tuple[Room, list[Message]]:
    """The room and all its messages in order (deleted ones are not in history)."""
    room = await storage.room(slug)
    if room is None:
        raise ExportError(f"no room {slug!r}")
    return room, [message async for message in _messages(storage, room)]


async def _messages(storage: Storage, room: Room) -> AsyncIterator[Message]:
    after = 0
    while True:
        page = await storage.messages(room.id, before=None, after=after, limit=PAGE)
        for message in page.messages:
            yield message
        if not page.has_more or not page.messages:
            return
        after = page.messages[-1].id


def render(room: Room, messages: list[Message], fmt: str) -> str:
    if fmt == "json":
        return to_json(room, messages)
    if fmt == "markdown":
        return to_markdown(room, messages)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def to_json(room: Room, messages: list[Message]) -> str:
    document: dict[str, Any] = {
        "room": {"slug": room.slug, "name": room.name, "kind": room.kind},
        "exported_at": isoformat(utcnow()),
        "messages": [message.to_json() for message in messages],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def to_markdown(room: Room, messages: list[Message]) -> str:
    """Each message as a heading line and its body quoted: bodies are plain text, and
    a quote keeps their lines together without reading them as headings or lists."""
    lines = [f"# {room.name}", "", f"`{room.slug}` · {len(messages)} messages · exported "
             f"{isoformat(utcnow())}", ""]
    for message in messages:
        edited = " (edited)" if message.edited_at else ""
        lines.append(f"**{message.author}** · {message.created_at} · #{message.id}{edited}")
        lines.append("")
        lines += [f"> {line}" if line else ">" for line in message.body.split("\n")]
        lines.append("")
    return "\n".join(lines)
