"""The services on the app: kept in ``app.extensions``, opened in ``before_serving``
and closed in ``after_serving``; ``services()`` finds them during a request."""

from __future__ import annotations

from quart import Quart, current_app

from ..services import Services, close_services, open_services


def init_app(app: Quart, services: Services) -> None:
    app.extensions["chatapp"] = services
    database_url = app.config["CHATAPP_DATABASE_URL"]

    @app.before_serving
    async def open_all() -> None:
        await open_services(services, database_url)

    @app.after_serving
    async def close_all() -> None:
        await close_services(services)


def services() -> Services:
    return current_app.extensions["chatapp"]  # type: ignore[no-any-return]
