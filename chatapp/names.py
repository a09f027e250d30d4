"""Names people see (rooms; display names and file names reuse this): clean, and clash.

A name is NFC-normalised, its whitespace collapsed, and refused when it carries a
character that changes how the text around it reads without showing itself:
bidirectional controls (``U+202E`` turns ``gpj.exe`` into ``exe.jpg``), zero-width and
other invisible characters, controls. Message bodies keep such characters: this module
is for names only.

Two names clash when they differ only by case or by confusable characters (Latin
``a`` and Cyrillic ``а``, ``l`` and ``I``): their Unicode TR39 skeletons meet. The
confusables table comes from the ``confusable-homoglyphs`` package, which ships
Unicode's ``confusables.txt`` as JSON with both directions of each mapping; the
prototype of each group (what TR39 maps every member to) is rebuilt from it below.
"""

from __future__ import annotations

import json
import unicodedata
from importlib import resources
from typing import Any

# Explicit lists for the error message; the category checks below catch the rest.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Invisible, yet not of category Cf: the combining grapheme joiner, Hangul fillers,
# the braille blank, Mongolian free variation selectors.
INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800\u180b\u180c\u180d\u180e\u180f")
MAX_COMBINING_RUN = 4  # more marks than this on one letter is "zalgo" text, not a name


class InvalidNameError(ValueError):
    """A name this app does not accept; ``field`` names the form or JSON field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def clean_name(value: Any, field: str, max_length: int = 64) -> str:
    """The name as stored and shown: NFC, single spaces, trimmed; or ``InvalidNameError``."""
    if not isinstance(value, str):
        raise InvalidNameError(field, f"{field} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidNameError(field, f"{field} must be valid Unicode text") from None
    value = " ".join(unicodedata.normalize("NFC", value).split())
    combining = 0
    for char in value:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS:
            raise InvalidNameError(
                field, f"{field} must not contain bidirectional control characters "
                f"(U+{ord(char):04X})")
        if category == "Cf" or char in INVISIBLE:
            raise InvalidNameError(
                field, f"{field} must not contain invisible characters (U+{ord(char):04X})")
        if category in ("Cc", "Cs", "Zl", "Zp"):
            raise InvalidNameError(field, f"{field} must not contain control characters")
        combining = combining + 1 if category in ("Mn", "Me") else 0
        if combining > MAX_COMBINING_RUN:
            raise InvalidNameError(field, f"{field} stacks too many combining marks")
    if not 1 <= len(value) <= max_length:
        raise InvalidNameError(field, f"{field} must be 1–{max_length} characters")
    if not any(unicodedata.category(c)[0] in "LNSP" for c in value):
        raise InvalidNameError(field, f"{field} needs a visible character")
    return value


def _load_prototypes() -> dict[str, str]:
    """char -> its TR39 prototype (a char or a short sequence), from the shipped table."""
    text = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text(
        encoding="utf-8")
    table: dict[str, list[dict[str, str]]] = json.loads(text)

    def strip(s: str) -> str:  # the package wraps right-to-left characters in LRMs
        return s.replace("\u200e", "")

    sequence: dict[str, str] = {}  # a source whose prototype is several characters
    edges: dict[str, set[str]] = {}
    for key, entries in table.items():
        key = strip(key)
        for entry in entries:
            other = strip(entry["c"])
            if not key or not other or key == other:
                continue
            if len(key) == 1 and len(other) == 1:
                edges.setdefault(key, set()).add(other)
                edges.setdefault(other, set()).add(key)
            elif len(key) == 1:
                sequence.setdefault(key, other)
            elif len(other) == 1:
                sequence.setdefault(other, key)
    prototypes: dict[str, str] = dict(sequence)
    seen: set[str] = set(sequence)
    for start in edges:
        if start in seen:
            continue
        group, todo = [], [start]
        seen.add(start)
        while todo:  # one group of mutually confusable characters
            char = todo.pop()
            group.append(char)
            for other in edges[char]:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        # TR39 maps every member to one prototype: the member the others point at.
        prototype = max(group, key=lambda c: (len(edges[c]), c.isascii(), -ord(c)))
        for char in group:
            prototypes[char] = prototype
    # A sequence may hold characters that map on ("Ø" -> "O" + U+0338 -> "O" + U+0337):
    # map them through, so that a skeleton's skeleton is itself.
    for _ in range(3):
        changed = False
        for char, target in prototypes.items():
            mapped = "".join(prototypes.get(c, c) for c in unicodedata.normalize("NFD", target))
            mapped = unicodedata.normalize("NFD", mapped)
            if mapped != target:
                prototypes[char] = mapped
                changed = True
        if not changed:
            break
    return prototypes


_PROTOTYPES = _load_prototypes()


def skeleton(text: str) -> str:
    """Unicode TR39 ``skeleton``: NFD, each character to its prototype, NFD again."""
    mapped = "".join(_PROTOTYPES.get(c, c) for c in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def name_keys(name: str) -> frozenset[str]:
    """Keys under which two names clash: the skeleton as written and case-folded."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    # Prototypes keep case ("0" -> "O", "I" -> "l"): fold once more after mapping.
    return frozenset({skeleton(name), skeleton(folded), skeleton(folded).casefold()})


def clash(a: str, b: str) -> bool:
    """Would people take ``a`` and ``b`` for the same name?"""
    return not name_keys(a).isdisjoint(name_keys(b))
