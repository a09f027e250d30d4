"""The servers under test: chatapp and the peers (bench/README.md "Targets under test").
A ``Target`` starts its server on a free port, opens websocket connections to it
through the load generator, and stops it; ``Chatapp`` also registers or seeds users
and reads its /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile

import aiohttp

from bench import loadgen as lg
from bench import procs
from bench.chatapp_driver import User, register_users, seed_sessions
from bench.config import HYPERCORN, NODE_DIR, PY, RAW, REPO, Config, log

ALL_TARGETS = ["chatapp", "websockets", "flask-socketio", "node-ws", "quart-naive"]


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

    async def count_messages(self) -> int:
        """Rows in ``messages`` (s4 checks them against the acks), server stopped."""
        import sqlite3

        con = sqlite3.connect(self.db_path)
        try:
            return con.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            con.close()

    def db_cpu(self) -> float | None:
        """CPU seconds of a database server apart from chatapp (None: SQLite, inside)."""
        return None

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
