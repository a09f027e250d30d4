# ruff: noqa: F811 - the engine fixtures come from test_storage_contract
"""The storage contract for uploads (SPEC §10), on every engine (fixtures of
``test_storage_contract``): recording, attaching in the message's transaction, who
may read, pruning orphans."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from chatapp.storage import AttachmentRefused, Storage, Upload, User
from chatapp.storage.models import utcnow

from .test_storage_contract import (  # noqa: F401 - fixtures
    database_url,
    general,
    open_engine,
    storage,
)


async def _user(storage: Storage, name: str) -> User:
    return await storage.create_user(name, "hash")


async def _upload(storage: Storage, owner: User, name: str = "a.png") -> Upload:
    return await storage.add_upload(owner.id, name, 1234, "image/png", 10, 20,
                                    secrets.token_hex(16))


async def test_an_upload_is_recorded_unattached(storage: Storage) -> None:
    alice = await _user(storage, "alice")
    upload = await _upload(storage, alice, "Été.png")
    assert upload.id > 0 and upload.owner_id == alice.id and upload.message_id is None
    assert (upload.name, upload.size, upload.width, upload.height) == ("Été.png", 1234, 10, 20)
    assert upload.to_json()["url"] == f"/uploads/{upload.id}/%C3%89t%C3%A9.png"
    assert upload.to_json()["thumbnail_url"] == f"/uploads/thumbnails/{upload.id}"
    found = await storage.upload_for(upload.id, alice.id)
    assert found == upload


async def test_attachments_land_with_the_message_and_replay(storage: Storage) -> None:
    alice, bob = await _user(storage, "alice"), await _user(storage, "bob")
    room = await general(storage)
    first, second = await _upload(storage, alice), await _upload(storage, alice, "b.txt")
    assert await storage.upload_for(first.id, bob.id) is None  # not attached: owner only
    message, created = await storage.add_message(room.id, alice.id, "", "n1", None, (),
                                                 (second.id, first.id))
    assert created
    assert [a.id for a in message.attachments] == [first.id, second.id]
    assert message.to_json()["attachments"][0]["name"] == "a.png"
    # Every read path carries them: the message, history, sync, a repeated nonce.
    again = await storage.message(message.id)
    assert again is not None and [a.id for a in again.attachments] == [first.id, second.id]
    page = await storage.messages(room.id, before=None, after=None, limit=10)
    assert [a.id for a in page.messages[-1].attachments] == [first.id, second.id]
    events = await storage.events_after(room.id, message.seq - 1, 10)
    assert [a["id"] for a in events[0].fields["message"]["attachments"]] == [first.id, second.id]
    repeat, created = await storage.add_message(room.id, alice.id, "", "n1", None, (),
                                                (first.id,))
    assert not created and repeat.id == message.id
    assert [a.id for a in repeat.attachments] == [first.id, second.id]
    # Now members of the room read them.
    assert await storage.upload_for(first.id, bob.id) is not None


@pytest.mark.parametrize("whose", ["unknown", "another's", "attached"])
async def test_a_refused_attachment_stores_nothing(storage: Storage, whose: str) -> None:
    alice, bob = await _user(storage, "alice"), await _user(storage, "bob")
    room = await general(storage)
    mine = await _upload(storage, alice)
    if whose == "unknown":
        bad = mine.id + 1000
    elif whose == "another's":
        bad = (await _upload(storage, bob)).id
    else:
        bad = (await _upload(storage, alice)).id
        await storage.add_message(room.id, alice.id, "first", None, None, (), (bad,))
    before = (await storage.room(room.slug))
    assert before is not None
    with pytest.raises(AttachmentRefused):
        await storage.add_message(room.id, alice.id, "x", "n2", None, (), (mine.id, bad))
    after = await storage.room(room.slug)
    assert after is not None and after.last_seq == before.last_seq  # no seq taken
    assert (await storage.upload_for(mine.id, alice.id)).message_id is None  # type: ignore[union-attr]
    # The same nonce is still free, and the upload still attachable.
    message, created = await storage.add_message(room.id, alice.id, "x", "n2", None, (),
                                                 (mine.id,))
    assert created and [a.id for a in message.attachments] == [mine.id]


async def test_non_members_of_a_private_room_cannot_read(storage: Storage) -> None:
    alice, bob = await _user(storage, "alice"), await _user(storage, "bob")
    room = await storage.create_room("secret", "secret", "private", alice.id)
    upload = await _upload(storage, alice)
    await storage.add_message(room.id, alice.id, "look", None, None, (), (upload.id,))
    assert await storage.upload_for(upload.id, bob.id) is None
    await storage.join(bob.id, room.id)
    assert await storage.upload_for(upload.id, bob.id) is not None


async def test_a_deleted_message_lets_go_of_its_files(storage: Storage) -> None:
    alice, bob = await _user(storage, "alice"), await _user(storage, "bob")
    room = await general(storage)
    upload = await _upload(storage, alice)
    message, _ = await storage.add_message(room.id, alice.id, "x", None, None, (), (upload.id,))
    await storage.delete_message(message.id)
    assert await storage.upload_for(upload.id, bob.id) is None
    assert await storage.prune_uploads(utcnow() + timedelta(seconds=1), 10) == [upload.disk_key]


async def test_prune_takes_old_orphans_only(storage: Storage) -> None:
    alice = await _user(storage, "alice")
    room = await general(storage)
    orphan = await _upload(storage, alice)
    attached = await _upload(storage, alice)
    await storage.add_message(room.id, alice.id, "x", None, None, (), (attached.id,))
    assert await storage.prune_uploads(utcnow() - timedelta(hours=1), 10) == []
    await asyncio.sleep(0.01)
    later = utcnow() + timedelta(seconds=1)
    assert await storage.prune_uploads(later, 10) == [orphan.disk_key]
    assert await storage.prune_uploads(later, 10) == []
    assert await storage.upload_for(orphan.id, alice.id) is None
    assert await storage.upload_for(attached.id, alice.id) is not None
