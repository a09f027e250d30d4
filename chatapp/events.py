"""Websocket events: built once as JSON text, then shared by every recipient."""

from __future__ import annotations

import json
from typing import Any

from .storage import Message, RoomEvent

# Events a full queue may drop: they describe a moment, not the room's history.
SHEDDABLE_PREFIXES = ('{"type":"typing"', '{"type":"presence"', '{"type":"viewing"')
# Events for the connection itself (close it, follow a new room), never sent to clients.
CONTROL_PREFIX = '{"type":"_'

# Websocket close codes the server sends (SPEC §6, docs/protocol.md).
CLOSE_GOING_AWAY = 1001  # shutdown, or no frame within the idle timeout
CLOSE_UNSUPPORTED = 1003  # binary frame
CLOSE_LOGGED_OUT = 1008  # the session ended
CLOSE_TOO_BIG = 1009  # frame over 64 KiB
CLOSE_INTERNAL_ERROR = 1011  # a bug closed this socket alone
CLOSE_SLOW_CONSUMER = 1013  # the outbox filled: reconnect and sync

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def encode(event_type: str, **fields: Any) -> str:
    """Encode an event with ``type`` first, so prefixes classify it cheaply."""
    return _encoder.encode({"type": event_type, **fields})


def message_json(message: Message) -> str:
    """A stored message as JSON, encoded once for its ack and its room event."""
    return _encoder.encode(message.to_json())


def _room_header(kind_json: str, room: str, seq: int) -> str:
    """How every room event begins, whatever its kind (``kind_json``: the kind as a JSON
    string): ``room_event_seq`` reads it."""
    return f'{{"type":{kind_json},"room":{_encoder.encode(room)},"seq":{seq}'


_MESSAGE_KIND = _encoder.encode("message")


def room_event(event: RoomEvent) -> str:
    """A room event of any kind (SPEC §9), encoded once for every recipient."""
    fields = _encoder.encode(event.fields)
    rest = "}" if fields == "{}" else "," + fields[1:]
    return _room_header(_encoder.encode(event.kind), event.room, event.seq) + rest


def message_event(message: Message, body: str | None = None) -> str:
    """The ``message`` room event, the hot path's shortcut past ``RoomEvent``; ``body``
    is ``message_json(message)`` when already encoded."""
    if body is None:
        body = message_json(message)
    return f'{_room_header(_MESSAGE_KIND, message.room, message.seq)},"message":{body}}}'


def done_event(ref: str | None, event: RoomEvent | None) -> str:
    """The reply to edit, delete and react: the room event, or null for a no-op."""
    ref_field = "" if ref is None else f',"ref":{_encoder.encode(ref)}'
    body = "null" if event is None else room_event(event)
    return f'{{"type":"done"{ref_field},"event":{body}}}'


def ack_event(message: Message, body: str, ref: str | None) -> str:
    """The sender's ack: ``ref`` (if any) and ``nonce`` beside the stored message."""
    ref_field = "" if ref is None else f',"ref":{_encoder.encode(ref)}'
    nonce = _encoder.encode(message.nonce)
    return f'{{"type":"ack"{ref_field},"nonce":{nonce},"message":{body}}}'


def presence_event(username: str, online: bool) -> str:
    return encode("presence", user=username, online=online)


def is_sheddable(payload: str) -> bool:
    return payload.startswith(SHEDDABLE_PREFIXES)


ROOM_PREFIX = "room:"
_SEQ_MARK = ',"seq":'
_HEADER_MAX = 320  # a header's length at most: the longest type and slug, and a seq


def room_channel(slug: str) -> str:
    return f"{ROOM_PREFIX}{slug}"


def room_event_seq(payload: str) -> int | None:
    """The seq of an encoded room event of any kind, read from the header every room
    event starts with (``_room_header``) without decoding the rest; None for the other
    events a room channel carries (typing, viewing), which have no seq.

    Nothing before the header's seq can look like it: the type and the slug hold no
    quote, and the header comes first.
    """
    start = payload.find(_SEQ_MARK, 0, _HEADER_MAX)
    if start < 0:
        return None
    start += len(_SEQ_MARK)
    end = payload.find(",", start)
    return int(payload[start:end if end > 0 else payload.index("}", start)])


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def session_channel(token_hash: str) -> str:
    return f"session:{token_hash}"


PRESENCE_CHANNEL = "presence"
