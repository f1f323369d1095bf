"""Transformer: initial loss, padding invariance, causality, KV cache, tying, HF-style layout."""

from __future__ import annotations

import copy
import math
import pickle
import platform

import pytest
import torch
import torch.nn.functional as F

from translate.config import ModelConfig
from translate.cpu_gemm import (
    ONEDNN_BF16,
    X86,
)
from translate.model import Transformer, matmul, sdpa, sinusoids

V = 40


def tiny(pre_norm: bool = False, vocab: int = V, seed: int = 0, **kw) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        d_model=32, n_heads=4, d_ff=64, encoder_layers=2, decoder_layers=2, dropout=0.0,
        pre_norm=pre_norm, max_positions=64, **kw,
    )  # fmt: skip
    return Transformer(cfg, vocab, pad_id=0).eval()


def rand_ids(*shape: int, vocab: int = V) -> torch.Tensor:
    return torch.randint(4, vocab, shape)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_initial_loss_is_about_ln_vocab(pre_norm):
    """Logits start ~N(0, 1) (LayerNorm'd states x N(0, 1/D) embedding): loss ~ ln V + 0.5."""
    vocab = 1000
    model = tiny(pre_norm, vocab=vocab)
    torch.manual_seed(1)
    src, tgt = rand_ids(16, 12, vocab=vocab), rand_ids(16, 10, vocab=vocab)
    logits = model(src, tgt[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, vocab), tgt[:, 1:].reshape(-1))
    assert abs(loss.item() - math.log(vocab)) < 0.75


@pytest.mark.parametrize("pre_norm", [False, True])
def test_padding_does_not_change_outputs(pre_norm):
    model = tiny(pre_norm)
    src_a, tgt_a = rand_ids(1, 5), rand_ids(1, 4)
    src_b, tgt_b = rand_ids(1, 9), rand_ids(1, 7)
    src = torch.zeros(2, 9, dtype=torch.long)
    tgt = torch.zeros(2, 7, dtype=torch.long)
    src[0, :5], src[1], tgt[0, :4], tgt[1] = src_a, src_b, tgt_a, tgt_b
    batch = model(src, tgt)
    torch.testing.assert_close(batch[0, :4], model(src_a, tgt_a)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch[1], model(src_b, tgt_b)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_eval_equals_training_mode_without_dropout(pre_norm):
    """In eval the sublayers' last linear layers add the residual themselves (oneDNN post-ops);
    with dropout 0 that must give training mode's outputs, with and without autograd."""
    model, src, tgt = tiny(pre_norm), rand_ids(3, 6), rand_ids(3, 5)
    src[1, 4:] = 0
    train_out = model.train()(src, tgt)
    model.eval()
    torch.testing.assert_close(model(src, tgt), train_out, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(model(src, tgt), train_out, atol=1e-5, rtol=1e-5)


def test_decoder_cannot_see_the_future():
    model = tiny()
    src, tgt = rand_ids(2, 6), rand_ids(2, 8)
    before = model(src, tgt)
    for t in (1, 4, 7):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] - 4 + 1) % (V - 4) + 4
        after = model(src, changed)
        torch.testing.assert_close(after[:, :t], before[:, :t], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(after[:, t], before[:, t])


@pytest.mark.parametrize("pre_norm", [False, True])
def test_cached_decoding_equals_full_recomputation(pre_norm):
    model = tiny(pre_norm)
    src = rand_ids(3, 7)
    src[0, 4:] = 0  # one padded row
    tgt = rand_ids(3, 6)
    full = model(src, tgt)  # (B, T, V)
    with torch.no_grad():
        state = model.init_state(*model.encode(src))
        steps = []
        for t in range(tgt.size(1)):
            logits, attn = model.decode_step(tgt[:, t], state, need_attn=True)
            steps.append(logits)
            assert attn is not None and attn.shape == (3, 7)
            torch.testing.assert_close(attn.sum(-1), torch.ones(3))
            assert attn[0, 4:].abs().max() == 0  # no attention on source padding
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_cached_cross_attention_equals_full_recomputation(pre_norm):
    """decode_step's attention weights (the coverage penalty's p_ij) are the last decoder
    layer's cross-attention averaged over heads: softmax(q k^T / sqrt(Dh)) recomputed from the
    teacher-forced pass's inputs to that layer's encoder_attn, padding masked out."""
    model, src, tgt = tiny(pre_norm), rand_ids(3, 7), rand_ids(3, 6)
    src[0, 4:], src[2, 6:] = 0, 0
    inputs = []
    hook = model.decoder.layers[-1].encoder_attn.register_forward_pre_hook(
        lambda module, args: inputs.append(args)
    )
    with torch.no_grad():
        model(src, tgt)
        hook.remove()
        (h, (k, _), mask), attn = inputs[0][:3], model.decoder.layers[-1].encoder_attn
        q = attn.heads(h, attn.q_proj)  # (B, H, T, Dh)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~mask, -math.inf)
        want = scores.softmax(dim=-1).mean(dim=1)  # (B, T, S)
        state = model.init_state(*model.encode(src))
        got = [model.decode_step(tgt[:, t], state, need_attn=True)[1] for t in range(6)]
    torch.testing.assert_close(torch.stack(got, dim=1), want, atol=1e-5, rtol=1e-5)


def test_state_reorder_selects_beams_and_sentences():
    model = tiny()
    src, tgt = rand_ids(3, 5), rand_ids(3, 4)
    src[1, 3:] = 0
    beams = tgt.repeat_interleave(2, 0)  # rows 0, 1 = sentence 0, ...
    beams[1::2, 1] = 5  # the second beam of each sentence differs
    full = model(src.repeat_interleave(2, 0), beams)
    with torch.no_grad():
        state = model.init_state(*model.encode(src))
        for t in range(3):
            model.decode_step(beams[:, t], state)
        rows = torch.tensor([3, 2, 1, 1])  # sentence 1 (beams swapped), sentence 0 (beam 1 twice)
        state.reorder(rows, sentences=torch.tensor([1, 0]))
        logits, _ = model.decode_step(beams[rows, 3], state)
    torch.testing.assert_close(logits, full[rows, 3], atol=1e-5, rtol=1e-5)


def test_beam_reorders_over_many_steps_equal_full_recomputation():
    """Random beam reorders at every step, past the cache's first growth (16 steps), with a
    sentence leaving halfway: each row's logits equal a full forward of its own history."""
    model, G, steps = tiny(), 3, 24
    src = rand_ids(4, 6)
    src[2, 3:] = 0
    gen = torch.Generator().manual_seed(5)
    hist = torch.full((4 * G, 1), 1)  # bos; row = sentence * G + beam
    sent = torch.arange(4)  # original sentence of each active sentence
    with torch.no_grad():
        state = model.init_state(*model.encode(src))
        for t in range(steps):
            logits, _ = model.decode_step(hist[:, -1], state)
            full = model(src[sent].repeat_interleave(G, 0), hist)[:, -1]  # (N, V)
            torch.testing.assert_close(logits, full, atol=1e-4, rtol=1e-4)
            B = sent.numel()
            keep = torch.tensor([0, 1, 3]) if t == steps // 2 else torch.arange(B)
            parent = torch.randint(0, G, (keep.numel(), G), generator=gen)
            rows = (keep[:, None] * G + parent).view(-1)
            state.reorder(rows, sentences=keep if keep.numel() < B else None)
            new = torch.randint(4, V, (rows.numel(), 1), generator=gen)
            hist, sent = torch.cat([hist[rows], new], dim=1), sent[keep]


def test_cpu_attention_runs_in_fp32_under_bf16_autocast():
    """CPU autocast would run SDPA's slow bf16 kernel; sdpa computes in fp32, returns bf16."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8).bfloat16() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa(q, k, v, None, 0.0, True)
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, want.bfloat16())


@pytest.mark.skipif(
    platform.machine() not in X86 or not torch.backends.mkldnn.is_available(),
    reason="packed weights are for x86 CPUs with oneDNN",
)
def test_cpu_inference_uses_the_prepacked_output_projection():
    """Only under no_grad (the cached-decoding tests above check its logits); under CPU bf16
    autocast a bf16 copy where the CPU multiplies bf16 natively, under fp16 autocast none; a
    prepacked copy of a bf16 weight is never made."""
    model, src = tiny(), rand_ids(2, 5)
    state = model.init_state(*model.encode(src))
    assert state.out_weight is None  # gradients on: the packed op has no backward
    with torch.no_grad():
        weight = model.init_state(*model.encode(src)).out_weight
        assert weight is not None and not weight.bf16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            weight = model.init_state(*model.encode(src)).out_weight
            assert (weight is not None and weight.bf16) if ONEDNN_BF16 else weight is None
        with torch.autocast("cpu", dtype=torch.float16):
            assert model.init_state(*model.encode(src)).out_weight is None
        assert model.bfloat16().init_state(*model.encode(src)).out_weight is None


@pytest.mark.skipif(not ONEDNN_BF16, reason="bf16 packed weights need AVX512-BF16 or AMX")
def test_bf16_decoding_is_close_and_leaves_fp32_decoding_as_it_was():
    """Decoding steps under CPU bf16 autocast give fp32 logits close to fp32 decoding's, and
    fp32 decoding afterwards is exactly as before: each precision keeps its own packed copies."""
    model, src, tgt = tiny(), rand_ids(3, 7), rand_ids(3, 4)

    def steps() -> torch.Tensor:
        state = model.init_state(*model.encode(src))
        return torch.stack([model.decode_step(tgt[:, t], state)[0] for t in range(4)], 1)

    with torch.no_grad():
        fp32 = steps()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = steps()
        assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
        torch.testing.assert_close(bf16, fp32, atol=0.1, rtol=0.05)
        assert torch.equal(steps(), fp32)


def test_step_matmul_equals_torch_on_views_and_keeps_autograd():
    q = torch.randn(3, 5, 4, 8).transpose(1, 2)  # (3, 4, 5, 8), strided as in a decoding step
    k = torch.randn(3, 4, 20, 8)[:, :, :7]  # a cache's first 7 slots
    out = matmul(q, k.transpose(-2, -1))  # numpy on CPU
    assert out.shape == (3, 4, 5, 7)
    assert torch.allclose(out, q @ k.transpose(-2, -1), atol=1e-5)
    leaf = q.detach().requires_grad_()
    matmul(leaf, k.transpose(-2, -1)).sum().backward()  # torch's matmul: a graph to go back through
    assert torch.allclose(leaf.grad, k.sum(dim=2, keepdim=True).expand_as(q), atol=1e-5)


def test_decoding_uses_the_weights_after_a_training_step():
    """Kept inference copies (fused q/k/v, packed weights) must not outlive an update: cached
    decoding after a step equals a full forward with the new weights."""
    model, src, tgt = tiny(), rand_ids(2, 5), rand_ids(2, 4)

    def cached_logits():
        with torch.inference_mode():
            state = model.init_state(*model.encode(src))
            return torch.stack([model.decode_step(tgt[:, t], state)[0] for t in range(4)], 1)

    before = cached_logits()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(src, tgt).logsumexp(-1).mean().backward()
    opt.step()
    after = cached_logits()
    with torch.no_grad():
        torch.testing.assert_close(after, model(src, tgt), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, after, atol=1e-3)


def test_a_model_that_decoded_still_pickles_and_copies():
    """Packed copies are opaque tensors that cannot be pickled: they must stay off the model."""
    model, src = tiny(), rand_ids(2, 5)
    with torch.inference_mode():
        model.decode_step(torch.ones(2, dtype=torch.long), model.init_state(*model.encode(src)))
    clone = pickle.loads(pickle.dumps(model))
    copy.deepcopy(model)
    with torch.inference_mode():
        torch.testing.assert_close(clone(src, src), model(src, src))


def test_shared_embedding_is_one_tensor():
    model = tiny()
    d = model.cfg.d_model
    big = [name for name, p in model.named_parameters() if p.shape == (V, d)]
    assert big == ["shared.weight"]
    assert list(model.state_dict()).count("shared.weight") == 1
    assert model.num_parameters() == sum(p.numel() for p in model.state_dict().values())
    # the output projection uses it: zeroing one row zeroes that token's logit
    with torch.no_grad():
        model.shared.weight[7].zero_()
        assert model(rand_ids(1, 3), rand_ids(1, 2))[..., 7].abs().max() == 0


def test_marian_compatible_layout():
    post, pre = tiny(False), tiny(True)
    names = set(post.state_dict())
    for layer in ("encoder.layers.1", "decoder.layers.1"):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert {f"{layer}.self_attn.{proj}.weight", f"{layer}.self_attn.{proj}.bias"} <= names
        for mod in ("self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
            assert {f"{layer}.{mod}.weight", f"{layer}.{mod}.bias"} <= names
    assert "decoder.layers.0.encoder_attn.q_proj.bias" in names
    assert "decoder.layers.0.encoder_attn_layer_norm.bias" in names
    assert not any(n.endswith("layer_norm.weight") and n.count(".") == 2 for n in names)
    assert {"encoder.layer_norm.weight", "decoder.layer_norm.weight"} <= set(pre.state_dict())
    assert "positions" not in names  # recomputed, never saved


def test_sinusoids_are_laid_out_like_marian():
    table = sinusoids(10, 8)
    pos, i = 3, 2
    angle = pos / 10000 ** (2 * i / 8)
    assert table[pos, i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, 4 + i].item() == pytest.approx(math.cos(angle), abs=1e-6)
    torch.testing.assert_close(table[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_too_long_input_says_what_to_do():
    model = tiny()
    with pytest.raises(ValueError, match="max_positions"):
        model(rand_ids(1, 65), rand_ids(1, 3))


def test_dropout_keeps_the_expectation_and_is_off_in_eval():
    from translate.model import Dropout

    x = torch.ones(200_000)
    drop = Dropout(0.25).train()
    torch.manual_seed(0)
    y = drop(x)
    kept = y.ne(0)
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert drop.eval()(x) is x
    assert Dropout(0.0).train()(x) is x
