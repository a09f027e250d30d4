"""The one table from a refusal's code (``chatapp.refusals``) to its answer: the HTTP
status, and the code that the API's error body and the websocket's ``error`` event
carry (SPEC §5, §6, §10).

The codes on the wire are SPEC's: a value over its size limit is ``too_large`` with
422, a file over the upload limit ``too_large`` with 413.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..refusals import Code, DomainError


class Answer(NamedTuple):
    status: int
    code: str  # in the JSON error body and the websocket ``error`` event


ANSWERS: dict[Code, Answer] = {
    Code.BAD_REQUEST: Answer(400, "bad_request"),
    Code.INVALID: Answer(422, "invalid"),
    Code.TOO_LARGE: Answer(422, "too_large"),
    Code.FILE_TOO_LARGE: Answer(413, "too_large"),
    Code.UNAUTHORIZED: Answer(401, "unauthorized"),
    Code.FORBIDDEN: Answer(403, "forbidden"),
    Code.NOT_FOUND: Answer(404, "not_found"),
    Code.CONFLICT: Answer(409, "conflict"),
    Code.RATE_LIMITED: Answer(429, "rate_limited"),
}


def answer(error: DomainError) -> Answer:
    return ANSWERS[error.code]


def retry_after_header(error: DomainError) -> str | None:
    """Whole seconds for an HTTP ``Retry-After``, never 0; None when not to retry."""
    if error.retry_after is None:
        return None
    return str(max(1, math.ceil(error.retry_after)))
