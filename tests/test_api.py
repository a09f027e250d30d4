"""The JSON API under /api/v1 (SPEC §5)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Any

import pytest
from quart.testing import QuartClient

from chatapp import create_app

from .conftest import AuthActions
from .conftest import test_config as make_config
from .hashing import cheap_passwords

MESSAGE_KEYS = {"id", "room", "seq", "author", "body", "created_at", "nonce", "edited_at",
                "reply_to", "mentions", "reactions", "attachments", "bot"}
ROOM_KEYS = {"slug", "name", "kind", "unread", "mentions", "last_seq", "notify"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


class Api:
    """A logged-in API caller: a test client plus its CSRF header."""

    def __init__(self, client: QuartClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get("/api/v1" + path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return await self.client.post("/api/v1" + path, headers=headers, **kwargs)

    async def say(self, room: str, body: str, nonce: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": body}
        if nonce is not None:
            payload["nonce"] = nonce
        response = await self.post(f"/rooms/{room}/messages", payload)
        assert response.status_code == 201, await response.get_data(as_text=True)
        return await response.get_json()

    async def room(self, name: str, kind: str = "public") -> dict[str, Any]:
        response = await self.post("/rooms", {"name": name, "kind": kind})
        assert response.status_code == 201, await response.get_data(as_text=True)
        return await response.get_json()

    async def slugs(self) -> list[str]:
        return [r["slug"] for r in (await (await self.get("/rooms")).get_json())["rooms"]]


async def api_user(auth: AuthActions, name: str) -> Api:
    return Api(*await auth.user(name))


@pytest.fixture
async def alice(auth: AuthActions) -> Api:
    return await api_user(auth, "alice")


@pytest.fixture
async def bob(auth: AuthActions, alice: Api) -> Api:
    return await api_user(auth, "bob")


async def error_of(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if field is not None:
        assert error.get("field") == field or field in error["message"], error
    return error


async def post_many(app: Any, api: Api, room: str, count: int) -> list[int]:
    """Store ``count`` messages straight through the domain (fast), return their ids."""
    svc = app.extensions["chatapp"]
    user = await svc.storage.user_by_name((await (await api.get("/me")).get_json())["username"])
    target = await svc.storage.room(room)
    ids = []
    for i in range(count):
        message = await svc.chat.post(user, target, f"message {i}", None)
        ids.append(message.id)
    return ids


# me, online


async def test_me(alice):
    response = await alice.get("/me")
    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"id", "username", "is_admin"}
    assert body["username"] == "alice" and body["is_admin"] is True
    assert isinstance(body["id"], int)


async def test_me_second_user(bob):
    body = await (await bob.get("/me")).get_json()
    assert body["username"] == "bob" and body["is_admin"] is False


async def test_online_is_a_list_and_follows_open_sockets(alice):
    body = await (await alice.get("/online")).get_json()
    assert set(body) == {"online"} and isinstance(body["online"], list)
    assert "alice" not in body["online"]
    async with alice.client.websocket("/ws") as ws:
        await ws.receive()
        body = await (await alice.get("/online")).get_json()
        assert body["online"] == ["alice"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/me"),
        ("GET", "/online"),
        ("GET", "/rooms"),
        ("POST", "/rooms"),
        ("GET", "/rooms/directory"),
        ("POST", "/rooms/general/join"),
        ("POST", "/rooms/general/leave"),
        ("POST", "/rooms/general/members"),
        ("GET", "/rooms/general/messages"),
        ("POST", "/rooms/general/messages"),
    ],
)
async def test_unauthenticated_is_401_json(client, method, path):
    response = await client.open("/api/v1" + path, method=method, json={"body": "x"})
    error = await error_of(response, 401)
    assert error["code"] == "unauthorized"


# rooms


async def test_rooms_list_shape(alice):
    body = await (await alice.get("/rooms")).get_json()
    assert set(body) == {"rooms"}
    (general,) = body["rooms"]
    assert set(general) == ROOM_KEYS
    assert general == {
        "slug": "general", "name": "general", "kind": "public", "unread": 0, "last_seq": 0,
        "mentions": 0, "notify": "all",
    }


async def test_rooms_unread_counts_others_messages(alice, bob):
    await alice.say("general", "one")
    await alice.say("general", "two")
    await bob.say("general", "mine")
    rooms = (await (await bob.get("/rooms")).get_json())["rooms"]
    assert rooms[0]["unread"] == 2 and rooms[0]["last_seq"] == 3


async def test_create_room_201(alice):
    response = await alice.post("/rooms", {"name": "Design Review", "kind": "public"})
    assert response.status_code == 201
    room = await response.get_json()
    assert set(room) == ROOM_KEYS
    assert room["slug"] == "design-review" and room["name"] == "Design Review"
    assert room["kind"] == "public" and room["last_seq"] == 0
    assert "design-review" in await alice.slugs()


async def test_create_room_trims_name(alice):
    room = await alice.room("  ops  ")
    assert room["name"] == "ops" and room["slug"] == "ops"


async def test_create_room_duplicate_is_409(alice, bob):
    await alice.room("design")
    await error_of(await alice.post("/rooms", {"name": "design", "kind": "public"}), 409)
    await error_of(await bob.post("/rooms", {"name": "Design", "kind": "private"}), 409)
    await error_of(await bob.post("/rooms", {"name": "General", "kind": "public"}), 409)


@pytest.mark.parametrize("kind", ["secret", "", None, 1, "PUBLIC"])
async def test_create_room_bad_kind_is_422_naming_kind(alice, kind):
    response = await alice.post("/rooms", {"name": "x", "kind": kind})
    await error_of(response, 422, "kind")


@pytest.mark.parametrize("name", ["", "   ", None, 42, "x" * 65, "!!!", ["a"]])
async def test_create_room_bad_name_is_422_naming_name(alice, name):
    response = await alice.post("/rooms", {"name": name, "kind": "public"})
    await error_of(response, 422, "name")


async def test_create_room_not_json_is_400(alice):
    response = await alice.post("/rooms", data="name=x", headers={"Content-Type": "text/plain"})
    await error_of(response, 400)


async def test_create_room_without_csrf_is_400(alice):
    response = await alice.client.post("/api/v1/rooms", json={"name": "x", "kind": "public"})
    error = await error_of(response, 400)
    assert "X-CSRF-Token" in error["message"]
    assert "x" not in await alice.slugs()


async def test_directory_join_leave(alice, bob):
    await alice.room("random")
    await alice.room("hidden", "private")
    directory = (await (await bob.get("/rooms/directory")).get_json())["rooms"]
    assert [r["slug"] for r in directory] == ["random"]
    assert set(directory[0]) == ROOM_KEYS
    # alice is in both, so her directory is empty
    assert (await (await alice.get("/rooms/directory")).get_json())["rooms"] == []

    response = await bob.post("/rooms/random/join")
    assert response.status_code == 200
    assert (await response.get_json())["slug"] == "random"
    assert "random" in await bob.slugs()
    assert (await (await bob.get("/rooms/directory")).get_json())["rooms"] == []
    await bob.say("random", "hi")  # members may post

    response = await bob.post("/rooms/random/leave")
    assert response.status_code == 200
    assert "random" not in await bob.slugs()
    await error_of(await bob.post("/rooms/random/messages", {"body": "x"}), 403)


async def test_join_private_room_is_404(alice, bob):
    await alice.room("hidden", "private")
    await error_of(await bob.post("/rooms/hidden/join"), 404)
    assert "hidden" not in await bob.slugs()


async def test_join_unknown_room_is_404(alice):
    await error_of(await alice.post("/rooms/nope/join"), 404)


async def test_join_twice_is_harmless(alice, bob):
    await alice.room("random")
    assert (await bob.post("/rooms/random/join")).status_code == 200
    assert (await bob.post("/rooms/random/join")).status_code == 200
    assert (await bob.slugs()).count("random") == 1


async def test_leave_room_not_a_member_is_403(alice, bob):
    await alice.room("random")
    await error_of(await bob.post("/rooms/random/leave"), 403)


async def test_add_member_to_private_room(alice, bob):
    await alice.room("hidden", "private")
    response = await alice.post("/rooms/hidden/members", {"username": "bob"})
    assert response.status_code == 201
    assert "hidden" in await bob.slugs()
    assert (await bob.get("/rooms/hidden/messages")).status_code == 200
    await bob.say("hidden", "thanks")


async def test_add_unknown_member_is_404_naming_username(alice):
    await alice.room("hidden", "private")
    await error_of(await alice.post("/rooms/hidden/members", {"username": "ghost"}), 404,
                   "username")


async def test_add_member_by_outsider_is_refused(alice, bob, auth):
    await alice.room("hidden", "private")
    carol = await api_user(auth, "carol")
    await error_of(await bob.post("/rooms/hidden/members", {"username": "carol"}), 404)
    assert "hidden" not in await carol.slugs()


async def test_add_member_bad_username_type_is_422(alice):
    await alice.room("hidden", "private")
    await error_of(await alice.post("/rooms/hidden/members", {"username": 5}), 422, "username")


# posting messages


async def test_post_message_201_shape(alice):
    response = await alice.post("/rooms/general/messages", {"body": "hello", "nonce": "n-1"})
    assert response.status_code == 201
    message = await response.get_json()
    assert set(message) == MESSAGE_KEYS
    assert message["room"] == "general" and message["author"] == "alice"
    assert message["body"] == "hello" and message["nonce"] == "n-1"
    assert message["seq"] == 1 and message["edited_at"] is None
    assert isinstance(message["id"], int)
    assert ISO_UTC.match(message["created_at"]), message["created_at"]
    moment = datetime.fromisoformat(message["created_at"].replace("Z", "+00:00"))
    assert moment.utcoffset().total_seconds() == 0


async def test_post_message_without_nonce_has_null_nonce(alice):
    message = await alice.say("general", "hi")
    assert message["nonce"] is None


async def test_post_message_body_is_trimmed(alice):
    message = await alice.say("general", "  \n hello world \t\n ")
    assert message["body"] == "hello world"
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert page["messages"][0]["body"] == "hello world"


async def test_post_message_stored_as_plain_text(alice):
    message = await alice.say("general", "<b>bold</b> & <script>")
    assert message["body"] == "<b>bold</b> & <script>"


@pytest.mark.parametrize("body", ["", "   ", "\n\t", None, 5, ["x"], {"a": 1}])
async def test_post_message_bad_body_is_422_naming_body(alice, body):
    response = await alice.post("/rooms/general/messages", {"body": body})
    assert (await error_of(response, 422, "body"))["code"] == "invalid"
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert page["messages"] == []


@pytest.mark.parametrize("body", ["x" * 4001, " " + "é" * 4001 + " "])
async def test_post_message_over_4000_chars_is_422_too_large(alice, body):
    response = await alice.post("/rooms/general/messages", {"body": body})
    assert (await error_of(response, 422, "body"))["code"] == "too_large"
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert page["messages"] == []


async def test_post_message_missing_body_is_422(alice):
    await error_of(await alice.post("/rooms/general/messages", {"nonce": "x"}), 422, "body")


async def test_post_message_4000_chars_accepted(alice):
    message = await alice.say("general", "é" * 4000)
    assert len(message["body"]) == 4000
    message = await alice.say("general", " " + "x" * 4000 + " ")  # trimmed to 4000
    assert len(message["body"]) == 4000


@pytest.mark.parametrize("nonce", ["", "n" * 65, 5, ["n"]])
async def test_post_message_bad_nonce_is_422(alice, nonce):
    response = await alice.post("/rooms/general/messages", {"body": "x", "nonce": nonce})
    await error_of(response, 422, "nonce")


async def test_nonce_is_idempotent(alice):
    first = await alice.say("general", "once", nonce="abc")
    again = await alice.say("general", "once", nonce="abc")
    assert again["id"] == first["id"] and again["seq"] == first["seq"] == 1
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert len(page["messages"]) == 1
    rooms = (await (await alice.get("/rooms")).get_json())["rooms"]
    assert rooms[0]["last_seq"] == 1


async def test_same_nonce_from_two_users_are_two_messages(alice, bob):
    a = await alice.say("general", "a", nonce="same")
    b = await bob.say("general", "b", nonce="same")
    assert a["id"] != b["id"] and b["seq"] == 2


async def test_concurrent_posts_with_one_nonce_store_one_message(alice):
    replies = await asyncio.gather(
        *(alice.post("/rooms/general/messages", {"body": "x", "nonce": "race"}) for _ in range(5))
    )
    ids = {(await r.get_json())["id"] for r in replies}
    assert [r.status_code for r in replies] == [201] * 5
    assert len(ids) == 1


async def test_seq_is_contiguous_per_room(alice):
    await alice.room("other")
    seqs = {"general": [], "other": []}
    for i in range(6):
        room = "general" if i % 2 else "other"
        seqs[room].append((await alice.say(room, f"m{i}"))["seq"])
    assert seqs == {"general": [1, 2, 3], "other": [1, 2, 3]}


async def test_post_not_json_is_400(alice):
    response = await alice.post(
        "/rooms/general/messages", data="hello", headers={"Content-Type": "text/plain"}
    )
    await error_of(response, 400)
    response = await alice.post(
        "/rooms/general/messages", data="{not json", headers={"Content-Type": "application/json"}
    )
    await error_of(response, 400)


@pytest.mark.parametrize("payload", [[{"body": "x"}], "x", 1, None])
async def test_post_json_not_an_object_is_400(alice, payload):
    response = await alice.post(
        "/rooms/general/messages",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    await error_of(response, 400)


async def test_post_without_csrf_header_is_400(alice):
    response = await alice.client.post("/api/v1/rooms/general/messages", json={"body": "x"})
    error = await error_of(response, 400)
    assert error["code"] == "csrf"
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert page["messages"] == []


async def test_post_with_wrong_csrf_header_is_400(alice, bob):
    for token in ("wrong", bob.csrf, ""):
        response = await alice.client.post(
            "/api/v1/rooms/general/messages", json={"body": "x"}, headers={"X-CSRF-Token": token}
        )
        await error_of(response, 400)


async def test_csrf_in_body_or_query_does_not_count(alice):
    response = await alice.client.post(
        f"/api/v1/rooms/general/messages?csrf_token={alice.csrf}",
        json={"body": "x", "csrf_token": alice.csrf},
    )
    await error_of(response, 400)


async def test_get_needs_no_csrf(alice):
    assert (await alice.client.get("/api/v1/rooms/general/messages")).status_code == 200


async def test_post_to_unknown_room_is_404(alice):
    await error_of(await alice.post("/rooms/nope/messages", {"body": "x"}), 404)


async def test_private_room_invisible_to_non_members(alice, bob):
    await alice.room("hidden", "private")
    await alice.say("hidden", "secret")
    for response in (
        await bob.get("/rooms/hidden/messages"),
        await bob.post("/rooms/hidden/messages", {"body": "let me in"}),
    ):
        error = await error_of(response, 404)
        assert error["code"] == "not_found"
    assert "hidden" not in await bob.slugs()
    # Exactly what an unknown room answers: nothing tells the room exists.
    unknown = await (await bob.get("/rooms/hidden-not/messages")).get_json()
    hidden = await (await bob.get("/rooms/hidden/messages")).get_json()
    assert unknown["error"]["message"].replace("hidden-not", "hidden") == hidden["error"]["message"]


async def test_public_non_member_may_read_but_not_post(alice, bob):
    await alice.room("random")
    await alice.say("random", "hello")
    page = await (await bob.get("/rooms/random/messages")).get_json()
    assert [m["body"] for m in page["messages"]] == ["hello"]
    error = await error_of(await bob.post("/rooms/random/messages", {"body": "hi"}), 403)
    assert error["code"] == "forbidden"


# history


async def test_empty_room_history(alice):
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert page == {"messages": [], "has_more": False}


async def test_history_default_page_is_newest_50_ascending(app, alice):
    ids = await post_many(app, alice, "general", 120)
    page = await (await alice.get("/rooms/general/messages")).get_json()
    got = [m["id"] for m in page["messages"]]
    assert got == ids[-50:]
    assert page["has_more"] is True
    assert [m["seq"] for m in page["messages"]] == list(range(71, 121))


async def test_history_before_walks_back_without_gaps_or_duplicates(app, alice):
    ids = await post_many(app, alice, "general", 120)
    collected: list[int] = []
    path = "/rooms/general/messages?limit=50"
    pages = 0
    while True:
        page = await (await alice.get(path)).get_json()
        got = [m["id"] for m in page["messages"]]
        assert got == sorted(got)
        collected = got + collected
        pages += 1
        if not page["has_more"]:
            break
        path = f"/rooms/general/messages?limit=50&before={got[0]}"
    assert pages == 3
    assert collected == ids
    assert len(page["messages"]) == 20


async def test_history_after_walks_forward(app, alice):
    ids = await post_many(app, alice, "general", 120)
    collected: list[int] = []
    after = 0
    while True:
        page = await (await alice.get(f"/rooms/general/messages?after={after}&limit=50")).get_json()
        got = [m["id"] for m in page["messages"]]
        assert got == sorted(got)
        collected += got
        if not page["has_more"]:
            break
        after = got[-1]
    assert collected == ids


async def test_history_after_returns_oldest_first_page(app, alice):
    ids = await post_many(app, alice, "general", 120)
    page = await (await alice.get(f"/rooms/general/messages?after={ids[9]}&limit=5")).get_json()
    assert [m["id"] for m in page["messages"]] == ids[10:15]
    assert page["has_more"] is True
    page = await (await alice.get(f"/rooms/general/messages?after={ids[-3]}")).get_json()
    assert [m["id"] for m in page["messages"]] == ids[-2:]
    assert page["has_more"] is False


async def test_history_before_and_after_together(app, alice):
    ids = await post_many(app, alice, "general", 120)
    path = f"/rooms/general/messages?after={ids[9]}&before={ids[20]}"
    page = await (await alice.get(path)).get_json()
    assert [m["id"] for m in page["messages"]] == ids[10:20]
    assert page["has_more"] is False


async def test_history_limit(app, alice):
    ids = await post_many(app, alice, "general", 120)
    page = await (await alice.get("/rooms/general/messages?limit=200")).get_json()
    assert [m["id"] for m in page["messages"]] == ids and page["has_more"] is False
    page = await (await alice.get("/rooms/general/messages?limit=1")).get_json()
    assert [m["id"] for m in page["messages"]] == ids[-1:] and page["has_more"] is True
    page = await (await alice.get("/rooms/general/messages?limit=120")).get_json()
    assert len(page["messages"]) == 120 and page["has_more"] is False
    page = await (await alice.get("/rooms/general/messages?limit=119")).get_json()
    assert page["messages"][0]["id"] == ids[1] and page["has_more"] is True


async def test_history_only_this_room(app, alice):
    await alice.room("other")
    general = await post_many(app, alice, "general", 5)
    await post_many(app, alice, "other", 5)
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert [m["id"] for m in page["messages"]] == general
    assert {m["room"] for m in page["messages"]} == {"general"}


@pytest.mark.parametrize(
    "query,field",
    [
        ("limit=201", "limit"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("before=-1", "before"),
        ("before=x", "before"),
        ("after=-1", "after"),
        ("after=", "after"),
    ],
)
async def test_history_bad_params_are_422_naming_field(alice, query, field):
    response = await alice.get(f"/rooms/general/messages?{query}")
    await error_of(response, 422, field)


# API rate limit


@pytest.fixture
async def limited_app(tmp_path):
    app = create_app(make_config(tmp_path, CHATAPP_API_RATE="3/60"))
    cheap_passwords(app)
    async with app.test_app():
        yield app


async def test_api_rate_limit_429_with_retry_after(limited_app):
    auth = AuthActions(limited_app)
    alice = await api_user(auth, "alice")
    for i in range(3):
        await alice.say("general", f"m{i}")
    response = await alice.post("/rooms/general/messages", {"body": "one too many"})
    error = await error_of(response, 429)
    assert error["code"] == "rate_limited"
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 60
    page = await (await alice.get("/rooms/general/messages")).get_json()
    assert len(page["messages"]) == 3
    # Reading is not limited, and another user has a budget of their own.
    assert (await alice.get("/rooms/general/messages")).status_code == 200
    bob = await api_user(auth, "bob")
    await bob.say("general", "mine")


async def test_api_rate_limit_refused_posts_do_not_count_invalid(limited_app):
    """Invalid or unauthorised posts are refused before they spend the budget."""
    auth = AuthActions(limited_app)
    alice = await api_user(auth, "alice")
    for _ in range(5):
        await error_of(await alice.post("/rooms/nope/messages", {"body": "x"}), 404)
    for i in range(3):
        await alice.say("general", f"m{i}")
