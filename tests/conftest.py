"""Shared fixtures: ``app``, ``client``, ``auth`` and service availability."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from chatapp import create_app

from . import pg
from .hashing import cheap_hasher_passwords
from .servers import Server

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')
PASSWORD = "correct horse battery"


def services_required() -> bool:
    """Under CI a missing Redis/PostgreSQL/Chromium fails the run instead of skipping."""
    return os.environ.get("CI") == "true" or os.environ.get("CHATAPP_REQUIRE_SERVICES") == "1"


def need_service(name: str, reason: str) -> None:
    """Skip with a reason, or fail when services are required."""
    message = f"{name} unavailable: {reason}"
    if services_required():
        pytest.fail(message + " (CI=true or CHATAPP_REQUIRE_SERVICES=1: failing, not skipping)")
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# The app-level suites run twice: on the embedded defaults (SQLite, memory broker) and
# on the scale-out backends (PostgreSQL, Redis), so both keep every promise.
BACKEND_SUITES = {
    "test_smoke", "test_accounts", "test_api", "test_api_tokens", "test_pages", "test_ws_protocol",
    "test_account", "test_admin",
    "test_server", "test_ws_server", "test_ws_conversations", "test_api_messages",
    "test_hardening", "test_dms", "test_mentions", "test_search", "test_uploads",
}
_current_backend = {"name": "embedded"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("embedded_only"):
        return
    if metafunc.module.__name__.rsplit(".", 1)[-1] in BACKEND_SUITES:
        metafunc.parametrize("backend", ["embedded", "scaled"], indirect=True)


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which storage and broker ``test_config`` builds apps on for this test."""
    name = getattr(request, "param", "embedded")
    _current_backend["name"] = name
    try:
        yield name
    finally:
        _current_backend["name"] = "embedded"
        if name == "scaled":
            pg.drop_claimed()


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app a test builds in this process hashes with cheap argon2id parameters
    (tests/hashing.py): a full hash costs ~0.1-0.4 s and registering, logging in and
    changing passwords happen thousands of times in the suite. Tests about the
    parameters themselves build ``Passwords()`` (argon2-cffi's defaults) explicitly."""
    monkeypatch.setattr("chatapp.services.Passwords", cheap_hasher_passwords)


def backend_urls(tmp_path: Path) -> tuple[str, str]:
    """(database URL, broker URL) for the current backend."""
    if _current_backend["name"] != "scaled":
        return f"sqlite:///{tmp_path / 'chatapp.db'}", "memory://"
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    if not port_open("127.0.0.1", 6379):
        need_service("Redis", "nothing listens on 127.0.0.1:6379")
    broker = f"redis://127.0.0.1:6379/0?prefix=test-{secrets.token_hex(6)}"
    return pg.claim_schema_url(), broker


def test_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    database, broker = backend_urls(tmp_path)
    config: dict[str, Any] = {
        "CHATAPP_ENV": "testing",
        "CHATAPP_SECRET_KEY": "test-secret-" + "x" * 40,
        "CHATAPP_DATABASE_URL": database,
        "CHATAPP_BROKER_URL": broker,
        "CHATAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "CHATAPP_PRESENCE_GRACE_SECONDS": "0",
        "CHATAPP_API_RATE": "100000/1",
    }
    config.update(overrides)
    return config


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return test_config(tmp_path)


@pytest.fixture
async def app(config: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_app(config)
    async with app.test_app():
        yield app


@pytest.fixture
def client(app: Quart) -> QuartClient:
    return app.test_client()


class AuthActions:
    """Register, log in and log out through the real forms, like a browser."""

    def __init__(self, app: Quart) -> None:
        self.app = app

    def new_client(self) -> QuartClient:
        return self.app.test_client()

    async def csrf(self, client: QuartClient, page: str = "/login") -> str:
        response = await client.get(page)
        match = CSRF_INPUT.search(await response.get_data(as_text=True))
        assert match, f"no csrf_token input on {page}"
        return match.group(1)

    async def register(
        self, client: QuartClient, username: str = "alice", password: str = PASSWORD
    ) -> Any:
        token = await self.csrf(client, "/register")
        return await client.post(
            "/register",
            form={"username": username, "password": password, "csrf_token": token},
        )

    async def login(
        self, client: QuartClient, username: str = "alice", password: str = PASSWORD,
        **extra: str,
    ) -> Any:
        token = await self.csrf(client, "/login")
        form = {"username": username, "password": password, "csrf_token": token, **extra}
        return await client.post("/login", form=form)

    async def logout(self, client: QuartClient) -> Any:
        token = await self.api_csrf(client)
        return await client.post("/logout", form={"csrf_token": token})

    async def api_csrf(self, client: QuartClient) -> str:
        """The token the chat page hands its JavaScript (meta tag)."""
        response = await client.get("/")
        match = CSRF_META.search(await response.get_data(as_text=True))
        assert match, "no csrf-token meta tag on the chat page"
        return match.group(1)

    async def user(self, username: str = "alice") -> tuple[QuartClient, str]:
        """A fresh client registered as ``username``, with its API CSRF token."""
        client = self.new_client()
        response = await self.register(client, username)
        assert response.status_code == 303, await response.get_data(as_text=True)
        return client, await self.api_csrf(client)


@pytest.fixture
def auth(app: Quart) -> AuthActions:
    return AuthActions(app)


def server_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Environment for a real server on the current backend's storage and broker."""
    database, broker = backend_urls(tmp_path)
    return {"CHATAPP_DATABASE_URL": database, "CHATAPP_BROKER_URL": broker, **overrides}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real ``hypercorn --config hypercorn.toml`` process on the current backend."""
    server = Server(tmp_path, server_env(tmp_path)).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def storage(app: Quart) -> Any:
    return app.extensions["chatapp"].storage
