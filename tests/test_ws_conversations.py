"""SPEC §9 over the websocket: edit, delete, react, reply; ``done`` then the room
event; every error leaves nothing stored and the connection usable; sync replays
every kind of room event."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from chatapp.channels import room_channel
from chatapp.events import Event, encode, room_event
from chatapp.sendqueue import SendQueue
from chatapp.storage import RoomEvent

from .hashing import cheap_passwords
from .wsutil import WS, app_with, connect

GENERAL = "general"
ROOM_KINDS = {"message", "message_edited", "message_deleted", "reaction"}


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


async def post(ws: WS, body: str, room: str = GENERAL, **extra: Any) -> dict[str, Any]:
    """Send and wait for the ack; the stored message."""
    ws._refs += 1
    nonce = f"n{ws._refs}-{id(ws)}"
    await ws.send("send", room=room, body=body, nonce=nonce, **extra)
    return (await ws.expect("ack", nonce=nonce))["message"]


async def error_of(ws: WS, type_: str, **fields: Any) -> dict[str, Any]:
    """Send a frame that must fail: its error, with the ref echoed."""
    error = await ws.request(type_, "error", **fields)
    assert error["ref"].startswith("r")
    return error


async def last_seq(ws: WS, room: str = GENERAL) -> int:
    return int((await ws.request("sync", "synced", room=room, after=0))["last_seq"])


async def nothing_stored(ws: WS, before: int) -> None:
    """The seq did not move and the connection still answers."""
    assert await last_seq(ws) == before


def room_events(ws: WS) -> dict[int, dict[str, Any]]:
    return {e["seq"]: e for e in ws.events if e["type"] in ROOM_KINDS and e["room"] == GENERAL}


def apply(state: dict[int, dict[str, Any]], event: dict[str, Any]) -> None:
    """How a client applies room events (in seq order) to the messages it shows."""
    kind = event["type"]
    if kind in ("message", "message_edited"):
        state[event["message"]["id"]] = event["message"]
    elif kind == "message_deleted":
        state.pop(event["id"], None)
    elif kind == "reaction" and event["id"] in state:
        state[event["id"]] = {**state[event["id"]], "reactions": event["reactions"]}


# edit -------------------------------------------------------------------------------------

async def test_edit_answers_done_then_the_room_event_reaches_everyone(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        message = await post(a, "helo")
        done = await a.request("edit", "done", room=GENERAL, id=message["id"], body=" hello ")
        event = done["event"]
        assert event["type"] == "message_edited" and event["room"] == GENERAL
        assert event["seq"] == message["seq"] + 1
        edited = event["message"]
        assert edited["id"] == message["id"] and edited["body"] == "hello"
        assert edited["seq"] == message["seq"] and edited["edited_at"] is not None
        assert edited["created_at"] == message["created_at"]
        # The sender's done comes before the room event, which every connection gets.
        live = await a.expect("message_edited")
        assert live == event
        types = [e["type"] for e in a.events]
        assert types.index("done") < types.index("message_edited")
        assert await b.expect("message_edited") == event


async def test_unchanged_body_is_a_no_op_done_without_event(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        message = await post(a, "same")
        await b.expect("message")
        before = await last_seq(a)
        done = await a.request("edit", "done", room=GENERAL, id=message["id"], body="same  ")
        assert done["event"] is None
        assert await last_seq(a) == before
        assert [e["type"] for e in await b.until_pong()] == []


async def test_editing_someone_elses_message_is_forbidden(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        message = await post(a, "mine")
        before = await last_seq(b)
        error = await error_of(b, "edit", room=GENERAL, id=message["id"], body="yours")
        assert error["code"] == "forbidden"
        await nothing_stored(b, before)


@pytest.mark.parametrize("body", ["", "   ", 42, None, "a\x00b"])
async def test_edit_with_an_invalid_body_is_invalid(auth, body):
    alice, _ = await auth.user("alice")
    async with connect(alice) as a:
        message = await post(a, "fine")
        error = await error_of(a, "edit", room=GENERAL, id=message["id"], body=body)
        assert error["code"] == "invalid"
        await nothing_stored(a, message["seq"])


async def test_edit_over_4000_characters_is_too_large(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as a:
        message = await post(a, "short")
        error = await error_of(a, "edit", room=GENERAL, id=message["id"], body="x" * 4001)
        assert error["code"] == "too_large"
        await nothing_stored(a, message["seq"])
        done = await a.request("edit", "done", room=GENERAL, id=message["id"], body="x" * 4000)
        assert done["event"]["message"]["body"] == "x" * 4000


@pytest.mark.parametrize("kind", ["edit", "delete", "react"])
async def test_unknown_deleted_or_hidden_messages_are_not_found(auth, kind):
    alice, csrf = await auth.user("alice")
    bob, _ = await auth.user("bob")
    response = await alice.post("/api/v1/rooms", json={"name": "secret", "kind": "private"},
                                headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201
    extra = {"edit": {"body": "x"}, "delete": {}, "react": {"emoji": "👍", "on": True}}[kind]
    async with connect(alice) as a, connect(bob) as b:
        hidden = await post(a, "private", room="secret")
        gone = await post(b, "soon gone")
        await b.request("delete", "done", room=GENERAL, id=gone["id"])
        elsewhere = await post(b, "in general")
        before = await last_seq(b)
        for room, message_id in [(GENERAL, 10**9), (GENERAL, gone["id"]),
                                 ("secret", hidden["id"]), (GENERAL, hidden["id"]),
                                 ("secret", elsewhere["id"])]:
            error = await error_of(b, kind, room=room, id=message_id, **extra)
            assert error["code"] == "not_found", (room, message_id, error)
            assert "private" not in error["message"]
        await nothing_stored(b, before)


@pytest.mark.parametrize("fields", [
    {"id": "1"}, {"id": -1}, {"id": 0}, {"id": True}, {"id": 2**64}, {"room": None},
    {"room": 5},
])
async def test_malformed_edit_frames_are_invalid(auth, fields):
    alice, _ = await auth.user("alice")
    async with connect(alice) as a:
        message = await post(a, "hi")
        frame = {"room": GENERAL, "id": message["id"], "body": "new", **fields}
        error = await error_of(a, "edit", **frame)
        assert error["code"] == "invalid"
        await nothing_stored(a, message["seq"])


# delete -----------------------------------------------------------------------------------

async def test_delete_by_the_author_reaches_everyone_and_leaves_history(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        message = await post(b, "oops")
        await b.request("edit", "done", room=GENERAL, id=message["id"], body="oops 2")
        done = await b.request("delete", "done", room=GENERAL, id=message["id"])
        assert done["event"] == {"type": "message_deleted", "room": GENERAL,
                                 "seq": message["seq"] + 2, "id": message["id"]}
        assert await a.expect("message_deleted") == done["event"]
        page = await (await alice.get(f"/api/v1/rooms/{GENERAL}/messages")).get_json()
        assert page["messages"] == []
        edits = await alice.get(f"/api/v1/messages/{message['id']}/edits")
        assert edits.status_code == 404


async def test_only_the_author_or_an_admin_deletes(auth):
    alice, _ = await auth.user("alice")  # the first user: an admin
    bob, _ = await auth.user("bob")
    carol, _ = await auth.user("carol")
    async with connect(alice) as a, connect(bob) as b, connect(carol) as c:
        bobs = await post(b, "bob's")
        before = await last_seq(c)
        error = await error_of(c, "delete", room=GENERAL, id=bobs["id"])
        assert error["code"] == "forbidden"
        await nothing_stored(c, before)
        done = await a.request("delete", "done", room=GENERAL, id=bobs["id"])
        assert done["event"]["type"] == "message_deleted"
        assert (await b.expect("message_deleted"))["id"] == bobs["id"]


# react ------------------------------------------------------------------------------------

async def test_reactions_toggle_and_repeat_as_no_ops(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        message = await post(a, "react to me")
        on = await b.request("react", "done", room=GENERAL, id=message["id"], emoji="🎉",
                             on=True)
        assert on["event"] == {
            "type": "reaction", "room": GENERAL, "seq": message["seq"] + 1,
            "id": message["id"], "emoji": "🎉", "user": "bob", "on": True,
            "reactions": [{"emoji": "🎉", "count": 1, "users": ["bob"]}],
        }
        assert await a.expect("reaction") == on["event"]
        again = await b.request("react", "done", room=GENERAL, id=message["id"], emoji="🎉",
                                on=True)
        assert again["event"] is None
        mine = await a.request("react", "done", room=GENERAL, id=message["id"],
                               emoji=":shipit:", on=True)
        assert mine["event"]["reactions"] == [
            {"emoji": "🎉", "count": 1, "users": ["bob"]},
            {"emoji": ":shipit:", "count": 1, "users": ["alice"]},
        ]
        off = await b.request("react", "done", room=GENERAL, id=message["id"], emoji="🎉",
                              on=False)
        assert off["event"]["on"] is False
        assert off["event"]["reactions"] == [{"emoji": ":shipit:", "count": 1,
                                              "users": ["alice"]}]
        off_again = await b.request("react", "done", room=GENERAL, id=message["id"],
                                    emoji="🎉", on=False)
        assert off_again["event"] is None
        assert await last_seq(a) == message["seq"] + 3


@pytest.mark.parametrize("fields", [
    {"emoji": "smile"}, {"emoji": ":has space:"}, {"emoji": "👍👍"}, {"emoji": ""},
    {"emoji": ":" + "x" * 33 + ":"}, {"emoji": None}, {"emoji": "<b>"},
    {"on": "yes"}, {"on": None}, {"on": 1},
])
async def test_bad_reactions_are_invalid(auth, fields):
    alice, _ = await auth.user("alice")
    async with connect(alice) as a:
        message = await post(a, "hi")
        error = await error_of(a, "react", **{"room": GENERAL, "id": message["id"],
                                              "emoji": "👍", "on": True, **fields})
        assert error["code"] == "invalid"
        await nothing_stored(a, message["seq"])


async def test_the_21st_distinct_emoji_is_too_large(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        message = await post(a, "popular")
        for i in range(20):
            await a.request("react", "done", room=GENERAL, id=message["id"],
                            emoji=f":e{i}:", on=True)
        before = await last_seq(b)
        error = await error_of(b, "react", room=GENERAL, id=message["id"], emoji="👍",
                               on=True)
        assert error["code"] == "too_large"
        await nothing_stored(b, before)
        joined = await b.request("react", "done", room=GENERAL, id=message["id"],
                                 emoji=":e3:", on=True)
        assert joined["event"]["reactions"][3]["users"] == ["alice", "bob"]


# reply ------------------------------------------------------------------------------------

async def test_reply_names_a_message_of_the_same_room(auth):
    alice, csrf = await auth.user("alice")
    response = await alice.post("/api/v1/rooms", json={"name": "other", "kind": "public"},
                                headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201
    async with connect(alice) as a:
        quoted = await post(a, "question?")
        reply = await post(a, "answer", reply_to=quoted["id"])
        assert reply["reply_to"] == quoted["id"]
        event = await a.expect("message", seq=reply["seq"])
        assert event["message"]["reply_to"] == quoted["id"]
        before = await last_seq(a)
        await a.send("send", room="other", body="wrong room", nonce="x1",
                     reply_to=quoted["id"])
        assert (await a.expect("error", nonce="x1"))["code"] == "not_found"
        await a.send("send", room=GENERAL, body="bad", nonce="x2", reply_to="1")
        assert (await a.expect("error", nonce="x2"))["code"] == "invalid"
        await a.send("send", room=GENERAL, body="bad", nonce="x3", reply_to=10**9)
        assert (await a.expect("error", nonce="x3"))["code"] == "not_found"
        await nothing_stored(a, before)


# the stream -------------------------------------------------------------------------------

async def test_three_users_at_once_see_the_same_contiguous_stream(tmp_path):
    rounds = 8
    async with app_with(tmp_path, CHATAPP_SEND_RATE="1000/1") as auth:
        clients = [(await auth.user(name))[0] for name in ("alice", "bob", "carol")]
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(connect(c)) for c in clients]

            async def work(index: int, ws: WS) -> None:
                for i in range(rounds):
                    message = await post(ws, f"{index}:{i}")
                    await ws.request("edit", "done", room=GENERAL, id=message["id"],
                                     body=f"{index}:{i} edited")
                    await ws.request("react", "done", room=GENERAL, id=message["id"],
                                     emoji="👍", on=True)

            await asyncio.gather(*(work(i, ws) for i, ws in enumerate(conns)))
            total = 3 * rounds * 3

            async def stream(ws: WS) -> dict[int, dict[str, Any]]:
                while len(room_events(ws)) < total:
                    await ws.next()
                return room_events(ws)

            streams = await asyncio.gather(*(stream(ws) for ws in conns))
            for seen in streams:
                assert sorted(seen) == list(range(1, total + 1))
                assert seen == streams[0]
            kinds = [streams[0][seq]["type"] for seq in range(1, total + 1)]
            assert kinds.count("message") == kinds.count("message_edited") == 3 * rounds


async def test_an_offline_client_syncs_to_the_same_room(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    carol, _ = await auth.user("carol")
    async with connect(carol) as c:
        seen_at = await last_seq(c)
    async with connect(alice) as a, connect(bob) as b:
        first = await post(a, "one")
        second = await post(b, "two", reply_to=first["id"])
        third = await post(a, "three")
        await a.request("edit", "done", room=GENERAL, id=first["id"], body="one!")
        await b.request("react", "done", room=GENERAL, id=first["id"], emoji="👍", on=True)
        await a.request("react", "done", room=GENERAL, id=second["id"], emoji="👀", on=True)
        await a.request("delete", "done", room=GENERAL, id=third["id"])
        await b.request("react", "done", room=GENERAL, id=first["id"], emoji="👍", on=False)
        await a.request("react", "done", room=GENERAL, id=first["id"], emoji=":ok:", on=True)
        total = 9
        while len(room_events(b)) < total:
            await b.next()
        live: dict[int, dict[str, Any]] = {}
        for seq in sorted(room_events(b)):
            apply(live, room_events(b)[seq])
    async with connect(carol) as c:
        synced = await c.request("sync", "synced", room=GENERAL, after=seen_at)
        assert synced["recovered"] is True and synced["last_seq"] == seen_at + total
        assert [e["seq"] for e in synced["events"]] == list(range(seen_at + 1,
                                                                   seen_at + total + 1))
        assert "three" not in str(synced)  # the deleted body is never replayed
        replayed: dict[int, dict[str, Any]] = {}
        for event in synced["events"]:
            apply(replayed, event)
    page = await (await carol.get(f"/api/v1/rooms/{GENERAL}/messages")).get_json()
    history = {m["id"]: m for m in page["messages"]}
    assert replayed == live == history
    assert [m["body"] for m in page["messages"]] == ["one!", "two"]
    assert history[first["id"]]["reactions"] == [{"emoji": ":ok:", "count": 1,
                                                  "users": ["alice"]}]


# the hub and the catch-up, for every kind --------------------------------------------

@pytest.mark.parametrize("kind", sorted(ROOM_KINDS))
def test_events_carry_their_kind_and_seq_through_the_broker(kind):
    event = room_event(RoomEvent(kind, GENERAL, 41, {"id": 7, "message": {"seq": 3}}))
    assert (event.kind, event.seq, event.sheddable, event.control) == (kind, 41, False, False)
    assert json.loads(event) == {"type": kind, "room": GENERAL, "seq": 41, "id": 7,
                                 "message": {"seq": 3}}
    unpacked = Event.unpack(event.pack())
    assert (unpacked, unpacked.kind, unpacked.seq) == (event, kind, 41)
    # The kind decides, not the text: a typing event's fields cannot pass for a seq.
    typing = Event.unpack(encode("typing", room=GENERAL, user=',"seq":5').pack())
    assert (typing.kind, typing.seq, typing.sheddable) == ("typing", None, True)
    assert Event.unpack(encode("_leave", room=GENERAL).pack()).control
    for junk in ("", "{}", '{"type":"message","seq":1}', "\n{}"):
        with pytest.raises(ValueError, match="not a packed event"):
            Event.unpack(junk)


async def test_hub_tracks_seqs_of_every_kind_and_catch_up_replays_them(app, storage):
    svc = app.extensions["chatapp"]
    alice = await storage.create_user("alice", "x")
    room = await storage.room(GENERAL)
    message, _ = await storage.add_message(room.id, alice.id, "hi", None)
    await storage.add_message(room.id, alice.id, "second", None)
    queue = SendQueue(limit=100)
    channel = room_channel(GENERAL)

    async def delivered(count: int) -> None:
        """Wait (Redis delivers later) until the queue holds ``count`` events."""
        async with asyncio.timeout(10):
            while len(queue) < count:
                await asyncio.sleep(0.01)

    async with svc.hub.subscription(queue, [channel]):
        await svc.chat.edit(alice, message.id, "hi!")
        await delivered(1)
        assert svc.hub.delivered_seq[channel] == 3
        await svc.chat.react(alice, message.id, "👍", True)
        await svc.chat.viewing(alice, room)  # no seq: the mark stays
        await delivered(3)
        assert svc.hub.delivered_seq[channel] == 4
        queue._items.clear()
        # As after a broker reconnect: replay from storage what followed seq 1.
        await svc.chat.catch_up({channel: 1})
        replayed = [json.loads(item) for item in queue._items]
    assert [(e["type"], e["seq"]) for e in replayed] == [
        ("message", 2), ("message_edited", 3), ("reaction", 4)]
    assert replayed[1]["message"]["body"] == "hi!"
    assert replayed[2]["reactions"] == [{"emoji": "👍", "count": 1, "users": ["alice"]}]


async def test_hub_delivers_packed_events_and_drops_anything_else(caplog):
    from chatapp.broker.hub import Hub
    from chatapp.broker.memory import MemoryTransport

    transport = MemoryTransport()
    hub = Hub(transport)
    await hub.start()
    queue, channel = SendQueue(), room_channel(GENERAL)
    try:
        async with hub.subscription(queue, [channel]):
            await transport.publish(channel, '{"type":"message","room":"general","seq":9}')
            assert len(queue) == 0 and "not a packed event" in caplog.text
            event = Event("message", '{"type":"message","room":"general","seq":9}', 9)
            await transport.publish(channel, event.pack())
            assert queue._items == [event] and queue._items[0].seq == 9
            assert hub.delivered_seq[channel] == 9
    finally:
        await hub.stop()
