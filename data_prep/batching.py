"""Reading prepared splits (memory-mapped) and token-budget batches for training.

Batching is length-bucketed: pairs are sorted by their longer side (ties broken by source
length, target length, then at random per epoch) and cut greedily into batches whose cost
n_pairs * longest side stays within `max_tokens`. The batch order is shuffled per (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_prep.sources import DataError
from data_prep.tokenizer import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    from torch import Tensor


class SplitData(Sequence):
    """Pairs of one prepared split; pair i is (src ids, tgt ids), both memory-mapped views."""

    def __init__(self, data_dir: str | Path, split: str) -> None:
        data_dir = Path(data_dir)
        if not (data_dir / f"{split}.src.idx.npy").is_file():
            raise DataError(
                f"split '{split}' is not prepared in '{data_dir}'; run python -m data_prep first"
            )
        self.src = np.load(data_dir / f"{split}.src.npy", mmap_mode="r")  # (T_src,) ids
        self.tgt = np.load(data_dir / f"{split}.tgt.npy", mmap_mode="r")
        self.src_idx = np.load(data_dir / f"{split}.src.idx.npy")  # (N+1,) int64 offsets
        self.tgt_idx = np.load(data_dir / f"{split}.tgt.idx.npy")
        self.src_lens = np.diff(self.src_idx)  # (N,) int64, raw lengths (no bos/eos)
        self.tgt_lens = np.diff(self.tgt_idx)

    def __len__(self) -> int:
        return len(self.src_lens)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        src = self.src[self.src_idx[i] : self.src_idx[i + 1]]
        return src, self.tgt[self.tgt_idx[i] : self.tgt_idx[i + 1]]


def load_split(data_dir: str | Path, split: str) -> SplitData:
    """Memory-mapped pairs of `split` with `.src_lens` / `.tgt_lens`."""
    return SplitData(data_dir, split)


def token_batches(
    src_lens: np.ndarray,
    tgt_lens: np.ndarray,
    max_tokens: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[np.ndarray]:
    """This rank's batches (arrays of pair indices) for one epoch, in training order.

    Deterministic for (seed, epoch): resuming mid-epoch means skipping the first k batches.
    Cost n * max(longest src, longest tgt) <= max_tokens, except that a pair longer than
    max_tokens forms a batch of its own. With world_size > 1, rank r takes every world_size-th
    batch of the shuffled list and the last len % world_size batches are dropped, so every rank
    gets the same number of distinct batches (those pairs are reshuffled into other batches next
    epoch).
    """
    src_lens, tgt_lens = np.asarray(src_lens), np.asarray(tgt_lens)
    rng = np.random.default_rng([seed, epoch])
    longer = np.maximum(src_lens, tgt_lens)
    order = np.lexsort((rng.random(len(longer)), tgt_lens, src_lens, longer))  # last key first
    batches = _pack(order, longer[order], max_tokens)
    batches = [batches[i] for i in rng.permutation(len(batches))]
    per_rank = len(batches) // world_size
    return batches[rank : per_rank * world_size : world_size]


def sorted_batches(lengths, max_tokens: int, max_sentences: int | None = None) -> list[np.ndarray]:
    """Indices sorted longest first (ties in input order), cut so that n * longest <= max_tokens
    and n <= max_sentences (if given); for decoding and validation, where order does not matter
    and nothing is shuffled."""
    lengths = np.asarray(lengths)
    order, batches, start = np.argsort(-lengths, kind="stable"), [], 0
    while start < len(order):
        size = max(1, max_tokens // max(int(lengths[order[start]]), 1))
        size = min(size, max_sentences or size)
        batches.append(order[start : start + size])
        start += size
    return batches


def _pack(order: np.ndarray, lens: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Greedy cut of `order` (lengths `lens` ascending) into batches of cost <= max_tokens."""
    batches: list[np.ndarray] = []
    start = 0
    if len(order) == 0:
        return batches
    # A bucket of equal length L holds max_tokens // L pairs per batch; the partial batch left at
    # the end of a bucket keeps filling with the next (longer) bucket: the same as pair-by-pair
    # greedy packing, in a Python loop over distinct lengths only.
    values, firsts = np.unique(lens, return_index=True)
    ends = np.append(firsts[1:], len(lens))
    for length, first, end in zip(values, firsts, ends, strict=True):
        size = max(1, max_tokens // int(length))
        if first - start >= size:  # the carried partial batch cannot take a longer pair
            batches.append(order[start:first])
            start = first
        while end - start >= size:
            batches.append(order[start : start + size])
            start += size
    if start < len(order):  # fewer than max_tokens // longest pairs remain
        batches.append(order[start:])
    return batches


def collate(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> tuple[Tensor, Tensor, Tensor]:
    """[(src ids, tgt ids), ...] -> src (B,S), tgt_in (B,T), tgt_out (B,T) int64 tensors.

    src = ids + [eos]; tgt_in = [bos] + ids; tgt_out = ids + [eos]; right-padded with PAD_ID.
    """
    import torch

    n = len(pairs)
    s_len = max(len(s) for s, _ in pairs) + 1
    t_len = max(len(t) for _, t in pairs) + 1
    src = np.full((n, s_len), PAD_ID, dtype=np.int64)
    tgt_in = np.full((n, t_len), PAD_ID, dtype=np.int64)
    tgt_out = np.full((n, t_len), PAD_ID, dtype=np.int64)
    for row, (s, t) in enumerate(pairs):
        src[row, : len(s)], src[row, len(s)] = s, EOS_ID
        tgt_in[row, 0], tgt_in[row, 1 : len(t) + 1] = BOS_ID, t
        tgt_out[row, : len(t)], tgt_out[row, len(t)] = t, EOS_ID
    return torch.from_numpy(src), torch.from_numpy(tgt_in), torch.from_numpy(tgt_out)


def padding_efficiency(
    batches: list[np.ndarray], src_lens: np.ndarray, tgt_lens: np.ndarray
) -> float:
    """Real tokens / padded tokens, both sides together (lengths as the model sees them)."""
    real = padded = 0
    for b in batches:
        s, t = src_lens[b], tgt_lens[b]
        real += int(s.sum() + t.sum())
        padded += len(b) * int(s.max() + t.max())
    return real / max(padded, 1)


def random_batches(lens: np.ndarray, max_tokens: int, seed: int) -> list[np.ndarray]:
    """Baseline for benchmarks: shuffled pairs cut greedily under the same token budget."""
    order = np.random.default_rng(seed).permutation(len(lens))
    batches, current, longest = [], [], 0
    for i in order:
        longest_next = max(longest, int(lens[i]))
        if current and (len(current) + 1) * longest_next > max_tokens:
            batches.append(np.array(current))
            current, longest_next = [], int(lens[i])
        current.append(i)
        longest = longest_next
    return batches + ([np.array(current)] if current else [])
