"""The admin page, invite links and password reset links (SPEC §11): plain HTML forms.

Every admin action checks the role again on the server (``g.user`` is read fresh
from the database per request), so a demoted admin's open page can do nothing (403).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app, render_template, request, url_for
from quart.typing import ResponseReturnValue

from ..accounts import AccountError
from ..admin import AdminError
from ..errors import html_error, refusal_page
from ..refusals import Code
from ..security import current_user, remote_address, start_session
from ..storage import User
from ..storage.models import utcnow
from .forms import check_form, signed_in_form
from .lifecycle import services
from .redirects import login_url, see_other
from .refusals import answer

bp = Blueprint("admin", __name__)

NOT_ADMIN = "Only administrators may see or use this page."
NOTICES = {  # ?done=KEY after a 303: fixed texts, so a link cannot put words on the page
    "invite-revoked": "Invite revoked.",
    "user-created": "Account created.",
    "deactivate": "Account deactivated: its sessions, tokens and connections ended.",
    "reactivate": "Account reactivated.",
    "grant-admin": "Admin role granted.",
    "revoke-admin": "Admin role revoked.",
}
USER_ACTIONS = ("deactivate", "reactivate", "grant-admin", "revoke-admin")


async def _page(user: User, status: int = 200, *, error: str | None = None,
                notice: str | None = None, link: str | None = None,
                link_title: str = "", new_username: str = "") -> Response:
    overview = await services().admin.overview()
    html = await render_template(
        "admin.html", user=user, error=error, notice=notice, link=link,
        link_title=link_title, overview=overview, new_username=new_username,
        registration=current_app.config["CHATAPP_REGISTRATION"], now=utcnow(),
        invite_url=lambda code: url_for("admin.join", code=code, _external=True),
    )
    return Response(html, status=status, mimetype="text/html")


def _must_be_admin(user: User) -> None:
    if not user.is_admin:
        raise AdminError(NOT_ADMIN, Code.FORBIDDEN)


# The signed-in admin and the form once its CSRF token is checked (else forbidden or
# bad_request).
admin_form = signed_in_form(AdminError, "admin.page", _must_be_admin)


@bp.errorhandler(AccountError)
async def _refused(error: AccountError) -> ResponseReturnValue:
    user = current_user()
    if (user is None or not user.is_admin
            or error.code == Code.NOT_FOUND and request.method == "GET"):
        return await refusal_page(error)
    return await _page(user, answer(error).status, error=str(error))


@bp.get("/admin")
async def page() -> ResponseReturnValue:
    """Show every user, the invites and the audit log (admins only)."""
    user = current_user()
    if user is None:
        return see_other(login_url(request.path))
    if not user.is_admin:
        return await html_error(403, NOT_ADMIN)
    return await _page(user, notice=NOTICES.get(request.args.get("done", "")))


@bp.post("/admin/invites")
@admin_form
async def create_invite(user: User, form: Any) -> ResponseReturnValue:
    """Create an invite link with a number of uses and days until it expires."""
    invite = await services().admin.create_invite(
        user, form.get("uses", "1"), form.get("expires_days", "7"), remote_address())
    return await _page(user, notice="Invite created.",
                       link=url_for("admin.join", code=invite.code, _external=True),
                       link_title="Invite link")


@bp.post("/admin/invites/<code>/revoke")
@admin_form
async def revoke_invite(user: User, form: Any, code: str) -> ResponseReturnValue:
    """Revoke an invite: its link stops working."""
    await services().admin.revoke_invite(user, code, remote_address())
    return see_other(url_for("admin.page", done="invite-revoked"))


@bp.post("/admin/users")
@admin_form
async def create_user(user: User, form: Any) -> ResponseReturnValue:
    """Create an account (whatever the registration mode)."""
    username = form.get("username", "")
    try:
        await services().admin.create_user(user, username, form.get("password", ""),
                                           remote_address())
    except AccountError as error:
        return await _page(user, answer(error).status, error=str(error),
                           new_username=username)
    return see_other(url_for("admin.page", done="user-created"))


@bp.post("/admin/users/<name>/reset-link")
@admin_form
async def reset_link(user: User, form: Any, name: str) -> ResponseReturnValue:
    """Make a one-time password reset link for a user, valid 24 hours (shown once)."""
    token = await services().admin.reset_link(user.username, name, remote_address())
    response = await _page(user, notice="Reset link made: give it to them; it works once, "
                           "for 24 hours.",
                           link=url_for("admin.reset", token=token, _external=True),
                           link_title=f"Password reset link for {name}")
    return response


@bp.post("/admin/users/<name>/<action>")
async def user_action(name: str, action: str) -> ResponseReturnValue:
    """Deactivate, reactivate, grant or revoke admin."""
    if action not in USER_ACTIONS:
        return await html_error(404, "There is no such page.")
    return await _user_action(name=name, action=action)


@admin_form
async def _user_action(user: User, form: Any, name: str, action: str) -> ResponseReturnValue:
    admin, address = services().admin, remote_address()
    if action == "deactivate":
        await admin.deactivate(user.username, name, address)
    elif action == "reactivate":
        await admin.reactivate(user.username, name, address)
    else:
        await admin.set_admin(user.username, name, action == "grant-admin", address)
    return see_other(url_for("admin.page", done=action))


@bp.route("/join/<code>", methods=["GET", "POST"])
async def join(code: str) -> ResponseReturnValue:
    """Register through an invite link."""
    admin = services().admin
    if await admin.usable_invite(code) is None:
        return await _join_page(code, 404, usable=False)
    if request.method == "GET":
        return await _join_page(code, 200)
    form = await request.form
    username = form.get("username", "")
    try:
        check_form(form)
        user = await admin.join(code, username, form.get("password", ""), remote_address())
    except AccountError as error:
        return await _join_page(code, answer(error).status, error=str(error),
                                username=username, usable=error.code != Code.NOT_FOUND)
    login = await services().accounts.start_session(
        user, request.headers.get("User-Agent", ""), remote_address())
    start_session(login.token)
    return see_other(url_for("pages.index"))


async def _join_page(code: str, status: int, *, usable: bool = True, error: str | None = None,
                     username: str = "") -> Response:
    html = await render_template("join.html", code=code, usable=usable, error=error,
                                 username=username)
    return Response(html, status=status, mimetype="text/html")


@bp.route("/reset/<token>", methods=["GET", "POST"])
async def reset(token: str) -> ResponseReturnValue:
    """Set a new password through a one-time reset link; every session ends."""
    admin = services().admin
    target = await admin.reset_target(token)
    if target is None:
        return await _reset_page(token, 404, None)
    if request.method == "GET":
        return await _reset_page(token, 200, target)
    form = await request.form
    try:
        check_form(form)
        await admin.reset_password(token, form.get("password", ""), remote_address())
    except AccountError as error:
        gone = error.code == Code.NOT_FOUND
        return await _reset_page(token, answer(error).status, None if gone else target,
                                 error=str(error))
    return see_other(url_for("auth.login"))


async def _reset_page(token: str, status: int, target: User | None,
                      error: str | None = None) -> Response:
    html = await render_template("reset.html", token=token, target=target, error=error)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response
