"""permessage-deflate that cannot inflate a small frame into a huge message.

wsproto inflates every compressed frame in full before Hypercorn's
``websocket_max_message_size`` check sees it, so a 64 KiB frame of zeros becomes
~64 MiB in memory. This subclass inflates at most the message limit (plus one byte
to notice the excess) and then closes with 1009, and ``install`` makes Hypercorn
negotiate it instead of wsproto's own class.
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

MAX_MESSAGE_BYTES = 64 * 1024


class BoundedPerMessageDeflate(PerMessageDeflate):
    max_message_bytes = MAX_MESSAGE_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
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


def install() -> None:
    """Make Hypercorn offer the bounded extension on every websocket it accepts."""
    from hypercorn.protocol import ws_stream

    ws_stream.PerMessageDeflate = BoundedPerMessageDeflate  # type: ignore[misc]
