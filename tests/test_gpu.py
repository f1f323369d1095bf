"""On a CUDA GPU: the trainer's GPU paths (bf16 + TF32 + compile, fp16 + GradScaler, fused
AdamW), a run moving between CPU and GPU, updates that never wait for the GPU, attention on the
fused SDPA kernels, and decoding. Skipped without CUDA; `bash scripts/gpu_check.sh` runs them
with the GPU benchmark."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import SENTENCES, stop_flag_reads
from torch.nn.attention import SDPBackend, sdpa_kernel

from data_prep import collate
from translate.model import Transformer
from translate.search import beam_search
from translate.step import build_optimizer, train_step
from translate.train import Trainer, train
from translate.translator import Translator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


def capability() -> tuple[int, int]:
    return torch.cuda.get_device_capability(CUDA)


def amp_dtype() -> torch.dtype:
    """What train.precision=auto picks here: bf16 from compute capability 8.0, else fp16."""
    return torch.bfloat16 if capability() >= (8, 0) else torch.float16


def logged(cfg) -> list[dict]:
    lines = (Path(cfg.train.out_dir) / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def cuda_batch(n: int, seed: int) -> tuple:
    """n random pairs of 2-11 tokens from a 64-word vocabulary, padded, on the GPU."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(2, 12, (n, 2), generator=g).tolist()
    pairs = [[torch.randint(4, 64, (k,), generator=g).numpy() for k in ab] for ab in lens]
    src, tgt_in, tgt_out = (t.to(CUDA) for t in collate(pairs))
    return src, tgt_in, tgt_out, int((tgt_out != 0).sum())


@pytest.mark.parametrize(
    ("precision", "compile_mode"),
    [("auto", "auto"), ("fp16", "auto"), ("fp32", "off")],  # fp16 + compile: a T4's path
)
def test_training_validates_saves_and_resumes(tiny_cfg, capsys, precision, compile_mode):
    sets = ["train.device=cuda", f"train.precision={precision}", f"train.compile={compile_mode}"]
    sets += ["train.max_steps=4", "train.valid_every=2", "train.save_every=2"]
    cfg = tiny_cfg(*sets)
    train(cfg)
    out = capsys.readouterr().out
    auto = "bf16 + TF32" if capability() >= (8, 0) else "fp16 + GradScaler"
    picked = auto if precision == "auto" else precision
    assert f"precision {picked} (" in out, out
    if compile_mode == "auto":  # on from compute capability 7.0; a fallback would say so
        assert ("torch.compile (dynamic shapes)" in out) == (capability() >= (7, 0)), out
        assert "torch.compile failed" not in out, out
    cfg.train.max_steps = 6
    train(cfg)
    assert "resumed from" in capsys.readouterr().out
    log = logged(cfg)
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) for r in log)
    if not picked.startswith("fp16"):  # fp16: the scaler skips updates whose gradients overflow
        assert all(math.isfinite(r["grad_norm"]) for r in log)
    assert [r["step"] for r in log if "valid_bleu" in r] == [2, 4, 6]
    best = Translator.load(Path(cfg.train.out_dir) / "best", device="cpu")
    assert len(best.translate(["der Hund ist groß", ""])) == 2


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16-scaler"])
def test_validation_decodes_with_the_weights_fused_adamw_wrote(tiny_cfg, fp16):
    """Fused AdamW leaves the parameters' version counters alone, also under a GradScaler (a
    T4's path); the decoder's kept step weights (cpu_gemm.kept) must follow the update all the
    same, as in validation."""
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = Transformer(cfg.model, 64, pad_id=0).to(CUDA)
    optimizer = build_optimizer(model, cfg.train, CUDA)
    assert optimizer.param_groups[0]["fused"]
    dtype = torch.float16 if fp16 else None
    scaler = torch.amp.GradScaler("cuda", init_scale=256.0) if fp16 else None  # no overflow
    src = cuda_batch(6, seed=1)[0]
    beam_search(model, src, beam=2, max_len_b=8)  # keeps step weights made from these weights
    q_weight = model.decoder.layers[0].self_attn.q_proj.weight.detach().clone()
    for seed in range(3):
        batch = [cuda_batch(8, seed=10 + seed)]
        train_step(model, batch, optimizer, 1e-2, cfg.train, dtype, scaler)
    assert not torch.equal(q_weight, model.decoder.layers[0].self_attn.q_proj.weight)
    got = beam_search(model, src, beam=2, max_len_b=8)
    want = beam_search(copy.deepcopy(model), src, beam=2, max_len_b=8)  # a copy keeps nothing
    assert [[h[0] for h in s] for s in got] == [[h[0] for h in s] for s in want]
    for s, t in zip(got, want, strict=True):
        assert [h[1] for h in s] == pytest.approx([h[1] for h in t], abs=1e-5)


def test_a_run_moves_between_cpu_and_gpu(tiny_cfg, capsys):
    """AdamW state saved on the CPU goes on under fused CUDA AdamW, and back again."""
    cfg = tiny_cfg("train.device=cpu", "train.compile=off", "train.max_steps=2")
    train(cfg)
    for device, steps in (("cuda", 4), ("cpu", 6)):
        cfg.train.device, cfg.train.max_steps = device, steps
        train(cfg)
    assert capsys.readouterr().out.count("resumed from") == 2
    log = logged(cfg)
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r)


def test_an_update_never_waits_for_the_gpu(tiny_cfg):
    """Between log steps an update makes no host sync (no .item(), no boolean indexing)."""
    trainer = Trainer(tiny_cfg("train.device=cuda", "train.compile=off"))

    def update() -> None:
        micro = [trainer.batches.next() for _ in range(trainer.accum)]
        trainer.step += 1
        trainer._update(micro)

    update(), update()  # first calls: cuBLAS handles, allocator pools
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            update()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert math.isfinite(trainer.interval.nll.item())


def test_attention_runs_on_fused_sdpa_kernels(tiny_cfg):
    """Training's attention never falls back to SDPA's math kernel: memory-efficient attention
    where a padding mask is given, flash attention (compute capability >= 8.0) for the decoder's
    causal self-attention."""
    torch.manual_seed(0)
    model = Transformer(tiny_cfg().model, 64, pad_id=0).to(CUDA).train()
    src, tgt_in, tgt_out, _ = cuda_batch(8, seed=2)
    assert src.eq(0).any(), "the batch should hold padding"
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    with sdpa_kernel(fused), torch.autocast("cuda", dtype=amp_dtype()):
        logits = model(src, tgt_in)  # (B, T, V)
    logits.float().sum().backward()
    if capability() >= (8, 0):
        attn = model.decoder.layers[0].self_attn
        x = torch.randn(4, 9, attn.q_proj.in_features, device=CUDA)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", torch.bfloat16):
            attn(x, attn.kv(x), is_causal=True).float().sum().backward()


def test_decoding_step_weights_are_kept_in_the_autocast_dtype(tiny_cfg):
    """Autocast caches its casts of parameters only: the fused q/k/v step weights are made in
    its dtype once, not cast again at every decoding step."""
    model = Transformer(tiny_cfg().model, 64, pad_id=0).to(CUDA).eval()
    attn = model.decoder.layers[0].self_attn
    with torch.no_grad(), torch.autocast("cuda", dtype=amp_dtype()):
        weight, bias = attn.step_weights(kv=True)
        assert weight.dtype == bias.dtype == amp_dtype()
        assert attn.step_weights(kv=True)[0] is weight  # kept, not made again
    with torch.no_grad():
        assert attn.step_weights(kv=True)[0].dtype == torch.float32


def test_gpu_decoding_matches_the_cpu(tiny_checkpoint):
    """fp32 on the GPU (TF32 off) finds what the CPU finds; `auto` (bf16 where the GPU has it)
    keeps one output line per input line."""
    inputs = [*SENTENCES, "", "Hund " * 400]
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        gpu = Translator.load(tiny_checkpoint, device="cuda", precision="fp32")
        got = gpu.translate(inputs, beam=4, n_best=2)
    finally:
        torch.set_float32_matmul_precision(precision)
    want = Translator.load(tiny_checkpoint, device="cpu").translate(inputs, beam=4, n_best=2)
    for g, w in zip(got, want, strict=True):
        assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=1e-3)
    auto = Translator.load(tiny_checkpoint, device="cuda")
    assert auto.dtype == (torch.bfloat16 if capability() >= (8, 0) else None)
    out = auto.translate(inputs)
    assert len(out) == len(inputs) and out[len(SENTENCES)] == ""


def test_the_per_step_stop_flags_go_through_pinned_memory(tmp_path):
    """Stops._agreed_between_logs on CUDA (NCCL, one rank): the flags' copy to pinned host
    memory is read two steps later, as on the CPU."""
    reads = stop_flag_reads("cuda", "nccl", tmp_path / "init", "signal")
    assert reads == [None, None, None, "received SIGTERM"]
