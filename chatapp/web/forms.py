"""What the HTML form views share: the CSRF check and the signed-in user."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from quart import request, url_for
from quart.typing import ResponseReturnValue

from ..accounts import AccountError
from ..security import CSRFError, check_csrf, current_user
from ..storage import User
from .redirects import login_url, see_other

FORM_EXPIRED = "The form expired. Please try again."

View = Callable[..., Awaitable[ResponseReturnValue]]


def check_form(form: Any, error: type[AccountError] = AccountError) -> None:
    """Refuse a form whose CSRF token is missing or wrong: ``error`` (bad_request)."""
    try:
        check_csrf(form.get("csrf_token"))
    except CSRFError:
        raise error(FORM_EXPIRED) from None


def signed_in_form(error: type[AccountError], page: str,
                   check: Callable[[User], None] | None = None) -> Callable[[View], View]:
    """A POST view called as ``view(user, form, **route_args)``: the signed-in user,
    once ``check(user)`` passes, and the form, once its CSRF token is right (else
    ``error``). Someone not signed in is sent to log in, then to ``page``."""

    def wrap(view: View) -> View:
        @functools.wraps(view)
        async def wrapped(**kwargs: Any) -> ResponseReturnValue:
            form = await request.form
            user = current_user()
            if user is None:
                return see_other(login_url(url_for(page)))
            if check is not None:
                check(user)
            check_form(form, error)
            return await view(user, form, **kwargs)

        return wrapped

    return wrap
