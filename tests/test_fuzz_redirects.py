"""Fuzzing the redirect helper: no Location ever leaves the site or carries a control."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from chatapp.web.redirects import MAX_NEXT, login_url, safe_next

from .fuzzing import fuzz

PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]*")
BASE = "https://chat.example/rooms/here"

# Text that looks like the tricks: slashes, backslashes, schemes, escapes, controls.
tricky = st.lists(
    st.sampled_from(["/", "//", "\\", ":", "%", "%2f", "%0d%0a", "\r", "\n", "\t", "\x00",
                     " ", "?", "#", "@", "evil.com", "javascript", ".", "..", "\u2028",
                     "\u202e", "é", "\ud800", "\x85", "rooms", "x"])
    | st.text(max_size=5),
    max_size=12,
).map("".join)
targets = tricky | st.text() | tricky.map(lambda t: "/" + t)


def assert_same_site(location: str) -> None:
    assert PRINTABLE_ASCII.fullmatch(location), location  # no control, space or non-ASCII
    assert location.startswith("/") and not location.startswith("//"), location
    assert "\\" not in location
    resolved = urlsplit(urljoin(BASE, location))
    assert (resolved.scheme, resolved.netloc) == ("https", "chat.example"), location


@fuzz
@given(target=targets)
def test_safe_next_never_leaves_the_site(target: str) -> None:
    location = safe_next(target)
    if location is not None:
        assert_same_site(location)
        assert safe_next(location) == location  # stable: a second pass changes nothing


@fuzz
@given(path=targets)
def test_login_url_keeps_the_path_and_stays_on_site(path: str) -> None:
    location = login_url("/" + path)
    assert_same_site(location)
    assert safe_next(location) == location
    query = parse_qs(urlsplit(location).query, errors="replace")
    if "next" in query and "\ud800" not in path and len(path) < MAX_NEXT // 9:
        assert query["next"] == ["/" + path]
