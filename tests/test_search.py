"""Search: GNMT penalties, beam 1 = greedy, exhaustive optimum, batching, special tokens, n-best."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import translate.search
from translate.config import STOPS, ModelConfig
from translate.model import Transformer
from translate.search import (
    beam_search,
    coverage_penalty,
    greedy_search,
    length_penalty,
    max_lengths,
    topk_blocks,
)

BOS, EOS = 1, 2
SPECIALS = {0, 1, 2, 3}


def tiny(vocab: int, seed: int = 0, layers: int = 1) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        d_model=16, n_heads=2, d_ff=32, encoder_layers=layers, decoder_layers=layers,
        dropout=0.0, max_positions=64,
    )  # fmt: skip
    return Transformer(cfg, vocab, pad_id=0)


def sources(vocab: int, lengths: list[int], seed: int = 1) -> torch.Tensor:
    """Right-padded (B, S) rows of random ids + [eos]."""
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths) + 1, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        src[i, n] = EOS
    return src


def gnmt_score(model, src_row: torch.Tensor, toks: list[int], alpha: float, beta: float) -> float:
    """Oracle: the GNMT score of `toks` + eos from the model's own log-probs and attention."""
    src = src_row[src_row.ne(0)][None]  # (1, S) without padding
    full = toks + [EOS]
    with torch.no_grad():
        lprobs = model(src, torch.tensor([[BOS] + toks])).log_softmax(-1)[0]  # (T, V)
        logp = sum(lprobs[j, t].item() for j, t in enumerate(full))
        state = model.init_state(*model.encode(src))
        sums = torch.zeros(src.size(1))
        for t in [BOS] + toks:
            sums += model.decode_step(torch.tensor([t]), state, need_attn=True)[1][0]
    cp = beta * sum(math.log(min(s, 1.0)) for s in sums.tolist())
    return logp / ((5 + len(full)) / 6) ** alpha + cp


def test_length_penalty_is_the_gnmt_formula():
    for length, alpha in [(1, 0.6), (7, 0.6), (20, 1.0), (3, 0.0)]:
        expected = (5 + length) ** alpha / (5 + 1) ** alpha
        assert length_penalty(length, alpha) == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(
        length_penalty(torch.tensor([1, 7]), 0.6), torch.tensor([1.0, 2.0**0.6])
    )


def test_coverage_penalty_is_the_gnmt_formula():
    sums = torch.tensor([[0.5, 1.7, 0.2, 0.0], [1.0, 0.3, 0.9, 0.4]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    expected = [0.2 * (math.log(0.5) + 0 + math.log(0.2)), 0.2 * math.log(0.3 * 0.9 * 0.4)]
    torch.testing.assert_close(coverage_penalty(sums, 0.2, mask), torch.tensor(expected))


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_one_equals_greedy(alpha, stop):
    """Also where a longer hypothesis would score higher under the length penalty (alpha 2):
    a beam of 1 stops at its first eos as greedy search does."""
    lengths, ended = [3, 6, 1, 8, 5], 0
    for seed, eos_boost in itertools.product(range(4), (0.0, 3.0)):
        model = tiny(vocab=12, seed=seed)
        project = model.logits
        model.logits = lambda *a, p=project, b=eos_boost: (
            p(*a)
            + b
            * F.one_hot(  # type: ignore
                torch.tensor(EOS), 12
            )
        )
        src = sources(12, lengths, seed=seed + 1)
        greedy = greedy_search(model, src, max_len_b=10)
        beam = beam_search(model, src, beam=1, alpha=alpha, max_len_b=10, stop=stop)
        assert [hyps[0][0] for hyps in beam] == greedy
        ended += sum(len(g) < n + 10 for g, n in zip(greedy, lengths, strict=True))
    assert ended >= 10  # eos met before the length limit


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.0), (0.6, 0.0), (2.0, 0.0), (0.6, 0.5)])
def test_wide_beam_finds_the_exhaustive_best(alpha, beta):
    """V = 6 (4 specials + 2 words), at most 3 words: 15 hypotheses, all scored by the oracle."""
    model = tiny(vocab=6, seed=3).eval()
    src = sources(6, [2, 5, 3], seed=4)
    found = beam_search(
        model, src, beam=16, alpha=alpha, beta=beta, max_len_a=0, max_len_b=3, n_best=5
    )
    for row, hyps in zip(src, found, strict=True):
        every = [list(s) for n in range(4) for s in itertools.product([4, 5], repeat=n)]
        oracle = sorted(((gnmt_score(model, row, s, alpha, beta), s) for s in every), reverse=True)
        assert [toks for toks, _ in hyps] == [s for _, s in oracle[:5]]
        assert [score for _, score in hyps] == pytest.approx([s for s, _ in oracle[:5]], abs=1e-4)


@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_batch_equals_one_sentence_at_a_time(beta):
    model = tiny(vocab=12, layers=2)
    src = sources(12, [4, 9, 2, 6])
    batch = beam_search(model, src, beam=3, alpha=0.6, beta=beta, max_len_b=5, n_best=2)
    for row, hyps in zip(src, batch, strict=True):
        alone = beam_search(
            model, row[row.ne(0)][None], beam=3, alpha=0.6, beta=beta, max_len_b=5, n_best=2
        )[0]
        assert [t for t, _ in hyps] == [t for t, _ in alone]
        assert [s for _, s in hyps] == pytest.approx([s for _, s in alone], abs=1e-4)
        for toks, score in hyps:  # the reported score is the GNMT formula
            assert score == pytest.approx(gnmt_score(model, row, toks, 0.6, beta), abs=1e-4)
    greedy = greedy_search(model, src, max_len_b=5)
    for row, out in zip(src, greedy, strict=True):
        assert greedy_search(model, row[row.ne(0)][None], max_len_b=5)[0] == out


def test_no_special_token_but_eos_is_emitted():
    """Even when pad/bos/unk have the highest logits, they never appear in an output."""
    model = tiny(vocab=12)
    project = model.logits
    boost = torch.zeros(12)
    boost[[0, 1, 3]] = 20.0
    model.logits = lambda *a: project(*a) + boost  # type: ignore[method-assign]
    src = sources(12, [3, 7, 5])
    outputs = greedy_search(model, src, max_len_b=6)
    outputs += [
        toks for hyps in beam_search(model, src, beam=4, max_len_b=6, n_best=4) for toks, _ in hyps
    ]
    assert len(outputs) == 3 + 3 * 4
    assert all(t not in SPECIALS for toks in outputs for t in toks)


def test_n_best_returns_distinct_hypotheses_sorted_by_score():
    model = tiny(vocab=9, seed=5)
    model.train()
    src = sources(9, [5, 3, 7])
    for hyps in beam_search(model, src, beam=5, alpha=0.6, max_len_b=6, n_best=4):
        assert len(hyps) == 4
        assert len({tuple(t) for t, _ in hyps}) == 4
        scores = [s for _, s in hyps]
        assert scores == sorted(scores, reverse=True)
    assert model.training  # the previous mode is restored


def test_max_length_is_respected():
    """At most max_len_a * src_len + max_len_b words (eos excluded): here 3 and 7."""
    model = tiny(vocab=40)
    src = sources(40, [2, 10])
    greedy = greedy_search(model, src, max_len_a=0.5, max_len_b=2)
    beam = [hyps[0][0] for hyps in beam_search(model, src, max_len_a=0.5, max_len_b=2)]
    for out in (greedy, beam):
        assert len(out[0]) <= 3 and len(out[1]) <= 7
    assert len(greedy[1]) == 7  # this random model never chooses eos early: the cap binds


@pytest.mark.parametrize("k", [1, 8, 20])
@pytest.mark.parametrize("n", [8 * 1024, 64 * 75])  # blocks of 256; of 64
def test_topk_blocks_returns_the_topk_values(k, n):
    """Many ties and -inf (as in log-probs with banned tokens): the same values, best first,
    at indices that hold them, each index once."""
    gen = torch.Generator().manual_seed(k)
    x = torch.randint(0, 50, (6, n), generator=gen).float()
    x[x < 10] = float("-inf")
    x[1] = float("-inf")  # a row with nothing finite
    x[2, :] = 3.0  # a row of ties only
    top, idx = topk_blocks(x, k)
    torch.testing.assert_close(top, x.topk(k, dim=1).values)
    assert torch.equal(x.gather(1, idx), top)
    assert all(len(set(row)) == k for row in idx.tolist())


def test_beam_search_with_block_topk_equals_plain_topk(monkeypatch):
    """A vocabulary large enough that beam_step's candidates go through the block path."""
    V = 1024
    model = tiny(vocab=V)
    with torch.no_grad():
        model.shared.weight.mul_(4.0)  # peaked distributions, so beams diverge
    src = sources(V, [6, 3, 8])
    blocked = beam_search(model, src, beam=4, max_len_b=8, n_best=4)
    monkeypatch.setattr(translate.search, "topk_blocks", lambda x, k: x.topk(k, dim=1))
    assert beam_search(model, src, beam=4, max_len_b=8, n_best=4) == blocked


def test_stop_at_current_length_takes_fewer_steps(monkeypatch):
    """stop="current" (HF's heuristic) drops sentences no later than the exact rule, sooner under
    a length penalty, and is the exact rule when lp is constant (alpha 0)."""
    model, src = tiny(vocab=12, seed=3), sources(12, [5, 3, 6, 4])
    steps = []
    decode_step = Transformer.decode_step

    def counted(self, *args, **kwargs):
        steps[-1] += 1
        return decode_step(self, *args, **kwargs)

    monkeypatch.setattr(Transformer, "decode_step", counted)

    def search(alpha, stop):
        steps.append(0)
        return beam_search(model, src, beam=4, alpha=alpha, max_len_b=20, stop=stop)

    assert search(0.0, "current") == search(0.0, "exact") and steps[-2] == steps[-1]
    current, exact = search(1.0, "current"), search(1.0, "exact")
    assert steps[-2] < steps[-1]
    for c, e in zip(current, exact, strict=True):
        assert c[0][1] <= e[0][1] + 1e-6  # the exact rule's best is never worse
    with pytest.raises(ValueError, match="stop"):
        beam_search(model, src, stop="never")
    for beta in (-0.5, float("nan")):  # a penalty above 0 would break the stop rules' bound
        with pytest.raises(ValueError, match="beta must be at least 0"):
            beam_search(model, src, beta=beta)


def test_stop_early_ends_a_sentence_at_its_beam_th_finished_hypothesis(monkeypatch):
    """stop="early" (fairseq, CTranslate2, HF early_stopping=True): a sentence decodes until K
    eos continuations have been among its K best candidates, or to its length limit; with
    n_best = K it returns K hypotheses."""
    model, K = tiny(vocab=12, seed=3), 4
    project = model.logits
    model.logits = lambda *a: project(*a) + F.one_hot(torch.tensor(EOS), 12)  # eos more often
    seen = []  # per step: eos continuations allowed to finish (eos_ok)
    step = translate.search.beam_step

    def recorded(*args, **kwargs):
        out = step(*args, **kwargs)
        seen.append(int(out[4].sum()))
        return out

    monkeypatch.setattr(translate.search, "beam_step", recorded)
    steps = []
    for n in [5, 3, 6, 4]:
        seen.clear()
        src = sources(12, [n], seed=n)
        hyps = beam_search(model, src, beam=K, alpha=1.0, max_len_b=20, n_best=K, stop="early")[0]
        count = list(itertools.accumulate(seen))
        assert count[-1] >= K or len(seen) == n + 20 + 1  # K finished, or the length limit
        assert all(c < K for c in count[:-1])  # not one step later than the K-th
        assert len(hyps) == K and len({tuple(t) for t, _ in hyps}) == K
        steps.append(len(seen))
    assert min(steps) < 10  # some sentences end long before their limit


def test_first_step_with_one_row_per_sentence_changes_nothing(monkeypatch):
    """Beam search feeds one row per sentence at its first step, then K: the same hypotheses
    and scores as K rows from the start (taken when the vocabulary is under 2K candidates)."""
    model, src = tiny(vocab=12, layers=2), sources(12, [4, 9, 2, 6])
    one_row = beam_search(model, src, beam=4, alpha=0.6, beta=0.3, max_len_b=6, n_best=3)
    monkeypatch.setattr(model, "vocab_size", 7)  # 2K > 7: K rows from the first step
    k_rows = beam_search(model, src, beam=4, alpha=0.6, beta=0.3, max_len_b=6, n_best=3)
    for a, b in zip(one_row, k_rows, strict=True):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_max_lengths_is_exact_where_a_times_length_is_an_integer():
    model = tiny(vocab=12)
    src = sources(12, [25, 45, 5])
    # In floating point 1.16 * 25 = 28.999999999999996 and 1.4 * 45 = 62.99999999999999.
    assert max_lengths(model, src[:1], 1.16, 0).tolist() == [29]
    assert max_lengths(model, src[1:2], 1.4, 0).tolist() == [63]
    assert max_lengths(model, src, 1.0, 2).tolist() == [27, 47, 7]
    assert max_lengths(model, src, 2.0, 50).tolist() == [63, 63, 60]  # within max_positions 64


def test_stop_exact_returns_what_decoding_to_the_length_limit_returns(monkeypatch):
    """stop="exact" drops a sentence only once no live hypothesis can enter its n-best: the same
    n-best lists and scores as decoding every sentence to its length limit, with the coverage
    penalty on too (cp only rises towards 0 as a hypothesis grows; the bound takes cp <= 0). The
    other rules never find a better best; "current" misses one here (alpha 2)."""
    model, K = tiny(vocab=10, seed=1), 4
    project = model.logits
    model.logits = lambda *a: project(*a) + 4.0 * F.one_hot(torch.tensor(EOS), 10)  # type: ignore
    src = sources(10, [2, 7, 4, 1], seed=1)
    fed = [0]  # decoder rows fed, per search
    decode_step = Transformer.decode_step

    def counted(self, tokens, *args, **kwargs):
        fed[-1] += tokens.numel()
        return decode_step(self, tokens, *args, **kwargs)

    def to_the_limit(threshold, new_cum, step, max_len, *args):
        return max_len <= step

    monkeypatch.setattr(Transformer, "decode_step", counted)
    missed = 0  # searches where stop="current" returned other hypotheses than "exact"
    for alpha, beta, n_best in [(2.0, 0.5, 2), (1.0, 0.0, 3), (0.0, 1.0, 4)]:
        opts = dict(beam=K, alpha=alpha, beta=beta, max_len_b=6, n_best=n_best)
        others = [beam_search(model, src, stop=stop, **opts) for stop in ("current", "early")]
        fed.append(0)
        exact = beam_search(model, src, stop="exact", **opts)
        with monkeypatch.context() as m:
            m.setattr(translate.search, "finished_bound", to_the_limit)
            fed.append(0)
            limit = beam_search(model, src, **opts)
        assert fed[-2] < fed[-1]  # exact dropped some sentences before their limit
        for e, full, *other in zip(exact, limit, *others, strict=True):
            assert [t for t, _ in e] == [t for t, _ in full]
            assert [s for _, s in e] == pytest.approx([s for _, s in full], abs=1e-6)
            assert all(o[0][1] <= e[0][1] + 1e-6 for o in other)
        missed += others[0] != exact
    assert missed


@pytest.mark.parametrize("stop", STOPS)
def test_a_search_space_smaller_than_n_best_is_returned_whole(stop):
    """With at most 1 word from 2, only 3 hypotheses exist: n_best 5 returns exactly those 3,
    best first, with the oracle's scores (the 1-word ones reach the limit: eos is forced)."""
    model = tiny(vocab=6, seed=1)
    src = sources(6, [3, 1], seed=2)
    found = beam_search(
        model, src, beam=6, alpha=0.6, beta=0.3, max_len_a=0, max_len_b=1, n_best=5, stop=stop
    )
    for row, hyps in zip(src, found, strict=True):
        every = ([], [4], [5])
        oracle = sorted(((gnmt_score(model, row, s, 0.6, 0.3), s) for s in every), reverse=True)
        assert [toks for toks, _ in hyps] == [s for _, s in oracle]
        assert [score for _, score in hyps] == pytest.approx([s for s, _ in oracle], abs=1e-4)


def test_long_hypotheses_score_as_recomputed():
    """Hypotheses longer than the self-attention cache's first allocation (16 steps), after the
    first step's one row per sentence grew to K: every reported score is the GNMT formula."""
    model = tiny(vocab=40, seed=4)
    project = model.logits
    model.logits = lambda *a: project(*a) - 3.0 * F.one_hot(torch.tensor(EOS), 40)  # type: ignore
    src = sources(40, [3, 1], seed=5)
    found = beam_search(
        model, src, beam=3, alpha=0.6, beta=0.3, max_len_a=0, max_len_b=18, n_best=2
    )
    assert max(len(toks) for hyps in found for toks, _ in hyps) > 16
    for row, hyps in zip(src, found, strict=True):
        for toks, score in hyps:
            assert score == pytest.approx(gnmt_score(model, row, toks, 0.6, 0.3), abs=2e-4)
