"""Who is asking: the session user, CSRF tokens and the response security headers."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from quart import Quart, Response, current_app, g, request, session
from quart.sessions import SecureCookieSessionInterface, SessionMixin
from quart.wrappers import BaseRequestWebsocket

from .accounts import Accounts
from .storage import User
from .web.lifecycle import services

SESSION_LIFETIME = timedelta(days=14)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
# Browsers remember it for two years; no includeSubDomains: other hosts of the domain
# are not ours to decide for.
HSTS = "max-age=63072000"


class CSRFError(Exception):
    """An unsafe request without the session's CSRF token."""


class Sessions(SecureCookieSessionInterface):
    """Quart's signed-cookie sessions, but static files never carry ``Set-Cookie``.

    A logged-in session is permanent and refreshed on every response, so without this
    every script and stylesheet (cacheable, ``Cache-Control: public``) would carry the
    session cookie, for any shared cache to keep and hand out.
    """

    def should_set_cookie(self, app: Quart, session: SessionMixin) -> bool:
        if request and request.endpoint == "static":
            return False
        return super().should_set_cookie(app, session)


def init_app(app: Quart) -> None:
    production = app.config["CHATAPP_ENV"] == "production"
    app.config.update(
        SESSION_COOKIE_NAME="__Host-chatapp" if production else "chatapp_session",
        SESSION_COOKIE_SECURE=production,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.session_interface = Sessions()
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.before_request(load_user)
    app.after_request(add_security_headers)


# Where an ``Authorization: Bearer`` header is read (bots download what they may read).
BEARER_PATHS = ("/api/", "/uploads/")


async def load_user() -> None:
    """Resolve a bot's bearer token (the API and file downloads) or the signed
    cookie's session token."""
    g.user = None
    g.session_token = None
    g.bearer = False
    if request and request.endpoint == "static":
        return
    if request and request.path.startswith(BEARER_PATHS):
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            # A bearer header decides alone: a wrong token is a 401, not a cookie retry.
            g.user = await services().accounts.user_for_api_token(credential.strip())
            g.bearer = True
            return
    found = await session_user(services().accounts, session, remote_address())
    if found is not None:
        g.user, g.session_token = found
    elif isinstance(session.get("sid"), str):
        session.pop("sid")  # revoked or expired: the cookie is dead


async def session_user(
    accounts: Accounts, cookie: Mapping[str, Any], address: str | None = None
) -> tuple[User, str] | None:
    """The user and session token of a signed-cookie session, if it is still live."""
    token = cookie.get("sid")
    if not isinstance(token, str):
        return None
    user = await accounts.resume_session(token, address)
    return None if user is None else (user, token)


def current_user() -> User | None:
    return g.get("user")


def bearer_authenticated() -> bool:
    """Bots authenticate per request; no browser cookie rides along, so no CSRF."""
    return bool(g.get("bearer")) and g.get("user") is not None


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(given: Any) -> None:
    expected = session.get("csrf")
    if not isinstance(given, str) or not isinstance(expected, str):
        raise CSRFError("missing CSRF token")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CSRFError("invalid CSRF token")


def start_session(token: str) -> None:
    """Replace the whole cookie session: no fixation, a fresh CSRF token."""
    session.clear()
    session.permanent = True
    session["sid"] = token
    session["csrf"] = secrets.token_urlsafe(32)


def origin_allowed(connection: BaseRequestWebsocket, allowed: list[str]) -> bool:
    origin = connection.headers.get("Origin")
    if origin is None:  # non-browser clients (bots, tools) send none; cookies still rule
        return True
    origin = origin.rstrip("/")
    # Behind a TLS proxy the scheme seen here differs from the browser's: the host is
    # what tells the app's own pages from a foreign site's.
    parts = urlsplit(origin)
    if parts.scheme in ("http", "https") and parts.netloc == connection.host:
        return True
    return origin in allowed


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html" or (request and request.path.startswith("/api/")):
        # Pages and API answers are per user: no shared or browser cache keeps them.
        headers.setdefault("Cache-Control", "no-store")
    if current_app.config["CHATAPP_ENV"] == "production":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def remote_address() -> str:
    return request.remote_addr or "unknown"
