"""The ``chatapp`` command: serve, init-db, create-user."""

from __future__ import annotations

import asyncio
import sys

import click
from quart import Quart

from . import ROOT


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

    asyncio.run(run())
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
    """Create an API token for user NAME (bots: Authorization: Bearer TOKEN)."""
    from . import create_app

    app = create_app()

    async def run() -> str:
        svc = app.extensions["chatapp"]
        await svc.storage.connect()
        try:
            user = await svc.storage.user_by_name(name)
            if user is None:
                raise click.ClickException(f"no user {name!r}")
            return str(await svc.accounts.create_api_token(user, label))
        finally:
            await svc.storage.close()

    token = asyncio.run(run())
    click.echo(token)
    click.echo("Shown once: keep it secret. Send it as 'Authorization: Bearer <token>'.", err=True)


@click.command("serve")
@click.option("--bind", help="Address to listen on, e.g. 127.0.0.1:8000.")
@click.option("--config", "config_path", default=str(ROOT / "hypercorn.toml"),
              show_default=True, help="Hypercorn settings file.")
def serve_command(bind: str | None, config_path: str) -> None:
    """Serve the app with Hypercorn and hypercorn.toml."""
    from hypercorn.config import Config
    from hypercorn.run import run

    config = Config.from_toml(config_path)
    config.application_path = "chatapp.asgi:app"
    if bind:
        config.bind = [bind]
    click.echo(f"chatapp serving on http://{config.bind[0]} (Ctrl+C to stop)")
    sys.exit(run(config))


@click.group()
def main() -> None:
    """chatapp: a self-hosted, real-time team chat."""


main.add_command(serve_command)
main.add_command(init_db_command)
main.add_command(create_user_command)
main.add_command(create_token_command)

