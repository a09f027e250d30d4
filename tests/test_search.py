"""Search and permalinks (SPEC §12, §5 ``around``): the query language, highlights, the
API with its errors, centred history pages and the ``/messages/<id>`` page."""

from __future__ import annotations

from typing import Any

import pytest

from chatapp.search import fold, highlights, parse

from .conftest import AuthActions
from .hashing import cheap_passwords
from .test_api_messages import Caller, caller


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


def marked(body: str, q: str) -> list[str]:
    return [body[start:end] for start, end in highlights(body, parse(q))]


# the query language (no database)
def test_words_phrases_and_operators() -> None:
    query = parse('deplo "the build" From:@alice in:#ops -x* NEAR(a) "still typ')
    assert [(p.words, p.prefix) for p in query.phrases] == [
        (("deplo",), True), (("the", "build"), False), (("x",), True),
        (("NEAR", "a"), True), (("still", "typ"), True)]
    assert (query.authors, query.rooms) == (("alice",), ("ops",))
    assert [p.words for p in parse("deploy.sh e-mail").phrases] == [("deploy", "sh"),
                                                                    ("e", "mail")]


@pytest.mark.parametrize("q", ["", "   ", "from:alice", "in:ops from:bob", '""', "* - :",
                               '"', "a\x00b", 17, None])
def test_queries_that_ask_nothing_are_refused(q: Any) -> None:
    with pytest.raises(Exception, match="q ") as caught:
        parse(q)
    assert getattr(caught.value, "code", None) == "invalid"


def test_too_long_queries_are_too_large() -> None:
    for q in ["x" * 257, " ".join(["w"] * 17), "w " + " ".join(f"from:u{i}" for i in range(9))]:
        with pytest.raises(Exception) as caught:
            parse(q)
        assert getattr(caught.value, "code", None) == "too_large"
    parse("x" * 256)


def test_highlights_are_whole_words_in_code_points() -> None:
    assert fold("Crème BRÛLÉE") == "creme brulee"
    body = "We DEPLOYED the café; deploy again 🚀 déploiement"
    assert marked(body, "deploy") == ["DEPLOYED", "deploy"]
    assert marked(body, "DEPLO cafe") == ["DEPLOYED", "café", "deploy", "déploiement"]
    assert marked(body, "deploi") == ["déploiement"]
    emoji = "🚀🚀 café"
    assert highlights(emoji, parse("cafe")) == [[3, 7]]  # code points, not UTF-16 units
    assert marked("the build, the builder", '"the build"') == ["the build"]
    assert marked("the build, the builder", '"the build') == ["the build", "the builder"]
    assert marked("a b a b", '"a b" "b a"') == ["a b a b"]  # overlapping ranges merge
    assert marked("nothing here", "zzz") == []


# the API
async def search(user: Caller, q: str, **params: Any) -> tuple[int, Any]:
    response = await user.client.get("/api/v1/search", query_string={"q": q, **params})
    return response.status_code, await response.get_json()


async def test_search_api_results_and_highlights(auth: AuthActions) -> None:
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    await alice.say("We deployed the Café build")
    hit = await bob.say("Déploiement terminé 🚀")
    await alice.say("unrelated")
    status, data = await search(alice, "DEPLOY")
    assert status == 200, data
    assert [r["message"]["body"] for r in data["results"]] == [
        "We deployed the Café build"]
    status, data = await search(alice, "deploi")
    (result,) = data["results"]
    assert result["message"]["id"] == hit["id"] and result["message"]["author"] == "bob"
    assert result["highlights"] == [[0, 11]] and data["has_more"] is False
    status, data = await search(alice, "cafe from:alice in:general")
    assert [r["highlights"] for r in data["results"]] == [[[16, 20]]]
    status, data = await search(alice, "cafe from:bob")
    assert data == {"results": [], "has_more": False}


async def test_search_api_paging_and_room(auth: AuthActions) -> None:
    alice = await caller(auth, "alice")
    ids = [(await alice.say(f"paging {i}"))["id"] for i in range(5)]
    status, created = await alice.call("post", "/rooms", {"name": "Ops", "kind": "private"})
    assert status == 201
    other = await alice.say("paging elsewhere", room=created["slug"])
    status, data = await search(alice, "paging", limit=2)
    assert [r["message"]["id"] for r in data["results"]] == [other["id"], ids[4]]
    assert data["has_more"] is True
    status, data = await search(alice, "paging", limit=2, before=ids[4])
    assert [r["message"]["id"] for r in data["results"]] == [ids[3], ids[2]]
    status, data = await search(alice, "paging", room=created["slug"])
    assert [r["message"]["id"] for r in data["results"]] == [other["id"]]
    bob = await caller(auth, "bob")
    status, data = await search(bob, "paging")
    assert other["id"] not in [r["message"]["id"] for r in data["results"]]
    status, data = await search(bob, "paging", room=created["slug"])
    assert status == 404 and data["error"]["code"] == "not_found"


@pytest.mark.parametrize(("params", "status", "field"), [
    ({}, 422, "q"), ({"q": ""}, 422, "q"), ({"q": "from:alice"}, 422, "q"),
    ({"q": "x" * 300}, 422, "q"), ({"q": "ok", "limit": "0"}, 422, "limit"),
    ({"q": "ok", "limit": "101"}, 422, "limit"), ({"q": "ok", "before": "x"}, 422, "before"),
    ({"q": "ok", "before": str(2**70)}, 422, "before"), ({"q": "ok", "room": ""}, 422, "room"),
    ({"q": "ok", "room": "nope"}, 404, None),
])
async def test_bad_searches_get_a_clear_error(
    auth: AuthActions, params: dict[str, str], status: int, field: str | None
) -> None:
    alice = await caller(auth, "alice")
    response = await alice.client.get("/api/v1/search", query_string=params)
    assert response.status_code == status
    error = (await response.get_json())["error"]
    assert error["status"] == status and error.get("field") == field


@pytest.mark.parametrize("q", ['NEAR(a b, 2)', '"a" AND "b"', "a* OR b*", "-a", "a:b",
                               "body:x", '"unbalanced', "^a", "a + b", "{a b}", "'", "\\",
                               "a'; DROP TABLE messages; --", "%", "_", "a\tb", "🚀", "日本"])
async def test_query_syntax_never_reaches_the_engine(auth: AuthActions, q: str) -> None:
    alice = await caller(auth, "alice")
    await alice.say("a b c")
    response = await alice.client.get("/api/v1/search", query_string={"q": q})
    assert response.status_code in (200, 422), await response.get_data()


async def test_search_needs_a_login(client: Any) -> None:
    response = await client.get("/api/v1/search", query_string={"q": "x"})
    assert response.status_code == 401


# around: a page centred on a message
async def test_around_pages_both_ways(auth: AuthActions) -> None:
    alice = await caller(auth, "alice")
    ids = [(await alice.say(f"m{i}"))["id"] for i in range(9)]

    async def around(centre: int, limit: int) -> tuple[list[int], bool, bool]:
        status, page = await alice.call(
            "get", f"/rooms/general/messages?around={centre}&limit={limit}")
        assert status == 200, page
        return [m["id"] for m in page["messages"]], page["has_more"], page["has_more_after"]

    assert await around(ids[4], 5) == (ids[2:7], True, True)
    assert await around(ids[4], 4) == (ids[3:7], True, True)
    assert await around(ids[1], 5) == (ids[0:5], False, True)
    assert await around(ids[8], 5) == (ids[6:9], True, False)
    assert await around(ids[4], 1) == ([ids[4]], True, True)
    assert await around(ids[8], 1) == ([ids[8]], True, False)
    assert await around(ids[4], 50) == (ids, False, False)
    # Paging on from either end with the usual before/after.
    status, page = await alice.call("get", f"/rooms/general/messages?after={ids[6]}&limit=5")
    assert [m["id"] for m in page["messages"]] == ids[7:]


async def test_around_errors(auth: AuthActions) -> None:
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    kept = await alice.say("kept")
    gone = await alice.say("gone")
    assert (await alice.call("delete", f"/messages/{gone['id']}"))[0] == 204
    status, created = await alice.call("post", "/rooms", {"name": "Ops", "kind": "private"})
    secret = await alice.say("secret", room=created["slug"])
    for path, status_wanted in [
        (f"general/messages?around={gone['id']}", 404),
        (f"general/messages?around={secret['id']}", 404),
        ("general/messages?around=999999", 404),
        ("general/messages?around=0", 422),
        ("general/messages?around=x", 422),
        (f"general/messages?around={kept['id']}&before=5", 422),
        (f"{created['slug']}/messages?around={secret['id']}", 404),  # bob is no member
    ]:
        status, data = await bob.call("get", f"/rooms/{path}")
        assert status == status_wanted, (path, data)


# the permalink page
async def test_permalink_opens_the_room_at_the_message(auth: AuthActions) -> None:
    alice = await caller(auth, "alice")
    bob = await caller(auth, "bob")
    message = await alice.say("link me")
    status, created = await alice.call("post", "/rooms", {"name": "Ops", "kind": "private"})
    secret = await alice.say("secret", room=created["slug"])
    response = await bob.client.get(f"/messages/{message['id']}")
    assert response.status_code == 200
    html = await response.get_data(as_text=True)
    assert f'data-focus-message="{message["id"]}"' in html
    assert 'data-room="general"' in html
    for missing in (secret["id"], 999999, "abc", 2**70):
        response = await bob.client.get(f"/messages/{missing}")
        assert response.status_code == 404
        assert "secret" not in await response.get_data(as_text=True)
    response = await alice.client.get(f"/messages/{secret['id']}")
    assert response.status_code == 200
    assert (await alice.call("delete", f"/messages/{message['id']}"))[0] == 204
    assert (await bob.client.get(f"/messages/{message['id']}")).status_code == 404


async def test_permalink_asks_a_visitor_to_log_in(client: Any) -> None:
    response = await client.get("/messages/1")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login?next=/messages/1")
