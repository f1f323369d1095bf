"""Cleaning rules for training pairs; every drop is counted by reason for the manifest.

Rules apply in DROP_REASONS order: a pair dropped by one rule is not counted by a later one.
Duplicates go before the length rules so that repeated pairs are never tokenized; the first
copy of a too long pair counts as `too_long`, its repeats as `duplicate`.
Valid and test are never filtered: they only get `normalize` before tokenizing, the same
cleaning that `translate` gives its input (`clean_line`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np
from tokenizers import Regex, normalizers

DROP_REASONS = ("empty", "duplicate", "too_long", "ratio")
RATIO_MIN_TOKENS = 6  # pairs whose longer side is shorter than this never fail the ratio rule


# Control characters (category Cc) are dropped, except whitespace ones (\t \n \r \x0b \x0c
# \x1c-\x1f \x85), which become a space like U+2028/U+2029; byte-order marks are dropped; lone
# surrogates (from surrogateescape-decoded bytes), which no tokenizer takes, become U+FFFD.
_CONTROL = {c: None for c in [*range(0x20), *range(0x7F, 0xA0), 0xFEFF]}
_CONTROL.update(
    {c: " " for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029] if chr(c).isspace()}
)
_CONTROL.update(dict.fromkeys(range(0xD800, 0xE000), "\ufffd"))
_KEYS_BUT_NEWLINE = r"\x00-\x09\x0b-\x1f\x7f-\x9f\ufeff\u2028\u2029\ud800-\udfff"  # _CONTROL's
_HAS_CONTROL = re.compile(f"[{_KEYS_BUT_NEWLINE}\n]")
_HAS_CONTROL_BUT_NEWLINE = re.compile(f"[{_KEYS_BUT_NEWLINE}]")


def clean_line(text: str) -> str:
    """Control characters dropped (control whitespace -> space), NFC, surrounding space stripped:
    "clean text" for training, validation and translation alike."""
    if _HAS_CONTROL.search(text):  # str.translate: ~70 ns a character here, so only if needed
        text = text.translate(_CONTROL)
    return unicodedata.normalize("NFC", text).strip()


def clean_line_normalizer() -> normalizers.Normalizer:
    """`clean_line` as a `tokenizers` normalizer, for the tokenizer files of the exports, whose
    users do not call clean_line. Two differences: Rust strings hold no surrogates, and the
    library's NFC has older Unicode tables (24 recent combining marks compose otherwise)."""

    def chars(replacement: str | None) -> Regex:
        codes = [c for c, r in _CONTROL.items() if r == replacement and not 0xD800 <= c < 0xE000]
        return Regex("[" + "".join(f"\\x{{{c:x}}}" for c in codes) + "]")

    return normalizers.Sequence(
        [
            normalizers.Replace(chars(" "), " "),
            normalizers.Replace(chars(None), ""),
            normalizers.NFC(),
            normalizers.Strip(),
        ]
    )


def normalize(lines: list[str]) -> list[str]:
    """`clean_line` of each line, in one NFC call for all lines joined by newlines where no line
    holds a control character (nor a newline): a newline never composes with its neighbours."""
    text = "\n".join(lines)
    if text.count("\n") != len(lines) - 1 or _HAS_CONTROL_BUT_NEWLINE.search(text):
        return [clean_line(s) for s in lines]
    return [s.strip() for s in unicodedata.normalize("NFC", text).split("\n")]


def non_empty(src: list[str], tgt: list[str], drops: Counter) -> list[int]:
    """Indices of pairs with text on both sides; counts the others as `empty`."""
    keep = [i for i, (s, t) in enumerate(zip(src, tgt, strict=True)) if s and t]
    drops["empty"] += len(src) - len(keep)
    return keep


def unseen(src: list[str], tgt: list[str], seen: set[int], drops: Counter) -> list[int]:
    """Indices of pairs not in `seen` (64-bit hashes of cleaned pairs, updated in place): the
    first of each group of exact duplicates, across calls; counts the others as `duplicate`.
    Only a 64-bit hash collision could drop a distinct pair (odds ~1e-6 at 4.5M pairs)."""
    keep = []
    for i, pair in enumerate(zip(src, tgt, strict=True)):
        digest = hash(pair)
        if digest not in seen:
            seen.add(digest)
            keep.append(i)
    drops["duplicate"] += len(src) - len(keep)
    return keep


def length_mask(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_len: int, max_ratio: float, drops: Counter
) -> np.ndarray:
    """Boolean (N,) mask of pairs within `max_len` tokens per side and the length ratio.

    The ratio rule only applies once the longer side has RATIO_MIN_TOKENS tokens: short
    phrasebook pairs such as "Bitte" -> "You're welcome" are legitimately lopsided.
    """
    too_long = (src_lens > max_len) | (tgt_lens > max_len)
    longer, shorter = np.maximum(src_lens, tgt_lens), np.minimum(src_lens, tgt_lens)
    bad_ratio = (longer >= RATIO_MIN_TOKENS) & (longer > max_ratio * np.maximum(shorter, 1))
    bad_ratio &= ~too_long
    drops["too_long"] += int(too_long.sum())
    drops["ratio"] += int(bad_ratio.sum())
    return ~(too_long | bad_ratio)
