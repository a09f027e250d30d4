"""Uploads end to end (SPEC §10): POST /api/v1/uploads, attachments in send / the API /
sync, and who may GET a file, how it is served."""

from __future__ import annotations

import asyncio
import io
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from quart import Quart
from quart.testing import QuartClient

from chatapp import create_app
from chatapp.limits import UPLOAD_RATE
from chatapp.storage.models import utcnow

from . import conftest
from .conftest import AuthActions
from .hashing import cheap_passwords
from .test_files import GPS_IFD, jpeg_with_exif, png_declaring
from .wsutil import connect

GENERAL = "general"


@pytest.fixture(autouse=True)
def _fast_hashing(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:
        cheap_passwords(request.getfixturevalue("app"))


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return conftest.test_config(tmp_path, CHATAPP_UPLOAD_MAX_MB="1")


def multipart(content: bytes, filename: str = "f.bin", field: str = "file",
              boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\";"
        f" filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class Uploader:
    def __init__(self, client: QuartClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def upload(self, content: bytes, filename: str = "f.bin", **kw: Any) -> tuple[int, Any]:
        body, headers = multipart(content, filename, **kw)
        response = await self.client.post("/api/v1/uploads", data=body,
                                          headers={**headers, "X-CSRF-Token": self.csrf})
        return response.status_code, await response.get_json()

    async def uploaded(self, content: bytes, filename: str = "f.bin") -> dict[str, Any]:
        status, data = await self.upload(content, filename)
        assert status == 201, data
        return data  # type: ignore[no-any-return]

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        response = await self.client.post("/api/v1" + path, json=body,
                                          headers={"X-CSRF-Token": self.csrf})
        return response.status_code, await response.get_json()

    async def say(self, body: str, attachments: list[int], room: str = GENERAL) -> dict[str, Any]:
        status, message = await self.post(f"/rooms/{room}/messages",
                                          {"body": body, "attachments": attachments})
        assert status == 201, message
        return message  # type: ignore[no-any-return]

    async def get(self, url: str, **headers: str) -> Any:
        return await self.client.get(url, headers=headers or None)


async def person(auth: AuthActions, name: str) -> Uploader:
    return Uploader(*await auth.user(name))


def png_bytes(size: tuple[int, int] = (40, 20), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


def image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 30), (1, 2, 3)).save(out, format=fmt)
    return out.getvalue()


def upload_dir(app: Quart) -> Path:
    return Path(app.config["CHATAPP_UPLOAD_DIR"])


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"),
     ("WEBP", "image/webp")],
)
async def test_each_image_type_is_recognised_by_content(auth, fmt, content_type) -> None:
    alice = await person(auth, "alice")
    data = await alice.uploaded(image_bytes(fmt), "photo.txt")
    assert data["content_type"] == content_type
    assert (data["width"], data["height"]) == (30, 30)
    assert data["name"] == "photo.txt"
    assert data["url"] == f"/uploads/{data['id']}/photo.txt"
    assert data["thumbnail_url"] == f"/uploads/thumbnails/{data['id']}"
    response = await alice.get(data["url"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"].startswith("inline")
    thumb = await alice.get(data["thumbnail_url"])
    assert thumb.status_code == 200
    assert thumb.headers["Content-Type"] in ("image/png", "image/jpeg")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"%PDF-1.7 hello", "application/pdf"), (b"PK\x03\x04zip", "application/zip"),
     (b"plain words\n", "text/plain; charset=utf-8"),
     (b"\x00\x01\x02\x03", "application/octet-stream")],
)
async def test_other_files_are_kept_as_they_are_and_downloaded(auth, content, content_type):
    alice = await person(auth, "alice")
    data = await alice.uploaded(content, "report.pdf")
    assert data["content_type"] == content_type
    assert data["size"] == len(content)
    assert data["width"] is None and data["height"] is None and data["thumbnail_url"] is None
    response = await alice.get(data["url"])
    assert await response.get_data() == content
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert (await alice.get(f"/uploads/thumbnails/{data['id']}")).status_code == 404


async def test_exif_and_gps_are_gone_from_what_is_served(auth, tmp_path) -> None:
    alice = await person(auth, "alice")
    source = tmp_path / "cam.jpg"
    jpeg_with_exif(source, (60, 30), orientation=6)
    assert b"SecretCam" in source.read_bytes()
    data = await alice.uploaded(source.read_bytes(), "cam.jpg")
    assert (data["width"], data["height"]) == (30, 60)  # the orientation applied
    served = await (await alice.get(data["url"])).get_data()
    assert b"SecretCam" not in served
    with Image.open(io.BytesIO(served)) as image:
        exif = image.getexif()
        assert GPS_IFD not in exif and 0x010F not in exif
        assert image.size == (30, 60)


async def test_a_pixel_bomb_is_refused_and_nothing_stays(app, auth) -> None:
    alice = await person(auth, "alice")
    status, data = await alice.upload(png_declaring(100_000, 100_000), "bomb.png")
    assert status == 422 and data["error"]["code"] == "invalid"
    status, data = await alice.upload(b"\x89PNG\r\n\x1a\nbroken", "broken.png")
    assert status == 422
    assert list(upload_dir(app).iterdir()) == []


async def test_over_the_size_limit_is_413_and_nothing_stays(app, auth) -> None:
    alice = await person(auth, "alice")
    status, data = await alice.upload(b"x" * (1024 * 1024 + 1), "big.txt")
    assert status == 413 and data["error"]["code"] == "too_large"
    # Declared too large up front: refused before the body is read.
    status, _ = await alice.upload(b"x" * (2 * 1024 * 1024), "bigger.txt")
    assert status == 413
    assert list(upload_dir(app).iterdir()) == []
    # The rest of a refused body may still be on its way: the connection closes.
    body, headers = multipart(b"x" * (2 * 1024 * 1024), "big.txt")
    response = await alice.client.post("/api/v1/uploads", data=body,
                                       headers={**headers, "X-CSRF-Token": alice.csrf})
    assert response.status_code == 413 and response.headers["Connection"] == "close"
    # Exactly the limit is fine.
    data = await alice.uploaded(b"y" * (1024 * 1024), "fits.txt")
    assert data["size"] == 1024 * 1024


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"<html><script>alert(document.cookie)</script></html>", "cat.png"),
     (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "cat.svg"),
     (b"GIF89a<script>alert(1)</script>", "cat.gif")],
)
async def test_html_and_svg_disguised_as_images_are_never_inline(auth, content, name) -> None:
    alice = await person(auth, "alice")
    status, data = await alice.upload(content, name)
    if status == 422:  # a GIF header without a GIF behind it does not decode
        assert content.startswith(b"GIF")
        return
    assert status == 201 and not data["content_type"].startswith("image/")
    response = await alice.get(data["url"])
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


async def test_file_names_are_cleaned_and_disk_names_random(app, auth) -> None:
    alice = await person(auth, "alice")
    weird = "../../etc/\u202egpj.exe\u0007 Cafe\u0301  x.txt"
    data = await alice.uploaded(b"text", weird)
    assert data["name"] == "gpj.exe Caf\u00e9 x.txt"
    on_disk = [p.name for p in upload_dir(app).iterdir()]
    assert len(on_disk) == 1 and "gpj" not in on_disk[0] and "txt" not in on_disk[0]
    assert os.stat(upload_dir(app) / on_disk[0]).st_mode & 0o777 == 0o600
    assert upload_dir(app).stat().st_mode & 0o777 == 0o700
    response = await alice.get(data["url"])
    assert response.status_code == 200
    assert "filename*=UTF-8''gpj.exe%20Caf%C3%A9%20x.txt" in response.headers[
        "Content-Disposition"]


async def test_bad_requests_are_clear_errors(auth, client) -> None:
    alice = await person(auth, "alice")
    status, data = await alice.upload(b"abc", field="other")
    assert status == 422 and data["error"]["field"] == "file"
    status, _ = await alice.upload(b"")
    assert status == 422
    response = await alice.client.post("/api/v1/uploads", data=b"--x\r\ngarbage",
                                       headers={"X-CSRF-Token": alice.csrf,
                                                "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 400
    response = await alice.client.post("/api/v1/uploads", json={"file": "x"},
                                       headers={"X-CSRF-Token": alice.csrf})
    assert response.status_code == 400
    body, headers = multipart(b"abc")
    assert (await alice.client.post("/api/v1/uploads", data=body,
                                    headers=headers)).status_code == 400  # no CSRF
    assert (await client.post("/api/v1/uploads", data=body,
                              headers=headers)).status_code == 401


async def test_ranges_etags_and_cache_headers(auth) -> None:
    alice = await person(auth, "alice")
    content = bytes(range(256)) * 4
    data = await alice.uploaded(content, "bytes.bin")
    full = await alice.get(data["url"])
    etag = full.headers["ETag"]
    assert "private" in full.headers["Cache-Control"]
    assert full.headers["Accept-Ranges"] == "bytes"
    part = await alice.get(data["url"], Range="bytes=10-19")
    assert part.status_code == 206
    assert await part.get_data() == content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(content)}"
    again = await alice.get(data["url"], **{"If-None-Match": etag})
    assert again.status_code == 304


async def test_only_the_uploader_and_room_members_can_read(auth, client) -> None:
    alice, bob = await person(auth, "alice"), await person(auth, "bob")
    carol = await person(auth, "carol")
    data = await alice.uploaded(png_bytes(), "secret.png")
    # Not attached: only alice.
    assert (await bob.get(data["url"])).status_code == 404
    assert (await client.get(data["url"])).status_code == 404  # logged out
    # Attached in a private room with bob: bob yes, carol no (also the thumbnail).
    status, _ = await alice.post("/rooms", {"name": "hideout", "kind": "private"})
    assert status == 201
    status, _ = await alice.post("/rooms/hideout/members", {"username": "bob"})
    assert status == 201
    await alice.say("", [data["id"]], room="hideout")
    assert (await bob.get(data["url"])).status_code == 200
    assert (await bob.get(data["thumbnail_url"])).status_code == 200
    assert (await carol.get(data["url"])).status_code == 404
    assert (await carol.get(data["thumbnail_url"])).status_code == 404
    # The right id with another name is not the file either.
    assert (await bob.get(f"/uploads/{data['id']}/other.png")).status_code == 404
    # A DM: the other person reads it, outsiders do not.
    dm_file = await alice.uploaded(b"notes", "dm.txt")
    status, dm = await alice.post("/dms", {"users": ["bob"]})
    assert status == 201
    await alice.say("for you", [dm_file["id"]], room=dm["slug"])
    assert (await bob.get(dm_file["url"])).status_code == 200
    assert (await carol.get(dm_file["url"])).status_code == 404


async def test_a_bots_bearer_token_downloads_what_its_user_may_read(app, auth) -> None:
    alice = await person(auth, "alice")
    await person(auth, "bob")
    await person(auth, "carol")
    data = await alice.uploaded(png_bytes(), "plan.png")
    status, _ = await alice.post("/rooms", {"name": "hideout", "kind": "private"})
    assert status == 201
    status, _ = await alice.post("/rooms/hideout/members", {"username": "bob"})
    assert status == 201
    await alice.say("", [data["id"]], room="hideout")
    svc = app.extensions["chatapp"]
    storage = svc.storage
    bob_token = await svc.profile.create_token(await storage.user_by_name("bob"), "bot")
    carol_token = await svc.profile.create_token(await storage.user_by_name("carol"), "bot")

    async def fetch(url: str, token: str, **headers: str) -> Any:
        bot = app.test_client()  # no cookie at all
        response = await bot.get(url, headers={"Authorization": f"Bearer {token}", **headers})
        assert "Set-Cookie" not in response.headers
        return response

    # A member's token: the file, its thumbnail, ranges, as a browser would get them.
    full = await fetch(data["url"], bob_token.token)
    assert full.status_code == 200
    assert await full.get_data() == await (await alice.get(data["url"])).get_data()
    assert (await fetch(data["thumbnail_url"], bob_token.token)).status_code == 200
    part = await fetch(data["url"], bob_token.token, Range="bytes=0-7")
    assert part.status_code == 206 and await part.get_data() == b"\x89PNG\r\n\x1a\n"
    # A non-member's token: 404, as for a non-member's cookie (JSON, as on the API).
    refused = await fetch(data["url"], carol_token.token)
    assert refused.status_code == 404
    assert (await refused.get_json())["error"]["code"] == "not_found"
    assert (await fetch(data["thumbnail_url"], carol_token.token)).status_code == 404
    # An unknown or revoked token: 401 as on the API, never a cookie retry.
    for token in ("chatapp_wrong", ""):
        wrong = await fetch(data["url"], token)
        assert wrong.status_code == 401
        assert (await wrong.get_json())["error"]["code"] == "unauthorized"
    await svc.profile.revoke_token(bob_token.info.id)
    assert (await fetch(data["url"], bob_token.token)).status_code == 401
    # A bearer header wins over the uploader's own cookie (it decides alone).
    header = {"Authorization": f"Bearer {carol_token.token}"}
    assert (await alice.client.get(data["url"], headers=header)).status_code == 404


async def test_attachments_over_the_api_and_their_rules(auth) -> None:
    alice, bob = await person(auth, "alice"), await person(auth, "bob")
    first = await alice.uploaded(png_bytes(), "a.png")
    second = await alice.uploaded(b"text", "b.txt")
    message = await alice.say("", [first["id"], second["id"]])
    assert message["body"] == ""
    assert [a["id"] for a in message["attachments"]] == [first["id"], second["id"]]
    assert message["attachments"][0] == first
    response = await bob.client.get("/api/v1/rooms/general/messages")
    page = await response.get_json()
    assert page["messages"][-1]["attachments"] == message["attachments"]
    # Refused: attached already, someone else's, unknown, too many, not a list.
    mine = await bob.uploaded(b"bob's", "c.txt")
    for bad in ([first["id"]], [mine["id"]], [10**9], list(range(1, 12)), "1", [True],
                [mine["id"], mine["id"]]):
        status, error = await alice.post("/rooms/general/messages",
                                         {"body": "x", "attachments": bad})
        assert status == 422, (bad, error)
        assert error["error"]["field"] == "attachments"
    # An empty body needs attachments.
    status, error = await alice.post("/rooms/general/messages", {"body": " "})
    assert status == 422 and error["error"]["field"] == "body"
    # A message with attachments may be edited down to no text; one without may not.
    response = await alice.client.patch(f"/api/v1/messages/{message['id']}",
                                        json={"body": "caption"},
                                        headers={"X-CSRF-Token": alice.csrf})
    assert (await response.get_json())["attachments"] == message["attachments"]
    response = await alice.client.patch(f"/api/v1/messages/{message['id']}",
                                        json={"body": " "}, headers={"X-CSRF-Token": alice.csrf})
    assert response.status_code == 200 and (await response.get_json())["body"] == ""
    plain = await alice.say("words", [])
    response = await alice.client.patch(f"/api/v1/messages/{plain['id']}",
                                        json={"body": ""}, headers={"X-CSRF-Token": alice.csrf})
    assert response.status_code == 422


async def test_attachments_over_the_websocket_and_in_sync(auth) -> None:
    alice, bob = await person(auth, "alice"), await person(auth, "bob")
    image = await alice.uploaded(png_bytes(), "pic.png")
    async with connect(alice.client) as a, connect(bob.client) as b:
        await a.send("send", room=GENERAL, body="look", nonce="n1", attachments=[image["id"]])
        ack = await a.expect("ack", nonce="n1")
        assert ack["message"]["attachments"] == [image]
        event = await b.expect("message")
        assert event["message"]["attachments"] == [image]
        synced = await b.request("sync", "synced", room=GENERAL, after=event["seq"] - 1)
        assert synced["events"][0]["message"]["attachments"] == [image]
        # The same nonce again: the stored message, attachments and all.
        await a.send("send", room=GENERAL, body="look", nonce="n1", attachments=[image["id"]])
        again = await a.expect("ack", nonce="n1")
        assert again["message"]["id"] == ack["message"]["id"]
        assert again["message"]["attachments"] == [image]
        # Attached already: an error, the connection goes on.
        await a.send("send", room=GENERAL, body="again", nonce="n2",
                     attachments=[image["id"]])
        error = await a.expect("error", nonce="n2")
        assert error["code"] == "invalid"
        await a.send("send", room=GENERAL, body="", nonce="n3")
        assert (await a.expect("error", nonce="n3"))["code"] == "invalid"
        # An edit keeps the attachments on the message object.
        done = await a.request("edit", "done", room=GENERAL, id=ack["message"]["id"],
                               body="look here")
        assert done["event"]["message"]["attachments"] == [image]


async def test_orphans_are_pruned_with_their_files(app, auth, storage) -> None:
    alice = await person(auth, "alice")
    orphan = await alice.uploaded(png_bytes(), "orphan.png")
    kept = await alice.uploaded(png_bytes(), "kept.png")
    await alice.say("keep", [kept["id"]])
    directory = upload_dir(app)
    assert len(list(directory.iterdir())) == 4  # two images, two thumbnails
    services = app.extensions["chatapp"]
    assert await services.uploads.prune(utcnow(), 100) == 0  # not 24 h old yet
    counts = await services.housekeeper.run_once()
    assert counts["uploads"] == 0
    assert await services.uploads.prune(utcnow() + timedelta(hours=24, seconds=1), 100) == 1
    assert len(list(directory.iterdir())) == 2
    assert (await alice.get(orphan["url"])).status_code == 404
    assert (await alice.get(kept["url"])).status_code == 200
    # A .part file left by a killed process goes once it is as old.
    part = directory / "0123abcd.part"
    part.write_bytes(b"half a file")
    old = (utcnow() - timedelta(hours=25)).timestamp()
    os.utime(part, (old, old))
    fresh = directory / "4567cdef.part"
    fresh.write_bytes(b"arriving")
    assert await services.uploads.prune(utcnow(), 100) == 1
    assert not part.exists() and fresh.exists()


async def test_uploads_are_rate_limited_per_user(app, auth, storage) -> None:
    alice = await person(auth, "alice")
    user = await storage.user_by_name("alice")
    limits = app.extensions["chatapp"].limits
    for _ in range(UPLOAD_RATE.count):
        await limits.hit(f"uploads:{user.id}", UPLOAD_RATE)
    status, data = await alice.upload(b"one more", "x.txt")
    assert status == 429 and data["error"]["code"] == "rate_limited"
    bob = await person(auth, "bob")  # one budget per user
    assert (await bob.upload(b"fine", "y.txt"))[0] == 201


async def test_the_body_is_read_at_the_pace_it_is_written(tmp_path) -> None:
    """Quart alone would pull the whole body into memory as fast as it arrives; the
    gate lets at most a few hundred KiB wait between the socket and the file."""
    app = create_app(conftest.test_config(tmp_path, CHATAPP_UPLOAD_MAX_MB="16"))
    cheap_passwords(app)
    async with app.test_app():
        alice = await person(AuthActions(app), "alice")
        cookie = "; ".join(f"{c.name}={c.value}" for c in alice.client.cookie_jar)
        size = 8 * 1024 * 1024
        body, headers = multipart(b"z" * size, "big.bin")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/v1/uploads",
            "raw_path": b"/api/v1/uploads", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"localhost"), (b"cookie", cookie.encode()),
                        (b"x-csrf-token", alice.csrf.encode()),
                        (b"content-type", headers["Content-Type"].encode()),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "extensions": {},
        }
        directory = upload_dir(app)
        handed = 0
        most_waiting = 0
        answered = asyncio.Event()
        statuses: list[int] = []

        def on_disk() -> int:
            return sum(p.stat().st_size for p in directory.glob("*.part"))

        async def receive() -> dict[str, Any]:
            nonlocal handed, most_waiting
            if handed < len(body):
                if handed > 0:
                    most_waiting = max(most_waiting, handed - on_disk())
                chunk = body[handed:handed + 64 * 1024]
                handed += len(chunk)
                return {"type": "http.request", "body": chunk,
                        "more_body": handed < len(body)}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif not message.get("more_body"):
                answered.set()

        await app(scope, receive, send)  # type: ignore[arg-type]
        assert statuses == [201]
        assert handed == len(body)
        assert most_waiting < 1024 * 1024, most_waiting


async def test_a_refusal_before_the_body_is_read_does_not_hang(tmp_path) -> None:
    """Hypercorn ends a response by putting ``http.disconnect`` into the app's bounded
    queue; with the body's rest still filling it (the gate reads no more), that put
    would wait for good. Emulated here: a queue of 10 that the client keeps full."""
    app = create_app(conftest.test_config(tmp_path, CHATAPP_UPLOAD_MAX_MB="1"))
    cheap_passwords(app)
    async with app.test_app():
        alice = await person(AuthActions(app), "alice")
        cookie = "; ".join(f"{c.name}={c.value}" for c in alice.client.cookie_jar)
        size = 8 * 1024 * 1024
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/v1/uploads",
            "raw_path": b"/api/v1/uploads", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"localhost"), (b"cookie", cookie.encode()),
                        (b"x-csrf-token", alice.csrf.encode()),
                        (b"content-type", b"multipart/form-data; boundary=b0undary"),
                        (b"content-length", str(size).encode())],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "extensions": {},
        }
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(10)
        statuses: list[int] = []

        async def client() -> None:
            for _ in range(size // (64 * 1024)):
                await queue.put({"type": "http.request", "body": b"x" * 65536,
                                 "more_body": True})

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif not message.get("more_body"):
                await queue.put({"type": "http.disconnect"})  # as Hypercorn does

        feeder = asyncio.create_task(client())
        try:
            await asyncio.wait_for(app(scope, queue.get, send), 30)  # type: ignore[arg-type]
        finally:
            feeder.cancel()
        assert statuses == [413]
