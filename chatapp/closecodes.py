"""Websocket close codes the server sends (SPEC §6, docs/protocol.md)."""

from __future__ import annotations

CLOSE_GOING_AWAY = 1001  # shutdown, or no frame within the idle timeout
CLOSE_UNSUPPORTED = 1003  # binary frame
CLOSE_LOGGED_OUT = 1008  # the session ended
CLOSE_TOO_BIG = 1009  # frame over 64 KiB
CLOSE_INTERNAL_ERROR = 1011  # a bug closed this socket alone
CLOSE_SLOW_CONSUMER = 1013  # the send queue filled: reconnect and sync
