"""The ``chatapp`` command: serve, init-db, create-user, backup, restore, export, ..."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click
from quart import Quart

from . import asset


def init_app(app: Quart) -> None:
    app.cli.add_command(init_db_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(create_token_command)


@click.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the database schema (also done at every start)."""
    from . import create_app

    app = create_app()

    async def run() -> None:
        storage = app.extensions["chatapp"].storage
        await storage.connect()
        await storage.close()

    from .storage import StorageError

    try:
        asyncio.run(run())
    except StorageError as error:  # e.g. a schema newer than this release knows
        raise click.ClickException(str(error)) from None
    click.echo(f"Database ready: {app.config['CHATAPP_DATABASE_URL']}")


@click.command("create-user")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--password", envvar="CHATAPP_NEW_PASSWORD", hidden=True)
def create_user_command(name: str, admin: bool, password: str | None) -> None:
    """Create a user; the password comes from a prompt or standard input."""
    from . import create_app
    from .accounts import AccountError

    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\n")
    app = create_app()

    async def run() -> None:
        svc = app.extensions["chatapp"]
        await svc.storage.connect()
        try:
            user = await svc.accounts.register(name, password, admin=admin)
        finally:
            await svc.storage.close()
        role = "admin" if user.is_admin else "user"
        click.echo(f"Created {role} {user.username} (id {user.id})")

    try:
        asyncio.run(run())
    except AccountError as error:
        raise click.ClickException(str(error)) from None


@click.command("create-token")
@click.argument("name")
@click.option("--label", default="bot", show_default=True, help="What the token is for.")
def create_token_command(name: str, label: str) -> None:
    """Create an API token for user NAME; prints the token, then its id (for revoke-token)."""
    from . import create_app
    from .accounts import AccountError

    app = create_app()

    async def run() -> tuple[str, str]:
        svc = app.extensions["chatapp"]
        await svc.storage.connect()
        try:
            user = await svc.storage.user_by_name(name)
            if user is None:
                raise click.ClickException(f"no user {name!r}")
            new = await svc.profile.create_token(user, label)
            return new.token, new.info.id
        finally:
            await svc.storage.close()

    try:
        token, token_id = asyncio.run(run())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(token)
    click.echo(f"Token id: {token_id}")
    click.echo("Shown once: keep it secret. Send it as 'Authorization: Bearer <token>'; "
               f"'chatapp revoke-token {token_id}' revokes it.", err=True)


@click.command("revoke-token")
@click.argument("token_id", metavar="ID")
def revoke_token_command(token_id: str) -> None:
    """Revoke an API token by the id create-token (or the account page) showed."""
    from . import create_app
    from .accounts import AccountError

    app = create_app()

    async def run() -> str:
        svc = app.extensions["chatapp"]
        await svc.storage.connect()
        try:
            return str((await svc.profile.revoke_token(token_id)).username)
        finally:
            await svc.storage.close()

    try:
        owner = asyncio.run(run())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Revoked token {token_id} of {owner}")


@click.command("create-webhook")
@click.argument("room")
@click.option("--name", required=True, help="The bot name its messages show.")
def create_webhook_command(room: str, name: str) -> None:
    """Create an incoming webhook for ROOM; prints its secret URL path, once."""
    from . import create_app
    from .chat import ChatError
    from .webhooks import Webhooks, hook_path

    app = create_app()

    async def run() -> tuple[int, str]:
        svc = app.extensions["chatapp"]
        await svc.storage.connect()
        try:
            hook, token = await Webhooks(svc.storage, svc.chat, svc.limits).create(
                None, room, name)
            return hook.id, token
        finally:
            await svc.storage.close()

    try:
        hook_id, token = asyncio.run(run())
    except ChatError as error:
        raise click.ClickException(error.message) from None
    click.echo(hook_path(token))
    click.echo(f"Webhook id: {hook_id}")
    click.echo("Shown once: keep it secret. POST JSON {\"body\": ...} to this path on the"
               " server's address; DELETE /api/v1/webhooks/ID removes it.", err=True)


@click.command("deactivate")
@click.argument("name")
def deactivate_command(name: str) -> None:
    """Deactivate user NAME: their sessions and API tokens end; messages stay."""
    from .admin import CLI_ACTOR

    shared = _run_admin(lambda admin: admin.deactivate(CLI_ACTOR, name, "localhost"))
    click.echo(f"Deactivated {name}: sessions and API tokens ended")
    if not shared:
        click.echo("With the in-memory broker a running server cannot be told: its open "
                   "websockets of this user close at their next reconnect.", err=True)


@click.command("reset-link")
@click.argument("name")
@click.option("--base-url", help="The address people reach chatapp at, e.g. "
              "https://chat.example.com [default: CHATAPP_PUBLIC_URL].")
def reset_link_command(name: str, base_url: str | None) -> None:
    """Print a one-time password reset link for user NAME (valid 24 hours)."""
    from .admin import CLI_ACTOR

    tokens: list[str] = []

    async def make(admin: Any) -> None:
        tokens.append(await admin.reset_link(CLI_ACTOR, name, "localhost"))

    base = _run_admin(make, want_base=True)
    root = (base_url or "").strip().rstrip("/") or str(base)
    click.echo(f"{root}/reset/{tokens[0]}")
    if not root:
        click.echo("A path only: put the server's address in front (--base-url or "
                   "CHATAPP_PUBLIC_URL). It works once, for 24 hours.", err=True)


def _run_admin(action: Any, want_base: bool = False) -> Any:
    """Run one admin action against the configured store (and broker, when shared)."""
    from . import create_app
    from .accounts import AccountError
    from .broker import BrokerError

    app = create_app()
    svc = app.extensions["chatapp"]
    shared = svc.transport.shared_across_processes

    async def noop(*_: Any) -> None:
        return None

    async def run() -> None:
        await svc.storage.connect()
        try:
            await svc.transport.connect(lambda *_: None, noop)
            try:
                await action(svc.admin)
            finally:
                await svc.transport.close()
        finally:
            await svc.storage.close()

    try:
        asyncio.run(run())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    except BrokerError as error:
        raise click.ClickException(f"done, but the broker could not be told: {error}") from None
    return app.config["CHATAPP_PUBLIC_URL"] if want_base else shared


@click.command("serve")
@click.option("--bind", help="Address to listen on, e.g. 127.0.0.1:8000.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Hypercorn settings file [default: ./hypercorn.toml if there is one, "
                   "else the one chatapp ships].")
def serve_command(bind: str | None, config_path: str | None) -> None:
    """Serve the app with Hypercorn and hypercorn.toml."""
    from hypercorn.config import Config
    from hypercorn.run import run

    if config_path is None:
        local = Path("hypercorn.toml")
        config_path = str(local if local.is_file() else asset("hypercorn.toml"))
    config = Config.from_toml(config_path)
    config.application_path = "chatapp.asgi:app"
    if bind:
        config.bind = [bind]
    if os.environ.get("CHATAPP_LOG_FORMAT", "text").strip().lower() != "json":
        # JSON logs stay one object per line; Hypercorn's "Running on" line says it there.
        click.echo(f"chatapp serving on http://{config.bind[0]} with {config_path} "
                   "(Ctrl+C to stop)")
    sys.exit(run(config))


@click.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
def backup_command(path: Path, force: bool) -> None:
    """Copy the SQLite database to PATH, consistently, while the server runs.

    PostgreSQL: use pg_dump (see the README).
    """
    from . import create_app
    from .storage import StorageError

    app = create_app()
    try:
        asyncio.run(app.extensions["chatapp"].storage.backup(str(path), force=force))
    except StorageError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backed up {app.config['CHATAPP_DATABASE_URL']} to {path}")


@click.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_command(path: Path, yes: bool) -> None:
    """Replace the database by the backup PATH (the server must be stopped).

    Everything stored since that backup is lost. The store gets a new epoch, so
    every browser reloads when it reconnects. PostgreSQL: use pg_restore.
    """
    from . import create_app
    from .config import ConfigError
    from .services import claim_offline
    from .storage import StorageError

    app = create_app()
    url = app.config["CHATAPP_DATABASE_URL"]
    storage = app.extensions["chatapp"].storage
    try:
        asyncio.run(storage.check_backup(str(path)))
        lock = claim_offline(url)
    except (StorageError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    try:
        if not yes:
            click.confirm(f"Replace {url} by {path}? What was stored since that backup "
                          "is lost", abort=True)
        epoch = asyncio.run(storage.restore(str(path)))
    except StorageError as error:
        raise click.ClickException(str(error)) from None
    finally:
        if lock is not None:
            lock.close()
    click.echo(f"Restored {path} into {url} (new epoch {epoch}: browsers reload)")


@click.command("export")
@click.argument("room")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="json",
              show_default=True, help="json: one document; markdown: for reading.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write [default: standard output].")
@click.option("--force", is_flag=True, help="Replace the --output file if it exists.")
def export_command(room: str, fmt: str, output: Path | None, force: bool) -> None:
    """Export room ROOM (its slug) and its messages, oldest first."""
    from . import create_app
    from .export import ExportError, render, room_history
    from .storage import StorageError

    if output is not None and output.exists() and not force:
        raise click.ClickException(f"{output} exists (use --force to replace it)")
    app = create_app()

    async def run() -> str:
        storage = app.extensions["chatapp"].storage
        await storage.connect()
        try:
            return render(*await room_history(storage, room), fmt)
        finally:
            await storage.close()

    try:
        text = asyncio.run(run())
    except (ExportError, StorageError) as error:
        raise click.ClickException(str(error)) from None
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w" if force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise click.ClickException(f"{output} exists (use --force to replace it)") from None
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror}") from None
    click.echo(f"Exported {room} to {output}", err=True)


@click.group()
@click.version_option(package_name="chatapp", prog_name="chatapp")
def main() -> None:
    """chatapp: a self-hosted, real-time team chat."""


main.add_command(serve_command)
main.add_command(init_db_command)
main.add_command(create_user_command)
main.add_command(create_token_command)
main.add_command(revoke_token_command)
main.add_command(create_webhook_command)
main.add_command(deactivate_command)
main.add_command(reset_link_command)
main.add_command(backup_command)
main.add_command(restore_command)
main.add_command(export_command)
