"""One contract for the Storage interface, run against every engine.

SQLite runs on a temporary file; PostgreSQL on a throwaway schema in database ``test``
(see ``tests/pg.py``), skipped with a reason when the server is missing unless CI=true
or CHATAPP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from chatapp.storage import (
    GENERAL_ROOM,
    Room,
    RoomExists,
    Storage,
    StorageError,
    User,
    UsernameTaken,
    open_storage,
)
from chatapp.storage.models import utcnow

from . import pg
from .conftest import need_service

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
OpenEngine = Callable[[], Awaitable[Storage]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
        return
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        yield url


@pytest.fixture
async def open_engine(database_url: str) -> AsyncIterator[OpenEngine]:
    """Open connected engines on the test's database (more than one = more hosts)."""
    engines: list[Storage] = []

    async def open_one() -> Storage:
        engine = open_storage(database_url)
        await engine.connect()
        engines.append(engine)
        return engine

    yield open_one
    for engine in engines:
        await engine.close()


@pytest.fixture
async def storage(open_engine: OpenEngine) -> Storage:
    """Overrides the app-backed ``storage`` of conftest: the engine alone."""
    return await open_engine()


async def general(storage: Storage) -> Room:
    room = await storage.room(GENERAL_ROOM)
    assert room is not None
    return room


async def users(storage: Storage, *names: str) -> list[User]:
    return [await storage.create_user(name, f"hash-{name}") for name in names]


# schema
async def test_migrations_are_idempotent(open_engine: OpenEngine) -> None:
    first = await open_engine()
    epoch = await first.epoch()
    await first.close()
    again = await open_engine()
    assert await again.epoch() == epoch
    assert [r.slug for r in await again.public_rooms()] == [GENERAL_ROOM]
    await again.ping()


async def test_processes_starting_together_migrate_once(open_engine: OpenEngine) -> None:
    engines = await asyncio.gather(*(open_engine() for _ in range(3)))
    epochs = {await engine.epoch() for engine in engines}
    assert len(epochs) == 1
    assert [r.slug for r in await engines[0].public_rooms()] == [GENERAL_ROOM]


async def test_general_room_exists_from_the_start(storage: Storage) -> None:
    room = await general(storage)
    assert (room.slug, room.kind, room.last_seq) == (GENERAL_ROOM, "public", 0)
    assert await storage.room("nope") is None


# users
async def test_first_user_is_admin_and_everyone_joins_general(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    carol = await storage.create_user("carol", "h", admin=True)
    assert (alice.is_admin, bob.is_admin, carol.is_admin) == (True, False, True)
    room = await general(storage)
    for user in (alice, bob, carol):
        assert await storage.is_member(user.id, room.id)
        assert [r.slug for r in await storage.rooms_of(user.id)] == [GENERAL_ROOM]


async def test_concurrent_first_registrations_make_one_admin(storage: Storage) -> None:
    created = await asyncio.gather(*(storage.create_user(f"u{i}", "h") for i in range(8)))
    assert sum(user.is_admin for user in created) == 1


async def test_usernames_are_unique_case_insensitively(storage: Storage) -> None:
    (alice,) = await users(storage, "Alice")
    with pytest.raises(UsernameTaken):
        await storage.create_user("aLICE", "h")
    found = await storage.user_by_name("ALICE")
    assert found == alice
    assert found is not None and found.username == "Alice"
    assert await storage.user_by_name("bob") is None
    # The failed insert left nothing behind, not even a membership.
    assert len((await storage.messages((await general(storage)).id, before=None, after=None,
                                       limit=5)).messages) == 0
    (bob,) = await users(storage, "bob")
    assert bob.id != alice.id


async def test_lookups_by_names_that_cannot_exist_find_nothing(storage: Storage) -> None:
    """What a stranger types (a login name, a frame's room) never breaks a lookup."""
    await users(storage, "alice")
    assert await storage.user_by_name("ali\x00ce") is None
    assert await storage.room("gen\x00eral") is None
    since = utcnow() - timedelta(minutes=1)
    await storage.record_login_failure(["user:ali\x00ce"])
    assert (await storage.login_failures("user:ali\x00ce", since))[0] == 1
    assert (await storage.login_failures("user:alice", since))[0] == 0


async def test_set_password_hash(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    await storage.set_password_hash(alice.id, "new-hash")
    found = await storage.user_by_name("alice")
    assert found is not None and found.password_hash == "new-hash"


# sessions
async def test_session_lifecycle(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    long_ago = utcnow() - timedelta(days=14)
    await storage.create_session("tok", alice.id)
    record = await storage.session("tok", long_ago)
    assert record is not None and record.user == alice and record.token_hash == "tok"
    assert record.last_seen.utcoffset() == timedelta(0)
    await asyncio.sleep(0.01)
    await storage.touch_session("tok")
    touched = await storage.session("tok", long_ago)
    assert touched is not None and touched.last_seen > record.last_seen
    await storage.delete_session("tok")
    assert await storage.session("tok", long_ago) is None
    assert await storage.session("unknown", long_ago) is None


async def test_idle_session_is_deleted(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    await storage.create_session("tok", alice.id)
    assert await storage.session("tok", utcnow() + timedelta(seconds=1)) is None
    assert await storage.session("tok", utcnow() - timedelta(days=14)) is None  # gone


# failed logins
async def test_login_failures_count_within_a_window(storage: Storage) -> None:
    before = utcnow() - timedelta(seconds=1)
    for _ in range(3):
        await storage.record_login_failure(["user:alice", "ip:10.0.0.1"])
    await storage.record_login_failure(["ip:10.0.0.1"])
    count, oldest = await storage.login_failures("user:alice", utcnow() - timedelta(minutes=15))
    assert count == 3
    assert oldest is not None and before <= oldest <= utcnow()
    assert (await storage.login_failures("ip:10.0.0.1", before))[0] == 4
    assert await storage.login_failures("user:bob", before) == (0, None)
    assert await storage.login_failures("user:alice", utcnow() + timedelta(seconds=1)) == (0, None)


# rooms
async def test_rooms(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    zoo = await storage.create_room("zoo", "Zoo", "public", alice.id)
    assert (zoo.slug, zoo.name, zoo.kind, zoo.last_seq) == ("zoo", "Zoo", "public", 0)
    assert await storage.room("zoo") == zoo
    secret = await storage.create_room("secret", "Secret", "private", alice.id)
    await storage.create_room("annex", "Annex", "public", bob.id)
    with pytest.raises(RoomExists):
        await storage.create_room("zoo", "Another zoo", "public", bob.id)
    # By name in code point order on every engine, whatever the database collation.
    assert [r.slug for r in await storage.public_rooms()] == ["annex", "zoo", GENERAL_ROOM]
    assert [r.slug for r in await storage.rooms_of(alice.id)] == ["secret", "zoo", GENERAL_ROOM]
    assert await storage.is_member(alice.id, secret.id)
    assert not await storage.is_member(bob.id, secret.id)

    await storage.join(bob.id, zoo.id)
    await storage.join(bob.id, zoo.id)  # idempotent
    assert await storage.is_member(bob.id, zoo.id)
    assert [r.slug for r in await storage.rooms_of(bob.id)].count("zoo") == 1
    await storage.leave(bob.id, zoo.id)
    assert not await storage.is_member(bob.id, zoo.id)
    await storage.leave(bob.id, zoo.id)  # leaving twice is harmless


# messages
async def test_seq_is_contiguous_and_stored_as_returned(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    sent = [(await storage.add_message(room.id, alice.id, f"m{i}", None)) for i in range(5)]
    assert all(created for _, created in sent)
    messages = [message for message, _ in sent]
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    assert all(ISO_UTC.fullmatch(m.created_at) for m in messages)
    assert all((m.room, m.author, m.edited_at) == (GENERAL_ROOM, "alice", None) for m in messages)
    page = await storage.messages(room.id, before=None, after=None, limit=50)
    assert page.messages == messages and not page.has_more
    assert (await general(storage)).last_seq == 5


async def test_message_to_a_missing_room_fails(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    with pytest.raises(StorageError):
        await storage.add_message(9999, alice.id, "lost", None)
    with pytest.raises(StorageError):
        await storage.add_message(9999, alice.id, "lost", "n1")


async def test_nonce_returns_the_stored_message_without_using_a_seq(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    first, created = await storage.add_message(room.id, alice.id, "hello", "n1")
    again, created_again = await storage.add_message(room.id, alice.id, "hello?", "n1")
    assert created and not created_again
    assert again == first and again.body == "hello" and again.nonce == "n1"
    assert (await general(storage)).last_seq == 1
    other, other_created = await storage.add_message(room.id, bob.id, "hi", "n1")
    assert other_created and other.seq == 2  # nonces are per author
    later, _ = await storage.add_message(room.id, alice.id, "next", "n2")
    assert later.seq == 3


async def test_concurrent_duplicate_nonces_store_one_message(open_engine: OpenEngine) -> None:
    hosts = [await open_engine(), await open_engine()]
    (alice,) = await users(hosts[0], "alice")
    room = await general(hosts[0])
    results = await asyncio.gather(
        *(hosts[i % 2].add_message(room.id, alice.id, "once", "same") for i in range(20))
    )
    assert sum(created for _, created in results) == 1
    assert len({message.id for message, _ in results}) == 1
    assert (await general(hosts[0])).last_seq == 1
    follow, _ = await hosts[1].add_message(room.id, alice.id, "after", None)
    assert follow.seq == 2


async def test_concurrent_writers_leave_no_gaps(open_engine: OpenEngine) -> None:
    hosts = [await open_engine(), await open_engine()]  # two hosts on one database
    alice, bob = await users(hosts[0], "alice", "bob")
    rooms = [await general(hosts[0]), await hosts[0].create_room("b", "B", "public", bob.id)]
    await hosts[0].join(alice.id, rooms[1].id)
    results = await asyncio.gather(
        *(
            hosts[i % 2].add_message(
                rooms[i % 3 % 2].id, (alice, bob)[i % 5 % 2].id, f"m{i}",
                f"n{i}" if i % 4 else None,
            )
            for i in range(200)
        )
    )
    assert all(created for _, created in results)
    for room in rooms:
        mine = sorted((m for m, _ in results if m.room == room.slug), key=lambda m: m.seq)
        assert [m.seq for m in mine] == list(range(1, len(mine) + 1))
        assert [m.id for m in mine] == sorted(m.id for m in mine)  # id order = seq order
        stored = await hosts[1].events_after(room.id, 0, 500)
        assert stored == mine
        current = await hosts[1].room(room.slug)
        assert current is not None and current.last_seq == len(mine)


async def test_keyset_paging(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    other = await storage.create_room("other", "Other", "public", alice.id)
    ids = []
    for i in range(10):
        ids.append((await storage.add_message(room.id, alice.id, f"m{i}", None))[0].id)
        await storage.add_message(other.id, alice.id, f"noise{i}", None)

    async def page(before: int | None, after: int | None, limit: int) -> tuple[list[int], bool]:
        result = await storage.messages(room.id, before=before, after=after, limit=limit)
        return [m.id for m in result.messages], result.has_more

    assert await page(None, None, 3) == (ids[7:], True)
    assert await page(None, None, 10) == (ids, False)
    assert await page(ids[7], None, 3) == (ids[4:7], True)
    assert await page(ids[2], None, 5) == (ids[:2], False)
    assert await page(None, ids[6], 10) == (ids[7:], False)
    assert await page(None, ids[1], 3) == (ids[2:5], True)
    assert await page(ids[6], ids[1], 2) == (ids[4:6], True)
    assert await page(ids[6], ids[1], 4) == (ids[2:6], False)
    assert await page(ids[0], None, 5) == ([], False)


async def test_events_after(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    other = await storage.create_room("other", "Other", "public", alice.id)
    for i in range(8):
        await storage.add_message(room.id, alice.id, f"m{i}", None)
    await storage.add_message(other.id, alice.id, "elsewhere", None)
    assert [m.seq for m in await storage.events_after(room.id, 3, 4)] == [4, 5, 6, 7]
    assert [m.seq for m in await storage.events_after(room.id, 6, 100)] == [7, 8]
    assert await storage.events_after(room.id, 8, 100) == []
    assert [m.body for m in await storage.events_after(other.id, 0, 100)] == ["elsewhere"]


# unread counts
async def test_unread_counts_and_read_marker(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)

    async def unread(user: User) -> int:
        (summary,) = [r for r in await storage.rooms_of(user.id) if r.slug == GENERAL_ROOM]
        return summary.unread

    for i in range(3):
        await storage.add_message(room.id, alice.id, f"a{i}", None)
    await storage.add_message(room.id, bob.id, "b", None)  # seq 4: bob's own
    assert (await unread(bob), await unread(alice)) == (3, 1)
    (summary,) = await storage.rooms_of(bob.id)
    assert summary.last_seq == 4

    assert await storage.mark_read(bob.id, room.id, 2) == 2
    assert await unread(bob) == 1
    assert await storage.mark_read(bob.id, room.id, 1) == 2  # never back
    assert await storage.mark_read(bob.id, room.id, 99) == 4  # never past last_seq
    assert await unread(bob) == 0
    await storage.add_message(room.id, alice.id, "a3", None)
    assert await unread(bob) == 1

    zoo = await storage.create_room("zoo", "Zoo", "public", alice.id)
    assert await storage.mark_read(bob.id, zoo.id, 1) == 0  # not a member
    await storage.add_message(zoo.id, alice.id, "history", None)
    await storage.join(bob.id, zoo.id)  # a newcomer starts with the history read
    assert [r.unread for r in await storage.rooms_of(bob.id) if r.slug == "zoo"] == [0]
