"""Linear layers through the fastest CPU GEMM at hand: oneDNN, MKL's packed sgemm, bf16 on AMX.

`Linear` is nn.Linear (same parameters, same names) whose forward picks, on an x86 CPU with
oneDNN: for training, oneDNN's GEMMs where MKL is slow (`ONEDNN_TRAIN`); for inference, a copy
of the weight prepacked once and kept until the weight changes (`packed`, `kept`), in MKL's
format on Intel AVX-512 (`MKL_PACK`) or oneDNN's, in bf16 under CPU bf16 autocast where the CPU
multiplies bf16 natively (`ONEDNN_BF16`). Elsewhere (GPU, other CPUs) it is F.linear. Each choice
names the measurement behind it (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import platform
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook


def has_ops(namespace: Any, *names: str) -> bool:
    """Whether this torch build registers these ops: the private ones used here (inductor's) are
    not a public API, so a build without them takes F.linear instead."""
    return all(hasattr(namespace, name) for name in names)


X86 = ("x86_64", "AMD64")  # platform.machine() on x86 CPUs
ONEDNN_X86 = (  # `packable`
    platform.machine() in X86
    and torch.backends.mkldnn.is_available()
    and has_ops(torch.ops.mkldnn, "_linear_pointwise", "_reorder_linear_weight")
)
ONEDNN_AVX512 = ONEDNN_X86 and torch.backends.cpu.get_cpu_capability() == "AVX512"  # `linear`


@functools.cache
def cpuinfo(field: str) -> str | None:
    """The value of the first `field` line of /proc/cpuinfo; None where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            line = next((line for line in f if line.startswith(field)), "")
    except OSError:
        return None
    return line.partition(":")[2].strip()


def intel_cpu() -> bool:
    """Whether this is an Intel CPU: vendor_id in /proc/cpuinfo (Linux), else the processor name
    (Windows names its vendor there; an x86 Mac is Intel)."""
    vendor = cpuinfo("vendor_id")
    if vendor is not None:
        return vendor == "GenuineIntel"
    return "Intel" in platform.processor() or platform.system() == "Darwin"


def avx512_bf16() -> bool:
    """Whether the CPU has AVX512-BF16: torch's private probe where this torch has it (2.5 and
    newer, so looked up softly), else the flag in /proc/cpuinfo."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return probe() if probe else "avx512_bf16" in (cpuinfo("flags") or "").split()


# Training's linears (forward and both gradients) through oneDNN where MKL is slow: on an AVX-512
# AMD box MKL ran them at half oneDNN's speed, on an Intel one as fast or faster (the weight
# gradient 1.05-1.7x), so that there oneDNN training ran 0.94x HF against 1.10x with MKL
# (docs/benchmarks.md, sessions 8 and 15).
INTEL_AVX512 = ONEDNN_AVX512 and intel_cpu()  # /proc/cpuinfo read once
ONEDNN_TRAIN = ONEDNN_AVX512 and not INTEL_AVX512


def onednn_linear_here(x: Tensor, weight: Tensor) -> bool:
    """Whether `linear` takes oneDNN: fp32 on an x86 CPU with AVX-512, autocast off and not under
    torch.compile (whose CPU backend rejects this op with plain weights and picks its own GEMMs);
    under autograd only where ONEDNN_TRAIN says so.

    MKL, which F.linear uses for fp32 on CPU, ran the Multi30k shapes at 160-190 GFLOP/s on an
    AVX-512 AMD box against oneDNN's 300-410 (docs/benchmarks.md, "Session 8"); on AVX2 CPUs it
    was not uniformly faster, so those keep F.linear.
    """
    return (
        ONEDNN_AVX512
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and (ONEDNN_TRAIN or not torch.is_grad_enabled())
    )


def onednn_mm(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weight (out, in).T + bias through oneDNN -> (..., out); x and weight may be
    transposed views, weight a copy from `packed`."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class OneDNNLinear(torch.autograd.Function):
    """F.linear through oneDNN, forward and backward: the three GEMMs of a linear layer."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        return onednn_mm(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.size(-1))  # (M, out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = onednn_mm(g, weight.t()).view(x.shape)  # g @ weight: (..., in)
        if ctx.needs_input_grad[1]:  # as (x.T @ g).T: 343 vs 110 GFLOP/s for g.T @ x at 8000 out
            grad_w = onednn_mm(x.reshape(-1, x.size(-1)).t(), g.t()).t()  # (out, in)
        if ctx.needs_input_grad[2]:  # False when bias is None
            grad_b = g.sum(0)  # (out,)
        return grad_x, grad_w, grad_b


def linear(x: Tensor, weight: Tensor | Packed, bias: Tensor | None = None) -> Tensor:
    """F.linear, through oneDNN where `onednn_linear_here` says so, or through a weight from
    `packed`. (..., in) -> (..., out)."""
    if isinstance(weight, Packed):
        return weight(x, bias)
    if not onednn_linear_here(x, weight):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled():
        return OneDNNLinear.apply(x, weight, bias)
    return onednn_mm(x, weight, bias)  # inference: no autograd node to build


# bf16 inference GEMMs where the CPU multiplies bf16 natively (AVX512-BF16, AMX): through AMX
# oneDNN's packed bf16 GEMMs ran the decoding shapes 2.9-6.4x faster than MKL's packed fp32 at
# 128 rows, 0.5-1.4x at 8 (docs/benchmarks.md, session 17). Elsewhere oneDNN emulates bf16.
ONEDNN_BF16 = ONEDNN_AVX512 and avx512_bf16()


def packed_dtype() -> torch.dtype | None:
    """The dtype inference's `packed` weights take now: fp32 with CPU autocast off, bf16 under
    CPU bf16 autocast where ONEDNN_BF16; None otherwise (autocast's own linears then)."""
    if not torch.is_autocast_enabled("cpu"):
        return torch.float32
    bf16 = ONEDNN_BF16 and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return torch.bfloat16 if bf16 else None


def packable(weight: Tensor) -> bool:
    """Whether inference may multiply by a `packed` copy of `weight`: an fp32 weight on an x86 CPU
    with oneDNN, autograd off (the packed op has no backward), not under torch.compile, and
    `packed_dtype` not None."""
    return (
        ONEDNN_X86
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and packed_dtype() is not None
    )


# Inference GEMMs against a prepacked weight go through MKL's packed sgemm on Intel AVX-512 CPUs:
# there it ran the decoding shapes 1.4-3.3x faster than oneDNN's packed weights at 8 rows and
# 1.05-1.16x at 128 (docs/benchmarks.md, session 16). Elsewhere oneDNN's: on an AMD AVX-512
# box MKL ran fp32 GEMMs at about half oneDNN's speed (session 8); its packed GEMM was not
# measured there.
MKL_PACK = (
    INTEL_AVX512
    and torch.backends.mkl.is_available()
    and has_ops(torch.ops.mkl, "_mkl_linear", "_mkl_reorder_linear_weight")
)


@dataclass(frozen=True)
class Packed:
    """A weight (out, in) and its copy prepacked for CPU inference GEMMs (see `packed`)."""

    weight: Tensor
    data: Tensor  # opaque: MKL's packed format if `mkl`, else oneDNN's (in bf16 if `bf16`)
    mkl: bool
    bf16: bool = False

    def __call__(
        self,
        x: Tensor,
        bias: Tensor | None = None,
        residual: Tensor | None = None,
        relu: bool = False,
    ) -> Tensor:
        """x (..., in) @ weight.T + bias, then relu if asked, then + residual (..., out) if
        given: oneDNN applies either inside the GEMM (a post-op), MKL as in-place ops.

        bf16 weights take x in bf16 or fp32 and return fp32 (the residual's sum made in fp32),
        except after relu without a residual (fc1): bf16 for the next GEMM (fc2) as it is."""
        if self.bf16:  # x.to is x itself when it is bf16 already
            act = "relu" if relu else "none"
            out = torch.ops.mkldnn._linear_pointwise(
                x.to(torch.bfloat16), self.data, bias, act, [], ""
            )
            if residual is not None:
                return residual + out  # fp32, as residual
            return out if relu else out.float()
        if self.mkl:  # takes the packed GEMM when its last argument is x's row count, as here
            rows = x.numel() // x.size(-1)
            out = torch.ops.mkl._mkl_linear(x, self.data, self.weight, bias, rows)
        elif residual is None:
            act = "relu" if relu else "none"
            return torch.ops.mkldnn._linear_pointwise(x, self.data, bias, act, [], "")
        elif not relu:
            add = torch.ops.mkldnn._linear_pointwise.binary
            return add(x, residual, self.data, bias, "add")
        else:  # oneDNN fuses one post-op here
            out = onednn_mm(x, self.data, bias)
        out = out.relu_() if relu else out
        return out if residual is None else out.add_(residual)


def packed(weight: Tensor, dtype: torch.dtype = torch.float32) -> Packed:
    """weight (out, in) with a copy prepacked for about 128 input rows (32 sentences x beam 4),
    right for any number (MKL's, packed for 128, gave F.linear's output for 1 to 2,048 rows; see
    `packable` for when to use it); in bf16 (oneDNN's) if dtype is torch.bfloat16.

    On an AMD AVX2 box oneDNN's packed output projection of beam search (128 x 256 @ 256 x 8000)
    ran 1.6-1.7x faster than F.linear's MKL; on an AVX-512 one the decoder's weights, read from
    memory as between decoding steps, 5-33% faster than plain ones through oneDNN at 128 rows and
    2x at 4 rows (docs/benchmarks.md, session 9). MKL's packed weights: see MKL_PACK.
    """
    if dtype == torch.bfloat16:
        data = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype), 128)
        return Packed(weight, data, mkl=False, bf16=True)
    if MKL_PACK:
        return Packed(weight, torch.ops.mkl._mkl_reorder_linear_weight(weight, 128), mkl=True)
    return Packed(weight, torch.ops.mkldnn._reorder_linear_weight(weight, 128), mkl=False)


KEPT: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple]] = weakref.WeakKeyDictionary()
KEPT_LOCK = threading.RLock()


def kept(owner: nn.Module, name: str, sources: tuple[Tensor, ...], make: Callable[[], Any]) -> Any:
    """make(), kept for `owner` as `name` until a tensor in `sources` changes, in place (an
    optimizer step, load_state_dict) or its storage (.to()): for inference copies of parameters
    (fused, scaled, packed). Writes through `.data` go unseen, as do in-place edits of inference
    tensors (which have no version counter) but for load_state_dict, after which `forget_kept`
    runs (Transformer registers it); fused optimizers are seen (_fused_step_bumps_versions). The
    kept `sources` cannot free their memory for another tensor to reuse meanwhile. Under
    autograd it always calls make(): a graph must not outlive its step. Kept in KEPT, not on the
    module, so that pickling or copying a module never meets a packed (opaque) tensor, and a
    copy makes its own."""
    if torch.is_grad_enabled():
        return make()
    # inference tensors (a model loaded under torch.inference_mode()) have no version counter
    stamp = [(t.data_ptr(), None if t.is_inference() else t._version) for t in sources]
    with KEPT_LOCK:  # threads decoding at once (translate.translator.batch_map) make it once
        store = KEPT.setdefault(owner, {})
        hit = store.get(name)
        if hit is None or hit[1] != stamp:
            hit = store[name] = (sources, stamp, make())
    return hit[2]


def forget_kept(module: nn.Module, *hook_args: Any) -> None:
    """Drop the copies kept for `module` and its submodules (a load_state_dict post hook)."""
    with KEPT_LOCK:
        for m in module.modules():
            KEPT.pop(m, None)


def _fused_step_bumps_versions(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """Fused optimizer kernels (fused=True, GradScaler's step too) write the parameters without
    bumping their version counters, by which `kept` sees a change: bump them after each step."""
    for group in optimizer.param_groups:
        if group.get("fused"):
            for p in group["params"]:  # one at a time: torch < 2.5 takes no list
                torch.autograd.graph.increment_version(p)


register_optimizer_step_post_hook(_fused_step_bumps_versions)


class Linear(nn.Linear):
    """nn.Linear (same parameters and names) whose forward is `linear`; for inference on an
    AVX-512 CPU (fp32, or bf16 under autocast: see `packed_dtype`) with a `packed` copy of the
    weight, kept until the weight changes."""

    def forward(self, x: Tensor, residual: Tensor | None = None, relu: bool = False) -> Tensor:
        """x (..., in) -> (..., out), then relu if asked, then + residual (..., out) if given
        (with a packed weight, as Packed does)."""
        if ONEDNN_AVX512 and x.device.type == "cpu" and packable(self.weight):
            dtype = packed_dtype()
            make = functools.partial(packed, self.weight, dtype)
            weight = kept(self, f"_packed_{dtype}", (self.weight,), make)
            return weight(x, self.bias, residual, relu)
        out = linear(x, self.weight, self.bias)
        out = F.relu(out) if relu else out
        return out if residual is None else out + residual
