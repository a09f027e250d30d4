"""The JSON bodies of /api/v1 and /hooks as pydantic models: what each view accepts and
answers, attached to it with ``documented``; ``web/openapi.py`` builds the OpenAPI
document from them with quart-schema.

They document, they do not parse: the views read bodies through ``jsonin`` and the
domain checks the values, so every refusal keeps SPEC §5's body, status, code and field
(quart-schema's ``validate_request`` answers its own 400 before the view runs, and
accepts only an ``application/json`` body). ``tests/test_openapi_fuzz.py`` checks the
real server's answers against these models, so they cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart_schema import DataSource, document_querystring, document_request, document_response

from ..chat import PAGE_MAX
from ..search import LIMIT_MAX
from ..webhooks import MAX_ID

View = TypeVar("View", bound=Callable[..., Any])
_UNSET = object()


def _tidy(schema: dict[str, Any]) -> None:
    """No per-property titles; a field that defaults to None is left out of the JSON,
    never sent as null: its schema is the value's alone, not required."""
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        if prop.get("default", _UNSET) is None:
            del prop["default"]
            variants = [v for v in prop.pop("anyOf", [prop]) if v != {"type": "null"}]
            if len(variants) == 1 and variants[0] is not prop:
                prop.update(variants[0])


class Schema(BaseModel):
    model_config = ConfigDict(json_schema_extra=_tidy)


class NoContent(Schema):
    """Done; no body."""


class ErrorDetail(Schema):
    """SPEC §4: ``field`` names the offending field, when there is one."""

    status: int
    code: str
    message: str
    field: str | None = None


class Error(Schema):
    """Every refusal's body."""

    error: ErrorDetail


# People and rooms.

Kind = Literal["public", "private", "dm"]
Notify = Literal["all", "mentions", "none"]


class Me(Schema):
    """The caller."""

    id: int
    username: str
    is_admin: bool


class Online(Schema):
    """Usernames with an open connection."""

    online: list[str]


class UserListing(Schema):
    """Someone with an account."""

    username: str
    display_name: str
    is_admin: bool
    bot: bool
    active: bool


class Users(Schema):
    """Everyone with an account."""

    users: list[UserListing]


class RoomSummary(Schema):
    """A room as the caller sees it (``members`` for a DM only)."""

    slug: str
    name: str
    kind: Kind
    unread: int
    mentions: int
    last_seq: int
    notify: Notify
    members: list[str] | None = None


class Rooms(Schema):
    """Room summaries."""

    rooms: list[RoomSummary]


class NewRoom(Schema):
    """A room to create."""

    name: str
    kind: Literal["public", "private"]


class NotifyChoice(Schema):
    """Which new messages of the room the caller's browser announces."""

    notify: Notify


class NotifySet(Schema):
    """The room's new setting."""

    room: str
    notify: Notify


class NewDM(Schema):
    """The 1-8 other people of a direct message."""

    users: list[str]


class Left(Schema):
    """The room left."""

    left: str


class Members(Schema):
    """A room's members' usernames."""

    members: list[str]


class NewMember(Schema):
    """Who to add."""

    username: str


class MemberAdded(Schema):
    """Who was added to which room."""

    room: str
    added: str


# Messages.


class Reaction(Schema):
    """One emoji's reactions, users in the order they reacted."""

    emoji: str
    count: int
    users: list[str]


class Upload(Schema):
    """An uploaded file (SPEC §10); width, height and thumbnail for images only."""

    id: int
    name: str
    size: int
    content_type: str
    url: str
    width: int | None
    height: int | None
    thumbnail_url: str | None


class Message(Schema):
    """SPEC §5's message object."""

    id: int
    room: str
    seq: int
    author: str
    body: str
    created_at: str
    nonce: str | None
    edited_at: str | None
    reply_to: int | None
    mentions: list[str]
    reactions: list[Reaction]
    attachments: list[Upload]
    bot: bool


class MessagePage(Schema):
    """A page of history, ascending by id (``has_more_after`` with ``around``)."""

    messages: list[Message]
    has_more: bool
    has_more_after: bool | None = None


class HistoryQuery(Schema):
    """Keyset paging: ``before`` or ``after`` an id, or ``around`` one."""

    before: int | None = Field(None, ge=0, le=MAX_ID)
    after: int | None = Field(None, ge=0, le=MAX_ID)
    around: int | None = Field(None, ge=1, le=MAX_ID - 1)
    limit: int | None = Field(None, ge=1, le=PAGE_MAX)


class NewMessage(Schema):
    """A message to post; a nonce seen before returns the stored message."""

    body: str
    nonce: str | None = None
    reply_to: int | None = None
    attachments: list[int] | None = None


class HookMessage(Schema):
    """A message for the hook's room."""

    body: str
    nonce: str | None = None


class MessageEdit(Schema):
    """The new body."""

    body: str


class Reactions(Schema):
    """A message's reactions after the change."""

    id: int
    reactions: list[Reaction]


class Edit(Schema):
    """An earlier body and when it was replaced."""

    body: str
    edited_at: str


class Edits(Schema):
    """A message's earlier bodies, oldest first."""

    edits: list[Edit]


class SearchQuery(Schema):
    """Words (prefixes), ``"a phrase"``, ``from:NAME``, ``in:SLUG``; older than ``before``."""

    q: str | None = None
    room: str | None = None
    before: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int | None = Field(None, ge=1, le=LIMIT_MAX)


class SearchHit(Schema):
    """A match; highlights are [start, end) character ranges into its body."""

    message: Message
    highlights: list[tuple[int, int]]


class SearchResults(Schema):
    """Matches, newest first."""

    results: list[SearchHit]
    has_more: bool


class UploadForm(Schema):
    """multipart/form-data with one file field."""

    file: bytes


# Webhooks.


class NewWebhook(Schema):
    """The bot name the hook posts as."""

    name: str


class Webhook(Schema):
    """A hook, never its secret."""

    id: int
    room: str
    name: str
    created_at: str


class CreatedWebhook(Webhook):
    """The new hook with its secret path ``/hooks/<token>``, shown this once."""

    url: str


class Webhooks(Schema):
    """A room's hooks."""

    webhooks: list[Webhook]


class OpenAPIDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


def documented(
    answers: dict[int, type[BaseModel]],
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: Iterable[int] = (),
    source: DataSource = DataSource.JSON,
) -> Callable[[View], View]:
    """Describe a view: its success answers, request body, query and the error statuses
    it can answer besides those every call can (``web/openapi.py`` adds those)."""

    def decorate(view: View) -> View:
        if body is not None:
            view = document_request(body, source=source)(view)
        if query is not None:
            view = document_querystring(query)(view)
        for status, model in answers.items():
            view = document_response(model, status)(view)
        for status in errors:
            view = document_response(Error, status)(view)
        return view

    return decorate
