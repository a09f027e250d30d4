"""PostgreSQL group commit (``storage/postgres_writer.py``): concurrent sends share a
transaction, and each one still gets its own answer.

Runs on a throwaway schema (``tests/pg.py``); skipped with a reason when PostgreSQL is
missing unless CI=true or CHATAPP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from chatapp.storage import (
    GENERAL_ROOM,
    AttachmentRefused,
    Room,
    RoomEvent,
    Storage,
    StorageError,
    StorageUnavailable,
    User,
    open_storage,
)
from chatapp.storage import postgres_writer as pw

from . import pg
from .conftest import need_service

pytestmark = pytest.mark.postgres
OpenEngine = Callable[[], Awaitable[Storage]]


@pytest.fixture
async def open_engine() -> AsyncIterator[OpenEngine]:
    """Engines on one throwaway schema (more than one = more hosts)."""
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    engines: list[Storage] = []
    with pg.throwaway_schema() as url:

        async def open_one() -> Storage:
            engine = open_storage(url)
            await engine.connect()
            engines.append(engine)
            return engine

        yield open_one
        for engine in engines:
            await engine.close()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every transaction the writers run, in order."""
    sizes: list[int] = []
    original = pw.PostgresWriter._transaction

    async def counted(self: pw.PostgresWriter, conn: Any, batch: list[Any]) -> Any:
        sizes.append(len(batch))
        return await original(self, conn, batch)

    monkeypatch.setattr(pw.PostgresWriter, "_transaction", counted)
    return sizes


async def people(storage: Storage, *names: str) -> list[User]:
    return [await storage.create_user(name, f"hash-{name}") for name in names]


async def general(storage: Storage) -> Room:
    room = await storage.room(GENERAL_ROOM)
    assert room is not None
    return room


async def stream_is_whole(storage: Storage, room: Room, messages: list[Any]) -> None:
    """The room's events are exactly these messages, seq 1..n, ids in seq order."""
    mine = sorted(messages, key=lambda m: m.seq)
    assert [m.seq for m in mine] == list(range(1, len(mine) + 1))
    assert [m.id for m in mine] == sorted(m.id for m in mine)
    stored = await storage.events_after(room.id, 0, 10_000)
    assert stored == [RoomEvent.replay("message", m.seq, m, None) for m in mine]
    current = await storage.room(room.slug)
    assert current is not None and current.last_seq == len(mine)


async def test_concurrent_sends_to_many_rooms_commit_together(
    open_engine: OpenEngine, batches: list[int]
) -> None:
    storage = await open_engine()
    authors = await people(storage, "alice", "bob", "carol")
    rooms = [await storage.create_room(f"r{i}", f"R{i}", "public", authors[0].id)
             for i in range(8)]
    results = await asyncio.gather(*(
        storage.add_message(rooms[i % 8].id, authors[i % 3].id, f"m{i}",
                            f"n{i}" if i % 2 else None)
        for i in range(400)
    ))
    assert all(created for _, created in results)
    assert [m.body for m, _ in results] == [f"m{i}" for i in range(400)]
    assert len(batches) < 20 and max(batches) >= 100  # batched, not one by one
    for room in rooms:
        await stream_is_whole(storage, room, [m for m, _ in results if m.room == room.slug])
    # One author's sends to one room keep the order they were made in.
    alice_r0 = [m for m, _ in results if m.room == "r0" and m.author == "alice"]
    assert alice_r0 == sorted(alice_r0, key=lambda m: int(m.body[1:]))


async def test_one_room_from_two_hosts_has_no_gaps(
    open_engine: OpenEngine, batches: list[int]
) -> None:
    hosts = [await open_engine(), await open_engine()]
    alice, bob = await people(hosts[0], "alice", "bob")
    room = await general(hosts[0])
    results = await asyncio.gather(*(
        hosts[i % 2].add_message(room.id, (alice, bob)[i % 3 % 2].id, f"m{i}", f"n{i}")
        for i in range(300)
    ))
    assert all(created for _, created in results)
    assert max(batches) > 1
    await stream_is_whole(hosts[1], room, [m for m, _ in results])
    follow, _ = await hosts[0].add_message(room.id, alice.id, "after", None)
    assert follow.seq == 301


async def test_duplicate_nonces_in_one_batch_store_one_message(
    open_engine: OpenEngine, batches: list[int]
) -> None:
    storage = await open_engine()
    alice, bob = await people(storage, "alice", "bob")
    room = await general(storage)
    results = await asyncio.gather(
        storage.add_message(room.id, alice.id, "first", "same"),
        storage.add_message(room.id, bob.id, "bob's", "same"),  # nonces are per author
        storage.add_message(room.id, alice.id, "again", "same"),
        storage.add_message(room.id, alice.id, "other", "other"),
        storage.add_message(room.id, alice.id, "third time", "same"),
    )
    assert batches == [5]
    first, bobs, again, other, third = results
    assert first[1] and bobs[1] and other[1]
    assert again == (first[0], False) and third == (first[0], False)
    assert first[0].body == "first"
    assert [first[0].seq, bobs[0].seq, other[0].seq] == [1, 2, 3]
    # Resent in a later batch: the stored message, no seq spent.
    resent = await asyncio.gather(
        storage.add_message(room.id, alice.id, "resent", "same"),
        storage.add_message(room.id, bob.id, "new", None),
    )
    assert resent[0] == (first[0], False)
    assert resent[1][0].seq == 4
    await stream_is_whole(storage, room, [first[0], bobs[0], other[0], resent[1][0]])


async def test_a_nonce_taken_by_another_host_meanwhile_reruns_the_batch(
    open_engine: OpenEngine, batches: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await open_engine()
    (alice,) = await people(storage, "alice")
    room = await general(storage)
    stored, _ = await storage.add_message(room.id, alice.id, "stored", "taken")
    # The first run does not see the stored nonce (as if another host committed it
    # between the lookup and the insert): the insert skips it, the batch runs again.
    original = pw.LOCK
    monkeypatch.setattr(pw, "LOCK", original.replace("m.nonce = k.nonce", "false"))
    real_insert = pw.PostgresWriter._insert

    async def insert_then_see(self: Any, *args: Any) -> None:
        pw.LOCK = original
        await real_insert(self, *args)

    monkeypatch.setattr(pw.PostgresWriter, "_insert", insert_then_see)
    results = await asyncio.gather(
        storage.add_message(room.id, alice.id, "one", None),
        storage.add_message(room.id, alice.id, "dup", "taken"),
        storage.add_message(room.id, alice.id, "two", "fresh"),
    )
    assert batches == [1, 3, 3]  # the second run saw the stored nonce
    assert results[1] == (stored, False)
    assert [results[0][0].seq, results[2][0].seq] == [2, 3]
    await stream_is_whole(storage, room, [stored, results[0][0], results[2][0]])


async def test_a_message_that_cannot_be_stored_fails_alone(
    open_engine: OpenEngine, batches: list[int]
) -> None:
    storage = await open_engine()
    alice, bob = await people(storage, "alice", "bob")
    room = await general(storage)
    theirs = await storage.add_upload(bob.id, "b.png", 10, "image/png", 1, 1, "key-b")
    mine = await storage.add_upload(alice.id, "a.png", 10, "image/png", 1, 1, "key-a")
    results = await asyncio.gather(
        storage.add_message(room.id, alice.id, "ok 1", "n1"),
        storage.add_message(9999, alice.id, "no such room", "n2"),
        storage.add_message(room.id, alice.id, "nul \x00 inside", "n3"),
        storage.add_message(room.id, alice.id, "reply to nothing", "n4", reply_to=10**9),
        storage.add_message(room.id, alice.id, "someone else's file", "n5",
                            attachments=(theirs.id,)),
        storage.add_message(room.id, alice.id, "my file", "n6", attachments=(mine.id,)),
        storage.add_message(room.id, bob.id, "ok 2", None),
        return_exceptions=True,
    )
    ok1, no_room, nul, no_reply, refused, with_file, ok2 = results
    assert isinstance(no_room, StorageError) and "room 9999" in str(no_room)
    assert isinstance(nul, StorageError) and "NUL" in str(nul)
    assert isinstance(no_reply, StorageError)
    assert not isinstance(no_reply, StorageUnavailable)
    assert isinstance(refused, AttachmentRefused)
    assert batches[0] == 7  # together first, then one by one
    sent = [ok1[0], with_file[0], ok2[0]]  # type: ignore[index]
    assert [m.body for m in sent] == ["ok 1", "my file", "ok 2"]
    assert [a.id for a in with_file[0].attachments] == [mine.id]  # type: ignore[index]
    await stream_is_whole(storage, room, sent)
    # The failed nonces were never stored: they can be sent again.
    again, created = await storage.add_message(room.id, alice.id, "fixed", "n3")
    assert created and again.seq == 4


async def test_a_bad_message_in_a_big_batch_costs_a_few_transactions(
    open_engine: OpenEngine, batches: list[int]
) -> None:
    storage = await open_engine()
    (alice,) = await people(storage, "alice")
    room = await general(storage)
    results = await asyncio.gather(
        *(storage.add_message(room.id, alice.id, f"m{i}", f"n{i}",
                              reply_to=10**9 if i == 40 else None) for i in range(64)),
        return_exceptions=True,
    )
    assert isinstance(results[40], StorageError)
    sent = [r[0] for i, r in enumerate(results) if i != 40]  # type: ignore[index]
    assert [m.body for m in sent] == [f"m{i}" for i in range(64) if i != 40]
    assert len(batches) <= 1 + 2 * 6  # halves down to the bad one, not 64 one by one
    await stream_is_whole(storage, room, sent)


async def test_a_broken_connection_fails_only_its_batch(
    open_engine: OpenEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await open_engine()
    (alice,) = await people(storage, "alice")
    room = await general(storage)
    original = pw.PostgresWriter._transaction
    broken: list[int] = []

    async def cut_first(self: pw.PostgresWriter, conn: Any, batch: list[Any]) -> Any:
        if not broken:
            broken.append(len(batch))
            conn.terminate()  # the server goes away under this batch
        return await original(self, conn, batch)

    monkeypatch.setattr(pw.PostgresWriter, "_transaction", cut_first)
    failed = await asyncio.gather(
        *(storage.add_message(room.id, alice.id, f"lost {i}", f"l{i}") for i in range(4)),
        return_exceptions=True,
    )
    assert broken == [4]
    assert all(isinstance(outcome, StorageUnavailable) for outcome in failed)
    # The next batch opens a new connection; the failed sends, resent, are stored once.
    results = await asyncio.gather(
        *(storage.add_message(room.id, alice.id, f"lost {i}", f"l{i}") for i in range(4)),
    )
    assert [(m.seq, created) for m, created in results] == [(i, True) for i in range(1, 5)]
    await stream_is_whole(storage, room, [m for m, _ in results])


async def test_close_commits_what_is_queued(open_engine: OpenEngine) -> None:
    storage = await open_engine()
    (alice,) = await people(storage, "alice")
    room = await general(storage)
    sends = [asyncio.ensure_future(storage.add_message(room.id, alice.id, f"m{i}", None))
             for i in range(50)]
    await asyncio.sleep(0)  # queued
    await storage.close()
    assert [m.seq for m, _ in await asyncio.gather(*sends)] == list(range(1, 51))
    with pytest.raises(StorageUnavailable):
        await storage.add_message(room.id, alice.id, "after close", None)
    again = await open_engine()
    assert (await general(again)).last_seq == 50
