"""Refusals: the domain gives a code, the web layer's one table the HTTP answer."""

from __future__ import annotations

import pytest

from chatapp.accounts import AccountError
from chatapp.chat import ChatError
from chatapp.limits import RateLimitError
from chatapp.refusals import Code, DomainError
from chatapp.uploads import UploadError
from chatapp.web.refusals import ANSWERS, answer, retry_after_header


def test_every_code_has_its_answer() -> None:
    assert set(ANSWERS) == set(Code)
    # SPEC §5/§6 wire codes; a too-large file is 413, a too-long value 422 (SPEC §10).
    assert answer(ChatError("too_large", "long")) == (422, "too_large")
    assert answer(UploadError(Code.FILE_TOO_LARGE, "big")) == (413, "too_large")
    assert answer(AccountError("weak password")) == (400, "bad_request")


def test_an_unknown_code_fails_where_it_is_raised() -> None:
    with pytest.raises(ValueError):
        ChatError("teapot", "no such code")


@pytest.mark.parametrize("error", [
    ChatError("not_found", "no room"),
    AccountError("taken", Code.CONFLICT),
    UploadError(Code.INVALID, "empty"),
    RateLimitError(0.2),
])
def test_domain_errors_carry_no_http_status(error: DomainError) -> None:
    assert isinstance(error, DomainError)
    assert not hasattr(error, "status")


def test_retry_after_is_whole_seconds_never_zero() -> None:
    assert retry_after_header(RateLimitError(0.2)) == "1"
    assert retry_after_header(RateLimitError(11.2)) == "12"
    assert retry_after_header(AccountError("taken", Code.CONFLICT)) is None
