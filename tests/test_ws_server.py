"""The websocket edge on a real Hypercorn process, with a real client library."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.frames import Frame, Opcode

from .conftest import server_env
from .servers import Browser, Server, close_code, events_of

pytestmark = pytest.mark.slow


def user(server: Server, name: str) -> Browser:
    browser = Browser(server.base)
    assert browser.register(name) == 303
    return browser


async def test_handshake_needs_a_session(server: Server) -> None:
    with pytest.raises(websockets.InvalidStatus) as rejected:
        async with websockets.connect(server.ws_url, origin=server.base):  # type: ignore[arg-type]
            pass
    assert rejected.value.response.status_code == 401


async def test_handshake_rejects_a_foreign_origin(server: Server) -> None:
    alice = user(server, "alice")
    headers = {"Cookie": alice.cookie_header, "Origin": "https://evil.example"}
    with pytest.raises(websockets.InvalidStatus) as rejected:
        async with websockets.connect(server.ws_url, additional_headers=headers):
            pass
    assert rejected.value.response.status_code == 403


@pytest.mark.parametrize(
    ("label", "payload", "compression", "expected"),
    [
        ("binary", b"\x00\x01", None, 1003),
        ("plain frame over 64 KiB", "x" * 70_000, None, 1009),
        # Compressed frames (CHATAPP_WS_COMPRESSION=on): tests/test_compression.py.
    ],
)
async def test_bad_frames_close_with_the_spec_code(
    server: Server, label: str, payload: Any, compression: Any, expected: int
) -> None:
    alice = user(server, "alice")
    async with websockets.connect(
        server.ws_url, additional_headers=alice.ws_headers(), compression=compression,
        max_size=None,
    ) as ws:
        await ws.recv()  # hello
        await ws.send(payload)
        assert await close_code(ws) == expected, label


async def test_invalid_utf8_closes_with_1007(server: Server) -> None:
    alice = user(server, "alice")
    async with websockets.connect(server.ws_url, additional_headers=alice.ws_headers(),
                                  compression=None) as ws:
        await ws.recv()
        # The client library refuses to send invalid UTF-8, so write the frame raw.
        ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe\xfd"))
        ws.transport.write(b"".join(ws.protocol.data_to_send()))
        assert await close_code(ws) == 1007


async def test_bad_json_keeps_the_connection_usable(server: Server) -> None:
    alice = user(server, "alice")
    async with websockets.connect(server.ws_url, additional_headers=alice.ws_headers()) as ws:
        await ws.recv()
        await ws.send("{not json")
        assert events_of(await ws.recv())[0]["code"] == "invalid"
        await ws.send(json.dumps({"type": "ping", "ref": "r"}))
        assert events_of(await ws.recv()) == [{"type": "pong", "ref": "r"}]


async def test_slow_consumer_is_closed_and_never_slows_others(tmp_path: Path) -> None:
    server = Server(tmp_path, server_env(tmp_path, CHATAPP_SEND_RATE="100000/1")).start()
    try:
        await _slow_consumer(server)
    finally:
        server.kill()


async def _slow_consumer(server: Server) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    # Bob's tab stops reading: a small receive buffer and paused reads back TCP up fast.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    # No keepalive pings from this client: not reading, it would never see the pong and
    # would close the connection itself (no close code received).
    slow = await websockets.connect(server.ws_url, sock=raw, ping_interval=None,
                                    additional_headers=bob.ws_headers(), compression=None)
    slow.transport.pause_reading()
    total = 4000
    # Nor from the others: on a busy machine a pong queued behind thousands of 4 KB
    # events can take longer than the client's 20 s ping timeout.
    async with (
        websockets.connect(server.ws_url, additional_headers=alice.ws_headers(),
                           max_size=None, ping_interval=None) as sender,
        websockets.connect(server.ws_url, additional_headers=carol.ws_headers(),
                           max_size=None, ping_interval=None) as reader,
    ):
        await sender.recv()
        await reader.recv()
        body = "x" * 4000

        async def send_all() -> None:
            for number in range(total):
                await sender.send(json.dumps({"type": "send", "room": "general", "body": body,
                                              "nonce": f"n{number}"}))

        async def acks() -> int:
            count = 0
            while count < total:
                count += sum(e["type"] == "ack" for e in events_of(await sender.recv()))
            return count

        async def receive_all() -> list[int]:
            seqs: list[int] = []
            while len(seqs) < total:
                seqs += [e["seq"] for e in events_of(await reader.recv())
                         if e["type"] == "message"]
            return seqs

        _, acked, seqs = await asyncio.wait_for(
            asyncio.gather(send_all(), acks(), receive_all()), 60
        )
    assert acked == total
    assert seqs == list(range(1, total + 1)), "carol missed or reordered messages"
    slow.transport.resume_reading()
    assert await close_code(slow) == 1013


async def test_sigterm_closes_websockets_with_1001_and_exits(server: Server) -> None:
    alice = user(server, "alice")
    sockets = [
        await websockets.connect(server.ws_url, additional_headers=alice.ws_headers())
        for _ in range(3)
    ]
    for ws in sockets:
        await ws.recv()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
    assert codes == [1001, 1001, 1001]
    await asyncio.to_thread(server.process.wait, 15)
    assert time.monotonic() - started < 10  # graceful_timeout in hypercorn.toml


async def test_kill_9_loses_no_acknowledged_message(tmp_path: Path) -> None:
    env = server_env(tmp_path, CHATAPP_SEND_RATE="100000/1")
    server = Server(tmp_path, env).start()
    acked: set[int] = set()
    try:
        alice = user(server, "alice")
        async with websockets.connect(server.ws_url, additional_headers=alice.ws_headers()) as ws:
            await ws.recv()

            async def sender() -> None:
                for number in range(100_000):
                    await ws.send(json.dumps({"type": "send", "room": "general",
                                              "body": f"m{number}", "nonce": f"n{number}"}))

            async def reader() -> None:
                while True:
                    for event in events_of(await ws.recv()):
                        if event["type"] == "ack":
                            acked.add(event["message"]["id"])

            tasks = [asyncio.create_task(sender()), asyncio.create_task(reader())]
            while len(acked) < 300:
                await asyncio.sleep(0.01)
            server.kill()  # SIGKILL parent and worker mid-stream
            await asyncio.wait(tasks, timeout=5)
            for task in tasks:
                task.cancel()
    finally:
        server.kill()
    assert len(acked) >= 300
    restarted = Server(tmp_path, env).start()
    try:
        alice = Browser(restarted.base)
        assert alice.login("alice") == 303
        stored: set[int] = set()
        before = ""
        while True:
            _, _, body = alice.request(f"/api/v1/rooms/general/messages?limit=200{before}")
            page = json.loads(body)
            stored.update(m["id"] for m in page["messages"])
            if not page["has_more"]:
                break
            before = f"&before={page['messages'][0]['id']}"
    finally:
        restarted.kill()
    assert acked <= stored, f"{len(acked - stored)} acknowledged messages were lost"


@pytest.mark.embedded_only
def test_memory_broker_refuses_several_workers(tmp_path: Path) -> None:
    server = Server(tmp_path).with_workers(2)
    try:
        # One worker may answer for a moment before the refused one stops them all.
        with contextlib.suppress(RuntimeError):
            server.start(timeout=30)
        assert server.process is not None
        server.process.wait(30)
    finally:
        server.kill()
    assert "CHATAPP_BROKER_URL=redis://" in server.output()
