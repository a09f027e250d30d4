"""Register, log in and log out through HTML forms."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, g, render_template, request, session, url_for
from quart.typing import ResponseReturnValue

from ..accounts import AccountError, token_hash
from ..channels import session_channel
from ..closecodes import CLOSE_LOGGED_OUT
from ..errors import html_error, with_retry_after
from ..events import encode
from ..refusals import Code
from ..security import CSRFError, check_csrf, remote_address, start_session
from .forms import FORM_EXPIRED, check_form
from .lifecycle import services
from .redirects import safe_next, see_other
from .refusals import answer

bp = Blueprint("auth", __name__)

async def _page(template: str, status: int, **context: Any) -> Response:
    html = await render_template(template, **context)
    return Response(html, status=status, mimetype="text/html")


@bp.route("/register", methods=["GET", "POST"])
async def register() -> ResponseReturnValue:
    """Create an account and log it in."""
    admin = services().admin
    if not await admin.open_registration():  # invite or closed mode (SPEC §11)
        return await _page("register.html", 403, error=None, username="",
                           closed=admin.registration)
    if request.method == "GET":
        return await _page("register.html", 200, error=None, username="")
    form = await request.form
    username = form.get("username", "")
    try:
        check_form(form)
        user = await admin.register(username, form.get("password", ""), remote_address())
    except AccountError as error:
        closed = admin.registration if error.code == Code.FORBIDDEN else None
        return await _page("register.html", answer(error).status, error=str(error),
                           username=username, closed=closed)
    login = await services().accounts.start_session(
        user, request.headers.get("User-Agent", ""), remote_address())
    start_session(login.token)
    return see_other(url_for("pages.index"))


@bp.route("/login", methods=["GET", "POST"])
async def login() -> ResponseReturnValue:
    """Log a user in; failures get one generic message."""
    if request.method == "GET":
        next_path = safe_next(request.args.get("next"))
        return await _page("login.html", 200, error=None, username="", next=next_path)
    form = await request.form
    username, next_path = form.get("username", ""), safe_next(form.get("next"))
    try:
        check_form(form)
        user = await services().accounts.authenticate(
            username, form.get("password", ""), remote_address()
        )
    except AccountError as error:
        if error.code == Code.FORBIDDEN:  # deactivated: the password was right
            await services().admin.record(username, "login refused (deactivated)", username,
                                          remote_address())
        response = await _page("login.html", answer(error).status, error=str(error),
                               username=username, next=next_path)
        return with_retry_after(response, error)
    login = await services().accounts.start_session(
        user, request.headers.get("User-Agent", ""), remote_address())
    start_session(login.token)
    await services().admin.record(user.username, "login", user.username, remote_address())
    return see_other(next_path, url_for("pages.index"))


@bp.route("/logout", methods=["POST"])
async def logout() -> ResponseReturnValue:
    """End the session everywhere: the cookie, the record and its websockets."""
    form = await request.form
    try:
        check_csrf(form.get("csrf_token"))
    except CSRFError:
        return await html_error(400, FORM_EXPIRED)
    token = g.get("session_token")
    if token is not None:
        svc = services()
        await svc.accounts.end_session(token)
        await svc.hub.publish(
            session_channel(token_hash(token)),
            encode("_close", code=CLOSE_LOGGED_OUT, reason="logged out"),
        )
    session.clear()
    return see_other(url_for("auth.login"))
