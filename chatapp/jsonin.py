"""The one JSON reader for everything that comes from outside (API bodies, websocket frames).

``json.loads`` alone lets a few inputs escape as crashes instead of a clear refusal:
bytes that are not UTF-8 (UnicodeDecodeError), ``[`` nested thousands deep
(RecursionError), an integer of thousands of digits (ValueError from ``int``'s digit
limit, after quadratic work), ``NaN``/``Infinity`` and ``1e999`` (not JSON numbers a
client means). Here every one of them is a ``JsonError`` with a message for the client.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32  # the deepest legitimate document (a frame, an API body) is 3 levels
MAX_NUMBER_CHARS = 40  # ids and seqs are 64-bit (19 digits); a float needs fewer still


class JsonError(ValueError):
    """Input that is not JSON this app accepts; ``message`` tells the client why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonError(f"numbers are limited to {MAX_NUMBER_CHARS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonError(f"numbers are limited to {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise JsonError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


_decoder = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)
# Strings (with their escapes) and brackets: enough to measure nesting outside strings.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _depth(text: str) -> int:
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def loads(data: str | bytes | bytearray) -> Any:
    """Parse a JSON document; raise ``JsonError`` for anything this app refuses."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonError("JSON must be UTF-8 encoded") from None
    else:
        text = data
    # Counting is cheap; the scan runs only when there are enough brackets to matter.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise JsonError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return _decoder.decode(text)
    except JsonError:
        raise
    except RecursionError:  # a safety net: the depth check should have caught it
        raise JsonError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError and int()/float() refusals
        raise JsonError(f"not valid JSON: {error}") from None
