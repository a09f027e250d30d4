"""Real Hypercorn processes for tests that need a real server and real sockets."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HYPERCORN = [sys.executable, "-m", "hypercorn"]
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')


def events_of(frame: str | bytes) -> list[dict[str, Any]]:
    """The events of one server frame: a single event or a JSON array of them."""
    data = json.loads(frame)
    return data if isinstance(data, list) else [data]


async def close_code(ws: Any, timeout: float = 10) -> int | None:
    """Read a ``websockets`` connection until the server closes; the code it sent."""
    import websockets

    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One ``hypercorn --config hypercorn.toml`` process on a free port."""

    data_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    config_file: Path = ROOT / "hypercorn.toml"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CHATAPP_SECRET_KEY": "real-server-test-secret-" + "k" * 32,
                "CHATAPP_DATABASE_URL": f"sqlite:///{self.data_dir / 'chatapp.db'}",
                "CHATAPP_INSTANCE_PATH": str(self.data_dir / "instance"),
                "CHATAPP_PRESENCE_GRACE_SECONDS": "0",
                "CHATAPP_API_RATE": "100000/1",
            }
        )
        env.update(self.env_overrides)
        return env

    def with_workers(self, workers: int) -> Server:
        """Use hypercorn.toml with another ``workers`` setting."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        text = (ROOT / "hypercorn.toml").read_text()
        self.config_file = self.data_dir / f"hypercorn-{workers}.toml"
        self.config_file.write_text(re.sub(r"(?m)^workers = \d+", f"workers = {workers}", text))
        return self

    def start(self, timeout: float = 20.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [*HYPERCORN, "--config", str(self.config_file), "--bind",
             f"127.0.0.1:{self.port}", "chatapp.asgi:app"],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not answer /healthz in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def logged(self, pattern: str, timeout: float = 10.0) -> bool:
        """Whether a line matching ``pattern`` shows up in the log within ``timeout``
        (an access line is written just after its response has been sent)."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def terminate(self, timeout: float = 20.0) -> float:
        """SIGTERM and wait; return how long the exit took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the whole process group of hypercorn (parent and workers)."""
        if self.process is not None and self.process.poll() is None:
            for pid in _children(self.process.pid):
                with _ignore_missing():
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(10)

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return _children(self.process.pid)


class _ignore_missing:  # noqa: N801 - used like contextlib.suppress
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> bool:
        return kind is ProcessLookupError


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Browser:
    """A cookie-keeping HTTP client over the real network (stdlib only)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(
        self, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
        body: Any = None, method: str | None = None,
    ) -> tuple[int, dict[str, str], str]:
        data = None
        all_headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
        elif body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=all_headers,
                                     method=method)
        try:
            with self.opener.open(req, timeout=10) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def csrf(self, path: str) -> str:
        _, _, html = self.request(path)
        match = CSRF_INPUT.search(html) or CSRF_META.search(html)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def register(self, username: str, password: str = "correct horse battery") -> int:
        token = self.csrf("/register")
        status, _, _ = self.request(
            "/register", form={"username": username, "password": password, "csrf_token": token}
        )
        return status

    def login(self, username: str, password: str = "correct horse battery") -> int:
        token = self.csrf("/login")
        status, _, _ = self.request(
            "/login", form={"username": username, "password": password, "csrf_token": token}
        )
        return status

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def ws_headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie_header, "Origin": self.base}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None

    def http_error_303(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        return fp

    http_error_301 = http_error_302 = http_error_307 = http_error_303
