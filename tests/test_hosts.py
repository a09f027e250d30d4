"""CHATAPP_ALLOWED_HOSTS (SPEC §2): any other Host gets 400 and never reaches the app."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from quart.testing.connections import WebsocketResponseError

from chatapp import create_app
from chatapp.config import ConfigError
from chatapp.proxy import parse_hosts, split_host

from .conftest import AuthActions, server_env
from .conftest import test_config as make_config
from .hashing import cheap_passwords
from .servers import Server

EVIL = {"Host": "evil.test"}


async def body(response: Any) -> str:
    return str(await response.get_data(as_text=True))


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1:5000", "[::1]:80",
                                  "localhost."])
async def test_the_default_hosts_are_served_on_any_port(client: Any, host: str) -> None:
    response = await client.get("/login", headers={"Host": host})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["evil.test", "localhost.evil.test", "127.0.0.2", "[::2]",
                                  "evil.test:80", "local host", "localhost:99999999", "a@localhost",
                                  "", "\u0131ocalhost"])
async def test_any_other_host_gets_400_on_pages(client: Any, host: str) -> None:
    response = await client.get("/login", headers={"Host": host})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "host" in await body(response)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_api_static_and_healthz_refuse_a_foreign_host_with_json(client: Any) -> None:
    for path in ("/api/v1/me", "/healthz"):
        response = await client.get(path, headers=EVIL)
        assert response.status_code == 400
        assert json.loads(await body(response))["error"]["code"] == "bad_request"
    static = await client.get("/static/app.css", headers=EVIL)
    assert static.status_code == 400
    assert "Set-Cookie" not in static.headers


async def test_a_rebound_name_cannot_register_read_rooms_or_open_the_websocket(
    app: Any, auth: AuthActions
) -> None:
    """DNS rebinding: evil.test resolves to this server; the browser sends its cookies."""
    cheap_passwords(app)
    client, token = await auth.user("alice")
    rooms = await client.get("/api/v1/rooms", headers=EVIL)
    assert rooms.status_code == 400 and "general" not in await body(rooms)
    mallory = app.test_client()
    login_page = await mallory.get("/register")  # a real token, for a fair try
    form_token = (await body(login_page)).split('name="csrf_token" value="')[1].split('"')[0]
    registered = await mallory.post("/register", headers=EVIL, form={
        "username": "mallory", "password": "correct horse battery", "csrf_token": form_token})
    assert registered.status_code == 400
    assert await app.extensions["chatapp"].storage.user_by_name("mallory") is None
    posted = await client.post("/api/v1/rooms/general/messages", json={"body": "hi"},
                               headers={**EVIL, "X-CSRF-Token": token})
    assert posted.status_code == 400
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket("/ws", headers={**EVIL, "Origin": "http://evil.test"}) as ws:
            await ws.receive()
    assert refused.value.response.status_code == 400


async def test_wildcards_and_ports(tmp_path: Path) -> None:
    app = create_app(make_config(
        tmp_path, CHATAPP_ALLOWED_HOSTS="*.example.com, chat.example.org:8443, [2001:db8::1]"))
    async with app.test_app():
        client = app.test_client()
        for host, status in [
            ("a.example.com", 200), ("b.a.example.com:1234", 200), ("example.com", 400),
            ("evilexample.com", 400), ("chat.example.org:8443", 200), ("chat.example.org", 400),
            ("chat.example.org:80", 400), ("[2001:db8::1]:443", 200), ("localhost", 400),
        ]:
            response = await client.get("/login", headers={"Host": host})
            assert response.status_code == status, host


@pytest.mark.parametrize("value", ["*", "exa mple.com", "http://chat.example.com", "[nope]",
                                   " , ", "chat.example.com:port", "a/b"])
def test_bad_allowed_hosts_refuse_to_start(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="CHATAPP_ALLOWED_HOSTS"):
        create_app(make_config(tmp_path, CHATAPP_ALLOWED_HOSTS=value))


def test_production_requires_allowed_hosts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CHATAPP_ALLOWED_HOSTS is required"):
        create_app(make_config(tmp_path, CHATAPP_ENV="production"))
    app = create_app(make_config(tmp_path, CHATAPP_ENV="production",
                                 CHATAPP_ALLOWED_HOSTS="chat.example.com"))
    assert app.config["CHATAPP_ALLOWED_HOSTS"] == "chat.example.com"


def test_split_host() -> None:
    assert split_host("Chat.Example.COM.:8443") == ("chat.example.com", "8443")
    assert split_host("[::1]") == ("[::1]", None)
    assert split_host("x\r\ny") is None
    assert split_host("[::1") is None and split_host("[nope]") is None
    assert [p.host for p in parse_hosts("a.test, *.b.test")] == ["a.test", "b.test"]


# a real server: Hypercorn hands the Host header over as sent


def raw_get(port: int, path: str, host: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


async def test_a_real_server_refuses_a_foreign_host_on_http_and_websocket(tmp_path: Path) -> None:
    server = Server(tmp_path, server_env(tmp_path)).start()
    try:
        assert raw_get(server.port, "/login", f"127.0.0.1:{server.port}")[0] == 200
        assert raw_get(server.port, "/login", "evil.test")[0] == 400
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url, additional_headers=EVIL):
                pass
        assert refused.value.response.status_code == 400
        assert server.logged(r'"GET /login HTTP/1\.1" 400')
    finally:
        server.kill()
