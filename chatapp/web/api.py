"""The JSON API under /api/v1 for the browser client and bots."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, request

from .. import dms, search
from ..chat import PAGE_DEFAULT, PAGE_MAX, ChatError
from ..errors import ApiError, json_refusal
from ..security import UNSAFE_METHODS, CSRFError, bearer_authenticated, check_csrf, current_user
from ..storage import Message, RoomSummary, User
from ..webhooks import hook_path
from . import hooks
from . import schemas as s
from .lifecycle import services
from .schemas import documented

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_ID = 2**63 - 1  # ids are 64-bit in both engines


@bp.before_request
async def authenticate() -> None:
    if current_user() is None:
        raise ApiError(401, "log in first, or send Authorization: Bearer <token>")
    if request.method in UNSAFE_METHODS and not bearer_authenticated():
        try:
            check_csrf(request.headers.get("X-CSRF-Token"))
        except CSRFError as error:
            raise ApiError(400, f"{error}: send the X-CSRF-Token header", "csrf") from None


@bp.errorhandler(ChatError)
async def chat_error(error: ChatError) -> Any:
    # An error handler's own exception is not handled again: answer directly.
    return json_refusal(error)


def _user() -> User:
    user = current_user()
    assert user is not None  # guaranteed by authenticate()
    return user


async def _json_object() -> dict[str, Any]:
    data = await request.get_json(force=True)  # bad JSON: a 400 (errors.JsonRequest)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_json")
    return data


def _int_arg(name: str, default: int | None = None, low: int = 1, high: int | None = None) -> Any:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"{name} must be an integer", "invalid", name) from None
    if value < low or (high is not None and value > high):
        bound = f"{low}–{high}" if high is not None else f">= {low}"
        raise ApiError(422, f"{name} must be {bound}", "invalid", name)
    return value


@bp.get("/me")
@documented({200: s.Me})
async def me() -> Any:
    """Who the caller is (SPEC §5: exactly these three; ``hello`` adds display_name)."""
    user = _user()
    return {"id": user.id, "username": user.username, "is_admin": user.is_admin}


@bp.get("/online")
@documented({200: s.Online})
async def online() -> Any:
    """Everyone with an open connection."""
    return {"online": await services().presence.online()}


@bp.get("/rooms")
@documented({200: s.Rooms})
async def rooms() -> Any:
    """The caller's rooms with unread counts."""
    summaries = await services().storage.rooms_of(_user().id)
    return {"rooms": [room.to_json() for room in summaries]}


@bp.post("/rooms")
@documented({201: s.RoomSummary}, body=s.NewRoom, errors=(409, 422, 429))
async def create_room() -> Any:
    """Create a room; the caller is its first member."""
    data = await _json_object()
    summary = await services().chat.create_room(_user(), data.get("name"), data.get("kind"))
    return summary.to_json(), 201


@bp.put("/rooms/<slug>/notify")
@documented({200: s.NotifySet}, body=s.NotifyChoice, errors=(403, 404, 422))
async def set_notify(slug: str) -> Any:
    """Which new messages of a room the caller's browser announces."""
    data = await _json_object()
    notify = await services().chat.set_notify(_user(), slug, data.get("notify"))
    return {"room": slug, "notify": notify}


@bp.post("/dms")
@documented({200: s.RoomSummary, 201: s.RoomSummary}, body=s.NewDM, errors=(404, 422, 429))
async def open_dm() -> Any:
    """The direct message of the caller and 1–8 others: made once (201), then found (200)."""
    data = await _json_object()
    summary, created = await dms.open_dm(services().chat, _user(), data.get("users"))
    return summary.to_json(), 201 if created else 200


@bp.get("/users")
@documented({200: s.Users})
async def users() -> Any:
    """Everyone with an account, to pick people from."""
    return {"users": [u.to_json() for u in await services().storage.users()]}


@bp.get("/rooms/directory")
@documented({200: s.Rooms})
async def directory() -> Any:
    """Public rooms the caller has not joined."""
    svc = services()
    mine = {room.slug for room in await svc.storage.rooms_of(_user().id)}
    rooms = [
        RoomSummary(r.id, r.slug, r.name, r.kind, 0, r.last_seq).to_json()
        for r in await svc.storage.public_rooms()
        if r.slug not in mine
    ]
    return {"rooms": rooms}


@bp.post("/rooms/<slug>/join")
@documented({200: s.RoomSummary}, errors=(403, 404, 422))
async def join(slug: str) -> Any:
    """Join a public room."""
    return (await services().chat.join(_user(), slug)).to_json()


@bp.post("/rooms/<slug>/leave")
@documented({200: s.Left}, errors=(403, 404, 422))
async def leave(slug: str) -> Any:
    """Leave a room."""
    await services().chat.leave(_user(), slug)
    return {"left": slug}


@bp.get("/rooms/<slug>/members")
@documented({200: s.Members}, errors=(403, 404, 422))
async def members(slug: str) -> Any:
    """The usernames of a room's members (for @ mentions)."""
    svc = services()
    room = await svc.chat.room_for(_user(), slug)
    return {"members": await svc.storage.room_members(room.id)}


@bp.post("/rooms/<slug>/members")
@documented({201: s.MemberAdded}, body=s.NewMember,
            errors=(403, 404, 409, 422, 429))
async def add_member(slug: str) -> Any:
    """Add someone to a room the caller belongs to (how private rooms grow)."""
    data = await _json_object()
    await services().chat.add_member(_user(), slug, data.get("username"))
    return {"room": slug, "added": data.get("username")}, 201


@bp.get("/rooms/<slug>/messages")
@documented({200: s.MessagePage}, query=s.HistoryQuery, errors=(403, 404, 422))
async def messages(slug: str) -> Any:
    """A keyset page of a room's history, ascending by id (or centred on ``around``)."""
    svc = services()
    room = await svc.chat.room_for(_user(), slug)
    limit = _int_arg("limit", PAGE_DEFAULT, 1, PAGE_MAX)
    before = _int_arg("before", low=0, high=MAX_ID)
    after = _int_arg("after", low=0, high=MAX_ID)
    centre = _int_arg("around", low=1, high=MAX_ID - 1)
    if centre is not None:
        if before is not None or after is not None:
            raise ApiError(422, "around goes without before and after", "invalid", "around")
        return (await search.around(svc.chat, room, centre, limit)).to_json()
    page = await svc.chat.history(room, before, after, limit)
    return {"messages": [m.to_json() for m in page.messages], "has_more": page.has_more}


@bp.get("/search")
@documented({200: s.SearchResults}, query=s.SearchQuery, errors=(404, 422))
async def search_messages() -> Any:
    """Messages the caller may read that match ``q``, newest first."""
    found = await search.search(
        services().chat, _user(), request.args.get("q"), room=request.args.get("room"),
        before=_int_arg("before", low=1, high=MAX_ID),
        limit=_int_arg("limit", search.LIMIT_DEFAULT, 1, search.LIMIT_MAX),
    )
    return found.to_json()


@bp.post("/rooms/<slug>/messages")
@documented({201: s.Message}, body=s.NewMessage, errors=(403, 404, 422, 429))
async def post_message(slug: str) -> Any:
    """Post a message; a repeated nonce returns the stored message."""
    svc = services()
    user = _user()
    data = await _json_object()
    room = await svc.chat.room_for(user, slug, to_write=True)
    await svc.limits.check(f"api:{user.id}", current_app.config["CHATAPP_API_RATE"],
                           "too many messages; slow down")
    message = await svc.chat.post(user, room, data.get("body"), data.get("nonce"),
                                  reply_to=data.get("reply_to"),
                                  attachments=data.get("attachments"))
    return message.to_json(), 201


# A message after it is sent (SPEC §9): the same rules and room events as the websocket.


@bp.patch("/messages/<int:message_id>")
@documented({200: s.Message}, body=s.MessageEdit, errors=(403, 404, 422))
async def edit_message(message_id: int) -> Any:
    """Edit one's own message; the same body again changes nothing."""
    svc = services()
    data = await _json_object()
    event = await svc.chat.edit(_user(), message_id, data.get("body"))
    if event is not None:
        return event.fields["message"]
    return (await _current(message_id)).to_json()


@bp.delete("/messages/<int:message_id>")
@documented({204: s.NoContent}, errors=(403, 404, 422))
async def delete_message(message_id: int) -> Any:
    """Delete one's own message (an admin: anyone's), its earlier bodies and reactions."""
    await services().chat.delete(_user(), message_id)
    return "", 204


@bp.put("/messages/<int:message_id>/reactions/<emoji>")
@documented({200: s.Reactions}, errors=(403, 404, 422))
async def add_reaction(message_id: int, emoji: str) -> Any:
    """React to a message (again: no change)."""
    return await _react(message_id, emoji, on=True)


@bp.delete("/messages/<int:message_id>/reactions/<emoji>")
@documented({200: s.Reactions}, errors=(403, 404, 422))
async def remove_reaction(message_id: int, emoji: str) -> Any:
    """Take one's reaction back (none: no change)."""
    return await _react(message_id, emoji, on=False)


async def _react(message_id: int, emoji: str, on: bool) -> Any:
    event = await services().chat.react(_user(), message_id, emoji, on)
    if event is not None:
        return {"id": message_id, "reactions": event.fields["reactions"]}
    message = await _current(message_id)
    return {"id": message_id, "reactions": [r.to_json() for r in message.reactions]}


async def _current(message_id: int) -> Message:
    """A message after a change that was a no-op (gone since: 404)."""
    message = await services().storage.message(message_id)
    if message is None or message.deleted:
        raise ChatError("not_found", f"no message {message_id}", "id")
    return message


@bp.get("/messages/<int:message_id>/edits")
@documented({200: s.Edits}, errors=(403, 404, 422))
async def message_edits(message_id: int) -> Any:
    """A message's earlier bodies, oldest first."""
    return {"edits": await services().chat.edits(_user(), message_id)}


# Incoming webhooks (SPEC §12), for admins; the posting side is web/hooks.py.


@bp.post("/rooms/<slug>/webhooks")
@documented({201: s.CreatedWebhook}, body=s.NewWebhook, errors=(403, 404, 409, 422))
async def create_webhook(slug: str) -> Any:
    """Create a webhook for a room; its secret URL is in this answer only."""
    data = await _json_object()
    hook, token = await hooks.webhooks().create(_user(), slug, data.get("name"))
    return {**hook.to_json(), "url": hook_path(token)}, 201


@bp.get("/rooms/<slug>/webhooks")
@documented({200: s.Webhooks}, errors=(403, 404))
async def list_webhooks(slug: str) -> Any:
    """A room's webhooks (names and ids, never their secrets)."""
    found = await hooks.webhooks().of_room(_user(), slug)
    return {"webhooks": [hook.to_json() for hook in found]}


@bp.delete("/webhooks/<int:webhook_id>")
@documented({204: s.NoContent}, errors=(403, 404))
async def delete_webhook(webhook_id: int) -> Any:
    """Delete a webhook: its URL stops working at once (its messages stay)."""
    await hooks.webhooks().delete(_user(), webhook_id)
    return "", 204
