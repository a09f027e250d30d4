"""The Hypercorn adapter (chatapp/server/): frames, checks, a real server writing through it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from wsproto import Connection, ConnectionType
from wsproto.events import TextMessage

from chatapp.server import text_frame

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
    """Events are written straight to the socket (and coalesced on the pacer's tick under
    load), uncompressed or, with CHATAPP_WS_COMPRESSION=on, deflated once per frame
    for every connection. Either way the hello comes first and every seq arrives once,
    in order."""
    env = server_env(tmp_path, CHATAPP_SEND_RATE="100000/1",
                     CHATAPP_WS_COMPRESSION="off" if compression is None else "on")
    server = Server(tmp_path, env).start()
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
    from chatapp.server import Mailbox

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
    from chatapp.server import Mailbox

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


def test_every_private_shape_the_adapter_relies_on_holds() -> None:
    """The pinned Hypercorn/wsproto have every private attribute the adapter uses; a
    new release that moves one makes this fail (and ``install`` fall back or refuse)."""
    from chatapp.server import compat

    assert compat.version_problems() == []
    listed = {part: [what for what, _ in checks] for part, checks in compat.PARTS.items()}
    assert all(listed.values()), "every part names what it relies on"
    assert compat.problems() == {part: [] for part in listed}


def test_install_refuses_without_the_guard_and_falls_back_without_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hypercorn.protocol.h11 as h11
    import hypercorn.protocol.ws_stream as ws_stream

    import chatapp.server as server
    from chatapp.server import compat, shutdown

    monkeypatch.setattr(shutdown, "_installed", shutdown._installed)
    before = (h11.WSStream, ws_stream.PerMessageDeflate, ws_stream.Connection)
    # Each install below patches these: put them back afterwards.
    monkeypatch.setattr(h11, "WSStream", h11.WSStream)
    monkeypatch.setattr(ws_stream, "PerMessageDeflate", ws_stream.PerMessageDeflate)
    monkeypatch.setattr(ws_stream, "Connection", ws_stream.Connection)

    gone = [("a private attribute that is gone", lambda: compat._attr("wsproto:Nope"))]
    monkeypatch.setattr(compat, "PARTS", {**compat.PARTS, "guard": gone})
    with pytest.raises(RuntimeError, match="cannot bound permessage-deflate"):
        server.install()
    assert (h11.WSStream, ws_stream.PerMessageDeflate, ws_stream.Connection) == before

    monkeypatch.setattr(compat, "PARTS", {**compat.PARTS, "guard": [], "wire": gone})
    assert server.install() == {"guard": True, "wire": False, "shutdown": True}
    assert h11.WSStream is before[0], "no wire: Hypercorn's own stream (plain ASGI)"
    assert ws_stream.Connection is not before[2], "the guard is in"

    monkeypatch.setattr(compat, "TESTED_VERSIONS", {"hypercorn": ("0.1",)})
    monkeypatch.setattr(compat, "PARTS", {**compat.PARTS, "wire": []})
    assert server.install()["wire"] is False, "an untested version gets no wire"


def test_the_domain_and_the_seam_import_no_server_internals() -> None:
    """Only chatapp/server's adapter modules import Hypercorn, wsproto or touch
    multiprocessing; importing the domain, the hub and the seam loads nothing of them
    beyond what Quart itself loads."""
    import ast

    adapter = {"hypercorn_wire.py", "wsguard.py", "shutdown.py", "compat.py"}
    package = Path(__file__).resolve().parent.parent / "chatapp"
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent.name == "server" and path.name in adapter:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("hypercorn", "wsproto", "multiprocessing")
                          and not (path.name == "cli.py" and n.startswith("hypercorn."))]
            # Outside the package, only the seam: the app factory starts the shutdown
            # watcher, asgi.py calls install.
            if path.parent.name != "server" and isinstance(node, ast.ImportFrom):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                              if (node.module or "").endswith("server")
                              and a.name in {m[:-3] for m in adapter}
                              and not (path.name == "__init__.py" and a.name == "shutdown")]
    assert offenders == []

    script = (
        "import sys, quart, quart.app\n"
        "before = set(sys.modules)\n"
        "import chatapp.server, chatapp.broker.hub, chatapp.chat, chatapp.connection\n"
        "import chatapp.web.ws\n"
        "print(sorted(m for m in set(sys.modules) - before"
        " if m.split('.')[0] in ('hypercorn', 'wsproto')))\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


async def test_coalesced_frames_stay_within_what_clients_accept() -> None:
    """Many large queued events leave in several frames of at most FRAME_CHARS (the
    websockets client refuses frames over 1 MiB by default), in order."""
    from chatapp.events import Event
    from chatapp.sendqueue import FRAME_CHARS, SendQueue

    queue = SendQueue()
    for n in range(1, 301):
        text = json.dumps({"type": "message", "seq": n, "body": "x" * 4000})
        queue.push(Event("message", text, n))
    seqs: list[int] = []
    while len(queue):
        frame = await queue.next_frame()
        assert frame is not None and len(frame) <= FRAME_CHARS + 2
        seqs += [event["seq"] for event in events_of(frame)]
    assert seqs == list(range(1, 301))
