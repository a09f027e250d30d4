"""Server frames built once per event, whatever the connections negotiated (RFC 6455/7692)."""

from __future__ import annotations

import struct


def text_frame(payload: str) -> bytes:
    """One unmasked, unfragmented, uncompressed text frame (RFC 6455 §5.2)."""
    return _frame(0x81, payload.encode())


def _frame(first: int, data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        return bytes((first, size)) + data
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + data
    return struct.pack("!BBQ", first, 127, size) + data
