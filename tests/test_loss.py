"""Label-smoothed loss: equal to torch's cross-entropy, its gradient made in the forward."""

from __future__ import annotations

import pytest
import torch

from translate.loss import smoothed_loss


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_smoothed_loss_equals_torch_cross_entropy(eps):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, requires_grad=True)
    gold = torch.randint(1, 11, (3, 5))
    gold[0, 3:] = 0  # pad
    nll, loss = smoothed_loss(logits, gold, eps)
    flat = logits.flatten(0, 1)
    expected = torch.nn.functional.cross_entropy(
        flat, gold.flatten(), ignore_index=0, label_smoothing=eps, reduction="sum"
    )
    torch.testing.assert_close(loss, expected)
    exp_nll = torch.nn.functional.cross_entropy(
        flat, gold.flatten(), ignore_index=0, reduction="sum"
    )
    torch.testing.assert_close(nll, exp_nll)
    (grad,) = torch.autograd.grad(2.0 * loss, logits)  # made in SmoothedLoss's forward
    (expected_grad,) = torch.autograd.grad(2.0 * expected, logits)
    torch.testing.assert_close(grad, expected_grad)
    assert grad[0, 3:].eq(0).all()  # pad rows
    assert not nll.requires_grad  # logged only


def test_smoothed_loss_gradient_keeps_the_logits_dtype():
    logits = torch.randn(2, 3, 7, dtype=torch.bfloat16, requires_grad=True)
    _, loss = smoothed_loss(logits, torch.randint(1, 7, (2, 3)), 0.1)
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16 and logits.grad.shape == logits.shape
