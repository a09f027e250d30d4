"""Asyncio load generator on the `websockets` client (its sans-I/O protocol).

Every client is a `websockets.client.ClientProtocol` driven by an `asyncio.Protocol`:
frames are parsed by websockets' own parser, but the per-frame work runs inline in
`data_received` instead of waking a task per frame, so one load-generator core can
drive servers hard (it shares the 2-core machine with the server: see `Stats.cpu`).

Wire protocols spoken:
- ``chat``: chatapp / SPEC §6 (and the websockets, Node ws and naive Quart peers):
  JSON text frames; a server frame is one event or a JSON array of events.
- ``sio``: Socket.IO v5 over Engine.IO v4 (Flask-SocketIO), done by hand on the same
  websockets client so every target is measured with the same client cost
  (``--sio-impl python-socketio`` uses python-socketio's AsyncClient instead).

Each sent message carries its send time (``time.monotonic_ns()``, one system-wide
clock) in its body; receivers compute end-to-end latency from it.

Standalone use (against an already running server):

    python -m bench.loadgen --url ws://127.0.0.1:8101/ --clients 100 --rate 50 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

try:  # the load generator's own JSON decoding; orjson keeps its ceiling high
    from orjson import loads as json_loads
except ImportError:  # pragma: no cover
    from json import loads as json_loads

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

BODY_PAD = "x" * 64  # bodies are ~100 bytes, a typical chat line
# Set by the runner for a whole variant: clients offer permessage-deflate as Chromium
# does (``permessage-deflate; client_max_window_bits``); the server decides.
OFFER_DEFLATE = False


def chromium_offer() -> list[ClientPerMessageDeflateFactory]:
    """Chromium's offer: permessage-deflate with client_max_window_bits, nothing else."""
    return [ClientPerMessageDeflateFactory(client_max_window_bits=True)]


def raise_nofile(want: int = 65536) -> int:
    """Raise RLIMIT_NOFILE as far as the hard limit allows; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def percentiles(samples: list[int], scale: float = 1e-6) -> dict:
    """p50/p90/p99/max of ns samples, in ms by default."""
    if not samples:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    s = sorted(samples)
    n = len(s)

    def pick(q: float) -> float:
        return round(s[min(n - 1, int(q * n))] * scale, 3)

    return {
        "n": n,
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": round(s[-1] * scale, 3),
    }


@dataclass
class Stats:
    """Counters shared by all clients of one run."""

    run_id: str = field(default_factory=lambda: os.urandom(3).hex())
    delivered: int = 0  # message events received (all clients, dups included)
    unique: int = 0  # ... of which new (seq above the client's last)
    acks: int = 0
    errors: int = 0  # `error` events
    closed: int = 0  # connections closed by the server unexpectedly
    frames: int = 0  # server frames (a frame may carry an array of events)
    sent: int = 0
    lat: list[int] = field(default_factory=list)
    lat_from: int = 0  # record latency only for sends in [lat_from, lat_to]
    lat_to: int = 1 << 62
    wake_at: int = 1 << 62  # sender flow control: wake when delivered >= wake_at
    wake: asyncio.Event | None = None
    ack_lat: list[int] = field(default_factory=list)  # send -> ack (s4)
    close_codes: dict[str, int] = field(default_factory=dict)  # server closes, by code
    offer_deflate: bool = field(default_factory=lambda: OFFER_DEFLATE)
    # handshakes by what was negotiated ("permessage-deflate" or "none")
    negotiated: dict[str, int] = field(default_factory=dict)

    def body(self) -> str:
        return f"b:{self.run_id}:{time.monotonic_ns()}:{BODY_PAD}"


class Client(asyncio.Protocol):
    """One websocket connection driven by websockets' sans-I/O ClientProtocol."""

    def __init__(
        self,
        url: str,
        stats: Stats,
        *,
        proto: str = "chat",
        origin: str | None = None,
        cookie: str | None = None,
        record: bool = True,
    ) -> None:
        self.url = url
        self.stats = stats
        self.kind = proto
        self.record = record
        self.ws = ClientProtocol(
            parse_uri(url), origin=Origin(origin) if origin else None, max_size=None,
            extensions=chromium_offer() if stats.offer_deflate else None,
        )
        self.cookie = cookie
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.done: asyncio.Future = loop.create_future()
        self.last_seq: dict[str, int] = {}
        self.frag: list[bytes] = []
        self.pending_pong: asyncio.Future | None = None
        self.on_event: Callable[[dict], None] | None = None
        self.acked = 0
        self.ack_waiter: asyncio.Event | None = None
        self.closing = False

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        req = self.ws.connect()
        if self.cookie:
            req.headers["Cookie"] = self.cookie
        self.ws.send_request(req)
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for ev in ws.events_received():
            if isinstance(ev, Response):
                if ws.handshake_exc is not None and not self.ready.done():
                    self.ready.set_exception(ws.handshake_exc)
                else:
                    got = ",".join(e.name for e in ws.extensions) or "none"
                    self.stats.negotiated[got] = self.stats.negotiated.get(got, 0) + 1
                continue
            op = ev.opcode
            if op is Opcode.TEXT or op is Opcode.CONT:
                if not ev.fin:
                    self.frag.append(ev.data)
                    continue
                payload = ev.data
                if self.frag:
                    self.frag.append(payload)
                    payload = b"".join(self.frag)
                    self.frag = []
                self.stats.frames += 1
                if self.kind == "chat":
                    self._chat(payload)
                else:
                    self._sio(payload)
        self._flush()
        if ws.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.closing:
            self.stats.closed += 1
            code = self.ws.close_rcvd.code if self.ws.close_rcvd is not None else None
            self.stats.close_codes[str(code)] = self.stats.close_codes.get(str(code), 0) + 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc}"))
        if not self.done.done():
            self.done.set_result(None)

    # -- wire protocols ---------------------------------------------------
    def _chat(self, payload: bytes) -> None:
        obj = json_loads(payload)
        now = time.monotonic_ns()
        if type(obj) is list:
            for ev in obj:
                self._event(ev, now)
        else:
            self._event(obj, now)

    def _sio(self, payload: bytes) -> None:
        p = payload.decode()
        if p[:2] == "42":
            name, data = json_loads(p[2:])[:2]
            if name == "hello":
                if not self.ready.done():
                    self.ready.set_result(None)
                return
            self._event(data if isinstance(data, dict) else {}, time.monotonic_ns())
        elif p == "2":  # Engine.IO ping: answer pong
            self.send_raw("3")
        elif p[:1] == "0":  # Engine.IO open: connect the default namespace
            self.send_raw("40")
        elif p[:2] == "44":
            self.stats.errors += 1

    def _event(self, ev: dict, now: int) -> None:
        t = ev.get("type")
        st = self.stats
        if t == "message":
            st.delivered += 1
            room = ev.get("room")
            seq = ev.get("seq", 0)
            if seq > self.last_seq.get(room, 0):
                self.last_seq[room] = seq
                st.unique += 1
            if self.record:
                body = ev["message"]["body"]
                if body[:2] == "b:":
                    parts = body.split(":", 3)
                    if parts[1] == st.run_id:
                        t0 = int(parts[2])
                        if st.lat_from <= t0 <= st.lat_to:
                            st.lat.append(now - t0)
            if st.delivered >= st.wake_at and st.wake is not None:
                st.wake.set()
        elif t == "ack":
            st.acks += 1
            self.acked += 1
            if self.ack_waiter is not None:
                self.ack_waiter.set()
            if self.record:
                body = ev["message"]["body"]
                if body[:2] == "b:":
                    parts = body.split(":", 3)
                    t0 = int(parts[2])
                    if parts[1] == st.run_id and st.lat_from <= t0 <= st.lat_to:
                        st.ack_lat.append(now - t0)
        elif t == "hello":
            if not self.ready.done():
                self.ready.set_result(ev)
        elif t == "pong":
            if self.pending_pong is not None and not self.pending_pong.done():
                self.pending_pong.set_result(now)
        elif t == "error":
            st.errors += 1
        if self.on_event is not None:
            self.on_event(ev)

    # -- sending ----------------------------------------------------------
    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            data = self.ws.data_to_send()
            if data:
                self.transport.write(b"".join(data))

    def send_raw(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self._flush()

    def send_message(self, room: str = "general") -> None:
        st = self.stats
        st.sent += 1
        body = st.body()
        nonce = f"{st.run_id}-{id(self) & 0xFFFFFF:x}-{st.sent}"
        frame = {"type": "send", "room": room, "body": body, "nonce": nonce}
        if self.kind == "chat":
            self.send_raw(json.dumps(frame))
        else:
            self.send_raw("42" + json.dumps(["send", frame]))

    async def ping(self, limit_s: float = 5.0) -> int:
        """Application-level `ping` → `pong`; returns the round trip in ns."""
        self.pending_pong = asyncio.get_running_loop().create_future()
        t0 = time.monotonic_ns()
        self.send_raw('{"type":"ping"}')
        t1 = await asyncio.wait_for(self.pending_pong, limit_s)
        return t1 - t0

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.ws.send_close(1000)
                self._flush()
            except Exception:  # noqa: BLE001 - already closing
                pass
            self.transport.close()


async def connect(
    url: str,
    stats: Stats,
    *,
    proto: str = "chat",
    origin: str | None = None,
    cookie: str | None = None,
    record: bool = True,
    limit_s: float = 30.0,
) -> Client:
    """Open one connection and wait for the server's hello (or Socket.IO connect)."""
    if proto == "sio":
        base = url.rstrip("/").replace("http://", "ws://", 1)
        url = base + "/socket.io/?EIO=4&transport=websocket"
    u = parse_uri(url)
    loop = asyncio.get_running_loop()
    client = Client(url, stats, proto=proto, origin=origin, cookie=cookie, record=record)
    await asyncio.wait_for(loop.create_connection(lambda: client, u.host, u.port), limit_s)
    try:
        await asyncio.wait_for(client.ready, limit_s)
    except BaseException:
        client.close()
        raise
    return client


async def connect_many(
    n: int,
    url: str,
    stats: Stats,
    *,
    proto: str = "chat",
    origin: str | None = None,
    cookies: list[str] | None = None,
    concurrency: int = 100,
    record: bool = True,
    limit_s: float = 30.0,
    into: list[Client] | None = None,
) -> tuple[list[Client], int, float]:
    """Open n connections, at most `concurrency` handshakes at a time.

    Returns (clients, failures, seconds). Cookies are spread round-robin. With `into`,
    clients are appended to that list as they connect (so a `keepalive` can watch it)."""
    sem = asyncio.Semaphore(concurrency)
    clients: list[Client] = [] if into is None else into
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        cookie = cookies[i % len(cookies)] if cookies else None
        async with sem:
            try:
                clients.append(
                    await connect(
                        url,
                        stats,
                        proto=proto,
                        origin=origin,
                        cookie=cookie,
                        record=record,
                        limit_s=limit_s,
                    )
                )
            except Exception:  # noqa: BLE001 - counted
                failures += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return clients, failures, time.perf_counter() - t0


async def keepalive(clients: list[Client], every: float = 25.0, tick: float = 0.5) -> None:
    """Send `{"type":"ping"}` on every open chat connection once per `every` seconds,
    as chatapp's browser client does (static/socket.js pings every 25 s; chatapp closes
    connections idle for CHATAPP_IDLE_TIMEOUT, 50 s). Paced by the clock, not by sleeps,
    so a busy loop still pings everyone in time. Socket.IO clients are kept alive by
    Engine.IO's own heartbeat instead. Runs until cancelled; `clients` may grow."""
    i = 0
    owed = 0.0
    last = time.monotonic()
    while True:
        await asyncio.sleep(tick)
        now = time.monotonic()
        n = len(clients)
        owed += n * (now - last) / every
        last = now
        while owed >= 1 and n:
            c = clients[i % n]
            i += 1
            owed -= 1
            if c.kind == "chat" and not c.done.done():
                c.send_raw('{"type":"ping"}')


def close_all(clients: list[Client]) -> None:
    for c in clients:
        c.close()


async def wait_delivered(stats: Stats, target: int, limit_s: float) -> bool:
    """Wait until stats.unique >= target (all expected deliveries in) or limit_s passes."""
    end = time.monotonic() + limit_s
    while stats.unique < target:
        if time.monotonic() >= end:
            return False
        await asyncio.sleep(0.05)
    return True


async def send_at_rate(
    sender: Client, stats: Stats, rate: float, duration: float, room: str = "general"
) -> None:
    """Open loop: one message every 1/rate s on an absolute schedule."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n = int(rate * duration)
    for i in range(n):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sender.send_message(room)


async def send_saturating(
    sender: Client,
    stats: Stats,
    duration: float,
    n_receivers: int,
    window: int = 20,
    room: str = "general",
) -> int:
    """Closed loop: keep at most `window` messages' worth of deliveries outstanding
    (sent x receivers - delivered), so the server is never idle and no queue grows
    without bound. Returns how many times flow control waited 2 s in vain."""
    stats.wake = asyncio.Event()
    stalls = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        # outstanding = stats.sent * n_receivers - stats.delivered
        if (stats.sent - window) * n_receivers > stats.delivered:
            stats.wake.clear()
            # wake when at most window/2 messages are outstanding again
            stats.wake_at = (stats.sent - window // 2) * n_receivers
            if stats.delivered < stats.wake_at:
                try:
                    await asyncio.wait_for(stats.wake.wait(), 2.0)
                except TimeoutError:
                    stalls += 1
            stats.wake_at = 1 << 62
            continue
        sender.send_message(room)
        if stats.sent % 8 == 0:
            await asyncio.sleep(0)  # let the receivers run
    return stalls


async def send_acked(
    sender: Client, stats: Stats, duration: float, room: str, window: int = 4
) -> None:
    """Closed loop on acks (s4): keep at most `window` unacknowledged sends."""
    sender.ack_waiter = asyncio.Event()
    sent = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        if sent - sender.acked >= window:
            sender.ack_waiter.clear()
            try:
                await asyncio.wait_for(sender.ack_waiter.wait(), 5.0)
            except TimeoutError:
                break
            continue
        sender.send_message(room)
        sent += 1


def cpu_self() -> float:
    """This process's CPU seconds (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------
# python-socketio client path (optional, for cross-checking the hand-written
# Engine.IO framing against the reference client).
async def sio_python_socketio_run(url: str, clients: int, rate: float, duration: float) -> dict:
    import socketio  # python-socketio[asyncio_client]

    stats = Stats()
    sios = []
    lat = stats.lat

    for _ in range(clients):
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("message")
        async def on_message(ev, _lat=lat):
            stats.delivered += 1
            stats.unique += 1
            _lat.append(time.monotonic_ns() - int(ev["message"]["body"].split(":", 3)[2]))

        await sio.connect(url, transports=["websocket"])
        sios.append(sio)
    for i in range(int(rate * duration)):
        stats.sent += 1
        await sios[0].emit(
            "send", {"type": "send", "room": "general", "body": stats.body(), "nonce": str(i)}
        )
        await asyncio.sleep(1 / rate)
    await wait_delivered(stats, stats.sent * clients, 5)
    for s in sios:
        await s.disconnect()
    return {
        "sent": stats.sent,
        "delivered": stats.delivered,
        "expected": stats.sent * clients,
        "latency_ms": percentiles(lat),
    }


async def _standalone(args) -> None:
    raise_nofile()
    if args.sio_impl == "python-socketio":
        print(
            json.dumps(
                await sio_python_socketio_run(args.url, args.clients, args.rate, args.duration),
                indent=2,
            )
        )
        return
    stats = Stats()
    headers = Headers()
    if args.cookie:
        headers["Cookie"] = args.cookie
    clients, failures, secs = await connect_many(
        args.clients,
        args.url,
        stats,
        proto=args.proto,
        origin=args.origin,
        cookies=[args.cookie] if args.cookie else None,
    )
    print(f"connected {len(clients)} ({failures} failed) in {secs:.2f}s")
    cpu0, t0 = cpu_self(), time.perf_counter()
    if args.rate > 0:
        await send_at_rate(clients[0], stats, args.rate, args.duration)
    else:
        await send_saturating(clients[0], stats, args.duration, len(clients), window=args.window)
    await wait_delivered(stats, stats.sent * len(clients), 5)
    wall, cpu = time.perf_counter() - t0, cpu_self() - cpu0
    close_all(clients)
    print(
        json.dumps(
            {
                "sent": stats.sent,
                "delivered": stats.delivered,
                "unique": stats.unique,
                "expected": stats.sent * len(clients),
                "frames": stats.frames,
                "deliveries_per_s": round(stats.delivered / wall),
                "loadgen_cpu_s": round(cpu, 2),
                "wall_s": round(wall, 2),
                "latency_ms": percentiles(stats.lat),
            },
            indent=2,
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:8101/")
    p.add_argument("--proto", choices=["chat", "sio"], default="chat")
    p.add_argument("--sio-impl", choices=["raw", "python-socketio"], default="raw")
    p.add_argument("--origin")
    p.add_argument("--cookie")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--rate", type=float, default=50.0, help="msg/s; 0 = saturate")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--window", type=int, default=20, help="saturating: messages in flight")
    asyncio.run(_standalone(p.parse_args()))


if __name__ == "__main__":
    main()
