"""Run every benchmark scenario against chatapp and the peers; write bench/results/.

    .venv/bin/python -m bench.run            # full run (~15-20 min on 2 cores)
    .venv/bin/python -m bench.run --quick    # small counts (~4 min)
    .venv/bin/python -m bench.run --only s1,s2 --targets chatapp,websockets

See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import aiohttp

if __package__ in (None, ""):  # `python bench/run.py` as well as `python -m bench.run`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen as lg
from bench import procs
from bench import search as search_bench
from bench.chatapp_driver import User, register_users, seed_sessions, seed_sqlite

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
RAW = RESULTS / "raw"
PY = sys.executable
HYPERCORN = str(Path(sys.executable).with_name("hypercorn"))
NODE_DIR = BENCH / "peers" / "node"

ALL_TARGETS = ["chatapp", "websockets", "flask-socketio", "node-ws", "quart-naive"]
ALL_SCENARIOS = ["s1", "s2", "s2u", "s3", "s3u", "s4", "s5", "s6", "s7", "s8"]
# Client kinds: ``plain`` offers no extension (bots, the load generator so far);
# ``chromium`` offers permessage-deflate exactly as Chromium does.
CLIENT_KINDS = ["plain", "chromium"]


def log(*a) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---------------------------------------------------------------------------- targets
class Target:
    name = ""
    proto = "chat"
    ws_path = "/"
    clients = "plain"  # the client kind of the variant being run

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.server: procs.Server | None = None
        self.port = 0
        self.keepalives: list[asyncio.Future] = []

    @property
    def label(self) -> str:
        """The variant's name in the results: the target, then what differs."""
        parts = self.variant()
        return self.name + (f" [{', '.join(parts)}]" if parts else "")

    def variant(self) -> list[str]:
        return [] if self.clients == "plain" else ["chromium clients"]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self, **_) -> dict:
        return {}

    def start(self, **kw) -> procs.Server:
        self.port = procs.free_port()
        RAW.mkdir(parents=True, exist_ok=True)
        self.server = procs.Server(
            self.name,
            self.command(**kw),
            self.port,
            env=self.env(**kw),
            cwd=str(REPO),
            log=RAW / f"{self.name}.log",
        )
        self.server.wait_ready(settle=2.0 if kw.get("workers", 1) > 1 else 0.3)
        return self.server

    def stop(self) -> None:
        for task in self.keepalives:
            task.cancel()
        self.keepalives = []
        if self.server is not None:
            self.server.stop()
            self.server = None

    async def cookies(self, n_users: int) -> list[str] | None:
        return None

    async def connect(
        self, n: int, stats: lg.Stats, cookies, concurrency: int = 100, record: bool = True
    ):
        """Open n connections; a keepalive task pings them as the browser client does
        (every 25 s); it is cancelled when the server stops."""
        into: list[lg.Client] = []
        self.keepalives.append(asyncio.ensure_future(lg.keepalive(into)))
        return await lg.connect_many(
            n,
            self.ws_url,
            stats,
            proto=self.proto,
            origin=self.base,
            cookies=cookies,
            concurrency=concurrency,
            record=record,
            into=into,
        )


class WebsocketsPeer(Target):
    name = "websockets"

    def command(self, **_):
        return [PY, "-m", "bench.peers.ws_broadcast", "--port", str(self.port)]


class FlaskSocketIOPeer(Target):
    name = "flask-socketio"
    proto = "sio"

    def command(self, **_):
        return [PY, "-m", "bench.peers.flask_socketio_peer", "--port", str(self.port)]


class NodePeer(Target):
    name = "node-ws"

    def command(self, **_):
        return ["node", str(NODE_DIR / "server.js"), str(self.port)]


class QuartNaivePeer(Target):
    name = "quart-naive"
    ws_path = "/ws"

    def command(self, **_):
        return [HYPERCORN, "--bind", f"127.0.0.1:{self.port}", "bench.peers.quart_naive:app"]


class Chatapp(Target):
    name = "chatapp"
    ws_path = "/ws"
    compression = "off"  # CHATAPP_WS_COMPRESSION of the variant being run

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.tmp: str | None = None
        self.users: list[User] = []

    def variant(self) -> list[str]:
        parts = super().variant()
        if self.compression == "on":
            parts.append("compression on")
        if self.cfg.worker_class != "asyncio":
            parts.append(self.cfg.worker_class)
        return parts

    def command(self, workers: int = 1, **_):
        cmd = [
            HYPERCORN,
            "--config",
            str(REPO / "hypercorn.toml"),
            "--bind",
            f"127.0.0.1:{self.port}",
        ]
        if workers != 1:
            cmd += ["--workers", str(workers)]
        if self.cfg.worker_class != "asyncio":
            cmd += ["--worker-class", self.cfg.worker_class]
        return cmd + ["chatapp.asgi:app"]

    def env(self, broker: str | None = None, db: str | None = None, **_):
        e = {
            "CHATAPP_SECRET_KEY": "bench-secret-key-not-for-production",
            "CHATAPP_DATABASE_URL": f"sqlite:///{db or self.db_path}",
            "CHATAPP_SEND_RATE": "1000000/1",
            "CHATAPP_API_RATE": "1000000/1",
            # s3 opens thousands of connections for a handful of users.
            "CHATAPP_MAX_CONNECTIONS_PER_USER": "1000000",
            "CHATAPP_WS_COMPRESSION": self.compression,
        }
        if broker:
            e["CHATAPP_BROKER_URL"] = broker
        return e

    @property
    def db_path(self) -> str:
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="chatapp-bench-")
        return os.path.join(self.tmp, "bench.db")

    def start(self, fresh: bool = True, **kw) -> procs.Server:
        if fresh and self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        return super().start(**kw)

    async def cookies(self, n_users: int, prefix: str = "bench") -> list[str]:
        names = [f"{prefix}{i:03d}" for i in range(n_users)]
        self.users = await register_users(self.base, names)
        return [u.cookie for u in self.users]

    async def seeded_cookies(self, n: int, prefix: str = "member") -> list[str]:
        """n users with one session each, made through chatapp's storage interface
        (registering 10,000 users over HTTP would spend minutes in argon2)."""
        log(f"  seeding {n:,} users with sessions")
        return await seed_sessions(self.db_path, self.env()["CHATAPP_SECRET_KEY"], n, prefix)

    async def close_users(self) -> None:
        for u in self.users:
            await u.close()
        self.users = []

    def stop(self) -> None:
        super().stop()

    def cleanup(self) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    async def metrics(self) -> dict:
        """Counters from GET /metrics (SPEC §8) for cross-checking; {} when absent."""
        try:
            async with aiohttp.ClientSession() as s, s.get(self.base + "/metrics") as r:
                if r.status != 200 or "text/plain" not in r.headers.get("content-type", ""):
                    return {}
                text = await r.text()
        except Exception:  # noqa: BLE001
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            if name.endswith("_created") or "_bucket" in name:
                continue
            with contextlib.suppress(ValueError):
                out[name] = out.get(name, 0.0) + float(value)
        return out


TARGET_CLASSES = {
    "chatapp": Chatapp,
    "websockets": WebsocketsPeer,
    "flask-socketio": FlaskSocketIOPeer,
    "node-ws": NodePeer,
    "quart-naive": QuartNaivePeer,
}


# ---------------------------------------------------------------------------- config
class Config:
    def __init__(self, quick: bool, redis_url: str) -> None:
        self.quick = quick
        self.redis_url = redis_url
        q = quick
        self.s1_clients = 50 if q else 100
        self.s1_rate = 50
        self.s1_duration = 3.0 if q else 10.0
        self.s2_clients = 200 if q else 1000
        self.s2_duration = 3.0 if q else 10.0
        self.s2_window = 32
        self.s3_sizes = [500, 2000] if q else [2000, 10000]
        self.s4_senders = 20 if q else 100
        self.s4_duration = 3.0 if q else 10.0
        # s8: search over this many messages, seeded into each engine (bench/search.py)
        self.s8_messages = 100_000 if q else 1_000_000
        self.s5_sizes = {"hist-small": 10_000, "hist-big": 100_000 if q else 1_000_000}
        self.s5_requests = 60 if q else 300
        self.s6_users = 10 if q else 20
        self.s6_rounds = 2 if q else 5
        self.users = 5 if q else 20  # users whose cookies the many connections share
        self.warmup = 1.0 if q else 2.0
        # s2u/s3u: s2 and s3 with one user per connection (presence, hello's online list)
        self.s3u_sizes = [2000] if q else [10000]
        self.client_kinds = list(CLIENT_KINDS)
        self.compressions = ["off", "on"]  # chatapp's setting for chromium clients
        self.worker_class = "asyncio"


# ---------------------------------------------------------------------------- helpers
class Window:
    """Snapshot counters at the start and end of a measured window."""

    def __init__(self, srv: procs.Server, stats: lg.Stats, extra_pids=()) -> None:
        self.srv, self.stats, self.extra = srv, stats, list(extra_pids)

    def snap(self) -> dict:
        return {
            "t": time.perf_counter(),
            "srv": self.srv.cpu(),
            "lg": lg.cpu_self(),
            "extra": sum(procs.cpu_seconds(p) for p in self.extra),
            "busy": procs.machine_busy_seconds(),
            "delivered": self.stats.delivered,
            "unique": self.stats.unique,
            "sent": self.stats.sent,
            "acks": self.stats.acks,
            "frames": self.stats.frames,
        }

    @staticmethod
    def diff(a: dict, b: dict) -> dict:
        return {k: b[k] - a[k] for k in a}


async def fanout(
    target: Target,
    cfg: Config,
    *,
    clients: int,
    rate: float | None,
    duration: float,
    start_kw: dict | None = None,
    extra_pids=(),
    user_per_conn: bool = False,
) -> dict:
    """s1/s2/s7: N connections in `general`, client 0 sends (at `rate`, or saturating).
    With ``user_per_conn`` (chatapp, s2u) every connection is its own user."""
    srv = target.start(**(start_kw or {}))
    try:
        cookies = None
        if isinstance(target, Chatapp):
            cookies = await (target.seeded_cookies(clients) if user_per_conn
                             else target.cookies(cfg.users))
        stats = lg.Stats()
        conns, fails, t_conn = await target.connect(clients, stats, cookies)
        if fails or not conns:
            raise RuntimeError(f"{fails} of {clients} connections failed")
        await asyncio.sleep(0.5)
        sender = conns[0]
        m0 = await target.metrics() if isinstance(target, Chatapp) else {}
        total = cfg.warmup + duration
        if rate:
            task = asyncio.ensure_future(lg.send_at_rate(sender, stats, rate, total))
        else:
            task = asyncio.ensure_future(
                lg.send_saturating(sender, stats, total, len(conns), window=cfg.s2_window)
            )
        win = Window(srv, stats, extra_pids)
        await asyncio.sleep(cfg.warmup)
        stats.lat_from = time.monotonic_ns()
        a = win.snap()
        await asyncio.sleep(duration)
        b = win.snap()
        stats.lat_to = time.monotonic_ns()
        stalls = await task
        drained = await lg.wait_delivered(stats, stats.sent * len(conns), 15.0)
        rss = srv.rss()
        m1 = await target.metrics() if isinstance(target, Chatapp) else {}
        d = Window.diff(a, b)
        expected = stats.sent * len(conns)
        res = {
            "clients": len(conns),
            "connect_s": round(t_conn, 2),
            "sent": stats.sent,
            "expected": expected,
            "received": stats.delivered,
            "lost": expected - stats.unique,
            "duplicates": stats.delivered - stats.unique,
            "drained": drained,
            "closed_by_server": stats.closed,
            "errors": stats.errors,
            "window_s": round(d["t"], 2),
            "msgs_per_s": round(d["sent"] / d["t"], 1),
            "deliveries_per_s": round(d["delivered"] / d["t"]),
            "server_cpu_s": round(d["srv"], 2),
            "server_cpu_util": round(d["srv"] / d["t"], 2),
            "deliveries_per_cpu_s": round(d["delivered"] / d["srv"]) if d["srv"] > 0 else None,
            "events_per_frame": round(d["delivered"] / d["frames"], 2) if d["frames"] else None,
            # server CPU per message sent, fan-out to every client included, and per delivery
            "server_us_per_event": round(d["srv"] / d["sent"] * 1e6) if d["sent"] else None,
            "server_us_per_delivery": (
                round(d["srv"] / d["delivered"] * 1e6, 2) if d["delivered"] else None
            ),
            "negotiated": dict(stats.negotiated),
            "loadgen_cpu_util": round(d["lg"] / d["t"], 2),
            # everything else on the machine in the window (other jobs = noise)
            "other_cpu_util": round(
                max(0.0, d["busy"] - d["srv"] - d["lg"] - d["extra"]) / d["t"], 2
            ),
            "server_rss_mb": round(rss / 2**20, 1),
            "latency_ms": lg.percentiles(stats.lat),
        }
        if rate is None:
            res["flow_control_stalls"] = stalls
        if extra_pids:
            res["redis_cpu_s"] = round(d["extra"], 2)
            tot = d["srv"] + d["extra"]
            res["deliveries_per_cpu_s_incl_redis"] = round(d["delivered"] / tot) if tot else None
        if m1:
            res["metrics_delta"] = delta = {
                k: m1[k] - m0.get(k, 0.0)
                for k in m1
                if any(w in k for w in ("deliver", "message", "event", "frame"))
                and m1[k] != m0.get(k, 0.0)
            }
            # How much went through the direct path (chatapp_frames_direct_total).
            sent_frames = delta.get("chatapp_frames_sent_total")
            if sent_frames:
                res["direct_frames_share"] = round(
                    delta.get("chatapp_frames_direct_total", 0.0) / sent_frames, 3)
        lg.close_all(conns)
        await asyncio.sleep(0.3)
        return res
    finally:
        if isinstance(target, Chatapp):
            await target.close_users()
        target.stop()


# ---------------------------------------------------------------------------- scenarios
async def s1(target: Target, cfg: Config) -> dict:
    return await fanout(
        target, cfg, clients=cfg.s1_clients, rate=cfg.s1_rate, duration=cfg.s1_duration
    )


async def s2(target: Target, cfg: Config) -> dict:
    return await fanout(target, cfg, clients=cfg.s2_clients, rate=None, duration=cfg.s2_duration)


async def s2u(target: Chatapp, cfg: Config) -> dict:
    """s2 with one user per connection (every client its own presence and hello)."""
    return await fanout(target, cfg, clients=cfg.s2_clients, rate=None,
                        duration=cfg.s2_duration, user_per_conn=True)


async def s3u(target: Chatapp, cfg: Config) -> dict:
    """s3 with one user per connection: each open is a presence transition for all."""
    return await s3(target, cfg, sizes=cfg.s3u_sizes, user_per_conn=True)


async def s3(target: Target, cfg: Config, sizes: list[int] | None = None,
             user_per_conn: bool = False) -> dict:
    out = {}
    for n in sizes or cfg.s3_sizes:
        srv = target.start()
        try:
            cookies = None
            if isinstance(target, Chatapp):
                cookies = await (target.seeded_cookies(n + 1) if user_per_conn
                                 else target.cookies(cfg.users))
            await asyncio.sleep(0.5)
            stats = lg.Stats()
            # one warm connection so lazily built state is in the baseline
            own = user_per_conn and cookies is not None
            warm, _, _ = await target.connect(1, stats, cookies[-1:] if own else cookies)
            await asyncio.sleep(0.3)
            rss0 = srv.rss()
            cpu0 = srv.cpu()
            conns, fails, secs = await target.connect(
                n, stats, cookies[:n] if own else cookies, concurrency=200, record=False
            )
            await asyncio.sleep(3.0)  # settle; idle connections must stay open
            rss1 = srv.rss()
            still_open = sum(1 for c in conns if not c.done.done())
            out[str(n)] = {
                "connections": n,
                "users": n if own else (len(cookies) if cookies else None),
                "negotiated": dict(stats.negotiated),
                "connected": len(conns),
                "failed": fails,
                "still_open_after_3s": still_open,
                "server_close_codes": stats.close_codes,
                "connect_all_s": round(secs, 2),
                "conn_per_s": round(len(conns) / secs) if secs else None,
                "server_cpu_connect_s": round(srv.cpu() - cpu0, 2),
                "rss_before_mb": round(rss0 / 2**20, 1),
                "rss_after_mb": round(rss1 / 2**20, 1),
                "kb_per_conn": round((rss1 - rss0) / 1024 / max(1, len(conns)), 1),
            }
            log(f"  s3 {target.name} {n}: {out[str(n)]}")
            lg.close_all(conns + warm)
            await asyncio.sleep(1.0)
        finally:
            if isinstance(target, Chatapp):
                await target.close_users()
            target.stop()
    return out


async def s4(target: Chatapp, cfg: Config) -> dict:
    """100 senders, each its own user and private room (so this measures the write path,
    not fan-out); each keeps 4 sends unacknowledged; acks counted in the window."""
    srv = target.start()
    try:
        cookies = await target.cookies(cfg.s4_senders, prefix="writer")
        rooms = await asyncio.gather(*(u.create_room(f"w-{u.name}") for u in target.users))
        stats = lg.Stats()
        conns, fails, _ = await lg.connect_many(
            len(cookies), target.ws_url, stats, origin=target.base, cookies=cookies
        )
        conns.sort(key=lambda c: cookies.index(c.cookie))
        if fails:
            raise RuntimeError(f"{fails} connections failed")
        total = cfg.warmup + cfg.s4_duration
        tasks = [
            asyncio.ensure_future(lg.send_acked(c, stats, total, room))
            for c, room in zip(conns, rooms, strict=True)
        ]
        win = Window(srv, stats)
        await asyncio.sleep(cfg.warmup)
        stats.lat_from = time.monotonic_ns()
        a = win.snap()
        await asyncio.sleep(cfg.s4_duration)
        b = win.snap()
        stats.lat_to = time.monotonic_ns()
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
        d = Window.diff(a, b)
        # durability cross-check: rows in the DB == acks received
        lg.close_all(conns)
        await target.close_users()
        target.stop()
        import sqlite3

        con = sqlite3.connect(target.db_path)
        rows = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        con.close()
        return {
            "senders": len(conns),
            "window_per_sender": 4,
            "acked_per_s": round(d["acks"] / d["t"]),
            "sent_per_s": round(d["sent"] / d["t"]),
            "server_cpu_util": round(d["srv"] / d["t"], 2),
            "loadgen_cpu_util": round(d["lg"] / d["t"], 2),
            "other_cpu_util": round(max(0.0, d["busy"] - d["srv"] - d["lg"]) / d["t"], 2),
            "acks_total": stats.acks,
            "sent_total": stats.sent,
            "rows_in_db": rows,
            "errors": stats.errors,
            "closed_by_server": stats.closed,
            "ack_latency_ms": lg.percentiles(stats.ack_lat),
        }
    finally:
        await target.close_users()
        target.stop()


async def _timed_get(http: aiohttp.ClientSession, url: str, page: bool = True) -> float:
    """One GET's time; it must answer a page of 50 messages (or, without ``page``, 200)."""
    t0 = time.perf_counter_ns()
    async with http.get(url) as r:
        body = await r.json()
        if r.status != 200 or (page and len(body.get("messages", [])) != 50):
            raise RuntimeError(f"GET {url}: {r.status} {str(body)[:200]}")
    return time.perf_counter_ns() - t0


async def s5(target: Chatapp, cfg: Config) -> dict:
    """History page of 50: latest page and a random deep page (before=ID), p50/p99; and
    the room list (GET /api/v1/rooms, the summaries of `hello`) of a member who has read
    none of a room's messages, one reader per room."""
    target.start()
    try:
        await target.cookies(1 + len(cfg.s5_sizes), prefix="historian")
        author = target.users[0].name
        readers = {slug: u.name for slug, u in zip(cfg.s5_sizes, target.users[1:], strict=True)}
    finally:
        await target.close_users()
        target.stop()
    t0 = time.perf_counter()
    ranges = seed_sqlite(Path(target.db_path), cfg.s5_sizes, author, readers)
    seed_s = time.perf_counter() - t0
    log(f"  s5 seeded {cfg.s5_sizes} in {seed_s:.1f}s")
    target.start(fresh=False)
    try:
        u = User(target.base, author)
        target.users = [u]
        await u.login_post(await u.login_form())
        rnd = random.Random(6)
        out: dict = {"seed_s": round(seed_s, 1)}
        for slug, count in cfg.s5_sizes.items():
            lo, hi = ranges[slug]
            url = f"{target.base}/api/v1/rooms/{slug}/messages?limit=50"
            for _ in range(10):  # warm
                await _timed_get(u.http, url)
            latest = [await _timed_get(u.http, url) for _ in range(cfg.s5_requests)]
            deep = [
                await _timed_get(u.http, f"{url}&before={rnd.randint(lo + 100, hi)}")
                for _ in range(cfg.s5_requests)
            ]
            reader = User(target.base, readers[slug])
            target.users.append(reader)
            await reader.login_post(await reader.login_form())
            rooms_url = f"{target.base}/api/v1/rooms"
            for _ in range(10):  # warm
                await _timed_get(reader.http, rooms_url, page=False)
            listed = [await _timed_get(reader.http, rooms_url, page=False)
                      for _ in range(cfg.s5_requests)]
            async with reader.http.get(rooms_url) as r:
                unread = {x["slug"]: x["unread"] for x in (await r.json())["rooms"]}
            out[slug] = {
                "messages": count,
                "latest_ms": lg.percentiles(latest),
                "deep_ms": lg.percentiles(deep),
                "rooms_ms": lg.percentiles(listed),
                "unread": unread.get(slug),
            }
        return out
    finally:
        await target.close_users()
        target.stop()


async def s6(target: Chatapp, cfg: Config) -> dict:
    """`rounds` bursts of N concurrent logins (argon2) while one websocket pings every
    10 ms; ping RTT p99 during the bursts vs. idle."""
    target.start()
    try:
        cookies = await target.cookies(cfg.s6_users, prefix="login")
        names = [u.name for u in target.users]
        await target.close_users()
        stats = lg.Stats()
        pinger = await lg.connect(target.ws_url, stats, origin=target.base, cookie=cookies[0])

        async def ping_for(seconds: float | None, stop: asyncio.Event | None = None) -> list[int]:
            rtts = []
            end = time.monotonic() + (seconds or 120)
            while time.monotonic() < end and not (stop and stop.is_set()):
                rtts.append(await pinger.ping())
                await asyncio.sleep(0.01)
            return rtts

        idle = await ping_for(2.0)
        burst_rtts: list[int] = []
        login_s: list[float] = []
        burst_wall = []
        for _ in range(cfg.s6_rounds):
            fresh = [User(target.base, n) for n in names]
            tokens = await asyncio.gather(*(f.login_form() for f in fresh))
            stop = asyncio.Event()
            ptask = asyncio.ensure_future(ping_for(None, stop))
            t0 = time.perf_counter()
            login_s += await asyncio.gather(
                *(f.login_post(t) for f, t in zip(fresh, tokens, strict=True))
            )
            burst_wall.append(time.perf_counter() - t0)
            stop.set()
            burst_rtts += await ptask
            for f in fresh:
                await f.close()
            await asyncio.sleep(0.3)
        pinger.close()
        return {
            "logins_per_burst": len(names),
            "bursts": cfg.s6_rounds,
            "burst_wall_s": [round(x, 2) for x in burst_wall],
            "login_ms": lg.percentiles([int(x * 1e9) for x in login_s]),
            "ping_idle_ms": lg.percentiles(idle),
            "ping_burst_ms": lg.percentiles(burst_rtts),
        }
    finally:
        await target.close_users()
        target.stop()


async def s7(target: Chatapp, cfg: Config, prior_s2: dict | None) -> dict:
    """s2 on the memory broker (1 worker) vs Redis with 1 and 2 hypercorn workers."""
    out: dict = {}
    redis_srv = None
    host_port = cfg.redis_url.split("//", 1)[1].split("/", 1)[0]
    rport = int(host_port.rsplit(":", 1)[1]) if ":" in host_port else 6379
    if not procs.port_open(rport):
        exe = shutil.which("redis-server")
        if not exe:
            return {"error": "no Redis on the broker URL and no redis-server to start"}
        redis_srv = procs.Server(
            "redis",
            [exe, "--port", str(rport), "--save", "", "--appendonly", "no"],
            rport,
            log=RAW / "redis.log",
        )
        redis_srv.wait_ready()
    redis_pids = [redis_srv.pid] if redis_srv else procs.find_pids("redis-server")
    try:
        out["memory-1w"] = prior_s2 or await fanout(
            target, cfg, clients=cfg.s2_clients, rate=None, duration=cfg.s2_duration
        )
        for workers in (1, 2):
            key = f"redis-{workers}w"
            out[key] = await fanout(
                target,
                cfg,
                clients=cfg.s2_clients,
                rate=None,
                duration=cfg.s2_duration,
                extra_pids=redis_pids,
                start_kw={"workers": workers, "broker": cfg.redis_url},
            )
            log(
                f"  s7 {key}: {out[key]['deliveries_per_s']}/s "
                f"{out[key]['deliveries_per_cpu_s']}/cpu-s"
            )
        return out
    finally:
        if redis_srv:
            redis_srv.stop()


# ---------------------------------------------------------------------------- report
def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    node = ""
    with contextlib.suppress(Exception):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    rev = ""
    with contextlib.suppress(Exception):
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    import websockets

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "websockets": websockets.__version__,
        "git": rev or "(no commit)",
    }


def _f(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def targets_table(res: dict) -> list[tuple[str, str, str, str]]:
    """(scenario, target, measured, verdict)."""
    rows = []

    def get(*path):
        cur = res
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**missed**")

    def per_cpu(sc: str, a: dict | None, b: dict | None, target: str, least: float) -> None:
        """A deliveries-per-CPU-second ratio, with both figures and both events/frame:
        coalescing moves the ratio, so it is never shown without them."""
        a, b = a or {}, b or {}
        da, db = a.get("deliveries_per_cpu_s"), b.get("deliveries_per_cpu_s")
        r = _ratio(da, db)
        measured = _f(r, 2)
        if r is not None:
            measured += (
                f" ({_f(da)} vs {_f(db)}/CPU-s; {_f(a.get('events_per_frame'), 1)} vs "
                f"{_f(b.get('events_per_frame'), 1)} events/frame)"
            )
        rows.append((sc, target, measured, verdict(None if r is None else r >= least)))

    for suffix, what in (("", ""), (" [chromium clients]", ", Chromium-like clients"),
                         (" [chromium clients, compression on]",
                          ", Chromium-like clients, compression on")):
        if suffix and get("s2", "chatapp" + suffix) is None:
            continue
        peer = " [chromium clients]" if suffix else ""
        per_cpu("s2", get("s2", "chatapp" + suffix), get("s2", "websockets" + peer),
                f"≥ 1.0× websockets deliveries/CPU-s{what}", 1.0)
        per_cpu("s2", get("s2", "chatapp" + suffix), get("s2", "flask-socketio" + peer),
                f"≥ 1.5× Flask-SocketIO deliveries/CPU-s{what}", 1.5)
    c1 = get("s1", "chatapp", "latency_ms", "p99")
    w1 = get("s1", "websockets", "latency_ms", "p99")
    f1 = get("s1", "flask-socketio", "latency_ms", "p99")
    r = _ratio(c1, w1)
    rows.append(
        ("s1", "p99 ≤ 1.5× websockets p99", _f(r, 2), verdict(None if r is None else r <= 1.5))
    )
    rows.append(
        (
            "s1",
            "p99 < Flask-SocketIO p99",
            f"{_f(c1, 2)} vs {_f(f1, 2)} ms",
            verdict(None if c1 is None or f1 is None else c1 < f1),
        )
    )
    s3 = get("s3", "chatapp") or {}
    sizes = sorted(int(k) for k in s3 if k.isdigit())
    if sizes:
        big = s3[str(sizes[-1])]
        rows.append(
            (
                "s3",
                "≤ 25 KB per idle connection",
                f"{big['kb_per_conn']} KB",
                verdict(big["kb_per_conn"] <= 25),
            )
        )
        ok = big["failed"] == 0 and big["still_open_after_3s"] == big["connections"]
        rows.append(
            (
                "s3",
                f"{sizes[-1]:,} connections, one worker, no errors",
                f"{big['connected']:,} ok, {big['failed']} failed",
                verdict(ok),
            )
        )
    a4 = get("s4", "chatapp", "acked_per_s")
    rows.append(
        (
            "s4",
            "≥ 5,000 acked msgs/s on SQLite",
            _f(a4),
            verdict(None if a4 is None else a4 >= 5000),
        )
    )
    s5 = get("s5", "chatapp") or {}
    if "hist-small" in s5 and "hist-big" in s5:
        nb, ns = s5["hist-big"]["messages"], s5["hist-small"]["messages"]
        for kind in ("latest_ms", "deep_ms", "rooms_ms"):
            if kind not in s5["hist-big"]:
                continue
            what = "room list, all unread:" if kind == "rooms_ms" else f"{kind[:-3]} page:"
            r = _ratio(s5["hist-big"][kind]["p99"], s5["hist-small"][kind]["p99"])
            rows.append(
                (
                    "s5",
                    f"p99 {what} {nb:,} msgs ≤ 2× {ns:,} msgs",
                    _f(r, 2),
                    verdict(None if r is None else r <= 2.0),
                )
            )
    p6 = get("s6", "chatapp", "ping_burst_ms", "p99")
    rows.append(
        (
            "s6",
            "ping p99 < 50 ms during login burst",
            f"{_f(p6, 1)} ms",
            verdict(None if p6 is None else p6 < 50),
        )
    )
    s7 = get("s7", "chatapp") or {}
    for k in ("redis-1w", "redis-2w"):
        per_cpu("s7", get("s7", "chatapp", k), get("s7", "chatapp", "memory-1w"),
                f"{k} ≥ 0.8× memory broker deliveries/CPU-s", 0.8)
    d1, d2 = (
        get("s7", "chatapp", "redis-1w", "deliveries_per_s"),
        get("s7", "chatapp", "redis-2w", "deliveries_per_s"),
    )
    lgu = get("s7", "chatapp", "redis-2w", "loadgen_cpu_util")
    rows.append(
        (
            "s7",
            "2 workers deliver more/s than 1",
            f"{_f(d2)} vs {_f(d1)}/s (loadgen {_f(lgu, 2)} core)" if s7 else "–",
            verdict(None if d1 is None or d2 is None else d2 > d1),
        )
    )
    return rows


def write_markdown(res: dict, path: Path) -> None:
    m = res["meta"]
    lines = [
        f"# chatapp benchmark results ({'quick' if m['quick'] else 'full'} run)",
        "",
        f"{m['date']} · `{m['command']}` · {m['duration_s']:.0f} s",
        "",
        f"Machine: {m['machine']['cpu']}, {m['machine']['cores']} cores, "
        f"{m['machine']['mem_mb']:,} MB RAM, Linux {m['machine']['kernel']}, "
        f"Python {m['machine']['python']}, Node {m['machine']['node']}, "
        f"websockets {m['machine']['websockets']}; git {m['machine']['git']}. "
        "Load generator and server share the machine (loopback).",
        "",
        "## Targets (issue #6)",
        "",
        "| scenario | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    for row in targets_table(res):
        lines.append("| " + " | ".join(row) + " |")

    def fan_table(title: str, data: dict) -> None:
        lines.extend(
            [
                "",
                f"## {title}",
                "",
                "| server | deliveries/s | deliveries/server-CPU-s | server CPU (cores) "
                "| events/frame | server µs/event | p50 ms | p90 ms | p99 ms | max ms | lost "
                "| loadgen CPU (cores) | other load (cores) | server RSS MB | negotiated |",
                "|---" * 15 + "|",
            ]
        )
        for name, r in data.items():
            if "error" in r:
                lines.append(f"| {name} | error: {r['error'][:80]} |" + " |" * 13)
                continue
            la = r["latency_ms"]
            negotiated = ", ".join(f"{k} {v}" for k, v in (r.get("negotiated") or {}).items())
            if r.get("direct_frames_share") is not None:
                negotiated += f"; {r['direct_frames_share']:.0%} of frames direct"
            lines.append(
                f"| {name} | {_f(r['deliveries_per_s'])} | {_f(r['deliveries_per_cpu_s'])} "
                f"| {_f(r['server_cpu_util'], 2)} | {_f(r['events_per_frame'], 2)} "
                f"| {_f(r.get('server_us_per_event'))} "
                f"| {_f(la['p50'], 2)} | {_f(la['p90'], 2)} | {_f(la['p99'], 2)} "
                f"| {_f(la['max'], 2)} | {_f(r['lost'])} | {_f(r['loadgen_cpu_util'], 2)} "
                f"| {_f(r.get('other_cpu_util'), 2)} | {_f(r['server_rss_mb'])} "
                f"| {negotiated or '–'} |"
            )

    cfg = m["config"]
    if "s1" in res:
        fan_table(
            f"s1 latency: {cfg['s1_clients']} clients, one sender at {cfg['s1_rate']} msg/s",
            res["s1"],
        )
    if "s2" in res:
        fan_table(
            f"s2 fan-out: {cfg['s2_clients']} clients, one sender saturating "
            f"(window {cfg['s2_window']} messages)",
            res["s2"],
        )
    if "s2u" in res:
        fan_table(
            f"s2u fan-out, one user per connection: {cfg['s2_clients']} clients and users",
            res["s2u"],
        )
    for sc, title in (("s3", "s3 capacity: idle connections"),
                      ("s3u", "s3u capacity: idle connections, one user per connection")):
        if sc not in res:
            continue
        lines.extend(
            [
                "",
                f"## {title}",
                "",
                "| server | connections | users | failed | open after 3 s "
                "| time to connect all s | conn/s | RSS before MB | RSS after MB "
                "| KB/connection | negotiated |",
                "|---" * 11 + "|",
            ]
        )
        for name, per in res[sc].items():
            if "error" in per:
                lines.append(f"| {name} | error: {per['error'][:80]} |" + " |" * 9)
                continue
            for r in per.values():
                negotiated = ", ".join(f"{k} {v}" for k, v in (r.get("negotiated") or {}).items())
                lines.append(
                    f"| {name} | {_f(r['connections'])} | {_f(r.get('users'))} | {r['failed']} "
                    f"| {_f(r['still_open_after_3s'])} | {_f(r['connect_all_s'], 2)} "
                    f"| {_f(r['conn_per_s'])} | {_f(r['rss_before_mb'])} "
                    f"| {_f(r['rss_after_mb'])} | {_f(r['kb_per_conn'])} "
                    f"| {negotiated or '–'} |"
                )
    for name4, r4 in res.get("s4", {}).items():
        lines.extend(["", f"## s4 write path ({name4})", ""])
        if "error" in r4:
            lines.append(f"error: {r4['error']}")
        else:
            la = r4["ack_latency_ms"]
            lines.append(
                f"{r4['senders']} senders, each its own user and private room, "
                f"{r4['window_per_sender']} unacknowledged sends each: "
                f"**{_f(r4['acked_per_s'])} acked msgs/s**, ack latency p50 "
                f"{_f(la['p50'], 2)} ms / p99 {_f(la['p99'], 2)} ms, server CPU "
                f"{_f(r4['server_cpu_util'], 2)} cores, loadgen "
                f"{_f(r4['loadgen_cpu_util'], 2)} cores, other load "
                f"{_f(r4.get('other_cpu_util'), 2)} cores; {_f(r4['acks_total'])} acks vs "
                f"{_f(r4['rows_in_db'])} rows in the DB after stop."
            )
    r5 = res.get("s5", {}).get("chatapp")
    if r5:
        lines.extend(["", "## s5 history: GET a page of 50 (chatapp)", ""])
        if "error" in r5:
            lines.append(f"error: {r5['error']}")
        else:
            lines.extend(
                [
                    "| room | messages | latest p50 ms | latest p99 ms | deep p50 ms "
                    "| deep p99 ms | room list p50 ms | room list p99 ms | unread shown |",
                    "|---" * 9 + "|",
                ]
            )
            for slug, r in r5.items():
                if isinstance(r, dict):
                    rooms = r.get("rooms_ms") or {}
                    lines.append(
                        f"| {slug} | {_f(r['messages'])} | {_f(r['latest_ms']['p50'], 2)} "
                        f"| {_f(r['latest_ms']['p99'], 2)} | {_f(r['deep_ms']['p50'], 2)} "
                        f"| {_f(r['deep_ms']['p99'], 2)} | {_f(rooms.get('p50'), 2)} "
                        f"| {_f(rooms.get('p99'), 2)} | {_f(r.get('unread'))} |"
                    )
            lines.append(f"\nSeeding took {r5['seed_s']} s (sqlite3, server stopped).")
    for name6, r6 in res.get("s6", {}).items():
        lines.extend(["", f"## s6 login burst ({name6})", ""])
        if "error" in r6:
            lines.append(f"error: {r6['error']}")
        else:
            lines.append(
                f"{r6['bursts']} bursts of {r6['logins_per_burst']} concurrent logins "
                f"(wall {r6['burst_wall_s']} s; login p50 {_f(r6['login_ms']['p50'], 1)} ms"
                f", p99 {_f(r6['login_ms']['p99'], 1)} ms). Websocket ping RTT idle p99 "
                f"{_f(r6['ping_idle_ms']['p99'], 2)} ms; during bursts p50 "
                f"{_f(r6['ping_burst_ms']['p50'], 2)} ms, **p99 "
                f"{_f(r6['ping_burst_ms']['p99'], 2)} ms**, max "
                f"{_f(r6['ping_burst_ms']['max'], 2)} ms "
                f"({r6['ping_burst_ms']['n']} pings)."
            )
    for name7, r7 in res.get("s7", {}).items():
        if "error" in r7:
            lines.extend(["", f"## s7 scale-out ({name7})", "", f"error: {r7['error']}"])
        else:
            fan_table(
                f"s7 scale-out: s2 on {name7}, memory broker vs Redis "
                "(server CPU = hypercorn tree; Redis CPU below)",
                r7,
            )
            for k, r in r7.items():
                if "redis_cpu_s" in r:
                    lines.append(
                        f"- {k}: Redis {r['redis_cpu_s']} CPU-s in the window; "
                        f"deliveries per CPU-s including Redis "
                        f"{_f(r['deliveries_per_cpu_s_incl_redis'])}"
                    )
    if res.get("notes"):
        lines.extend(["", "## Notes", ""] + [f"- {n}" for n in res["notes"]])
    lines.extend(["", "![plot](plot.png)", ""])
    path.write_text("\n".join(lines))


def write_plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    colors = {
        "chatapp": "#2a7ae2",
        "websockets": "#6c6c6c",
        "flask-socketio": "#d9822b",
        "node-ws": "#3c9a3c",
        "quart-naive": "#b04040",
    }

    def ok(d):
        return {k: v for k, v in (d or {}).items() if isinstance(v, dict) and "error" not in v}

    def short(names):  # variant labels on two lines
        return [n.replace(" [", "\n[").replace("chromium clients", "chromium")
                .replace("compression on", "deflate") for n in names]

    ax = axes[0][0]
    d = ok(res.get("s1"))
    if d:
        names = list(d)
        x = range(len(names))
        ax.bar(
            [i - 0.2 for i in x],
            [d[n]["latency_ms"]["p50"] or 0 for n in names],
            0.4,
            label="p50",
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
            alpha=0.5,
        )
        ax.bar(
            [i + 0.2 for i in x],
            [d[n]["latency_ms"]["p99"] or 0 for n in names],
            0.4,
            label="p99",
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
        )
        ax.set_xticks(list(x), short(names), rotation=15)
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.legend()
    ax.set_title("s1 end-to-end latency (light p50, dark p99; log scale)")

    ax = axes[0][1]
    d = ok(res.get("s2"))
    if d:
        names = list(d)
        x = range(len(names))
        ax.bar(
            [i - 0.2 for i in x],
            [d[n]["deliveries_per_s"] for n in names],
            0.4,
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
            alpha=0.5,
            label="deliveries/s",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [d[n]["deliveries_per_cpu_s"] or 0 for n in names],
            0.4,
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
            label="per server-CPU-s",
        )
        ax.set_xticks(list(x), short(names), rotation=15)
        ax.legend()
    ax.set_title("s2 fan-out (light: deliveries/s, dark: per server-CPU-second)")

    ax = axes[1][0]
    d = ok(res.get("s3"))
    if d:
        names = list(d)
        sizes = sorted({int(k) for v in d.values() for k in v})
        w = 0.8 / max(1, len(sizes))
        for j, n in enumerate(sizes):
            ax.bar(
                [i + (j - (len(sizes) - 1) / 2) * w for i in range(len(names))],
                [d[t].get(str(n), {}).get("kb_per_conn", 0) for t in names],
                w,
                label=f"{n:,} conns",
                alpha=0.5 + 0.5 * j / max(1, len(sizes) - 1),
            )
        ax.axhline(25, color="red", ls="--", lw=1, label="target 25 KB")
        ax.set_xticks(range(len(names)), short(names), rotation=15)
        ax.set_ylabel("KB per idle connection")
        ax.legend()
    ax.set_title("s3 memory per idle connection")

    ax = axes[1][1]
    d = ok(next(iter((res.get("s7") or {}).values()), None))
    if d:
        names = list(d)
        x = range(len(names))
        ax.bar(
            [i - 0.2 for i in x],
            [d[n]["deliveries_per_s"] for n in names],
            0.4,
            alpha=0.5,
            color="#2a7ae2",
            label="deliveries/s",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [d[n]["deliveries_per_cpu_s"] or 0 for n in names],
            0.4,
            color="#2a7ae2",
            label="per server-CPU-s",
        )
        ax.set_xticks(list(x), names)
        ax.legend()
    ax.set_title("s7 chatapp scale-out (memory vs Redis broker)")
    fig.suptitle(
        f"chatapp benchmarks — {res['meta']['machine']['cores']} cores, "
        f"{'quick' if res['meta']['quick'] else 'full'} run"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------- main
def ensure_node(notes: list[str]) -> bool:
    if not shutil.which("node"):
        notes.append("node-ws skipped: no `node` on PATH")
        return False
    if not (NODE_DIR / "node_modules" / "ws").exists():
        npm = shutil.which("npm")
        if not npm:
            notes.append("node-ws skipped: no npm to install `ws`")
            return False
        log("npm install (bench/peers/node)")
        r = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            notes.append(f"node-ws skipped: npm install failed: {r.stderr[-300:]}")
            return False
    return True


async def amain(args) -> int:
    cfg = Config(args.quick, args.redis_url)
    cfg.client_kinds = args.clients.split(",")
    cfg.compressions = args.ws_compression.split(",")
    cfg.worker_class = args.worker_class
    lg.raise_nofile(65536)
    only = args.only.split(",") if args.only else ALL_SCENARIOS
    names = args.targets.split(",") if args.targets else ALL_TARGETS
    notes: list[str] = []
    if "node-ws" in names and not ensure_node(notes):
        names.remove("node-ws")
    if "chatapp" in names and not (REPO / "chatapp" / "asgi.py").exists():
        notes.append("chatapp skipped: chatapp/asgi.py not found")
        names.remove("chatapp")
    targets = {n: TARGET_CLASSES[n](cfg) for n in names}
    t_start = time.perf_counter()
    res: dict = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m bench.run"] + sys.argv[1:]),
            "quick": args.quick,
            "machine": machine(),
            "config": {k: v for k, v in vars(cfg).items()},
        },
        "notes": notes,
    }
    out = Path(args.output)
    os.makedirs(out, exist_ok=True)

    async def guarded(label: str, coro, limit: float):
        log(f"{label} ...")
        try:
            r = await asyncio.wait_for(coro, limit)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            traceback.print_exc()
            r = {"error": f"{type(e).__name__}: {e}"}
        log(f"{label}: {json.dumps(r)[:400]}")
        return r

    def variants(t: Target, sc: str):
        """Each client kind in turn; chatapp with chromium clients once per compression
        setting. s5 (HTTP only) runs once."""
        for kind in cfg.client_kinds if sc != "s5" else ["plain"]:
            lg.OFFER_DEFLATE = kind == "chromium"
            t.clients = kind
            settings = cfg.compressions if kind == "chromium" else ["off"]
            for setting in settings if isinstance(t, Chatapp) else ["off"]:
                if isinstance(t, Chatapp):
                    t.compression = setting
                yield t.label
        lg.OFFER_DEFLATE, t.clients = False, "plain"
        if isinstance(t, Chatapp):
            t.compression = "off"

    fanouts = {"s1": s1, "s2": s2, "s3": s3}
    chat_only = {"s2u": s2u, "s3u": s3u, "s4": s4, "s5": s5, "s6": s6}
    for sc in only:
        if sc in fanouts:
            res[sc] = {}
            for t in targets.values():
                for label in variants(t, sc):
                    res[sc][label] = await guarded(f"{sc} {label}", fanouts[sc](t, cfg), 300)
                    if isinstance(t, Chatapp):
                        t.cleanup()
        elif sc in chat_only and "chatapp" in targets:
            t = targets["chatapp"]
            res[sc] = {}
            limit = 900 if sc == "s3u" else 300  # seeding 10,000 users comes first
            for label in variants(t, sc):
                res[sc][label] = await guarded(f"{sc} {label}", chat_only[sc](t, cfg), limit)
                t.cleanup()
        elif sc == "s8":  # storage-level: no server, every engine
            engines = ["sqlite", "postgres"]
            res[sc] = {"chatapp": await guarded(
                "s8 search", search_bench.run(cfg.s8_messages, engines), 3600)}
        elif sc == "s7" and "chatapp" in targets:
            t = targets["chatapp"]
            res[sc] = {}
            for label in variants(t, sc):
                prior = res.get("s2", {}).get(label)
                prior = prior if prior and "error" not in prior else None
                res[sc][label] = await guarded(f"s7 {label}", s7(t, cfg, prior), 400)
                t.cleanup()
    res["meta"]["duration_s"] = round(time.perf_counter() - t_start, 1)
    res["targets"] = [list(r) for r in targets_table(res)]
    (out / "results.json").write_text(json.dumps(res, indent=2))
    write_markdown(res, out / "results.md")
    try:
        write_plot(res, out / "plot.png")
    except Exception as e:  # noqa: BLE001
        log(f"plot failed: {e}")
    log(f"wrote {out / 'results.md'} in {res['meta']['duration_s']} s")
    print((out / "results.md").read_text())
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description="chatapp benchmarks vs peers (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="small counts, ~4 minutes")
    p.add_argument("--only", help="comma-separated scenarios, e.g. s1,s2")
    p.add_argument("--targets", help=f"comma-separated, from {','.join(ALL_TARGETS)}")
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument(
        "--output", default=str(RESULTS),
        help="where results.md, results.json and plot.png go (default bench/results; "
        "a partial run elsewhere keeps the full run's figures)",
    )
    p.add_argument(
        "--clients", default="plain,chromium",
        help="client kinds, comma-separated: plain (no extension offered) and/or chromium "
        "(offers permessage-deflate as Chromium does); every scenario but s5 runs per kind",
    )
    p.add_argument(
        "--ws-compression", default="off,on",
        help="chatapp's CHATAPP_WS_COMPRESSION settings to run with chromium clients",
    )
    p.add_argument(
        "--worker-class", default="asyncio", choices=["asyncio", "uvloop"],
        help="chatapp's Hypercorn worker class (uvloop: pip install uvloop)",
    )
    args = p.parse_args()
    for name, given, allowed in (("client kind", args.clients, CLIENT_KINDS),
                                 ("compression setting", args.ws_compression, ["off", "on"])):
        bad = set(given.split(",")) - set(allowed)
        if bad or not given:
            p.error(f"unknown {name}(s): {','.join(sorted(bad)) or '(none)'}")
    if args.only:
        bad = set(args.only.split(",")) - set(ALL_SCENARIOS)
        if bad:
            p.error(f"unknown scenario(s): {','.join(sorted(bad))}")
    if args.targets:
        bad = set(args.targets.split(",")) - set(ALL_TARGETS)
        if bad:
            p.error(f"unknown target(s): {','.join(sorted(bad))}")
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
