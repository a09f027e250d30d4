"""Administration (SPEC §11): registration modes, invites, reset links, /admin, audit log."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import timedelta
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient, WebsocketResponseError
from quart.testing.connections import WebsocketDisconnectError

from chatapp import create_app
from chatapp.accounts import token_hash
from chatapp.storage.models import utcnow

from .conftest import PASSWORD, AuthActions
from .conftest import test_config as make_config
from .hashing import cheap_passwords
from .test_account import next_event
from .test_accounts import bare_client, cookie_value

NEW_PASSWORD = "a brand new password"
LINK = re.compile(r'id="new-link" type="text" readonly value="([^"]+)"')


@pytest.fixture(autouse=True)
def _fast_hashing(app: Quart) -> None:
    cheap_passwords(app)


async def page(client: QuartClient, path: str = "/admin", status: int = 200) -> str:
    response = await client.get(path)
    assert response.status_code == status, await response.get_data(as_text=True)
    return html.unescape(await response.get_data(as_text=True))


async def act(auth: AuthActions, client: QuartClient, path: str, **form: str) -> Any:
    token = await auth.csrf(client, "/account")
    return await client.post(path, form={"csrf_token": token, **form})


async def owner_and_bob(auth: AuthActions) -> tuple[QuartClient, QuartClient]:
    owner, _ = await auth.user("owner")  # the first account: an admin
    bob, _ = await auth.user("bob")
    return owner, bob


async def invite_code(auth: AuthActions, owner: QuartClient, uses: str = "1",
                      days: str = "7") -> str:
    response = await act(auth, owner, "/admin/invites", uses=uses, expires_days=days)
    assert response.status_code == 200
    link = LINK.search(await response.get_data(as_text=True))
    assert link is not None
    assert "/join/" in link.group(1) and link.group(1).startswith("http")
    return link.group(1).rsplit("/", 1)[1]


async def join(auth: AuthActions, code: str, username: str) -> Any:
    client = auth.new_client()
    token = await auth.csrf(client, f"/join/{code}")
    return await client.post(f"/join/{code}", form={
        "username": username, "password": PASSWORD, "csrf_token": token})


async def reset_token(auth: AuthActions, owner: QuartClient, name: str) -> str:
    response = await act(auth, owner, f"/admin/users/{name}/reset-link")
    assert response.status_code == 200
    link = LINK.search(await response.get_data(as_text=True))
    assert link is not None and "/reset/" in link.group(1)
    return link.group(1).rsplit("/", 1)[1]


# --- the page and who may use it ------------------------------------------------------

async def test_admin_page_lists_users_with_counts(auth):
    owner, bob = await owner_and_bob(auth)
    text = await page(owner)
    assert 'data-user="owner"' in text and 'data-user="bob"' in text
    assert "1 session · 0 tokens" in text
    assert 'name="csrf_token"' in text
    assert "Audit log" in text


async def test_admin_page_refuses_others(auth, client):
    response = await client.get("/admin")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")
    _, bob = await owner_and_bob(auth)
    assert "Only administrators" in await page(bob, status=403)
    for path in ("/admin/invites", "/admin/users", "/admin/users/owner/deactivate",
                 "/admin/users/owner/reset-link", "/admin/invites/x/revoke",
                 "/admin/users/owner/revoke-admin"):
        response = await act(auth, bob, path, username="mallory", password=PASSWORD)
        assert response.status_code == 403, path


async def test_admin_forms_need_csrf(auth):
    owner, _ = await owner_and_bob(auth)
    for path in ("/admin/invites", "/admin/users/bob/deactivate", "/admin/users/bob/reset-link"):
        response = await owner.post(path, form={"uses": "1", "expires_days": "1"})
        assert response.status_code == 400, path
        assert "The form expired" in html.unescape(await response.get_data(as_text=True))
    assert 'class="pill pill-muted">Deactivated' not in await page(owner)


async def test_demoted_admin_open_page_can_do_nothing(auth):
    owner, bob = await owner_and_bob(auth)
    assert (await act(auth, owner, "/admin/users/bob/grant-admin")).status_code == 303
    token = await auth.csrf(bob, "/admin")  # bob's admin page is open
    assert (await act(auth, owner, "/admin/users/bob/revoke-admin")).status_code == 303
    response = await bob.post("/admin/users/owner/deactivate", form={"csrf_token": token})
    assert response.status_code == 403
    assert 'data-user="owner"' in await page(owner)
    assert (await bob.get("/admin")).status_code == 403


async def test_last_admin_cannot_be_revoked_or_deactivated(auth):
    owner, _ = await owner_and_bob(auth)
    for action in ("revoke-admin", "deactivate"):
        response = await act(auth, owner, f"/admin/users/owner/{action}")
        assert response.status_code == 409
        assert "last admin" in await response.get_data(as_text=True)
    assert (await act(auth, owner, "/admin/users/bob/grant-admin")).status_code == 303
    response = await act(auth, owner, "/admin/users/owner/revoke-admin")
    assert response.status_code == 303
    await page(owner, status=403)  # owner is no admin now; bob is the last one
    response = await act(auth, owner, "/admin/users/bob/revoke-admin")
    assert response.status_code == 403


async def test_unknown_user_and_action(auth):
    owner, _ = await owner_and_bob(auth)
    assert (await act(auth, owner, "/admin/users/nobody/deactivate")).status_code == 404
    assert (await act(auth, owner, "/admin/users/bob/explode")).status_code == 404
    assert (await act(auth, owner, "/admin/invites/nope/revoke")).status_code == 404


async def test_admin_creates_users(auth):
    owner, _ = await owner_and_bob(auth)
    response = await act(auth, owner, "/admin/users", username="carol", password=PASSWORD)
    assert response.status_code == 303
    assert 'data-user="carol"' in await page(owner, response.headers["Location"])
    response = await act(auth, owner, "/admin/users", username="carol", password=PASSWORD)
    assert response.status_code == 409
    response = await act(auth, owner, "/admin/users", username="x", password=PASSWORD)
    assert response.status_code == 400
    assert (await auth.login(auth.new_client(), "carol")).status_code == 303


# --- deactivation ----------------------------------------------------------------------

async def test_deactivation_ends_everything_at_once(app, auth, storage):
    owner, bob = await owner_and_bob(auth)
    bot_token = await app.extensions["chatapp"].accounts.create_api_token(
        await storage.user_by_name("bob"), "bot")
    bearer = {"Authorization": f"Bearer {bot_token}"}
    copy, headers = bare_client(app, cookie_value(bob))
    assert (await copy.get("/api/v1/me", headers=bearer)).status_code == 200
    async with copy.websocket("/ws", headers=headers) as ws:
        await next_event(ws, "hello")
        response = await act(auth, owner, "/admin/users/bob/deactivate")
        assert response.status_code == 303
        with pytest.raises(WebsocketDisconnectError) as closed:
            for _ in range(50):
                await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.args[0] == 1008
    assert (await copy.get("/api/v1/me", headers=headers)).status_code == 401
    assert (await copy.get("/api/v1/me", headers=bearer)).status_code == 401
    with pytest.raises(WebsocketResponseError) as refused:
        async with copy.websocket("/ws", headers=headers) as ws:
            await ws.receive()
    assert refused.value.response.status_code == 401
    response = await auth.login(auth.new_client(), "bob")
    assert response.status_code == 403
    assert "deactivated" in await response.get_data(as_text=True)
    text = await page(owner)
    assert "Deactivated" in text and "0 sessions · 0 tokens" in text
    users = (await (await owner.get("/api/v1/users")).get_json())["users"]
    assert next(u for u in users if u["username"] == "bob")["active"] is False
    # reactivated: the password works again
    assert (await act(auth, owner, "/admin/users/bob/reactivate")).status_code == 303
    assert (await auth.login(auth.new_client(), "bob")).status_code == 303


async def test_messages_of_a_deactivated_user_stay(auth):
    owner, bob = await owner_and_bob(auth)
    token = await auth.api_csrf(bob)
    sent = await bob.post("/api/v1/rooms/general/messages", json={"body": "still here"},
                          headers={"X-CSRF-Token": token})
    assert sent.status_code in (200, 201), await sent.get_data(as_text=True)
    assert (await act(auth, owner, "/admin/users/bob/deactivate")).status_code == 303
    history = await (await owner.get("/api/v1/rooms/general/messages")).get_json()
    assert any(m["body"] == "still here" for m in history["messages"])


# --- reset links -----------------------------------------------------------------------

async def test_reset_link_sets_password_once_and_ends_sessions(app, auth, storage):
    owner, bob = await owner_and_bob(auth)
    copy, headers = bare_client(app, cookie_value(bob))
    token = await reset_token(auth, owner, "bob")
    rows = await storage._all("SELECT token_hash FROM reset_tokens") if hasattr(
        storage, "_execute") else None
    if rows is not None:  # SQLite: only the hash is stored
        assert [r[0] for r in rows] == [token_hash(token)]
    stranger = auth.new_client()
    text = await page(stranger, f"/reset/{token}")
    assert "@bob" in text and 'name="password"' in text
    async with copy.websocket("/ws", headers=headers) as ws:
        await next_event(ws, "hello")
        form_token = await auth.csrf(stranger, f"/reset/{token}")
        response = await stranger.post(f"/reset/{token}", form={"password": "short",
                                                                 "csrf_token": form_token})
        assert response.status_code == 400
        response = await stranger.post(f"/reset/{token}", form={"password": NEW_PASSWORD})
        assert response.status_code == 400  # no CSRF token
        response = await stranger.post(f"/reset/{token}", form={
            "password": NEW_PASSWORD, "csrf_token": form_token})
        assert response.status_code == 303
        with pytest.raises(WebsocketDisconnectError) as closed:
            for _ in range(50):
                await asyncio.wait_for(ws.receive(), 5)
        assert closed.value.args[0] == 1008
    assert (await copy.get("/api/v1/me", headers=headers)).status_code == 401
    assert (await auth.login(auth.new_client(), "bob")).status_code == 401
    assert (await auth.login(auth.new_client(), "bob", NEW_PASSWORD)).status_code == 303
    # used: no form, and a second POST changes nothing
    text = await page(stranger, f"/reset/{token}", status=404)
    assert 'name="password"' not in text and "used" in text
    response = await stranger.post(f"/reset/{token}", form={
        "password": "yet another password", "csrf_token": form_token})
    assert response.status_code == 404
    assert (await auth.login(auth.new_client(), "bob", NEW_PASSWORD)).status_code == 303


async def test_expired_or_unknown_reset_link_shows_no_form(app, auth, storage):
    owner, _ = await owner_and_bob(auth)
    bob = await storage.user_by_name("bob")
    await storage.create_reset(token_hash("old-token"), bob.id, utcnow() - timedelta(seconds=1))
    for token in ("old-token", "never-made", "x" * 500):
        text = await page(auth.new_client(), f"/reset/{token}", status=404)
        assert 'name="password"' not in text


# --- invites and registration modes ------------------------------------------------------

async def test_invite_registers_and_is_used_up(auth):
    owner, _ = await owner_and_bob(auth)
    code = await invite_code(auth, owner, uses="1")
    text = await page(auth.new_client(), f"/join/{code}")
    assert 'name="username"' in text and 'name="csrf_token"' in text
    response = await join(auth, code, "carol")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    text = await page(auth.new_client(), f"/join/{code}", status=404)
    assert 'name="username"' not in text and "used up" in text
    assert "1 of 1 used" in await page(owner)


async def test_invite_refusals(auth, storage):
    owner, _ = await owner_and_bob(auth)
    code = await invite_code(auth, owner, uses="2")
    client = auth.new_client()
    token = await auth.csrf(client, f"/join/{code}")
    response = await client.post(f"/join/{code}", form={"username": "bob",
                                                        "password": PASSWORD,
                                                        "csrf_token": token})
    assert response.status_code == 409  # taken: the use is given back
    response = await client.post(f"/join/{code}", form={"username": "carol",
                                                        "password": PASSWORD})
    assert response.status_code == 400  # no CSRF
    assert "0 of 2 used" in await page(owner)
    for bad in (("0", "7"), ("2", "0"), ("many", "7"), ("1", "9999")):
        response = await act(auth, owner, "/admin/invites", uses=bad[0], expires_days=bad[1])
        assert response.status_code == 400, bad
    assert (await act(auth, owner, f"/admin/invites/{code}/revoke")).status_code == 303
    assert 'name="username"' not in await page(auth.new_client(), f"/join/{code}", status=404)
    client = auth.new_client()
    token = await auth.csrf(client, "/login")
    response = await client.post(f"/join/{code}", form={"username": "dave",
                                                        "password": PASSWORD,
                                                        "csrf_token": token})
    assert response.status_code == 404
    assert await storage.user_by_name("dave") is None
    await storage.create_invite("expired-code", 1, 5, utcnow() - timedelta(seconds=1))
    assert "expired" in await page(auth.new_client(), "/join/expired-code", status=404)
    assert (await auth.new_client().get("/join/unknown")).status_code == 404


@pytest.fixture
async def mode_app(request, tmp_path):
    own = tmp_path / "modes"  # beside the autouse ``app``, not on its database
    own.mkdir()
    app = create_app(make_config(own, CHATAPP_REGISTRATION=request.param))
    async with app.test_app():
        cheap_passwords(app)
        yield app


@pytest.mark.parametrize("mode_app", ["invite", "closed"], indirect=True)
async def test_registration_modes_refuse_strangers_but_not_the_first(mode_app):
    auth = AuthActions(mode_app)
    owner, _ = await auth.user("owner")  # the first account can always register
    client = auth.new_client()
    response = await client.get("/register")
    assert response.status_code == 403 and 'name="username"' not in await response.get_data(
        as_text=True)
    response = await client.post("/register", form={"username": "eve", "password": PASSWORD})
    assert response.status_code == 403
    assert await mode_app.extensions["chatapp"].storage.user_by_name("eve") is None
    response = await act(auth, owner, "/admin/users", username="carol", password=PASSWORD)
    assert response.status_code == 303
    code = await invite_code(auth, owner)
    assert (await join(auth, code, "dave")).status_code == 303  # invites work in both


def test_bad_registration_mode_is_refused(tmp_path):
    from chatapp.config import ConfigError
    with pytest.raises(ConfigError, match="CHATAPP_REGISTRATION must be open, invite or closed"):
        create_app(make_config(tmp_path, CHATAPP_REGISTRATION="sometimes"))


# --- the audit log and housekeeping ------------------------------------------------------

async def test_audit_log_records_logins_and_admin_actions(auth, storage):
    owner, _ = await owner_and_bob(auth)
    assert (await auth.login(auth.new_client(), "bob")).status_code == 303
    code = await invite_code(auth, owner)
    await reset_token(auth, owner, "bob")
    for action in ("grant-admin", "revoke-admin", "deactivate", "reactivate"):
        assert (await act(auth, owner, f"/admin/users/bob/{action}")).status_code == 303
    assert (await act(auth, owner, f"/admin/invites/{code}/revoke")).status_code == 303
    entries = await storage.audit(200)
    seen = [(e.actor, e.action, e.target) for e in reversed(entries)]
    assert ("bob", "login", "bob") in seen
    for action in ("reset link", "grant admin", "revoke admin", "deactivate", "reactivate"):
        assert ("owner", action, "bob") in seen, action
    assert [a for _, a, _ in seen if "invite" in a] == ["create invite", "revoke invite"]
    assert all(e.address == "<local>" for e in entries)
    text = await page(owner)
    assert 'data-action="deactivate"' in text and "from <local>" in text


async def test_housekeeping_prunes_expired_invites_and_reset_links(app, auth, storage):
    owner, _ = await owner_and_bob(auth)
    bob = await storage.user_by_name("bob")
    past, future = utcnow() - timedelta(seconds=1), utcnow() + timedelta(days=1)
    await storage.create_invite("old", bob.id, 1, past)
    await storage.create_invite("new", bob.id, 1, future)
    await storage.create_reset("old-hash", bob.id, past)
    await storage.create_reset("new-hash", bob.id, future)
    counts = await app.extensions["chatapp"].housekeeper.run_once()
    assert counts["invites"] == 1 and counts["reset_links"] == 1
    assert [i.code for i in await storage.invites()] == ["new"]
    assert await storage.reset_user("new-hash", utcnow(), use=False) is not None


async def test_chat_page_links_admin_for_admins_only(auth):
    owner, bob = await owner_and_bob(auth)
    assert 'href="/admin"' in await page(owner, "/")
    assert 'href="/admin"' not in await page(bob, "/")
