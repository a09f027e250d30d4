"""GET /api/v1/openapi.json: an OpenAPI 3.1 description of the JSON API and webhooks.

Each operation's summary is its view's docstring, and ``tests/test_openapi.py`` checks
that every registered /api/v1 and /hooks rule is described here, so a new route without
a description fails the suite. The bodies are JSON Schema, written once below.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, Quart, current_app

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NULLABLE_STR = {"type": ["string", "null"]}
NAMES = {"type": "array", "items": STR}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error"], error=_obj(
        ["status", "code", "message"], status=INT, code=STR, message=STR, field=STR)),
    "Me": _obj(["id", "username", "is_admin"], id=INT, username=STR, is_admin=BOOL),
    "RoomSummary": _obj(
        ["slug", "name", "kind", "unread", "mentions", "last_seq", "notify"],
        slug=STR, name=STR, kind={"enum": ["public", "private", "dm"]}, unread=INT,
        mentions=INT, last_seq=INT, notify={"enum": ["all", "mentions", "none"]},
        members=NAMES),
    "Rooms": _obj(["rooms"], rooms={"type": "array", "items": _ref("RoomSummary")}),
    "Reaction": _obj(["emoji", "count", "users"], emoji=STR, count=INT, users=NAMES),
    "Upload": _obj(["id", "name", "size", "content_type", "url"], id=INT, name=STR,
                   size=INT, content_type=STR, url=STR, width={"type": ["integer", "null"]},
                   height={"type": ["integer", "null"]}, thumbnail_url=NULLABLE_STR),
    "Message": _obj(
        ["id", "room", "seq", "author", "body", "created_at", "nonce", "edited_at",
         "reply_to", "mentions", "reactions", "attachments", "bot"],
        id=INT, room=STR, seq=INT, author=STR, body=STR, created_at=STR,
        nonce=NULLABLE_STR, edited_at=NULLABLE_STR, reply_to={"type": ["integer", "null"]},
        mentions=NAMES, reactions={"type": "array", "items": _ref("Reaction")},
        attachments={"type": "array", "items": _ref("Upload")}, bot=BOOL),
    "MessagePage": _obj(["messages", "has_more"],
                        messages={"type": "array", "items": _ref("Message")},
                        has_more=BOOL, has_more_after=BOOL),
    "NewMessage": _obj(["body"], body=STR, nonce=STR, reply_to=INT,
                       attachments={"type": "array", "items": INT}),
    "HookMessage": _obj(["body"], body=STR, nonce=STR),
    "Webhook": _obj(["id", "room", "name", "created_at"], id=INT, room=STR, name=STR,
                    created_at=STR),
    "NewWebhook": _obj(["id", "room", "name", "created_at", "url"], id=INT, room=STR,
                       name=STR, created_at=STR, url=STR),
}

# (method, rule) -> (request schema or None, success status, response schema or None,
# the error statuses the call can answer besides those every call can).
OPERATIONS: dict[tuple[str, str], tuple[Any, int, Any, list[int]]] = {
    ("GET", "/api/v1/me"): (None, 200, _ref("Me"), []),
    ("GET", "/api/v1/online"): (None, 200, _obj(["online"], online=NAMES), []),
    ("GET", "/api/v1/rooms"): (None, 200, _ref("Rooms"), []),
    ("POST", "/api/v1/rooms"): (
        _obj(["name", "kind"], name=STR, kind={"enum": ["public", "private"]}), 201,
        _ref("RoomSummary"), [409, 422, 429]),
    ("PUT", "/api/v1/rooms/<slug>/notify"): (
        _obj(["notify"], notify={"enum": ["all", "mentions", "none"]}), 200,
        _obj(["room", "notify"], room=STR, notify=STR), [403, 404, 422]),
    ("POST", "/api/v1/dms"): (_obj(["users"], users=NAMES), 201, _ref("RoomSummary"),
                              [404, 422, 429]),
    ("GET", "/api/v1/users"): (None, 200, _obj(["users"], users={"type": "array", "items":
                               _obj(["username"], username=STR, display_name=STR,
                                    is_admin=BOOL, bot=BOOL, active=BOOL)}), []),
    ("GET", "/api/v1/rooms/directory"): (None, 200, _ref("Rooms"), []),
    ("POST", "/api/v1/rooms/<slug>/join"): (None, 200, _ref("RoomSummary"), [403, 404, 422]),
    ("POST", "/api/v1/rooms/<slug>/leave"): (None, 200, _obj(["left"], left=STR),
                                             [403, 404, 422]),
    ("GET", "/api/v1/rooms/<slug>/members"): (None, 200, _obj(["members"], members=NAMES),
                                              [403, 404, 422]),
    ("POST", "/api/v1/rooms/<slug>/members"): (
        _obj(["username"], username=STR), 201, _obj(["room", "added"], room=STR, added=STR),
        [403, 404, 409, 422, 429]),
    ("GET", "/api/v1/rooms/<slug>/messages"): (None, 200, _ref("MessagePage"),
                                               [403, 404, 422]),
    ("POST", "/api/v1/rooms/<slug>/messages"): (_ref("NewMessage"), 201, _ref("Message"),
                                                [403, 404, 422, 429]),
    ("GET", "/api/v1/search"): (None, 200, _obj(["results", "has_more"], results={
        "type": "array", "items": _obj(["message", "highlights"], message=_ref("Message"),
                                       highlights={"type": "array"})}, has_more=BOOL),
        [404, 422]),
    ("PATCH", "/api/v1/messages/<int:message_id>"): (
        _obj(["body"], body=STR), 200, _ref("Message"), [403, 404, 422]),
    ("DELETE", "/api/v1/messages/<int:message_id>"): (None, 204, None, [403, 404, 422]),
    ("PUT", "/api/v1/messages/<int:message_id>/reactions/<emoji>"): (
        None, 200, _obj(["id", "reactions"], id=INT, reactions={"type": "array"}),
        [403, 404, 422]),
    ("DELETE", "/api/v1/messages/<int:message_id>/reactions/<emoji>"): (
        None, 200, _obj(["id", "reactions"], id=INT, reactions={"type": "array"}),
        [403, 404, 422]),
    ("GET", "/api/v1/messages/<int:message_id>/edits"): (
        None, 200, _obj(["edits"], edits={"type": "array"}), [403, 404, 422]),
    ("POST", "/api/v1/rooms/<slug>/webhooks"): (
        _obj(["name"], name=STR), 201, _ref("NewWebhook"), [403, 404, 409, 422]),
    ("GET", "/api/v1/rooms/<slug>/webhooks"): (
        None, 200, _obj(["webhooks"], webhooks={"type": "array", "items": _ref("Webhook")}),
        [403, 404]),
    ("DELETE", "/api/v1/webhooks/<int:webhook_id>"): (None, 204, None, [403, 404]),
    ("POST", "/api/v1/uploads"): (None, 201, _ref("Upload"), [411, 413, 415, 422, 429]),
    ("GET", "/api/v1/openapi.json"): (None, 200, {"type": "object"}, []),
    ("POST", "/hooks/<token>"): (_ref("HookMessage"), 201, _ref("Message"),
                                 [404, 413, 422, 429]),
}
EVERY_CALL = [400, 401, 405, 503]  # bad JSON or CSRF, not logged in, wrong method, no DB
PUBLIC = {"/api/v1/openapi.json", "/hooks/<token>"}
ERROR_TEXT = {400: "Bad request (bad JSON, a missing CSRF header)", 401: "Not logged in",
              403: "Not allowed", 404: "Not found", 405: "Method not allowed",
              409: "Conflict", 411: "Length required", 413: "Too large",
              415: "Unsupported media type", 422: "Invalid or too large a value",
              429: "Rate limited (see Retry-After)", 503: "Storage unavailable"}
_PARAM = re.compile(r"<(?:(int):)?([^>]+)>")
# Query strings (all optional); ids are 64-bit, limits as the views check them.
QUERY: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {
    ("GET", "/api/v1/rooms/<slug>/messages"): [
        ("before", INT), ("after", INT), ("around", INT),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 200})],
    ("GET", "/api/v1/search"): [
        ("q", STR), ("room", STR), ("before", INT),
        ("limit", {"type": "integer", "minimum": 1})],
}
EXAMPLE = {"slug": "general"}  # the room every install has


def openapi_path(rule: str) -> str:
    return _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule)


def _parameters(method: str, rule: str) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for kind, name in _PARAM.findall(rule):
        param: dict[str, Any] = {
            "name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1} if kind else {"type": "string"}}
        if name in EXAMPLE:
            param["example"] = EXAMPLE[name]
        params.append(param)
    params += [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in QUERY.get((method, rule), [])]
    return params


def build(app: Quart) -> dict[str, Any]:
    """The document for this app's rules (summaries from the views' docstrings)."""
    views = {(method, rule.rule): app.view_functions[rule.endpoint]
             for rule in app.url_map.iter_rules() for method in rule.methods or ()}
    paths: dict[str, Any] = {}
    for (method, rule), (body, status, answer, errors) in OPERATIONS.items():
        view = views.get((method, rule))
        doc = (view.__doc__ or "").strip().splitlines()[0] if view and view.__doc__ else ""
        responses: dict[str, Any] = {
            str(status): {"description": doc or "OK"} if answer is None else {
                "description": doc or "OK",
                "content": {"application/json": {"schema": answer}}}}
        codes = sorted(set(errors + EVERY_CALL) - ({401} if rule in PUBLIC else set()))
        for code in codes:
            responses[str(code)] = {"description": ERROR_TEXT.get(code, "Error"), "content": {
                "application/json": {"schema": _ref("Error")}}}
        operation: dict[str, Any] = {"summary": doc, "responses": responses}
        if _parameters(method, rule):
            operation["parameters"] = _parameters(method, rule)
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": body}}}
        if rule not in PUBLIC:
            operation["security"] = [{"bearer": []}, {"cookie": []}]
        paths.setdefault(openapi_path(rule), {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatapp", "version": "1",
                 "description": "Unsafe cookie-authenticated calls need X-CSRF-Token."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "session"}}},
    }


@bp.get("/openapi.json")
async def openapi() -> Any:
    """This document."""
    return build(current_app)
