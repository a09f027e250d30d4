"""Shared by the Python peers: build the same `message` event chatapp sends (SPEC §5/§6)."""

from __future__ import annotations

import datetime as _dt


class Room:
    """One room's event stream: a seq counter and a message id counter, like chatapp's."""

    def __init__(self, slug: str = "general") -> None:
        self.slug = slug
        self.seq = 0
        self.next_id = 0

    def make_event(self, frame: dict, author: str = "bench") -> dict:
        self.seq += 1
        self.next_id += 1
        body = frame.get("body")
        if not isinstance(body, str):
            body = ""
        message = {
            "id": self.next_id,
            "room": self.slug,
            "seq": self.seq,
            "author": author,
            "body": body,
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
            "nonce": frame.get("nonce"),
            "edited_at": None,
        }
        return {"type": "message", "room": self.slug, "seq": self.seq, "message": message}
