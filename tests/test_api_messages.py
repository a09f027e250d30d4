"""SPEC §9 over the JSON API: edit, delete, reactions and edit history of a message."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from quart.testing import QuartClient

from .conftest import AuthActions
from .hashing import cheap_passwords
from .wsutil import connect

GENERAL = "general"


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


class Caller:
    def __init__(self, client: QuartClient, csrf: str) -> None:
        self.client = client
        self.headers = {"X-CSRF-Token": csrf}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs["json"] = body
        response = await getattr(self.client, method)("/api/v1" + path, **kwargs)
        data = await response.get_data(as_text=True)
        return response.status_code, (await response.get_json()) if data else None

    async def say(self, body: str, room: str = GENERAL, **extra: Any) -> dict[str, Any]:
        status, message = await self.call("post", f"/rooms/{room}/messages",
                                          {"body": body, **extra})
        assert status == 201, message
        return message  # type: ignore[no-any-return]

    async def history(self, room: str = GENERAL) -> list[dict[str, Any]]:
        status, page = await self.call("get", f"/rooms/{room}/messages")
        assert status == 200
        return page["messages"]  # type: ignore[no-any-return]


async def caller(auth: AuthActions, name: str) -> Caller:
    return Caller(*await auth.user(name))


def reaction(emoji: str) -> str:
    return quote(emoji, safe="")


async def test_patch_edits_and_get_edits_lists_earlier_bodies(auth):
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    message = await alice.say("v1")
    async with connect(bob.client) as b:
        status, edited = await alice.call("patch", f"/messages/{message['id']}", {"body": "v2"})
        assert status == 200 and edited["body"] == "v2" and edited["edited_at"]
        assert edited["id"] == message["id"] and edited["seq"] == message["seq"]
        event = await b.expect("message_edited")
        assert event["message"] == edited and event["seq"] == message["seq"] + 1
    status, same = await alice.call("patch", f"/messages/{message['id']}", {"body": "v2"})
    assert status == 200 and same == edited
    await alice.call("patch", f"/messages/{message['id']}", {"body": "v3"})
    status, edits = await bob.call("get", f"/messages/{message['id']}/edits")
    assert status == 200
    assert [e["body"] for e in edits["edits"]] == ["v1", "v2"]
    assert all(set(e) == {"body", "edited_at"} for e in edits["edits"])
    assert [m["body"] for m in await bob.history()] == ["v3"]


async def test_patch_errors(auth):
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    message = await alice.say("mine")
    path = f"/messages/{message['id']}"
    assert (await bob.call("patch", path, {"body": "no"}))[0] == 403
    status, error = await alice.call("patch", path, {"body": ""})
    assert status == 422 and error["error"]["code"] == "invalid"
    assert error["error"]["field"] == "body"
    assert (await alice.call("patch", path, {}))[0] == 422
    assert (await alice.call("patch", "/messages/999999", {"body": "x"}))[0] == 404
    assert (await alice.call("patch", f"/messages/{2**70}", {"body": "x"}))[0] == 422
    assert [m["body"] for m in await alice.history()] == ["mine"]
    status, _ = await alice.call("get", f"/messages/{message['id']}/edits")
    assert status == 200


async def test_delete_by_author_or_admin_only(auth):
    alice = await caller(auth, "alice")  # admin: the first user
    bob = await caller(auth, "bob")
    carol = await caller(auth, "carol")
    bobs = await bob.say("bob's")
    carols = await carol.say("carol's")
    assert (await carol.call("delete", f"/messages/{bobs['id']}"))[0] == 403
    assert (await bob.call("delete", f"/messages/{bobs['id']}")) == (204, None)
    assert (await alice.call("delete", f"/messages/{carols['id']}")) == (204, None)
    assert (await bob.call("delete", f"/messages/{bobs['id']}"))[0] == 404
    assert await alice.history() == []
    assert (await bob.call("get", f"/messages/{bobs['id']}/edits"))[0] == 404


async def test_reactions_put_and_delete(auth):
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    message = await alice.say("react")
    base = f"/messages/{message['id']}/reactions"
    status, body = await bob.call("put", f"{base}/{reaction('👍')}")
    assert status == 200
    assert body == {"id": message["id"],
                    "reactions": [{"emoji": "👍", "count": 1, "users": ["bob"]}]}
    assert (await bob.call("put", f"{base}/{reaction('👍')}")) == (200, body)  # no-op
    status, body = await alice.call("put", f"{base}/:party:")
    assert [r["emoji"] for r in body["reactions"]] == ["👍", ":party:"]
    (listed,) = await alice.history()
    assert listed["reactions"] == body["reactions"]
    status, body = await bob.call("delete", f"{base}/{reaction('👍')}")
    assert status == 200 and body["reactions"] == [
        {"emoji": ":party:", "count": 1, "users": ["alice"]}]
    assert (await bob.call("delete", f"{base}/{reaction('👍')}")) == (200, body)
    status, error = await bob.call("put", f"{base}/notanemoji")
    assert status == 422 and error["error"]["field"] == "emoji"
    assert (await bob.call("put", f"/messages/999999/reactions/{reaction('👍')}"))[0] == 404


async def test_the_21st_distinct_reaction_is_422_too_large(auth):
    alice = await caller(auth, "alice")
    message = await alice.say("popular")
    base = f"/messages/{message['id']}/reactions"
    for i in range(20):
        assert (await alice.call("put", f"{base}/:e{i}:"))[0] == 200
    status, error = await alice.call("put", f"{base}/:e20:")
    assert status == 422 and error["error"]["code"] == "too_large"
    (listed,) = await alice.history()
    assert len(listed["reactions"]) == 20


async def test_messages_of_rooms_the_caller_cannot_see_are_404(auth):
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    status, room = await alice.call("post", "/rooms", {"name": "hidden", "kind": "private"})
    assert status == 201
    secret = await alice.say("secret", room=room["slug"])
    for method, path, body in [
        ("patch", f"/messages/{secret['id']}", {"body": "x"}),
        ("put", f"/messages/{secret['id']}/reactions/{reaction('👍')}", None),
        ("delete", f"/messages/{secret['id']}/reactions/{reaction('👍')}", None),
        ("get", f"/messages/{secret['id']}/edits", None),
    ]:
        status, error = await bob.call(method, path, body)
        assert status == 404 and "hidden" not in str(error), (method, path)
    # bob is no admin: deleting is 404 too, like for a message that does not exist.
    assert (await bob.call("delete", f"/messages/{secret['id']}"))[0] == 404
    assert [m["body"] for m in await alice.history(room["slug"])] == ["secret"]


async def test_post_with_reply_to(auth):
    alice = await caller(auth, "alice")
    quoted = await alice.say("q")
    reply = await alice.say("a", reply_to=quoted["id"])
    assert reply["reply_to"] == quoted["id"]
    status, error = await alice.call("post", f"/rooms/{GENERAL}/messages",
                                     {"body": "x", "reply_to": 10**9})
    assert status == 404 and error["error"]["field"] == "reply_to"
    assert [m["reply_to"] for m in await alice.history()] == [None, quoted["id"]]
