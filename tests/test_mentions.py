"""Mentions (SPEC §9): the server fills ``mentions``; summaries count unread ones; read
clears them and a lower seq (mark unread) brings them back on every connection."""

from __future__ import annotations

import pytest

from chatapp.mentions import candidates, resolve

from .hashing import cheap_passwords
from .wsutil import connect


@pytest.fixture(autouse=True)
def _fast_hashing(app) -> None:
    cheap_passwords(app)


async def say(client, csrf, body, room="general"):
    response = await client.post(f"/api/v1/rooms/{room}/messages", json={"body": body},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def summary(client, room="general"):
    rooms = (await (await client.get("/api/v1/rooms")).get_json())["rooms"]
    return next(r for r in rooms if r["slug"] == room)


@pytest.mark.parametrize("body, names", [
    ("hi @bob", ["bob"]),
    ("@Bob, @BOB and @bob again", ["bob"]),
    ("thanks @bob.", ["bob.", "bob"]),
    ("mail bob@example.com or x@bob", []),
    ("@@bob", []),
    ("@room heads up", ["room"]),
    ("@ab is too short", []),
    ("no at sign", []),
])
def test_candidates(body, names):
    assert candidates(body) == names


def test_resolve_keeps_members_in_order_with_their_spelling():
    assert resolve(["carol", "room", "bob"], ["Bob", "carol"]) == ("carol", "room", "Bob")
    assert resolve(["zed"], ["bob"]) == ()


async def test_mentions_are_members_of_the_room_only(auth):
    alice, csrf = await auth.user("alice")
    await auth.user("bob")
    await auth.user("carol.x")
    message = await say(alice, csrf, "@bob and @carol.x. and @nobody, cc @room; me@bob")
    assert message["mentions"] == ["bob", "carol.x", "room"]
    # In a private room only its members can be mentioned.
    response = await alice.post("/api/v1/rooms", json={"name": "Ops", "kind": "private"},
                                headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201
    assert (await say(alice, csrf, "@bob @alice", "ops"))["mentions"] == ["alice"]
    # History and sync carry them too.
    page = (await (await alice.get("/api/v1/rooms/general/messages")).get_json())["messages"]
    assert page[-1]["mentions"] == ["bob", "carol.x", "room"]


async def test_unread_mentions_counted_and_cleared_by_read(auth):
    alice, a_csrf = await auth.user("alice")
    bob, b_csrf = await auth.user("bob")
    carol, _ = await auth.user("carol")
    await say(alice, a_csrf, "plain")
    first = await say(alice, a_csrf, "@bob look")
    await say(alice, a_csrf, "@room everyone")
    await say(bob, b_csrf, "@bob talking to myself, @room")  # one's own: never counted
    assert (await summary(bob))["unread"] == 3 and (await summary(bob))["mentions"] == 2
    assert (await summary(carol))["mentions"] == 2  # the two @room
    assert (await summary(alice))["mentions"] == 1  # bob's @room
    async with connect(bob) as b1, connect(bob) as b2:
        (general,) = [r for r in b1.hello["rooms"] if r["slug"] == "general"]
        assert general["mentions"] == 2
        reply = await b1.request("read", "read", room="general", seq=first["seq"])
        assert (reply["seq"], reply["unread"], reply["mentions"]) == (first["seq"], 1, 1)
        assert await b2.expect("read") == {"type": "read", "room": "general",
                                           "seq": first["seq"], "unread": 1, "mentions": 1}
        last = (await summary(bob))["last_seq"]
        await b1.send("read", room="general", seq=last)
        assert (await b2.expect("read", seq=last))["mentions"] == 0
        assert (await summary(bob))["mentions"] == 0 and (await summary(bob))["unread"] == 0
        # Mark unread: a lower seq moves the marker back, on every connection.
        await b2.send("read", room="general", seq=first["seq"] - 1)
        moved = await b1.expect("read", seq=first["seq"] - 1)
        assert (moved["unread"], moved["mentions"]) == (2, 2)
    async with connect(bob) as b3:  # and it survives a reconnect
        (general,) = [r for r in b3.hello["rooms"] if r["slug"] == "general"]
        assert (general["unread"], general["mentions"]) == (2, 2)


async def test_edits_and_deletes_change_the_mentions(auth):
    alice, a_csrf = await auth.user("alice")
    bob, _ = await auth.user("bob")
    message = await say(alice, a_csrf, "hello")
    assert message["mentions"] == [] and (await summary(bob))["mentions"] == 0
    response = await alice.patch(f"/api/v1/messages/{message['id']}", json={"body": "hi @bob"},
                                 headers={"X-CSRF-Token": a_csrf})
    assert (await response.get_json())["mentions"] == ["bob"]
    assert (await summary(bob))["mentions"] == 1
    response = await alice.patch(f"/api/v1/messages/{message['id']}", json={"body": "hi"},
                                 headers={"X-CSRF-Token": a_csrf})
    assert (await response.get_json())["mentions"] == []
    assert (await summary(bob))["mentions"] == 0
    other = await say(alice, a_csrf, "@bob ping")
    assert (await summary(bob))["mentions"] == 1
    response = await alice.delete(f"/api/v1/messages/{other['id']}",
                                  headers={"X-CSRF-Token": a_csrf})
    assert response.status_code == 204
    assert (await summary(bob))["mentions"] == 0


async def test_mentions_over_the_websocket(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await a.send("send", room="general", body="@bob ship it", nonce="n1")
        ack = await a.expect("ack")
        assert ack["message"]["mentions"] == ["bob"]
        assert (await b.expect("message"))["message"]["mentions"] == ["bob"]
        done = await a.request("edit", "done", room="general", id=ack["message"]["id"],
                               body="@room ship it")
        assert done["event"]["message"]["mentions"] == ["room"]
