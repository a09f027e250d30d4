"""Error pages for browsers and JSON errors under /api/."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, Request, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound

from . import jsonin
from .refusals import DomainError
from .storage import StorageUnavailable
from .web.refusals import answer, retry_after_header

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5  # what a 503 for an unavailable database suggests

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too large",
    429: "Slow down",
    500: "Something went wrong",
    503: "Unavailable",
}


class ApiError(Exception):
    """The one error type of the JSON API; rendered as SPEC §4's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.field = field
        self.headers = headers or {}


class JsonRequest(Request):
    """``get_json`` through the one reader (``jsonin``): bad JSON is a 400, never a 500."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            return None
        try:
            return jsonin.loads(await self.get_data(cache=cache, as_text=False))
        except jsonin.JsonError as error:
            if silent:
                return None
            raise ApiError(400, error.message, "invalid_json") from None


def json_error(
    status: int, message: str, code: str | None = None, field: str | None = None
) -> Response:
    body: dict[str, Any] = {
        "status": status,
        "code": code or CODES.get(status, "error"),
        "message": message,
    }
    if field is not None:
        body["field"] = field
    response = jsonify({"error": body})
    response.status_code = status
    return response


def json_refusal(error: DomainError) -> Response:
    """A domain refusal as SPEC §4's error object, its status from ``web.refusals``."""
    status, code = answer(error)
    return with_retry_after(json_error(status, error.message, code, error.field), error)


async def refusal_page(error: DomainError) -> Response:
    """A domain refusal as an error page, for a browser."""
    return with_retry_after(await html_error(answer(error).status, error.message), error)


def with_retry_after(response: Response, error: DomainError) -> Response:
    seconds = retry_after_header(error)
    if seconds is not None:
        response.headers["Retry-After"] = seconds
    return response


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/hooks/")) or request.path in ("/healthz",)


async def html_error(status: int, message: str) -> Response:
    html = await render_template(
        "error.html", status=status, title=TITLES.get(status, "Error"), message=message
    )
    return Response(html, status=status, mimetype="text/html")


def _guard_static(app: Quart) -> None:
    """A file name the OS cannot even look up (too long, a NUL) is a 404, not a 500."""
    serve = app.view_functions.get("static")
    if serve is None:
        return

    async def static(**kwargs: Any) -> Any:
        try:
            return await app.ensure_async(serve)(**kwargs)
        except (OSError, ValueError):
            raise NotFound() from None

    app.view_functions["static"] = static


def init_app(app: Quart) -> None:
    app.request_class = JsonRequest
    _guard_static(app)

    @app.errorhandler(ApiError)
    async def handle_api_error(error: ApiError) -> Response:
        response = json_error(error.status, error.message, error.code, error.field)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    async def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = error.description or TITLES.get(status, "Error")
        response = (
            json_error(status, message) if wants_json() else await html_error(status, message)
        )
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(StorageUnavailable)
    async def handle_storage_unavailable(error: StorageUnavailable) -> Response:
        # The database is away (SPEC §7): a 503 to retry later, not a 500.
        log.warning("%s %s: storage unavailable: %s", request.method, request.path, error)
        message = "The database is unavailable right now; try again shortly."
        response = json_error(503, message) if wants_json() else await html_error(503, message)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(DomainError)
    async def handle_refusal(error: DomainError) -> Response:
        # A refusal no blueprint answered (a per-user limit, wherever it is checked):
        # its status from the one table, never a 500.
        return json_refusal(error) if wants_json() else await refusal_page(error)

    @app.errorhandler(Exception)
    async def handle_crash(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if app.debug:
            raise error
        message = InternalServerError.description
        return json_error(500, message) if wants_json() else await html_error(500, message)
