"""Websocket hardening Hypercorn 0.18 and wsproto 1.x leave to the application.

0. Hypercorn accepts every permessage-deflate offer, with context takeover: two zlib
   contexts kept per connection (~100 KB), and every frame through the connection's
   own compressor. CHATAPP_WS_COMPRESSION decides instead: ``off`` declines the offer
   (``DeclinedPerMessageDeflate``); ``on`` accepts it with no context takeover in
   both directions, so no zlib state outlives a message and one compressed frame
   fits every connection (``frames.OutFrame``).
1. wsproto inflates every compressed frame in full before Hypercorn's
   ``websocket_max_message_size`` check sees it, so a 64 KiB frame of zeros becomes
   ~64 MiB in memory. ``BoundedPerMessageDeflate`` inflates at most the message
   limit (plus one byte to notice the excess), then fails the frame with 1009.
2. When wsproto fails a frame (invalid UTF-8 → 1007, the limit above → 1009) it
   reports a ``CloseConnection`` while the connection is still open, and Hypercorn
   then drops the TCP stream without a close frame (clients see 1006).
   ``ClosingConnection`` marks that moment as a close in progress, so Hypercorn
   answers with a close frame carrying wsproto's code.
``install`` applies all three; ``chatapp.server.install`` runs it (after ``compat`` checked
the shapes it relies on) before the app is served.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator
from typing import Any

from wsproto import Connection, ConnectionState
from wsproto.events import CloseConnection, Event
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

MAX_MESSAGE_BYTES = 64 * 1024


class BoundedPerMessageDeflate(PerMessageDeflate):
    """permessage-deflate without context takeover, inflating at most the message limit."""

    max_message_bytes = MAX_MESSAGE_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("client_no_context_takeover", True)
        kwargs.setdefault("server_no_context_takeover", True)
        super().__init__(*args, **kwargs)
        self._inflated = 0

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self.max_message_bytes - self._inflated
        try:
            inflated = self._decompressor.decompress(bytes(data), room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(inflated)
        if self._inflated > self.max_message_bytes:
            return CloseReason.MESSAGE_TOO_BIG
        return inflated

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if not fin:
            return None
        self._inflated = 0
        return super().frame_inbound_complete(proto, fin)


class DeclinedPerMessageDeflate(BoundedPerMessageDeflate):
    """Declines every offer: the connection is served uncompressed."""

    def accept(self, offer: str) -> bool | None | str:
        return None


class ClosingConnection(Connection):
    """A wsproto connection whose own frame failures close with a close frame."""

    def events(self) -> Generator[Event, None, None]:
        for event in super().events():
            if isinstance(event, CloseConnection) and self.state is ConnectionState.OPEN:
                # A frame failed locally: Hypercorn replies to a close only in
                # REMOTE_CLOSING, so enter it; the reply then carries this code.
                self._state = ConnectionState.REMOTE_CLOSING
                event = CloseConnection(code=event.code, reason=_short(event.reason))
            yield event


def _short(reason: str | None) -> str:
    # A close reason must fit in 123 bytes of UTF-8.
    return (reason or "").encode()[:120].decode(errors="ignore")


def install(compression: bool = False) -> None:
    """Patch Hypercorn's websocket handling as described above."""
    from hypercorn.protocol import ws_stream

    deflate = BoundedPerMessageDeflate if compression else DeclinedPerMessageDeflate
    ws_stream.PerMessageDeflate = deflate  # type: ignore[misc]
    ws_stream.Connection = ClosingConnection  # type: ignore[misc]
