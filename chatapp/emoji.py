"""What a reaction may be (SPEC §9): one emoji, or a ``:short_name:``.

No emoji table is shipped: an emoji is recognised by its shape, the grammar of
Unicode's emoji sequences (UTS #51) over the code point ranges that hold pictographs.
That admits future emoji without an update, and refuses text, several emoji in a row,
and anything with markup or spaces.
"""

from __future__ import annotations

import re

MAX_SHORT_NAME = 32
# A short name: 1-32 characters between colons, none of them a space, colon or control.
SHORT_NAME = re.compile(rf":[^\s:\x00-\x1f\x7f]{{1,{MAX_SHORT_NAME}}}:")

_PICTOGRAPH = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328"
    "\u23cf\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe"
    "\u2600-\u27bf\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297"
    "\u3299\U0001f000-\U0001f1e5\U0001f200-\U0001faff"
)
_MODIFIER = "\U0001f3fb-\U0001f3ff"  # skin tones
_ELEMENT = rf"[{_PICTOGRAPH}](?:\ufe0f|[{_MODIFIER}])?(?:\u20e3)?[\U000e0020-\U000e007f]*"
EMOJI = re.compile(
    "|".join(
        (
            r"[0-9#*]\ufe0f?\u20e3",  # keycaps
            "[\U0001f1e6-\U0001f1ff]{2}",  # flags: a pair of regional indicators
            rf"{_ELEMENT}(?:\u200d{_ELEMENT}){{0,7}}",  # one pictograph or a ZWJ sequence
        )
    )
)


def is_reaction(value: object) -> bool:
    """One emoji, or a short name like ``:party_parrot:``."""
    if not isinstance(value, str) or not value or len(value) > MAX_SHORT_NAME + 2:
        return False
    return bool(SHORT_NAME.fullmatch(value) or EMOJI.fullmatch(value))
