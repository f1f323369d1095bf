"""One update and one validation pass: the lr schedule, exact gradient accumulation, precision
choice, skipped non-finite updates, compile without recompiles."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_overrides

import translate.step as step_mod
from data_prep import collate
from translate.config import ConfigError, load_config
from translate.model import Transformer
from translate.step import lr_at, pick_precision, train_step


def test_lr_schedule_is_the_paper_formula():
    d, warmup = 512, 4000
    for step in (1, 10, 3999, 4000, 4001, 100_000):
        expected = d**-0.5 * min(step**-0.5, step * warmup**-1.5)
        assert lr_at(step, d, warmup) == pytest.approx(expected, rel=1e-12)
    assert lr_at(7, 256, 100, scale=2.0) == pytest.approx(2 * lr_at(7, 256, 100))
    peak = max(range(1, 10_000), key=lambda s: lr_at(s, d, warmup))
    assert peak == warmup


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_lr_decay_to_zero_at_max_steps(decay):
    d, warmup, total = 256, 100, 1100
    peak = d**-0.5 * warmup**-0.5
    for step in (1, 50, 100):  # the paper's warmup, unchanged
        assert lr_at(step, d, warmup, 1.0, decay, total) == pytest.approx(lr_at(step, d, warmup))
    progress = 0.3  # of the decay phase
    step = warmup + int(progress * (total - warmup))
    left = 1 - progress
    expected = peak * (left if decay == "linear" else 0.5 * (1 - math.cos(math.pi * left)))
    assert lr_at(step, d, warmup, 1.0, decay, total) == pytest.approx(expected, rel=1e-12)
    assert lr_at(total, d, warmup, 1.0, decay, total) == 0.0
    assert lr_at(total + 5, d, warmup, 1.0, decay, total) == 0.0
    lrs = [lr_at(s, d, warmup, 1.0, decay, total) for s in range(warmup, total + 1)]
    assert all(a >= b for a, b in zip(lrs[:-1], lrs[1:], strict=True))


def test_lr_decay_needs_max_steps():
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_config(None, ["train.decay=linear", "train.max_steps=0"])
    cfg = load_config("configs/demo.yaml", ["train.max_steps=7"])  # shorter than the warmup
    assert cfg.train.decay == "linear"


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_a_run_shorter_than_two_warmups_peaks_halfway_and_still_ends_at_zero(decay):
    """max_time on a slow machine can end a run inside the warmup: it must still end annealed."""
    d, warmup, total = 256, 400, 300
    lrs = [lr_at(s, d, warmup, 1.0, decay, total) for s in range(1, total + 1)]
    assert max(range(total), key=lrs.__getitem__) + 1 == total // 2  # the peak's step
    assert lrs[:150] == pytest.approx([lr_at(s, d, warmup) for s in range(1, 151)])  # the ramp
    assert lrs[-1] == 0.0
    assert lr_at(399, d, warmup, 1.0, decay, 800) == pytest.approx(lr_at(399, d, warmup))


def _pairs(n: int, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(2, 12, (n, 2), generator=g)
    return [
        (
            torch.randint(4, 64, (int(a),), generator=g).numpy(),
            torch.randint(4, 64, (int(b),), generator=g).numpy(),
        )
        for a, b in lens
    ]


def _batch(pairs) -> tuple:
    src, tgt_in, tgt_out = collate(pairs)
    return src, tgt_in, tgt_out, int((tgt_out != 0).sum())


def test_accumulated_micro_batches_equal_one_big_batch():
    cfg = load_config(None, tiny_overrides(Path("."), Path(".")) + ["model.dropout=0"])
    torch.manual_seed(0)
    model = Transformer(cfg.model, 64, pad_id=0)
    twin = copy.deepcopy(model)
    pairs = _pairs(12, seed=1)
    micro = [_batch(pairs[:3]), _batch(pairs[3:8]), _batch(pairs[8:])]
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)  # params - 1.0 * grad: compares gradients
    sgd_twin = torch.optim.SGD(twin.parameters(), lr=1.0)
    nll_a, _, ok_a = train_step(model, micro, sgd, 1.0, cfg.train)
    nll_b, _, ok_b = train_step(twin, [_batch(pairs)], sgd_twin, 1.0, cfg.train)
    assert ok_a and ok_b
    assert nll_a.item() == pytest.approx(nll_b.item(), rel=1e-6)
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "intel", "named"),
    [
        (False, False, False, ""),
        (True, True, True, "AMX"),
        (False, True, False, "AVX512-BF16"),  # AMD Zen 4/5: bf16 measured faster
        (False, True, True, ""),  # Intel without AMX: bf16 GEMMs measured slower
    ],
)
def test_cpu_precision_is_fp32_and_names_bf16_where_faster(
    monkeypatch, amx, avx512_bf16, intel, named
):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(step_mod, "ONEDNN_BF16", avx512_bf16)
    monkeypatch.setattr(step_mod, "INTEL_AVX512", intel)
    dtype, why, _ = pick_precision("auto", torch.device("cpu"))
    assert dtype is None and why.startswith("precision fp32")
    assert ("train.precision=bf16" in why) == bool(named)
    assert f"this CPU has {named}:" in why if named else "this CPU" not in why
    assert pick_precision("bf16", torch.device("cpu"))[0] == torch.bfloat16


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_says_fp32_is_faster(monkeypatch, native):
    monkeypatch.setattr(step_mod, "ONEDNN_X86", True)
    monkeypatch.setattr(step_mod, "ONEDNN_BF16", native)
    dtype, why, warning = pick_precision("bf16", torch.device("cpu"))
    assert dtype == torch.bfloat16 and why.startswith("precision bf16 (train.precision=bf16)")
    assert ("train.precision=fp32 trains faster" in warning) != native


def test_bf16_cpu_step_is_close_to_fp32():
    """CPU bf16 autocast (attention kept in fp32 by translate.model.sdpa) trains like fp32."""
    cfg = load_config(None, tiny_overrides(Path("."), Path(".")) + ["model.dropout=0"])
    torch.manual_seed(0)
    model = Transformer(cfg.model, 64, pad_id=0)
    twin = copy.deepcopy(model)
    batch = [_batch(_pairs(12, seed=1))]
    sgd, sgd_twin = (torch.optim.SGD(m.parameters(), lr=0.0) for m in (model, twin))
    nll, norm, ok = train_step(model, batch, sgd, 0.0, cfg.train)
    nll16, norm16, ok16 = train_step(twin, batch, sgd_twin, 0.0, cfg.train, torch.bfloat16)
    assert ok and ok16
    assert nll16.item() == pytest.approx(nll.item(), rel=0.02)
    assert norm16.item() == pytest.approx(norm.item(), rel=0.05)


def test_non_finite_update_is_skipped():
    cfg = load_config(None, tiny_overrides(Path("."), Path(".")))
    model = Transformer(cfg.model, 64, pad_id=0)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters())

    def poisoned(src, tgt_in):
        return model(src, tgt_in) * float("nan")

    _, _, finite = train_step(poisoned, [_batch(_pairs(4, 2))], opt, 1e-3, cfg.train)
    assert not finite
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_compiled_model_does_not_recompile_when_lengths_stop_being_equal(monkeypatch):
    """Dynamo's duck sizing would give a first batch with as many source as target tokens one
    symbol for both lengths, and compile forward and backward again at the next batch."""
    from torch._dynamo.testing import CompileCounter
    from torch.fx.experimental import _config as fx_config

    if not hasattr(fx_config, "use_duck_shape"):
        pytest.skip("this torch has no duck sizing switch")
    monkeypatch.setattr(fx_config, "use_duck_shape", True)  # torch's default, restored after
    counter, real_compile = CompileCounter(), torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda net, **kw: real_compile(net, backend=counter, **kw)
    )
    torch._dynamo.reset()
    cfg = load_config(None, ["model.d_model=16", "model.n_heads=2", "model.d_ff=32"])
    cfg.model.encoder_layers = cfg.model.decoder_layers = 1
    net, how = step_mod.maybe_compile(Transformer(cfg.model, 40, 0), "on", torch.device("cpu"))
    assert how == "torch.compile (dynamic shapes)"
    net(torch.randint(4, 40, (2, 5)), torch.randint(4, 40, (2, 5))).sum().backward()
    frames = counter.frame_count
    net(torch.randint(4, 40, (3, 7)), torch.randint(4, 40, (3, 6))).sum().backward()
    assert counter.frame_count == frames
    torch._dynamo.reset()


def test_fp16_gradient_overflow_is_left_to_the_scaler():
    """A finite loss with overflowing gradients is the scaler's normal business (it skips the
    step and lowers its scale), not a skipped update that counts toward a stop."""
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    scaler.scale(layer(torch.randn(2, 4)).sum()).backward()
    layer.weight.grad[0, 0] = math.inf
    before = layer.weight.detach().clone()
    tc = SimpleNamespace(clip_norm=0.0)
    _, made = step_mod._optimizer_step(optimizer, 0.1, tc, scaler, torch.tensor(True))
    assert made and torch.equal(before, layer.weight) and scaler.get_scale() < 2.0**8


def test_fp16_skips_an_update_whose_loss_is_not_finite():
    """The scaler skips non-finite gradients only; a gold logit at -inf in fp16 gives an infinite
    NLL with finite gradients, which it would have applied (the log said skipped)."""
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    scaler.scale(layer(torch.randn(2, 4)).sum()).backward()
    before = layer.weight.detach().clone()
    tc = SimpleNamespace(clip_norm=0.0)
    _, finite = step_mod._optimizer_step(optimizer, 0.1, tc, scaler, torch.tensor(False))
    assert not finite and torch.equal(before, layer.weight) and scaler.get_scale() < 2.0**8
