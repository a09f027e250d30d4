"""Bots: ``Authorization: Bearer <token>`` on the JSON API, no cookie, no CSRF."""

from __future__ import annotations

from typing import Any

import pytest


async def bot_token(app: Any, username: str = "robot") -> str:
    svc = app.extensions["chatapp"]
    user = await svc.accounts.register(username, "correct horse battery")
    return str(await svc.accounts.create_api_token(user, "test bot"))


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_bearer_token_reads_and_posts_without_csrf(app, scheme):
    token = await bot_token(app)
    bot = app.test_client()
    headers = {"Authorization": f"{scheme} {token}"}
    me = await bot.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert (await me.get_json())["username"] == "robot"
    posted = await bot.post(
        "/api/v1/rooms/general/messages", json={"body": "beep", "nonce": "b1"}, headers=headers
    )
    assert posted.status_code == 201
    assert (await posted.get_json())["author"] == "robot"


@pytest.mark.parametrize("credential", ["", "chatapp_wrong", "x" * 300])
async def test_a_wrong_bearer_token_is_401_json(app, credential):
    await bot_token(app)
    response = await app.test_client().get(
        "/api/v1/me", headers={"Authorization": f"Bearer {credential}"}
    )
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "unauthorized"


async def test_a_bearer_header_is_not_rescued_by_a_cookie(app, auth):
    client, _ = await auth.user("alice")
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


async def test_bearer_tokens_open_no_browser_pages(app):
    token = await bot_token(app)
    response = await app.test_client().get("/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login")


async def test_cookie_callers_still_need_csrf(auth):
    client, _ = await auth.user("alice")
    response = await client.post("/api/v1/rooms/general/messages", json={"body": "hi"})
    assert response.status_code == 400
