"""Greedy and beam search over a KV-cached Transformer, with GNMT length and coverage penalties.

Beam search scores a finished hypothesis Y of source X as in Wu et al. 2016, section 7:
    s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y)
    lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha            (|Y| counts the eos)
    cp(X; Y) = beta * sum_i log(min(sum_j p_ij, 1.0))
where p_ij is the cross-attention of target step j on source token i, taken from the last decoder
layer and averaged over its heads; i runs over the real source tokens (its eos included).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from data_prep import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from translate.config import STOPS
from translate.model import Transformer

# Special tokens a hypothesis never holds (eos only ends it); a tokenizer with more specials
# passes all of its own: data_prep.never_emitted(tokenizer).
NEVER_EMITTED = (PAD_ID, BOS_ID, UNK_ID)


def length_penalty(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT lp = ((5 + length) / 6)^alpha, `length` counting the eos: a float for an int (no
    tensor ops on scalars at every step), a float tensor for a tensor."""
    return ((5.0 + length) / 6.0) ** alpha


def coverage_penalty(attn_sums: Tensor, beta: float, src_mask: Tensor) -> Tensor:
    """GNMT cp = beta * sum_i log(min(attn_sums_i, 1)) over positions where src_mask is True.

    attn_sums (N, S): attention each source token received, summed over target steps -> (N,).
    """
    logs = attn_sums.float().clamp(min=1e-10, max=1.0).log()  # clamp(min) avoids log(0) = -inf
    return beta * logs.masked_fill(~src_mask, 0.0).sum(dim=-1)


def max_lengths(model: Transformer, src_ids: Tensor, a: float, b: int) -> Tensor:
    """Most output tokens (eos excluded) per sentence: a * src_len + b, within max_positions."""
    src_len = src_ids.ne(PAD_ID).sum(dim=1) - 1  # (B,) without the eos
    # The epsilon keeps a * src_len that lands on an integer from flooring one below (1.16 * 25)
    limit = (a * src_len.double() + b + 1e-9).floor().long().clamp(min=0)
    return limit.clamp(max=model.cfg.max_positions - 1)


def log_probs(logits: Tensor, step: int, max_len: Tensor, banned: Tensor) -> Tensor:
    """logits (N, V) -> log-probs (N, V) with the `banned` ids (special tokens but eos) at -inf,
    and only eos left for rows that reached their max_len (N,) output tokens."""
    lprobs = logits.log_softmax(dim=-1, dtype=torch.float32)
    lprobs.index_fill_(1, banned, float("-inf"))
    at_max = max_len <= step  # (N,)
    if bool(at_max.any()):
        only_eos = torch.full_like(lprobs[0], float("-inf"))  # (V,)
        only_eos[EOS_ID] = 0.0
        lprobs[at_max] += only_eos
    return lprobs


@contextmanager
def _inference(model: Transformer) -> Iterator[None]:
    """Eval mode and inference_mode for the block; the previous training mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def greedy_search(
    model: Transformer,
    src_ids: Tensor,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    never: Sequence[int] = NEVER_EMITTED,
) -> list[list[int]]:
    """Argmax decoding of src_ids (B, S) (rows = ids + [eos], right-padded) -> token ids per
    sentence, bos/eos excluded; `never`: ids never emitted. Finished rows leave the batch."""
    banned = torch.as_tensor(never, dtype=torch.long, device=src_ids.device)
    with _inference(model):
        memory, src_pad = model.encode(src_ids)
        state = model.init_state(memory, src_pad)
        max_len = max_lengths(model, src_ids, max_len_a, max_len_b)  # (B,)
        B = src_ids.size(0)
        rows = torch.arange(B, device=src_ids.device)  # sentence of each active row
        hist = src_ids.new_empty((B, 0))  # (N, t) tokens emitted so far
        last = src_ids.new_full((B,), BOS_ID)
        out: list[list[int]] = [[] for _ in range(B)]
        for step in range(int(max_len.max()) + 1):
            logits, _ = model.decode_step(last, state)
            last = log_probs(logits, step, max_len, banned).argmax(dim=-1)  # (N,)
            done = last.eq(EOS_ID)
            if bool(done.any()):
                for r, toks in zip(rows[done].tolist(), hist[done].tolist(), strict=True):
                    out[r] = toks
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                state.reorder(keep, sentences=keep)
                rows, hist, max_len, last = rows[keep], hist[keep], max_len[keep], last[keep]
            hist = torch.cat([hist, last[:, None]], dim=1)
        return out


def topk_blocks(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """x.topk(k, dim=1) of x (B, n) through the maxima of blocks of 256, 128 or 64 columns (the
    widest that divides n): the k best values lie in the k blocks with the highest maxima (a
    block left out has a maximum no higher than k others', each of which holds a value at least
    as high). The same values as topk, best first; under ties, possibly other indices. Top 8 of
    32 x 32,000 (beam 4, vocabulary 8,000; AVX-512 AMD box): 0.54 ms with topk, 0.31-0.38 with
    blocks of 128, 0.22-0.25 with 256, 0.55 with 512. The k blocks are copied as rows
    (index_select), not gathered element by element: on a Zen 3 box 0.29 ms against 0.45, and
    1.37 with topk (docs/benchmarks.md, session 13)."""
    B, n = x.shape
    block = next((b for b in (256, 128, 64) if n % b == 0), 0)
    if not block or n // block <= k:
        return x.topk(k, dim=1)
    blocks = x.view(B, n // block, block)  # (B, n / block, block)
    best = blocks.amax(dim=2).topk(k, dim=1).indices  # (B, k) blocks that hold the k best
    rows = best + torch.arange(B, device=x.device)[:, None] * (n // block)  # in blocks' rows
    cand = blocks.view(-1, block).index_select(0, rows.view(-1))  # (B * k, block)
    top, pos = cand.view(B, k * block).topk(k, dim=1)  # (B, k)
    return top, best.gather(1, pos // block) * block + pos % block


def beam_step(
    cum: Tensor, lprobs: Tensor, beam: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One beam update. cum (B, G) live log-probs, lprobs (B, G, V) next-token log-probs (which
    it overwrites with the candidates' scores, cum + lprobs); 2 * beam <= G * V.

    Returns for the `beam` best non-eos continuations: parent (B, beam) in [0, G), token
    (B, beam), log-prob (B, beam); and for each live row's eos continuation: its log-prob (B, G)
    and whether it may finish (B, G): finite and within the `beam` best of all G * V candidates
    (as fairseq, HF and CTranslate2).
    """
    B, G, V = lprobs.shape
    K = beam
    scores = lprobs.add_(cum[:, :, None])  # (B, G, V), in place: one pass fewer over 4 MB
    # One top-2K over all G * V candidates: at most G <= K of them are eos, so it holds the K
    # best non-eos ones too.
    top, idx = topk_blocks(scores.view(B, G * V), 2 * K)  # (B, 2K), best first
    eos_cum = scores[:, :, EOS_ID]  # (B, G)
    eos_ok = eos_cum.isfinite() & (eos_cum >= top[:, K - 1 : K])
    new_cum, pos = top.masked_fill(idx % V == EOS_ID, float("-inf")).topk(K, dim=1)  # (B, K)
    idx = idx.gather(1, pos)
    return idx // V, idx % V, new_cum, eos_cum, eos_ok


def finished_bound(
    threshold: Tensor,
    new_cum: Tensor,
    step: int,
    max_len: Tensor,
    alpha: float,
    stop: str = "exact",
    n_finished: Tensor | None = None,
) -> Tensor:
    """(B,) True where a sentence is done: with stop="exact", no live hypothesis can beat the
    n-th best finished score `threshold` (B,); with "current", the best live one would not beat
    it if it ended next (HF's heuristic: fewer steps, but it may miss a longer, better one); with
    "early", K hypotheses have finished (n_finished (B,), K = new_cum.size(1)): fairseq's rule,
    CTranslate2's (patience 1) and HF's early_stopping=True. No rule always takes the fewest
    steps; on a Multi30k checkpoint "early" fed 30% fewer decoder rows than "exact" and 15% more
    than "current" (docs/benchmarks.md, session 12).

    A live hypothesis with log-prob L <= 0 and step + 1 tokens finishes with length in
    [step + 2, max_len + 1]: its score is at most L / max(lp) there, plus cp <= 0. lp is
    monotone, so that max is at one end of the range; "current" takes lp(step + 2).
    """
    if stop == "early":
        return (n_finished >= new_cum.size(1)) | (max_len <= step)
    lp_best = length_penalty(step + 2, alpha)
    if stop == "exact":
        lp_best = length_penalty(max_len + 1, alpha).clamp(min=lp_best)
    bound = new_cum.max(dim=1).values / lp_best
    return (threshold >= bound) | (max_len <= step)


def beam_search(
    model: Transformer,
    src_ids: Tensor,
    beam: int = 4,
    alpha: float = 0.6,
    beta: float = 0.0,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    n_best: int = 1,
    stop: str = "exact",
    never: Sequence[int] = NEVER_EMITTED,
) -> list[list[tuple[list[int], float]]]:
    """Beam search over src_ids (B, S) (rows = ids + [eos], right-padded) -> per sentence the
    n_best (token ids without bos/eos, GNMT score) best first; `never`: ids never emitted. All
    sentences x beams decode as one batch; a sentence leaves the batch once no live hypothesis
    can beat its finished ones (stop="exact"), once the best live one ending next would not
    (stop="current", faster), or once `beam` hypotheses have finished (stop="early"; see
    finished_bound). A beam of 1 always stops at its first eos, as greedy search does: the
    other rules would go on with the best continuation that is not eos."""
    if beam < 1 or n_best < 1:
        raise ValueError(f"beam ({beam}) and n_best ({n_best}) must be at least 1")
    if stop not in STOPS:
        raise ValueError(f"stop must be one of {', '.join(STOPS)}; got '{stop}'")
    if not beta >= 0:  # the stop rules take the coverage penalty to be at most 0
        raise ValueError(f"beta must be at least 0; got {beta}")
    stop = "early" if beam == 1 else stop
    banned = torch.as_tensor(never, dtype=torch.long, device=src_ids.device)
    with _inference(model):
        return _beam_search(
            model, src_ids, beam, alpha, beta, max_len_a, max_len_b, n_best, stop, banned
        )


def _beam_search(
    model: Transformer,
    src_ids: Tensor,
    K: int,
    alpha: float,
    beta: float,
    max_len_a: float,
    max_len_b: int,
    n_best: int,
    stop: str,
    banned: Tensor,
) -> list[list[tuple[list[int], float]]]:
    """The beam loop: live beams ranked by log-prob, finished ones by GNMT score (see top)."""
    dev, B = src_ids.device, src_ids.size(0)
    memory, src_pad = model.encode(src_ids)
    state = model.init_state(memory, src_pad)  # row = sentence * G + beam
    max_len = max_lengths(model, src_ids, max_len_a, max_len_b)  # (B,)
    sent = torch.arange(B, device=dev)  # original sentence of each active sentence
    # All K beams start as the same empty hypothesis: the first step feeds one row per sentence
    # (G = 1) and its K best continuations become the beams, as CTranslate2 does; a vocabulary
    # smaller than 2K candidates starts with K rows, all but the first at -inf.
    G = 1 if model.vocab_size >= 2 * K else K
    cum = torch.full((B, G), float("-inf"), device=dev)  # (B, G) live log-probs
    cum[:, 0] = 0.0
    threshold = torch.full((B,), float("-inf"), device=dev)  # n_best-th finished score
    n_finished = torch.zeros(B, dtype=torch.long, device=dev)  # eos continuations so far
    hist = src_ids.new_empty((B * G, 0))  # (N, t) tokens of the live hypotheses
    last = src_ids.new_full((B * G,), BOS_ID)
    src_real = (~src_pad).repeat_interleave(G, dim=0)  # (N, S)
    attn_sums = torch.zeros(src_real.shape, device=dev)  # (N, S) sum_j p_ij so far
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    for step in range(int(max_len.max()) + 1):
        Bt, G = cum.shape
        logits, attn = model.decode_step(last, state, need_attn=beta > 0)
        lprobs = log_probs(logits, step, max_len.repeat_interleave(G), banned)  # (N, V)
        lprobs = lprobs.view(Bt, G, -1)  # (N, V) -> (Bt, G, V)
        parent, token, cum, eos_cum, eos_ok = beam_step(cum, lprobs, K)
        eos_score = eos_cum / length_penalty(step + 1, alpha)  # (Bt, G)
        if attn is not None:
            attn_sums += attn.float()
            eos_score += coverage_penalty(attn_sums, beta, src_real).view(Bt, G)
        new = eos_ok & (eos_score > threshold[:, None])
        if bool(new.any()):
            _finish(new, eos_score, hist, sent, finished, threshold, n_best)
        n_finished += eos_ok.sum(dim=1)
        done = finished_bound(threshold, cum, step, max_len, alpha, stop, n_finished)  # (Bt,)
        keep = (~done).nonzero().squeeze(1)  # (Bt',)
        if keep.numel() == 0:
            break
        rows = torch.arange(Bt, device=dev)[:, None] * G + parent  # (Bt, K) parents' rows
        dropped = keep.numel() < Bt
        if dropped:  # some sentences are done: keep the others only
            rows, token, cum, sent = rows[keep], token[keep], cum[keep], sent[keep]
            max_len, threshold, n_finished = max_len[keep], threshold[keep], n_finished[keep]
        rows, last = rows.view(-1), token.view(-1)  # (Bt' * K,)
        state.reorder(rows, sentences=keep if dropped else None)
        hist = torch.cat([hist[rows], last[:, None]], dim=1)
        if attn is not None:  # coverage penalty on
            attn_sums, src_real = attn_sums[rows], src_real[rows]
    return [[(toks, score) for score, toks in hyps] for hyps in finished]


def _finish(
    new: Tensor,
    eos_score: Tensor,
    hist: Tensor,
    sent: Tensor,
    finished: list[list[tuple[float, list[int]]]],
    threshold: Tensor,
    n_best: int,
) -> None:
    """Move the eos continuations marked in `new` (B, G) into `finished` (kept n_best, best
    first) and raise `threshold` (B,) to each sentence's n_best-th score once it has n_best."""
    G = new.size(1)
    where = new.nonzero().tolist()  # [[b, g], ...]
    rows = torch.tensor([b * G + g for b, g in where], device=hist.device)
    sentences = sent.tolist()
    for (b, _), score, toks in zip(
        where, eos_score[new].tolist(), hist[rows].tolist(), strict=True
    ):
        hyps = finished[sentences[b]]
        hyps.append((score, toks))
        hyps.sort(key=lambda h: -h[0])
        del hyps[n_best:]
        if len(hyps) == n_best:
            threshold[b] = hyps[-1][0]
