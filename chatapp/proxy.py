"""Who is really asking (trusted proxies) and which host was asked for (allowed hosts).

Both run in ``chatapp.front`` ahead of the whole app, ``/ws`` included:

- ``forwarded`` (``CHATAPP_TRUSTED_PROXIES=N``, N > 0): the client address is
  the Nth address from the right of ``X-Forwarded-For`` (each proxy appends the
  address it saw, so the Nth from the right was written by the outermost trusted
  one) and ``X-Forwarded-Proto`` sets the scheme. With N = 0 it is never called and
  both headers are ignored. ``X-Forwarded-Host`` is never read: a proxy that does not
  set it passes the client's value on, and the host check must see the real ``Host``.
- ``AllowedHosts`` (``CHATAPP_ALLOWED_HOSTS``): any other ``Host`` gets 400 before
  anything else runs, so a rebound DNS name cannot reach a page, the API or ``/ws``
  and no redirect or origin check ever sees a foreign host.

``forwarded`` is Hypercorn's ProxyFixMiddleware in "legacy" mode, but the scope is copied
shallowly (a websocket's scope carries the wire object, which must stay the same one)
and a value that is not an address is ignored instead of trusted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOST_HEADER = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}))?")


class HostPattern:
    """One ``CHATAPP_ALLOWED_HOSTS`` entry: ``name``, ``[v6]``, ``*.domain``, optional ``:port``."""

    def __init__(self, text: str) -> None:
        entry = text.strip().lower().rstrip(".")
        match = _HOST_HEADER.fullmatch(entry.removeprefix("*."))
        wildcard = entry.startswith("*.")
        if match is None or not _valid_host(match["host"]):
            raise ValueError(
                f"{text!r} is not a host name, an IP address, [IPv6] or *.domain "
                "(optionally with :port)"
            )
        self.host: str = match["host"]
        self.port: str | None = match["port"]
        self.wildcard = wildcard

    def matches(self, host: str, port: str | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def parse_hosts(value: str | list[str] | tuple[str, ...]) -> list[HostPattern]:
    """The comma-separated setting as patterns; raises ValueError on a bad entry."""
    entries = value.split(",") if isinstance(value, str) else list(value)
    patterns = [HostPattern(entry) for entry in entries if entry.strip()]
    if not patterns:
        raise ValueError("name at least one host")
    return patterns


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    return bool(_NAME.fullmatch(host))


def split_host(header: str) -> tuple[str, str | None] | None:
    """``Host`` header → (host, port), lower-cased; None when it is not a host."""
    match = _HOST_HEADER.fullmatch(header.strip().lower())
    host = "" if match is None else match["host"].rstrip(".")
    if not host or not _valid_host(host):
        return None
    return host, match["port"] if match else None


def host_header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"host":
            return value.decode("latin1")  # type: ignore[no-any-return]
    return None


class AllowedHosts:
    """The ``CHATAPP_ALLOWED_HOSTS`` patterns; ``allows(scope)`` checks its Host header."""

    def __init__(self, patterns: list[HostPattern]) -> None:
        self.patterns = patterns

    def allows(self, scope: Scope) -> bool:
        header = host_header(scope)
        parts = None if header is None else split_host(header)
        return parts is not None and any(p.matches(*parts) for p in self.patterns)


async def refuse_host(scope: Scope, send: Send) -> None:
    """Answer 400 (a page, JSON under /api/, or the websocket handshake's response)."""
    if scope["type"] == "http":
        await _refuse_http(scope, send)
    else:
        await _refuse_websocket(scope, send)


HOST_MESSAGE = "This server does not answer to that host name (Host header)."
_HTML = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Bad request"
    "</title></head><body><h1>Bad request</h1><p>{}</p></body></html>"
)
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


async def _refuse_http(scope: Scope, send: Send) -> None:
    if scope["path"].startswith("/api/") or scope["path"] == "/healthz":
        body = (
            b'{"error": {"status": 400, "code": "bad_request", "message": "'
            + HOST_MESSAGE.encode() + b'"}}'
        )
        content_type = b"application/json"
    else:
        body = _HTML.format(HOST_MESSAGE).encode()
        content_type = b"text/html; charset=utf-8"
    await send({
        "type": "http.response.start",
        "status": 400,
        "headers": [(b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS],
    })
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(scope: Scope, send: Send) -> None:
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close"})  # the server answers 403
        return
    body = HOST_MESSAGE.encode()
    await send({
        "type": "websocket.http.response.start",
        "status": 400,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})


def forwarded(scope: Scope, hops: int) -> Scope:
    """The scope with the client address and scheme the ``hops`` trusted proxies saw.

    A shallow copy when something changes (the original is Hypercorn's).
    """
    client = _address(_trusted_value(scope, b"x-forwarded-for", hops))
    proto = (_trusted_value(scope, b"x-forwarded-proto", hops) or "").lower()
    if client is None and proto not in ("http", "https"):
        return scope
    scope = dict(scope)
    if client is not None:
        scope["client"] = (client, 0)
    if proto in ("http", "https"):
        secure = proto == "https"
        if scope["type"] == "websocket":
            scope["scheme"] = "wss" if secure else "ws"
        else:
            scope["scheme"] = proto
    return scope


def _trusted_value(scope: Scope, name: bytes, hops: int) -> str | None:
    """The ``hops``-th comma-separated value from the right over every such header."""
    values: list[str] = []
    for header, value in scope["headers"]:
        if header.lower() == name:
            values.extend(part.strip() for part in value.decode("latin1").split(","))
    return values[-hops] if len(values) >= hops else None


def _address(value: str | None) -> str | None:
    """An IP address from a forwarded value (``1.2.3.4``, ``1.2.3.4:5``, ``[::1]:5``)."""
    if not value:
        return None
    candidates = [value]
    if value.startswith("[") and "]" in value:
        candidates.append(value[1:value.index("]")])
    elif value.count(":") == 1:
        candidates.append(value.split(":")[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None
