"""The direct wire (chatapp/wire.py): its frames, and a real server writing through it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from wsproto import Connection, ConnectionType
from wsproto.events import TextMessage

from chatapp.wire import text_frame

from .conftest import server_env
from .servers import Browser, Server, events_of


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_is_what_a_client_parses(size: int) -> None:
    payload = ("é" * (size // 2)) + ("x" * (size % 2))
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(text_frame(payload))
    [event] = list(client.events())
    assert isinstance(event, TextMessage)
    assert event.message_finished
    assert event.data == payload


@pytest.mark.slow
@pytest.mark.parametrize("compression", [None, "deflate"], ids=["wire", "deflate"])
async def test_events_arrive_whole_and_in_order_with_and_without_the_wire(
    tmp_path: Path, compression: str | None
) -> None:
    """Without compression events are written straight to the socket (and coalesced on
    the pacer's tick under load); with permessage-deflate they take Hypercorn's path.
    Either way the hello comes first and every seq arrives once, in order."""
    server = Server(tmp_path, server_env(tmp_path, CHATAPP_SEND_RATE="100000/1")).start()
    try:
        alice, bob = Browser(server.base), Browser(server.base)
        assert alice.register("alice") == 303
        assert bob.register("bob") == 303
        total = 3000
        async with (
            websockets.connect(server.ws_url, additional_headers=alice.ws_headers(),
                               compression=compression, max_size=None) as sender,
            websockets.connect(server.ws_url, additional_headers=bob.ws_headers(),
                               compression=compression, max_size=None) as reader,
        ):
            assert events_of(await sender.recv())[0]["type"] == "hello"
            assert events_of(await reader.recv())[0]["type"] == "hello"

            async def send_all() -> None:
                for number in range(total):
                    await sender.send(json.dumps({"type": "send", "room": "general",
                                                  "body": f"m{number}", "nonce": f"n{number}"}))
                await sender.send(json.dumps({"type": "ping", "ref": "last"}))

            async def acks() -> list[str]:
                nonces: list[str] = []
                while True:
                    for event in events_of(await sender.recv()):
                        if event["type"] == "ack":
                            nonces.append(event["nonce"])
                        elif event["type"] == "pong":
                            return nonces

            async def receive_all() -> list[tuple[int, str]]:
                got: list[tuple[int, str]] = []
                while len(got) < total:
                    got += [(e["seq"], e["message"]["body"]) for e in
                            events_of(await reader.recv()) if e["type"] == "message"]
                return got

            _, nonces, got = await asyncio.wait_for(
                asyncio.gather(send_all(), acks(), receive_all()), 60
            )
        assert nonces == [f"n{number}" for number in range(total)]
        assert got == [(number + 1, f"m{number}") for number in range(total)]
    finally:
        server.kill()


async def test_mailbox_hands_over_in_order_and_bounds_the_producer() -> None:
    from chatapp.wire import Mailbox

    box = Mailbox(2)
    await box.put(1)
    await box.put(2)
    blocked = asyncio.ensure_future(box.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done(), "a full mailbox must hold the producer back"
    assert await box.get() == 1
    await asyncio.wait_for(blocked, 1)
    assert [await box.get(), await box.get()] == [2, 3]
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await box.put(4)
    assert await asyncio.wait_for(waiting, 1) == 4


async def test_a_closed_mailbox_drains_then_answers_none_and_drops_new_items() -> None:
    from chatapp.wire import Mailbox

    box = Mailbox(1)
    await box.put("a")
    blocked = asyncio.ensure_future(box.put("b"))
    await asyncio.sleep(0.01)
    box.close()
    await asyncio.wait_for(blocked, 1)  # a waiting producer is released, its item dropped
    assert await box.get() == "a"
    assert await box.get() is None
    await box.put("c")
    assert await box.get() is None
