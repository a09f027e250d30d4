"""The one ASGI layer in front of everything: proxies, the host check, access log, metrics.

``install(app)`` wraps ``app.asgi_app`` (``/ws`` included, which is served ahead of
Quart's routing). For each request, in order: take the client address and scheme from
trusted proxies (``chatapp.proxy.forwarded``), refuse a host not allowed (400, the app
never sees it), then count it by route and status and write one access line.

The access line is the app's, not Hypercorn's (``hypercorn.toml`` sets no
``accesslog``): Hypercorn logs the peer of its own socket, which behind a proxy is the
proxy. The route is the URL rule (``/rooms/<slug>``), bounded whatever paths clients
make up; the query string is never logged, and a path whose rule holds a secret
(``<token>``, ``<code>``) is logged as the rule.

For websockets ``__call__`` is a plain function that hands the inner app's coroutine
straight back: an open connection keeps no frame of this layer, only a small send
wrapper that logs the handshake's answer (101, or the refusal).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart, has_request_context, request, websocket

from .metrics import Metrics
from .proxy import AllowedHosts, Receive, Scope, Send, forwarded, parse_hosts, refuse_host

log = logging.getLogger("chatapp.access")

ROUTE_KEY = "chatapp.route"
UNMATCHED = "<unmatched>"
BAD_HOST = "<bad-host>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SECRET_PART = re.compile(r"<(?:[^:>]+:)?(?:token|code|secret)>")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def install(app: Quart) -> None:
    """Wrap the app (after ``/ws`` is installed) and record each request's URL rule."""
    app.asgi_app = FrontDoor(  # type: ignore[method-assign,assignment]
        app.asgi_app,  # type: ignore[arg-type]
        hops=app.config["CHATAPP_TRUSTED_PROXIES"],
        hosts=AllowedHosts(parse_hosts(app.config["CHATAPP_ALLOWED_HOSTS"])),
        metrics=app.extensions["chatapp"].metrics,
    )

    @app.url_value_preprocessor
    def remember_route(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        # Runs first on every request Quart routes; the scope is the one given below.
        asked = request if has_request_context() else websocket
        if asked.url_rule is not None:
            asked.scope[ROUTE_KEY] = asked.url_rule.rule  # type: ignore[literal-required]


class FrontDoor:
    def __init__(self, inner: ASGIApp, hops: int, hosts: AllowedHosts, metrics: Metrics) -> None:
        self.inner = inner
        self.hops = hops
        self.hosts = hosts
        self.metrics = metrics

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return self.inner(scope, receive, send)
        if self.hops:
            scope = forwarded(scope, self.hops)
        if kind == "websocket":
            if not self.hosts.allows(scope):
                return refuse_host(scope, Handshake(self, scope, BAD_HOST, send).send)
            # Not written into the scope: it lives as long as the connection.
            route = "/ws" if scope["path"] == "/ws" else UNMATCHED
            return self.inner(scope, receive, Handshake(self, scope, route, send).send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        status = 0
        size = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            if self.hosts.allows(scope):
                await self.inner(scope, receive, sending)
            else:
                scope[ROUTE_KEY] = BAD_HOST
                await refuse_host(scope, sending)
        finally:
            route = scope.get(ROUTE_KEY, UNMATCHED)
            self.record(scope, route, status or 500, size, time.monotonic() - started)

    def record(
        self, scope: Scope, route: str, status: int, size: int | None, seconds: float
    ) -> None:
        method = scope.get("method", "GET")
        method = method if method in METHODS else "OTHER"
        self.metrics.http_requests.labels(route=route, method=method, status=str(status)).inc()
        self.metrics.http_duration.labels(route=route).observe(seconds)
        if log.isEnabledFor(logging.INFO):
            access_line(scope, route, method, status, size, seconds)


class Handshake:
    """A websocket's send, watching for the handshake's answer to log and count it."""

    __slots__ = ("door", "scope", "route", "inner", "started")

    def __init__(self, door: FrontDoor, scope: Scope, route: str, inner: Send) -> None:
        self.door: FrontDoor | None = door
        self.scope: Scope | None = scope
        self.route = route
        self.inner = inner
        self.started = time.monotonic()

    async def send(self, message: dict[str, Any]) -> None:
        if self.door is not None:
            kind = message["type"]
            status = (101 if kind == "websocket.accept"
                      else message.get("status", 500) if kind == "websocket.http.response.start"
                      else 403 if kind == "websocket.close"  # Hypercorn's answer before accept
                      else 0)
            if status:
                scope = self.scope
                assert scope is not None
                door, self.door, self.scope = self.door, None, None  # only the first answer
                door.record(scope, self.route, status, None, time.monotonic() - self.started)
        await self.inner(message)


def access_line(
    scope: Scope, route: str, method: str, status: int, size: int | None, seconds: float
) -> None:
    client = scope.get("client")
    address = str(client[0]) if client else "-"
    path = route if SECRET_PART.search(route) else scope.get("path", "")
    headers = dict(scope.get("headers", ()))
    agent = headers.get(b"user-agent", b"").decode("latin1")
    protocol = ("HTTP/" if scope["type"] == "http" else "WS/") + scope.get("http_version", "1.1")
    method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
    # Quotes inside the quoted fields as \x22 (as nginx does); the formatter escapes the rest.
    log.info(
        '%s "%s %s %s" %s %s %.1fms "%s"',
        address, method, path.replace('"', "\\x22"), protocol, status,
        "-" if size is None else size, seconds * 1000, agent.replace('"', "\\x22"),
        extra={"fields": {
            "client": address, "method": method, "path": path, "route": route,
            "protocol": protocol, "status": status, "bytes": size,
            "duration_ms": round(seconds * 1000, 3), "user_agent": agent,
            "scheme": scope.get("scheme"),
        }},
    )
