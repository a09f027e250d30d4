"""Pages, error pages, static files and security headers (SPEC §4)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from quart import abort

from chatapp import create_app

from .conftest import CSRF_META
from .conftest import test_config as make_config
from .hashing import cheap_passwords

ERROR_STATUSES = (400, 401, 403, 404, 405, 413, 429, 500)


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


async def text(response: Any) -> str:
    return await response.get_data(as_text=True)


def assert_json_error(body: Any, status: int, code: str) -> None:
    """Exactly SPEC §4's shape: {"error": {"status", "code", "message"}} (+ field)."""
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) - {"field"} == {"status", "code", "message"}
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def assert_html_error(response: Any, body: str, status: int) -> None:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert "<!doctype html>" in body.lower()
    assert f'<p class="error-status">{status}</p>' in body


def posting_forms(html: str) -> list[str]:
    return re.findall(r"<form\b[^>]*method=\"post\"[^>]*>.*?</form>", html, re.S | re.I)


# the chat page


async def test_index_logged_out_redirects_to_login(client):
    response = await client.get("/")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"


async def test_index_logged_in_is_the_chat_page(auth):
    client, _ = await auth.user("alice")
    response = await client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    body = await text(response)
    meta = CSRF_META.search(body)
    assert meta and len(meta.group(1)) >= 32
    assert 'data-username="alice"' in body
    assert 'data-slug="general"' in body  # the rooms list
    assert 'id="online-list"' in body  # who is online
    assert 'data-room="general"' in body


async def test_chat_page_csrf_meta_works_for_the_api(auth):
    client, _ = await auth.user("alice")
    token = CSRF_META.search(await text(await client.get("/"))).group(1)
    response = await client.post(
        "/api/v1/rooms/general/messages", json={"body": "hi"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 201


async def test_every_form_carries_a_csrf_input(auth):
    client = auth.new_client()
    pages = {}
    for path in ("/login", "/register"):
        pages[path] = await text(await client.get(path))
    client, _ = await auth.user("alice")
    pages["/"] = await text(await client.get("/"))
    pages["/rooms/general"] = await text(await client.get("/rooms/general"))
    for path, html in pages.items():
        forms = posting_forms(html)
        assert forms, f"no POST form on {path}"
        for form in forms:
            assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]{32,}">', form), (
                path,
                form[:200],
            )


async def test_logout_form_on_chat_page(auth):
    client, _ = await auth.user("alice")
    html = await text(await client.get("/"))
    assert any('action="/logout"' in form for form in posting_forms(html))


async def test_room_page_opens_the_room(auth, storage):
    client, csrf = await auth.user("alice")
    response = await client.post(
        "/api/v1/rooms", json={"name": "Design", "kind": "public"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 201
    response = await client.get("/rooms/design")
    assert response.status_code == 200
    body = await text(response)
    assert 'data-room="design"' in body
    assert 'aria-current="page"' in body


async def test_general_room_page(auth):
    client, _ = await auth.user("alice")
    response = await client.get("/rooms/general")
    assert response.status_code == 200
    assert 'data-room="general"' in await text(response)


async def test_public_room_not_joined_shows_join_bar(auth):
    alice, csrf = await auth.user("alice")
    await alice.post(
        "/api/v1/rooms", json={"name": "Random", "kind": "public"}, headers={"X-CSRF-Token": csrf}
    )
    bob, _ = await auth.user("bob")
    response = await bob.get("/rooms/random")
    assert response.status_code == 200
    assert 'id="join-btn"' in await text(response)


async def test_unknown_room_is_404_html(auth):
    client, _ = await auth.user("alice")
    response = await client.get("/rooms/no-such-room")
    assert_html_error(response, await text(response), 404)


async def test_private_room_of_others_is_404_html(auth):
    alice, csrf = await auth.user("alice")
    await alice.post(
        "/api/v1/rooms", json={"name": "Secret", "kind": "private"}, headers={"X-CSRF-Token": csrf}
    )
    bob, _ = await auth.user("bob")
    response = await bob.get("/rooms/secret")
    body = await text(response)
    assert_html_error(response, body, 404)
    assert "Secret" not in body


async def test_room_logged_out_redirects_with_next(client):
    response = await client.get("/rooms/general")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/rooms/general"


# errors


async def test_unknown_page_is_404_html(client):
    response = await client.get("/no/such/page")
    body = await text(response)
    assert_html_error(response, body, 404)
    assert "Page not found" in body


async def test_wrong_method_is_405_html_with_allow(client):
    response = await client.delete("/login")
    assert_html_error(response, await text(response), 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed


async def test_unknown_api_path_is_404_json(auth):
    client, _ = await auth.user("alice")
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert_json_error(await response.get_json(), 404, "not_found")


async def test_unknown_api_path_logged_out_is_json(client):
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code in (401, 404)
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert_json_error(body, response.status_code, {401: "unauthorized", 404: "not_found"}[
        response.status_code
    ])


async def test_api_wrong_method_is_405_json(auth):
    client, csrf = await auth.user("alice")
    response = await client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert_json_error(await response.get_json(), 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


async def test_api_unknown_room_is_404_json(auth):
    client, _ = await auth.user("alice")
    response = await client.get("/api/v1/rooms/nope/messages")
    assert response.status_code == 404
    assert_json_error(await response.get_json(), 404, "not_found")


async def test_too_large_form_is_413_html(client):
    await client.get("/login")
    response = await client.post(
        "/login",
        data=b"username=" + b"a" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_html_error(response, await text(response), 413)


async def test_too_large_api_body_is_413_json(auth):
    client, csrf = await auth.user("alice")
    response = await client.post(
        "/api/v1/rooms/general/messages",
        data=b'{"body": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert_json_error(await response.get_json(), 413, "too_large")


def crashing_app(tmp_path: Any, **overrides: Any) -> Any:
    app = create_app(make_config(tmp_path, CHATAPP_ALLOWED_HOSTS="localhost", **overrides))

    @app.get("/boom")
    async def boom() -> Any:
        raise RuntimeError("secret detail ZXQ-42")

    @app.get("/api/v1/boom")
    async def api_boom() -> Any:
        raise RuntimeError("secret detail ZXQ-42")

    @app.get("/status/<int:code>")
    async def status(code: int) -> Any:
        abort(code)

    return app


@pytest.mark.parametrize("env", ["testing", "production"])
async def test_500_shows_no_traceback_outside_development(tmp_path, env, caplog):
    app = crashing_app(tmp_path, CHATAPP_ENV=env)
    async with app.test_app():
        client = app.test_client()
        response = await client.get("/boom")
        body = await text(response)
        assert_html_error(response, body, 500)
        for leak in ("Traceback", "RuntimeError", "ZXQ-42", "chatapp/"):
            assert leak not in body

        response = await client.get("/api/v1/boom")
        assert response.status_code == 500
        raw = await text(response)
        assert_json_error(await response.get_json(), 500, "internal_error")
        assert "ZXQ-42" not in raw and "Traceback" not in raw
    # The operator still sees what happened, in the log.
    assert "ZXQ-42" in caplog.text


@pytest.mark.parametrize("status", ERROR_STATUSES)
async def test_every_listed_status_has_an_html_page(tmp_path, status):
    app = crashing_app(tmp_path)
    async with app.test_app():
        response = await app.test_client().get(f"/status/{status}")
        assert_html_error(response, await text(response), status)


# security headers


def assert_security_headers(response: Any) -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"] or (
        "script-src" not in directives and directives["default-src"] == ["'self'"]
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in (
        "same-origin",
        "no-referrer",
        "strict-origin",
        "strict-origin-when-cross-origin",
    )


async def test_security_headers_on_pages(auth):
    client, _ = await auth.user("alice")
    for path in ("/", "/rooms/general", "/no-such-page"):
        assert_security_headers(await client.get(path))
    logged_out = auth.new_client()
    for path in ("/login", "/register"):
        assert_security_headers(await logged_out.get(path))


async def test_security_headers_on_api_and_static(auth):
    client, _ = await auth.user("alice")
    assert_security_headers(await client.get("/api/v1/me"))
    assert_security_headers(await client.get("/static/app.css"))
    assert_security_headers(await client.get("/healthz"))


async def test_pages_have_no_inline_script(auth):
    """The CSP forbids inline script, so the pages must not depend on any."""
    client, _ = await auth.user("alice")
    pages = [await text(await client.get(p)) for p in ("/", "/rooms/general")]
    anon = auth.new_client()
    pages += [await text(await anon.get(p)) for p in ("/login", "/register", "/nope")]
    for html in pages:
        for tag, content in re.findall(r"(<script\b[^>]*>)(.*?)</script>", html, re.I | re.S):
            assert "src=" in tag and not content.strip(), tag
        assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
        assert "javascript:" not in html


async def test_html_pages_are_not_cached(auth):
    client, _ = await auth.user("alice")
    response = await client.get("/")
    assert "no-store" in response.headers.get("Cache-Control", "")


# static files


async def test_static_file_has_validators(client):
    response = await client.get("/static/app.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert response.headers.get("ETag")
    assert response.headers.get("Last-Modified")
    assert len(await response.get_data()) > 0


async def test_static_304_on_if_none_match(client):
    first = await client.get("/static/chat.js")
    etag = first.headers["ETag"]
    response = await client.get("/static/chat.js", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert await response.get_data() == b""
    assert response.headers.get("ETag") == etag


async def test_static_304_on_if_modified_since(client):
    first = await client.get("/static/app.css")
    response = await client.get(
        "/static/app.css", headers={"If-Modified-Since": first.headers["Last-Modified"]}
    )
    assert response.status_code == 304


async def test_static_200_on_stale_validators(client):
    response = await client.get("/static/app.css", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    response = await client.get(
        "/static/app.css", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert response.status_code == 200


async def test_static_missing_file_is_404(client):
    response = await client.get("/static/no-such-file.js")
    assert response.status_code == 404


async def test_static_path_traversal_is_refused(client):
    for path in ("/static/../pyproject.toml", "/static/..%2fpyproject.toml"):
        response = await client.get(path)
        assert response.status_code == 404
        assert "chatapp" not in (await text(response)).split("<title>")[0]


async def test_static_files_served_without_login(client):
    for name in ("app.css", "chat.js", "favicon.svg"):
        assert (await client.get(f"/static/{name}")).status_code == 200


# health


async def test_healthz_ok(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_healthz_503_when_storage_fails(app, client, monkeypatch):
    async def broken() -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(app.extensions["chatapp"].storage, "ping", broken)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert (await response.get_json())["status"] != "ok"
