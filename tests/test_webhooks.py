"""Incoming webhooks (SPEC §12): admin API, posting as a bot, limits, the CLI."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chatapp.cli import main
from chatapp.config import Rate

from .conftest import test_config as make_config

both = pytest.mark.parametrize("backend", ["embedded", "scaled"], indirect=True)


async def admin_and_hook(auth: Any, room: str = "general", name: str = "deploybot"
                         ) -> tuple[Any, str, str, dict[str, Any]]:
    """The first user (an admin), their CSRF token, and a new hook's path and JSON."""
    client, csrf = await auth.user("alice")
    response = await client.post(f"/api/v1/rooms/{room}/webhooks", json={"name": name},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, await response.get_data(as_text=True)
    hook = await response.get_json()
    assert hook["url"].startswith("/hooks/hook_")
    return client, csrf, hook["url"], hook


@both
async def test_a_hook_posts_as_a_bot(app, auth):
    client, _, url, hook = await admin_and_hook(auth)
    assert hook["name"] == "deploybot" and hook["room"] == "general"
    hooker = app.test_client()  # no cookie, no CSRF: the token is the credential
    posted = await hooker.post(url, json={"body": "deployed v1.2"})
    assert posted.status_code == 201, await posted.get_data(as_text=True)
    message = await posted.get_json()
    assert message["author"] == "deploybot" and message["bot"] is True
    assert message["body"] == "deployed v1.2" and message["room"] == "general"
    history = await (await client.get("/api/v1/rooms/general/messages")).get_json()
    assert [(m["author"], m["bot"]) for m in history["messages"]] == [("deploybot", True)]
    people = await (await client.get("/api/v1/users")).get_json()
    assert [(u["username"], u["bot"]) for u in people["users"]] == [
        ("alice", False), ("deploybot", True)]


@both
async def test_people_are_not_bots(auth):
    client, csrf = await auth.user("alice")
    posted = await client.post("/api/v1/rooms/general/messages", json={"body": "hi"},
                               headers={"X-CSRF-Token": csrf})
    assert (await posted.get_json())["bot"] is False


@both
async def test_the_bot_cannot_log_in(app, auth):
    await admin_and_hook(auth)
    for password in ("", "!bot", "correct horse battery"):
        response = await auth.login(auth.new_client(), "deploybot", password)
        assert response.status_code in (400, 401)


@both
@pytest.mark.parametrize("token", ["hook_wrong", "nothook", "hook_" + "x" * 300, "%00"])
async def test_a_wrong_token_is_404_json(app, auth, token):
    await admin_and_hook(auth)
    response = await app.test_client().post(f"/hooks/{token}", json={"body": "x"})
    assert response.status_code == 404
    assert (await response.get_json())["error"]["code"] == "not_found"


@both
async def test_a_deleted_hook_is_404_and_its_messages_stay(app, auth):
    client, csrf, url, hook = await admin_and_hook(auth)
    assert (await app.test_client().post(url, json={"body": "one"})).status_code == 201
    deleted = await client.delete(f"/api/v1/webhooks/{hook['id']}",
                                  headers={"X-CSRF-Token": csrf})
    assert deleted.status_code == 204
    assert (await app.test_client().post(url, json={"body": "two"})).status_code == 404
    again = await client.delete(f"/api/v1/webhooks/{hook['id']}",
                                headers={"X-CSRF-Token": csrf})
    assert again.status_code == 404
    history = await (await client.get("/api/v1/rooms/general/messages")).get_json()
    assert [m["body"] for m in history["messages"]] == ["one"]



@both
async def test_a_deactivated_bot_posts_no_more(app, auth, storage):
    _, _, url, hook = await admin_and_hook(auth)
    bot = await storage.user_by_name("deploybot")
    assert await storage.set_active(bot.id, False) is not None
    assert (await app.test_client().post(url, json={"body": "x"})).status_code == 404
    await storage.set_active(bot.id, True)
    assert (await app.test_client().post(url, json={"body": "x"})).status_code == 201

@both
async def test_a_nonce_makes_a_post_idempotent(app, auth):
    client, _, url, _ = await admin_and_hook(auth)
    hooker = app.test_client()
    first = await (await hooker.post(url, json={"body": "once", "nonce": "n-1"})).get_json()
    second = await hooker.post(url, json={"body": "once", "nonce": "n-1"})
    assert second.status_code == 201
    assert (await second.get_json())["id"] == first["id"]
    history = await (await client.get("/api/v1/rooms/general/messages")).get_json()
    assert len(history["messages"]) == 1


@both
@pytest.mark.parametrize(("payload", "status", "code"), [
    ({"body": "x" * 4001}, 422, "too_large"),
    ({"body": "   "}, 422, "invalid"),
    ({}, 422, "invalid"),
    ({"body": 5}, 422, "invalid"),
    ({"body": "ok", "nonce": "n" * 65}, 422, "invalid"),
    (["body"], 400, "invalid_json"),
])
async def test_bodies_are_validated_like_the_api(app, auth, payload, status, code):
    _, _, url, _ = await admin_and_hook(auth)
    response = await app.test_client().post(url, json=payload)
    assert response.status_code == status
    assert (await response.get_json())["error"]["code"] == code


@both
async def test_bad_json_is_400(app, auth):
    _, _, url, _ = await admin_and_hook(auth)
    for data in (b"{", b"\xff\xfe", b"[" * 5000):
        response = await app.test_client().post(
            url, data=data, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert (await response.get_json())["error"]["code"] == "invalid_json"


@both
async def test_only_post_is_allowed(app, auth):
    _, _, url, _ = await admin_and_hook(auth)
    response = await app.test_client().get(url)
    assert response.status_code == 405
    assert (await response.get_json())["error"]["code"] == "method_not_allowed"


@both
async def test_each_hook_has_its_own_rate_limit(tmp_path):
    from chatapp import create_app

    from .conftest import AuthActions

    app = create_app(make_config(tmp_path, CHATAPP_WEBHOOK_RATE=Rate(2, 3600)))
    async with app.test_app():
        auth = AuthActions(app)
        client, csrf, url, _ = await admin_and_hook(auth)
        other = await client.post("/api/v1/rooms/general/webhooks", json={"name": "ci-bot"},
                                  headers={"X-CSRF-Token": csrf})
        other_url = (await other.get_json())["url"]
        hooker = app.test_client()
        for n in range(2):
            assert (await hooker.post(url, json={"body": f"m{n}"})).status_code == 201
        refused = await hooker.post(url, json={"body": "m3"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await refused.get_json())["error"]["code"] == "rate_limited"
        # Another hook spends its own budget.
        assert (await hooker.post(other_url, json={"body": "ci"})).status_code == 201


@both
async def test_non_admins_are_refused(app, auth):
    _, _, _, hook = await admin_and_hook(auth)
    bob, csrf = await auth.user("bob")
    headers = {"X-CSRF-Token": csrf}
    created = await bob.post("/api/v1/rooms/general/webhooks", json={"name": "evil"},
                             headers=headers)
    assert created.status_code == 403
    assert (await created.get_json())["error"]["code"] == "forbidden"
    assert (await bob.get("/api/v1/rooms/general/webhooks")).status_code == 403
    deleted = await bob.delete(f"/api/v1/webhooks/{hook['id']}", headers=headers)
    assert deleted.status_code == 403
    anonymous = await app.test_client().get("/api/v1/rooms/general/webhooks")
    assert anonymous.status_code == 401


@both
async def test_listing_shows_no_secrets(auth):
    client, csrf, url, hook = await admin_and_hook(auth)
    listed = await (await client.get("/api/v1/rooms/general/webhooks")).get_json()
    assert listed == {"webhooks": [{"id": hook["id"], "room": "general",
                                    "name": "deploybot", "created_at": hook["created_at"]}]}
    assert url.removeprefix("/hooks/") not in str(listed)


@both
async def test_creation_is_validated(auth):
    client, csrf = await auth.user("alice")
    await auth.user("bob")
    headers = {"X-CSRF-Token": csrf}
    cases = [("general", {"name": "x"}, 422), ("general", {}, 422),
             ("general", {"name": "BOB"}, 409), ("nowhere", {"name": "ci-bot"}, 404)]
    for room, payload, status in cases:
        response = await client.post(f"/api/v1/rooms/{room}/webhooks", json=payload,
                                     headers=headers)
        assert response.status_code == status, (room, payload)
    assert (await client.post("/api/v1/rooms/general/webhooks", json={"name": "ci-bot"})
            ).status_code == 400  # cookie callers need the CSRF header
    # Two hooks may share one bot name.
    for _ in range(2):
        response = await client.post("/api/v1/rooms/general/webhooks", json={"name": "ci-bot"},
                                     headers=headers)
        assert response.status_code == 201
    assert (await client.delete("/api/v1/webhooks/99999999999999999999999",
                                headers=headers)).status_code == 404


def test_cli_create_webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("CHATAPP_"):
            monkeypatch.delenv(name)
    env = {
        "CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CHATAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "CHATAPP_SECRET_KEY": "cli-test-secret-" + "x" * 32,
    }
    result = CliRunner().invoke(main, ["create-webhook", "general", "--name", "ci-bot"], env=env)
    assert result.exit_code == 0, result.output
    path, id_line = result.stdout.strip().splitlines()
    assert path.startswith("/hooks/hook_") and id_line.startswith("Webhook id: ")
    refused = CliRunner().invoke(main, ["create-webhook", "nowhere", "--name", "ci-bot"], env=env)
    assert refused.exit_code != 0 and "no room" in refused.output

    from chatapp import create_app

    async def post() -> Any:
        app = create_app({**env, "CHATAPP_ENV": "testing"})
        async with app.test_app():
            response = await app.test_client().post(path, json={"body": "from the CLI's hook"})
            return response.status_code, await response.get_json()

    status, message = asyncio.run(post())
    assert status == 201 and message["author"] == "ci-bot" and message["bot"] is True
