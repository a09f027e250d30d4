"""The ``chatapp`` command: --help, init-db, create-user (SPEC §2)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatapp.accounts import token_hash
from chatapp.cli import main
from chatapp.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent
CHATAPP = Path(sys.executable).parent / "chatapp"
PASSWORD = "correct horse battery"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("CHATAPP_"):
            monkeypatch.delenv(name)
    return {
        "CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CHATAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "CHATAPP_SECRET_KEY": "cli-test-secret-" + "x" * 32,
    }


def run(env: dict[str, str], *args: str, input: str | None = None):  # noqa: A002
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def lookup(env: dict[str, str], username: str):
    async def find():
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            return await storage.user_by_name(username)
        finally:
            await storage.close()

    return asyncio.run(find())


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "init-db", "create-user"):
        assert command in result.output


@pytest.mark.parametrize("command", ["serve", "init-db", "create-user"])
def test_each_command_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_create_user_help_mentions_admin():
    result = CliRunner().invoke(main, ["create-user", "--help"])
    assert "--admin" in result.output
    assert "--password" not in result.output  # hidden: passwords do not belong in argv


def test_init_db_creates_schema(env, tmp_path):
    result = run(env, "init-db")
    assert result.exit_code == 0, result.output
    assert "Database ready" in result.output
    db = tmp_path / "cli.db"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        rooms = [row[0] for row in conn.execute("SELECT slug FROM rooms")]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert {"users", "sessions", "rooms", "memberships", "messages"} <= tables
    assert rooms == ["general"]
    assert version >= 1


def test_init_db_twice_is_harmless(env, tmp_path):
    assert run(env, "init-db").exit_code == 0
    assert run(env, "init-db").exit_code == 0
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM rooms").fetchone()[0] == 1


def test_create_admin_with_password_on_stdin(env):
    result = run(env, "create-user", "root", "--admin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Created admin root" in result.output
    assert PASSWORD not in result.output
    user = lookup(env, "root")
    assert user is not None and user.is_admin
    assert user.password_hash.startswith("$argon2id$")


def test_create_plain_user_after_an_admin(env):
    assert run(env, "create-user", "root", "--admin", input=PASSWORD + "\n").exit_code == 0
    result = run(env, "create-user", "carol", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Created user carol" in result.output
    assert not (lookup(env, "carol")).is_admin


async def test_created_user_can_log_in(env, tmp_path):
    from chatapp import create_app

    from .conftest import AuthActions

    result = await asyncio.to_thread(
        run, env, "create-user", "root", "--admin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    app = create_app(dict(env, CHATAPP_ENV="testing"))
    async with app.test_app():
        auth = AuthActions(app)
        client = app.test_client()
        assert (await auth.login(client, "root", PASSWORD)).status_code == 303
        me = await (await client.get("/api/v1/me")).get_json()
        assert me == {"id": me["id"], "username": "root", "is_admin": True}


def test_create_user_duplicate_fails(env):
    assert run(env, "create-user", "root", input=PASSWORD + "\n").exit_code == 0
    result = run(env, "create-user", "ROOT", input=PASSWORD + "\n")
    assert result.exit_code != 0
    assert "taken" in result.output


@pytest.mark.parametrize(
    "name,password,reason",
    [("ab", PASSWORD, "3–32"), ("bad name", PASSWORD, "3–32"), ("root", "short", "8–256")],
)
def test_create_user_validates(env, name, password, reason):
    result = run(env, "create-user", name, input=password + "\n")
    assert result.exit_code != 0
    assert reason in result.output
    assert password not in result.output or password == PASSWORD


def test_create_user_empty_stdin_fails(env):
    result = run(env, "create-user", "root", input="")
    assert result.exit_code != 0


def test_console_script_help():
    result = subprocess.run(
        [str(CHATAPP), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "init-db", "create-user"):
        assert command in result.stdout


def test_console_script_create_user_reads_stdin(env, tmp_path):
    proc_env = dict(os.environ, **env)
    result = subprocess.run(
        [str(CHATAPP), "create-user", "dana", "--admin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, env=proc_env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Created admin dana" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert (lookup(env, "dana")).is_admin


def test_create_token_prints_a_token_that_authenticates(env):
    assert run(env, "create-user", "robot", input=PASSWORD + "\n").exit_code == 0
    result = CliRunner().invoke(main, ["create-token", "robot", "--label", "ci"], env=env)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("chatapp_") and len(token) > 40

    async def who() -> object:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            return await storage.user_for_api_token(token_hash(token))
        finally:
            await storage.close()

    user = asyncio.run(who())
    assert user is not None and user.username == "robot"  # type: ignore[attr-defined]


def test_create_token_for_unknown_user_fails(env):
    result = CliRunner().invoke(main, ["create-token", "nobody"], env=env)
    assert result.exit_code != 0
    assert "no user" in result.output
