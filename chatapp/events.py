"""Websocket events: built once as JSON text, then shared by every recipient.

Which channel carries them: ``channels.py``; how a socket ends: ``closecodes.py``.
"""

from __future__ import annotations

import json
from typing import Any

from .storage import Message, RoomEvent

# Kinds a full send queue may drop: they describe a moment, not the room's history.
SHEDDABLE = frozenset({"typing", "presence", "viewing"})
TYPING = "typing"


class Event(str):
    """An encoded event: its JSON text, and what the server must know about it without
    reading the text, given by whoever built it: its ``kind`` (the JSON ``type``) and,
    for a room event, its ``seq``.

    It is a ``str`` so that it goes out as it is, alone or joined into a frame with
    others; the fan-out never parses it. Kinds starting with ``_`` are ``control``
    events, for the connection itself (close it, follow a new room), never sent to
    clients. Through the broker an event travels ``pack``-ed: a header line with the
    kind (and seq), then the text.
    """

    kind: str
    seq: int | None
    control: bool

    def __new__(cls, kind: str, text: str, seq: int | None = None) -> Event:
        event = super().__new__(cls, text)
        event.kind, event.seq, event.control = kind, seq, kind.startswith("_")
        return event

    @property
    def sheddable(self) -> bool:
        return self.kind in SHEDDABLE

    def pack(self) -> str:
        """The event as one string for the broker: ``kind[ seq]\\n`` then the text."""
        head = self.kind if self.seq is None else f"{self.kind} {self.seq}"
        return f"{head}\n{self}"

    @classmethod
    def unpack(cls, packed: str) -> Event:
        """The event ``pack`` made; ValueError for anything else."""
        head, newline, text = packed.partition("\n")
        kind, _, seq = head.partition(" ")
        if not newline or not kind:
            raise ValueError(f"not a packed event: {packed[:40]!r}")
        return cls(kind, text, int(seq) if seq else None)


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def encode(event_type: str, **fields: Any) -> Event:
    """An event of ``event_type`` with these fields (``type`` first in the JSON)."""
    return Event(event_type, _encoder.encode({"type": event_type, **fields}))


def message_json(message: Message) -> str:
    """A stored message as JSON, encoded once for its ack and its room event."""
    return _encoder.encode(message.to_json())


def _room_header(kind_json: str, room: str, seq: int) -> str:
    """How every room event begins, whatever its kind (``kind_json``: the kind as a JSON
    string)."""
    return f'{{"type":{kind_json},"room":{_encoder.encode(room)},"seq":{seq}'


_MESSAGE_KIND = "message"
_MESSAGE_KIND_JSON = _encoder.encode(_MESSAGE_KIND)


def room_event(event: RoomEvent) -> Event:
    """A room event of any kind (SPEC §9), encoded once for every recipient."""
    fields = _encoder.encode(event.fields)
    rest = "}" if fields == "{}" else "," + fields[1:]
    header = _room_header(_encoder.encode(event.kind), event.room, event.seq)
    return Event(event.kind, header + rest, event.seq)


def message_event(message: Message, body: str | None = None) -> Event:
    """The ``message`` room event, the hot path's shortcut past ``RoomEvent``; ``body``
    is ``message_json(message)`` when already encoded."""
    if body is None:
        body = message_json(message)
    header = _room_header(_MESSAGE_KIND_JSON, message.room, message.seq)
    return Event(_MESSAGE_KIND, f'{header},"message":{body}}}', message.seq)


def done_event(ref: str | None, event: RoomEvent | None) -> Event:
    """The reply to edit, delete and react: the room event, or null for a no-op."""
    ref_field = "" if ref is None else f',"ref":{_encoder.encode(ref)}'
    body = "null" if event is None else room_event(event)
    return Event("done", f'{{"type":"done"{ref_field},"event":{body}}}')


def ack_event(message: Message, body: str, ref: str | None) -> Event:
    """The sender's ack: ``ref`` (if any) and ``nonce`` beside the stored message."""
    ref_field = "" if ref is None else f',"ref":{_encoder.encode(ref)}'
    nonce = _encoder.encode(message.nonce)
    return Event("ack", f'{{"type":"ack"{ref_field},"nonce":{nonce},"message":{body}}}')


def presence_event(username: str, online: bool) -> Event:
    return encode("presence", user=username, online=online)

