"""Group commit for PostgreSQL sends: concurrent sends share one transaction.

Sends queue up in the order they were made; while one batch commits, the next one
gathers. A batch is one transaction on the writer's own connection, whatever its size:

1. lock the batch's rooms in id order (``FOR NO KEY UPDATE``; every host takes them in
   that order, so two hosts' batches queue up on a room instead of deadlocking) and,
   in the same statement, read the authors' names and the nonces already stored;
2. one statement gives every new message its room's next seq (unnest() arrays, in
   queue order), inserts the messages and their ``message`` room events and moves
   the rooms' counters;
3. attach uploads, COMMIT, and only then answer every waiter.

The room's row lock orders its stream on any host: seqs have no gaps, and ids follow
seqs. A nonce stored already is answered with its message and takes no seq; twice in
one batch, it is one message. A nonce another host stores between step 1 and step 2
makes the insert skip that row (``ON CONFLICT DO NOTHING``): the transaction rolls
back and runs again, now seeing it. A message that cannot be stored (room gone, reply
to nothing, upload refused) fails alone: the batch rolls back and runs again in
halves until that message is alone. A broken connection fails the batch's waiters
with StorageUnavailable; the next batch opens a new one. The connection comes with a
connect and a command timeout (CHATAPP_DATABASE_TIMEOUT, set by ``postgres.py``): a
server that stops answering fails the batch after it, the connection is terminated,
and sends queued meanwhile wait at most for their own batch's connect after that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from . import Message, StorageError, StorageUnavailable, Upload, batches
from . import postgres_uploads as uploads
from .batches import Outcome
from .models import isoformat, join_mentions
from .postgres_events import message_from_row
from .queries import MESSAGE_COLUMNS, MESSAGE_FROM

log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_PENDING_SENDS = 20_000
NONCE_RETRIES = 5  # a batch whose nonce another host took meanwhile runs again
CLOSE_TIMEOUT = 10.0

# $1 rooms, $2 authors, $3/$4 (author, nonce) pairs. Kind 0: a room locked (id, slug,
# last_seq); 1: an author (id, username, bot); 2: a stored nonce (message id).
LOCK = (
    "SELECT 0, id, slug, last_seq, false FROM (SELECT id, slug, last_seq FROM rooms"
    " WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE) AS locked"
    " UNION ALL SELECT 1, id, username, 0, bot FROM users WHERE id = ANY($2::bigint[])"
    " UNION ALL SELECT 2, m.id, NULL, 0, false FROM unnest($3::bigint[], $4::text[])"
    " AS k(author_id, nonce) JOIN messages m ON m.author_id = k.author_id"
    " AND m.nonce = k.nonce"
)
# The rooms' new counters ($1, $2) and the messages in queue order ($3..$9).
INSERT = (
    "WITH counters AS (UPDATE rooms SET last_seq = c.last_seq"
    " FROM unnest($1::bigint[], $2::bigint[]) AS c(id, last_seq) WHERE rooms.id = c.id),"
    " m AS (INSERT INTO messages (room_id, seq, author_id, body, nonce, created_at,"
    " reply_to, mentions) SELECT v.room_id, v.seq, v.author_id, v.body, v.nonce,"
    " clock_timestamp(), v.reply_to, v.mentions FROM unnest($3::bigint[], $4::bigint[],"
    " $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::text[]) WITH ORDINALITY"
    " AS v(room_id, seq, author_id, body, nonce, reply_to, mentions, ord) ORDER BY v.ord"
    " ON CONFLICT (author_id, nonce) WHERE nonce IS NOT NULL DO NOTHING"
    " RETURNING id, room_id, seq, created_at),"
    " e AS (INSERT INTO room_events (room_id, seq, kind, message_id)"
    " SELECT room_id, seq, 'message', id FROM m)"
    " SELECT id, room_id, seq, created_at FROM m"
)
STORED = (
    f"SELECT {MESSAGE_COLUMNS}, m.author_id FROM {MESSAGE_FROM} WHERE m.id = ANY($1::bigint[])"
)



@dataclass(frozen=True, slots=True)
class NewMessage:
    room_id: int
    author_id: int
    body: str
    nonce: str | None
    reply_to: int | None = None
    mentions: tuple[str, ...] = ()
    attachments: tuple[int, ...] = ()

    def unstorable(self) -> str | None:
        """Why PostgreSQL's text cannot hold this message, or None."""
        for name, text in (("body", self.body), ("nonce", self.nonce or ""),
                           ("mentions", " ".join(self.mentions))):
            if "\x00" in text:
                return f"the {name} holds a NUL character"
            try:
                text.encode()
            except UnicodeEncodeError:
                return f"the {name} is not valid Unicode"
        return None


class _NonceTakenError(Exception):
    """Another transaction stored one of the batch's nonces meanwhile: run it again."""


class PostgresWriter:
    """Queues sends and commits them in batches on one connection of its own."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        error: Callable[[BaseException, str], StorageError],
    ) -> None:
        self._connect = connect
        self._error = error  # a driver failure as StorageError or StorageUnavailable
        self._conn: asyncpg.Connection | None = None
        self._pending: list[tuple[NewMessage, asyncio.Future[Outcome]]] = []
        self._task: asyncio.Task[None] | None = None
        self._running = True

    async def send(self, new: NewMessage) -> tuple[Message, bool]:
        if not self._running:
            raise StorageUnavailable("the database writer is stopped")
        if len(self._pending) >= MAX_PENDING_SENDS:
            raise StorageUnavailable("too many pending writes")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((new, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="postgres-writer")
            self._task.add_done_callback(_log_crash)
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def stop(self) -> None:
        """Let queued sends commit, then close the connection."""
        self._running = False
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning("PostgreSQL writer did not finish in %.0f s", CLOSE_TIMEOUT)
                self._task.cancel()
            except Exception:  # crashed (logged by _log_crash): close the connection anyway
                pass
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

    async def _drain(self) -> None:
        batch: list[tuple[NewMessage, asyncio.Future[Outcome]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                outcomes = await self._commit([new for new, _ in batch])
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # a caller that went away: its send still landed
                        future.set_result(outcome)
                batch = []
        except BaseException:
            # Cancelled or crashed: nobody waits forever.
            for _, future in batch + self._pending:
                if not future.done():
                    future.set_result(StorageUnavailable("the database writer stopped"))
            self._pending = []
            raise
        finally:
            self._task = None

    async def _commit(self, batch: list[NewMessage]) -> list[Outcome]:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = None
                self._conn = await self._connect()
            return await self._store(self._conn, batch)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The connection (or the server) failed: this batch's waiters hear it.
            log.warning("PostgreSQL write batch of %d failed: %r", len(batch), exc)
            error = self._error(exc, "database write failed")
        except Exception:  # a bug: this batch fails, the writer goes on
            log.exception("PostgreSQL write batch of %d crashed", len(batch))
            error = StorageError("database write failed")
        if self._conn is not None:  # in an unknown state: the next batch opens another
            self._conn.terminate()
            self._conn = None
        return [error] * len(batch)

    async def _store(self, conn: asyncpg.Connection, batch: list[NewMessage]) -> list[Outcome]:
        """The batch in one transaction. If one of its messages fails the transaction,
        each half again, in order: a bad message ends up alone, the others commit in
        a few transactions (a client repeating a bad send cannot make every batch go
        one by one)."""
        for _ in range(NONCE_RETRIES):
            try:
                return await self._transaction(conn, batch)
            except _NonceTakenError:
                continue
            except asyncpg.PostgresError as exc:
                if conn.is_closed() or isinstance(self._error(exc, ""), StorageUnavailable):
                    raise
                error: StorageError = self._error(exc, "database write failed")
            except StorageError as exc:  # an upload refused
                error = exc
            if len(batch) == 1:
                return [error]
            log.info("a write batch of %d failed (%r): storing it in halves", len(batch), error)
            half = len(batch) // 2
            return await self._store(conn, batch[:half]) + await self._store(conn, batch[half:])
        return [StorageError("a nonce kept being taken by another writer")] * len(batch)

    async def _transaction(
        self, conn: asyncpg.Connection, batch: list[NewMessage]
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        for index, new in enumerate(batch):
            reason = new.unstorable()
            if reason is not None:
                outcomes[index] = StorageError(f"message cannot be stored: {reason}")
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not todo:
            return outcomes  # type: ignore[return-value]
        keys = sorted({(batch[i].author_id, batch[i].nonce) for i in todo
                       if batch[i].nonce is not None})
        async with conn.transaction():
            rows = await conn.fetch(
                LOCK, sorted({batch[i].room_id for i in todo}),
                sorted({batch[i].author_id for i in todo}),
                [author for author, _ in keys], [nonce for _, nonce in keys],
            )
            rooms: dict[int, tuple[str, int]] = {}
            authors: dict[int, tuple[str, bool]] = {}
            stored_ids: list[int] = []
            for kind, key, name, number, bot in rows:
                if kind == 0:
                    rooms[key] = (name, number)
                elif kind == 1:
                    authors[key] = (name, bot)
                else:
                    stored_ids.append(key)
            stored = await self._stored(conn, stored_ids)
            last_seq = {room_id: seq for room_id, (_, seq) in rooms.items()}
            fresh, first_of = batches.plan(batch, todo, last_seq, authors, stored, outcomes)
            if fresh:
                await self._insert(conn, batch, fresh, last_seq, rooms, authors, outcomes)
        batches.answer_repeats(batch, todo, first_of, outcomes)
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    async def _insert(
        self, conn: asyncpg.Connection, batch: list[NewMessage], fresh: list[tuple[int, int]],
        last_seq: dict[int, int], rooms: dict[int, tuple[str, int]],
        authors: dict[int, tuple[str, bool]], outcomes: list[Outcome | None],
    ) -> None:
        moved = sorted(room_id for room_id, seq in last_seq.items() if seq != rooms[room_id][1])
        news = [batch[index] for index, _ in fresh]
        inserted = await conn.fetch(
            INSERT, moved, [last_seq[room_id] for room_id in moved],
            [new.room_id for new in news], [seq for _, seq in fresh],
            [new.author_id for new in news], [new.body for new in news],
            [new.nonce for new in news], [new.reply_to for new in news],
            [join_mentions(new.mentions) for new in news],
        )
        if len(inserted) != len(fresh):
            raise _NonceTakenError  # rolls the transaction back: no seq is spent
        rows = {(row["room_id"], row["seq"]): row for row in inserted}
        for index, seq in fresh:
            new = batch[index]
            row = rows[(new.room_id, seq)]
            files: tuple[Upload, ...] = ()
            if new.attachments:  # refused: the batch rolls back and runs in halves
                files = await uploads.attach(conn, row["id"], new.author_id, new.attachments)
            username, bot = authors[new.author_id]
            outcomes[index] = (Message(
                row["id"], rooms[new.room_id][0], seq, username, new.body,
                isoformat(row["created_at"]), new.nonce, reply_to=new.reply_to,
                mentions=new.mentions, attachments=files, bot=bool(bot),
            ), True)

    @staticmethod
    async def _stored(
        conn: asyncpg.Connection, ids: list[int]
    ) -> dict[tuple[int, str], Message]:
        """Messages whose nonce came again, by (author id, nonce)."""
        if not ids:
            return {}
        rows = await conn.fetch(STORED, ids)
        authors = {row["id"]: row["author_id"] for row in rows}
        messages = await uploads.with_attachments(conn, [message_from_row(r) for r in rows])
        return {(authors[m.id], m.nonce): m for m in messages if m.nonce is not None}


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("PostgreSQL writer crashed", exc_info=task.exception())
