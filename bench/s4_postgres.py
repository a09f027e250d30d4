"""s4 on PostgreSQL (``--only s4pg``): the write path of s4 with chatapp on PostgreSQL.

The same senders, rooms and window as s4 (``bench/scenarios.py``); chatapp's database
is a fresh PostgreSQL database made for the run (``chatapp_bench_s4``, dropped after),
on the server of ``BENCH_POSTGRES_URL`` (default: the test server). Reported beside
s4's figures: the CPU of that database's PostgreSQL backends (``db_cpu_util``), acked
messages per CPU second of chatapp and those backends together, and the rows in
``messages`` after the stop against the acks.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench import procs
from bench.config import Config
from bench.scenarios import s4
from bench.targets import Chatapp

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE = "chatapp_bench_s4"


def database_url(admin_url: str, database: str) -> str:
    """``admin_url`` with its database replaced by ``database``."""
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))


class ChatappPostgres(Chatapp):
    """chatapp with CHATAPP_DATABASE_URL on a database this target creates and drops."""

    def __init__(self, cfg: Config, admin_url: str = ADMIN_URL,
                 database: str = DATABASE) -> None:
        super().__init__(cfg)
        self.admin_url, self.database = admin_url, database
        self.url = database_url(admin_url, database)

    def env(self, **kw):
        return {**super().env(**kw), "CHATAPP_DATABASE_URL": self.url}

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def create_database(self) -> None:
        # A run that was killed may have left it: it is this bench's own database.
        await self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)',
                          f'CREATE DATABASE "{self.database}"')

    async def drop_database(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    async def count_messages(self) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM messages"))
        finally:
            await conn.close()

    def db_cpu(self) -> float | None:
        """CPU seconds of the backends serving this database (their titles name it)."""
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres:") and f" {self.database} " in title:
                total += procs.cpu_seconds(int(pid))
        return total


async def s4pg(target: Chatapp, cfg: Config) -> dict:
    """s4 against chatapp on a fresh PostgreSQL database (the runner's chatapp target
    gives the client kind and compression of the variant)."""
    pg = ChatappPostgres(cfg)
    pg.clients, pg.compression = target.clients, target.compression
    await pg.create_database()
    try:
        return {"database": "postgresql", **await s4(pg, cfg)}
    finally:
        pg.cleanup()
        await pg.drop_database()
