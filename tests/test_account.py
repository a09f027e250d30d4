"""The account page (SPEC §11): display name, password, sessions, API tokens, user_updated."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient, WebsocketResponseError
from quart.testing.connections import WebsocketDisconnectError

from chatapp.devices import describe

from .conftest import PASSWORD, AuthActions
from .hashing import cheap_passwords
from .test_accounts import bare_client, cookie_value

NEW_PASSWORD = "a new and long password"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
          " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
SESSION_ROW = re.compile(r'data-session="([0-9a-f]+)"')
TOKEN_ROW = re.compile(r'data-token="([0-9a-f]+)"')


@pytest.fixture(autouse=True)
def _fast_hashing(app: Quart) -> None:
    cheap_passwords(app)
    svc = app.extensions["chatapp"]
    svc.profile.passwords = svc.accounts.passwords


async def page_text(client: QuartClient, path: str = "/account") -> str:
    response = await client.get(path.split("#")[0])  # a browser keeps the fragment
    assert response.status_code == 200
    return html.unescape(await response.get_data(as_text=True))


async def post(auth: AuthActions, client: QuartClient, path: str, **form: str) -> Any:
    token = await auth.csrf(client, "/account")
    return await client.post(path, form={"csrf_token": token, **form})


async def second_login(auth: AuthActions, user: str = "alice",
                       agent: str = IPHONE) -> QuartClient:
    other = auth.new_client()
    token = await auth.csrf(other, "/login")
    response = await other.post("/login", headers={"User-Agent": agent}, form={
        "username": user, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    return other


def events_of(frame: str) -> list[dict[str, Any]]:
    data = json.loads(frame)
    return data if isinstance(data, list) else [data]


async def next_event(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(50):
        for event in events_of(await asyncio.wait_for(ws.receive(), 5)):
            if event["type"] == kind:
                return event
    raise AssertionError(f"no {kind} event")


# --- the page --------------------------------------------------------------------------

async def test_account_page_needs_a_login(client):
    response = await client.get("/account")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


async def test_account_page_lists_forms_with_csrf(auth):
    client, _ = await auth.user("alice")
    text = await page_text(client)
    for action in ("/account/profile", "/account/password", "/account/tokens"):
        assert f'action="{action}"' in text
    assert text.count('name="csrf_token"') >= 3
    assert "This device" in text


async def test_device_names_from_user_agents():
    assert str(describe(FIREFOX)) == "Firefox on Linux"
    assert str(describe(IPHONE)) == "Safari on iPhone" and describe(IPHONE).mobile
    edge = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0")
    assert str(describe(edge)) == "Edge on Windows"
    chrome_mac = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"
                  " (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
    assert str(describe(chrome_mac)) == "Chrome on macOS"
    assert str(describe("curl/8.5.0")) == "curl"
    assert str(describe("")) == "Unknown device"


# --- display name ----------------------------------------------------------------------

async def test_display_name_is_saved_and_listed(auth):
    client, _ = await auth.user("alice")
    response = await post(auth, client, "/account/profile", display_name="  Ålice  Ünïcode ")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/account?done=profile")
    text = await page_text(client, response.headers["Location"])
    assert "Display name saved." in text and 'value="Ålice Ünïcode"' in text
    users = (await (await client.get("/api/v1/users")).get_json())["users"]
    assert {"username": "alice", "display_name": "Ålice Ünïcode", "is_admin": True,
            "bot": False, "active": True} in users
    async with client.websocket("/ws") as ws:
        assert (await next_event(ws, "hello"))["user"]["display_name"] == "Ålice Ünïcode"


async def test_display_name_any_script_is_nfc(auth):
    client, _ = await auth.user("alice")
    decomposed = "Zoe\u0308 田中 Алиса"
    assert (await post(auth, client, "/account/profile",
                       display_name=decomposed)).status_code == 303
    users = (await (await client.get("/api/v1/users")).get_json())["users"]
    assert users[0]["display_name"] == "Zoë 田中 Алиса"


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65, "evil\u202egnp.exe", "a\u200bb",
                                 "tab\x07bell"])
async def test_bad_display_name_is_400_with_the_reason(auth, bad):
    client, _ = await auth.user("alice")
    response = await post(auth, client, "/account/profile", display_name=bad)
    assert response.status_code == 400
    text = await response.get_data(as_text=True)
    assert 'class="form-error"' in text and "display name" in text.lower()
    if "\u202e" in bad:  # shown again as it looks, without the invisible character
        assert 'value="evilgnp.exe"' in text
    users = (await (await client.get("/api/v1/users")).get_json())["users"]
    assert users[0]["display_name"] == "alice"


async def test_forms_without_csrf_are_400_and_change_nothing(auth):
    client, _ = await auth.user("alice")
    paths = ["/account/profile", "/account/password", "/account/sessions/revoke-others",
             "/account/tokens"]
    for path in paths:
        for form in ({}, {"csrf_token": "wrong"}):
            response = await client.post(path, form={**form, "display_name": "X",
                                                     "label": "x"})
            assert response.status_code == 400, path
            assert "expired" in await response.get_data(as_text=True)
    assert "No tokens yet." in await page_text(client)
    users = (await (await client.get("/api/v1/users")).get_json())["users"]
    assert users[0]["display_name"] == "alice"


async def test_logged_out_posts_go_to_login(auth):
    client = auth.new_client()
    response = await client.post("/account/profile", form={"display_name": "x"})
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


async def test_display_name_change_reaches_other_connections(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    async with bob.websocket("/ws") as ws:
        hello = await next_event(ws, "hello")
        assert hello["user"]["display_name"] == "bob"
        assert (await post(auth, alice, "/account/profile",
                           display_name="Alice Liddell")).status_code == 303
        event = await next_event(ws, "user_updated")
    assert event["user"] == {"username": "alice", "display_name": "Alice Liddell",
                             "is_admin": True, "bot": False, "active": True}
    async with alice.websocket("/ws") as ws:
        assert (await next_event(ws, "hello"))["user"]["display_name"] == "Alice Liddell"


# --- password ----------------------------------------------------------------------------

async def test_change_password_ends_every_other_session(app, auth):
    client, _ = await auth.user("alice")
    other = await second_login(auth)
    copy, headers = bare_client(app, cookie_value(other))
    async with copy.websocket("/ws", headers=headers) as ws:
        await next_event(ws, "hello")
        response = await post(auth, client, "/account/password",
                              current_password=PASSWORD, new_password=NEW_PASSWORD)
        assert response.status_code == 303
        with pytest.raises(WebsocketDisconnectError) as closed:
            for _ in range(50):
                await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.args[0] == 1008
    assert (await other.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me")).status_code == 200  # this one stays
    fresh = auth.new_client()
    assert (await auth.login(fresh, "alice", PASSWORD)).status_code == 401
    assert (await auth.login(fresh, "alice", NEW_PASSWORD)).status_code == 303


async def test_wrong_current_password_is_403(auth):
    client, _ = await auth.user("alice")
    other = await second_login(auth)
    response = await post(auth, client, "/account/password",
                          current_password="not the password", new_password=NEW_PASSWORD)
    assert response.status_code == 403
    assert "current password" in (await response.get_data(as_text=True)).lower()
    assert (await other.get("/api/v1/me")).status_code == 200
    assert (await auth.login(auth.new_client(), "alice", PASSWORD)).status_code == 303


async def test_wrong_current_passwords_are_throttled(auth):
    client, _ = await auth.user("alice")
    for _ in range(5):
        response = await post(auth, client, "/account/password",
                              current_password="guess", new_password=NEW_PASSWORD)
        assert response.status_code == 403
    response = await post(auth, client, "/account/password",
                          current_password=PASSWORD, new_password=NEW_PASSWORD)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many" in await response.get_data(as_text=True)
    # Logging in is a separate budget: the owner is not locked out of /login.
    assert (await auth.login(auth.new_client(), "alice", PASSWORD)).status_code == 303


async def test_too_short_new_password_is_400(auth):
    client, _ = await auth.user("alice")
    response = await post(auth, client, "/account/password",
                          current_password=PASSWORD, new_password="short")
    assert response.status_code == 400
    assert "8–256" in await response.get_data(as_text=True)


# --- sessions ----------------------------------------------------------------------------

async def test_sessions_show_device_address_and_this_device(auth):
    client, _ = await auth.user("alice")
    await second_login(auth, agent=IPHONE)
    text = await page_text(client)
    assert "Safari on iPhone" in text and "This device" in text
    assert len(SESSION_ROW.findall(text)) == 2
    assert "<local> · last seen" in text  # the test client's address, as Quart names it


async def test_revoking_a_session_kills_its_copied_cookie_and_websocket(app, auth):
    client, _ = await auth.user("alice")
    other = await second_login(auth)
    stolen = cookie_value(other)
    copy, headers = bare_client(app, stolen)
    text = await page_text(client)
    current = re.search(r'data-session="([0-9a-f]+)"[^>]*>\s*<div class="account-row-main">'
                        r'\s*<strong>[^<]*</strong> <span class="pill">', text)
    ids = SESSION_ROW.findall(text)
    assert current is not None
    target = next(i for i in ids if i != current.group(1))
    async with copy.websocket("/ws", headers=headers) as ws:
        await next_event(ws, "hello")
        response = await post(auth, client, f"/account/sessions/{target}/revoke")
        assert response.status_code == 303
        assert "signed out" in await page_text(client, response.headers["Location"])
        with pytest.raises(WebsocketDisconnectError) as closed:
            for _ in range(50):
                await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.args[0] == 1008
    assert (await copy.get("/api/v1/me", headers=headers)).status_code == 401
    with pytest.raises(WebsocketResponseError) as refused:
        async with copy.websocket("/ws", headers=headers) as ws:
            await ws.receive()
    assert refused.value.response.status_code == 401
    assert (await client.get("/api/v1/me")).status_code == 200


async def test_revoke_others_keeps_only_this_session(auth):
    client, _ = await auth.user("alice")
    others = [await second_login(auth), await second_login(auth, agent=FIREFOX)]
    bob, _ = await auth.user("bob")
    response = await post(auth, client, "/account/sessions/revoke-others")
    assert response.status_code == 303
    for other in others:
        assert (await other.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me")).status_code == 200
    assert (await bob.get("/api/v1/me")).status_code == 200
    assert len(SESSION_ROW.findall(await page_text(client))) == 1


async def test_another_users_session_id_is_404(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    bobs = SESSION_ROW.findall(await page_text(bob))
    for target in bobs + ["0123456789abcdef", "x" * 300]:
        response = await post(auth, alice, f"/account/sessions/{target}/revoke")
        assert response.status_code == 404
    assert (await bob.get("/api/v1/me")).status_code == 200


async def test_revoking_this_session_signs_out_here(auth):
    client, _ = await auth.user("alice")
    mine = SESSION_ROW.findall(await page_text(client))[0]
    response = await post(auth, client, f"/account/sessions/{mine}/revoke")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert (await client.get("/api/v1/me")).status_code == 401


# --- API tokens --------------------------------------------------------------------------

async def test_token_is_shown_once_authenticates_and_can_be_revoked(auth):
    client, _ = await auth.user("alice")
    response = await post(auth, client, "/account/tokens", label="deploy bot")
    assert response.status_code == 200
    text = html.unescape(await response.get_data(as_text=True))
    token = re.search(r'id="new-token" type="text" readonly value="(chatapp_[^"]+)"', text)
    assert token is not None
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    bot = auth.new_client()
    assert (await bot.get("/api/v1/me", headers=bearer)).status_code == 200
    listing = await page_text(client)
    assert "deploy bot" in listing and token.group(1) not in listing
    [token_id] = TOKEN_ROW.findall(listing)
    response = await post(auth, client, f"/account/tokens/{token_id}/revoke")
    assert response.status_code == 303
    assert (await bot.get("/api/v1/me", headers=bearer)).status_code == 401
    assert "No tokens yet." in await page_text(client)


async def test_bad_token_label_is_400(auth):
    client, _ = await auth.user("alice")
    for label in ("", "x" * 65, "a\u202eb"):
        response = await post(auth, client, "/account/tokens", label=label)
        assert response.status_code == 400
        assert "label" in (await response.get_data(as_text=True)).lower()


async def test_another_users_token_id_is_404(auth):
    alice, _ = await auth.user("alice")
    bob, _ = await auth.user("bob")
    assert (await post(auth, bob, "/account/tokens", label="bobs")).status_code == 200
    [bobs] = TOKEN_ROW.findall(await page_text(bob))
    for target in (bobs, "ffffffffffffffff", "%25", "a_b"):
        response = await post(auth, alice, f"/account/tokens/{target}/revoke")
        assert response.status_code == 404, target
    assert TOKEN_ROW.findall(await page_text(bob)) == [bobs]


async def test_last_seen_is_written_at_most_once_a_minute(auth, storage, monkeypatch):
    client, _ = await auth.user("alice")
    writes: list[str] = []
    real = storage.touch_session

    async def counting(token_hash: str, address: str | None = None) -> None:
        writes.append(token_hash)
        await real(token_hash, address)

    monkeypatch.setattr(storage, "touch_session", counting)
    for _ in range(5):
        assert (await client.get("/api/v1/me")).status_code == 200
    assert writes == []  # a session used within the minute is not written again
