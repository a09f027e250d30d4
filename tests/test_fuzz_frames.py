"""Fuzzing the websocket frame parser and validators (SPEC §6).

Any text frame under the size limit gets an ``error`` event or a valid reply, never a
close (1011 was what a 5000-digit number got), and the connection still answers
``ping`` afterwards. The frame types come from ``connection.HANDLERS``, so a type
added there is fuzzed too.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatapp.connection import HANDLERS

from .fuzzing import fuzz, json_scalars, json_values
from .hashing import cheap_passwords
from .wsutil import WS, ClosedError, app_with, connect

ERROR_CODES = {"invalid", "forbidden", "not_found", "too_large", "rate_limited", "conflict"}

# Values that reach deeper into the validators than random JSON does.
plausible = st.sampled_from([
    "general", "nope", "", "\x00", "\u202e", "x" * 65, 0, 1, -1, 2**63 - 1, 2**63, 2**64,
    10**30, 1.5, True, None, [], {}, ":thumbsup:", "👍", "a b", "\ud800", ":\udfff:",
])
FIELDS = ["room", "body", "nonce", "ref", "seq", "after", "id", "emoji", "on", "reply_to",
          "attachments", "users", "username"]
frame_like = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(sorted(HANDLERS)) | json_scalars | st.just("\ud800"),
    st.dictionaries(st.sampled_from(FIELDS), plausible | json_values, max_size=5),
)
as_text = (
    frame_like.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.sampled_from(["[" * 5000, '{"type":"read","room":"general","seq":' + "9" * 5000 + "}",
                       '{"type":"sync","room":"general","after":NaN}', "1e999", "\ud800"])
)


async def _barrier(ws: WS, ref: str) -> list[dict[str, Any]]:
    await ws.send("ping", ref=ref)
    seen: list[dict[str, Any]] = []
    while True:
        event = await ws.next()
        if event["type"] == "pong" and event.get("ref") == ref:
            return seen
        seen.append(event)


@pytest.fixture
async def alice(tmp_path: Any) -> AsyncIterator[Any]:
    """One user's client on one app, shared by every example of a test."""
    async with app_with(tmp_path, CHATAPP_SEND_RATE="100000/1") as auth:
        cheap_passwords(auth.app)
        client, _ = await auth.user("alice")
        yield client


_refs = itertools.count()


@fuzz
@given(frame=as_text)
async def test_any_frame_gets_an_answer_and_the_connection_lives(alice: Any, frame: str) -> None:
    async with connect(alice) as ws:
        try:
            await ws.send_raw(frame)
            events = await _barrier(ws, f"barrier-{next(_refs)}")
            events += await _barrier(ws, f"again-{next(_refs)}")  # still usable
        except ClosedError as closed:  # the bug this guards against
            raise AssertionError(f"closed {closed.args} after {frame[:80]!r}") from None
    for event in events:
        assert isinstance(event.get("type"), str), event
        if event["type"] == "error":
            assert event["code"] in ERROR_CODES, event
