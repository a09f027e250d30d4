"""permessage-deflate (CHATAPP_WS_COMPRESSION, SPEC §2, §6) on a real Hypercorn with the
``websockets`` client, which offers deflate as browsers do."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from wsproto import Connection, ConnectionType
from wsproto.events import TextMessage
from wsproto.extensions import PerMessageDeflate

from chatapp.server import OutFrame, deflate_frame, text_frame

from .conftest import server_env
from .servers import Browser, Server, close_code, events_of

EVENT = json.dumps({"type": "message", "room": "general", "seq": 7,
                    "message": {"body": "the same words again and again " * 20}})


def _client(server_params: str) -> Connection:
    """A wsproto client that negotiated permessage-deflate with these parameters."""
    ext = PerMessageDeflate()
    ext.finalize("permessage-deflate; " + server_params)
    return Connection(ConnectionType.CLIENT, [ext])


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_a_deflated_frame_is_what_a_deflate_client_reads_again_and_again(bits: int) -> None:
    frame = deflate_frame(EVENT, bits)
    assert frame[0] == 0xC1, "FIN, RSV1 (compressed), text"
    assert len(frame) < len(text_frame(EVENT)) // 4
    client = _client(f"server_no_context_takeover; server_max_window_bits={bits}")
    for _ in range(3):  # each message stands alone: the same bytes fit every time
        client.receive_data(frame)
        [event] = list(client.events())
        assert isinstance(event, TextMessage) and event.data == EVENT


def test_a_small_event_goes_out_uncompressed_which_deflate_clients_read_too() -> None:
    payload = '{"type":"pong","ref":"r1"}'
    assert deflate_frame(payload) == text_frame(payload)
    client = _client("server_no_context_takeover")
    client.receive_data(deflate_frame(payload))
    [event] = list(client.events())
    assert isinstance(event, TextMessage) and event.data == payload


def test_an_out_frame_is_built_once_per_kind_of_connection() -> None:
    frame = OutFrame(EVENT)
    assert frame.plain is frame.plain
    assert frame.deflated(15) is frame.deflated(15)
    assert frame.deflated(10) is not frame.deflated(15)


@pytest.fixture(params=["off", "on"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    env = server_env(tmp_path, CHATAPP_WS_COMPRESSION=request.param,
                     CHATAPP_SEND_RATE="100000/1")
    server = Server(tmp_path, env).start()
    try:
        yield server
    finally:
        server.kill()


def direct_frames(server: Server) -> float:
    with urllib.request.urlopen(server.base + "/metrics") as response:
        text = response.read().decode()
    found = re.search(r"^chatapp_frames_direct_total (\S+)$", text, re.M)
    assert found, "the metric is exposed"
    return float(found.group(1))


def user(server: Server, name: str) -> Browser:
    browser = Browser(server.base)
    assert browser.register(name) == 303
    return browser


def counting(ws: Any) -> list[int]:
    """Count the bytes the server sends on this connection, as they arrive."""
    received = [0]
    inner = ws.data_received

    def data_received(data: bytes) -> None:
        received[0] += len(data)
        inner(data)

    ws.data_received = data_received  # the transport looks it up for every read
    return received


@pytest.mark.slow
async def test_the_fast_path_serves_both_settings_and_on_compresses(server: Server) -> None:
    """off: the browser's offer is declined; on: accepted without context takeover. Either
    way events are written straight to the socket (the counter moves with them), arrive
    whole and in order; with compression on, the bytes on the wire show it."""
    on = server.env_overrides["CHATAPP_WS_COMPRESSION"] == "on"
    alice, bob = user(server, "alice"), user(server, "bob")
    body = ("all work and no play makes a dull chat " * 50).strip()  # ~2 KB, compressible
    total = 30
    async with (
        websockets.connect(server.ws_url, additional_headers=alice.ws_headers(),
                           compression="deflate") as sender,
        websockets.connect(server.ws_url, additional_headers=bob.ws_headers(),
                           compression="deflate") as reader,
    ):
        negotiated = reader.response.headers.get("Sec-WebSocket-Extensions")
        if on:
            params = {p.strip() for p in (negotiated or "").split(";")}
            assert {"permessage-deflate", "server_no_context_takeover",
                    "client_no_context_takeover"} <= params
        else:
            assert negotiated is None
        assert events_of(await sender.recv())[0]["type"] == "hello"
        assert events_of(await reader.recv())[0]["type"] == "hello"
        before = direct_frames(server)
        received = counting(reader)
        got: list[tuple[int, str]] = []
        for number in range(total):  # one at a time: a quiet server writes at once
            await sender.send(json.dumps({"type": "send", "room": "general",
                                          "body": f"{number} {body}", "nonce": f"n{number}"}))
            while len(got) <= number:
                got += [(e["seq"], e["message"]["body"]) for e in
                        events_of(await asyncio.wait_for(reader.recv(), 10))
                        if e["type"] == "message"]
        assert got == [(n + 1, f"{n} {body}") for n in range(total)]
        # Each message reached two connections and its ack one: 3 frames each at once.
        assert direct_frames(server) - before >= 2 * total, "the fast path was not used"
        if on:
            assert received[0] < total * len(body) // 5, "events were not compressed"
        else:
            assert received[0] > total * len(body)


@pytest.mark.slow
@pytest.mark.parametrize("server", ["on"], indirect=True)
async def test_a_compressed_bomb_closes_1009_without_inflating(server: Server) -> None:
    alice = user(server, "alice")
    worker = server.worker_pids()[0]
    before = _rss_kib(worker)
    async with websockets.connect(server.ws_url, additional_headers=alice.ws_headers(),
                                  compression="deflate", max_size=None) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.recv()
        # ~200 KiB on the wire, 200 MiB once inflated.
        await ws.send("\x00" * 200 * 1024 * 1024)
        assert await close_code(ws) == 1009
    assert _rss_kib(worker) - before < 20 * 1024, "the server inflated the frame"


@pytest.mark.slow
@pytest.mark.parametrize("server", ["on"], indirect=True)
async def test_compressed_frames_in_are_read_and_each_stands_alone(server: Server) -> None:
    """The client compresses without context takeover too (the server asked for it):
    many compressed frames in a row each decode on their own."""
    alice = user(server, "alice")
    async with websockets.connect(server.ws_url, additional_headers=alice.ws_headers(),
                                  compression="deflate") as ws:
        await ws.recv()
        for number in range(20):
            await ws.send(json.dumps({"type": "ping", "ref": f"r{number}" * 5}))
            assert events_of(await asyncio.wait_for(ws.recv(), 10)) == [
                {"type": "pong", "ref": f"r{number}" * 5}]
        await ws.send("x" * 70_000)  # over 64 KiB once inflated, whatever the wire size
        assert await close_code(ws) == 1009


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
