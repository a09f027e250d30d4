"""Uploads over HTTP (SPEC §10): ``POST /api/v1/uploads`` streams a multipart body to
disk; ``GET /uploads/<id>/<name>`` and ``/uploads/thumbnails/<id>`` serve files to
those who may read them: a session cookie, or a bot's ``Authorization: Bearer`` token
(security.load_user reads it on these paths too).

Quart reads a request body into a buffer as fast as the client sends it, whatever
the view does with it. For the upload route a gate in front of the ASGI ``receive``
holds the next chunk back while FLOW_LIMIT bytes wait unread, so the client is slowed
down by TCP instead of filling this process's memory; the view parses the multipart
stream as it comes (werkzeug's sans-I/O decoder) and writes the file out in batches.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator
from typing import Any, NoReturn
from urllib.parse import quote

from quart import Blueprint, Quart, Response, abort, g, request
from quart.wrappers.request import Body
from quart.wrappers.response import FileBody
from quart_schema import DataSource
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from ..errors import ApiError, json_refusal
from ..limits import RateLimitError
from ..refusals import Code
from ..security import current_user
from ..uploads import UploadError
from . import api
from . import schemas as s
from .lifecycle import services
from .schemas import documented

bp = Blueprint("files", __name__)

UPLOAD_PATH = "/api/v1/uploads"
GATE_KEY = "chatapp.upload_gate"
FLOW_LIMIT = 256 * 1024  # request bytes Quart may hold unread for an upload
MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file
# What a served file may do when opened on its own: nothing (no script, no form, no
# plugin); images still show. Set before the app's own CSP, which it replaces.
FILE_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
CACHE = "private, max-age=86400"  # per user; the content under a URL never changes


class Gate:
    """How many request bytes wait unread; the receiver waits while too many do.

    Once the response starts (a refusal may come before the body is read), the gate
    opens and the rest of the body is dropped as it comes: Hypercorn, finishing the
    response, puts ``http.disconnect`` into the app's bounded queue, which would
    otherwise stay full of unread body for good (the response hung until Quart's
    RESPONSE_TIMEOUT, and the connection never closed).
    """

    def __init__(self) -> None:
        self.unread = 0
        self.drained = asyncio.Event()
        self.opened = False

    async def wait(self) -> None:
        while self.unread >= FLOW_LIMIT and not self.opened:
            self.drained.clear()
            await self.drained.wait()

    def open(self) -> None:
        self.opened = True
        self.drained.set()


class GatedBody(Body):
    """Quart's request body, telling the gate what it holds (no size cap of its own:
    the gate bounds it, and the view counts the file)."""

    def __init__(self, expected_content_length: int | None, gate: Gate) -> None:
        super().__init__(expected_content_length, None)
        self._gate = gate

    def append(self, data: bytes) -> None:
        if self._gate.opened:  # answered already: nobody reads the rest
            return
        super().append(data)
        self._gate.unread = len(self._data)

    async def __anext__(self) -> bytes:
        data = await super().__anext__()
        self._gate.unread = 0
        self._gate.drained.set()
        return data


def install(app: Quart) -> None:
    """Gate the upload route's body (ASGI middleware plus a request class)."""
    inner = app.asgi_app
    base = app.request_class

    async def gated(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == UPLOAD_PATH and scope["method"] == "POST":
            gate = Gate()
            scope = {**scope, GATE_KEY: gate}

            async def gated_receive() -> Any:
                await gate.wait()
                return await receive()

            async def gated_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    gate.open()
                await send(message)

            await inner(scope, gated_receive, gated_send)
        else:
            await inner(scope, receive, send)

    class GatedRequest(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            gate = self.scope.get(GATE_KEY)
            if gate is not None:
                self.body = GatedBody(self.content_length, gate)

    app.request_class = GatedRequest
    app.asgi_app = gated  # type: ignore[method-assign]


@documented({201: s.Upload}, body=s.UploadForm, source=DataSource.FORM_MULTIPART,
            errors=(411, 413, 415, 422, 429))
async def upload() -> Any:
    """Store one file (multipart field ``file``); 201 with the upload object."""
    user = current_user()
    assert user is not None  # the API blueprint authenticated the request
    uploads = services().uploads
    declared = request.content_length
    if declared is not None and declared > uploads.max_bytes + MULTIPART_SLACK:
        raise UploadError(Code.FILE_TOO_LARGE,
                          f"the file is larger than {uploads.max_bytes // (1024 * 1024)} MB")
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise ApiError(400, "send multipart/form-data with a file field", "invalid", "file")
    await uploads.check_rate(user)
    parts = MultipartFile(request.body, boundary.encode("latin-1", "replace"))
    filename = await parts.find("file")
    stored = await uploads.store(user, filename, parts.data())
    return stored.to_json(), 201


api.bp.add_url_rule("/uploads", view_func=upload, methods=["POST"])


@api.bp.after_request
async def close_after_refusal(response: Response) -> Response:
    """A refused upload may leave part of its body unread on the connection (413 at
    once, 429, a malformed part): HTTP/1.1 then closes it, or the rest of the body
    would be taken for the next request on it."""
    if (request.path == UPLOAD_PATH and response.status_code >= 400
            and request.http_version.startswith("1")):
        response.headers["Connection"] = "close"
    return response


@bp.errorhandler(UploadError)
@api.bp.errorhandler(UploadError)
async def upload_refused(error: UploadError) -> Any:
    return json_refusal(error)


@bp.errorhandler(RateLimitError)
async def rate_limited(error: RateLimitError) -> Any:
    return json_refusal(error)


class MultipartFile:
    """One file field of a multipart stream, read as it arrives."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body
        # No memory cap here: what it buffers is bounded by the gate's chunks.
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=None, max_parts=32)
        self._ended = False

    async def _next(self) -> Any:
        while True:
            try:
                event = self._decoder.next_event()
            except (ValueError, RequestEntityTooLarge):
                raise ApiError(400, "the multipart body is malformed", "invalid",
                               "file") from None
            if not isinstance(event, NeedData):
                return event
            if self._ended:
                raise ApiError(400, "the multipart body ends too early", "invalid", "file")
            chunk = await _next_chunk(self._body)
            if chunk is None:
                self._ended = True
            self._decoder.receive_data(chunk)

    async def find(self, field: str) -> str | None:
        """Skip to the file part named ``field``; its file name (None if it has none)."""
        while True:
            event = await self._next()
            if isinstance(event, File) and event.name == field:
                return event.filename
            if isinstance(event, Epilogue):
                raise ApiError(422, f"no file in the {field!r} field", "invalid", field)

    async def data(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if not isinstance(event, Data):
                raise ApiError(400, "the multipart body is malformed", "invalid", "file")
            if event.data:
                yield event.data
            if not event.more_data:
                return


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await body.__anext__()
    except StopAsyncIteration:
        return None


@bp.get("/uploads/<int:upload_id>/<path:name>")
async def download(upload_id: int, name: str) -> Any:
    """The file, to its uploader and the members of a room where it is attached."""
    return await _serve(upload_id, name=name)


@bp.get("/uploads/thumbnails/<int:upload_id>")
async def thumbnail(upload_id: int) -> Any:
    """An image's thumbnail, to those who may read the image."""
    return await _serve(upload_id, thumbnail=True)


async def _serve(upload_id: int, *, name: str | None = None, thumbnail: bool = False) -> Any:
    bot = bool(g.get("bearer"))
    if bot and current_user() is None:  # as the API answers a bad token
        raise ApiError(401, "the bearer token is unknown or revoked")
    uploads = services().uploads
    found = await uploads.readable(current_user(), upload_id)
    if found is None or (name is not None and name != found.name):
        _not_found(bot)
    if thumbnail and found.width is None:
        _not_found(bot)
    stored = await uploads.served(found, thumbnail)
    try:
        size = (await asyncio.to_thread(stored.path.stat)).st_size
    except FileNotFoundError:
        _not_found(bot)
    response = Response(FileBody(stored.path), content_type=stored.content_type)
    response.content_length = size
    response.set_etag(found.disk_key + ("-t" if thumbnail else ""))
    response.headers["Cache-Control"] = CACHE
    response.headers["Content-Security-Policy"] = FILE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Disposition"] = content_disposition(
        found.name, inline=stored.inline)
    await response.make_conditional(request, accept_ranges=True, complete_length=size)
    return response


def _not_found(bot: bool) -> NoReturn:
    """404: the HTML page for a browser; for a bot (bearer token) the API's JSON error,
    which sets no cookie."""
    if bot:
        raise ApiError(404, "no such file, or not yours to read", "not_found")
    abort(404)


def content_disposition(name: str, *, inline: bool) -> str:
    """``inline`` or ``attachment`` with an ASCII ``filename`` and the exact name in
    ``filename*`` (RFC 5987/6266)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c for c in ascii_name if c.isprintable() and c not in '"\\')
    quoted = quote(name, safe="!#$&+^`|~-._")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{quoted}"
