"""Log setup: ``CHATAPP_LOG_FORMAT`` (text or json), ``CHATAPP_LOG_LEVEL``, and escaping.

Every record is one line. Text from outside (paths, user agents, usernames, header
values, exception messages quoting them) may hold newlines or terminal controls, so
the formatters escape control characters (C0, DEL, C1), line separators and bidi
controls in the message and in every structured field: a path with ``%0a`` cannot
forge a second line, nor a right-to-left override reverse what a reader sees.

Hypercorn's own messages reach the same handler: ``hypercorn.toml`` hands its error
logger to the root logger (``logconfig_dict``), and the access line is the app's
(``chatapp.access``), which knows the real client address and the route.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .config import ConfigError

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES: dict[int, str] = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}")
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]
}
_ESCAPES.update({code: f"\\u{code:04x}" for code in [*_BIDI, 0x2028, 0x2029]})


def escape(text: str) -> str:
    """``text`` with no control, line-separator or bidi character left in it."""
    return text.translate(_ESCAPES)


def parse_format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in FORMATS:
        raise ConfigError(f"CHATAPP_LOG_FORMAT must be text or json, got {value!r}")
    return text


def parse_level(value: Any) -> str:
    text = str(value).strip().upper()
    if text not in LEVELS:
        raise ConfigError(
            f"CHATAPP_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {value!r}"
        )
    return text


class TextFormatter(logging.Formatter):
    """The classic line; the message escaped, a traceback indented under it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging API
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging API
        # Indented line by line: nothing in a traceback can start a line of its own.
        lines = super().formatException(ei).splitlines()
        return "\n".join("    " + escape(line) for line in lines)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging API
        return "\n".join("    " + escape(line) for line in stack_info.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": escape(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                data.setdefault(str(key), escape(value) if isinstance(value, str) else value)
        if record.exc_info:
            data["exception"] = escape(self.formatException(record.exc_info))
        if record.stack_info:
            data["stack"] = escape(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler this module installs (found again on reconfiguration)."""


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Send every record, Hypercorn's included, through one handler on stderr."""
    log_format, level = parse_format(log_format), parse_level(level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("chatapp").setLevel(level)
