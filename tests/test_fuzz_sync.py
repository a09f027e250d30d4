"""Fuzzing sync: random interleavings of room changes and disconnects converge.

Three tabs (two of alice's, one of bob's) share a fresh room. Hypothesis picks a
sequence of operations; each tab applies the room events it receives, in seq order,
as the browser does (a gap or a reconnect leads to ``sync`` from the last seq it
applied); events that arrive while a tab is closed are lost to it. In the end every
tab, synced, must show the same room as every other tab and as the API.

To fuzz a new room event, add its frame to ``OPERATIONS`` and its effect to
``Projection.apply``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .fuzzing import fuzz
from .hashing import cheap_passwords
from .wsutil import WS, app_with

TABS = [("alice", 0), ("alice", 1), ("bob", 0)]
tab = st.integers(0, len(TABS) - 1)
pick = st.integers(0, 50)  # which known message (modulo how many there are)
words = st.sampled_from(["hi", "hello", "edited", "🙂 ok", "x" * 100, "  spaced  "])
emoji = st.sampled_from(["👍", ":tada:", "❤️"])

# (name, strategy of its arguments)
OPERATIONS: dict[str, Any] = {
    "send": st.tuples(tab, words),
    "edit": st.tuples(tab, pick, words),
    "delete": st.tuples(tab, pick),
    "react": st.tuples(tab, pick, emoji, st.booleans()),
    "read_events": st.tuples(tab),
    "disconnect": st.tuples(tab),
    "connect": st.tuples(tab),
}
operations = st.lists(
    st.one_of([st.tuples(st.just(name), args) for name, args in OPERATIONS.items()]),
    max_size=14,
)


@dataclass
class Projection:
    """A room as a client shows it: messages by id, built from room events in seq order."""

    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    last: int = 0  # the last seq applied without a gap
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)

    def receive(self, event: dict[str, Any]) -> bool:
        """Take a room event; False when a gap shows (the tab then syncs)."""
        if event["seq"] <= self.last:
            return True  # a duplicate (delivery is at-least-once)
        self.events[event["seq"]] = event
        while self.last + 1 in self.events:
            self.last += 1
            self.apply(self.events[self.last])
        return not any(seq > self.last for seq in self.events)

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("message", "message_edited"):
            message = event["message"]
            self.messages[message["id"]] = message
        elif kind == "message_deleted":
            self.messages.pop(event["id"], None)
        elif kind == "reaction" and event["id"] in self.messages:
            self.messages[event["id"]] = {**self.messages[event["id"]],
                                          "reactions": event["reactions"]}
        else:
            raise AssertionError(f"a room event this fuzzer does not know: {kind}")

    def shown(self) -> dict[int, tuple[str, str, Any]]:
        return {i: (m["body"], m["edited_at"] or "", json.dumps(m["reactions"], sort_keys=True))
                for i, m in self.messages.items()}


class Tab:
    def __init__(self, client: Any, room: str) -> None:
        self.client = client
        self.room = room
        self.view = Projection()
        self.ws: WS | None = None
        self.stack: contextlib.AsyncExitStack | None = None

    async def connect(self) -> None:
        if self.ws is not None:
            return
        self.stack = contextlib.AsyncExitStack()
        conn = await self.stack.enter_async_context(self.client.websocket("/ws"))
        self.ws = WS(conn)
        hello = await self.ws.next()
        assert hello["type"] == "hello"
        await self.ws.send("sync", room=self.room, after=self.view.last)

    async def disconnect(self) -> None:
        if self.stack is not None:
            await self.stack.aclose()  # unread events are lost, as in a closed tab
        self.ws = self.stack = None

    async def read_events(self) -> None:
        """Everything the server sent so far (a ping is the barrier), applied."""
        if self.ws is None:
            return
        while True:
            gap = False
            for event in await self.ws.until_pong():
                if event["type"] == "synced" and event["room"] == self.room:
                    assert event["recovered"], event
                    for room_event in event["events"]:
                        gap |= not self.view.receive(room_event)
                elif event.get("room") == self.room and "seq" in event:
                    gap |= not self.view.receive(event)
            if not gap:
                return
            await self.ws.send("sync", room=self.room, after=self.view.last)


@pytest.fixture
async def env(tmp_path: Any) -> AsyncIterator[dict[str, Any]]:
    async with app_with(tmp_path, CHATAPP_SEND_RATE="100000/1") as auth:
        cheap_passwords(auth.app)
        clients = {}
        for name in ("alice", "bob"):
            clients[name], _ = await auth.user(name)
        yield {"app": auth.app, "clients": clients}


_rooms = itertools.count()


@fuzz
@given(ops=operations)
async def test_every_tab_converges_to_the_same_room(env: dict[str, Any],
                                                    ops: list[tuple[str, Any]]) -> None:
    storage = env["app"].extensions["chatapp"].storage
    alice = await storage.user_by_name("alice")
    bob = await storage.user_by_name("bob")
    room = await storage.create_room(f"fuzz-{next(_rooms)}", "fuzz", "public", alice.id)
    await storage.join(bob.id, room.id)
    tabs = [Tab(env["clients"][user], room.slug) for user, _ in TABS]
    known: list[int] = []  # message ids the tabs have seen acknowledged
    nonces = itertools.count()
    try:
        for tab_ in tabs:
            await tab_.connect()
        for name, args in ops:
            target = tabs[args[0]]
            if name == "connect":
                await target.connect()
            elif name == "disconnect":
                await target.disconnect()
            elif name == "read_events":
                await target.read_events()
            elif target.ws is None:
                continue  # a closed tab sends nothing
            elif name == "send":
                reply = await target.ws.request("send", "ack", room=room.slug, body=args[1],
                                                nonce=f"n{next(nonces)}")
                known.append(reply["message"]["id"])
            elif known:
                message_id = known[args[1] % len(known)]
                if name == "edit":
                    frame = {"id": message_id, "body": args[2]}
                elif name == "delete":
                    frame = {"id": message_id}
                else:
                    frame = {"id": message_id, "emoji": args[2], "on": args[3]}
                await target.ws.send(name, room=room.slug, **frame)
        for tab_ in tabs:  # every frame sent so far handled (and committed)...
            await tab_.read_events()
        for tab_ in tabs:  # ...then every tab open again and caught up
            await tab_.connect()
            await tab_.read_events()
        current = await storage.room(room.slug)
        for tab_ in tabs:
            assert tab_.view.last == current.last_seq
        assert tabs[0].view.shown() == tabs[1].view.shown() == tabs[2].view.shown()
        response = await env["clients"]["bob"].get(f"/api/v1/rooms/{room.slug}/messages")
        api = Projection()
        api.messages = {m["id"]: m for m in (await response.get_json())["messages"]}
        assert api.shown() == tabs[2].view.shown()
    finally:
        for tab_ in tabs:
            await tab_.disconnect()
