"""The user's own account page (SPEC §11): plain HTML forms, no JavaScript needed."""

from __future__ import annotations

import unicodedata
from typing import Any

from quart import Blueprint, Response, g, render_template, request, session, url_for
from quart.typing import ResponseReturnValue

from ..accounts import AccountError
from ..errors import refusal_page, with_retry_after
from ..profile import NewToken, ProfileError
from ..refusals import Code
from ..security import current_user
from ..storage import User
from .forms import signed_in_form
from .lifecycle import services
from .redirects import login_url, see_other
from .refusals import answer

bp = Blueprint("account", __name__)

NOTICES = {  # ?done=KEY after a 303: fixed texts, so a link cannot put words on the page
    "profile": "Display name saved.",
    "password": "Password changed. Your other sessions were signed out.",
    "session": "That session was signed out.",
    "others": "Every other session was signed out.",
    "token-revoked": "Token revoked.",
}


async def _page(user: User, status: int = 200, *, error: str | None = None,
                notice: str | None = None, new_token: NewToken | None = None,
                display_name: str | None = None) -> Response:
    profile = services().profile
    html = await render_template(
        "account.html",
        user=user,
        error=error,
        notice=notice,
        new_token=new_token,
        display_name=user.shown_name if display_name is None else display_name,
        sessions=await profile.sessions(user, g.get("session_token")),
        tokens=await profile.tokens(user),
    )
    response = Response(html, status=status, mimetype="text/html")
    if status == 200 and new_token is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


def _back(done: str) -> ResponseReturnValue:
    return see_other(url_for("account.page", done=done))


signed_in = signed_in_form(ProfileError, "account.page")


@bp.errorhandler(AccountError)
async def _refused(error: AccountError) -> ResponseReturnValue:
    user = current_user()
    if user is None:
        return see_other(login_url(url_for("account.page")))
    if error.code == Code.NOT_FOUND:
        return await refusal_page(error)
    return with_retry_after(await _page(user, answer(error).status, error=str(error)), error)


@bp.get("/account")
async def page() -> ResponseReturnValue:
    """Show the display name, password, sessions and API tokens forms."""
    user = current_user()
    if user is None:
        return see_other(login_url(request.path))
    return await _page(user, notice=NOTICES.get(request.args.get("done", "")))


@bp.post("/account/profile")
@signed_in
async def profile(user: User, form: Any) -> ResponseReturnValue:
    """Set the display name; every connection hears of it."""
    name = form.get("display_name", "")
    try:
        await services().profile.rename(user, name)
    except ProfileError as error:
        # Shown again without the invisible characters it was refused for, so that
        # sending it again as it looks works.
        shown = "".join(c for c in name[:256] if unicodedata.category(c) not in ("Cc", "Cf"))
        return await _page(user, answer(error).status, error=str(error), display_name=shown)
    return _back("profile")


@bp.post("/account/password")
@signed_in
async def password(user: User, form: Any) -> ResponseReturnValue:
    """Change the password (the current one is required); end every other session."""
    await services().profile.change_password(
        user, form.get("current_password", ""), form.get("new_password", ""),
        g.get("session_token"))
    return _back("password")


@bp.post("/account/sessions/<session_id>/revoke")
@signed_in
async def revoke_session(user: User, form: Any, session_id: str) -> ResponseReturnValue:
    """Sign one session out (404 unless it is the user's); its websockets close."""
    if await services().profile.end_session(user, session_id, g.get("session_token")):
        session.clear()  # this very session: signed out here too
        return see_other(url_for("auth.login"))
    return _back("session")


@bp.post("/account/sessions/revoke-others")
@signed_in
async def revoke_others(user: User, form: Any) -> ResponseReturnValue:
    """Sign out every session but this one."""
    await services().profile.end_sessions(user, keep_token=g.get("session_token"))
    return _back("others")


@bp.post("/account/tokens")
@signed_in
async def create_token(user: User, form: Any) -> ResponseReturnValue:
    """Create an API token; the page shows it this once (never in a URL)."""
    new = await services().profile.create_token(user, form.get("label", ""))
    return await _page(user, notice="Token created. Copy it now: it is not shown again.",
                       new_token=new)


@bp.post("/account/tokens/<token_id>/revoke")
@signed_in
async def revoke_token(user: User, form: Any, token_id: str) -> ResponseReturnValue:
    """Revoke one of the user's API tokens (404 unless it is theirs)."""
    await services().profile.revoke_token(token_id, user)
    return _back("token-revoked")
