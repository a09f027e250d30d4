"""SPEC §6 through Quart's websocket test client: handshake, frames, rooms, presence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from chatapp.broker.hub import Hub
from chatapp.broker.memory import MemoryTransport
from chatapp.channels import room_channel
from chatapp.closecodes import CLOSE_SLOW_CONSUMER
from chatapp.connection import HANDLERS
from chatapp.events import Event, encode, presence_event
from chatapp.limits import MemoryLimits
from chatapp.sendqueue import SendQueue
from chatapp.storage import Room, User

from .hashing import cheap_passwords
from .wsutil import WS, app_with, connect, session_cookie

GENERAL = "general"


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    """Registering costs a full argon2 hash (~0.4 s); the protocol is what is under test."""
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


async def api_post(client, csrf, path, body):
    return await client.post(path, json=body, headers={"X-CSRF-Token": csrf})


async def create_room(client, csrf, name, kind="public"):
    response = await api_post(client, csrf, "/api/v1/rooms", {"name": name, "kind": kind})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return (await response.get_json())["slug"]


async def unread(client, slug=GENERAL):
    rooms = (await (await client.get("/api/v1/rooms")).get_json())["rooms"]
    return next(r["unread"] for r in rooms if r["slug"] == slug)


async def send(ws: WS, body, nonce, room=GENERAL, **extra):
    await ws.send("send", room=room, body=body, nonce=nonce, **extra)


def of_type(events, type_):
    return [e for e in events if e["type"] == type_]


async def ws_rejected(client, **headers) -> int:
    with pytest.raises(WebsocketResponseError) as info:
        async with client.websocket("/ws", headers=headers or None) as conn:
            await conn.receive()
    return info.value.response.status_code


# handshake ------------------------------------------------------------------------------

async def test_handshake_without_session_is_401(client):
    assert await ws_rejected(client) == 401


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "http://localhost.evil.example", "http://localhost:8080",
     "file://localhost"],
)
async def test_handshake_from_foreign_origin_is_403(auth, origin):
    alice, _ = await auth.user("alice")
    assert await ws_rejected(alice, Origin=origin) == 403


async def test_handshake_from_own_origin_is_accepted(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice, Origin="http://localhost") as ws:
        assert ws.hello["user"]["username"] == "alice"


async def test_handshake_from_allowed_origin_is_accepted(tmp_path):
    async with app_with(tmp_path, CHATAPP_ALLOWED_ORIGINS="https://chat.example.org") as auth:
        alice, _ = await auth.user("alice")
        async with connect(alice, Origin="https://chat.example.org") as ws:
            assert ws.hello["user"]["username"] == "alice"
        assert await ws_rejected(alice, Origin="https://other.example.org") == 403


async def test_old_cookie_after_logout_is_401(auth):
    alice, _ = await auth.user("alice")
    cookie = session_cookie(alice)
    async with connect(alice):
        pass
    await auth.logout(alice)
    stranger = auth.new_client()
    assert await ws_rejected(stranger, Cookie=cookie) == 401


async def test_logout_closes_only_that_sessions_websockets(auth):
    first, _ = await auth.user("alice")
    second = auth.new_client()
    assert (await auth.login(second, "alice")).status_code == 303
    async with connect(first) as ws1, connect(second) as ws2:
        await ws1.until_pong()
        await auth.logout(first)
        assert await ws1.closed() >= 1000  # SPEC names no code; the socket must go
        assert of_type(await ws2.until_pong(), "error") == []


async def test_logout_close_surfaces_as_disconnect(auth):
    alice, _ = await auth.user("alice")
    async with alice.websocket("/ws") as conn:
        await conn.receive()  # hello
        await auth.logout(alice)
        with pytest.raises(WebsocketDisconnectError):
            async with asyncio.timeout(2):
                while True:
                    await conn.receive()


# hello ----------------------------------------------------------------------------------

async def test_hello_is_first_with_user_rooms_online_and_epoch(auth):
    alice, csrf = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    for i in range(3):
        await api_post(bob, bob_csrf, "/api/v1/rooms/general/messages", {"body": f"m{i}"})
    async with connect(alice) as ws:
        hello = ws.hello
        assert ws.events[0] is hello
        assert set(hello["user"]) == {"id", "username", "display_name", "is_admin"}
        assert hello["user"]["display_name"] == "alice"  # the username until one is set
        assert hello["user"]["username"] == "alice" and hello["user"]["is_admin"] in (True, False)
        general = next(r for r in hello["rooms"] if r["slug"] == GENERAL)
        assert general["unread"] == 3 and general["last_seq"] == 3
        assert set(general) >= {"slug", "name", "kind", "unread", "last_seq"}
        assert "alice" in hello["online"]
        assert isinstance(hello["epoch"], str) and hello["epoch"]
        epoch = hello["epoch"]
    async with connect(alice) as again:
        assert again.hello["epoch"] == epoch


async def test_hello_lists_other_online_users(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(bob), connect(alice) as ws:
        assert set(ws.hello["online"]) >= {"alice", "bob"}


# send -----------------------------------------------------------------------------------

async def test_ack_comes_before_the_message_event_on_the_sender(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await send(a, "hi bob", "n-1", ref="s1")
        ack = await a.expect("ack")
        assert ack["nonce"] == "n-1" and ack["ref"] == "s1"
        message = ack["message"]
        assert message["body"] == "hi bob" and message["author"] == "alice"
        assert message["seq"] == 1 and message["room"] == GENERAL
        assert set(message) == {"id", "room", "seq", "author", "body", "created_at", "nonce",
                                "edited_at", "reply_to", "mentions", "reactions",
                                "attachments", "bot"}
        assert message["reply_to"] is None and message["reactions"] == []
        assert message["mentions"] == [] and message["attachments"] == []
        assert message["bot"] is False
        event = await a.expect("message")
        types = [e["type"] for e in a.events]
        assert types.index("ack") < types.index("message")
        assert event["seq"] == 1 and event["room"] == GENERAL
        assert event["message"] == message
        received = await b.expect("message")
        assert received["seq"] == message["seq"] and received["message"]["id"] == message["id"]


async def test_ref_is_echoed_on_pong_synced_and_error(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await ws.send("ping", ref="p-1")
        assert (await ws.expect("pong"))["ref"] == "p-1"
        await ws.send("sync", room=GENERAL, after=0, ref="y-1")
        assert (await ws.expect("synced"))["ref"] == "y-1"
        await ws.send("sync", room="nowhere", after=0, ref="e-1")
        assert (await ws.expect("error"))["ref"] == "e-1"


async def test_duplicate_nonce_returns_the_stored_message(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await send(a, "once", "same")
        first = (await a.expect("ack"))["message"]
        await a.expect("message", seq=1)
        await b.expect("message", seq=1)
        await send(a, "once again", "same")
        second = (await a.expect("ack"))["message"]
        assert second == first
        assert of_type(await a.until_pong(), "message") == []
        assert of_type(await b.until_pong(), "message") == []
        await send(a, "next", "other")
        assert (await a.expect("ack"))["message"]["seq"] == 2


async def test_duplicate_nonce_from_another_tab_returns_the_stored_message(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as a1, connect(alice) as a2:
        await send(a1, "from tab one", "shared")
        first = (await a1.expect("ack"))["message"]
        await a1.expect("message", seq=1)
        await a2.expect("message", seq=1)
        await send(a2, "from tab two", "shared")
        assert (await a2.expect("ack"))["message"] == first
        assert of_type(await a1.until_pong(), "message") == []
        assert of_type(await a2.until_pong(), "message") == []


async def test_same_nonce_from_another_user_is_a_new_message(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await send(a, "alice's", "n1")
        await a.expect("ack")
        await send(b, "bob's", "n1")
        ack = await b.expect("ack")
        assert ack["message"]["seq"] == 2 and ack["message"]["author"] == "bob"


@pytest.mark.parametrize(
    "body", ["", "   \n\t ", 42, None, ["a"], {"text": "a"}],
    ids=["empty", "whitespace", "number", "null", "list", "object"],
)
async def test_invalid_body_is_an_error_and_the_connection_stays_usable(auth, body):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await send(ws, body, "bad-body")
        error = await ws.expect("error")
        assert error["code"] == "invalid" and error["nonce"] == "bad-body"
        assert error["message"]
        assert of_type(await ws.until_pong(), "message") == []
        await send(ws, "fine", "good")
        assert (await ws.expect("ack"))["message"]["seq"] == 1


@pytest.mark.parametrize("body", ["x" * 4001, "  " + "é" * 4001 + "  ", "x" * 20000])
async def test_body_over_4000_chars_is_too_large_and_the_connection_stays_usable(auth, body):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await send(ws, body, "long-body")
        error = await ws.expect("error")
        assert error["code"] == "too_large" and error["nonce"] == "long-body"
        assert "4000" in error["message"]
        await send(ws, "fine", "good")
        assert (await ws.expect("ack"))["message"]["seq"] == 1


async def test_body_of_4000_chars_after_trimming_is_accepted(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await send(ws, "  " + "y" * 4000 + "  ", "long")
        assert (await ws.expect("ack"))["message"]["body"] == "y" * 4000


async def test_send_to_unknown_room_is_not_found(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await send(ws, "hi", "n", room="nowhere")
        error = await ws.expect("error")
        assert error["code"] == "not_found" and error["nonce"] == "n"


async def test_send_to_someone_elses_private_room_is_not_found(auth):
    alice, _ = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    secret = await create_room(bob, bob_csrf, "Secret", "private")
    async with connect(alice) as ws:
        await send(ws, "let me in", "n", room=secret)
        assert (await ws.expect("error"))["code"] == "not_found"


async def test_send_to_public_room_not_joined_is_forbidden(auth):
    alice, _ = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    lounge = await create_room(bob, bob_csrf, "Lounge", "public")
    async with connect(alice) as ws:
        await send(ws, "hello?", "n", room=lounge)
        error = await ws.expect("error")
        assert error["code"] == "forbidden" and error["nonce"] == "n"


@pytest.mark.parametrize("nonce", [None, 7, "", "n" * 65], ids=["missing", "number", "empty",
                                                               "65-chars"])
async def test_send_without_a_valid_nonce_is_invalid(auth, nonce):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        frame = {"type": "send", "room": GENERAL, "body": "hi", "ref": "r"}
        if nonce is not None:
            frame["nonce"] = nonce
        await ws.send_raw(json.dumps(frame))
        error = await ws.expect("error")
        assert error["code"] == "invalid" and error["ref"] == "r"
        assert of_type(await ws.until_pong(), "ack") == []


# bad frames -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        "42",
        '"text"',
        "null",
        '{"type": "fly"}',
        '{"room": "general"}',
        '{"type": 5}',
        '{"type": ["send"]}',
        '{"type": {"a": 1}}',
        json.dumps({"type": "ping", "ref": "r" * 65}),
        json.dumps({"type": "ping", "ref": 5}),
        "[" * 30_000 + "]" * 30_000,
        '{"type": "sync", "room": "general", "after": 1e999}',
    ],
    ids=["not-json", "array", "number", "string", "null", "unknown-type", "missing-type",
         "type-number", "type-list", "type-object", "ref-65-chars", "ref-number",
         "deeply-nested", "after-infinite"],
)
async def test_bad_frame_is_an_invalid_error_and_the_connection_stays_usable(auth, raw):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await ws.send_raw(raw)
        error = await ws.expect("error")
        assert error["code"] == "invalid" and error["message"]
        assert "ref" not in error or len(error["ref"]) <= 64
        await ws.send("ping", ref="still-here")
        assert (await ws.expect("pong"))["ref"] == "still-here"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "sync", "room": GENERAL, "after": 10**30},
        {"type": "read", "room": GENERAL, "seq": 10**30},
        {"type": "send", "room": GENERAL, "body": "\ud800", "nonce": "lone-surrogate"},
        {"type": "send", "room": "\ud800", "body": "hi", "nonce": "n"},
        {"type": "send", "room": GENERAL, "body": "hi", "nonce": "\udfff"},
        {"type": "ping", "ref": "\ud800"},
    ],
    ids=["after-huge", "read-seq-huge", "body-surrogate", "room-surrogate",
         "nonce-surrogate", "ref-surrogate"],
)
async def test_out_of_range_fields_are_errors_not_fatal(auth, frame):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await ws.send_raw(json.dumps(frame))  # ensure_ascii: surrogates as \\u escapes
        error = await ws.expect("error")
        assert error["code"] in ("invalid", "not_found")
        await ws.send("ping", ref="still-here")
        assert (await ws.expect("pong"))["ref"] == "still-here"
        await send(ws, "storage still writes", "after-bad-field")  # the writer survived
        assert (await ws.expect("ack"))["message"]["body"] == "storage still writes"
        for frame in ws.frames:  # a websocket text frame must be valid UTF-8
            json.dumps(frame, ensure_ascii=False).encode()


async def test_binary_frame_closes_1003(auth):
    alice, _ = await auth.user("alice")
    async with alice.websocket("/ws") as conn:
        await conn.receive()  # hello
        await conn.send(b"\x00\x01binary")
        with pytest.raises(WebsocketDisconnectError) as info:
            async with asyncio.timeout(2):
                while True:
                    await conn.receive()
        assert info.value.args[0] == 1003


async def test_text_frame_over_64_kib_closes_1009(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await ws.send_raw(json.dumps({"type": "ping", "pad": "x" * (70 * 1024)}))
        assert await ws.closed() == 1009


async def test_text_frame_of_64_kib_multibyte_chars_closes_1009(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        # 30 000 characters, 90 000 bytes of UTF-8: the limit is on bytes.
        await ws.send_raw(json.dumps({"type": "ping", "pad": "€" * 30_000}, ensure_ascii=False))
        assert await ws.closed() == 1009


# rate limit -----------------------------------------------------------------------------

async def test_21st_send_within_10s_is_rate_limited(tmp_path):
    async with app_with(tmp_path, CHATAPP_SEND_RATE="20/10") as auth:
        alice, _ = await auth.user("alice")
        async with connect(alice) as ws:
            for i in range(21):
                await send(ws, f"m{i}", f"n{i}")
            error = await ws.expect("error", wait=15)  # 20 commits first, on any backend
            await ws.until_pong()
            acks = of_type(ws.events, "ack")
            assert sorted(a["nonce"] for a in acks) == sorted(f"n{i}" for i in range(20))
            assert error["code"] == "rate_limited" and error["nonce"] == "n20"
            assert error["retry_after"] > 0
            assert of_type(await ws.until_pong(), "ack") == []  # n20 was not stored
            async with connect(alice) as other_tab:  # the limit is per user, not per tab
                await send(other_tab, "from another tab", "tab2")
                error = await other_tab.expect("error")
                assert error["code"] == "rate_limited" and error["nonce"] == "tab2"
            bob, _ = await auth.user("bob")
            async with connect(bob) as bobs:  # and every user has a budget of their own
                await send(bobs, "mine", "b1")
                assert (await bobs.expect("ack"))["nonce"] == "b1"


async def test_send_rate_counts_every_send_in_the_last_10s(tmp_path):
    """20 per 10 s means 20 in any 10 s, not 20 now and 2 more each second after."""
    async with app_with(tmp_path, CHATAPP_SEND_RATE="20/10") as auth:
        alice, _ = await auth.user("alice")
        async with connect(alice) as ws:
            first_sent = time.monotonic()
            for i in range(20):
                await send(ws, f"m{i}", f"n{i}")
            for _ in range(20):
                await ws.expect("ack", wait=15)
            await asyncio.sleep(1.1)
            await send(ws, "one more", "late")
            error = await ws.expect("error")
            elapsed = time.monotonic() - first_sent
            assert error["code"] == "rate_limited" and error["nonce"] == "late"
            # Free again once the first send is 10 s old (however slow the machine).
            assert 0 < error["retry_after"] <= 10
            assert abs(error["retry_after"] - (10 - elapsed)) < 1.0


# sync -----------------------------------------------------------------------------------

async def _post_many(auth, count, room=GENERAL):
    client, csrf = await auth.user("poster")
    for i in range(count):
        response = await api_post(client, csrf, f"/api/v1/rooms/{room}/messages",
                                  {"body": f"m{i + 1}"})
        assert response.status_code == 201


async def test_sync_returns_exactly_the_events_after_a_seq(auth):
    alice, _ = await auth.user("alice")
    await _post_many(auth, 6)
    async with connect(alice) as ws:
        synced = await ws.request("sync", "synced", room=GENERAL, after=2)
        assert synced["room"] == GENERAL and synced["recovered"] is True
        assert synced["last_seq"] == 6
        assert [e["seq"] for e in synced["events"]] == [3, 4, 5, 6]
        assert all(e["type"] == "message" and e["room"] == GENERAL for e in synced["events"])
        assert [e["message"]["body"] for e in synced["events"]] == ["m3", "m4", "m5", "m6"]
        assert [e["message"]["seq"] for e in synced["events"]] == [3, 4, 5, 6]


async def test_sync_at_the_head_is_empty(auth):
    alice, _ = await auth.user("alice")
    await _post_many(auth, 3)
    async with connect(alice) as ws:
        synced = await ws.request("sync", "synced", room=GENERAL, after=3)
        assert synced["events"] == [] and synced["recovered"] is True
        assert synced["last_seq"] == 3


async def test_sync_past_500_missing_is_not_recovered(auth, storage):
    alice, _ = await auth.user("alice")
    room = await storage.room(GENERAL)
    user = await storage.user_by_name("alice")
    await asyncio.gather(*(storage.add_message(room.id, user.id, f"m{i}", None)
                           for i in range(502)))
    async with connect(alice) as ws:
        synced = await ws.request("sync", "synced", room=GENERAL, after=1)
        assert synced == {"type": "synced", "room": GENERAL, "events": [], "last_seq": 502,
                          "recovered": False, "ref": synced["ref"]}
        exactly_500 = await ws.request("sync", "synced", room=GENERAL, after=2)
        assert exactly_500["recovered"] is True
        assert [e["seq"] for e in exactly_500["events"]] == list(range(3, 503))


@pytest.mark.parametrize("after", [-1, "3", None, 1.5, True], ids=["negative", "string",
                                                                  "missing", "float", "bool"])
async def test_sync_with_invalid_after_is_invalid(auth, after):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        frame = {"type": "sync", "room": GENERAL, "ref": "bad-after"}
        if after is not None:
            frame["after"] = after
        await ws.send_raw(json.dumps(frame))
        error = await ws.expect("error")
        assert error["code"] == "invalid" and error["ref"] == "bad-after"


async def test_sync_of_someone_elses_private_room_is_not_found(auth):
    alice, _ = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    secret = await create_room(bob, bob_csrf, "Secret", "private")
    async with connect(alice) as ws:
        await ws.send("sync", room=secret, after=0)
        assert (await ws.expect("error"))["code"] == "not_found"


# typing ---------------------------------------------------------------------------------

async def test_typing_reaches_others_but_not_the_typers_connections(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a1, connect(alice) as a2, connect(bob) as b:
        await a1.send("typing", room=GENERAL)
        assert await b.expect("typing") == {"type": "typing", "room": GENERAL, "user": "alice"}
        assert of_type(await a1.until_pong(), "typing") == []
        assert of_type(await a2.until_pong(), "typing") == []


async def test_typing_is_sent_at_most_once_per_2s(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await a.send("typing", room=GENERAL)
        await b.expect("typing")
        await a.send("typing", room=GENERAL)
        await a.until_pong()  # the second typing has been handled
        assert of_type(await b.until_pong(), "typing") == []


async def test_typing_in_a_room_not_joined_is_refused(auth):
    alice, _ = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    lounge = await create_room(bob, bob_csrf, "Lounge")
    async with connect(alice) as a, connect(bob) as b:
        await a.send("typing", room=lounge)
        assert (await a.expect("error"))["code"] == "forbidden"
        assert of_type(await b.until_pong(), "typing") == []


# read -----------------------------------------------------------------------------------

async def test_read_reaches_the_users_other_connections_and_unread_follows(auth):
    alice, _ = await auth.user("alice")
    await _post_many(auth, 3)
    assert await unread(alice) == 3
    async with connect(alice) as a1, connect(alice) as a2:
        await a1.send("read", room=GENERAL, seq=2)
        assert await a2.expect("read") == {"type": "read", "room": GENERAL, "seq": 2,
                                           "unread": 1, "mentions": 0}
        assert of_type(await a1.until_pong(), "read") == []
        assert await unread(alice) == 1


async def test_unread_counts_grow_for_messages_by_others_only(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await send(a, "mine", "a1")
        await a.expect("ack")
        for i in range(2):
            await send(b, f"theirs {i}", f"b{i}")
            await b.expect("ack")
        assert await unread(alice) == 2
        assert await unread(bob) == 1


# presence -------------------------------------------------------------------------------

async def test_presence_transitions_with_grace_zero(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a:
        async with connect(bob):
            assert await a.expect("presence", user="bob") == {
                "type": "presence", "user": "bob", "online": True}
            online = (await (await alice.get("/api/v1/online")).get_json())["online"]
            assert sorted(online) == ["alice", "bob"]
        assert await a.expect("presence", user="bob") == {
            "type": "presence", "user": "bob", "online": False}
        online = (await (await alice.get("/api/v1/online")).get_json())["online"]
        assert online == ["alice"]


async def test_closing_one_of_two_tabs_sends_no_presence(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob):
        await a.expect("presence", user="bob", online=True)
        async with connect(bob):
            pass
        assert of_type(await a.until_pong(), "presence") == []
        online = (await (await alice.get("/api/v1/online")).get_json())["online"]
        assert "bob" in online


async def test_reconnect_within_the_grace_period_does_not_flicker(tmp_path):
    async with app_with(tmp_path, CHATAPP_PRESENCE_GRACE_SECONDS="0.5") as auth:
        alice, _ = await auth.user("alice")
        bob, _ = await auth.user("bob")
        async with connect(alice) as a:
            async with connect(bob):
                await a.expect("presence", user="bob", online=True)
            async with connect(bob):
                await asyncio.sleep(0.7)  # past the grace the first close started
                assert of_type(await a.until_pong(), "presence") == []
            started = time.monotonic()
            await a.expect("presence", user="bob", online=False)
            assert time.monotonic() - started >= 0.4


async def test_online_api_lists_connected_users(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")

    async def online():
        return sorted((await (await alice.get("/api/v1/online")).get_json())["online"])

    assert await online() == []
    async with connect(bob):
        assert await online() == ["bob"]
    assert await online() == []


# ping -----------------------------------------------------------------------------------

async def test_ping_gets_pong(auth):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        await ws.send("ping")
        assert await ws.expect("pong") == {"type": "pong"}


# live room membership -------------------------------------------------------------------

async def test_created_room_is_joined_live(auth):
    alice, csrf = await auth.user("alice")
    async with connect(alice) as ws:
        slug = await create_room(alice, csrf, "Dev Talk")
        joined = await ws.expect("room_joined")
        assert joined["room"]["slug"] == slug and joined["room"]["last_seq"] == 0
        await send(ws, "first in dev", "d1", room=slug)
        assert (await ws.expect("ack"))["message"]["seq"] == 1
        event = await ws.expect("message", room=slug)
        assert event["seq"] == 1


async def test_joined_room_delivers_others_messages_live(auth):
    alice, csrf = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    slug = await create_room(bob, bob_csrf, "Lounge")
    async with connect(alice) as ws:
        response = await api_post(alice, csrf, f"/api/v1/rooms/{slug}/join", {})
        assert response.status_code == 200
        await ws.expect("room_joined")
        await api_post(bob, bob_csrf, f"/api/v1/rooms/{slug}/messages", {"body": "welcome"})
        event = await ws.expect("message", room=slug)
        assert event["message"]["body"] == "welcome"


async def test_left_room_sends_room_left_and_no_more_messages(auth):
    alice, csrf = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    slug = await create_room(bob, bob_csrf, "Lounge")
    assert (await api_post(alice, csrf, f"/api/v1/rooms/{slug}/join", {})).status_code == 200
    async with connect(alice) as ws:
        response = await api_post(alice, csrf, f"/api/v1/rooms/{slug}/leave", {})
        assert response.status_code == 200
        assert (await ws.expect("room_left"))["room"] == slug
        await api_post(bob, bob_csrf, f"/api/v1/rooms/{slug}/messages", {"body": "gone?"})
        assert [e for e in await ws.until_pong() if e.get("room") == slug] == []
        await send(ws, "back door", "n", room=slug)
        assert (await ws.expect("error"))["code"] == "forbidden"


async def test_added_to_a_private_room_joins_it_live(auth):
    alice, _ = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    secret = await create_room(bob, bob_csrf, "Secret", "private")
    async with connect(alice) as a, connect(bob) as b:
        response = await api_post(bob, bob_csrf, f"/api/v1/rooms/{secret}/members",
                                  {"username": "alice"})
        assert response.status_code == 201
        joined = await a.expect("room_joined")
        assert joined["room"]["slug"] == secret and joined["room"]["kind"] == "private"
        await send(b, "psst", "p1", room=secret)
        assert (await a.expect("message", room=secret))["message"]["body"] == "psst"


# concurrency ----------------------------------------------------------------------------

async def test_concurrent_senders_give_every_receiver_contiguous_seqs(tmp_path):
    async with app_with(tmp_path, CHATAPP_SEND_RATE="1000/1") as auth:
        names = [f"user{i}" for i in range(5)]
        clients = [(await auth.user(name))[0] for name in names]
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(connect(c)) for c in clients]
            async def blast(index: int, ws: WS) -> None:
                for i in range(20):
                    await send(ws, f"{index}-{i}", f"{index}-{i}")

            async def receive_all(ws: WS) -> list[int]:
                seqs = [e["seq"] for e in ws.events if e["type"] == "message"]
                while len(seqs) < 100:
                    event = await ws.next(5)
                    if event["type"] == "message":
                        seqs.append(event["seq"])
                return seqs

            readers = [asyncio.create_task(receive_all(ws)) for ws in conns]
            await asyncio.gather(*(blast(i, ws) for i, ws in enumerate(conns)))
            results = await asyncio.wait_for(asyncio.gather(*readers), 10)
            for seqs in results:
                assert sorted(seqs) == list(range(1, 101))
            for ws in conns:
                assert of_type(await ws.until_pong(), "message") == []
                assert len(of_type(ws.events, "ack")) == 20


# slow consumer (unit) -------------------------------------------------------------------

def _message(seq: int) -> Event:
    return Event("message", encode("message", room=GENERAL, seq=seq, message={"seq": seq}), seq)


async def test_send_queue_sheds_typing_and_presence_before_closing_1013():
    slow, healthy = SendQueue(limit=4), SendQueue(limit=4)
    for box in (slow, healthy):
        box.push(encode("typing", room=GENERAL, user="bob"))
        box.push(presence_event("carol", True))
        box.push(_message(1))
        box.push(_message(2))
    assert len(slow) == 4
    slow.push(_message(3))  # sheds the typing event
    slow.push(_message(4))  # sheds the presence event
    assert slow.close_code is None
    assert [json.loads(e)["type"] for e in slow._items] == ["message"] * 4
    slow.push(encode("typing", room=GENERAL, user="dave"))  # dropped: the queue is full
    assert slow.close_code is None and len(slow) == 4
    slow.push(_message(5))  # only room events left: the consumer is too slow
    assert slow.close_code == CLOSE_SLOW_CONSUMER
    assert await slow.next_frame() is None
    slow.push(_message(6))
    assert len(slow) == 0
    # The other connection is untouched and gets everything in order.
    assert healthy.close_code is None
    frame = json.loads(await healthy.next_frame())
    assert [e["type"] for e in frame] == ["typing", "presence", "message", "message"]


async def test_hub_closes_only_the_slow_queue_and_cleans_up():
    hub = Hub(MemoryTransport())
    await hub.start()
    slow, healthy = SendQueue(limit=4), SendQueue(limit=100)
    channel = room_channel(GENERAL)
    try:
        async with hub.subscription(slow, [channel]), hub.subscription(healthy, [channel]):
            for seq in range(1, 11):
                await hub.publish(channel, _message(seq))
            assert slow.close_code == CLOSE_SLOW_CONSUMER
            assert healthy.close_code is None
            frame = json.loads(await healthy.next_frame())
            assert [e["seq"] for e in frame] == list(range(1, 11))
        assert hub.local_subscribers(channel) == 0 and hub.channel_count == 0
    finally:
        await hub.stop()


async def test_send_queue_next_frame_coalesces_queued_events_in_order():
    box = SendQueue(limit=100)
    box.push(_message(1))
    assert json.loads(await box.next_frame()) == json.loads(_message(1))
    for seq in range(2, 6):
        box.push(_message(seq))
    frame = json.loads(await box.next_frame())
    assert isinstance(frame, list) and [e["seq"] for e in frame] == [2, 3, 4, 5]
    waiter = asyncio.create_task(box.next_frame())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.push(_message(6))
    assert json.loads(await asyncio.wait_for(waiter, 1))["seq"] == 6


# idle timeout ---------------------------------------------------------------------------

async def test_silent_connection_is_closed_1001_after_the_idle_timeout(tmp_path):
    async with app_with(tmp_path, CHATAPP_IDLE_TIMEOUT="0.5") as auth:
        alice, _ = await auth.user("alice")
        async with connect(alice) as ws:
            started = time.monotonic()
            assert await ws.closed(5) == 1001
            assert 0.4 <= time.monotonic() - started < 4


async def test_pinging_connection_stays_open(tmp_path):
    async with app_with(tmp_path, CHATAPP_IDLE_TIMEOUT="0.5") as auth:
        alice, _ = await auth.user("alice")
        async with connect(alice) as ws:
            started = time.monotonic()
            while time.monotonic() - started < 1.2:  # well past the timeout
                await asyncio.sleep(0.15)
                await ws.request("ping", "pong")  # raises ClosedError if the server hung up


async def test_a_crashing_handler_closes_1011_and_spares_other_connections(auth, monkeypatch):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")

    async def broken(conn, frame, ref):
        raise RuntimeError("bug")

    async with connect(alice) as a, connect(bob) as b:
        monkeypatch.setitem(HANDLERS, "typing", broken)
        await a.send("typing", room=GENERAL)
        assert await a.closed() == 1011
        await b.request("ping", "pong")


# viewing (extension) --------------------------------------------------------------------

async def test_viewing_reaches_the_room_including_the_viewers_other_tabs(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a1, connect(alice) as a2, connect(bob) as b:
        await a1.send("viewing", room=GENERAL, ref="v1")
        expected = {"type": "viewing", "room": GENERAL, "user": "alice"}
        assert await b.expect("viewing") == expected
        assert await a2.expect("viewing") == expected  # the client ignores its own name
        # No reply of its own: the sending tab gets the plain relay, and no error.
        assert await a1.expect("viewing") == expected
        assert of_type(await a1.until_pong(), "error") == []


async def test_viewing_is_relayed_at_most_once_per_5s(auth, app, monkeypatch):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with connect(alice) as a, connect(bob) as b:
        await a.send("viewing", room=GENERAL)
        await b.expect("viewing")
        await a.send("viewing", room=GENERAL)
        await a.until_pong()  # the second viewing has been handled
        assert of_type(await b.until_pong(), "viewing") == []
        # Once the window is over (a fresh store here; the period itself is the
        # store's contract, tests/test_limits.py) the next one goes out again.
        monkeypatch.setattr(app.extensions["chatapp"].chat, "limits", MemoryLimits())
        await a.send("viewing", room=GENERAL)
        assert (await b.expect("viewing"))["user"] == "alice"


async def test_viewing_throttle_keeps_a_bounded_number_of_keys(app, monkeypatch):
    chat = app.extensions["chatapp"].chat
    store = MemoryLimits(max_keys=8)  # the memory broker's store, or Redis's fallback
    monkeypatch.setattr(chat, "limits", store)
    room = Room(1, GENERAL, "General", "public", 0)
    for i in range(30):
        await chat.viewing(User(1000 + i, f"user{i}", False, "x"), room)
        assert len(store._last) <= 8
    # The newest key is always kept, so that viewer is still throttled.
    assert f"viewing:1029:{room.id}" in store._last


@pytest.mark.parametrize("kind", ["public", "private"])
async def test_viewing_a_room_not_joined_is_refused_like_typing(auth, kind):
    alice, _ = await auth.user("alice")
    bob, bob_csrf = await auth.user("bob")
    lounge = await create_room(bob, bob_csrf, "Lounge", kind)
    async with connect(alice) as a, connect(bob) as b:
        await a.send("viewing", room=lounge, ref="v")
        error = await a.expect("error")
        assert error["code"] == ("forbidden" if kind == "public" else "not_found")
        assert error["ref"] == "v"
        await a.send("viewing", room="nowhere")
        assert (await a.expect("error"))["code"] == "not_found"
        assert of_type(await b.until_pong(), "viewing") == []


@pytest.mark.parametrize("room", [None, "", 7, ["general"], {"slug": "general"}])
async def test_viewing_with_an_invalid_room_is_invalid(auth, room):
    alice, _ = await auth.user("alice")
    async with connect(alice) as ws:
        frame = {"type": "viewing", "ref": "v"}
        if room is not None:
            frame["room"] = room
        await ws.send_raw(json.dumps(frame))
        error = await ws.expect("error")
        assert error["code"] == "invalid" and error["ref"] == "v"
        await ws.request("ping", "pong")  # still usable


async def test_send_queue_sheds_viewing_before_room_events():
    box = SendQueue(limit=3)
    box.push(encode("viewing", room=GENERAL, user="bob"))
    box.push(_message(1))
    box.push(encode("viewing", room=GENERAL, user="carol"))
    box.push(_message(2))  # sheds bob's viewing
    box.push(_message(3))  # sheds carol's viewing
    assert box.close_code is None
    assert [json.loads(e)["type"] for e in box._items] == ["message"] * 3
    box.push(encode("viewing", room=GENERAL, user="dave"))  # dropped: the queue is full
    assert box.close_code is None and len(box) == 3
    box.push(_message(4))  # only room events left: close
    assert box.close_code == CLOSE_SLOW_CONSUMER
