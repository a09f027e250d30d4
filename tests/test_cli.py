"""The ``chatapp`` command: --help, init-db, create-user (SPEC §2); --version, backup,
restore, export (SPEC §8)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
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


def test_init_db_refuses_a_newer_schema_naming_both_versions(env, tmp_path):
    from chatapp.storage.sqlite_schema import MIGRATIONS

    assert run(env, "init-db").exit_code == 0
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    result = CliRunner().invoke(main, ["init-db"], env=env)
    assert result.exit_code == 1 and result.exception is not None
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "version 99" in result.output and f"version {len(MIGRATIONS)}" in result.output


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


def test_create_token_prints_its_id_and_revoke_token_ends_it(env):
    assert run(env, "create-user", "robot", input=PASSWORD + "\n").exit_code == 0
    result = CliRunner().invoke(main, ["create-token", "robot"], env=env)
    assert result.exit_code == 0, result.output
    token, id_line = result.stdout.strip().splitlines()
    token_id = id_line.removeprefix("Token id: ")
    assert token_hash(token).startswith(token_id) and len(token_id) == 16

    async def who() -> object:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            return await storage.user_for_api_token(token_hash(token))
        finally:
            await storage.close()

    assert asyncio.run(who()) is not None
    refused = CliRunner().invoke(main, ["revoke-token", "0000000000000000"], env=env)
    assert refused.exit_code != 0 and "no such token" in refused.output
    assert asyncio.run(who()) is not None
    done = CliRunner().invoke(main, ["revoke-token", token_id], env=env)
    assert done.exit_code == 0, done.output
    assert f"Revoked token {token_id} of robot" in done.stdout
    assert asyncio.run(who()) is None
    again = CliRunner().invoke(main, ["revoke-token", token_id], env=env)
    assert again.exit_code != 0


def test_create_token_for_unknown_user_fails(env):
    result = CliRunner().invoke(main, ["create-token", "nobody"], env=env)
    assert result.exit_code != 0
    assert "no user" in result.output


# --- operations (SPEC §8): --version, backup, restore, export -------------------------

def test_version():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"chatapp, version {version('chatapp')}"


@pytest.mark.parametrize("command", ["backup", "restore", "export"])
def test_operations_commands_are_listed_with_help(command):
    assert command in CliRunner().invoke(main, ["--help"]).output
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def seed(env: dict[str, str], bodies: list[str], room: str = "general") -> list[int]:
    """Store messages by alice in ``room`` (made if missing); return their ids."""

    async def run() -> list[int]:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            user = await storage.user_by_name("alice")
            if user is None:
                user = await storage.create_user("alice", "not-a-real-hash")
            target = await storage.room(room)
            if target is None:
                target = await storage.create_room(room, room.title(), "public", user.id)
            ids = []
            for index, body in enumerate(bodies):
                message, _ = await storage.add_message(
                    target.id, user.id, body, f"{room}-{len(body)}-{index}-{body[:8]}"
                )
                ids.append(message.id)
            return ids
        finally:
            await storage.close()

    return asyncio.run(run())


def stored(env: dict[str, str], room: str = "general") -> tuple[str, list[str]]:
    """(epoch, bodies of ``room`` in order) as the storage reads them."""

    async def run() -> tuple[str, list[str]]:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            found = await storage.room(room)
            assert found is not None
            page = await storage.messages(found.id, before=None, after=0, limit=1000)
            return await storage.epoch(), [m.body for m in page.messages]
        finally:
            await storage.close()

    return asyncio.run(run())


def test_export_json_is_one_document_with_every_message_in_order(env):
    bodies = [f"message {i}" for i in range(230)]  # more than one storage page
    bodies[7] = "two\nlines & <b>not html</b> ünïcode"
    ids = seed(env, bodies)
    seed(env, ["elsewhere"], room="random")
    result = run(env, "export", "general")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["room"] == {"slug": "general", "name": "general", "kind": "public"}
    assert [m["body"] for m in document["messages"]] == bodies
    assert [m["id"] for m in document["messages"]] == ids
    assert {m["author"] for m in document["messages"]} == {"alice"}
    assert {m["room"] for m in document["messages"]} == {"general"}


def test_export_markdown_to_a_file(env, tmp_path):
    seed(env, ["hello *there*", "line one\nline two", "# not a heading"])
    output = tmp_path / "general.md"
    result = run(env, "export", "general", "--format", "markdown", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# general\n")
    assert "3 messages" in text
    assert text.count("**alice**") == 3
    assert "> hello *there*\n" in text
    assert "> line one\n> line two\n" in text
    assert "> # not a heading\n" in text
    assert text.index("hello") < text.index("line one") < text.index("not a heading")


def test_export_of_an_empty_room(env):
    assert run(env, "init-db").exit_code == 0
    result = run(env, "export", "general")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"] == []


def test_export_unknown_room_fails(env):
    assert run(env, "init-db").exit_code == 0
    result = run(env, "export", "nowhere")
    assert result.exit_code == 1
    assert "no room 'nowhere'" in result.output


def test_export_bad_format_fails(env):
    result = run(env, "export", "general", "--format", "xml")
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.output


def test_export_refuses_an_existing_output_unless_forced(env, tmp_path):
    seed(env, ["kept"])
    output = tmp_path / "out.json"
    output.write_text("precious")
    result = run(env, "export", "general", "--output", str(output))
    assert result.exit_code == 1
    assert "exists" in result.output and "--force" in result.output
    assert output.read_text() == "precious"
    result = run(env, "export", "general", "--output", str(output), "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text())["messages"][0]["body"] == "kept"


def test_export_into_a_missing_directory_fails(env, tmp_path):
    seed(env, ["x"])
    result = run(env, "export", "general", "--output", str(tmp_path / "no" / "such.json"))
    assert result.exit_code == 1
    assert "cannot write" in result.output


def test_backup_copies_the_database(env, tmp_path):
    seed(env, ["one", "two"])
    target = tmp_path / "backup.db"
    result = run(env, "backup", str(target))
    assert result.exit_code == 0, result.output
    assert "Backed up" in result.output
    # One self-contained file, no write-ahead log beside it, for its owner only.
    assert not Path(f"{target}-wal").exists()
    assert target.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy = dict(env, CHATAPP_DATABASE_URL=f"sqlite:///{target}")
    assert stored(copy) == stored(env)


def test_backup_refuses_an_existing_file_unless_forced(env, tmp_path):
    seed(env, ["one"])
    target = tmp_path / "backup.db"
    target.write_text("older backup")
    result = run(env, "backup", str(target))
    assert result.exit_code == 1
    assert "exists" in result.output and "--force" in result.output
    assert target.read_text() == "older backup"
    assert run(env, "backup", str(target), "--force").exit_code == 0
    copy = dict(env, CHATAPP_DATABASE_URL=f"sqlite:///{target}")
    assert stored(copy)[1] == ["one"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "case,message",
    [("no-database", "no such file"), ("no-directory", "no directory"),
     ("directory", "is a directory")],
)
def test_backup_bad_input_fails(env, tmp_path, case, message):
    if case != "no-database":
        seed(env, ["x"])
    target = {"no-database": tmp_path / "b.db", "no-directory": tmp_path / "no" / "b.db",
              "directory": tmp_path}[case]
    result = run(env, "backup", str(target))
    assert result.exit_code == 1
    assert message in result.output


def test_backup_and_restore_on_postgresql_point_to_its_tools(env):
    pg_env = dict(env, CHATAPP_DATABASE_URL="postgresql://chatapp@127.0.0.1:5432/none")
    result = run(pg_env, "backup", "x.dump")
    assert result.exit_code == 1
    assert "pg_dump" in result.output
    result = run(pg_env, "restore", "--yes", "x.dump")
    assert result.exit_code == 1
    assert "pg_restore" in result.output


def test_restore_replaces_the_store_and_changes_the_epoch(env, tmp_path):
    seed(env, ["before 1", "before 2"])
    assert run(env, "backup", str(tmp_path / "b.db")).exit_code == 0
    seed(env, ["after the backup"])
    old_epoch, _ = stored(env)
    result = run(env, "restore", "--yes", str(tmp_path / "b.db"))
    assert result.exit_code == 0, result.output
    assert "Restored" in result.output
    database = Path(env["CHATAPP_DATABASE_URL"].removeprefix("sqlite:///"))
    assert database.stat().st_mode & 0o777 == 0o600
    epoch, bodies = stored(env)
    assert bodies == ["before 1", "before 2"]
    assert epoch != old_epoch
    # The backup itself is left as it was.
    backup_env = dict(env, CHATAPP_DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    assert stored(backup_env) == (old_epoch, ["before 1", "before 2"])


def test_restore_asks_for_confirmation(env, tmp_path):
    seed(env, ["before"])
    assert run(env, "backup", str(tmp_path / "b.db")).exit_code == 0
    seed(env, ["after"])
    result = run(env, "restore", str(tmp_path / "b.db"), input="n\n")
    assert result.exit_code == 1
    assert "Replace" in result.output and "Aborted" in result.output
    assert stored(env)[1] == ["before", "after"]
    result = run(env, "restore", str(tmp_path / "b.db"), input="y\n")
    assert result.exit_code == 0, result.output
    assert stored(env)[1] == ["before"]


def _not_chatapp(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")


def _newer_schema(path: Path, env: dict[str, str]) -> None:
    assert run(env, "backup", str(path)).exit_code == 0
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 9999")


@pytest.mark.parametrize(
    "case,message",
    [("missing", "no such file"), ("directory", "is not a file"),
     ("text", "is not a chatapp SQLite database"), ("other-sqlite", "not chatapp's"),
     ("newer", "newer than this chatapp knows")],
)
def test_restore_bad_input_fails_and_changes_nothing(env, tmp_path, case, message):
    seed(env, ["kept"])
    source = tmp_path / "source.db"
    if case == "directory":
        source.mkdir()
    elif case == "text":
        source.write_text("hello, I am not a database\n" * 100)
    elif case == "other-sqlite":
        _not_chatapp(source)
    elif case == "newer":
        _newer_schema(source, env)
    before = stored(env)
    result = run(env, "restore", "--yes", str(source))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert stored(env) == before


@pytest.mark.parametrize("shared", [False, True], ids=["memory-broker", "shared-broker"])
def test_restore_refuses_while_a_server_holds_the_database(env, tmp_path, shared):
    from chatapp.services import _claim_single_process

    seed(env, ["kept"])
    assert run(env, "backup", str(tmp_path / "b.db")).exit_code == 0
    seed(env, ["newer"])
    # What a serving process holds (workers on a shared broker hold it together).
    held = _claim_single_process(env["CHATAPP_DATABASE_URL"], shared=shared)
    assert held is not None
    try:
        result = run(env, "restore", "--yes", str(tmp_path / "b.db"))
    finally:
        held.close()
    assert result.exit_code == 1
    assert "server is running" in result.output
    assert stored(env)[1] == ["kept", "newer"]


def test_export_leaves_deleted_messages_out(env):
    ids = seed(env, ["stays", "goes", "stays too"])

    async def delete() -> None:
        storage = open_storage(env["CHATAPP_DATABASE_URL"])
        await storage.connect()
        try:
            await storage.delete_message(ids[1])
        finally:
            await storage.close()

    asyncio.run(delete())
    for fmt in ("json", "markdown"):
        result = run(env, "export", "general", "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "stays too" in result.stdout and "goes" not in result.stdout
    document = json.loads(run(env, "export", "general").stdout)
    assert [m["id"] for m in document["messages"]] == [ids[0], ids[2]]


@pytest.mark.slow
def test_backup_of_a_busy_server_then_restore(tmp_path):
    """A backup taken while messages are being stored holds every message acknowledged
    before it began; restored into the stopped setup, the server comes back with all of
    them and a new epoch."""
    import threading

    from websockets.sync.client import connect

    from .servers import Browser, Server, events_of

    def hello_epoch(server: Server, browser: Browser) -> str:
        with connect(server.ws_url, additional_headers=browser.ws_headers()) as ws:
            (hello, *_) = events_of(ws.recv(timeout=10))
        assert hello["type"] == "hello"
        return str(hello["epoch"])

    data = tmp_path / "site"
    server = Server(data).start()
    backup = tmp_path / "backup.db"
    proc_env = dict(server.env(), CHATAPP_BROKER_URL="memory://")
    acked: list[int] = []
    stop = threading.Event()
    try:
        browser = Browser(server.base)
        assert browser.register("alice") == 303
        old_epoch = hello_epoch(server, browser)
        csrf = browser.csrf("/")

        def send() -> None:
            number = 0
            while not stop.is_set():
                number += 1
                status, _, body = browser.request(
                    "/api/v1/rooms/general/messages", headers={"X-CSRF-Token": csrf},
                    body={"body": f"busy {number}", "nonce": f"n{number}"},
                )
                assert status == 201, body
                acked.append(json.loads(body)["id"])

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + 60
        while len(acked) < 20 and sender.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        acked_before = list(acked)
        assert len(acked_before) >= 20
        result = subprocess.run([str(CHATAPP), "backup", str(backup)], env=proc_env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        during = len(acked)
        while len(acked) < during + 5 and sender.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        sender.join(30)
        assert len(acked) >= during + 5, "the sender stopped early"

        # A running server keeps restore away.
        result = subprocess.run([str(CHATAPP), "restore", "--yes", str(backup)], env=proc_env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert "server is running" in result.stderr
    finally:
        stop.set()
        server.kill()

    result = subprocess.run([str(CHATAPP), "restore", "--yes", str(backup)], env=proc_env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    server = Server(data).start()
    try:
        browser = Browser(server.base)
        assert browser.login("alice") == 303
        assert hello_epoch(server, browser) != old_epoch
        restored: list[int] = []
        after = 0
        while True:
            status, _, body = browser.request(
                f"/api/v1/rooms/general/messages?after={after}&limit=200")
            assert status == 200, body
            page = json.loads(body)
            restored += [m["id"] for m in page["messages"]]
            if not page["has_more"]:
                break
            after = restored[-1]
    finally:
        server.kill()
    assert set(acked_before) <= set(restored)
    assert set(restored) <= set(acked)  # nothing that was never acknowledged
    assert restored == sorted(restored)
