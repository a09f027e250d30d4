"""Accounts and sessions (SPEC §3): register, login, logout, throttling, cookies."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient, WebsocketResponseError
from quart.testing.connections import WebsocketDisconnectError

from chatapp import create_app
from chatapp.passwords import Passwords
from chatapp.storage import models

from .conftest import PASSWORD
from .conftest import test_config as make_config
from .hashing import cheap_passwords
from .wsutil import connect

GENERIC = "Invalid username or password"
COOKIE = "chatapp_session"


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    """Every app here hashes cheaply; the rehash tests bring back the defaults."""
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


class Clock:
    """Moves chatapp's idea of "now" (accounts and storage engines alike)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta(0)
        real = models.utcnow

        def fake() -> datetime:
            return real() + self.offset

        for name, module in list(sys.modules.items()):
            if name.startswith("chatapp") and getattr(module, "utcnow", None) is real:
                monkeypatch.setattr(module, "utcnow", fake)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
def clock(app: Quart, monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def cookie_value(client: QuartClient, name: str = COOKIE) -> str | None:
    assert client.cookie_jar is not None
    for cookie in client.cookie_jar:
        if cookie.name == name:
            return cookie.value
    return None


def bare_client(app: Quart, value: str | None, name: str = COOKIE) -> tuple[QuartClient, dict]:
    """A client without a jar and the headers that replay a copied cookie."""
    headers = {"Cookie": f"{name}={value}"} if value is not None else {}
    return app.test_client(use_cookies=False), headers


async def text(response: Any) -> str:
    return await response.get_data(as_text=True)


async def post_login(
    auth: Any, client: QuartClient, username: str, password: str, address: str = "127.0.0.1",
    **extra: str,
) -> Any:
    token = await auth.csrf(client, "/login")
    form = {"username": username, "password": password, "csrf_token": token, **extra}
    return await client.post("/login", form=form, scope_base={"client": (address, 40000)})


# registration


async def test_register_logs_in_and_redirects_home(auth, client):
    response = await auth.register(client, "alice")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert (await me.get_json())["username"] == "alice"


async def test_register_page_has_form_fields(client):
    body = await text(await client.get("/register"))
    for field in ("username", "password", "csrf_token"):
        assert f'name="{field}"' in body


async def test_first_user_is_admin_second_is_not(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    assert (await (await alice.get("/api/v1/me")).get_json())["is_admin"] is True
    assert (await (await bob.get("/api/v1/me")).get_json())["is_admin"] is False


async def test_new_user_is_member_of_general(auth):
    client, _ = await auth.user("alice")
    rooms = (await (await client.get("/api/v1/rooms")).get_json())["rooms"]
    assert [r["slug"] for r in rooms] == ["general"]


async def test_newcomer_starts_with_general_read_and_its_history_loads(auth, storage):
    """A joiner starts with the room read, a newly registered user too: no "99+" and no
    "New messages" 100 back on their first view; the older pages still load."""
    await auth.user("alice")
    alice = await storage.user_by_name("alice")
    general = await storage.room("general")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    await storage.import_messages(general.id, [
        (alice.id, f"m{i}", start + timedelta(seconds=i)) for i in range(150)
    ])
    bob, _ = await auth.user("bob")
    (room,) = (await (await bob.get("/api/v1/rooms")).get_json())["rooms"]
    assert (room["slug"], room["unread"], room["mentions"], room["last_seq"]) == (
        "general", 0, 0, 150)
    async with connect(bob) as ws:
        (room,) = ws.hello["rooms"]
        assert (room["unread"], room["last_seq"]) == (0, 150)
    bodies: list[str] = []
    path = "/api/v1/rooms/general/messages?limit=50"
    while True:
        page = await (await bob.get(path)).get_json()
        bodies[:0] = [m["body"] for m in page["messages"]]
        if not page["has_more"]:
            break
        path = f"/api/v1/rooms/general/messages?limit=50&before={page['messages'][0]['id']}"
    assert bodies == [f"m{i}" for i in range(150)]
    # Later messages are unread as before.
    await storage.add_message(general.id, alice.id, "after bob", None)
    assert (await (await bob.get("/api/v1/rooms")).get_json())["rooms"][0]["unread"] == 1


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice", "aLiCe"])
async def test_duplicate_username_case_insensitive_is_409(auth, taken):
    await auth.user("alice")
    client = auth.new_client()
    response = await auth.register(client, taken)
    assert response.status_code == 409
    assert "taken" in await text(response)
    assert (await client.get("/api/v1/me")).status_code == 401


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 33, "al ice", "al<i>ce", "alice!", "ålice", "", "alice\n", "al/ce"],
)
async def test_bad_username_is_400_with_reason(auth, client, username):
    response = await auth.register(client, username)
    assert response.status_code == 400
    body = await text(response)
    assert "3–32 characters" in body
    assert (await client.get("/api/v1/me")).status_code == 401


@pytest.mark.parametrize("username", ["abc", "a" * 32, "A.b_c-9"])
async def test_edge_usernames_accepted(auth, client, username):
    assert (await auth.register(client, username)).status_code == 303


@pytest.mark.parametrize("password", ["", "short", "x" * 7, "x" * 257])
async def test_bad_password_is_400_with_reason(auth, client, password):
    response = await auth.register(client, "alice", password)
    assert response.status_code == 400
    assert "8–256" in await text(response)


@pytest.mark.parametrize("password", ["x" * 8, "x" * 256])
async def test_edge_passwords_accepted(auth, client, password):
    assert (await auth.register(client, "alice", password)).status_code == 303
    other = auth.new_client()
    assert (await auth.login(other, "alice", password)).status_code == 303


async def test_register_keeps_username_on_error(auth, client):
    response = await auth.register(client, "alice", "short")
    assert 'value="alice"' in await text(response)


async def test_register_html_escapes_username(auth, client):
    response = await auth.register(client, "<script>x", PASSWORD)
    body = await text(response)
    assert "<script>x" not in body
    assert "&lt;script&gt;x" in body


# CSRF


@pytest.mark.parametrize("path", ["/register", "/login"])
async def test_form_post_without_csrf_is_400(client, path):
    await client.get(path)
    response = await client.post(path, form={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert (await client.get("/api/v1/me")).status_code == 401


@pytest.mark.parametrize("path", ["/register", "/login"])
async def test_form_post_with_wrong_csrf_is_400(client, path):
    await client.get(path)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": "forged"}
    response = await client.post(path, form=form)
    assert response.status_code == 400


async def test_csrf_token_from_another_session_is_rejected(auth, client):
    other = auth.new_client()
    token = await auth.csrf(other, "/register")
    await client.get("/register")
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    assert (await client.post("/register", form=form)).status_code == 400


async def test_csrf_without_any_session_is_400(app):
    client = app.test_client(use_cookies=False)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": "anything"}
    assert (await client.post("/register", form=form)).status_code == 400


async def test_logout_without_csrf_is_400_and_keeps_session(auth):
    client, _ = await auth.user("alice")
    response = await client.post("/logout", form={})
    assert response.status_code == 400
    assert (await client.get("/api/v1/me")).status_code == 200
    response = await client.post("/logout", form={"csrf_token": "wrong"})
    assert response.status_code == 400
    assert (await client.get("/api/v1/me")).status_code == 200


async def test_logout_is_post_only(auth):
    client, _ = await auth.user("alice")
    assert (await client.get("/logout")).status_code == 405
    assert (await client.get("/api/v1/me")).status_code == 200


# login


async def test_login_success_redirects_home(auth, client):
    await auth.user("alice")
    response = await auth.login(client, "alice")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert (await (await client.get("/api/v1/me")).get_json())["username"] == "alice"


async def test_login_is_case_insensitive_on_username(auth, client):
    await auth.user("alice")
    assert (await auth.login(client, "ALICE")).status_code == 303
    assert (await (await client.get("/api/v1/me")).get_json())["username"] == "alice"


async def test_wrong_password_and_unknown_user_get_one_generic_401(auth):
    await auth.user("alice")
    wrong = await auth.login(auth.new_client(), "alice", "not the password")
    unknown = await auth.login(auth.new_client(), "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    wrong_body, unknown_body = await text(wrong), await text(unknown)
    assert GENERIC in wrong_body and GENERIC in unknown_body
    # Apart from the echoed username and the CSRF token the pages are the same.
    def normalise(body: str, name: str) -> str:
        body = re.sub(r'(name="csrf[-_]token" (?:value|content)=")[^"]+', r"\1", body)
        return body.replace(f'value="{name}"', 'value=""')

    assert normalise(wrong_body, "alice") == normalise(unknown_body, "nobody")


async def test_unknown_user_costs_a_full_verification(app, auth, monkeypatch):
    """A login for an unknown user runs argon2 like one with a wrong password."""
    await auth.user("alice")
    calls: list[str] = []
    real_check = Passwords._check

    def spy(self: Passwords, password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real_check(self, password_hash, password)

    monkeypatch.setattr(Passwords, "_check", spy)
    await auth.login(auth.new_client(), "nobody", PASSWORD)
    await auth.login(auth.new_client(), "alice", "not the password")
    assert len(calls) == 2
    assert all(h.startswith("$argon2id$") for h in calls)


async def test_password_is_stored_as_argon2id(auth, storage):
    await auth.user("alice")
    user = await storage.user_by_name("alice")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


async def test_wrong_password_does_not_log_in(auth, client):
    await auth.user("alice")
    await auth.login(client, "alice", "nope nope nope")
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/")).status_code == 303


async def test_rehash_on_login_when_parameters_change(app, auth, storage):
    svc = app.extensions["chatapp"]
    default = Passwords()  # argon2-cffi's current defaults
    await auth.user("alice")
    old_hash = (await storage.user_by_name("alice")).password_hash
    assert "m=1024,t=1,p=1" in old_hash

    svc.accounts.passwords = default  # the operator raised the parameters
    assert (await auth.login(auth.new_client(), "alice")).status_code == 303
    new_hash = (await storage.user_by_name("alice")).password_hash
    assert new_hash != old_hash
    assert not default.needs_rehash(new_hash)
    assert await default.verify(new_hash, PASSWORD)


async def test_no_rehash_when_parameters_unchanged(auth, storage):
    await auth.user("alice")
    before = (await storage.user_by_name("alice")).password_hash
    assert (await auth.login(auth.new_client(), "alice")).status_code == 303
    assert (await storage.user_by_name("alice")).password_hash == before


async def test_failed_login_does_not_rehash(app, auth, storage):
    svc = app.extensions["chatapp"]
    default = Passwords()  # argon2-cffi's current defaults
    await auth.user("alice")
    old_hash = (await storage.user_by_name("alice")).password_hash
    svc.accounts.passwords = default
    assert (await auth.login(auth.new_client(), "alice", "wrong password")).status_code == 401
    assert (await storage.user_by_name("alice")).password_hash == old_hash


# safe next


@pytest.mark.parametrize("target", ["/rooms/x", "/rooms/general?x=1", "/"])
async def test_login_follows_safe_next(auth, client, target):
    await auth.user("alice")
    response = await auth.login(client, "alice", next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "http://evil.com/rooms/x",
        "/\\evil.com",
        "\\\\evil.com",
        "javascript:alert(1)",
        "/javascript:alert(1)",
        "evil.com",
        "rooms/x",
        "/\t/evil.com",
        "/\r\nSet-Cookie: x=1",
        "///evil.com",
    ],
)
async def test_login_ignores_unsafe_next(auth, client, target):
    await auth.user("alice")
    response = await auth.login(client, "alice", next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


async def test_login_page_carries_safe_next_into_the_form(client):
    body = await text(await client.get("/login?next=/rooms/x"))
    assert 'name="next" value="/rooms/x"' in body
    body = await text(await client.get("/login?next=//evil.com"))
    assert "evil.com" not in body


async def test_room_link_logged_out_round_trips_through_login(auth, client):
    await auth.user("alice")
    response = await client.get("/rooms/general")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/rooms/general"
    body = await text(await client.get(response.headers["Location"]))
    next_value = re.search(r'name="next" value="([^"]+)"', body).group(1)
    response = await auth.login(client, "alice", next=next_value)
    assert response.headers["Location"] == "/rooms/general"


async def test_failed_login_keeps_safe_next(auth, client):
    await auth.user("alice")
    response = await auth.login(client, "alice", "wrong password", next="/rooms/x")
    assert response.status_code == 401
    assert 'name="next" value="/rooms/x"' in await text(response)


# throttling


async def test_five_failures_per_username_then_429(app, auth):
    await auth.user("alice")
    client = auth.new_client()
    for _ in range(5):
        assert (await post_login(auth, client, "alice", "wrong password")).status_code == 401
    response = await post_login(auth, client, "alice", PASSWORD)  # even the right one
    assert response.status_code == 429
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 15 * 60
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_username_throttle_ignores_case_and_address(app, auth):
    await auth.user("alice")
    client = auth.new_client()
    for i, name in enumerate(["alice", "ALICE", "Alice", "aLICE", "alicE"]):
        response = await post_login(auth, client, name, "wrong password", f"10.0.0.{i}")
        assert response.status_code == 401
    response = await post_login(auth, client, "alice", PASSWORD, "10.9.9.9")
    assert response.status_code == 429
    assert "Retry-After" in response.headers


async def test_username_throttle_does_not_block_other_users(app, auth):
    await auth.user("alice")
    await auth.user("bob")
    client = auth.new_client()
    for _ in range(5):
        await post_login(auth, client, "alice", "wrong password")
    assert (await post_login(auth, client, "bob", PASSWORD)).status_code == 303


async def test_four_failures_then_success_is_allowed(app, auth):
    await auth.user("alice")
    client = auth.new_client()
    for _ in range(4):
        assert (await post_login(auth, client, "alice", "wrong password")).status_code == 401
    assert (await post_login(auth, client, "alice", PASSWORD)).status_code == 303


async def test_twenty_failures_per_address_then_429(app, auth):
    await auth.user("alice")
    client = auth.new_client()
    for i in range(20):
        response = await post_login(auth, client, f"user{i}", "wrong password", "10.1.1.1")
        assert response.status_code == 401, i
    response = await post_login(auth, client, "alice", PASSWORD, "10.1.1.1")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 15 * 60
    # Another address is not affected.
    assert (await post_login(auth, client, "alice", PASSWORD, "10.2.2.2")).status_code == 303


async def test_throttle_lifts_after_the_window(app, auth, clock):
    await auth.user("alice")
    client = auth.new_client()
    for _ in range(5):
        await post_login(auth, client, "alice", "wrong password")
    assert (await post_login(auth, client, "alice", PASSWORD)).status_code == 429
    clock.advance(timedelta(minutes=15, seconds=5))
    assert (await post_login(auth, client, "alice", PASSWORD)).status_code == 303


async def test_retry_after_counts_down_from_oldest_failure(app, auth, clock):
    await auth.user("alice")
    client = auth.new_client()
    for _ in range(5):
        await post_login(auth, client, "alice", "wrong password")
    clock.advance(timedelta(minutes=10))
    response = await post_login(auth, client, "alice", PASSWORD)
    assert response.status_code == 429
    assert 4 * 60 <= int(response.headers["Retry-After"]) <= 5 * 60 + 1


async def test_successful_logins_not_limited_per_address(app, auth):
    await auth.user("alice")
    for _ in range(25):
        response = await post_login(auth, auth.new_client(), "alice", PASSWORD, "10.3.3.3")
        assert response.status_code == 303


async def test_registrations_not_limited_per_address(app, auth):
    for i in range(25):
        client = auth.new_client()
        token = await auth.csrf(client, "/register")
        response = await client.post(
            "/register",
            form={"username": f"member{i}", "password": PASSWORD, "csrf_token": token},
            scope_base={"client": ("10.4.4.4", 40000)},
        )
        assert response.status_code == 303, i


async def test_throttled_page_is_html_429(app, auth):
    client = auth.new_client()
    for _ in range(5):
        await post_login(auth, client, "alice", "wrong password")
    response = await post_login(auth, client, "alice", "wrong password")
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert "Too many failed logins" in await text(response)


# sessions


async def test_login_starts_a_fresh_session(auth, client):
    await auth.user("alice")
    login_csrf = await auth.csrf(client, "/login")
    before = cookie_value(client)
    assert before is not None
    response = await client.post(
        "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": login_csrf}
    )
    assert response.status_code == 303
    after = cookie_value(client)
    assert after is not None and after != before

    # The pre-login cookie is still an anonymous session, not the logged-in one.
    old, headers = bare_client(client.app, before)
    assert (await old.get("/api/v1/me", headers=headers)).status_code == 401
    assert (await old.get("/", headers=headers)).status_code == 303
    # And the CSRF token handed out before login no longer works after it.
    response = await client.post(
        "/api/v1/rooms/general/messages",
        json={"body": "hi"},
        headers={"X-CSRF-Token": login_csrf},
    )
    assert response.status_code == 400


async def test_each_login_gets_its_own_session(auth, storage):
    await auth.user("alice")
    first, second = auth.new_client(), auth.new_client()
    await auth.login(first, "alice")
    await auth.login(second, "alice")
    assert cookie_value(first) != cookie_value(second)
    await auth.logout(first)
    assert (await first.get("/api/v1/me")).status_code == 401
    assert (await second.get("/api/v1/me")).status_code == 200


async def test_logout_redirects_to_login_and_clears_session(auth):
    client, _ = await auth.user("alice")
    response = await auth.logout(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert (await client.get("/")).status_code == 303
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_copied_cookie_is_dead_after_logout_for_http(app, auth):
    client, _ = await auth.user("alice")
    stolen = cookie_value(client)
    copy, headers = bare_client(app, stolen)
    assert (await copy.get("/api/v1/me", headers=headers)).status_code == 200

    assert (await auth.logout(client)).status_code == 303
    assert (await copy.get("/api/v1/me", headers=headers)).status_code == 401
    response = await copy.get("/", headers=headers)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"


async def test_copied_cookie_is_dead_after_logout_for_websocket(app, auth):
    client, _ = await auth.user("alice")
    stolen = cookie_value(client)
    copy, headers = bare_client(app, stolen)
    async with copy.websocket("/ws", headers=headers) as ws:  # alive before logout
        await ws.receive()

    await auth.logout(client)
    with pytest.raises(WebsocketResponseError) as error:
        async with copy.websocket("/ws", headers=headers) as ws:
            await ws.receive()
    assert error.value.response.status_code == 401


async def test_websocket_without_cookie_is_401(app):
    client = app.test_client()
    with pytest.raises(WebsocketResponseError) as error:
        async with client.websocket("/ws") as ws:
            await ws.receive()
    assert error.value.response.status_code == 401


async def test_forged_cookie_is_ignored(app, auth):
    await auth.user("alice")
    copy, headers = bare_client(app, "eyJzaWQiOiJ4In0.forged.signature")
    assert (await copy.get("/api/v1/me", headers=headers)).status_code == 401


async def test_session_expires_after_14_idle_days(auth, clock):
    client, _ = await auth.user("alice")
    clock.advance(timedelta(days=14, minutes=1))
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/")).status_code == 303
    # The record is gone: winding the clock back does not revive the cookie.
    clock.advance(-timedelta(days=14, minutes=1))
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_session_in_use_stays_alive_past_14_days(auth, clock):
    client, _ = await auth.user("alice")
    for _ in range(3):  # 39 days in all, never 14 idle
        clock.advance(timedelta(days=13))
        assert (await client.get("/api/v1/me")).status_code == 200
    clock.advance(timedelta(days=14, minutes=1))
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_expired_session_cannot_open_websocket(auth, clock):
    client, _ = await auth.user("alice")
    clock.advance(timedelta(days=15))
    with pytest.raises(WebsocketResponseError) as error:
        async with client.websocket("/ws") as ws:
            await ws.receive()
    assert error.value.response.status_code == 401


def set_cookie_header(response: Any, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.getlist('Set-Cookie')}")


async def test_session_cookie_flags_in_development(auth, client):
    response = await auth.register(client, "alice")
    header = set_cookie_header(response, COOKIE)
    lowered = header.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "path=/" in lowered
    assert "secure" not in lowered  # plain http on a laptop still works


async def test_session_cookie_flags_in_production(tmp_path):
    config = make_config(tmp_path, CHATAPP_ENV="production", CHATAPP_ALLOWED_HOSTS="localhost")
    app = create_app(config)
    async with app.test_app():
        auth_client = app.test_client()
        response = await auth_client.get("/register", scheme="https")
        token = re.search(r'name="csrf_token" value="([^"]+)"', await text(response)).group(1)
        first = set_cookie_header(response, "__Host-chatapp")
        assert "secure" in first.lower()
        response = await auth_client.post(
            "/register",
            form={"username": "alice", "password": PASSWORD, "csrf_token": token},
            scheme="https",
        )
        assert response.status_code == 303
        header = set_cookie_header(response, "__Host-chatapp")
        lowered = header.lower()
        for flag in ("secure", "httponly", "samesite=lax", "path=/"):
            assert flag in lowered, header
        assert "domain=" not in lowered  # __Host- cookies must not carry a Domain
        me = await auth_client.get("/api/v1/me", scheme="https")
        assert me.status_code == 200


async def test_logout_closes_the_sessions_open_websockets(app, auth):
    client, _ = await auth.user("alice")
    copy, headers = bare_client(app, cookie_value(client))
    other_client, _ = await auth.user("bob")
    async with copy.websocket("/ws", headers=headers) as ws, other_client.websocket("/ws") as bob:
        await ws.receive()  # hello
        await bob.receive()
        await auth.logout(client)
        with pytest.raises(WebsocketDisconnectError) as closed:
            for _ in range(20):
                await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.args[0] == 1008
        # Another user's socket is untouched.
        await bob.send(json.dumps({"type": "ping", "ref": "p"}))
        seen: list[str] = []
        while "pong" not in seen:
            frame = json.loads(await asyncio.wait_for(bob.receive(), 5))
            seen += [event["type"] for event in (frame if isinstance(frame, list) else [frame])]
