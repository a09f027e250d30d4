"""Mentions in a message body (SPEC §9): ``@username`` of a room member, ``@room``."""

from __future__ import annotations

import re

ROOM = "room"  # what ``@room`` puts in a message's ``mentions``
MAX_MENTIONS = 50  # names looked at per body; more is not a conversation
# An @ not glued to a word before it (so e-mail addresses do not mention), then a name
# in the username alphabet (SPEC §3).
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_.-]{3,32})")


def candidates(body: str) -> list[str]:
    """The names after each @ in a body, in order, each with its trailing dots and dashes
    also trimmed ("@bob." at a sentence's end names bob): casefolded, without repeats."""
    if "@" not in body:
        return []
    found: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        name = match.group(1).casefold()
        found[name] = None
        trimmed = name.rstrip(".-")
        if trimmed != name and len(trimmed) >= 3:
            found[trimmed] = None
        if len(found) >= MAX_MENTIONS:
            break
    return list(found)


def resolve(names: list[str], members: list[str]) -> tuple[str, ...]:
    """The mentioned usernames (as spelled in the account) among a room's members, in
    the order mentioned; ``room`` for @room."""
    by_key = {member.casefold(): member for member in members}
    mentioned: dict[str, None] = {}
    for name in names:
        if name == ROOM:
            mentioned[ROOM] = None
        elif name in by_key:
            mentioned[by_key[name]] = None
    return tuple(mentioned)
