"""`chatapp deactivate NAME` and `chatapp reset-link NAME` (SPEC §11)."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import websockets
from click.testing import CliRunner

from chatapp.accounts import token_hash
from chatapp.cli import main
from chatapp.storage import open_storage
from chatapp.storage.models import utcnow

from .conftest import need_service, port_open
from .servers import Browser, Server, close_code, events_of
from .test_cli import CHATAPP, PASSWORD, env, lookup, run  # noqa: F401 - env is a fixture


def test_deactivate_ends_sessions_and_refuses_the_last_admin(env):  # noqa: F811
    assert run(env, "create-user", "boss", "--admin", input=PASSWORD + "\n").exit_code == 0
    assert run(env, "create-user", "bob", input=PASSWORD + "\n").exit_code == 0
    assert run(env, "create-token", "bob").exit_code == 0
    refused = CliRunner().invoke(main, ["deactivate", "boss"], env=env)
    assert refused.exit_code != 0 and "last admin" in refused.output
    assert lookup(env, "boss").active
    unknown = CliRunner().invoke(main, ["deactivate", "nobody"], env=env)
    assert unknown.exit_code != 0 and "no such user" in unknown.output
    done = CliRunner().invoke(main, ["deactivate", "bob"], env=env)
    assert done.exit_code == 0, done.output
    assert "Deactivated bob" in done.stdout
    assert not lookup(env, "bob").active

    async def left() -> tuple[int, list[str]]:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            rows = [a for a in await storage.accounts() if a.username == "bob"]
            return rows[0].tokens, [e.action for e in await storage.audit(10)]
        finally:
            await storage.close()

    tokens, actions = asyncio.run(left())
    assert tokens == 0 and "deactivate" in actions


def test_reset_link_prints_a_working_link(env):  # noqa: F811
    assert run(env, "create-user", "bob", input=PASSWORD + "\n").exit_code == 0
    full = CliRunner().invoke(main, ["reset-link", "bob", "--base-url",
                                     "https://chat.example.com/"], env=env)
    assert full.exit_code == 0, full.output
    link = full.stdout.strip()
    assert link.startswith("https://chat.example.com/reset/")
    configured = CliRunner().invoke(main, ["reset-link", "bob"], env={
        **env, "CHATAPP_PUBLIC_URL": "https://team.example.org"})
    assert configured.stdout.strip().startswith("https://team.example.org/reset/")
    bare = CliRunner().invoke(main, ["reset-link", "bob"], env=env)
    assert bare.stdout.strip().startswith("/reset/")
    unknown = CliRunner().invoke(main, ["reset-link", "nobody"], env=env)
    assert unknown.exit_code != 0

    async def target(token: str) -> object:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            return await storage.reset_user(token_hash(token), utcnow(), use=False)
        finally:
            await storage.close()

    user = asyncio.run(target(link.rsplit("/", 1)[1]))
    assert user is not None and user.username == "bob"  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_deactivate_closes_a_running_servers_websockets_through_redis(tmp_path):
    """With a shared broker the command tells the running server: 1008 at once."""
    if not port_open("127.0.0.1", 6379):
        need_service("Redis", "nothing listens on 127.0.0.1:6379")
    broker = f"redis://127.0.0.1:6379/0?prefix=test-{secrets.token_hex(6)}"
    server = Server(tmp_path / "data", {"CHATAPP_BROKER_URL": broker})
    await asyncio.to_thread(server.start)
    try:
        owner, bob = Browser(server.base), Browser(server.base)
        assert owner.register("owner") == 303 and bob.register("bob") == 303
        async with websockets.connect(server.ws_url, additional_headers=bob.ws_headers()) as ws:
            assert events_of(await asyncio.wait_for(ws.recv(), 10))[0]["type"] == "hello"
            done = await asyncio.create_subprocess_exec(
                str(CHATAPP), "deactivate", "bob", env=server.env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await done.communicate()
            assert done.returncode == 0, err
            assert b"Deactivated bob" in out
            assert await close_code(ws) == 1008
        assert bob.request("/api/v1/me")[0] == 401
    finally:
        server.kill()
