"""Server frames built once per event, whatever the connections negotiated (RFC 6455/7692)."""

from __future__ import annotations

import struct
import zlib

# Below this, deflate saves a few bytes at best: such events go out uncompressed,
# which permessage-deflate allows per message (RFC 7692 §6: RSV1 clear).
DEFLATE_MIN_BYTES = 64
DEFLATE_LEVEL = 6


def text_frame(payload: str) -> bytes:
    """One unmasked, unfragmented, uncompressed text frame (RFC 6455 §5.2)."""
    return _frame(0x81, payload.encode())


def deflate_frame(payload: str, window_bits: int = 15) -> bytes:
    """One text frame compressed on its own (RFC 7692 §7.2.1), valid on any connection
    that negotiated permessage-deflate with server_no_context_takeover and a window
    of at least ``window_bits``; the uncompressed frame when deflate saves nothing."""
    data = payload.encode()
    if len(data) < DEFLATE_MIN_BYTES:
        return _frame(0x81, data)
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -window_bits)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    body = body[:-4]  # the sync flush's 00 00 ff ff, which the receiver puts back
    if len(body) >= len(data):
        return _frame(0x81, data)
    return _frame(0xC1, body)  # FIN, RSV1 ("per-message compressed"), text


class OutFrame:
    """One outgoing message, framed for each kind of connection at most once.

    A fan-out makes one and hands it to every recipient's wire: uncompressed
    connections share ``plain``, compressed ones (no context takeover, so a message
    does not depend on the ones before it) share ``deflated(bits)``. Compression then
    costs once per event, not once per recipient.
    """

    __slots__ = ("text", "_plain", "_deflated")

    def __init__(self, text: str) -> None:
        self.text = text
        self._plain: bytes | None = None
        self._deflated: dict[int, bytes] | None = None

    @property
    def plain(self) -> bytes:
        if self._plain is None:
            self._plain = text_frame(self.text)
        return self._plain

    def deflated(self, window_bits: int) -> bytes:
        cache = self._deflated
        if cache is None:
            cache = self._deflated = {}
        frame = cache.get(window_bits)
        if frame is None:
            frame = cache[window_bits] = deflate_frame(self.text, window_bits)
        return frame


def _frame(first: int, data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        return bytes((first, size)) + data
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + data
    return struct.pack("!BBQ", first, 127, size) + data
