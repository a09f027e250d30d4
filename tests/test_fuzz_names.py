"""Fuzzing names (chatapp/names.py): cleaning is stable and never lets a hidden
character through; clashing is symmetric and survives case and confusable swaps."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatapp import names

from .fuzzing import fuzz

any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
SWAPS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "l": "1", "O": "0", "i": "і"}


@fuzz
@given(value=any_text)
def test_clean_names_are_stable_and_visible(value: str) -> None:
    try:
        cleaned = names.clean_name(value, "name")
    except names.InvalidNameError as refused:
        assert refused.field == "name" and "name" in refused.message
        return
    assert names.clean_name(cleaned, "name") == cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert cleaned == cleaned.strip() and 1 <= len(cleaned) <= 64
    for char in cleaned:
        assert unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp"), char
        assert char not in names.BIDI_CONTROLS and char not in names.INVISIBLE


@fuzz
@given(value=any_text)
def test_skeleton_is_idempotent(value: str) -> None:
    once = names.skeleton(value)
    assert names.skeleton(once) == once


@fuzz
@given(value=st.text(st.sampled_from("aeopcliOxyz -"), min_size=1, max_size=20),
       data=st.data())
def test_case_and_confusable_swaps_clash(value: str, data: st.DataObject) -> None:
    swapped = "".join(
        SWAPS.get(c, c) if data.draw(st.booleans()) else c for c in value)
    for other in (swapped, value.upper(), value.title()):
        assert names.clash(value, other) and names.clash(other, value), (value, other)


@pytest.mark.parametrize("a,b", [("team a", "team b"), ("ops", "dev"), ("rn", "rm")])
def test_different_names_do_not_clash(a: str, b: str) -> None:
    assert not names.clash(a, b)
