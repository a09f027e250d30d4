"""Fuzzing the HTTP request layer: random paths, methods, headers and bodies on every
route never get a 500, and no response header carries an unescaped control character.

The routes come from the app's URL map, so a route added later is fuzzed too. Half the
requests come from a logged-in user (with or without the right CSRF token).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from .fuzzing import fuzz, json_values
from .hashing import cheap_passwords
from .servers import Browser, Server
from .wsutil import app_with

CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
PLACEHOLDER = re.compile(r"<(?:[a-z_]+:)?[a-z_]+>")

segments = st.text(max_size=20) | st.sampled_from(
    ["general", "1", "0", "-1", "99999999999999999999999", "%00", "..", "\x00", "\r\n",
     "\u202e", "👍", "a" * 300])
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
bodies = (
    st.none() | st.binary(max_size=200) | json_values.map(lambda v: v)
    | st.sampled_from([b"[" * 3000, b"\xff\xfe{}", b'{"body": ' + b"9" * 5000 + b"}"])
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "X-CSRF-Token", "Authorization", "Accept", "Range",
                     "If-None-Match", "If-Modified-Since", "Origin", "Referer",
                     "X-Forwarded-For"]),
    header_values | st.sampled_from(["application/json", "multipart/form-data",
                                     "application/x-www-form-urlencoded", "Bearer x",
                                     "bytes=5-1", "text/plain; charset=utf-16"]),
    max_size=4,
)


@pytest.fixture
async def env(tmp_path: Any) -> AsyncIterator[dict[str, Any]]:
    """One app for every example: an anonymous client and a logged-in one."""
    async with app_with(tmp_path) as auth:
        cheap_passwords(auth.app)
        user, csrf = await auth.user("alice")
        rules = sorted({rule.rule for rule in auth.app.url_map.iter_rules()})
        yield {"app": auth.app, "anonymous": auth.app.test_client(), "user": user, "csrf": csrf,
               "rules": rules}


@fuzz
@given(data=st.data(), method=methods, body=bodies, extra=headers,
       logged_in=st.booleans(), right_csrf=st.booleans(), query=st.text(max_size=30))
async def test_no_request_gets_a_500(env: dict[str, Any], data: Any, method: str, body: Any,
                                     extra: dict[str, str], logged_in: bool,
                                     right_csrf: bool, query: str) -> None:
    rule = data.draw(st.sampled_from(env["rules"]) | segments.map(lambda s: "/" + s))
    path = PLACEHOLDER.sub(lambda _: quote(data.draw(segments), safe=""), rule)
    client = env["user"] if logged_in else env["anonymous"]
    if logged_in and right_csrf:
        extra = {**extra, "X-CSRF-Token": env["csrf"]}
    kwargs: dict[str, Any] = {"method": method, "headers": extra,
                              "query_string": {"q": query, "before": query}}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    response = await client.open(quote(path, safe="/%"), **kwargs)
    assert response.status_code < 500, (method, path, response.status_code)
    for name, value in response.headers.items():
        assert not CONTROL.search(value) and value.isascii(), (name, value)


# The same against a real Hypercorn: what h11 itself refuses to send (a control or a
# non-Latin-1 character in a header) is a 500 only a real server shows.

raw_segments = st.binary(max_size=12).map(
    lambda b: "".join(f"%{byte:02x}" for byte in b).encode()
) | st.sampled_from([b"general", b"%00", b"%0d%0a", b"%ff", b"..", b"a" * 300, b"%e2%80%ae"])


@pytest.mark.slow
@fuzz
@given(data=st.data(), method=st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE"]),
       logged_in=st.booleans())
def test_real_server_never_500(live: dict[str, Any], data: Any, method: bytes,
                               logged_in: bool) -> None:
    rule = data.draw(st.sampled_from(live["rules"]))
    path = PLACEHOLDER.sub(lambda _: data.draw(raw_segments).decode(), rule)
    cookie = f"Cookie: {live['cookie']}\r\n".encode() if logged_in else b""
    request = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cookie
               + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", live["port"]), timeout=10) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    status = int(lines[0].split()[1])
    assert status < 500, (method, path, lines)
    for line in lines[1:]:
        assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f-\xff]", line), line


@pytest.fixture
def live(server: Server, tmp_path: Any) -> dict[str, Any]:
    browser = Browser(server.base)
    assert browser.register("alice") == 303
    from chatapp import create_app

    from .conftest import test_config

    app = create_app(test_config(tmp_path / "rules"))  # never started: its URL map only
    rules = sorted({r.rule for r in app.url_map.iter_rules()})
    return {"port": server.port, "cookie": browser.cookie_header, "rules": rules}


form_text = st.text(max_size=40) | st.sampled_from(
    ["/\x00//evil.com", "/\r\nSet-Cookie: a=b", "//evil.com", "/rooms/\u202e", "a" * 300,
     "alice", "correct horse battery", "\ud800"])


@fuzz
@example(page="/login", right_csrf=True, fields={  # the 500 h11 gave after the login
    "username": "alice", "password": "correct horse battery", "next": "/\x00//evil.com"})
@given(page=st.sampled_from(["/login", "/register", "/logout"]),
       fields=st.dictionaries(st.sampled_from(["username", "password", "next", "csrf_token",
                                               "x"]), form_text, max_size=4),
       right_csrf=st.booleans())
async def test_forms_never_500(env: dict[str, Any], page: str, fields: dict[str, str],
                               right_csrf: bool) -> None:
    """Form fields (``next`` above all) reach a Location only through the redirect helper."""
    client = env["app"].test_client()  # a fresh browser: a login here must not carry over
    if right_csrf:
        html = await (await client.get("/login")).get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match
        fields = {**fields, "csrf_token": match.group(1)}
    fields = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
              for k, v in fields.items()}
    response = await client.post(page, form=fields)
    assert response.status_code < 500, (page, fields, response.status_code)
    for name, value in response.headers.items():
        assert not CONTROL.search(value) and value.isascii(), (name, value)
    location = response.headers.get("Location")
    if location is not None:
        assert location.startswith("/") and not location.startswith("//"), location
