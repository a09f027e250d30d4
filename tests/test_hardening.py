"""Attacks from outside (SPEC §4, §5, §6), each reproduced, then shown to fail.

What is about the server (raw paths, header bytes h11 refuses, websocket frames) runs
against a real Hypercorn; the rest through Quart's test client.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from chatapp import jsonin
from chatapp.web.redirects import login_url, safe_next

from .conftest import test_config as make_config
from .hashing import cheap_passwords
from .servers import Browser, Server, events_of
from .wsutil import connect

# Anything a header value must never carry: controls, and bytes outside ASCII.
BAD_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\xff]")


def raw_request(server: Server, request: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Send bytes as they are (no client library cleans them); status and raw headers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    status = int(head[0].split()[1])
    headers = [tuple(line.split(b":", 1)) for line in head[1:]]
    return status, [(name.strip().lower(), value.strip()) for name, value in headers]


def get(server: Server, path: bytes, cookie: str = "") -> tuple[int, dict[bytes, bytes]]:
    extra = f"Cookie: {cookie}\r\n".encode() if cookie else b""
    status, headers = raw_request(
        server, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra
        + b"Connection: close\r\n\r\n"
    )
    for name, value in headers:
        assert not BAD_HEADER_BYTES.search(value), (name, value)
    return status, dict(headers)


MALFORMED_PATHS = [
    b"/rooms/%00",
    b"/rooms/%0d%0aSet-Cookie:%20evil=1",
    b"/rooms/a%0aX-Injected:%201",
    b"/rooms/%ff%fe",
    b"/rooms/%e2%80%ae",
    b"/rooms/" + b"a" * 3000,
    b"/api/v1/rooms/%00/messages",
    b"/api/v1/rooms/%0d%0a/messages?before=%00",
]


@pytest.mark.slow
def test_malformed_paths_never_500_logged_out_or_in(server: Server) -> None:
    browser = Browser(server.base)
    assert browser.register("alice") == 303
    for cookie in ("", browser.cookie_header):
        for path in MALFORMED_PATHS:
            status, headers = get(server, path, cookie)
            assert status in (303, 400, 401, 404), (path, cookie != "", status)
            if status == 303:
                location = headers[b"location"]
                assert location.startswith(b"/login") and b"evil" not in location.split(b"?")[0]
    assert "Traceback" not in server.output()


@pytest.mark.slow
def test_login_next_with_control_characters_is_ignored(server: Server) -> None:
    """h11 refused the Location with a 500 after the session was already made."""
    browser = Browser(server.base)
    assert browser.register("alice") == 303
    other = Browser(server.base)
    for target in ("/\x00//evil.com", "/\r\nSet-Cookie: a=b", "/rooms/\x7f", "/rooms/\u0085x"):
        token = other.csrf("/login")
        status, headers, _ = other.request("/login", form={
            "username": "alice", "password": "correct horse battery", "csrf_token": token,
            "next": target,
        })
        assert status == 303, target
        assert {k.lower(): v for k, v in headers.items()}["location"] == "/", target
    assert "Traceback" not in server.output()


BAD_BODIES = [
    ("invalid UTF-8", b'{"name": "\xc3\x28", "kind": "public"}'),
    ("UTF-16", '{"name": "x", "kind": "public"}'.encode("utf-16")),
    ("deep nesting", b"[" * 100_000),
    ("deep nesting, closed", b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("5000-digit integer", b'{"name": ' + b"9" * 5000 + b', "kind": "public"}'),
    ("huge float", b'{"name": 1e999, "kind": "public"}'),
    ("NaN", b'{"name": "x", "kind": NaN}'),
    ("not JSON", b"name=x"),
]


@pytest.mark.slow
def test_bad_json_bodies_get_400_json_errors(server: Server) -> None:
    browser = Browser(server.base)
    assert browser.register("alice") == 303
    csrf = browser.csrf("/")
    for label, body in BAD_BODIES:
        request = urllib.request.Request(
            server.base + "/api/v1/rooms", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        )
        try:
            with browser.opener.open(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        assert status == 400, (label, status, text[:200])
        error = json.loads(text)["error"]
        assert error["status"] == 400 and error["code"] == "invalid_json", label
    assert "Traceback" not in server.output()


@pytest.mark.slow
async def test_websocket_bad_numbers_and_nesting_get_an_error_event(server: Server) -> None:
    """A 5000-digit integer in a frame closed the connection with 1011."""
    browser = Browser(server.base)
    assert browser.register("alice") == 303
    frames = [
        '{"type": "read", "room": "general", "seq": ' + "9" * 5000 + "}",
        '{"type": "sync", "room": "general", "after": 1e999}',
        '{"type": "sync", "room": "general", "after": NaN}',
        "[" * 20_000,
        '{"type": "ping", "ref": ' + "[" * 40 + "]" * 40 + "}",
        '{"type": "read", "room": "general", "seq": 99999999999999999999999999}',
    ]
    async with websockets.connect(server.ws_url, additional_headers=browser.ws_headers()) as ws:
        assert events_of(await ws.recv())[0]["type"] == "hello"
        for number, frame in enumerate(frames):
            await ws.send(frame)
            await ws.send(json.dumps({"type": "ping", "ref": f"p{number}"}))
            seen: list[dict[str, Any]] = []
            while not any(e.get("ref") == f"p{number}" for e in seen):
                seen += events_of(await asyncio.wait_for(ws.recv(), 10))
            errors = [e for e in seen if e["type"] == "error"]
            assert [e["code"] for e in errors] == ["invalid"], (frame[:60], seen)
    assert "Traceback" not in server.output()


# The reader and the redirect helper, directly


@pytest.mark.parametrize("data", [
    b"\xff", "[1]".encode("utf-16"), "[" * 100, "[" * 33 + "]" * 33, "1" * 41, "1e999",
    "-Infinity", "NaN", '{"a": 1.' + "0" * 50 + "}", "", "[1,]",
])
def test_reader_refuses(data: Any) -> None:
    with pytest.raises(jsonin.JsonError):
        jsonin.loads(data)


def test_reader_accepts_ordinary_json() -> None:
    assert jsonin.loads(b'{"a": [1, 2.5, "\\u00e9", null, true]}') == {
        "a": [1, 2.5, "é", None, True]}
    deep = "[" * 32 + "]" * 32
    assert jsonin.loads(deep) is not None
    assert jsonin.loads('"' + "[" * 1000 + '"') == "[" * 1000  # brackets inside a string
    assert jsonin.loads(str(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize("target,expected", [
    ("/rooms/x", "/rooms/x"),
    ("/rooms/general?x=1&y=a:b", "/rooms/general?x=1&y=a:b"),
    ("/rooms/café", "/rooms/caf%C3%A9"),
    ("/rooms/100%", "/rooms/100%25"),
    ("/rooms/%41", "/rooms/%41"),
    ("/\x00//evil.com", None),
    ("/rooms/\u0085", None),
    ("/ /evil.com", None),
    ("/\ud800", None),
    ("//evil.com", None),
    (None, None),
])
def test_safe_next(target: Any, expected: str | None) -> None:
    assert safe_next(target) == expected


def test_login_url_encodes_the_path() -> None:
    assert login_url("/rooms/general") == "/login?next=/rooms/general"
    assert login_url("/rooms/\r\n&next=//evil") == "/login?next=/rooms/%0D%0A%26next%3D//evil"
    assert login_url("/") == "/login"


# Caching and headers (Quart's test client)


async def test_static_files_never_carry_set_cookie(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    client, _ = await auth.user("alice")
    for path in ("/static/app.css", "/static/no-such-file.js"):
        response = await client.get(path)
        assert response.status_code in (200, 404)
        assert "Set-Cookie" not in response.headers, path
    page = await client.get("/")
    assert page.status_code == 200 and "Set-Cookie" in page.headers  # pages still refresh it


async def test_api_responses_are_no_store(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    client, _ = await auth.user("alice")
    for path in ("/api/v1/me", "/api/v1/rooms", "/api/v1/rooms/nope/messages"):
        response = await client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path


async def test_csp_connect_src_is_self_only(client: Any) -> None:
    csp = (await client.get("/login")).headers["Content-Security-Policy"]
    connect = next(part.strip() for part in csp.split(";") if "connect-src" in part)
    assert connect == "connect-src 'self'"
    assert "Strict-Transport-Security" not in (await client.get("/login")).headers


async def test_hsts_in_production(tmp_path: Path) -> None:
    from chatapp import create_app

    config = make_config(tmp_path, CHATAPP_ENV="production", CHATAPP_ALLOWED_HOSTS="localhost")
    app = create_app(config)
    async with app.test_app():
        response = await app.test_client().get("/login", headers={"Host": "localhost"})
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


# Leaks: rooms a user may not see do not exist for them


async def _api(auth: Any, name: str) -> tuple[Any, dict[str, str]]:
    client, csrf = await auth.user(name)
    return client, {"X-CSRF-Token": csrf}


async def test_public_room_named_like_a_private_room_reveals_nothing(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    alice, alice_h = await _api(auth, "alice")
    bob, bob_h = await _api(auth, "bob")
    made = await alice.post("/api/v1/rooms", json={"name": "Secret", "kind": "private"},
                            headers=alice_h)
    assert made.status_code == 201
    secret = (await made.get_json())["slug"]
    response = await bob.post("/api/v1/rooms", json={"name": "Secret", "kind": "public"},
                              headers=bob_h)
    assert response.status_code == 201, await response.get_data(as_text=True)
    room = await response.get_json()
    assert room["slug"] != secret and room["name"] == "Secret"
    assert (await bob.get(f"/api/v1/rooms/{room['slug']}/messages")).status_code == 200
    assert (await bob.get(f"/api/v1/rooms/{secret}/messages")).status_code == 404


async def test_private_rooms_and_dms_are_404_for_outsiders_everywhere(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    alice, alice_h = await _api(auth, "alice")
    bob, bob_h = await _api(auth, "bob")
    made = await alice.post("/api/v1/rooms", json={"name": "Hidden", "kind": "private"},
                            headers=alice_h)
    private = (await made.get_json())["slug"]
    posted = await alice.post(f"/api/v1/rooms/{private}/messages", json={"body": "psst"},
                              headers=alice_h)
    message_id = (await posted.get_json())["id"]
    for method, path, body in [
        ("PATCH", f"/api/v1/messages/{message_id}", {"body": "mine now"}),
        ("DELETE", f"/api/v1/messages/{message_id}", None),
        ("PUT", f"/api/v1/messages/{message_id}/reactions/%F0%9F%91%8D", None),
        ("DELETE", f"/api/v1/messages/{message_id}/reactions/%F0%9F%91%8D", None),
        ("GET", f"/api/v1/messages/{message_id}/edits", None),
        ("GET", f"/messages/{message_id}", None),  # the permalink page
    ]:
        response = await bob.open(path, method=method, json=body, headers=bob_h)
        assert response.status_code == 404, (method, path, response.status_code)
    async with connect(bob) as ws:
        for kind, fields in [
            ("sync", {"after": 0}), ("send", {"body": "x", "nonce": "n"}), ("typing", {}),
            ("read", {"seq": 1}), ("viewing", {}), ("edit", {"id": message_id, "body": "y"}),
            ("delete", {"id": message_id}), ("react", {"id": message_id, "emoji": "👍",
                                                      "on": True}),
        ]:
            reply = await ws.request(kind, "error", room=private, **fields)
            assert reply["code"] == "not_found", (kind, reply)
    carol, _ = await _api(auth, "carol")
    dm_made = await alice.post("/api/v1/dms", json={"users": ["carol"]}, headers=alice_h)
    assert dm_made.status_code == 201, await dm_made.get_data(as_text=True)
    dm = (await dm_made.get_json())["slug"]
    for slug in (private, dm):
        for method, path, body in [
            ("GET", f"/api/v1/rooms/{slug}/messages", None),
            ("GET", f"/api/v1/rooms/{slug}/members", None),
            ("PUT", f"/api/v1/rooms/{slug}/notify", {"notify": "none"}),
            ("GET", f"/api/v1/search?q=psst&room={slug}", None),
            ("POST", f"/api/v1/rooms/{slug}/messages", {"body": "hi"}),
            ("POST", f"/api/v1/rooms/{slug}/join", None),
            ("POST", f"/api/v1/rooms/{slug}/leave", None),
            ("POST", f"/api/v1/rooms/{slug}/members", {"username": "bob"}),
            ("GET", f"/rooms/{slug}", None),
        ]:
            response = await bob.open(path, method=method, json=body, headers=bob_h)
            assert response.status_code == 404, (slug, method, path, response.status_code)
        listed = (await (await bob.get("/api/v1/rooms/directory")).get_json())["rooms"]
        assert slug not in [r["slug"] for r in listed]


# Names people see


@pytest.mark.parametrize("name", [
    "evil\u202eexe.jpg", "a\u2066b", "a\u200fb", "a\u061cb",  # bidi controls
    "zero\u200bwidth", "a\u200db", "\ufeffbom", "a\u2060b", "soft\u00adhyphen",  # invisible
    "\u3164", "x" + "\u0301" * 8,
])
async def test_room_names_refuse_bidi_and_invisible_characters(app: Any, auth: Any,
                                                               name: str) -> None:
    cheap_passwords(app)
    alice, headers = await _api(auth, "alice")
    response = await alice.post("/api/v1/rooms", json={"name": name, "kind": "public"},
                                headers=headers)
    assert response.status_code == 422, name
    error = (await response.get_json())["error"]
    assert error["field"] == "name" and "name" in error["message"]


@pytest.mark.parametrize("first,second", [
    ("paypal", "раураl"),  # Cyrillic р, а, у
    ("Design", "design"),
    ("ops", "0PS"),
    ("Ian", "lan"),
    ("file", "ﬁle"),  # the fi ligature
    ("Café", "Cafe\u0301"),  # NFC and NFD
])
async def test_room_names_clash_by_case_and_confusables(app: Any, auth: Any, first: str,
                                                        second: str) -> None:
    cheap_passwords(app)
    alice, alice_h = await _api(auth, "alice")
    bob, bob_h = await _api(auth, "bob")
    made = await alice.post("/api/v1/rooms", json={"name": first, "kind": "public"},
                            headers=alice_h)
    assert made.status_code == 201
    response = await bob.post("/api/v1/rooms", json={"name": second, "kind": "public"},
                              headers=bob_h)
    assert response.status_code == 409, second
    assert (await response.get_json())["error"]["field"] == "name"


async def test_room_names_are_nfc_and_any_script(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    alice, headers = await _api(auth, "alice")
    response = await alice.post("/api/v1/rooms", json={"name": "  Cafe\u0301   crew ",
                                                       "kind": "public"}, headers=headers)
    room = await response.get_json()
    assert room["name"] == "Café crew" and room["slug"] == "cafe-crew"
    response = await alice.post("/api/v1/rooms", json={"name": "Команда", "kind": "public"},
                                headers=headers)
    assert response.status_code == 201
    room = await response.get_json()
    assert room["name"] == "Команда" and re.fullmatch(r"room(-[0-9a-f]{6})?", room["slug"])


async def test_message_bodies_keep_bidi_and_joiners(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    alice, headers = await _api(auth, "alice")
    body = "שלום \u202bworld\u202c 👩\u200d💻"
    response = await alice.post("/api/v1/rooms/general/messages", json={"body": body},
                                headers=headers)
    assert response.status_code == 201 and (await response.get_json())["body"] == body


def test_names_module_directly() -> None:
    from chatapp import names

    assert names.clean_name("  a \u00a0 b ", "display_name") == "a b"
    with pytest.raises(names.InvalidNameError) as refused:
        names.clean_name("x\u202e", "display_name")
    assert refused.value.field == "display_name" and "U+202E" in refused.value.message
    assert names.skeleton("раураl") == names.skeleton("paypal")
    assert not names.clash("team a", "team b")
    assert not names.clash("ops", "dev")


async def test_static_file_names_the_os_refuses_are_404(client: Any) -> None:
    """Found by tests/test_fuzz_http.py: a 300-character name was a 500 (ENAMETOOLONG)."""
    for name in ("a" * 300, "a%00b.js", "x/" * 3000 + "y"):
        response = await client.get("/static/" + name)
        assert response.status_code == 404, name


async def test_huge_numbers_in_urls_and_queries_are_refused_cleanly(app: Any, auth: Any) -> None:
    cheap_passwords(app)
    client, csrf = await auth.user("alice")
    digits = "9" * 5000
    for path in (f"/api/v1/rooms/general/messages?before={digits}",
                 f"/api/v1/rooms/general/messages?limit={digits}",
                 "/api/v1/rooms/general/messages?after=1e999",
                 f"/api/v1/messages/{digits}/edits",
                 f"/api/v1/messages/{2**64}/edits"):
        response = await client.get(path)
        assert response.status_code in (400, 404, 422), (path[:60], response.status_code)
        assert (await response.get_json())["error"]["status"] == response.status_code
    response = await client.patch(f"/api/v1/messages/{digits}", json={"body": "x"},
                                  headers={"X-CSRF-Token": csrf})
    assert response.status_code in (400, 404, 422)
