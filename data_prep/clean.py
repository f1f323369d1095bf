"""Cleaning rules for training pairs; every drop is counted by reason for the manifest.

Valid and test are never filtered: they only get `normalize` (NFC + strip) before tokenizing.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter

import numpy as np

DROP_REASONS = ("empty", "too_long", "ratio", "duplicate")
RATIO_MIN_TOKENS = 6  # pairs whose longer side is shorter than this never fail the ratio rule


def normalize(lines: list[str]) -> list[str]:
    """Unicode NFC, then strip surrounding whitespace (what "clean text" means everywhere)."""
    return [unicodedata.normalize("NFC", s).strip() for s in lines]


def non_empty(src: list[str], tgt: list[str], drops: Counter) -> list[int]:
    """Indices of pairs with text on both sides; counts the others as `empty`."""
    keep = [i for i, (s, t) in enumerate(zip(src, tgt, strict=True)) if s and t]
    drops["empty"] += len(src) - len(keep)
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


def pair_hashes(src: list[str], tgt: list[str]) -> np.ndarray:
    """(N,) uint64 8-byte blake2b digests of the cleaned pairs, for exact-duplicate removal."""
    digests = b"".join(
        hashlib.blake2b(f"{s}\x00{t}".encode(), digest_size=8).digest()
        for s, t in zip(src, tgt, strict=True)
    )
    return np.frombuffer(digests, dtype=np.uint64)


def first_occurrences(hashes: np.ndarray, drops: Counter) -> np.ndarray:
    """Boolean (N,) mask keeping the first of each group of equal hashes; counts `duplicate`."""
    keep = np.zeros(len(hashes), dtype=bool)
    keep[np.unique(hashes, return_index=True)[1]] = True
    drops["duplicate"] += int(len(hashes) - keep.sum())
    return keep
