"""Label-smoothed cross-entropy over non-pad target tokens, with the gradient made in its forward.

The training objective of Vaswani et al. (label smoothing 0.1); `smoothed_loss` also returns the
plain NLL, which training logs as `loss` / `ppl`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from data_prep import PAD_ID


def smoothed_loss(logits: Tensor, gold: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Summed NLL and label-smoothed loss over non-pad targets, from one log_softmax.

    logits (B, T, V), gold (B, T). The smoothed loss equals F.cross_entropy(label_smoothing=eps):
    (1 - eps) * NLL + eps * mean over the V classes of -log p. Under autograd the NLL is
    detached (it is logged, not trained on) and the loss's gradient is made by `SmoothedLoss`.
    """
    if torch.is_grad_enabled() and logits.requires_grad:
        return SmoothedLoss.apply(logits, gold, eps)
    lprobs = logits.log_softmax(dim=-1, dtype=torch.float32).flatten(0, 1)  # (N, V)
    return _smoothed_sums(lprobs, gold.flatten(), eps)


def _smoothed_sums(lprobs: Tensor, gold: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """lprobs (N, V), gold (N,) -> summed NLL and smoothed loss over the non-pad rows."""
    nll = F.nll_loss(lprobs, gold, ignore_index=PAD_ID, reduction="sum")
    if eps == 0:
        return nll, nll
    uniform = -lprobs.sum(dim=-1).masked_fill(gold.eq(PAD_ID), 0.0).sum() / lprobs.size(-1)
    return nll, (1.0 - eps) * nll + eps * uniform


class SmoothedLoss(torch.autograd.Function):
    """smoothed_loss whose forward also makes the gradient, softmax - q (q = (1 - eps) at the gold
    token + eps / V everywhere; 0 on pad rows), in the log-probs' own buffer, so the backward
    makes no (B * T, V) buffer of its own (peak 9 MB instead of 1,508 MB above the logits and
    their gradient for 4,096 x 32,000 on CPU, docs/benchmarks.md). It adds two in-place passes
    (exp, minus eps / V) to the forward and one (the scale) to the backward, and no op that
    waits for a GPU (no boolean-mask indexing, no host-to-device scalars)."""

    @staticmethod
    def forward(ctx, logits: Tensor, gold: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        lprobs = logits.log_softmax(dim=-1, dtype=torch.float32).flatten(0, 1)  # (N, V)
        gold = gold.flatten()
        nll, loss = _smoothed_sums(lprobs, gold, eps)
        loss = nll.clone() if loss is nll else loss  # eps 0: two outputs, one differentiable
        grad = lprobs.exp_().sub_(eps / lprobs.size(1))  # softmax - eps / V, in place
        rows = torch.arange(gold.numel(), device=gold.device)
        grad.index_put_((rows, gold), grad.new_full((), eps - 1.0), accumulate=True)
        ctx.grad, ctx.real = grad, gold.ne(PAD_ID)[:, None]  # pad rows: zeroed in backward
        ctx.shape, ctx.dtype = logits.shape, logits.dtype
        ctx.mark_non_differentiable(nll)
        return nll, loss

    @staticmethod
    def backward(ctx, _: Tensor, grad_loss: Tensor) -> tuple[Tensor, None, None]:
        if ctx.grad is None:
            raise RuntimeError("SmoothedLoss runs its backward once (no retain_graph)")
        grad, ctx.grad = ctx.grad, None  # scaled in place
        grad.mul_(ctx.real * grad_loss)  # (N, 1): 0 on pad rows
        return grad.view(ctx.shape).to(ctx.dtype), None, None
