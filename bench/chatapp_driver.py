"""Drive chatapp over its public contract (SPEC §3, §5): register, log in, create rooms,
read history; seed a large history (s5) and many users with sessions (s2u, s3u)
through chatapp's storage interface."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import time
from pathlib import Path

import aiohttp
from yarl import URL

CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>', re.I)
CSRF_META = re.compile(r'<meta[^>]*name="csrf-token"[^>]*>', re.I)
VALUE = re.compile(r'(?:value|content)="([^"]*)"')

PASSWORD = "bench-password-123"


def _token(page: str, meta: bool = False) -> str:
    m = (CSRF_META if meta else CSRF_INPUT).search(page)
    if not m:
        raise RuntimeError("no csrf token in page")
    v = VALUE.search(m.group(0))
    if not v:
        raise RuntimeError("csrf tag without value")
    return html.unescape(v.group(1))


def new_session() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies for an IP-address host (127.0.0.1)
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=60)
    )


def cookie_header(session: aiohttp.ClientSession, base: str) -> str:
    jar = session.cookie_jar.filter_cookies(URL(base))
    return "; ".join(f"{k}={m.value}" for k, m in jar.items())


class User:
    def __init__(self, base: str, name: str) -> None:
        self.base = base
        self.name = name
        self.http = new_session()
        self.cookie = ""

    async def _form(self, path: str, fields: dict, ok: int = 303) -> int:
        async with self.http.get(self.base + path) as r:
            page = await r.text()
        fields = dict(fields, csrf_token=_token(page))
        async with self.http.post(self.base + path, data=fields, allow_redirects=False) as r:
            await r.read()
            if r.status != ok:
                raise RuntimeError(f"POST {path} as {self.name}: HTTP {r.status}")
            self.cookie = cookie_header(self.http, self.base)
            return r.status

    async def register(self) -> None:
        await self._form("/register", {"username": self.name, "password": PASSWORD})

    async def login_form(self) -> str:
        """GET /login; returns its csrf token (the burst then only POSTs)."""
        async with self.http.get(self.base + "/login") as r:
            return _token(await r.text())

    async def login_post(self, token: str) -> float:
        t0 = time.perf_counter()
        async with self.http.post(
            self.base + "/login",
            allow_redirects=False,
            data={"username": self.name, "password": PASSWORD, "csrf_token": token},
        ) as r:
            await r.read()
            if r.status != 303:
                raise RuntimeError(f"login {self.name}: HTTP {r.status}")
        return time.perf_counter() - t0

    async def api_token(self) -> str:
        async with self.http.get(self.base + "/") as r:
            return _token(await r.text(), meta=True)

    async def create_room(self, name: str, kind: str = "private") -> str:
        token = await self.api_token()
        async with self.http.post(
            self.base + "/api/v1/rooms",
            json={"name": name, "kind": kind},
            headers={"X-CSRF-Token": token},
        ) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"create room {name}: HTTP {r.status} {body}")
            return body.get("slug") or body.get("room", {}).get("slug")

    async def close(self) -> None:
        await self.http.close()


async def register_users(base: str, names: list[str], concurrency: int = 4) -> list[User]:
    sem = asyncio.Semaphore(concurrency)
    users = [User(base, n) for n in names]

    async def one(u: User) -> None:
        async with sem:
            await u.register()

    await asyncio.gather(*(one(u) for u in users))
    return users


# --------------------------------------------------------------------------
# s5: seed a big history through chatapp's storage interface (server stopped).
async def seed_history(
    db: Path, rooms: dict[str, int], author: str, readers: dict[str, str] | None = None,
    batch: int = 50_000,
) -> dict[str, tuple[int, int]]:
    """Add `count` messages to each room slug (created as a public room by `author` when
    missing) with ``Storage.import_messages``, `batch` at a time: the messages, their
    room events and the search index, as sends would leave them. ``readers``
    {slug: username} makes that user a member who has read nothing there.
    Returns {slug: (first_id, last_id)} of the new messages."""
    from chatapp.storage import open_storage

    storage = open_storage(f"sqlite:///{db}")
    await storage.connect()
    out: dict[str, tuple[int, int]] = {}
    try:
        user = await storage.user_by_name(author)
        if user is None:
            raise RuntimeError(f"no user {author!r} to author the history")
        base_time = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        for slug, count in rooms.items():
            room = await storage.room(slug) or await storage.create_room(
                slug, slug, "public", user.id)
            reader = await storage.user_by_name((readers or {}).get(slug) or author)
            if reader is not None and reader.id != user.id:
                await storage.join(reader.id, room.id)  # before the import: all unread
            first_id = last_id = 0
            for start in range(0, count, batch):
                rows = [(user.id, f"history message {i} " + "x" * 60,
                         base_time + dt.timedelta(seconds=i))
                        for i in range(start, min(count, start + batch))]
                first, last_id = await storage.import_messages(room.id, rows)
                first_id = first_id or first
            out[slug] = (first_id, last_id)
    finally:
        await storage.close()
    return out


# --------------------------------------------------------------------------
# s2u/s3u: many users, one per connection, seeded through chatapp's own storage
# interface (the running server shares the SQLite file) with a signed session cookie
# each, as a login would make: no argon2 per user.
async def seed_sessions(db: str, secret_key: str, n: int, prefix: str) -> list[str]:
    import secrets

    from chatapp import create_app
    from chatapp.accounts import token_hash
    from chatapp.storage import open_storage

    url = f"sqlite:///{db}"
    app = create_app({"CHATAPP_SECRET_KEY": secret_key, "CHATAPP_DATABASE_URL": url,
                      "CHATAPP_INSTANCE_PATH": str(Path(db).parent / "instance")})
    signer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    name = app.config["SESSION_COOKIE_NAME"]
    storage = open_storage(url)
    await storage.connect()
    cookies: list[str] = []
    try:
        # Never used to log in: connections arrive with a session already.
        unusable_hash = "$argon2id$v=19$m=65536,t=3,p=4$bm90LWEtaGFzaA$bm90LWEtaGFzaA"

        async def one(i: int) -> str:
            user = await storage.create_user(f"{prefix}{i:05d}", unusable_hash)
            token = secrets.token_urlsafe(32)
            await storage.create_session(token_hash(token), user.id)
            return f"{name}={signer.dumps({'sid': token, 'csrf': secrets.token_urlsafe(8)})}"

        for start in range(0, n, 500):  # the writer groups each chunk's commits
            cookies += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 500))))
    finally:
        await storage.close()
    return cookies
