"""What the domain says when it refuses a request: a code, never an HTTP status.

The web layer turns a code into an HTTP status and the code on the wire, in one
table (``web/refusals.py``); the domain modules know neither.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    BAD_REQUEST = "bad_request"  # a form the user must correct (a weak password, a stale form)
    INVALID = "invalid"  # a value missing or malformed (SPEC §5, §6)
    TOO_LARGE = "too_large"  # a value over its size limit (a body over 4000 characters)
    FILE_TOO_LARGE = "file_too_large"  # an upload over CHATAPP_UPLOAD_MAX_MB (SPEC §10)
    UNAUTHORIZED = "unauthorized"  # a wrong username or password
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"  # also what is there but not the caller's to see
    CONFLICT = "conflict"  # taken already, or the last of its kind
    RATE_LIMITED = "rate_limited"  # see ``retry_after``


class DomainError(Exception):
    """A request the domain refuses: ``code``, a sentence for the user, and the field
    it is about; ``retry_after`` (seconds) when trying again later will do."""

    def __init__(self, code: Code | str, message: str, field: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = Code(code)  # an unknown code fails here, not on the wire
        self.message = message
        self.field = field
        self.retry_after = retry_after
