"""CPU GEMM backends: oneDNN linears (forward and backward), packed weights (oneDNN, MKL, bf16)
against F.linear, and kept inference copies."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

import translate.cpu_gemm as cpu_gemm
from translate.cpu_gemm import (
    ONEDNN_AVX512,
    ONEDNN_BF16,
    ONEDNN_TRAIN,
    X86,
    OneDNNLinear,
    kept,
    linear,
    onednn_linear_here,
    packed,
)


@pytest.mark.skipif(not ONEDNN_BF16, reason="bf16 packed weights need AVX512-BF16 or AMX")
def test_bf16_packed_weights_are_close_to_f_linear():
    """bf16 weights give F.linear's output to bf16's precision, in fp32, for any row count, 3-D
    and strided inputs and with a residual; after relu (fc1) in bf16, which they also take."""
    torch.manual_seed(0)
    w, b = torch.randn(40, 16) / 4, torch.randn(40)
    weight = packed(w, torch.bfloat16)
    close = dict(atol=0.05, rtol=0.02)
    with torch.no_grad():
        for x in (torch.randn(1, 16), torch.randn(7, 1, 16), torch.randn(300, 32)[:, ::2]):
            want = F.linear(x, w, b)
            res = torch.randn(want.shape)
            assert weight(x, b).dtype == torch.float32
            torch.testing.assert_close(weight(x, b), want, **close)
            torch.testing.assert_close(weight(x.bfloat16(), b), want, **close)
            torch.testing.assert_close(weight(x, b, res), want + res, **close)
            torch.testing.assert_close(weight(x, b, res, relu=True), want.relu() + res, **close)
            got = weight(x, b, relu=True)
            assert got.dtype == torch.bfloat16
            torch.testing.assert_close(got.float(), want.relu(), **close)


@pytest.mark.skipif(
    platform.machine() not in X86 or not torch.backends.mkldnn.is_available(),
    reason="OneDNNLinear is for x86 CPUs with oneDNN",
)
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_matches_f_linear_forward_and_backward(bias: bool):
    """Output and all three gradients equal F.linear's, for a 3-D input, a non-contiguous input
    and the tied output projection's shape (more outputs than inputs)."""
    torch.manual_seed(0)
    for x_shape, (n_out, n_in) in [((3, 7, 16), (24, 16)), ((5, 16), (40, 16))]:
        x = torch.randn(*x_shape[:-1], 2 * n_in)[..., ::2].requires_grad_()  # strided
        w = torch.randn(n_out, n_in, requires_grad=True)
        b = torch.randn(n_out, requires_grad=True) if bias else None
        g = torch.randn(*x_shape[:-1], n_out)
        params = [x, w] + ([b] if bias else [])
        ours = torch.autograd.grad(OneDNNLinear.apply(x, w, b), params, g)
        want = torch.autograd.grad(F.linear(x, w, b), params, g)
        assert torch.allclose(OneDNNLinear.apply(x, w, b), F.linear(x, w, b), atol=1e-5)
        for a, e in zip(ours, want, strict=True):
            assert a.shape == e.shape
            assert torch.allclose(a, e, atol=1e-4, rtol=1e-5)


@pytest.mark.skipif(
    platform.machine() not in X86 or not torch.backends.mkldnn.is_available(),
    reason="packed weights are for x86 CPUs with oneDNN",
)
@pytest.mark.parametrize("mkl", [False, True])
def test_packed_weights_equal_f_linear_for_any_row_count(monkeypatch, mkl: bool):
    """Both packed formats (oneDNN's, MKL's on Intel AVX-512 CPUs), packed for 128 rows, give
    F.linear's output for other row counts, 3-D and strided inputs, with relu and residual."""
    if mkl and not torch.backends.mkl.is_available():
        pytest.skip("MKL's packed GEMM needs a build with MKL")
    monkeypatch.setattr(cpu_gemm, "MKL_PACK", mkl)
    torch.manual_seed(0)
    w, b = torch.randn(40, 16), torch.randn(40)
    weight = packed(w)
    with torch.no_grad():
        for x in (torch.randn(1, 16), torch.randn(7, 1, 16), torch.randn(300, 32)[:, ::2]):
            want = F.linear(x, w, b)
            res = torch.randn(want.shape)
            torch.testing.assert_close(weight(x), F.linear(x, w), atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(weight(x, b), want, atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(weight(x, b, res), want + res, atol=1e-4, rtol=1e-5)
            got = weight(x, b, res, relu=True)
            torch.testing.assert_close(got, want.relu() + res, atol=1e-4, rtol=1e-5)


def test_linear_takes_onednn_only_for_fp32_without_autocast_or_compile(monkeypatch):
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    with torch.no_grad():
        assert onednn_linear_here(x, w) == ONEDNN_AVX512
    assert onednn_linear_here(x, w) == ONEDNN_TRAIN  # training: not where MKL is as fast
    node = type(linear(x, w.clone().requires_grad_()).grad_fn).__name__  # torch 2.4: no name()
    assert ("OneDNNLinear" in node) == ONEDNN_TRAIN, node
    assert not onednn_linear_here(x.bfloat16(), w.bfloat16())
    with monkeypatch.context() as m:  # inductor cannot lower the oneDNN op with plain weights
        m.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not onednn_linear_here(x, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn_linear_here(x, w)
        assert linear(x, w).dtype == torch.bfloat16  # autocast's cast, as F.linear
    assert torch.allclose(linear(x, w), F.linear(x, w), atol=1e-5)


def test_kept_copies_follow_their_sources():
    """Made once, reused, remade when a source changes in place or is replaced; never kept
    under autograd."""
    owner, w = torch.nn.Module(), torch.randn(3, 3)
    made = []

    def make():
        made.append(1)
        return w * 2

    with torch.no_grad():
        first = kept(owner, "_double", (w,), make)
        assert kept(owner, "_double", (w,), make) is first and len(made) == 1
        w.add_(1.0)  # as an optimizer step
        assert torch.equal(kept(owner, "_double", (w,), make), w * 2) and len(made) == 2
        w = torch.randn(3, 3)  # as .to() or a new parameter
        assert torch.equal(kept(owner, "_double", (w,), make), w * 2) and len(made) == 3
    kept(owner, "_double", (w,), make)
    kept(owner, "_double", (w,), make)
    assert len(made) == 5  # autograd on: made each time


def test_private_ops_are_looked_up_before_use():
    """A torch build without the private oneDNN/MKL ops takes F.linear instead of failing."""
    assert cpu_gemm.has_ops(torch.ops.aten, "mm", "addmm")
    assert not cpu_gemm.has_ops(torch.ops.mkldnn, "_linear_pointwise", "_no_such_op")
    if platform.machine() in X86 and torch.backends.mkldnn.is_available():
        assert cpu_gemm.ONEDNN_X86  # this build has them: the fast path stays on


def test_cpu_flags_come_from_torch_or_proc_cpuinfo(monkeypatch):
    """AVX512-BF16 is asked of torch where it can say (2.5 and newer), else of /proc/cpuinfo."""
    monkeypatch.setattr(cpu_gemm.torch.cpu, "_is_avx512_bf16_supported", lambda: True, False)
    assert cpu_gemm.avx512_bf16()
    monkeypatch.delattr(cpu_gemm.torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.setattr(cpu_gemm, "cpuinfo", lambda field: "fpu avx512f avx512_bf16 amx_tile")
    assert cpu_gemm.avx512_bf16()
    monkeypatch.setattr(cpu_gemm, "cpuinfo", lambda field: "fpu avx512f")
    assert not cpu_gemm.avx512_bf16()
    monkeypatch.setattr(cpu_gemm, "cpuinfo", lambda field: None)  # no /proc/cpuinfo
    assert not cpu_gemm.avx512_bf16()


@pytest.mark.parametrize("scaled", [False, True], ids=["fused-adamw", "fused-adamw-scaler"])
def test_a_fused_optimizer_step_renews_kept_copies(scaled):
    """Fused kernels (CUDA's default AdamW here, also when a GradScaler steps it, as on a T4)
    write parameters without bumping their versions; a step hook bumps them for `kept`."""
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1, fused=True)
    scaler = torch.amp.GradScaler("cpu") if scaled else None
    copy_of = lambda: kept(layer, "test_copy", (layer.weight,), layer.weight.clone)  # noqa: E731
    with torch.no_grad():
        before = copy_of()
    loss = layer(torch.randn(2, 4)).sum()
    (scaler.scale(loss) if scaled else loss).backward()
    if scaled:
        scaler.step(optimizer)
    else:
        optimizer.step()
    with torch.no_grad():
        after = copy_of()
    assert not torch.equal(before, layer.weight)  # the update happened
    assert torch.equal(after, layer.weight)  # and the kept copy follows it


def test_kept_takes_inference_tensors():
    """A model built or loaded under torch.inference_mode(): its tensors have no version."""
    with torch.inference_mode():
        layer = torch.nn.Linear(4, 4)
        assert torch.equal(
            kept(layer, "test_copy", (layer.weight,), layer.weight.clone), layer.weight
        )


def test_loading_weights_renews_the_kept_copies_of_inference_tensors():
    """Under torch.inference_mode() load_state_dict edits tensors that have no version counter:
    the model forgets its kept copies instead (evaluating several checkpoints in one model)."""
    from translate.config import ModelConfig
    from translate.model import Transformer
    from translate.search import greedy_search

    cfg = ModelConfig(d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1)
    src = torch.tensor([[5, 6, 7, 2]])
    with torch.inference_mode():
        torch.manual_seed(0)
        model = Transformer(cfg, 40).eval()
        torch.manual_seed(1)
        other = Transformer(cfg, 40).eval()
        greedy_search(model, src, max_len_b=8)  # fills the kept copies
        model.load_state_dict(other.state_dict())
        assert greedy_search(model, src, max_len_b=8) == greedy_search(other, src, max_len_b=8)
