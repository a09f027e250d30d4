"""CHATAPP_TRUSTED_PROXIES (SPEC §2, §8): the real client address behind proxies.

The first tests run the app under Quart's test client; the last ones put Debian's
nginx, configured with the snippet of docs/operations.md, in front of a real Hypercorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from chatapp import create_app
from chatapp.proxy import forwarded

from .conftest import AuthActions, need_service, server_env
from .conftest import test_config as make_config
from .hashing import cheap_passwords
from .servers import ROOT, Browser, Server, events_of, free_port

NGINX = Path("/usr/sbin/nginx")
# The reverse-proxy configurations people copy; these tests run them verbatim.
DEPLOYMENT_DOC = ROOT / "docs" / "operations.md"
WRONG = "not the password"


# forwarded(): which header value counts


def scope(**headers: str) -> dict[str, Any]:
    return {
        "type": "http", "scheme": "http", "client": ("10.9.9.9", 4444),
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_one_proxy_takes_the_rightmost_forwarded_address() -> None:
    fixed = forwarded(scope(x_forwarded_for="6.6.6.6, 1.2.3.4", x_forwarded_proto="https"), 1)
    assert fixed["client"] == ("1.2.3.4", 0)
    assert fixed["scheme"] == "https"


def test_n_proxies_take_the_nth_from_the_right_across_repeated_headers() -> None:
    original = scope(x_forwarded_for="6.6.6.6, 1.2.3.4")
    original["headers"].append((b"x-forwarded-for", b"10.0.0.2"))
    assert forwarded(original, 2)["client"] == ("1.2.3.4", 0)
    assert forwarded(original, 3)["client"] == ("6.6.6.6", 0)
    assert original["client"] == ("10.9.9.9", 4444)  # Hypercorn's scope is left alone


def test_fewer_addresses_than_proxies_or_garbage_keep_the_peer() -> None:
    assert forwarded(scope(x_forwarded_for="1.2.3.4"), 2)["client"] == ("10.9.9.9", 4444)
    assert forwarded(scope(x_forwarded_for="evil\nline"), 1)["client"] == ("10.9.9.9", 4444)
    assert forwarded(scope(x_forwarded_for="unknown"), 1)["client"] == ("10.9.9.9", 4444)
    assert forwarded(scope(x_forwarded_proto="gopher"), 1)["scheme"] == "http"


def test_addresses_with_ports_and_brackets_are_normalised() -> None:
    assert forwarded(scope(x_forwarded_for="1.2.3.4:5678"), 1)["client"] == ("1.2.3.4", 0)
    assert forwarded(scope(x_forwarded_for="[2001:db8::1]:443"), 1)["client"] == ("2001:db8::1", 0)
    assert forwarded(scope(x_forwarded_for="2001:DB8::1"), 1)["client"] == ("2001:db8::1", 0)


def test_a_websocket_behind_tls_becomes_wss() -> None:
    ws = scope(x_forwarded_proto="https") | {"type": "websocket", "scheme": "ws"}
    assert forwarded(ws, 1)["scheme"] == "wss"


# the login throttle sees the real address (app level)


async def failed_logins(app: Any, address: str, count: int) -> int:
    """``count`` failed logins for different names from ``address``; the last status."""
    auth = AuthActions(app)
    client = app.test_client()
    token = await auth.csrf(client)
    status = 0
    for n in range(count):
        response = await client.post(
            "/login", headers={"X-Forwarded-For": address},
            form={"username": f"nobody{n}", "password": WRONG, "csrf_token": token},
        )
        status = response.status_code
    return status


async def login_from(app: Any, address: str) -> int:
    auth = AuthActions(app)
    client = app.test_client()
    token = await auth.csrf(client)
    response = await client.post(
        "/login", headers={"X-Forwarded-For": address},
        form={"username": "carol", "password": "correct horse battery", "csrf_token": token},
    )
    return response.status_code


@pytest.mark.parametrize("proxies, carol_status", [("0", 429), ("1", 303)])
async def test_twenty_failures_lock_out_one_address_only_with_trusted_proxies(
    tmp_path: Path, proxies: str, carol_status: int
) -> None:
    # With 0 every request seems to come from the proxy: the bug this setting fixes.
    app = create_app(make_config(tmp_path, CHATAPP_TRUSTED_PROXIES=proxies))
    async with app.test_app():
        cheap_passwords(app)
        assert (await AuthActions(app).register(app.test_client(), "carol")).status_code == 303
        assert await failed_logins(app, "203.0.113.66", 20) == 401
        assert await failed_logins(app, "203.0.113.66", 1) == 429
        assert await login_from(app, "198.51.100.20") == carol_status


# nginx in front of a real server


def nginx_snippet() -> str:
    """The nginx block of docs/operations.md, verbatim."""
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(r"<!-- nginx-snippet -->\s*```nginx\n(.*?)```", text, re.S)
    assert match, "docs/operations.md has no nginx snippet after <!-- nginx-snippet -->"
    return match.group(1)


def nginx_config(directory: Path, listen: int, upstream: int) -> str:
    """The documented snippet with a local listen and upstream, wrapped in a whole config.

    The wrapper also lets a test client name its own address (``X-Test-Client``,
    nginx's realip module), as if it came from elsewhere: every socket here is on
    127.0.0.1, yet the throttle is per client address.
    """
    snippet = nginx_snippet()
    snippet, upstreams = re.subn(r"upstream chatapp \{[^}]*\}",
                                 f"upstream chatapp {{ server 127.0.0.1:{upstream}; }}", snippet)
    snippet, listens = re.subn(r"listen [^;]*;", f"listen 127.0.0.1:{listen};", snippet)
    snippet = re.sub(r"\s*ssl_certificate[^;]*;", "", snippet)
    assert upstreams == 1 and listens == 1, snippet
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {directory / 'nginx.pid'};
error_log {directory / 'error.log'} notice;
events {{ worker_connections 256; }}
http {{
    access_log {directory / 'access.log'};
{temp}
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Test-Client;
{snippet}
}}
"""


class ProxyProcess:
    """A reverse proxy process on a free 127.0.0.1 port, in front of ``upstream``."""

    name = "proxy"

    def __init__(self, directory: Path, upstream: int) -> None:
        self.directory = directory
        self.upstream = upstream
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "error.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 20.0) -> ProxyProcess:
        with open(self.directory / "output.log", "ab") as output:
            self.process = subprocess.Popen(self.command(), stdout=output,
                                            stderr=subprocess.STDOUT, env=self.environment())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.errors()}")
            status = Browser(self.base).request("/healthz")[0] if self.listening() else 0
            if status == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not proxy /healthz in {timeout}s:\n{self.errors()}")

    def listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def errors(self) -> str:
        return "".join(path.read_text(errors="replace")
                       for path in (self.log_path, self.directory / "output.log")
                       if path.exists())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Nginx(ProxyProcess):
    name = "nginx"

    def command(self) -> list[str]:
        config = self.directory / "nginx.conf"
        config.write_text(nginx_config(self.directory, self.port, self.upstream))
        return [str(NGINX), "-p", str(self.directory), "-c", str(config), "-e", str(self.log_path)]


class ClientAt(Browser):
    """A browser that nginx sees at ``address``."""

    def __init__(self, base: str, address: str) -> None:
        super().__init__(base)
        self.address = address

    def request(self, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, body: Any = None,
                method: str | None = None) -> tuple[int, dict[str, str], str]:
        headers = {"X-Test-Client": self.address, **(headers or {})}
        return super().request(path, form, headers, body, method)

    def ws_headers(self) -> dict[str, str]:
        return {**super().ws_headers(), "X-Test-Client": self.address}


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Nginx]]:
    """nginx (the documented config) in front of Hypercorn with CHATAPP_TRUSTED_PROXIES=1."""
    if not NGINX.exists():
        need_service("nginx", f"{NGINX} is missing (apt-get install nginx-light)")
    tmp = tmp_path_factory.mktemp("proxied")
    server = Server(tmp / "server", server_env(tmp / "server", CHATAPP_TRUSTED_PROXIES="1"))
    server.start()
    nginx = Nginx(tmp / "nginx", server.port)
    try:
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.kill()


def test_pages_and_login_through_nginx(proxied: tuple[Server, Nginx]) -> None:
    server, nginx = proxied
    dave = ClientAt(nginx.base, "198.51.100.4")
    assert dave.register("dave") == 303
    status, _, html = dave.request("/")
    assert status == 200 and 'name="csrf-token"' in html
    assert dave.request("/static/app.css")[0] == 200
    dave.jar.clear()
    assert dave.login("dave") == 303
    assert dave.request("/api/v1/me")[0] == 200
    assert dave.request("/metrics")[0] == 403  # the snippet keeps /metrics private
    # The access log shows dave's address, not nginx's.
    assert server.logged(r'198\.51\.100\.4 "POST /login HTTP/1\.\d" 303')


async def chat_both_ways(proxy: ProxyProcess, first: Browser, second: Browser) -> None:
    """Two users on websockets through ``proxy``, a message each way."""
    ws_url = f"ws://127.0.0.1:{proxy.port}/ws"
    async with websockets.connect(ws_url, additional_headers=first.ws_headers()) as a, \
            websockets.connect(ws_url, additional_headers=second.ws_headers()) as b:
        await until(a, "hello")
        await until(b, "hello")
        for sender, receiver, body in ((a, b, "there"), (b, a, "and back")):
            await sender.send(json.dumps(
                {"type": "send", "room": "general", "body": body, "nonce": body}))
            event = await until(receiver, "message", lambda e, b=body: e["message"]["body"] == b)
            assert event["room"] == "general"


async def test_websocket_through_nginx_both_ways(proxied: tuple[Server, Nginx]) -> None:
    server, nginx = proxied
    erin, frank = ClientAt(nginx.base, "198.51.100.5"), ClientAt(nginx.base, "198.51.100.6")
    assert erin.register("erin") == 303 and frank.register("frank") == 303
    await chat_both_ways(nginx, erin, frank)
    assert server.logged(r"websocket open user=erin conn=\S+ addr=198\.51\.100\.5")
    assert server.logged(r"websocket closed user=frank conn=\S+ addr=198\.51\.100\.6")
    assert server.logged(r'198\.51\.100\.5 "GET /ws WS/1\.1" 101')


async def until(ws: Any, kind: str, accept: Any = None, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        for event in events_of(frame):
            if event.get("type") == kind and (accept is None or accept(event)):
                return event


def test_failed_logins_from_one_address_do_not_lock_out_another(
    proxied: tuple[Server, Nginx],
) -> None:
    server, nginx = proxied
    assert ClientAt(nginx.base, "198.51.100.7").register("grace") == 303
    mallory = ClientAt(nginx.base, "203.0.113.66")
    statuses = [mallory.login(f"nobody{n}", WRONG) for n in range(20)]
    assert statuses == [401] * 20
    assert mallory.login("grace") == 429  # this address is locked out, even with the password
    # A forged X-Forwarded-For does not help: nginx appends the address it saw.
    form = {"username": "grace", "password": "correct horse battery",
            "csrf_token": mallory.csrf("/login")}
    forged = mallory.request("/login", form=form, headers={"X-Forwarded-For": "192.0.2.1"})
    assert forged[0] == 429
    assert ClientAt(nginx.base, "198.51.100.8").login("grace") == 303
    assert server.logged(r'203\.0\.113\.66 "POST /login HTTP/1\.\d" 429')


# Caddy in front of a real server


CADDY = Path("/usr/bin/caddy")


def caddy_snippet() -> str:
    """The Caddyfile block of docs/operations.md, verbatim."""
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(r"<!-- caddy-snippet -->\s*```caddy\n(.*?)```", text, re.S)
    assert match, "docs/operations.md has no Caddyfile snippet after <!-- caddy-snippet -->"
    return match.group(1)


def caddy_config(directory: Path, listen: int, upstream: int) -> str:
    """The documented site block on a local http:// address bound to 127.0.0.1, no admin API."""
    snippet, sites = re.subn(r"^chat\.example\.com \{",
                             f"http://127.0.0.1:{listen} {{\n\tbind 127.0.0.1", caddy_snippet())
    snippet, upstreams = re.subn(r"reverse_proxy [^\n]*", f"reverse_proxy 127.0.0.1:{upstream}",
                                 snippet)
    assert sites == 1 and upstreams == 1, snippet
    return f"""{{
\tadmin off
\tauto_https off
\tstorage file_system {directory / 'data'}
}}
{snippet}"""


class Caddy(ProxyProcess):
    name = "caddy"

    def command(self) -> list[str]:
        config = self.directory / "Caddyfile"
        config.write_text(caddy_config(self.directory, self.port, self.upstream))
        return [str(CADDY), "run", "--config", str(config), "--adapter", "caddyfile"]

    def environment(self) -> dict[str, str]:
        home = str(self.directory / "home")
        return {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}


@pytest.fixture(scope="module")
def caddied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Caddy]]:
    """Caddy (the documented Caddyfile) in front of Hypercorn with CHATAPP_TRUSTED_PROXIES=1."""
    if not CADDY.exists():
        need_service("caddy", f"{CADDY} is missing (apt-get install caddy)")
    tmp = tmp_path_factory.mktemp("caddied")
    server = Server(tmp / "server", server_env(tmp / "server", CHATAPP_TRUSTED_PROXIES="1"))
    server.start()
    caddy = Caddy(tmp / "caddy", server.port)
    try:
        caddy.start()
        yield server, caddy
    finally:
        caddy.stop()
        server.kill()


async def test_pages_login_and_websocket_through_caddy(caddied: tuple[Server, Caddy]) -> None:
    server, caddy = caddied
    ivy, jon = Browser(caddy.base), Browser(caddy.base)
    assert ivy.register("ivy") == 303 and jon.register("jon") == 303
    assert ivy.request("/")[0] == 200
    ivy.jar.clear()
    assert ivy.login("ivy") == 303
    assert ivy.request("/metrics")[0] == 403
    await chat_both_ways(caddy, ivy, jon)
    assert server.logged(r"websocket open user=ivy conn=\S+ addr=127\.0\.0\.1")


def test_caddy_replaces_a_forged_forwarded_for(caddied: tuple[Server, Caddy]) -> None:
    server, caddy = caddied
    mallory = Browser(caddy.base)
    token = mallory.csrf("/login")
    statuses = [
        mallory.request("/login", headers={"X-Forwarded-For": f"192.0.2.{n}"}, form={
            "username": f"nobody{n}", "password": WRONG, "csrf_token": token})[0]
        for n in range(21)
    ]
    # Each attempt claimed another address; all came from one: the 21st is refused.
    assert statuses == [401] * 20 + [429]
    assert "192.0.2." not in server.output()
    assert server.logged(r'127\.0\.0\.1 "POST /login HTTP/1\.1" 429')



# what the rest of the app sees


@pytest.mark.parametrize("proxies, client, scheme", [("0", None, "http"),
                                                     ("1", "198.51.100.9", "https")])
async def test_the_access_line_shows_what_the_trusted_proxy_saw(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, proxies: str, client: str | None,
    scheme: str,
) -> None:
    app = create_app(make_config(tmp_path, CHATAPP_TRUSTED_PROXIES=proxies))
    async with app.test_app():
        caplog.set_level(logging.INFO, logger="chatapp.access")
        response = await app.test_client().get("/login", headers={
            "X-Forwarded-For": "6.6.6.6, 198.51.100.9", "X-Forwarded-Proto": "https"})
        assert response.status_code == 200
    fields = [r.fields for r in caplog.records if r.name == "chatapp.access"]  # type: ignore[attr-defined]
    assert len(fields) == 1
    assert fields[0]["scheme"] == scheme
    assert fields[0]["client"] != "6.6.6.6"
    if client is not None:
        assert fields[0]["client"] == client
    else:
        assert fields[0]["client"] != "198.51.100.9"
