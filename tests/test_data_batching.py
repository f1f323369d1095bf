"""Token-budget batches: budget, determinism, coverage across ranks, resume; collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_prep import BOS_ID, EOS_ID, PAD_ID, collate, sorted_batches, token_batches
from data_prep.batching import padding_efficiency, random_batches


@pytest.fixture
def lens():
    rng = np.random.default_rng(0)
    src = rng.integers(2, 60, 5000)
    return src, np.clip(src + rng.integers(-5, 6, 5000), 2, None)


def cost(batch, src, tgt):
    return len(batch) * max(src[batch].max(), tgt[batch].max())


def test_budget_is_respected(lens):
    src, tgt = lens
    batches = token_batches(src, tgt, 500, seed=1, epoch=0)
    assert all(cost(b, src, tgt) <= 500 for b in batches)


def test_overlong_pair_gets_its_own_batch():
    src, tgt = np.array([3, 900, 4, 5]), np.array([3, 10, 4, 1200])
    batches = token_batches(src, tgt, 100, seed=1, epoch=0)
    assert sorted(map(len, batches)) == [1, 1, 2]
    assert sorted(np.concatenate(batches).tolist()) == [0, 1, 2, 3]


def test_epoch_covers_every_pair_once(lens):
    src, tgt = lens
    all_ids = np.concatenate(token_batches(src, tgt, 700, seed=3, epoch=2))
    assert sorted(all_ids.tolist()) == list(range(len(src)))


def test_deterministic_per_seed_and_epoch(lens):
    src, tgt = lens

    def run(seed, epoch):
        return [b.tolist() for b in token_batches(src, tgt, 700, seed, epoch)]

    assert run(1, 0) == run(1, 0)
    assert run(1, 0) != run(1, 1)
    assert run(1, 0) != run(2, 0)


def test_ranks_get_distinct_batches_and_equal_counts(lens):
    src, tgt = lens
    full = token_batches(src, tgt, 700, seed=1, epoch=0)
    ranks = [token_batches(src, tgt, 700, 1, 0, rank=r, world_size=3) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == len(full) // 3
    ids = np.concatenate([b for r in ranks for b in r])
    assert len(ids) == len(set(ids.tolist()))
    dropped = len(src) - len(ids)
    assert dropped == sum(len(b) for b in full[len(ranks[0]) * 3 :])


def test_ranks_cover_everything_when_batches_divide_evenly():
    src = tgt = np.full(64, 10)  # 16 batches of 4 pairs at max_tokens 40
    ranks = [token_batches(src, tgt, 40, 1, 0, rank=r, world_size=4) for r in range(4)]
    ids = sorted(np.concatenate([b for r in ranks for b in r]).tolist())
    assert ids == list(range(64))


def test_resume_mid_epoch_skips_the_first_k(lens):
    src, tgt = lens
    full = token_batches(src, tgt, 700, seed=5, epoch=4)
    resumed = token_batches(src, tgt, 700, seed=5, epoch=4)[7:]
    assert [b.tolist() for b in resumed] == [b.tolist() for b in full[7:]]


def test_bucketing_pads_less_than_random(lens):
    src, tgt = lens
    bucketed = padding_efficiency(token_batches(src, tgt, 2000, 1, 0), src, tgt)
    shuffled = padding_efficiency(random_batches(np.maximum(src, tgt), 2000, 1), src, tgt)
    assert bucketed > 0.9 and bucketed > shuffled


def test_collate_adds_bos_eos_and_pads():
    pairs = [
        (np.array([5, 6, 7], np.uint16), np.array([8], np.uint16)),
        (np.array([9]), np.array([10, 11])),
    ]
    src, tgt_in, tgt_out = collate(pairs)
    assert src.dtype == tgt_in.dtype == torch.int64
    assert src.tolist() == [[5, 6, 7, EOS_ID], [9, EOS_ID, PAD_ID, PAD_ID]]
    assert tgt_in.tolist() == [[BOS_ID, 8, PAD_ID], [BOS_ID, 10, 11]]
    assert tgt_out.tolist() == [[8, EOS_ID, PAD_ID], [10, 11, EOS_ID]]


def test_sorted_batches_respect_budget_and_cover_all():
    lengths = [5, 1, 9, 3, 3, 40, 7, 2]
    batches = sorted_batches(lengths, max_tokens=12)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 12
    order = [i for b in batches for i in b]
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    capped = sorted_batches(lengths, max_tokens=12, max_sentences=2)
    assert [len(b) for b in capped] == [1, 1, 1, 2, 2, 1]  # 40 | 9 | 7 | 5 3 | 3 2 | 1
    assert [i for b in capped for i in b] == order


def test_no_pairs_give_no_batches():
    empty = np.array([], dtype=np.int64)
    assert token_batches(empty, empty, max_tokens=64, seed=0, epoch=0) == []
