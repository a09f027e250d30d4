"""Search latency at scale (scenario s8, beside s5's history pages).

Seeds N messages (default 1,000,000) into a fresh store of each engine (SQLite file;
PostgreSQL throwaway schema) through chatapp's storage interface (``import_messages``
for the messages, a round of ~1,000 per room at a time, so ids interleave the rooms as
in a live chat), so the tables and full-text indexes are the ones chatapp builds;
then times ``Storage.search`` plus the highlights (what ``GET /api/v1/search`` does
besides HTTP and JSON) for a mix of queries a person types: common, middling and rare
words, 3- and 5-letter prefixes, two words, a phrase, and each narrowed with ``from:``
or ``in:``. The reader is a member of some private rooms and DMs and not of others,
so the read permission is part of every query.

    .venv/bin/python -m bench.search --messages 1000000 --engines sqlite,postgres
    .venv/bin/python -m bench.run --only s8          # the same, from the bench runner
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatapp.search import highlights, parse
from chatapp.storage import Storage, open_storage

ROOMS = 24  # 12 public, 8 private (the reader in half), 4 DMs (the reader in 2)
AUTHORS = 40
VOCABULARY = 6000
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"
ACCENTED = {"e": "é", "a": "à", "o": "ô", "u": "ü"}


def vocabulary(rnd: random.Random) -> list[str]:
    """Pronounceable words, a few with accents, most frequent first (Zipf ranks)."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY:
        syllables = rnd.choice((1, 2, 2, 3, 3, 4))
        word = "".join(rnd.choice(CONSONANTS) + rnd.choice(VOWELS) for _ in range(syllables))
        if word in seen:
            continue
        seen.add(word)
        if rnd.random() < 0.05:
            i = next((i for i, c in enumerate(word) if c in ACCENTED), None)
            if i is not None:
                word = word[:i] + ACCENTED[word[i]] + word[i + 1:]
        words.append(word)
    return words


def bodies(rnd: random.Random, words: list[str], count: int) -> Iterator[str]:
    weights = [1 / (rank + 1) for rank in range(len(words))]
    batch = 10_000
    for start in range(0, count, batch):
        n = min(batch, count - start)
        lengths = [rnd.randint(4, 18) for _ in range(n)]
        drawn = rnd.choices(words, weights, k=sum(lengths))
        at = 0
        for length in lengths:
            yield " ".join(drawn[at:at + length]).capitalize()
            at += length


def room_plan() -> list[tuple[str, str, str | None]]:
    """(slug, kind, dm_key) per room; the reader is user 1."""
    plan: list[tuple[str, str, str | None]] = []
    plan += [(f"pub{i}", "public", None) for i in range(12)]
    plan += [(f"priv{i}", "private", None) for i in range(8)]
    plan += [(f"dm{i}", "private", f"1,{i + 2}" if i < 2 else f"{i + 2},{i + 3}")
             for i in range(4)]
    return plan


def reader_in(slug: str) -> bool:
    return (slug.startswith("pub") and int(slug[3:]) < 6) or slug in (
        "priv0", "priv1", "priv2", "priv3", "dm0", "dm1")


def members(slug: str, kind: str, dm_key: str | None) -> list[int]:
    if dm_key is not None:
        return [int(x) for x in dm_key.split(",")]
    people = list(range(2, AUTHORS + 1))
    return ([1] if reader_in(slug) else []) + people


def queries(rnd: random.Random, words: list[str], sample: list[str]) -> list[tuple[str, str]]:
    """(kind, q) pairs: the mix each engine answers."""
    out: list[tuple[str, str]] = []
    for _ in range(40):
        common, middle, rare = words[rnd.randint(0, 20)], words[rnd.randint(100, 600)], \
            words[rnd.randint(2000, VOCABULARY - 1)]
        body = rnd.choice(sample).lower().split()
        i = rnd.randint(0, len(body) - 2)
        out += [
            ("common word", common), ("middling word", middle), ("rare word", rare),
            ("3-letter prefix", middle[:3]), ("5-letter prefix", rare[:5]),
            ("two words", f"{body[i + 1]} {body[0]}"), ("phrase", f'"{body[i]} {body[i + 1]}"'),
            ("word from:", f"{middle} from:user{rnd.randint(2, AUTHORS)}"),
            ("word in:", f"{common} in:pub{rnd.randint(0, 11)}"),
            ("accents folded", rare.translate(str.maketrans("éàôü", "eaou"))),
        ]
    rnd.shuffle(out)
    return out


# (room's index in room_plan(), author's number 1..AUTHORS, body)
Rows = list[tuple[int, int, str]]
SEEDED_AT = datetime(2026, 1, 1, tzinfo=UTC)
# Messages are imported a round at a time, in the order they were drawn: each round's
# share of a room is one import_messages call. Ids then interleave the rooms as a live
# chat's do (a round holds ~1,000 messages per room). Importing each room's whole
# history at once gave every room one block of ids, so a search newest first went
# through every later room's matches before reaching an early room's (s8 `in:` p50
# 108 ms on SQLite, 263 ms on PostgreSQL) and the newest ids all belonged to the last
# room, one the reader may not read.
ROUND = 24_000


def seed_rows(count: int, seed: int) -> tuple[Rows, list[str]]:
    rnd = random.Random(seed)
    words = vocabulary(rnd)
    plan = room_plan()
    messages: Rows = []
    for body in bodies(rnd, words, count):
        at = rnd.randint(0, len(plan) - 1)
        slug, _, dm_key = plan[at]
        messages.append((at, rnd.choice(members(slug, "", dm_key)), body))
    return messages, words


async def seed_store(url: str, messages: Rows) -> None:
    """Users, rooms, memberships and messages through chatapp's storage interface (the
    migrations, search index and triggers included), as an import into chatapp would."""
    storage = open_storage(url)
    await storage.connect()
    try:
        users = [await storage.create_user(f"user{i}", "x", admin=i == 1)
                 for i in range(1, AUTHORS + 1)]
        uid = {i: u.id for i, u in enumerate(users, start=1)}
        rooms: list[int] = []
        for slug, kind, dm_key in room_plan():
            people = members(slug, kind, dm_key)
            if dm_key is not None:
                room, _ = await storage.create_dm(
                    slug, ",".join(str(i) for i in sorted(uid[p] for p in people)), slug,
                    [uid[p] for p in people])
            else:
                room = await storage.create_room(slug, slug, kind, uid[2])
                await asyncio.gather(*(storage.join(uid[p], room.id) for p in people if p != 2))
            rooms.append(room.id)
        for start in range(0, len(messages), ROUND):
            per_room: dict[int, list[tuple[int, str, datetime]]] = {}
            for at, author, body in messages[start:start + ROUND]:
                per_room.setdefault(at, []).append((uid[author], body, SEEDED_AT))
            for at, rows in per_room.items():
                await storage.import_messages(rooms[at], rows)
    finally:
        await storage.close()


async def analyze_postgres(url: str) -> None:
    """What autovacuum does within a minute of a large load (the planner's statistics);
    chatapp leaves it to autovacuum, the measurement would otherwise race it."""
    import asyncpg

    from chatapp.storage.postgres import split_url

    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        await conn.execute("VACUUM ANALYZE messages")
        await conn.execute("ANALYZE users, rooms, memberships")
    finally:
        await conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def measure(storage: Storage, mix: list[tuple[str, str]], rounds: int) -> dict[str, Any]:
    reader = await storage.user_by_name("user1")
    assert reader is not None
    by_kind: dict[str, list[float]] = {}
    found: dict[str, list[int]] = {}
    for _, q in mix[:20]:  # warm the caches
        await storage.search(reader.id, parse(q), before=None, limit=20)
    for _ in range(rounds):
        for q_kind, q in mix:
            query = parse(q)
            t0 = time.perf_counter()
            page = await storage.search(reader.id, query, before=None, limit=20)
            for m in page.messages:
                highlights(m.body, query)
            by_kind.setdefault(q_kind, []).append((time.perf_counter() - t0) * 1000)
            found.setdefault(q_kind, []).append(len(page.messages))
    every = [v for values in by_kind.values() for v in values]
    return {
        "queries": len(every),
        "p50_ms": round(percentile(every, 50), 2),
        "p99_ms": round(percentile(every, 99), 2),
        "max_ms": round(max(every), 2),
        "by_kind": {k: {"p50_ms": round(percentile(v, 50), 2),
                        "p99_ms": round(percentile(v, 99), 2),
                        "results_avg": round(sum(found[k]) / len(found[k]), 1)}
                    for k, v in sorted(by_kind.items())},
    }


async def run(messages: int, engines: list[str], rounds: int = 3, seed: int = 8) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows, words = seed_rows(messages, seed)
    rnd = random.Random(seed + 1)
    mix = queries(rnd, words, [m[2] for m in rnd.sample(rows, 1000)])
    out: dict[str, Any] = {"messages": messages, "generate_s": round(time.perf_counter() - t0, 1)}
    for engine in engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="chatapp-s8-") as tmp:
                path = Path(tmp) / "search.db"
                t0 = time.perf_counter()
                await seed_store(f"sqlite:///{path}", rows)
                seed_s = time.perf_counter() - t0
                storage = open_storage(f"sqlite:///{path}")
                await storage.connect()
                try:
                    out["sqlite"] = {"seed_s": round(seed_s, 1),
                                     "db_mb": round(path.stat().st_size / 2**20),
                                     **await measure(storage, mix, rounds)}
                finally:
                    await storage.close()
        elif engine == "postgres":
            import asyncpg

            schema = "bench_s8_" + secrets.token_hex(4)
            url = f"{PG_URL}?schema={schema}"
            try:
                t0 = time.perf_counter()
                await seed_store(url, rows)
                await analyze_postgres(url)
                seed_s = time.perf_counter() - t0
                storage = open_storage(url)
                await storage.connect()
                try:
                    out["postgres"] = {"seed_s": round(seed_s, 1),
                                       **await measure(storage, mix, rounds)}
                finally:
                    await storage.close()
            finally:
                conn = await asyncpg.connect(PG_URL)
                try:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                finally:
                    await conn.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--engines", default="sqlite,postgres")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    result = asyncio.run(run(args.messages, args.engines.split(","), args.rounds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
