"""Cleaning rules: normalization, empty sides, length and ratio limits, duplicates."""

from __future__ import annotations

import unicodedata
from collections import Counter

import numpy as np

from data_prep import clean


def test_normalize_is_nfc_and_strip():
    decomposed = unicodedata.normalize("NFD", "  Grüße aus Köln \t")
    assert clean.normalize([decomposed]) == ["Grüße aus Köln"]


def test_training_text_is_cleaned_as_translate_cleans_its_input():
    """normalize (training, validation) == clean_line (what `translate` feeds the model)."""
    lines = ["Hallo\tWelt ", "Zeile\x1fmit\x0bSteuer\x00zeichen", "\ufeffBOM", "a\u2028b\x85c"]
    lines += ["Gu\u0308ten Morgen", "ok \ud800", "Emoji 😀 東京", "", "eine\nZeile"]
    assert clean.normalize(lines) == [clean.clean_line(s) for s in lines]
    assert clean.normalize(lines)[:4] == ["Hallo Welt", "Zeile mit Steuerzeichen", "BOM", "a b c"]
    assert clean.normalize(lines[:4] + lines[5:-1]) == [
        clean.clean_line(s) for s in lines[:4] + lines[5:-1]
    ]
    assert clean.clean_line("u\x00\u0308") == "\u00fc"  # NFC after dropping the control character
    # the quick test for a control character covers every character the table changes
    table = {chr(c) for c in clean._CONTROL}
    assert all(bool(clean._HAS_CONTROL.match(chr(c))) == (chr(c) in table) for c in range(0x10000))


def test_empty_sides_are_dropped_and_counted():
    drops = Counter()
    assert clean.non_empty(["a", "", "c", ""], ["x", "y", "", ""], drops) == [0]
    assert drops["empty"] == 3


def test_length_and_ratio_masks():
    drops = Counter()
    src = np.array([5, 300, 30, 2, 40])
    tgt = np.array([6, 10, 4, 5, 400])
    mask = clean.length_mask(src, tgt, max_len=256, max_ratio=3.0, drops=drops)
    # pair 1 and 4 too long, pair 2 ratio 7.5, pair 3 short (ratio 2.5 anyway)
    assert mask.tolist() == [True, False, False, True, False]
    assert drops == Counter(too_long=2, ratio=1)


def test_short_pairs_are_exempt_from_the_ratio_rule():
    mask = clean.length_mask(np.array([1]), np.array([5]), 100, 3.0, Counter())
    assert mask.tolist() == [True]


def test_duplicates_keep_the_first_occurrence_across_chunks():
    drops, seen = Counter(), set()
    assert clean.unseen(["a", "b", "a", "a"], ["x", "y", "x", "z"], seen, drops) == [0, 1, 3]
    assert clean.unseen(["b", "c"], ["y", "y"], seen, drops) == [1]
    assert drops["duplicate"] == 2
