"""The scenarios s1..s7, each ``async (target, cfg) -> dict`` of figures (what each
measures: bench/README.md). s8 (search) lives in bench/search.py.

To add a scenario: write it (a module of its own is fine), then add its name to
``ALL_SCENARIOS`` and the function to ``FANOUTS`` (run against every target) or
``CHAT_ONLY`` (chatapp only); bench/run.py runs whatever these name."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from pathlib import Path

import aiohttp

from bench import loadgen as lg
from bench import procs
from bench.chatapp_driver import User, seed_history
from bench.config import RAW, Config, log
from bench.targets import Chatapp, Target


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
        a, db_a = win.snap(), target.db_cpu()
        await asyncio.sleep(cfg.s4_duration)
        b, db_b = win.snap(), target.db_cpu()
        stats.lat_to = time.monotonic_ns()
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
        d = Window.diff(a, b)
        # durability cross-check: rows in the DB == acks received
        lg.close_all(conns)
        await target.close_users()
        target.stop()
        rows = await target.count_messages()
        # A database server's own CPU (PostgreSQL's backends; SQLite runs in chatapp).
        db = None if db_a is None or db_b is None else db_b - db_a
        return {
            "senders": len(conns),
            "window_per_sender": 4,
            "acked_per_s": round(d["acks"] / d["t"]),
            "sent_per_s": round(d["sent"] / d["t"]),
            "server_cpu_util": round(d["srv"] / d["t"], 2),
            "db_cpu_util": None if db is None else round(db / d["t"], 2),
            "acked_per_server_cpu_s": round(d["acks"] / max(1e-9, d["srv"] + (db or 0.0))),
            "loadgen_cpu_util": round(d["lg"] / d["t"], 2),
            "other_cpu_util": round(
                max(0.0, d["busy"] - d["srv"] - (db or 0.0) - d["lg"]) / d["t"], 2),
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
    ranges = await seed_history(Path(target.db_path), cfg.s5_sizes, author, readers)
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


ALL_SCENARIOS = ["s1", "s2", "s2u", "s3", "s3u", "s4", "s5", "s6", "s7", "s8"]
# Run against every target, once per variant.
FANOUTS = {"s1": s1, "s2": s2, "s3": s3}
# chatapp only, once per variant.
CHAT_ONLY = {"s2u": s2u, "s3u": s3u, "s4": s4, "s5": s5, "s6": s6}
# Time limit of one variant's run in seconds (default 300).
LIMITS = {"s3u": 900}  # seeding 10,000 users comes first
