"""The seqs of a batch of sends, decided alike by both engines' group commits.

Engine-free: the writer has read (under its lock) each room's ``last_seq``, which
authors exist and which of the batch's nonces are stored already; ``plan`` decides
which sends become new messages and at which seq, ``answer_repeats`` gives the
repeats of a nonce inside the batch the outcome of its first send.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Protocol

from . import Message, StorageError

Outcome = tuple[Message, bool] | BaseException


class Send(Protocol):
    @property
    def room_id(self) -> int: ...
    @property
    def author_id(self) -> int: ...
    @property
    def nonce(self) -> str | None: ...


def plan(
    batch: Sequence[Send], todo: list[int], last_seq: dict[int, int], authors: Container[int],
    stored: dict[tuple[int, str], Message], outcomes: list[Outcome | None],
) -> tuple[list[tuple[int, int]], dict[tuple[int, str], int]]:
    """Of ``batch[i] for i in todo``, in order: (index, seq) of each new message, and
    the first index of each nonce. Sends answered already (a missing room or author,
    a stored nonce) get their outcome; ``last_seq`` advances past the new ones."""
    first_of: dict[tuple[int, str], int] = {}
    fresh: list[tuple[int, int]] = []
    for index in todo:
        new = batch[index]
        if new.room_id not in last_seq:
            outcomes[index] = StorageError(f"room {new.room_id} does not exist")
            continue
        if new.author_id not in authors:
            outcomes[index] = StorageError(f"user {new.author_id} does not exist")
            continue
        if new.nonce is not None:
            key = (new.author_id, new.nonce)
            if key in stored:
                outcomes[index] = (stored[key], False)
                continue
            if key in first_of:  # the same nonce twice in one batch: one message
                continue
            first_of[key] = index
        last_seq[new.room_id] += 1
        fresh.append((index, last_seq[new.room_id]))
    return fresh, first_of


def answer_repeats(
    batch: Sequence[Send], todo: list[int], first_of: dict[tuple[int, str], int],
    outcomes: list[Outcome | None],
) -> None:
    """A nonce's repeats get its first send's message (not created), or its error."""
    for index in todo:
        new = batch[index]
        if outcomes[index] is None and new.nonce is not None:
            first = outcomes[first_of[(new.author_id, new.nonce)]]
            outcomes[index] = (first[0], False) if isinstance(first, tuple) else first
