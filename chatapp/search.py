"""Message search and permalinks (SPEC §12, §5 ``around``).

Search: read what was typed, ask storage, mark what matched.

What a user types is never query syntax for a database. It is split here into
words (runs of letters and digits), ``"quoted phrases"`` and the ``from:NAME`` and
``in:SLUG`` operators; everything else (``*``, ``-``, ``NEAR``, ``:``, stray quotes)
is either a separator or an ordinary word. Every word matches by prefix, so results
can follow the typing; a closed phrase matches its words exactly, one still being
typed (no closing quote yet) takes its last word as a prefix.

Highlights are ``[start, end)`` ranges into ``body`` counted in code points (Python
``str`` indices), whole words, found by folding case and accents the way the indexes
do.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .chat import CONTROL_CHARS, Chat, ChatError, is_text
from .storage import Message, Phrase, Room, SearchQuery, User

MAX_QUERY = 256  # characters of ``q``
MAX_TERMS = 16  # words and phrases together
MAX_OPERANDS = 8  # names after ``from:`` / ``in:`` together
LIMIT_DEFAULT, LIMIT_MAX = 20, 100

# As SQLite's unicode61 tokenizer sees words: letters and digits; "_" separates.
WORD = re.compile(r"[^\W_]+")
TOKEN = re.compile(
    r'"(?P<phrase>[^"]*)(?P<closed>"?)'
    r"|(?P<op>(?i:from|in)):(?P<arg>[^\s\"]+)"
    r'|(?P<text>[^\s"]+)'
)


def fold(text: str) -> str:
    """Lower case without accents ("Crème" -> "creme"), for comparing words."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def parse(q: Any) -> SearchQuery:
    """The query a search box's text asks for; ChatError for one that asks nothing."""
    if not is_text(q) or not q.strip() or CONTROL_CHARS.search(q):
        raise ChatError("invalid", "q must be the text to search for", "q")
    if len(q) > MAX_QUERY:
        raise ChatError("too_large", f"q takes at most {MAX_QUERY} characters", "q")
    phrases: list[Phrase] = []
    authors: list[str] = []
    rooms: list[str] = []
    for token in TOKEN.finditer(q):
        if token["op"] is not None:
            names = authors if token["op"].lower() == "from" else rooms
            names.append(token["arg"].removeprefix("@").removeprefix("#"))
            continue
        text = token["text"] if token["text"] is not None else token["phrase"]
        words = tuple(WORD.findall(text))
        if words:
            # A run like "deploy.sh" or "e-mail" is its words side by side.
            phrases.append(Phrase(words, prefix=token["phrase"] is None or not token["closed"]))
    if not phrases:
        raise ChatError("invalid", "q needs at least one word to search for"
                        " (from: and in: only narrow a search)", "q")
    if len(phrases) > MAX_TERMS or len(authors) + len(rooms) > MAX_OPERANDS:
        raise ChatError("too_large", f"q takes at most {MAX_TERMS} words or phrases and"
                        f" {MAX_OPERANDS} from:/in: names", "q")
    return SearchQuery(tuple(phrases), tuple(authors), tuple(rooms))


def highlights(body: str, query: SearchQuery) -> list[list[int]]:
    """Where the query's phrases occur in ``body``: sorted, non-overlapping
    ``[start, end]`` code-point ranges, each covering whole words."""
    tokens = [(m.start(), m.end(), fold(m.group())) for m in WORD.finditer(body)]
    spans: list[tuple[int, int]] = []
    for phrase in query.phrases:
        wanted = [fold(word) for word in phrase.words]
        n = len(wanted)
        for i in range(len(tokens) - n + 1):
            if all(tokens[i + k][2] == wanted[k] for k in range(n - 1)):
                last = tokens[i + n - 1][2]
                if last == wanted[-1] or phrase.prefix and last.startswith(wanted[-1]):
                    spans.append((tokens[i][0], tokens[i + n - 1][1]))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


@dataclass(frozen=True, slots=True)
class SearchResults:
    results: list[tuple[Message, list[list[int]]]]
    has_more: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "results": [{"message": m.to_json(), "highlights": h} for m, h in self.results],
            "has_more": self.has_more,
        }


async def search(
    chat: Chat, user: User, q: Any, *, room: Any = None, before: int | None = None,
    limit: int = LIMIT_DEFAULT,
) -> SearchResults:
    """Messages the user may read that match ``q``, newest first, ids below ``before``.

    ``room`` (a slug) keeps to one room: not_found for one the user may not read."""
    query = parse(q)
    if room is not None:
        where = await chat.room_for(user, room)
        query = SearchQuery(query.phrases, query.authors, query.rooms, where.id)
    page = await chat.storage.search(user.id, query, before=before, limit=limit)
    return SearchResults([(m, highlights(m.body, query)) for m in page.messages],
                         page.has_more)


@dataclass(frozen=True, slots=True)
class AroundPage:
    """A page of history centred on one message (a permalink, a search result)."""

    messages: list[Message]  # ascending id
    has_more: bool  # older messages exist (as for ``before``)
    has_more_after: bool  # newer messages exist

    def to_json(self) -> dict[str, Any]:
        return {"messages": [m.to_json() for m in self.messages], "has_more": self.has_more,
                "has_more_after": self.has_more_after}


async def around(chat: Chat, room: Room, message_id: int, limit: int) -> AroundPage:
    """The message, up to (limit - 1) // 2 older ones and the rest newer; not_found
    unless it is a live message of ``room``."""
    message = await chat.storage.message(message_id)
    if message is None or message.deleted or message.room != room.slug:
        raise ChatError("not_found", f"no message {message_id} in this room", "around")
    older = (limit - 1) // 2
    # Up to and including the message, then after it.
    back = await chat.storage.messages(
        room.id, before=message_id + 1, after=None, limit=older + 1)
    newer = limit - len(back.messages)
    ahead = await chat.storage.messages(room.id, before=None, after=message_id,
                                        limit=max(newer, 1))
    if newer == 0:  # asked only whether there is more
        return AroundPage(back.messages, back.has_more, bool(ahead.messages))
    return AroundPage(back.messages + ahead.messages, back.has_more, ahead.has_more)
