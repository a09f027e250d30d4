"""The one place that builds redirects: from validated parts, never from raw input.

A ``Location`` header carries no control character and no byte outside printable
ASCII (h11 and werkzeug refuse those with a 500, after the view already acted), and a
target taken from the client (``next``) only ever points at this site.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from quart import Response, redirect

# What may stay as it is in a path-and-query; anything else is percent-encoded.
_URL_SAFE = "/?=&%-._~!$'()*+,;:@"
# Controls (C0, DEL, C1), backslash and whitespace: never in a target we accept.
_REFUSED = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_PERCENT_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_NEXT = 1000  # characters of a return path kept across the login
MAX_LOCATION = 2000


def safe_next(target: object) -> str | None:
    """A same-site relative path (``/rooms/x?y=1``), ready for a Location; else None.

    Refuses ``//host``, ``/\\host``, schemes (``javascript:``), controls and
    whitespace; other characters (non-ASCII, say) are percent-encoded.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > MAX_LOCATION:
        return None
    if target.startswith("//") or _REFUSED.search(target):
        return None
    if ":" in target.split("?", 1)[0]:
        return None
    if _PERCENT_OK.search(target):  # a lone "%" would decode into something else
        target = _PERCENT_OK.sub("%25", target)
    try:
        return quote(target, safe=_URL_SAFE, errors="strict")
    except UnicodeEncodeError:  # a lone surrogate is no path
        return None


def login_url(path: str) -> str:
    """The login page that returns to ``path`` (a request path, already decoded)."""
    quoted = quote(path, safe="/", errors="replace")
    if path in ("", "/") or len(quoted) > MAX_NEXT:  # too long to come back to: skip it
        return "/login"
    return "/login?next=" + quoted


def see_other(target: str | None, fallback: str = "/") -> Response:
    """A 303 to a checked same-site target, else to ``fallback`` (a path of ours)."""
    location = safe_next(target) if target is not None else None
    if location is None:
        location = safe_next(fallback) or "/"
    return redirect(location, 303)  # type: ignore[return-value]
