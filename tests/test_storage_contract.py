"""One contract for the Storage interface, run against every engine.

SQLite runs on a temporary file; PostgreSQL on a throwaway schema in database ``test``
(see ``tests/pg.py``), skipped with a reason when the server is missing unless CI=true
or CHATAPP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from chatapp.search import parse as parse_search
from chatapp.storage import (
    GENERAL_ROOM,
    MAX_REACTIONS,
    UNREAD_LIMIT,
    MessageGone,
    Room,
    RoomEvent,
    RoomExists,
    Storage,
    StorageError,
    TooManyReactions,
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
        assert stored == [RoomEvent.replay("message", m.seq, m, None) for m in mine]
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
    assert [e.fields["message"]["body"] for e in await storage.events_after(other.id, 0, 100)] \
        == ["elsewhere"]


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
    assert await storage.mark_read(bob.id, room.id, 1) == 1  # back: "mark unread"
    assert await unread(bob) == 2
    assert await storage.mark_read(bob.id, room.id, 99) == 4  # never past last_seq
    assert await unread(bob) == 0
    await storage.add_message(room.id, alice.id, "a3", None)
    assert await unread(bob) == 1

    zoo = await storage.create_room("zoo", "Zoo", "public", alice.id)
    assert await storage.mark_read(bob.id, zoo.id, 1) == 0  # not a member
    await storage.add_message(zoo.id, alice.id, "history", None)
    await storage.join(bob.id, zoo.id)  # a newcomer starts with the history read
    assert [r.unread for r in await storage.rooms_of(bob.id) if r.slug == "zoo"] == [0]


async def test_a_new_user_starts_with_general_read(storage: Storage) -> None:
    """create_user joins the general room as any joiner: read up to its last seq."""
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    for i in range(3):
        await storage.add_message(room.id, alice.id, f"a{i}", None)
    (bob,) = await users(storage, "bob")
    (summary,) = await storage.rooms_of(bob.id)
    assert (summary.slug, summary.unread, summary.last_seq) == (GENERAL_ROOM, 0, 3)
    assert await storage.mark_read(bob.id, room.id, 1) == 1  # the history is there to read
    assert (await storage.rooms_of(bob.id))[0].unread == 2
    await storage.add_message(room.id, alice.id, "later", None)
    await storage.mark_read(bob.id, room.id, 3)
    assert (await storage.rooms_of(bob.id))[0].unread == 1


async def test_unread_counts_stop_at_the_limit(storage: Storage) -> None:
    """A summary counts at most UNREAD_LIMIT unread messages (shown as "99+"), so its
    cost does not grow with the backlog; last_seq still says how far the room is."""
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    total = UNREAD_LIMIT + 10
    await asyncio.gather(*(storage.add_message(room.id, alice.id, f"m{i}", f"n{i}")
                           for i in range(total)))
    (summary,) = await storage.rooms_of(bob.id)
    assert (summary.unread, summary.last_seq) == (UNREAD_LIMIT, total)
    await storage.mark_read(bob.id, room.id, total - 5)
    (summary,) = await storage.rooms_of(bob.id)
    assert summary.unread == 5


# room events: every change to a message appends one event, replayed by kind
def kinds(events: list[RoomEvent]) -> list[tuple[int, str]]:
    return [(e.seq, e.kind) for e in events]


async def test_every_change_appends_one_event_at_the_next_seq(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    first, _ = await storage.add_message(room.id, alice.id, "first", "n1")
    second, _ = await storage.add_message(room.id, bob.id, "second", None, reply_to=first.id)
    edited = await storage.edit_message(first.id, "first, edited")
    assert edited is not None and edited.kind == "message_edited" and edited.seq == 3
    assert edited.fields["message"]["body"] == "first, edited"
    assert edited.fields["message"]["edited_at"] is not None
    assert edited.fields["message"]["seq"] == 1  # the event that created it
    reacted = await storage.react(second.id, alice.id, "👍", True)
    assert reacted is not None and reacted.to_json() == {
        "type": "reaction", "room": GENERAL_ROOM, "seq": 4, "id": second.id, "emoji": "👍",
        "user": "alice", "on": True,
        "reactions": [{"emoji": "👍", "count": 1, "users": ["alice"]}],
    }
    await storage.react(second.id, bob.id, "👍", True)
    await storage.react(second.id, bob.id, ":tada:", True)
    removed = await storage.react(second.id, alice.id, "👍", False)
    assert removed is not None and removed.fields["on"] is False
    assert removed.fields["reactions"] == [
        {"emoji": "👍", "count": 1, "users": ["bob"]},
        {"emoji": ":tada:", "count": 1, "users": ["bob"]},
    ]
    current = await storage.room(room.slug)
    assert current is not None and current.last_seq == 7

    events = await storage.events_after(room.id, 0, 100)
    assert kinds(events) == [(1, "message"), (2, "message"), (3, "message_edited"),
                             (4, "reaction"), (5, "reaction"), (6, "reaction"), (7, "reaction")]
    # Replayed against the current state: the first message's event shows the new body.
    assert events[0].fields["message"]["body"] == "first, edited"
    assert events[1].fields["message"]["reply_to"] == first.id
    assert [e.fields["user"] for e in events[3:]] == ["alice", "bob", "bob", "alice"]
    assert events[-1].to_json() == removed.to_json()
    assert kinds(await storage.events_after(room.id, 5, 100)) == [(6, "reaction"),
                                                                  (7, "reaction")]


async def test_no_op_changes_take_no_seq(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    message, _ = await storage.add_message(room.id, alice.id, "hi", None)
    assert await storage.edit_message(message.id, "hi") is None
    assert await storage.react(message.id, bob.id, "👍", False) is None
    assert await storage.react(message.id, bob.id, "👍", True) is not None
    assert await storage.react(message.id, bob.id, "👍", True) is None
    assert kinds(await storage.events_after(room.id, 0, 100)) == [(1, "message"),
                                                                  (2, "reaction")]


async def test_edits_keep_the_earlier_bodies_oldest_first(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    message, _ = await storage.add_message(room.id, alice.id, "v1", None)
    await storage.edit_message(message.id, "v2")
    await storage.edit_message(message.id, "v3")
    edits = await storage.edits(message.id)
    assert [body for body, _ in edits] == ["v1", "v2"]
    assert all(ISO_UTC.fullmatch(at) for _, at in edits)
    stored = await storage.message(message.id)
    assert stored is not None and stored.body == "v3" and stored.edited_at == edits[-1][1]
    page = await storage.messages(room.id, before=None, after=None, limit=10)
    assert [m.body for m in page.messages] == ["v3"]


async def test_deleting_removes_the_bodies_and_replays_as_deleted(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    gone, _ = await storage.add_message(room.id, alice.id, "secret", None)
    kept, _ = await storage.add_message(room.id, alice.id, "kept", None)
    await storage.edit_message(gone.id, "secret 2")
    await storage.react(gone.id, bob.id, "👍", True)
    deleted = await storage.delete_message(gone.id)
    assert deleted.to_json() == {"type": "message_deleted", "room": GENERAL_ROOM, "seq": 5,
                                 "id": gone.id}
    assert await storage.edits(gone.id) == []
    stored = await storage.message(gone.id)
    assert stored is not None and stored.deleted and stored.body == "" and not stored.reactions
    page = await storage.messages(room.id, before=None, after=None, limit=10)
    assert [m.id for m in page.messages] == [kept.id]
    # Every event of the deleted message replays without its bodies, at its own seq.
    events = await storage.events_after(room.id, 0, 100)
    assert [(e.seq, e.kind) for e in events] == [
        (1, "message_deleted"), (2, "message"), (3, "message_deleted"),
        (4, "message_deleted"), (5, "message_deleted")]
    assert "secret" not in repr(events)
    for change in (storage.edit_message(gone.id, "again"), storage.delete_message(gone.id),
                   storage.react(gone.id, bob.id, "👍", True)):
        with pytest.raises(MessageGone):
            await change
    for change in (storage.edit_message(10**9, "x"), storage.delete_message(10**9)):
        with pytest.raises(MessageGone):
            await change
    assert await storage.message(10**9) is None
    current = await storage.room(room.slug)
    assert current is not None and current.last_seq == 5
    (summary,) = [r for r in await storage.rooms_of(bob.id) if r.slug == GENERAL_ROOM]
    assert summary.unread == 1  # the deleted message no longer counts


async def test_at_most_20_distinct_reactions(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    message, _ = await storage.add_message(room.id, alice.id, "react!", None)
    for i in range(MAX_REACTIONS):
        assert await storage.react(message.id, alice.id, f":e{i}:", True) is not None
    with pytest.raises(TooManyReactions):
        await storage.react(message.id, alice.id, ":one_more:", True)
    # An emoji already there may still be added by someone else.
    joined = await storage.react(message.id, bob.id, ":e0:", True)
    assert joined is not None and len(joined.fields["reactions"]) == MAX_REACTIONS
    assert joined.fields["reactions"][0] == {"emoji": ":e0:", "count": 2,
                                             "users": ["alice", "bob"]}
    current = await storage.room(room.slug)
    assert current is not None and current.last_seq == 1 + MAX_REACTIONS + 1


async def test_concurrent_changes_on_several_hosts_leave_no_gaps(
    open_engine: OpenEngine,
) -> None:
    hosts = [await open_engine() for _ in range(3)]
    people = await users(hosts[0], "alice", "bob", "carol")
    room = await general(hosts[0])
    target, _ = await hosts[0].add_message(room.id, people[0].id, "target", None)

    async def work(host: Storage, user: User) -> None:
        for i in range(6):
            # Replies to the message being edited and reacted to: a send's foreign key
            # must not deadlock with those changes (PostgreSQL row locks).
            message, _ = await host.add_message(room.id, user.id, f"{user.username} {i}", None,
                                                reply_to=target.id)
            await host.react(target.id, user.id, f":r{i}:", True)
            if user.username == "alice":
                await host.edit_message(target.id, f"target {i}")
            await host.react(message.id, user.id, "👍", True)

    await asyncio.gather(*(work(h, u) for h, u in zip(hosts, people, strict=True)))
    events = await hosts[1].events_after(room.id, 0, 1000)
    total = 1 + 3 * 6 * 3 + 6
    assert [e.seq for e in events] == list(range(1, total + 1))
    current = await hosts[2].room(room.slug)
    assert current is not None and current.last_seq == total
    final = await hosts[2].message(target.id)
    assert final is not None and final.body == "target 5"
    assert sum(len(r.users) for r in final.reactions) == 18


# search (SPEC §12): the engines' full-text indexes behind one query shape
async def found(storage: Storage, user: User, q: str, *, before: int | None = None,
                limit: int = 20, room_id: int | None = None) -> list[str]:
    query = parse_search(q)
    if room_id is not None:
        query = replace(query, room_id=room_id)
    page = await storage.search(user.id, query, before=before, limit=limit)
    return [m.body for m in page.messages]


async def test_search_by_prefix_case_and_accents(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    for body in ("We DEPLOYED the café build", "crème brûlée at the École",
                 "deploy.sh failed", "nothing to see", "Привет мир", "snake_case_name"):
        await storage.add_message(room.id, alice.id, body, None)
    assert await found(storage, alice, "deplo") == ["deploy.sh failed",
                                                    "We DEPLOYED the café build"]
    assert await found(storage, alice, "CAFE") == ["We DEPLOYED the café build"]
    assert await found(storage, alice, "café") == ["We DEPLOYED the café build"]
    assert await found(storage, alice, "creme brulee ecole") == ["crème brûlée at the École"]
    assert await found(storage, alice, "deploy.sh") == ["deploy.sh failed"]
    assert await found(storage, alice, "привет") == ["Привет мир"]
    assert await found(storage, alice, "case") == ["snake_case_name"]
    assert await found(storage, alice, "eploy") == []  # prefixes, not any substring
    assert await found(storage, alice, "deployed nothing") == []  # every word must match


async def test_search_phrases(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    for body in ("the build is red", "red is the build", "the builder is red"):
        await storage.add_message(room.id, alice.id, body, None)
    assert await found(storage, alice, '"the build"') == ["red is the build",
                                                          "the build is red"]
    assert await found(storage, alice, '"build is"') == ["the build is red"]
    assert await found(storage, alice, '"the build') == [  # still typing: a prefix
        "the builder is red", "red is the build", "the build is red"]
    assert await found(storage, alice, '"is the build" red') == ["red is the build"]


async def test_search_syntax_from_users_is_only_words(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    await storage.add_message(room.id, alice.id, "near the * star - OR NOT: and", None)
    for q in ('NEAR(a b)', '* star', '-star', 'NOT', '"OR"', 'and:', "body:star", "{star}",
              "st'ar", "star^", "'near'", "\\star", "(star", "star)"):
        assert len(await found(storage, alice, q)) <= 1, q
    assert await found(storage, alice, "NEAR") == ["near the * star - OR NOT: and"]
    assert await found(storage, alice, "*star*") == ["near the * star - OR NOT: and"]


async def test_search_filters_and_permissions(storage: Storage) -> None:
    alice, bob, carol = await users(storage, "alice", "bob", "carol")
    room = await general(storage)
    public = await storage.create_room("ops", "Ops", "public", bob.id)
    secret = await storage.create_room("secret", "Secret", "private", bob.id)
    dm, _ = await storage.create_dm("dm-x", f"{bob.id},{carol.id}", "bob, carol",
                                    [bob.id, carol.id])
    await storage.add_message(room.id, alice.id, "report from alice", None)
    await storage.add_message(room.id, bob.id, "report from bob", None)
    await storage.add_message(public.id, bob.id, "report in ops", None)
    await storage.add_message(secret.id, bob.id, "report in secret", None)
    await storage.add_message(dm.id, bob.id, "report in dm", None)
    everything = ["report in dm", "report in secret", "report in ops", "report from bob",
                  "report from alice"]
    assert await found(storage, bob, "report") == everything
    assert await found(storage, carol, "report") == [
        "report in dm", "report in ops", "report from bob", "report from alice"]
    # alice is in neither the private room nor the DM; ops is public, though not joined
    assert await found(storage, alice, "report") == [
        "report in ops", "report from bob", "report from alice"]
    assert await found(storage, alice, "report in:secret") == []
    assert await found(storage, alice, f"report in:{dm.slug}") == []
    assert await found(storage, bob, "report in:secret") == ["report in secret"]
    assert await found(storage, bob, "report from:ALICE") == ["report from alice"]
    assert await found(storage, bob, "report from:@bob in:general") == ["report from bob"]
    assert await found(storage, bob, "report from:alice from:bob in:general in:ops") == [
        "report in ops", "report from bob", "report from alice"]
    assert await found(storage, bob, "report from:nobody") == []
    assert await found(storage, bob, "report", room_id=public.id) == ["report in ops"]


async def test_search_follows_edits_and_deletes(storage: Storage) -> None:
    alice, bob = await users(storage, "alice", "bob")
    room = await general(storage)
    message, _ = await storage.add_message(room.id, alice.id, "first draft", None)
    other, _ = await storage.add_message(room.id, alice.id, "draft two", None)
    await storage.edit_message(message.id, "final wording")
    assert await found(storage, bob, "first") == []
    assert await found(storage, bob, "final") == ["final wording"]
    assert await found(storage, bob, "draft") == ["draft two"]
    await storage.delete_message(other.id)
    assert await found(storage, bob, "draft") == []
    await storage.edit_message(message.id, "final draft")
    assert await found(storage, bob, "draft") == ["final draft"]
    (hit,) = (await storage.search(bob.id, parse_search("final"), before=None,
                                   limit=5)).messages
    assert hit.edited_at is not None and hit.author == "alice" and hit.room == GENERAL_ROOM


async def test_search_pages_newest_first(storage: Storage) -> None:
    (alice,) = await users(storage, "alice")
    room = await general(storage)
    ids = [(await storage.add_message(room.id, alice.id, f"page word {i}", None))[0].id
           for i in range(7)]
    await storage.react(ids[6], alice.id, "👍", True)
    query = parse_search("word")
    first = await storage.search(alice.id, query, before=None, limit=3)
    assert [m.id for m in first.messages] == ids[6:3:-1] and first.has_more
    assert first.messages[0].reactions[0].emoji == "👍"
    second = await storage.search(alice.id, query, before=ids[4], limit=3)
    assert [m.id for m in second.messages] == ids[3:0:-1] and second.has_more
    last = await storage.search(alice.id, query, before=ids[1], limit=3)
    assert [m.id for m in last.messages] == ids[:1] and not last.has_more
