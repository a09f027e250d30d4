"""Storage.import_messages, the bulk load (issue #17: the benchmarks seed through it), on
every engine: the messages, their events, the room counter and the search index are
what sends would have made; a failure leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chatapp.search import parse
from chatapp.storage import GENERAL_ROOM, UNREAD_LIMIT, Storage, StorageError

from .test_storage_contract import database_url, open_engine, storage  # noqa: F401

START = datetime(2024, 1, 1, tzinfo=UTC)


async def test_imported_messages_are_what_sends_make(storage: Storage) -> None:  # noqa: F811
    author = await storage.create_user("importer", "hash")
    reader = await storage.create_user("reader", "hash")
    room = await storage.create_room("history", "history", "public", author.id)
    await storage.join(reader.id, room.id)
    sent, _ = await storage.add_message(room.id, author.id, "sent before", "n1")

    rows = [(author.id, f"imported zebra {i}", START + timedelta(seconds=i)) for i in range(250)]
    first, last = await storage.import_messages(room.id, rows[:200])
    first2, last2 = await storage.import_messages(room.id, rows[200:])
    assert last - first == 199 and first > sent.id and first2 == last + 1 and last2 > first2

    after, _ = await storage.add_message(room.id, author.id, "sent after", "n2")
    assert after.seq == 252 and after.id > last2
    stored = await storage.room("history")
    assert stored is not None and stored.last_seq == 252

    page = await storage.messages(room.id, before=None, after=None, limit=3)
    assert [m.body for m in page.messages] == ["imported zebra 248", "imported zebra 249",
                                               "sent after"]
    deep = await storage.messages(room.id, before=first + 10, after=None, limit=2)
    assert [(m.seq, m.author, m.created_at) for m in deep.messages] == [
        (10, "importer", "2024-01-01T00:00:08.000000Z"),
        (11, "importer", "2024-01-01T00:00:09.000000Z"),
    ]
    events = await storage.events_after(room.id, 0, 500)
    assert [e.seq for e in events] == list(range(1, 253))
    assert {e.kind for e in events} == {"message"}
    assert events[5].fields["message"]["id"] == first + 4
    # The reader joined before the import: all of it is unread.
    assert await storage.unread(reader.id, room.id) == (UNREAD_LIMIT, 0)
    found = await storage.search(reader.id, parse("zebra 137"), before=None, limit=5)
    assert [m.body for m in found.messages] == ["imported zebra 137"]
    # Sends after an import are indexed as before.
    found = await storage.search(reader.id, parse("after"), before=None, limit=5)
    assert [m.body for m in found.messages] == ["sent after"]


async def test_a_failed_import_stores_nothing(storage: Storage) -> None:  # noqa: F811
    author = await storage.create_user("importer", "hash")
    general = await storage.room(GENERAL_ROOM)
    assert general is not None
    with pytest.raises(ValueError):
        await storage.import_messages(general.id, [])
    with pytest.raises(StorageError):
        await storage.import_messages(999_999, [(author.id, "lost", START)])
    # An unknown author half-way: the rows before it go too.
    rows = [(author.id, "one", START), (author.id, "two", START), (999_999, "three", START)]
    with pytest.raises(StorageError):
        await storage.import_messages(general.id, rows)
    assert (await storage.messages(general.id, before=None, after=None, limit=10)).messages == []
    assert await storage.events_after(general.id, 0, 10) == []
    message, _ = await storage.add_message(general.id, author.id, "still first", None)
    assert message.seq == 1
    found = await storage.search(author.id, parse("still"), before=None, limit=5)
    assert [m.id for m in found.messages] == [message.id]
