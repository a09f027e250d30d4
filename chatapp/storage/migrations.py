"""What both engines' migration runners share: splitting a script, checking versions.

Each engine keeps its migrations in ``<engine>_schema.py`` (a list, applied in order,
one transaction each) and its runner in its own module.
"""

from __future__ import annotations

import sqlite3

from . import StorageError


def split_sql(script: str) -> list[str]:
    """Split a SQLite migration into statements where SQLite's own tokenizer says one
    ends (``sqlite3.complete_statement``): a ``;`` in a string literal, a quoted name, a
    comment or a trigger body does not end a statement.

    (PostgreSQL needs no split: a script sent without parameters goes through the
    simple query protocol, and the server parses its statements itself.)"""
    statements: list[str] = []
    current = ""
    for piece in script.split(";")[:-1]:
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    rest = current + script.rsplit(";", 1)[-1]
    if any(line.strip() and not line.strip().startswith("--") for line in rest.splitlines()):
        raise StorageError(f"migration SQL does not end with a complete statement: {rest!r}")
    return statements


def check_version(found: int, known: int) -> None:
    """Refuse a schema newer than this code: it was written by a later chatapp."""
    if found > known:
        raise StorageError(
            f"the database schema is version {found}, newer than this chatapp knows "
            f"(version {known}); run the chatapp release that wrote it, or restore a "
            "backup taken with this one"
        )
