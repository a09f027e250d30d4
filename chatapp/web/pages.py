"""The chat page."""

from __future__ import annotations

from quart import Blueprint, Response, abort, render_template, request
from quart.typing import ResponseReturnValue

from ..chat import MAX_INT, ChatError
from ..security import current_user
from ..storage import GENERAL_ROOM, RoomSummary
from .lifecycle import services
from .redirects import login_url, see_other

bp = Blueprint("pages", __name__)


@bp.route("/")
async def index() -> ResponseReturnValue:
    """Open the general room, or send a visitor to the login page."""
    return await _chat_page(GENERAL_ROOM)


@bp.route("/rooms/<slug>")
async def room(slug: str) -> ResponseReturnValue:
    """Open one room."""
    return await _chat_page(slug)


@bp.route("/messages/<int:message_id>")
async def permalink(message_id: int) -> ResponseReturnValue:
    """Open a message's room scrolled to it (404 for someone who may not read it)."""
    user = current_user()
    if user is None:
        return see_other(login_url(request.path))
    message = await services().storage.message(message_id) if message_id <= MAX_INT else None
    if message is None or message.deleted:
        abort(404, "There is no such message, or you may not read it.")
    return await _chat_page(message.room, focus=message.id)


class _Names(dict[str, str]):
    """username -> display name; an unknown username shows as itself."""

    def __missing__(self, username: str) -> str:
        return username


async def _shown_names() -> _Names:
    return _Names((u.username, u.display_name) for u in await services().storage.users())


async def _chat_page(slug: str, focus: int | None = None) -> ResponseReturnValue:
    user = current_user()
    if user is None:
        return see_other(login_url(request.path))
    svc = services()
    try:
        room = await svc.chat.room_for(user, slug)
    except ChatError:
        if focus is not None:
            abort(404, "There is no such message, or you may not read it.")
        abort(404, "There is no such room, or it is private.")
    rooms = await svc.storage.rooms_of(user.id)
    current = next((r for r in rooms if r.slug == room.slug), None)
    if current is None:  # a public room the user has not joined yet
        current = RoomSummary(room.id, room.slug, room.name, room.kind, 0, room.last_seq)
    shown = await _shown_names()
    html = await render_template(
        "chat.html",
        user=user,
        rooms=rooms,
        room=current,
        joined=any(r.slug == room.slug for r in rooms),
        online=await svc.presence.online(),
        shown=shown,
        dm_label=lambda r: ", ".join(shown[m] for m in r.members if m != user.username),
        focus=focus,
    )
    return Response(html, mimetype="text/html")
