"""A real ``hypercorn --config hypercorn.toml`` process, used over real HTTP."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from .servers import Browser, Server

pytestmark = pytest.mark.slow

PASSWORD = "a very particular password 7731"
ACCESS_LINE = re.compile(r'"(GET|POST|HEAD|PUT|DELETE|PATCH|OPTIONS) (\S+) [^"]*" (\d{3}) ')
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')


class CountingBrowser(Browser):
    """A browser that remembers every request it made, for matching the access log."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.sent: list[tuple[str, str, int]] = []

    def request(self, path: str, form: dict[str, str] | None = None, **kwargs: Any) -> Any:
        status, headers, body = super().request(path, form=form, **kwargs)
        method = kwargs.get("method") or ("POST" if form is not None or kwargs.get("body")
                                          is not None else "GET")
        self.sent.append((method, path, status))
        return status, headers, body


def access_lines(output: str) -> list[tuple[str, str, int]]:
    return [(m[1], m[2], int(m[3])) for m in ACCESS_LINE.finditer(output)]


def test_register_login_chat_logout_over_real_http(server: Server) -> None:
    # The readiness probe's own access line may still be on its way; wait for it.
    deadline = time.monotonic() + 10
    while not access_lines(server.output()) and time.monotonic() < deadline:
        time.sleep(0.05)
    already = len(server.output())
    browser = CountingBrowser(server.base)

    status, headers, _ = browser.request("/")
    assert status == 303 and headers["location"].endswith("/login")

    token = browser.csrf("/register")
    status, headers, _ = browser.request(
        "/register", form={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert status == 303
    set_cookie = headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    status, headers, html = browser.request("/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert 'data-username="alice"' in html
    csrf = CSRF_META.search(html).group(1)

    status, _, body = browser.request("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}

    status, _, body = browser.request(
        "/api/v1/rooms/general/messages", body={"body": "hello over tcp"},
        headers={"X-CSRF-Token": csrf},
    )
    assert status == 201 and json.loads(body)["body"] == "hello over tcp"

    stolen = browser.cookie_header
    status, headers, _ = browser.request("/logout", form={"csrf_token": csrf})
    assert status == 303 and headers["location"].endswith("/login")
    status, _, _ = browser.request("/")
    assert status == 303

    # A copy of the old cookie is dead.
    thief = CountingBrowser(server.base)
    status, _, _ = thief.request("/api/v1/me", headers={"Cookie": stolen})
    assert status == 401

    assert browser.login("alice", "wrong password") == 401
    assert browser.login("alice", PASSWORD) == 303
    status, _, body = browser.request("/api/v1/me")
    assert status == 200 and json.loads(body)["username"] == "alice"

    server.terminate()
    assert server.process is not None and server.process.returncode == 0
    output = server.output()

    # One access-log line per request, with the status we saw.
    seen = access_lines(output[already:])
    expected = browser.sent + thief.sent
    assert sorted(seen) == sorted(expected), (seen, expected)
    assert len(seen) == len(expected)

    # Never the password, the session cookie or the CSRF token.
    assert PASSWORD not in output
    assert stolen.split("=", 1)[1] not in output
    assert csrf not in output
    assert server.env()["CHATAPP_SECRET_KEY"] not in output


def test_sigterm_exits_cleanly_and_quickly(server: Server) -> None:
    browser = Browser(server.base)
    assert browser.register("bob") == 303
    took = server.terminate()
    assert server.process is not None and server.process.returncode == 0
    assert took < 10
    assert "Traceback" not in server.output()


def test_static_revalidation_over_real_http(server: Server) -> None:
    browser = Browser(server.base)
    status, headers, _ = browser.request("/static/app.css")
    assert status == 200
    etag = headers["etag"]
    status, _, body = browser.request("/static/app.css", headers={"If-None-Match": etag})
    assert status == 304 and body == ""


def test_unknown_page_and_api_errors_over_real_http(server: Server) -> None:
    browser = Browser(server.base)
    status, headers, body = browser.request("/nope")
    assert status == 404 and headers["content-type"].startswith("text/html")
    status, headers, body = browser.request("/api/v1/me")
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthorized"
