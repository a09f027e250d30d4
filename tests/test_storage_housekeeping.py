"""The server prunes expired sessions and old login failures by itself (SPEC §8).

Storage-level tests run on SQLite and PostgreSQL (a throwaway schema, skipped with a
reason when the server is missing unless CI=true or CHATAPP_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from chatapp import create_app, housekeeping
from chatapp.accounts import token_hash
from chatapp.housekeeping import Housekeeper
from chatapp.storage import Storage, StorageError, open_storage
from chatapp.storage.models import utcnow

from . import conftest, pg
from .conftest import need_service

SECOND = timedelta(seconds=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'housekeeping.db'}"
        return
    reason = pg.unavailable_reason()
    if reason is not None:
        need_service("PostgreSQL", reason)
    with pg.throwaway_schema() as url:
        yield url


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    engine = open_storage(database_url)
    await engine.connect()
    yield engine
    await engine.close()


async def sessions(storage: Storage, count: int) -> list[str]:
    user = await storage.user_by_name("alice") or await storage.create_user("alice", "h")
    hashes = [token_hash(f"token-{user.id}-{i}-{utcnow().timestamp()}") for i in range(count)]
    for digest in hashes:
        await storage.create_session(digest, user.id)
    return hashes


async def alive(storage: Storage, hashes: list[str]) -> int:
    far_past = utcnow() - timedelta(days=365)
    return sum([await storage.session(h, far_past) is not None for h in hashes])


async def failures(storage: Storage, key: str) -> int:
    count, _ = await storage.login_failures(key, utcnow() - timedelta(days=365))
    return count


# storage ------------------------------------------------------------------------------

async def test_prune_sessions_deletes_only_idle_ones_in_bounded_batches(storage: Storage) -> None:
    hashes = await sessions(storage, 5)
    assert await storage.prune_sessions(utcnow() - SECOND, 100) == 0  # all used just now
    cutoff = utcnow() + SECOND
    assert await storage.prune_sessions(cutoff, 2) == 2
    assert await alive(storage, hashes) == 3
    assert await storage.prune_sessions(cutoff, 2) == 2
    assert await storage.prune_sessions(cutoff, 2) == 1
    assert await storage.prune_sessions(cutoff, 2) == 0
    assert await alive(storage, hashes) == 0


async def test_prune_login_failures_deletes_only_old_ones(storage: Storage) -> None:
    await storage.record_login_failure(["user:alice", "addr:10.0.0.1"])
    await storage.record_login_failure(["user:alice"])
    assert await storage.prune_login_failures(utcnow() - SECOND, 100) == 0
    assert await storage.prune_login_failures(utcnow() + SECOND, 2) == 2
    assert await failures(storage, "user:alice") + await failures(storage, "addr:10.0.0.1") == 1
    assert await storage.prune_login_failures(utcnow() + SECOND, 2) == 1
    assert await failures(storage, "user:alice") == 0


# the housekeeper ---------------------------------------------------------------------

def travel(monkeypatch: pytest.MonkeyPatch, delta: timedelta) -> None:
    """The housekeeper's clock (only its own): now + delta."""
    monkeypatch.setattr(housekeeping, "utcnow", lambda: utcnow() + delta)


async def test_a_round_prunes_sessions_after_14_idle_days(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = await sessions(storage, 5)
    keeper = Housekeeper(storage, batch=2)
    travel(monkeypatch, timedelta(days=13, hours=23))
    assert (await keeper.run_once())["sessions"] == 0
    assert await alive(storage, hashes) == 5
    travel(monkeypatch, timedelta(days=14, minutes=1))
    assert (await keeper.run_once())["sessions"] == 5  # three batches of at most 2
    assert await alive(storage, hashes) == 0


async def test_a_round_prunes_login_failures_past_the_15_minute_window(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storage.record_login_failure(["user:alice", "addr:10.0.0.1"])
    keeper = Housekeeper(storage)
    travel(monkeypatch, timedelta(minutes=14))
    assert (await keeper.run_once())["login_failures"] == 0
    assert await failures(storage, "user:alice") == 1  # still counts for the throttle
    travel(monkeypatch, timedelta(minutes=15, seconds=5))
    assert (await keeper.run_once())["login_failures"] == 2
    assert await failures(storage, "user:alice") == await failures(storage, "addr:10.0.0.1") == 0


async def test_a_round_drains_a_backlog_in_batches_up_to_a_cap(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = await sessions(storage, 7)
    monkeypatch.setattr(housekeeping, "MAX_BATCHES", 2)
    keeper = Housekeeper(storage, batch=2)
    travel(monkeypatch, timedelta(days=15))
    assert (await keeper.run_once())["sessions"] == 4  # 2 batches this round
    assert (await keeper.run_once())["sessions"] == 3  # the rest next round
    assert await alive(storage, hashes) == 0


async def test_other_kinds_register_a_pruner_and_one_failing_kind_spares_the_rest(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook expired invites will use."""
    seen: list[tuple[datetime, int]] = []

    async def invites(now: datetime, limit: int) -> int:
        seen.append((now, limit))
        return 0

    async def broken(now: datetime, limit: int) -> int:
        raise StorageError("database away")

    hashes = await sessions(storage, 1)
    keeper = Housekeeper(storage, batch=10)
    keeper.add("broken", broken)
    keeper.add("invites", invites)
    travel(monkeypatch, timedelta(days=15))
    counts = await keeper.run_once()
    assert counts == {"sessions": 1, "login_failures": 0, "broken": 0, "invites": 0}
    assert len(seen) == 1 and seen[0][1] == 10
    assert seen[0][0] > utcnow() + timedelta(days=14)  # the round's clock
    assert await alive(storage, hashes) == 0


# in the server -----------------------------------------------------------------------

async def test_the_app_runs_housekeeping_from_before_serving(tmp_path: Path) -> None:
    app = create_app(conftest.test_config(tmp_path))
    keeper: Housekeeper = app.extensions["chatapp"].housekeeper
    assert keeper._task is None
    async with app.test_app():
        task = keeper._task
        assert task is not None and not task.done()
        await asyncio.sleep(0)
        assert not task.done()  # the first round ran (nothing to do) and it sleeps
    assert keeper._task is None and task.cancelled()


async def test_a_crashed_housekeeping_task_is_logged(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    async def bug(now: datetime, limit: int) -> int:
        raise ZeroDivisionError("a bug, not the database")

    keeper = Housekeeper(storage)
    keeper.add("buggy", bug)
    with caplog.at_level(logging.ERROR, logger="chatapp.housekeeping"):
        keeper.start()
        task = keeper._task
        assert task is not None
        with pytest.raises(ZeroDivisionError):
            await task
        await asyncio.sleep(0)  # done-callbacks run on the next loop iteration
    assert any("housekeeping task crashed" in r.message and r.exc_info for r in caplog.records)
    await keeper.stop()
