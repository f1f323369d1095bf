"""Encoder-decoder Transformer (Vaswani et al. 2017) with a KV cache for incremental decoding.

The layout follows HF `MarianMTModel` (post-LN) so a checkpoint maps onto it name for name:
`shared` (one embedding for source, target and output projection), `encoder.layers.N.self_attn.
{q,k,v,out}_proj`, `self_attn_layer_norm`, `fc1`, `fc2`, `final_layer_norm`, and in the decoder
also `encoder_attn.*` / `encoder_attn_layer_norm`. `model.pre_norm` adds `encoder.layer_norm` and
`decoder.layer_norm` (final LayerNorms, as in fairseq/MBart); post-LN has none.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.config import ModelConfig
from translate.cpu_gemm import (
    ONEDNN_AVX512,
    Linear,
    Packed,
    forget_kept,
    kept,
    linear,
    packable,
    packed,
    packed_dtype,
)

KV = tuple[Tensor, Tensor]  # keys, values: each (B, H, T, Dh)


def sinusoids(n_pos: int, dim: int) -> Tensor:
    """(n_pos, dim) table laid out like HF MarianSinusoidalPositionalEmbedding: sin | cos halves."""
    half = (dim + 1) // 2
    freqs = torch.pow(10000.0, -2.0 * torch.arange(half, dtype=torch.float64) / dim)  # (half,)
    angles = torch.arange(n_pos, dtype=torch.float64)[:, None] * freqs[None, :]  # (n_pos, half)
    return torch.cat([angles.sin(), angles.cos()[:, : dim - half]], dim=1).float()


def sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float, is_causal: bool) -> Tensor:
    """F.scaled_dot_product_attention (B, H, T, Dh) -> (B, H, T, Dh); on CPU always in fp32.

    Under CPU bf16 autocast its bf16 kernel ran the backward 8-15x slower than fp32 (torch
    2.13, Multi30k shapes; docs/benchmarks.md), which cost far more than the casts.
    """
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, mask, dropout_p=p, is_causal=is_causal)
    with torch.autocast("cpu", enabled=False):
        out = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), mask, dropout_p=p, is_causal=is_causal
        )
    return out.to(q.dtype)


class Attention(nn.Module):
    """Multi-head attention via F.scaled_dot_product_attention; separate q/k/v/out projections."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj = Linear(d_model, d_model)
        self.k_proj = Linear(d_model, d_model)
        self.v_proj = Linear(d_model, d_model)
        self.out_proj = Linear(d_model, d_model)

    def heads(self, x: Tensor, proj: nn.Linear) -> Tensor:
        """(B, T, D) -> projected (B, H, T, Dh)."""
        B, T, D = x.shape
        return proj(x).view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)

    def step_weights(self, kv: bool) -> tuple[Tensor | Packed, Tensor]:
        """For decoding steps: the query projection's weight (D, D) and bias (D,) scaled by
        1/sqrt(Dh), so scores need no division, and with kv the key and value projections'
        below them ((3D, D), (3D,)): one GEMM instead of three. The weight is `packed` on
        AVX-512 CPUs (as in Linear); under GPU autocast both are in its dtype, which autocast
        would otherwise cast them to at every step (it caches casts of parameters only). Kept
        until a projection changes."""
        projs = (self.q_proj, self.k_proj, self.v_proj) if kv else (self.q_proj,)
        w = self.q_proj.weight
        pack = packed_dtype() if ONEDNN_AVX512 and packable(w) else None
        gpu_amp = w.is_cuda and torch.is_autocast_enabled("cuda")
        cast = torch.get_autocast_dtype("cuda") if gpu_amp else None
        sources = tuple(t for p in projs for t in (p.weight, p.bias))
        make = functools.partial(self.fuse, projs, pack, cast)
        return kept(self, f"_step_weights_{kv}_{pack}_{cast}", sources, make)

    def fuse(
        self, projs: tuple[nn.Linear, ...], pack: torch.dtype | None, cast: torch.dtype | None
    ) -> tuple[Tensor | Packed, Tensor]:
        """step_weights, made."""
        scale = (self.q_proj.in_features // self.n_heads) ** -0.5
        weight = torch.cat([p.weight for p in projs])
        bias = torch.cat([p.bias for p in projs])
        D = self.q_proj.out_features
        weight[:D] *= scale  # cat made a copy
        bias[:D] *= scale
        if cast is not None:
            return weight.to(cast), bias.to(cast)
        return (weight if pack is None else packed(weight, pack)), bias

    def kv(self, x: Tensor) -> KV:
        """Keys and values of `x` (B, S, D), each (B, H, S, Dh)."""
        return self.heads(x, self.k_proj), self.heads(x, self.v_proj)

    def forward(
        self,
        x: Tensor,
        kv: KV,
        mask: Tensor | None = None,
        is_causal: bool = False,
        residual: Tensor | None = None,
    ) -> Tensor:
        """Queries from x (B, T, D) over kv (B, H, S, Dh); mask (B, 1, 1, S) bool, True = attend.
        -> (B, T, D), plus residual if given (added by out_proj). Decoding steps use `step` and
        `cross_step` instead."""
        p = self.dropout if self.training else 0.0
        out = sdpa(self.heads(x, self.q_proj), *kv, mask, p, is_causal)  # (B, H, T, Dh)
        B, H, T, Dh = out.shape
        out = out.transpose(1, 2).reshape(B, T, H * Dh)  # (B, H, T, Dh) -> (B, T, D)
        return self.out_proj(out, residual)

    def cross_step(
        self,
        x: Tensor,
        state: DecoderState,
        layer: int,
        need_weights: bool = False,
        residual: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention of one new token per row, x (N, 1, D), over the source keys and values in
        `state`, which the G beams of a sentence share: their queries are folded into one
        (G, Dh) block per sentence and head. Plain matmuls and softmax: SDPA's CPU kernel ran
        such one-token steps 1.5-3x slower, and it does not return the weights.
        Returns the output (N, 1, D), plus residual if given, and, only if need_weights, the
        head-averaged weights (N, 1, S)."""
        N, _, D = x.shape
        k, v = state.cross_kv[layer]  # (B, H, S, Dh) each
        B, H, S, Dh = k.shape
        q = linear(x, *state.cross_weights[layer])  # (N, 1, D), N = B * G
        q = q.view(B, N // B, H, Dh).transpose(1, 2)  # (B, H, G, Dh)
        scores = matmul(q, k.transpose(-2, -1))  # (B, H, G, S); q is scaled by 1/sqrt(Dh)
        if state.pad_bias is not None:
            scores += state.pad_bias
        probs = scores.softmax(dim=-1)
        out = matmul(probs, v).transpose(1, 2).reshape(N, 1, D)  # (B, G, H, Dh) -> (N, 1, D)
        weights = probs.mean(dim=1).view(N, 1, S) if need_weights else None
        return self.out_proj(out, residual), weights

    def step(
        self, x: Tensor, state: DecoderState, layer: int, residual: Tensor | None = None
    ) -> Tensor:
        """Self-attention of one new token per row, x (N, 1, D), over the cached steps and
        itself; stores its keys/values in `state`. -> (N, 1, D), plus residual if given."""
        N, _, D = x.shape
        qkv = linear(x, *state.self_weights[layer]).view(N, 3 * D)  # queries | keys | values
        k, v = state.write(layer, qkv[:, D:])  # (B, H, (t + 1) * G, Dh) each
        B, H, G = k.size(0), self.n_heads, state.G
        q = qkv[:, :D].view(B, G, H, D // H).transpose(1, 2)  # (B, H, G, Dh), times Dh^-0.5
        out = beam_attention(q, k, v, state.ancestry)  # (B, H, G, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(N, 1, D), residual)  # (N, 1, D)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for the small batched products of decoding steps (..., m, k) @ (..., k, n); on CPU in
    fp32 without autograd through numpy's matmul (OpenBLAS), which ran the 4-row products of
    beam search 1.5-2.8x faster than torch's bmm (MKL) on an AVX-512 AMD box (docs/
    benchmarks.md, session 11). It takes views, copies nothing, and releases the GIL as torch
    does; each such product runs on one thread, and translate.translator.batch_map puts the
    other cores to work on other batches."""
    if a.device.type != "cpu" or a.dtype != torch.float32 or a.requires_grad or b.requires_grad:
        return a @ b
    return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))


def beam_attention(q: Tensor, k: Tensor, v: Tensor, ancestry: Tensor | None) -> Tensor:
    """Attention of one new query per row over keys/values that never move (beam indirection).

    q (B, H, G, Dh): the G rows (beams) of each sentence, already scaled by 1/sqrt(Dh); k and v
    (B, H, n * G, Dh): the keys and values, slot j * G + g holding what beam g wrote at step j;
    ancestry (B, 1, G, n * G): 0 where a slot holds an ancestor of the row, -inf elsewhere (None
    when G = 1). Every query is scored against all G beams' keys (G times the arithmetic of a
    gathered cache, which is tiny here) and the mask keeps its ancestors', so reordering beams
    never copies the cache. -> (B, H, G, Dh).
    """
    scores = matmul(q, k.transpose(-2, -1))  # (B, H, G, n * G)
    if ancestry is not None:
        scores += ancestry
    return matmul(scores.softmax(dim=-1).to(v.dtype), v)


class Dropout(nn.Dropout):
    """nn.Dropout that is free at p = 0 and, on CPU, draws its mask with rand_like: 2x faster
    forward + backward there than bernoulli_ (measured); elsewhere the native kernel."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or self.p >= 1:
            return super().forward(x)
        return x * torch.rand_like(x).ge_(self.p).div_(1.0 - self.p)  # kept: 1 / (1 - p), else 0


class Layer(nn.Module):
    """One encoder layer, or a decoder layer when `cross=True` (adds encoder_attn)."""

    def __init__(self, cfg: ModelConfig, cross: bool):
        super().__init__()
        d = cfg.d_model
        self.pre_norm = cfg.pre_norm
        self.self_attn = Attention(d, cfg.n_heads, cfg.attn_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        if cross:
            self.encoder_attn = Attention(d, cfg.n_heads, cfg.attn_dropout)
            self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = Linear(d, cfg.d_ff)
        self.fc2 = Linear(cfg.d_ff, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.dropout = Dropout(cfg.dropout)
        self.activation_dropout = Dropout(cfg.activation_dropout)

    def pre(self, x: Tensor, norm: nn.LayerNorm) -> Tensor:
        """A sublayer's input: norm(x) for pre-norm, x for post-LN."""
        return norm(x) if self.pre_norm else x

    def add(self, x: Tensor) -> Tensor | None:
        """The residual x for a sublayer's last linear layer to add in eval, where dropout is
        the identity (one op fewer per sublayer); None in training, where `post` adds it after
        dropout."""
        return None if self.training else x

    def post(self, x: Tensor, out: Tensor, norm: nn.LayerNorm) -> Tensor:
        """The residual sum, x + dropout(out) in training and out in eval (where it holds x
        already, see `add`); post-LN normalizes after the sum."""
        if self.training:
            out = x + self.dropout(out)
        return out if self.pre_norm else norm(out)

    def ffn(self, x: Tensor) -> Tensor:
        h = self.fc1(self.pre(x, self.final_layer_norm), relu=True)
        return self.post(
            x, self.fc2(self.activation_dropout(h), self.add(x)), self.final_layer_norm
        )

    def encode(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x (B, S, D), mask (B, 1, 1, S) -> (B, S, D)."""
        h = self.pre(x, self.self_attn_layer_norm)
        out = self.self_attn(h, self.self_attn.kv(h), mask, residual=self.add(x))
        x = self.post(x, out, self.self_attn_layer_norm)
        return self.ffn(x)

    def decode(self, x: Tensor, cross_kv: KV, mask: Tensor | None) -> Tensor:
        """Teacher forcing: x (B, T, D) the whole target, cross_kv the source's keys/values
        (B, H, S, Dh), mask (B, 1, 1, S) -> (B, T, D)."""
        h = self.pre(x, self.self_attn_layer_norm)
        # Causal, and no key padding mask is needed: the target is right-padded, so a real query
        # never sees a pad key through the causal mask, and pad queries produce garbage that the
        # loss ignores. This keeps the GPU flash kernel usable.
        out = self.self_attn(h, self.self_attn.kv(h), is_causal=True, residual=self.add(x))
        x = self.post(x, out, self.self_attn_layer_norm)
        h = self.pre(x, self.encoder_attn_layer_norm)
        out = self.encoder_attn(h, cross_kv, mask, residual=self.add(x))
        x = self.post(x, out, self.encoder_attn_layer_norm)
        return self.ffn(x)

    def step(
        self, x: Tensor, state: DecoderState, layer: int, need_attn: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """A decoding step: x (N, 1, D), one new token per row (N = sentences x beams), whose
        self-attention reads and extends `state`'s cache. Returns the output (N, 1, D) and (if
        need_attn) the head-averaged cross-attention weights (N, 1, S)."""
        h = self.pre(x, self.self_attn_layer_norm)
        out = self.self_attn.step(h, state, layer, self.add(x))
        x = self.post(x, out, self.self_attn_layer_norm)
        h = self.pre(x, self.encoder_attn_layer_norm)
        out, attn = self.encoder_attn.cross_step(h, state, layer, need_attn, self.add(x))
        x = self.post(x, out, self.encoder_attn_layer_norm)
        return self.ffn(x), attn


class Stack(nn.Module):
    """`layers` plus, for pre-norm only, a final `layer_norm`."""

    def __init__(self, cfg: ModelConfig, n_layers: int, cross: bool):
        super().__init__()
        self.layers = nn.ModuleList(Layer(cfg, cross) for _ in range(n_layers))
        self.layer_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else None

    def norm(self, x: Tensor) -> Tensor:
        return x if self.layer_norm is None else self.layer_norm(x)


def moved(buf: Tensor, n: int, cap: int, sentences: Tensor | None = None) -> Tensor:
    """A new self-attention cache buffer (B', 2, H, cap, Dh) holding the first n slots of buf
    (B, 2, H, _, Dh): of all its sentences, or of `sentences` (B',) only. Copies the n slots,
    not the whole buffer; index_select, not indexing, which took 1.7x longer for 29 sentences
    (one-off timing, session 14)."""
    rows = buf.size(0) if sentences is None else sentences.numel()
    out = buf.new_empty(rows, *buf.shape[1:3], cap, buf.size(4))
    if sentences is None:
        out[..., :n, :] = buf[..., :n, :]
    else:
        torch.index_select(buf[..., :n, :], 0, sentences, out=out[..., :n, :])
    return out


@dataclass
class DecoderState:
    """What incremental decoding keeps. Rows are sentences x beams: row = sentence * G + beam.

    Cross-attention K/V are computed once per sentence and shared by its beams. Self-attention
    K/V are written once, at slot step * G + beam of the sentence's buffer, and never moved:
    `beams` records which beam each row descended from at every step, so a beam reorder only
    rewrites that small table (see beam_attention).
    """

    cross_kv: list[KV]  # per layer, keys and values (B, H, S, Dh)
    pad_bias: Tensor | None  # (B, 1, 1, S): 0 at real source tokens, -inf at pads; None if no pads
    self_kv: list[Tensor | None]  # per layer, keys and values (B, 2, H, cap * G, Dh)
    # per layer, self_attn.step_weights(kv=True) and encoder_attn.step_weights(kv=False)
    self_weights: list[tuple[Tensor | Packed, Tensor]]
    cross_weights: list[tuple[Tensor | Packed, Tensor]]
    beams: Tensor | None = None  # (N, step) long: ancestor beam of each row at each step
    ancestry: Tensor | None = None  # beam_attention's mask for this step, from `beams`
    step: int = 0  # position of the next input token (0 = bos)
    G: int = 1  # rows (beams) per sentence, set by the first decode_step
    out_weight: Packed | None = None  # the output projection, `packed` for CPU inference

    def write(self, layer: int, kv: Tensor) -> KV:
        """Store this step's keys and values of `layer`, kv (N, 2D) (keys | values), in one copy
        -> all so far, (B, H, (step + 1) * G, Dh) each, as views of the layer's buffer (B, 2, H,
        cap * G, Dh) (grown by doubling when full)."""
        B, H, _, Dh = self.cross_kv[layer][0].shape  # (B, H, S, Dh)
        G, t = self.G, self.step
        n = (t + 1) * G
        buf = self.self_kv[layer]
        if buf is None:
            buf = self.self_kv[layer] = kv.new_empty(B, 2, H, 16 * G, Dh)
        elif buf.size(3) < n:
            buf = self.self_kv[layer] = moved(buf, t * G, max(16, 2 * t) * G)
        # (N, 2D) = (B, G, 2, H, Dh) -> (B, 2, H, G, Dh): this step's slots t * G .. n - 1
        buf[..., t * G : n, :] = kv.view(B, G, 2, H, Dh).permute(0, 2, 3, 1, 4)
        return buf[..., :n, :].unbind(1)

    def reorder(self, rows: Tensor, sentences: Tensor | None = None) -> None:
        """Keep rows `rows` (N',) in that order (beam reordering); `sentences` (B',), if given,
        keeps only those sentences (dropping finished ones). Each sentence's rows stay adjacent
        and within it: rows[i * G' : (i + 1) * G'] // G == sentences[i]. G' = N' / B' may exceed
        G only when G is 1 (the first step of beam search fed one row per sentence)."""
        self.beams = self.beams.index_select(0, rows)
        if sentences is not None:
            self.cross_kv = [
                (k.index_select(0, sentences), v.index_select(0, sentences))
                for k, v in self.cross_kv
            ]
            n = self.step * self.G  # slots in use
            self.self_kv = [
                kv if kv is None else moved(kv, n, kv.size(3), sentences) for kv in self.self_kv
            ]
            if self.pad_bias is not None:
                self.pad_bias = self.pad_bias.index_select(0, sentences)
        G = rows.numel() // self.cross_kv[0][0].size(0)
        if G != self.G:  # slot j becomes slots j * G + g for every beam g; `beams` holds 0s
            n = self.step * self.G
            self.self_kv = [
                kv if kv is None else kv[..., :n, :].repeat_interleave(G, dim=3)
                for kv in self.self_kv
            ]
            self.G = G


class Transformer(nn.Module):
    """Encoder-decoder Transformer; `model(src, tgt_in)` -> logits (B, T, V).

    Initialization as in fairseq but for gain 1 everywhere (fairseq: 1/sqrt(2) for q/k/v):
    Xavier-uniform linear weights with zero biases, embedding
    N(0, d_model^-0.5) with a zero pad row, LayerNorms at (1, 0). With the tied output
    projection this makes the initial logits ~N(0, 1), so the initial loss is about ln(V) + 0.5.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.cfg, self.vocab_size, self.pad_id = cfg, vocab_size, pad_id
        self.shared = nn.Embedding(vocab_size, cfg.d_model, padding_idx=pad_id)
        self.encoder = Stack(cfg, cfg.encoder_layers, cross=False)
        self.decoder = Stack(cfg, cfg.decoder_layers, cross=True)
        self.dropout = Dropout(cfg.dropout)
        self.register_buffer(
            "positions", sinusoids(cfg.max_positions, cfg.d_model), persistent=False
        )
        self.reset_parameters()
        self.register_load_state_dict_post_hook(forget_kept)  # for inference tensors: no versions

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.shared.weight, mean=0.0, std=self.cfg.d_model**-0.5)
        with torch.no_grad():
            self.shared.weight[self.pad_id].zero_()

    def num_parameters(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        """tokens (B, T) -> sqrt(D)-scaled embeddings + positions start.., dropout: (B, T, D)."""
        T = tokens.size(1)
        if start + T > self.cfg.max_positions:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds model.max_positions "
                f"({self.cfg.max_positions}); shorten the input or raise max_positions"
            )
        x = self.shared(tokens) * math.sqrt(self.cfg.d_model) + self.positions[start : start + T]
        return self.dropout(x)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S) -> memory (B, S, D) and the padding mask (B, S) bool, True at pad."""
        src_pad = src.eq(self.pad_id)  # (B, S)
        mask = ~src_pad[:, None, None, :]  # (B, 1, 1, S)
        x = self.embed(src)
        for layer in self.encoder.layers:
            x = layer.encode(x, mask)
        return self.encoder.norm(x), src_pad

    def logits(self, x: Tensor, weight: Packed | None = None) -> Tensor:
        """Output projection with the shared embedding: (..., D) -> (..., V); `weight`: its
        copy from `packed` to use instead."""
        return linear(x, self.shared.weight if weight is None else weight)

    def decode(self, tgt_in: Tensor, memory: Tensor, src_pad: Tensor) -> Tensor:
        """Teacher-forced decoder: tgt_in (B, T), memory (B, S, D), src_pad (B, S) -> (B, T, V)."""
        mask = ~src_pad[:, None, None, :]  # (B, 1, 1, S)
        x = self.embed(tgt_in)
        for layer in self.decoder.layers:
            x = layer.decode(x, layer.encoder_attn.kv(memory), mask)
        return self.logits(self.decoder.norm(x))

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """src (B, S), tgt_in (B, T) right-padded int64 -> logits (B, T, V)."""
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)

    def init_state(self, memory: Tensor, src_pad: Tensor) -> DecoderState:
        """Cross-attention K/V of every decoder layer, computed once per sentence.

        memory (B, S, D), src_pad (B, S). decode_step may then feed B * beams rows (beams of a
        sentence adjacent); all beams of a sentence read the same K/V.
        """
        # Contiguous once here, not strided views read by every step's matmuls.
        cross_kv = []
        for layer in self.decoder.layers:
            k, v = layer.encoder_attn.kv(memory)  # (B, H, S, Dh)
            cross_kv.append((k.contiguous(), v.contiguous()))
        pad_bias = None
        if bool(src_pad.any()):  # added to the scores: one in-place op instead of masked_fill
            pad = src_pad[:, None, None, :]  # (B, 1, 1, S)
            pad_bias = memory.new_zeros(pad.shape).masked_fill_(pad, float("-inf"))
        layers = self.decoder.layers
        return DecoderState(
            cross_kv,
            pad_bias,
            self_kv=[None] * len(layers),
            self_weights=[layer.self_attn.step_weights(kv=True) for layer in layers],
            cross_weights=[layer.encoder_attn.step_weights(kv=False) for layer in layers],
            out_weight=self.packed_output(),
        )

    def packed_output(self) -> Packed | None:
        """The output projection `packed` for CPU inference (kept until it changes), or None."""
        weight = self.shared.weight
        if not packable(weight):
            return None
        dtype = packed_dtype()
        return kept(self, f"_packed_output_{dtype}", (weight,), lambda: packed(weight, dtype))

    def decode_step(
        self, tokens: Tensor, state: DecoderState, need_attn: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Feed one token per row, tokens (N,) or (N, 1), N = sentences x beams; updates `state`.

        Returns logits (N, V) and, if need_attn, the last decoder layer's cross-attention
        averaged over heads (N, S) (computed explicitly for that layer only).
        """
        x = self.embed(tokens.view(-1, 1), start=state.step)  # (N, 1, D)
        N = x.size(0)
        if state.beams is None:
            state.G, state.beams = N // state.cross_kv[0][0].size(0), tokens.new_empty((N, 0))
        own = torch.arange(N, device=x.device) % state.G  # (N,) each row writes its own slot
        state.beams = torch.cat([state.beams, own[:, None]], dim=1)  # (N, step + 1)
        if state.G > 1:  # slot j * G + g is an ancestor of row r if beams[r, j] == g
            B, G = N // state.G, state.G
            # (B, G, step + 1, 1) == (G,) -> (B, G, step + 1, G), [b, g, j, h]: beams[row, j] == h
            slots = state.beams.view(B, G, -1, 1) == torch.arange(G, device=x.device)
            state.ancestry = x.new_zeros(slots.shape).masked_fill_(~slots, float("-inf"))
            state.ancestry = state.ancestry.view(B, 1, G, -1)  # (B, 1, G, (step + 1) * G)
        attn = None
        last = len(self.decoder.layers) - 1
        for i, layer in enumerate(self.decoder.layers):
            x, a = layer.step(x, state, i, need_attn and i == last)
            attn = a if a is not None else attn
        state.step += 1
        logits = self.logits(self.decoder.norm(x), state.out_weight)[:, 0]  # (N, V)
        return logits, (attn[:, 0] if attn is not None else None)  # (N, S)
