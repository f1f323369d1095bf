"""One training update and one validation pass, as pure functions of their arguments.

`train_step` turns k micro-batches into one AdamW update (label-smoothed loss, autocast, a
GradScaler under fp16, DDP gradient sync on the last micro-batch, an update skipped on every
rank when any rank's loss or gradient is non-finite); `lr_at` is the schedule; `pick_precision`
and `maybe_compile` choose how it runs on this device; `validate` gives valid NLL and BLEU.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import sacrebleu
import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch import Tensor, nn

from data_prep import PAD_ID, collate, never_emitted, sorted_batches
from data_prep.batching import SplitData
from translate.checkpoint import rng_state, set_rng_state
from translate.config import Config, TrainConfig
from translate.cpu_gemm import INTEL_AVX512, ONEDNN_BF16, ONEDNN_X86
from translate.loss import smoothed_loss
from translate.model import Transformer
from translate.search import greedy_search

Batch = tuple[Tensor, Tensor, Tensor, int]  # src (B,S), tgt_in (B,T), tgt_out (B,T), target tokens


def lr_at(
    step: int, d_model: int, warmup: int, scale: float = 1.0, decay: str = "rsqrt", total: int = 0
) -> float:
    """Paper schedule: scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), step from 1.

    decay 'linear' / 'cosine' keep the linear warmup to the same peak, then fall to 0 at step
    `total` instead of as step^-0.5 (better for a fixed budget of updates). A run of fewer than
    2 * warmup updates (max_time on a slow machine) peaks, lower, halfway: it still ends at 0.
    """
    step = max(step, 1)
    if decay == "rsqrt":
        return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
    top = max(min(warmup, total // 2), 1)  # the peak's step
    ramp = scale * d_model**-0.5 * warmup**-1.5  # lr per step of the warmup
    if step <= top:
        return ramp * step
    left = max(total - step, 0) / max(total - top, 1)  # 1 at the peak, 0 at `total`
    peak = ramp * top
    return peak * (left if decay == "linear" else 0.5 * (1 - math.cos(math.pi * left)))


def pick_precision(choice: str, device: torch.device) -> tuple[torch.dtype | None, str, str]:
    """-> (autocast dtype or None for fp32, one-line reason, a warning where the choice is slow
    here, else ''). Enables TF32 on capability >= 8.0 unless fp32 was asked for by name (then
    matmuls stay exact fp32)."""
    cap = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    if cap and cap >= (8, 0):  # TF32 matmuls for whatever stays in fp32
        torch.set_float32_matmul_precision("highest" if choice == "fp32" else "high")
    if choice == "auto":
        if cap is None:
            fast = cpu_fast_bf16()
            hint = f"; this CPU has {fast}: train.precision=bf16 trains faster" if fast else ""
            return None, f"precision fp32 (auto: no CUDA device{hint})", ""
        if cap >= (8, 0):
            why = f"precision bf16 + TF32 (auto: compute capability {cap[0]}.{cap[1]})"
            return torch.bfloat16, why, ""
        why = f"auto: compute capability {cap[0]}.{cap[1]} has no fast bf16"
        return torch.float16, f"precision fp16 + GradScaler ({why})", ""
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]
    why, warning = f"precision {choice} (train.precision={choice})", ""
    if choice == "fp16" and cap is None:  # runs (the tests take the GradScaler path so), slowly
        warning = "CPUs have no fast fp16, so it trains many times slower than fp32"
    if choice == "bf16" and cap is None and ONEDNN_X86 and not ONEDNN_BF16:
        # With neither, torch falls back to a reference bf16 GEMM (docs/benchmarks.md, session 23)
        warning = (
            "this CPU has neither AVX512-BF16 nor AMX, so bf16 matmuls run many times slower "
            "than fp32: train.precision=fp32 trains faster"
        )
    return dtype, why, warning


def cpu_fast_bf16() -> str:
    """What makes bf16 training faster than fp32 on this CPU, or '' where it was not measured to:
    AMX tiles (Intel Xeon 4th generation and newer), or AVX512-BF16 on an AMD CPU (Zen 4: steps
    1.57x as fast, Zen 5: 2.1x). Intel's AVX512-BF16 without AMX ran bf16 GEMMs slower than fp32
    (docs/benchmarks.md)."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, so looked up softly
    if amx and amx():
        return "AMX"
    return "AVX512-BF16" if ONEDNN_BF16 and not INTEL_AVX512 else ""


def maybe_compile(net: nn.Module, mode: str, device: torch.device) -> tuple[nn.Module, str]:
    """torch.compile(dynamic=True) on CUDA >= 7.0 (or anywhere with mode 'on'); eager otherwise."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return net, f"eager (train.compile={mode})"
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (7, 0):
        return net, "note: torch.compile needs compute capability >= 7.0 (Triton); running eager"
    # Without this, sizes that happen to be equal share one symbol: a first batch with as many
    # target as source tokens compiles a graph for that case alone, and the next batch compiles
    # the whole forward and backward again
    from torch.fx.experimental import _config as fx_config  # private, so set softly

    if hasattr(fx_config, "use_duck_shape"):
        fx_config.use_duck_shape = False
    try:
        return torch.compile(net, dynamic=True), "torch.compile (dynamic shapes)"
    except Exception as e:  # noqa: BLE001 - any compile failure falls back to eager
        return net, f"note: torch.compile failed ({str(e).splitlines()[0]}); running eager"


def guarded_step(net, eager, optimizer, step, *args) -> tuple[object, nn.Module, str | None]:
    """step(net, *args) for a compiled net, which compiles at its first call and recompiles on
    new guards (a batch of one sentence); if that fails, the same step on `eager` from the same
    RNG state -> (result, net to go on with, note)."""
    rng = rng_state()
    try:
        return step(net, *args), net, None
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - any compile failure falls back to eager
        optimizer.zero_grad(set_to_none=True)
        set_rng_state(rng)
        note = f"note: torch.compile failed ({str(e).splitlines()[0][:200]}); eager"
        return step(eager, *args), eager, note


def build_optimizer(model: nn.Module, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW(betas, eps); weight decay on matrices only; fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": params, "weight_decay": 0.0}]
    if tc.weight_decay > 0:
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": tc.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    fused = True if device.type == "cuda" else None
    return torch.optim.AdamW(groups, lr=0.0, betas=tc.betas, eps=tc.eps, fused=fused)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train_step(
    net: nn.Module,
    micro: list[Batch],
    optimizer: torch.optim.Optimizer,
    lr: float,
    tc: TrainConfig,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ddp: nn.Module | None = None,
    ntok: Tensor | int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One update from k micro-batches -> (summed NLL, grad norm, update-was-finite) as tensors.

    The smoothed loss is summed per micro-batch and divided by the target tokens of the whole
    update (all ranks: `ntok`, update_tokens' where given), so k micro-batches equal one
    k-times-larger batch.
    """
    device = micro[0][0].device
    world = dist.get_world_size() if ddp is not None else 1
    if ntok is None:
        ntok = update_tokens(micro, ddp)
    nll_sum = torch.zeros((), device=device)
    for i, (src, tgt_in, tgt_out, _) in enumerate(micro):
        sync = ddp is None or i == len(micro) - 1
        with contextlib.nullcontext() if sync else ddp.no_sync():
            with _autocast(device, amp_dtype):
                logits = net(src, tgt_in)  # (B, T, V)
            nll, loss = smoothed_loss(logits, tgt_out, tc.label_smoothing)
            del logits  # (B, T, V): not needed by the backward, nor kept through the next forward
            scaled = loss * world / ntok  # DDP averages over ranks: undo it
            (scaler.scale(scaled) if scaler else scaled).backward()
        nll_sum += nll.detach()
    nll_bad = (~torch.isfinite(nll_sum)).float()
    if ddp is not None:  # skip on every rank or none: the NLL is this rank's own
        dist.all_reduce(nll_bad, op=dist.ReduceOp.MAX)
    return nll_sum, *_optimizer_step(optimizer, lr, tc, scaler, nll_bad == 0)


def update_tokens(micro: list[Batch], ddp: nn.Module | None) -> Tensor | int:
    """The target tokens of the update: this rank's micro-batches, summed over all ranks."""
    ntok: Tensor | int = sum(b[3] for b in micro)
    if ddp is not None:
        ntok = torch.full((), float(ntok), device=micro[0][0].device)  # a fill: no H2D copy
        dist.all_reduce(ntok)  # no host sync: used as a device divisor
    return ntok


def _optimizer_step(
    optimizer: torch.optim.Optimizer,
    lr: float,
    tc: TrainConfig,
    scaler: torch.amp.GradScaler | None,
    nll_finite: Tensor,
) -> tuple[Tensor, Tensor]:
    """Clip, then step unless the gradients are non-finite (decided on device when fused) ->
    (grad norm, whether the update counts as made: under fp16 whether the loss was finite, as
    the scaler skips overflowing gradients itself, lowering its scale, and that is no fault)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if scaler is not None:  # it skips non-finite gradients only: a NaN in one for a bad loss too
        grad = next(p.grad for p in params if p.grad is not None)
        grad.view(-1)[:1].mul_(torch.where(nll_finite, 1.0, math.nan))
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, tc.clip_norm or math.inf)
    finite = torch.isfinite(grad_norm) & nll_finite
    fused = bool(optimizer.param_groups[0].get("fused"))
    if scaler is not None:  # fp16: the scaler skips non-finite steps and lowers its scale
        scaler.step(optimizer)
        scaler.update()
    elif fused:
        optimizer.found_inf = (~finite).float()  # fused AdamW skips the update on device
        optimizer.step()
        del optimizer.found_inf
    elif finite.item():  # CPU: no pipeline to stall
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.detach(), nll_finite if scaler is not None else finite


@torch.no_grad()
def validate(
    model: Transformer,
    valid: SplitData,
    refs: list[str],
    tokenizer: Tokenizer,
    cfg: Config,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> dict[str, float]:
    """Valid NLL per target token, perplexity, and greedy sacreBLEU on the first sentences."""
    model.eval()
    nll, ntok = torch.zeros((), device=device), 0
    most = cfg.model.max_positions - 1  # valid/test stay verbatim: longer pairs are cut here
    lens = np.minimum(np.maximum(np.asarray(valid.src_lens), np.asarray(valid.tgt_lens)), most)
    for idx in sorted_batches(lens + 1, cfg.train.max_tokens):
        pairs = [(s[:most], t[:most]) for s, t in (valid[i] for i in idx)]
        src, tgt_in, tgt_out = (t.to(device) for t in collate(pairs))
        with _autocast(device, amp_dtype):
            logits = model(src, tgt_in)  # (B, T, V)
        nll += smoothed_loss(logits, tgt_out, 0.0)[0]  # the same NLL as training logs
        ntok += int((tgt_out != PAD_ID).sum())
    out = {"valid_loss": nll.item() / max(ntok, 1)}
    out["valid_ppl"] = math.exp(min(out["valid_loss"], 50.0))
    n = min(cfg.train.valid_bleu_sentences, len(valid), len(refs))
    if n > 0:
        hyps = [""] * n
        src_lens = np.minimum(np.asarray(valid.src_lens[:n]), most)
        for idx in sorted_batches(src_lens + 1, cfg.train.max_tokens // 2):
            src = collate([(valid[i][0][:most], ()) for i in idx])[0].to(device)
            with _autocast(device, amp_dtype):
                lengths = cfg.decode.max_len_a, cfg.decode.max_len_b
                ids = greedy_search(model, src, *lengths, never=never_emitted(tokenizer))
            for i, toks in zip(idx, ids, strict=True):
                hyps[i] = tokenizer.decode(toks)
        out["valid_bleu"] = sacrebleu.corpus_bleu(hyps, [refs[:n]]).score
    model.train()
    return out
