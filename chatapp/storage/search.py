"""Full-text search over messages: the query both engines take, and their SQL for it.

A query is a list of phrases that must all match (a lone word is a one-word phrase),
optionally narrowed to some authors and rooms. Words hold only letters and digits
(``chatapp.search`` splits what was typed), so nothing a user types can reach the
engines' query syntax: the text given to FTS5 ``MATCH`` or to ``to_tsquery`` is built
here from quoted words alone.

Only messages the reader may read are found, and that is decided in the query itself:
messages of public rooms, and of rooms (private ones, DMs) the reader is a member of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Phrase:
    words: tuple[str, ...]  # letters and digits only, at least one
    prefix: bool = True  # the last word matches as a prefix ("deplo" finds "deployed")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    phrases: tuple[Phrase, ...]  # all of them must match; at least one
    authors: tuple[str, ...] = ()  # usernames; any of them (``from:``)
    rooms: tuple[str, ...] = ()  # room slugs; any of them (``in:``)
    room_id: int | None = None  # only this room (the ``room`` parameter)


def fts5_match(query: SearchQuery) -> str:
    """The FTS5 MATCH text: ``"w1 w2" * AND "w3"`` (words are quoted, never syntax)."""
    parts = []
    for phrase in query.phrases:
        text = '"' + " ".join(w.replace('"', '""') for w in phrase.words) + '"'
        parts.append(text + " *" if phrase.prefix else text)
    return " AND ".join(parts)


def tsquery_text(query: SearchQuery, *, phrases: bool = True) -> str:
    """The ``to_tsquery`` text: ``'w1' <-> 'w2':* & 'w3'`` (every word a quoted lexeme);
    with ``phrases=False`` a phrase's words are only ANDed (``'w1' & 'w2':*``)."""
    parts = []
    for phrase in query.phrases:
        words = ["'" + w.replace("'", "''").replace("\\", "\\\\") + "'" for w in phrase.words]
        if phrase.prefix:
            words[-1] += ":*"
        parts.append((" <-> " if phrases else " & ").join(words))
    return " & ".join(f"({part})" for part in parts)


def _tsquery_literal(text: str) -> str:
    return "to_tsquery('simple', chatapp_fold('" + text.replace("'", "''") + "'))"


def _readable_and_narrowed(query: SearchQuery, user_id: int, mark: Any) -> str:
    """The conditions after the match and the page: messages the reader may read, of
    the authors and rooms asked for; ``mark(value)`` adds a parameter, gives its mark."""
    where = (f" AND (r.kind = 'public' OR EXISTS (SELECT 1 FROM memberships ms"
             f" WHERE ms.user_id = {mark(user_id)} AND ms.room_id = m.room_id))")
    if query.authors:
        where += " AND u.username_key IN (" + ",".join(
            mark(a.casefold()) for a in query.authors) + ")"
    if query.rooms:
        where += " AND r.slug IN (" + ",".join(mark(s) for s in query.rooms) + ")"
    if query.room_id is not None:
        where += f" AND m.room_id = {mark(query.room_id)}"
    return where


def sqlite_search(
    query: SearchQuery, user_id: int, before: int | None, limit: int, columns: str
) -> tuple[str, tuple[Any, ...]]:
    """SQL and parameters: newest first, ``limit`` + 1 rows (the extra says has_more).

    The FTS table drives the loop in descending rowid (= message id) order, so a page
    stops after ``limit`` + 1 readable matches however many there are in all.
    """
    params: list[Any] = [fts5_match(query)]

    def mark(value: Any) -> str:
        params.append(value)
        return "?"

    where = "messages_fts MATCH ? AND NOT m.deleted"
    if before is not None:
        where += f" AND f.rowid < {mark(before)}"
    where += _readable_and_narrowed(query, user_id, mark)
    sql = (
        f"SELECT {columns} FROM messages_fts f"
        " JOIN messages m ON m.id = f.rowid JOIN users u ON u.id = m.author_id"
        f" JOIN rooms r ON r.id = m.room_id WHERE {where}"
        f" ORDER BY f.rowid DESC LIMIT {mark(limit + 1)}"
    )
    return sql, tuple(params)


def postgres_search(
    query: SearchQuery, user_id: int, before: int | None, limit: int, columns: str
) -> tuple[str, list[Any]]:
    """SQL and parameters for PostgreSQL (the ``search`` tsvector column, GIN-indexed).

    The tsquery goes in as a literal, not a parameter: the planner then sees how
    common its words are (a custom plan every time, never a generic one from the
    prepared-statement cache) and walks the id index backwards for a common word
    (the first page is near) but uses the GIN index for a rare one. The literal is
    safe: its words are letters and digits, the rest is built here, and quotes are
    doubled anyway."""
    params: list[Any] = []

    def mark(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    where = f"m.search @@ {_tsquery_literal(tsquery_text(query))}"
    if any(len(phrase.words) > 1 for phrase in query.phrases):
        # The same words merely ANDed, a condition implied by the phrase: PostgreSQL
        # estimates a phrase as if it were that AND (it keeps no word positions in its
        # statistics), several times too common, and then walked the id index back
        # through a third of the table for a phrase of uncommon words (300 ms at 1M
        # messages). With both conditions the estimate is the product: uncommon words
        # go through the GIN index (10-20 ms), common ones still walk back (they are
        # near). The result is the same.
        where += f" AND m.search @@ {_tsquery_literal(tsquery_text(query, phrases=False))}"
    where += " AND NOT m.deleted"
    if before is not None:
        where += f" AND m.id < {mark(before)}"
    where += _readable_and_narrowed(query, user_id, mark)
    sql = (
        f"SELECT {columns} FROM messages m JOIN users u ON u.id = m.author_id"
        f" JOIN rooms r ON r.id = m.room_id WHERE {where}"
        f" ORDER BY m.id DESC LIMIT {mark(limit + 1)}"
    )
    return sql, params
