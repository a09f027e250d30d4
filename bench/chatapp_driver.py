"""Drive chatapp over its public contract (SPEC §3, §5): register, log in, create rooms,
read history; seed a large history straight into a fresh SQLite file (s5), and many
users with sessions through chatapp's storage interface (s2u, s3u)."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import sqlite3
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
# s5: seed a big history straight into SQLite (server stopped), schema read from the DB.
def seed_sqlite(
    db: Path, rooms: dict[str, int], author: str, readers: dict[str, str] | None = None
) -> dict[str, tuple[int, int]]:
    """Insert `count` messages into each room slug (created as public rooms with `author` as
    member when missing). The insert trigger that bumps rooms.last_seq per row is dropped
    for the bulk load, last_seq set once, and the trigger restored from its own SQL.
    ``readers`` {slug: username} makes that user a member who has read nothing there.
    Returns {slug: (first_id, last_id)}."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    cur = con.cursor()
    uid = cur.execute("SELECT id FROM users WHERE username_key=?", (author.lower(),)).fetchone()
    if uid is None:
        uid = cur.execute("SELECT id FROM users WHERE username=?", (author,)).fetchone()
    uid = uid[0]
    triggers = cur.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='messages'"
    ).fetchall()
    for name, _ in triggers:
        cur.execute(f'DROP TRIGGER "{name}"')
    out = {}
    base_time = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for slug, count in rooms.items():
        row = cur.execute("SELECT id, last_seq FROM rooms WHERE slug=?", (slug,)).fetchone()
        now = base_time.isoformat().replace("+00:00", "Z")
        if row is None:
            cur.execute(
                "INSERT INTO rooms (slug, name, kind, created_by, created_at)"
                " VALUES (?, ?, 'public', ?, ?)",
                (slug, slug, uid, now),
            )
            rid, last = cur.lastrowid, 0
            cur.execute(
                "INSERT INTO memberships (user_id, room_id, last_read_seq, joined_at)"
                " VALUES (?, ?, 0, ?)",
                (uid, rid, now),
            )
        else:
            rid, last = row
        first_id = None
        batch = 50_000
        for start in range(0, count, batch):
            n = min(batch, count - start)
            rows = []
            for i in range(start, start + n):
                ts = (base_time + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                rows.append((rid, last + i + 1, uid, f"history message {i} " + "x" * 60, ts))
            cur.executemany(
                "INSERT INTO messages (room_id, seq, author_id, body, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            if first_id is None:
                first_id = cur.execute(
                    "SELECT min(id) FROM messages WHERE room_id=? AND seq>?", (rid, last)
                ).fetchone()[0]
        cur.execute("UPDATE rooms SET last_seq=? WHERE id=?", (last + count, rid))
        reader = (readers or {}).get(slug)
        if reader is not None:
            cur.execute(
                "INSERT OR IGNORE INTO memberships (user_id, room_id, last_read_seq, joined_at)"
                " SELECT id, ?, 0, ? FROM users WHERE username = ?",
                (rid, now, reader),
            )
        last_id = cur.execute("SELECT max(id) FROM messages WHERE room_id=?", (rid,)).fetchone()[0]
        out[slug] = (first_id, last_id)
    for _, sql in triggers:
        cur.execute(sql)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("ANALYZE")
    con.close()
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
