"""Cleaning rules for training pairs; every drop is counted by reason for the manifest.

Rules apply in DROP_REASONS order: a pair dropped by one rule is not counted by a later one.
Duplicates go before the length rules so that repeated pairs are never tokenized; the first
copy of a too long pair counts as `too_long`, its repeats as `duplicate`.
Valid and test are never filtered: they only get `normalize` (NFC + strip) before tokenizing.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

import numpy as np

DROP_REASONS = ("empty", "duplicate", "too_long", "ratio")
RATIO_MIN_TOKENS = 6  # pairs whose longer side is shorter than this never fail the ratio rule


def normalize(lines: list[str]) -> list[str]:
    """Unicode NFC, then strip surrounding whitespace (what "clean text" means everywhere).

    One NFC call for all lines joined by newlines: a newline never composes or reorders with its
    neighbours, so this equals per-line NFC (lines that hold a newline themselves go one by one).
    """
    joined = unicodedata.normalize("NFC", "\n".join(lines)).split("\n")
    if len(joined) != len(lines):
        joined = [unicodedata.normalize("NFC", s) for s in lines]
    return [s.strip() for s in joined]


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
