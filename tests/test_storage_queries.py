"""The SQL both engines share (``chatapp.storage.queries``): marks and dialects."""

from __future__ import annotations

from chatapp.storage.queries import (
    PUBLIC_ROOMS,
    UNREAD_MESSAGE,
    for_sqlite,
    message_page,
    numbered,
    unread_counts,
)


def test_numbered_counts_marks_outside_literals_only() -> None:
    sql = "SELECT 'who?', x FROM t WHERE a = ? AND b = 'it''s ?' AND c IN (?, ?)"
    assert numbered(sql) == (
        "SELECT 'who?', x FROM t WHERE a = $1 AND b = 'it''s ?' AND c IN ($2, $3)"
    )
    assert numbered("SELECT 1") == "SELECT 1"


def test_for_sqlite_drops_only_the_byte_order_collation() -> None:
    assert 'COLLATE "C"' in PUBLIC_ROOMS
    assert for_sqlite(PUBLIC_ROOMS) == (
        "SELECT id, slug, name, kind, last_seq FROM rooms WHERE kind = 'public'"
        " ORDER BY name, id"
    )


def test_message_page_walks_back_unless_only_after_is_given() -> None:
    sql, params, newest_first = message_page(7, None, None, 50)
    assert (params, newest_first) == ([7, 51], True)
    assert sql.endswith("ORDER BY m.id DESC LIMIT ?") and sql.count("?") == len(params)
    sql, params, newest_first = message_page(7, None, 100, 50)
    assert (params, newest_first) == ([7, 100, 51], False)
    assert "m.id > ?" in sql and sql.endswith("ORDER BY m.id ASC LIMIT ?")
    sql, params, newest_first = message_page(7, 200, 100, 50)
    assert (params, newest_first) == ([7, 200, 100, 51], True)
    assert "m.id < ? AND m.id > ?" in sql and sql.count("?") == len(params)


def test_unread_counts_apply_the_one_rule_to_both_counts() -> None:
    sql = unread_counts("MENTIONS_ME")
    assert sql.count(UNREAD_MESSAGE) == 2 and "m.author_id <> ms.user_id" in UNREAD_MESSAGE
    assert sql.count("?") == 2 and "MENTIONS_ME" in sql
