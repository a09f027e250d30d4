"""Direct messages (SPEC §9): one private room per set of people, made on first use."""

from __future__ import annotations

import secrets
from typing import Any

from .chat import Chat, ChatError
from .limits import DM_CREATE_RATE
from .storage import Room, RoomSummary, User

MAX_OTHERS = 8


def _error(code: str, message: str, field: str = "users") -> ChatError:
    return ChatError(code, message, field)


async def open_dm(chat: Chat, user: User, usernames: Any) -> tuple[RoomSummary, bool]:
    """The DM of the caller and ``usernames`` (1–8 other people), and whether it is new.

    The same set of people, in any order or case, always gets the same room. A new DM
    reaches every member's connections as ``room_joined`` (each named after the others).
    """
    if not isinstance(usernames, list) or not all(isinstance(n, str) for n in usernames):
        raise _error("invalid", "users must be a list of usernames")
    wanted = {name.casefold() for name in usernames} - {user.username.casefold()}
    if not wanted:
        raise _error("invalid", "name at least one other person (a DM with yourself alone"
                     " is not a conversation)")
    if len(wanted) > MAX_OTHERS:
        raise _error("invalid", f"a direct message has at most {MAX_OTHERS} other people")
    accounts = {listing.username.casefold(): listing for listing in await chat.storage.users()}
    others: list[User] = []
    for key in sorted(wanted):
        listing = accounts.get(key)
        if listing is None:
            raise _error("not_found", f"no user {key!r}")
        if not listing.active:
            raise _error("invalid", f"{listing.username!r} is deactivated")
        other = await chat.storage.user_by_name(listing.username)
        if other is None:
            raise _error("not_found", f"no user {key!r}")
        others.append(other)
    await chat.limits.check(f"dms:{user.id}", DM_CREATE_RATE,
                            "too many direct messages opened; try again later")
    people = sorted([user, *others], key=lambda u: u.username.casefold())
    key = ",".join(str(uid) for uid in sorted(u.id for u in people))
    names = [u.username for u in people]
    room, created = await chat.storage.create_dm(
        f"dm-{secrets.token_hex(8)}", key, ", ".join(names), [u.id for u in people])
    if created:
        for member in people:
            await chat.announce_joined(member.id, dm_summary(room, names, member.username))
    return dm_summary(room, names, user.username), created


def dm_summary(room: Room, members: list[str], viewer: str) -> RoomSummary:
    others = [name for name in members if name != viewer]
    return RoomSummary(room.id, room.slug, ", ".join(others), "dm", 0, room.last_seq,
                       members=tuple(members))

