"""Per-user limits through the app (test client), on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

import chatapp.chat
from chatapp import create_app
from chatapp.config import ConfigError, Rate, load
from chatapp.limits import MemoryLimits, RateLimitError
from chatapp.storage.models import utcnow

from .conftest import PASSWORD, AuthActions
from .conftest import test_config as make_config
from .hashing import cheap_passwords

both_backends = pytest.mark.parametrize("backend", ["embedded", "scaled"], indirect=True)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Quart]:
    app = create_app(make_config(tmp_path))
    cheap_passwords(app)
    async with app.test_app():
        yield app


class Api:
    def __init__(self, client: Any, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    async def post(self, path: str, body: Any) -> Any:
        return await self.client.post(f"/api/v1{path}", json=body,
                                      headers={"X-CSRF-Token": self.csrf})


async def user(app: Quart, name: str) -> Api:
    return Api(*await AuthActions(app).user(name))


async def refused(response: Any) -> dict[str, Any]:
    """A 429 with Retry-After and the JSON error body; the error object."""
    assert response.status_code == 429, await response.get_data(as_text=True)
    assert 1 <= int(response.headers["Retry-After"])
    error = (await response.get_json())["error"]
    assert error["status"] == 429 and error["code"] == "rate_limited"
    return error  # type: ignore[no-any-return]


@both_backends
async def test_ten_rooms_per_user_then_429(app: Quart) -> None:
    alice = await user(app, "alice")
    # Refused requests do not spend the budget.
    assert (await alice.post("/rooms", {"name": "", "kind": "public"})).status_code == 422
    assert (await alice.post("/rooms", {"name": "x", "kind": "odd"})).status_code == 422
    for i in range(10):
        response = await alice.post("/rooms", {"name": f"room {i}", "kind": "private"})
        assert response.status_code == 201, i
    response = await alice.post("/rooms", {"name": "one more", "kind": "public"})
    error = await refused(response)
    assert error["message"] == "too many new rooms; try again later"
    assert int(response.headers["Retry-After"]) <= 600
    assert "one-more" not in [r["slug"] for r in
                              (await (await alice.client.get("/api/v1/rooms")).get_json())["rooms"]]
    bob = await user(app, "bob")
    assert (await bob.post("/rooms", {"name": "bobs", "kind": "public"})).status_code == 201


@both_backends
async def test_member_adds_per_user_then_429(app: Quart, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chatapp.chat, "MEMBER_ADD_RATE", Rate(2, 600))
    alice = await user(app, "alice")
    for name in ("bob", "carol", "dave"):
        await user(app, name)
    assert (await alice.post("/rooms", {"name": "secret", "kind": "private"})).status_code == 201
    assert (await alice.post("/rooms/secret/members", {"username": "nobody"})).status_code == 404
    for name in ("bob", "carol"):
        response = await alice.post("/rooms/secret/members", {"username": name})
        assert response.status_code == 201
    response = await alice.post("/rooms/secret/members", {"username": "dave"})
    error = await refused(response)
    assert error["message"] == "too many people added; try again later"


@both_backends
async def test_the_domain_and_the_web_share_one_limits_store(app: Quart) -> None:
    chat = app.extensions["chatapp"].chat
    store = app.extensions["chatapp"].limits
    assert chat.limits is store  # one store for the web paths and the domain
    assert isinstance(store, MemoryLimits) == (
        app.config["CHATAPP_BROKER_URL"] == "memory://")


def test_max_connections_per_user_setting(tmp_path: Path) -> None:
    base = {"CHATAPP_SECRET_KEY": "k" * 40, "CHATAPP_INSTANCE_PATH": str(tmp_path)}
    assert load(base)["CHATAPP_MAX_CONNECTIONS_PER_USER"] == 20
    assert load(base | {"CHATAPP_MAX_CONNECTIONS_PER_USER": " 3 "})[
        "CHATAPP_MAX_CONNECTIONS_PER_USER"] == 3
    for bad in ("0", "-1", "many", "2.5"):
        with pytest.raises(ConfigError, match="CHATAPP_MAX_CONNECTIONS_PER_USER"):
            load(base | {"CHATAPP_MAX_CONNECTIONS_PER_USER": bad})


@both_backends
async def test_parallel_wrong_logins_get_no_more_than_five_tries(app: Quart) -> None:
    """Failures are checked before the (slow) password check and recorded after it:
    attempts in flight count too, so a burst cannot slip past the limit."""
    auth = AuthActions(app)
    await auth.user("alice")
    clients = [auth.new_client() for _ in range(12)]
    tokens = [await auth.csrf(client, "/login") for client in clients]

    async def attempt(client: Any, token: str) -> int:
        response = await client.post(
            "/login", form={"username": "alice", "password": "wrong password",
                            "csrf_token": token},
            scope_base={"client": ("10.7.7.7", 40000)})
        return int(response.status_code)

    statuses = await asyncio.gather(*(attempt(c, t) for c, t in zip(clients, tokens, strict=True)))
    assert sorted(statuses) == [401] * 5 + [429] * 7
    storage = app.extensions["chatapp"].storage
    count, _ = await storage.login_failures("user:alice", utcnow() - timedelta(minutes=15))
    assert count == 5


@both_backends
async def test_a_burst_of_right_logins_from_one_address_all_succeed(app: Quart) -> None:
    auth = AuthActions(app)
    await auth.user("alice")
    clients = [auth.new_client() for _ in range(25)]
    tokens = [await auth.csrf(client, "/login") for client in clients]
    responses = await asyncio.gather(*(
        client.post("/login", form={"username": "alice", "password": PASSWORD,
                                    "csrf_token": token},
                    scope_base={"client": ("10.8.8.8", 40000)})
        for client, token in zip(clients, tokens, strict=True)))
    assert [r.status_code for r in responses] == [303] * 25


async def test_a_limit_hit_on_any_route_is_a_429_page_not_a_500(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))

    @app.get("/limited-page")
    async def limited_page() -> str:
        raise RateLimitError(11.2, "too many tries")

    async with app.test_app():
        response = await app.test_client().get("/limited-page")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "12"
        assert response.mimetype == "text/html"
        assert "too many tries" in await response.get_data(as_text=True)
