"""Direct messages (SPEC §9): POST /api/v1/dms, their rules, and two people live."""

from __future__ import annotations

import pytest

from chatapp.dms import MAX_OTHERS
from chatapp.limits import DM_CREATE_RATE

from .hashing import cheap_passwords
from .wsutil import connect


@pytest.fixture(autouse=True)
def _fast_hashing(app) -> None:
    cheap_passwords(app)


async def post(client, csrf, path, body):
    return await client.post(path, json=body, headers={"X-CSRF-Token": csrf})


async def open_dm(client, csrf, users, status=None):
    response = await post(client, csrf, "/api/v1/dms", {"users": users})
    body = await response.get_json()
    if status is not None:
        assert response.status_code == status, body
    return response.status_code, body


async def rooms(client):
    return {r["slug"]: r for r in (await (await client.get("/api/v1/rooms")).get_json())["rooms"]}


async def test_a_dm_is_made_once_for_a_set_of_people_and_named_after_the_others(auth):
    alice, a_csrf = await auth.user("alice")
    bob, b_csrf = await auth.user("bob")
    await auth.user("carol")
    _, dm = await open_dm(alice, a_csrf, ["bob"], 201)
    assert dm["kind"] == "dm" and dm["name"] == "bob"
    assert dm["members"] == ["alice", "bob"]
    assert dm["slug"].startswith("dm-") and "bob" not in dm["slug"]  # opaque
    assert dm["unread"] == 0 and dm["mentions"] == 0 and dm["notify"] == "all"
    # The same set again, from either side and in any case: the same room, 200.
    assert (await open_dm(alice, a_csrf, ["BOB"], 200))[1]["slug"] == dm["slug"]
    again = (await open_dm(bob, b_csrf, ["alice"], 200))[1]
    assert again["slug"] == dm["slug"] and again["name"] == "alice"
    # Naming oneself too changes nothing.
    assert (await open_dm(bob, b_csrf, ["alice", "bob"], 200))[1]["slug"] == dm["slug"]
    # Another set of people is another room.
    _, group = await open_dm(alice, a_csrf, ["carol", "bob"], 201)
    assert group["slug"] != dm["slug"] and group["name"] == "bob, carol"
    assert group["members"] == ["alice", "bob", "carol"]
    # Both show in each member's summaries with members; not in the directory.
    mine = await rooms(bob)
    assert mine[dm["slug"]]["name"] == "alice" and mine[dm["slug"]]["kind"] == "dm"
    assert mine[group["slug"]]["members"] == ["alice", "bob", "carol"]
    assert mine[group["slug"]]["name"] == "alice, carol"
    assert "members" not in mine["general"]
    directory = (await (await bob.get("/api/v1/rooms/directory")).get_json())["rooms"]
    assert all(r["kind"] == "public" for r in directory)


@pytest.mark.parametrize("users, status, message", [
    (["alice"], 422, "at least one other"),
    ([], 422, "at least one other"),
    ("bob", 422, "list of usernames"),
    ([7], 422, "list of usernames"),
    (None, 422, "list of usernames"),
    (["nobody"], 404, "no user"),
    (["bob", "nobody"], 404, "no user"),
    ([f"u{i:03d}" for i in range(MAX_OTHERS + 1)], 422, f"at most {MAX_OTHERS}"),
])
async def test_a_dm_with_nobody_else_unknown_people_or_too_many_is_refused(
    auth, users, status, message
):
    alice, csrf = await auth.user("alice")
    await auth.user("bob")
    before = await rooms(alice)
    code, body = await open_dm(alice, csrf, users)
    assert code == status, body
    assert body["error"]["field"] == "users" and message in body["error"]["message"]
    assert await rooms(alice) == before


async def test_eight_others_is_the_most(auth):
    alice, csrf = await auth.user("alice")
    names = [f"user{i}" for i in range(MAX_OTHERS)]
    for name in names:
        await auth.user(name)
    _, dm = await open_dm(alice, csrf, names, 201)
    assert len(dm["members"]) == MAX_OTHERS + 1


async def test_nobody_joins_leaves_or_is_added_to_a_dm(auth):
    alice, a_csrf = await auth.user("alice")
    bob, _ = await auth.user("bob")
    eve, e_csrf = await auth.user("eve")
    _, dm = await open_dm(alice, a_csrf, ["bob"], 201)
    slug = dm["slug"]
    left = await post(alice, a_csrf, f"/api/v1/rooms/{slug}/leave", {})
    assert left.status_code == 403
    assert "cannot be left" in (await left.get_json())["error"]["message"]
    added = await post(alice, a_csrf, f"/api/v1/rooms/{slug}/members", {"username": "eve"})
    assert added.status_code == 403
    assert (await post(alice, a_csrf, f"/api/v1/rooms/{slug}/join", {})).status_code == 403
    # An outsider does not even see it.
    assert (await post(eve, e_csrf, f"/api/v1/rooms/{slug}/join", {})).status_code == 404
    assert (await eve.get(f"/api/v1/rooms/{slug}/messages")).status_code == 404
    posted = await post(eve, e_csrf, f"/api/v1/rooms/{slug}/messages", {"body": "hi"})
    assert posted.status_code == 404
    assert set(await rooms(alice)) == {"general", slug}
    assert [r["members"] for r in (await rooms(bob)).values() if r["kind"] == "dm"] == [
        ["alice", "bob"]]


async def test_dm_creation_is_rate_limited_per_user(auth, app):
    alice, csrf = await auth.user("alice")
    await auth.user("bob")
    limits = app.extensions["chatapp"].limits
    me = await (await alice.get("/api/v1/me")).get_json()
    for _ in range(DM_CREATE_RATE.count):  # the budget spent (30 DMs would need 30 people)
        await limits.check(f"dms:{me['id']}", DM_CREATE_RATE)
    response = await post(alice, csrf, "/api/v1/dms", {"users": ["bob"]})
    assert response.status_code == 429 and response.headers.get("Retry-After")
    assert (await response.get_json())["error"]["code"] == "rate_limited"


async def test_users_lists_every_account(auth):
    alice, _ = await auth.user("alice")
    await auth.user("bob")
    users = (await (await alice.get("/api/v1/users")).get_json())["users"]
    assert users == [
        {"username": "alice", "display_name": "alice", "is_admin": True, "bot": False,
         "active": True},
        {"username": "bob", "display_name": "bob", "is_admin": False, "bot": False,
         "active": True},
    ]
    assert (await auth.new_client().get("/api/v1/users")).status_code == 401


async def test_notify_setting_is_kept_per_member_and_dms_always_notify(auth):
    alice, csrf = await auth.user("alice")
    bob, b_csrf = await auth.user("bob")
    response = await alice.put("/api/v1/rooms/general/notify", json={"notify": "mentions"},
                               headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert await response.get_json() == {"room": "general", "notify": "mentions"}
    assert (await rooms(alice))["general"]["notify"] == "mentions"
    assert (await rooms(bob))["general"]["notify"] == "all"
    for bad in ["loud", None, 1, ""]:
        response = await alice.put("/api/v1/rooms/general/notify", json={"notify": bad},
                                   headers={"X-CSRF-Token": csrf})
        assert response.status_code == 422
        assert (await response.get_json())["error"]["field"] == "notify"
    _, dm = await open_dm(alice, csrf, ["bob"], 201)
    response = await alice.put(f"/api/v1/rooms/{dm['slug']}/notify", json={"notify": "none"},
                               headers={"X-CSRF-Token": csrf})
    assert response.status_code == 422
    assert "always notify" in (await response.get_json())["error"]["message"]
    assert (await rooms(alice))[dm["slug"]]["notify"] == "all"
    # Not a member of a private room: it does not exist.
    await post(bob, b_csrf, "/api/v1/rooms", {"name": "Secret", "kind": "private"})
    response = await alice.put("/api/v1/rooms/secret/notify", json={"notify": "all"},
                               headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    # Without the CSRF header: refused.
    response = await alice.put("/api/v1/rooms/general/notify", json={"notify": "all"})
    assert response.status_code == 400


async def test_notify_reaches_the_users_connections(auth):
    alice, csrf = await auth.user("alice")
    async with connect(alice) as ws:
        await alice.put("/api/v1/rooms/general/notify", json={"notify": "none"},
                        headers={"X-CSRF-Token": csrf})
        assert await ws.expect("notify") == {"type": "notify", "room": "general",
                                             "notify": "none"}
    async with connect(alice) as ws:
        (general,) = [r for r in ws.hello["rooms"] if r["slug"] == "general"]
        assert general["notify"] == "none"


async def test_two_people_in_a_dm_live(auth):
    alice, a_csrf = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        _, dm = await open_dm(alice, a_csrf, ["bob"], 201)
        slug = dm["slug"]
        joined = await b.expect("room_joined")
        assert joined["room"]["slug"] == slug and joined["room"]["name"] == "alice"
        assert joined["room"]["members"] == ["alice", "bob"] and joined["room"]["kind"] == "dm"
        assert (await a.expect("room_joined"))["room"]["name"] == "bob"
        # Messages both ways, on the connections opened before the DM existed.
        await a.send("send", room=slug, body="hi bob", nonce="a1")
        assert (await b.expect("message", room=slug))["message"]["body"] == "hi bob"
        await b.send("send", room=slug, body="hi alice", nonce="b1")
        got = await a.expect("message", room=slug, seq=2)
        assert got["message"]["author"] == "bob"
        # Typing, edits, reactions and sync work as in any room.
        await b.send("typing", room=slug)
        assert await a.expect("typing", room=slug) == {"type": "typing", "room": slug,
                                                         "user": "bob"}
        edited = await a.request("edit", "done", room=slug, id=got["message"]["id"] - 1,
                                 body="hi Bob")
        assert edited["event"]["type"] == "message_edited"
        reacted = await b.request("react", "done", room=slug, id=got["message"]["id"] - 1,
                                  emoji="👍", on=True)
        assert reacted["event"]["reactions"][0]["users"] == ["bob"]
        synced = await b.request("sync", "synced", room=slug, after=0)
        assert [e["type"] for e in synced["events"]] == ["message", "message",
                                                          "message_edited", "reaction"]
    # After a reconnect the DM is in hello with its unread count.
    async with connect(bob) as b:
        (summary,) = [r for r in b.hello["rooms"] if r["slug"] == slug]
        assert summary["unread"] == 1 and summary["members"] == ["alice", "bob"]


async def test_an_outsider_cannot_use_a_dm_over_the_websocket(auth):
    alice, a_csrf = await auth.user("alice")
    await auth.user("bob")
    eve, _ = await auth.user("eve")
    _, dm = await open_dm(alice, a_csrf, ["bob"], 201)
    async with connect(eve) as e:
        for frame in [{"type": "send", "body": "x", "nonce": "n"}, {"type": "typing"},
                      {"type": "sync", "after": 0}, {"type": "read", "seq": 0}]:
            kind = frame.pop("type")
            await e.send(kind, room=dm["slug"], **frame)
            assert (await e.expect("error"))["code"] == "not_found"


async def test_room_members_for_mentions(auth):
    alice, a_csrf = await auth.user("alice")
    bob, _ = await auth.user("bob")
    eve, _ = await auth.user("eve")
    assert (await (await alice.get("/api/v1/rooms/general/members")).get_json()) == {
        "members": ["alice", "bob", "eve"]}
    _, dm = await open_dm(alice, a_csrf, ["bob"], 201)
    got = await (await bob.get(f"/api/v1/rooms/{dm['slug']}/members")).get_json()
    assert got == {"members": ["alice", "bob"]}
    assert (await eve.get(f"/api/v1/rooms/{dm['slug']}/members")).status_code == 404


async def test_a_dm_with_a_deactivated_person_cannot_start_but_an_old_one_stays_readable(
    auth, app
):
    alice, a_csrf = await auth.user("alice")
    await auth.user("bob")
    await auth.user("carol")
    _, dm = await open_dm(alice, a_csrf, ["bob"], 201)
    await post(alice, a_csrf, f"/api/v1/rooms/{dm['slug']}/messages", {"body": "before"})
    storage = app.extensions["chatapp"].storage
    carol = await storage.user_by_name("carol")
    bob = await storage.user_by_name("bob")
    assert await storage.set_active(carol.id, False) is not None
    code, body = await open_dm(alice, a_csrf, ["carol"])
    assert code == 422 and body["error"]["field"] == "users"
    assert "deactivated" in body["error"]["message"]
    assert await storage.set_active(bob.id, False) is not None
    page = await (await alice.get(f"/api/v1/rooms/{dm['slug']}/messages")).get_json()
    assert [m["body"] for m in page["messages"]] == ["before"]
    assert (await open_dm(alice, a_csrf, ["bob"]))[0] == 422
