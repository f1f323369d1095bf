"""Side-by-side model benchmarks: our Transformer vs HF MarianMTModel vs CTranslate2, and GPU MFU.

Sections of scripts/benchmark.py (`--only train|decode|gpu`):

train:  training tokens/s, ours vs a MarianMTModel with the same dimensions, initial weights,
        batches (Multi30k token batches), threads and train step (translate.step.train_step).
decode: beam-4 sentences/s and target tokens/s on Multi30k test2016: ours (batched, as many
        batches at once as threads, and one at a time) vs HF generate vs CTranslate2 (fp32 with
        intra- or inter-batch threads; int8 for reference), all on the same weights.
gpu:    the base model on WMT14-shaped synthetic batches (CUDA only): tokens/s, peak memory, MFU.
Needs the optional extra `pip install -e .[bench]` (transformers, ctranslate2).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Before torch: the package's OpenMP and malloc settings (translate/__init__.py) only take effect
# if they precede torch's loading, and every engine here shares them, as the CLI's users do.
import translate  # noqa: E402, F401, I001

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from data_prep import (  # noqa: E402
    EOS_ID,
    PAD_ID,
    DataError,
    collate,
    load_split,
    load_tokenizer,
    prepare,
    token_batches,
)
from data_prep.tokenizer import round_vocab  # noqa: E402
from translate.config import Config, load_config  # noqa: E402
from translate.cpu_gemm import ONEDNN_BF16  # noqa: E402
from translate.model import Transformer  # noqa: E402

Batch = tuple[Tensor, Tensor, Tensor, int]  # src (B,S), tgt_in (B,T), tgt_out (B,T), target tokens
TOKENS = "tokens/s counts real (non-pad) source + target tokens; tgt_tok/s target tokens only"


def add_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model benchmarks (train, decode, gpu)")
    g.add_argument("--config", default="configs/multi30k.yaml", help="train/decode: model + data")
    g.add_argument("--threads", type=int, default=2, help="CPU threads for every engine")
    g.add_argument("--steps", type=int, default=20, help="train: timed steps per model")
    g.add_argument("--warmup", type=int, default=3, help="train/gpu: untimed steps first")
    g.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="train: CPU autocast for both engines (bf16 pays off on CPUs with AMX)",
    )
    g.add_argument("--checkpoint", help="decode: weights to use (default: random weights)")
    g.add_argument("--sentences", type=int, default=200, help="decode: first N test sentences")
    g.add_argument("--batch-size", type=int, default=32, help="decode: sentences per batch")
    g.add_argument("--max-len", type=int, default=50, help="decode: most output tokens")
    g.add_argument("--rounds", type=int, default=3, help="decode: passes; each engine's best")
    g.add_argument(
        "--profile", action="store_true", help="train/decode: also print where ours spends time"
    )
    g.add_argument("--gpu-config", default="configs/wmt14_base.yaml")
    g.add_argument("--gpu-steps", type=int, default=50)
    g.add_argument("--gpu-max-tokens", type=int, default=12288)


def bench_config(path: str) -> Config:
    """The experiment config with relative data paths resolved against the repository root."""
    cfg = load_config(ROOT / path if not Path(path).is_absolute() else path)
    for key in ("train", "valid", "test", "dir"):
        value = getattr(cfg.data, key)
        if value and not Path(value).is_absolute():
            setattr(cfg.data, key, str(ROOT / value))
    return cfg


def prepared(cfg: Config) -> Path | None:
    """data_prep.prepare(cfg.data) (reused when already there), or None if it cannot run."""
    try:
        return prepare(cfg.data)
    except (DataError, OSError) as e:
        print(f"note: cannot prepare {cfg.data.dir} ({e}); using synthetic data", file=sys.stderr)
        return None


# ------------------------------------------------------------------------------------ train


def real_batches(data_dir: Path, max_tokens: int, n: int) -> list[Batch]:
    """The first n training micro-batches of epoch 0, exactly as translate.train builds them."""
    split = load_split(data_dir, "train")
    src, tgt = np.asarray(split.src_lens) + 1, np.asarray(split.tgt_lens) + 1
    chosen = token_batches(src, tgt, max_tokens, seed=1, epoch=0)[:n]
    return [(*collate([split[i] for i in idx]), int(tgt[idx].sum())) for idx in chosen]


def synthetic_batches(
    vocab: int, max_tokens: int, n: int, mean_len: float, max_len: int, seed: int = 1
) -> list[Batch]:
    """n token batches of random ids, lengths log-normal around mean_len (src/tgt correlated)."""
    rng = np.random.default_rng(seed)
    count = max(20 * n * max_tokens // int(mean_len), 1000)
    src = np.clip(rng.lognormal(np.log(mean_len) - 0.18, 0.6, count), 1, max_len - 1).astype(int)
    tgt = np.clip(src * rng.lognormal(0.0, 0.15, count), 1, max_len - 1).astype(int)
    chosen = token_batches(src + 1, tgt + 1, max_tokens, seed=seed, epoch=0)[:n]
    batches = []
    for idx in chosen:
        pairs = [(rng.integers(4, vocab, src[i]), rng.integers(4, vocab, tgt[i])) for i in idx]
        batches.append((*collate(pairs), int(tgt[idx].sum() + len(idx))))
    return batches


class MarianAsOurs(nn.Module):
    """MarianMTModel with our call signature: (src, tgt_in) -> logits, so train_step runs both."""

    def __init__(self, marian: nn.Module):
        super().__init__()
        self.marian = marian

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        mask = src.ne(PAD_ID)
        return self.marian(
            input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in, use_cache=False
        ).logits


def print_profile(title: str, fn) -> None:
    """Run fn() under torch.profiler; print the ops that took the most self CPU time."""
    with torch.profiler.profile() as prof:
        fn()
    print(f"== profile: {title}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def count_tokens(batches: list[Batch]) -> tuple[int, int]:
    """Real (non-pad) source and target tokens, target counted with its eos."""
    return sum(int(b[0].ne(PAD_ID).sum()) for b in batches), sum(b[3] for b in batches)


def bench_train(args: argparse.Namespace) -> dict:
    """Training tokens/s, ours vs MarianMTModel: same weights, batches, threads and step code."""
    from translate.export import to_marian
    from translate.step import build_optimizer, train_step

    torch.set_num_threads(args.threads)
    cfg = bench_config(args.config)
    data_dir, n = prepared(cfg), args.warmup + args.steps
    vocab = load_tokenizer(data_dir).get_vocab_size() if data_dir else round_vocab(8000)
    batches = (
        real_batches(data_dir, cfg.train.max_tokens, n)
        if data_dir
        else synthetic_batches(vocab, cfg.train.max_tokens, n, 13.0, 100)
    )
    torch.manual_seed(cfg.train.seed)
    ours = Transformer(cfg.model, vocab, PAD_ID).train()
    hf = MarianAsOurs(to_marian(ours)).train()  # a copy of the same initial weights
    nets = {"ours": ours, "hf": hf}
    opts = {k: build_optimizer(m, cfg.train, torch.device("cpu")) for k, m in nets.items()}
    warm, timed = batches[: args.warmup], batches[args.warmup :]
    amp = torch.bfloat16 if args.precision == "bf16" else None
    for name, net in nets.items():
        for b in warm:
            train_step(net, [b], opts[name], 1e-4, cfg.train, amp)
    seconds = dict.fromkeys(nets, 0.0)
    block = 2  # alternate ours / hf every `block` steps: both see the same machine load
    for start in range(0, len(timed), block):
        for name, net in nets.items():
            t0 = time.perf_counter()
            for b in timed[start : start + block]:
                train_step(net, [b], opts[name], 1e-4, cfg.train, amp)
            seconds[name] += time.perf_counter() - t0
    if args.profile:
        steps = timed[:5]
        opt = opts["ours"]
        print_profile(
            f"ours, {len(steps)} train steps",
            lambda: [train_step(ours, [b], opt, 1e-4, cfg.train, amp) for b in steps],
        )
    src_tok, tgt_tok = count_tokens(timed)
    rows = [
        {
            "engine": name,
            "steps": len(timed),
            "seconds": round(s, 2),
            "tok/s": round((src_tok + tgt_tok) / s),
            "tgt_tok/s": round(tgt_tok / s),
        }
        for name, s in seconds.items()
    ]
    return {
        "data": "multi30k" if data_dir else "synthetic",
        "model": dataclasses.asdict(cfg.model) | {"vocab": vocab, "params": ours.num_parameters()},
        "threads": args.threads,
        "precision": args.precision,
        "load_avg_1m": os.getloadavg()[0],  # > cores: other processes compete, numbers are noisy
        "max_tokens": cfg.train.max_tokens,
        "hf_attention": hf.marian.config._attn_implementation,
        "note": TOKENS + "; step = forward + backward + AdamW (translate.step.train_step)",
        "rows": rows,
        "train_speedup_vs_hf": round(seconds["hf"] / seconds["ours"], 3),
    }


# ----------------------------------------------------------------------------------- decode


def source_ids(cfg: Config, tokenizer, n: int, max_src: int) -> list[list[int]]:
    """The first n non-empty test sources, cleaned and tokenized as translate.Translator does."""
    from data_prep.clean import clean_line

    path = Path(f"{cfg.data.test}.{cfg.data.src_lang}")
    lines = [clean_line(s) for s in path.read_text(encoding="utf-8").split("\n")]
    lines = [s for s in lines if s][:n]
    return [e.ids[:max_src] for e in tokenizer.encode_batch(lines, add_special_tokens=False)]


def padded_src(seqs: list[list[int]]) -> Tensor:
    """(B, S) int64: each row ids + [eos], right-padded (as collate builds sources)."""
    return collate([(seq, ()) for seq in seqs])[0]


def decode_ours(
    model,
    batches: list[list[list[int]]],
    a: argparse.Namespace,
    stop: str = "early",
    bf16: bool = False,
) -> list[int]:
    """translate.search.beam_search over the batches, as many at once as translate.Translator
    decodes (translator.batch_map) -> output lengths (eos excluded). stop="early" is the rule
    of the others here: a sentence ends once 4 hypotheses have. bf16: under CPU bf16 autocast,
    as `translate --precision bf16` decodes."""
    from translate.search import beam_search
    from translate.translator import batch_map

    def decode(seqs: list[list[int]]) -> list[int]:
        src = padded_src(seqs)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            found = beam_search(
                model, src, beam=4, alpha=a.alpha, max_len_a=0.0, max_len_b=a.max_len, stop=stop
            )
        return [len(hyps[0][0]) for hyps in found]

    with batch_map(torch.device("cpu"), len(batches)) as map_batches:
        return [n for lengths in map_batches(decode, batches) for n in lengths]


def decode_hf(marian, batches: list[list[list[int]]], a: argparse.Namespace) -> list[int]:
    """HF generate(num_beams=4, early_stopping=True: a sentence ends once 4 hypotheses have, as
    in CTranslate2); max_new_tokens counts the forced final </s>."""
    lengths = []
    with torch.inference_mode():
        for seqs in batches:
            src = padded_src(seqs)
            out = marian.generate(
                input_ids=src,
                attention_mask=src.ne(PAD_ID),
                num_beams=4,
                early_stopping=True,
                do_sample=False,
                max_new_tokens=a.max_len + 1,
            )
            rows = [row[1:] for row in out.tolist()]  # drop the decoder start token
            lengths += [row.index(EOS_ID) if EOS_ID in row else len(row) for row in rows]
    return lengths


def decode_ct2(translator, batches: list[list[list[int]]], a: argparse.Namespace) -> list[int]:
    """ctranslate2 translate_batch(beam_size=4) on token strings + </s>: the batches in one call,
    split again by max_batch_size (run at once by a translator with inter_threads > 1)."""
    found = translator.translate_batch(
        [[a.vocab[i] for i in seq] + ["</s>"] for seqs in batches for seq in seqs],
        max_batch_size=max(map(len, batches)),
        beam_size=4,
        max_decoding_length=a.max_len,
        disable_unk=True,
        suppress_sequences=[["<pad>"], ["<s>"]],  # never emitted, as in translate.search
    )
    return [len(r.hypotheses[0]) for r in found]


def hf_engine(path: Path):
    """(decode fn, MarianMTModel read from path) for an EngineProcess."""
    import transformers

    transformers.logging.set_verbosity_error()  # one max_length note per generate() call
    transformers.logging.disable_progress_bar()
    return decode_hf, transformers.MarianMTModel.from_pretrained(path).eval()


def ct2_engine(path: Path, compute_type: str, intra_threads: int, inter_threads: int):
    """(decode fn, CTranslate2 translator of the converted model) for an EngineProcess."""
    import ctranslate2

    translator = ctranslate2.Translator(
        str(path),
        device="cpu",
        compute_type=compute_type,
        intra_threads=intra_threads,
        inter_threads=inter_threads,
    )
    return decode_ct2, translator


def ours_engine(model: Transformer, stop: str = "early", bf16: bool = False):
    """(decode fn with this stop rule and precision, our model) for an EngineProcess."""
    return functools.partial(decode_ours, stop=stop, bf16=bf16), model


def serve_engine(conn, threads: int, build, build_args: tuple) -> None:
    """EngineProcess's loop: build the engine, then decode each (batches, args) sent, replying
    (output lengths, seconds), until None arrives. An error is sent back as its message."""
    try:
        torch.set_num_threads(threads)
        fn, engine = build(*build_args)
        conn.send("ready")
        while (job := conn.recv()) is not None:
            t0 = time.perf_counter()
            lengths = fn(engine, *job)
            conn.send((lengths, time.perf_counter() - t0))
    except EOFError:  # the parent is gone
        return
    except Exception as e:  # noqa: BLE001  (reported by the parent)
        conn.send(f"{build.__name__}: {type(e).__name__}: {e}")


class EngineProcess:
    """A decoding engine alone in a process of its own, as its users run it.

    CTranslate2 in torch's process made torch's parallel ops 3-4x slower (layer_norm on 128 x 256:
    20 -> 80 us) for as long as its translator lived, and CTranslate2 ran slower there too
    (docs/benchmarks.md, session 9; probably because its translation thread drives OpenMP teams
    of its own and libgomp spins far less once it manages more threads than cores). One process
    per engine keeps each at its own speed.
    """

    def __init__(self, threads: int, build, *build_args):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no forked copy of the parent's thread pools
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=serve_engine, args=(child, threads, build, build_args), daemon=True
        )
        self.proc.start()
        child.close()  # the child's end lives in the child only: its death reads as EOF here
        self.reply()

    def reply(self):
        try:
            msg = self.conn.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            self.proc.join()
            raise SystemExit(f"decode engine exited with code {self.proc.exitcode}") from None
        if isinstance(msg, str) and msg != "ready":
            raise SystemExit(f"decode engine failed: {msg}")
        return msg

    def __call__(self, batches: list, a: argparse.Namespace) -> tuple[list[int], float]:
        """Decode batches there -> (output lengths, seconds it took there)."""
        self.conn.send((batches, a))
        return self.reply()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join()


def timed_decode(
    engines: list[tuple], batches: list, a: argparse.Namespace, rounds: int
) -> list[dict]:
    """engines: (name, EngineProcess, one sentence per call?). After one warm-up batch each,
    every engine decodes all batches in turn, in one call (as a user's file: ours and CTranslate2
    with inter_threads decode several batches at once), or one sentence per call; that `rounds`
    times. One row each, from its fastest round (on a shared VM a round's time varied by
    10-25%), with the median round beside it."""
    for _, engine, _ in engines:
        engine(batches[:1], a)
    seconds = [[0.0] * rounds for _ in engines]
    lengths = [[] for _ in engines]
    for r in range(rounds):
        for e, (_, engine, single) in enumerate(engines):
            for call in [[[s]] for batch in batches for s in batch] if single else [batches]:
                found, took = engine(call, a)
                seconds[e][r] += took
                if r == 0:  # the same output in every round
                    lengths[e] += found
    return [
        {
            "engine": name,
            "batch": 1 if single else max(map(len, batches)),
            "sentences": len(n),
            "seconds": round(min(s), 2),
            "median_s": round(statistics.median(s), 2),
            "rounds_s": [round(x, 2) for x in s],
            "sent/s": round(len(n) / min(s), 2),
            "tgt_tok/s": round(sum(n) / min(s)),
            "mean_len": round(sum(n) / len(n), 2),
        }
        for (name, _, single), s, n in zip(engines, seconds, lengths, strict=True)
    ]


def decode_model(args: argparse.Namespace, cfg: Config):
    """(model, its tokenizer.json, which weights): --checkpoint, else random weights."""
    from translate.checkpoint import load_model

    if args.checkpoint:
        model, _, _ = load_model(args.checkpoint)
        return model, Path(args.checkpoint) / "tokenizer.json", "checkpoint " + args.checkpoint
    data_dir = prepared(cfg)
    if data_dir is None:
        raise SystemExit("decode needs the prepared Multi30k data (or --checkpoint DIR)")
    torch.manual_seed(cfg.train.seed)
    vocab = load_tokenizer(data_dir).get_vocab_size()
    return Transformer(cfg.model, vocab, PAD_ID).eval(), data_dir / "tokenizer.json", "random"


def exported(model: Transformer, tokenizer_file: Path, tmp: Path) -> list[str]:
    """translate.export of the model to tmp/hf (MarianMTModel) and tmp/ct2 (CTranslate2)
    -> the CTranslate2 vocabulary as a list of token strings."""
    from translate.export import hf_to_ctranslate2, hf_tokenizer, to_marian

    to_marian(model).save_pretrained(tmp / "hf")
    hf_tokenizer(tokenizer_file, model.cfg.max_positions).save_pretrained(tmp / "hf")
    hf_to_ctranslate2(tmp / "hf", tmp / "ct2")
    return json.loads((tmp / "ct2" / "shared_vocabulary.json").read_text(encoding="utf-8"))


def bench_decode(args: argparse.Namespace) -> dict:
    """Beam-4 sentences/s: ours vs HF generate vs CTranslate2 on the same exported weights."""
    import transformers

    transformers.logging.set_verbosity_error()  # one max_length note per generate() call
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    cfg = bench_config(args.config)
    model, tokenizer_file, weights = decode_model(args, cfg)
    ids = source_ids(
        cfg, load_tokenizer(tokenizer_file), args.sentences, model.cfg.max_positions - 1
    )
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # length-sorted, as Translator
    batches = [
        [ids[i] for i in order[j : j + args.batch_size]]
        for j in range(0, len(ids), args.batch_size)
    ]
    a = argparse.Namespace(alpha=cfg.decode.alpha, max_len=args.max_len)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a.vocab = exported(model, tokenizer_file, tmp)
        n, ct2 = args.threads, tmp / "ct2"
        at_once = f"ctranslate2 fp32, {n} at once"  # inter_threads: n batches, 1 thread each
        stop = cfg.decode.stop  # the shipped default rule, beside the others' "early"
        engines = [
            ("ours", EngineProcess(n, ours_engine, model), False),
            ("ours 1-at-a-time", EngineProcess(n, ours_engine, model), True),
            (f"ours stop={stop}", EngineProcess(n, ours_engine, model, stop), False),
            ("hf generate", EngineProcess(n, hf_engine, tmp / "hf"), False),
            ("ctranslate2 fp32", EngineProcess(n, ct2_engine, ct2, "float32", n, 1), False),
            (at_once, EngineProcess(n, ct2_engine, ct2, "float32", 1, n), False),
            ("ctranslate2 int8", EngineProcess(n, ct2_engine, ct2, "int8", n, 1), False),
        ]
        if ONEDNN_BF16:  # CTranslate2 has no bf16 on CPU; its int8 row is the like of this one
            engines.insert(
                3, ("ours bf16", EngineProcess(n, ours_engine, model, "early", True), False)
            )
        rows = timed_decode(engines, batches, a, args.rounds)
        for _, engine, _ in engines:
            engine.close()
        if args.profile:
            print_profile(f"ours, {len(ids)} sentences", lambda: decode_ours(model, batches, a))
    speed = {r["engine"]: r["sent/s"] for r in rows}
    median = {r["engine"]: r["median_s"] for r in rows}  # seconds: lower is faster
    result = {
        "weights": weights,
        "threads": args.threads,
        "load_avg_1m": os.getloadavg()[0],  # > cores: other processes compete, numbers are noisy
        "note": "beam 4, at most max_len output tokens for every engine, and one stop rule: "
        "a sentence ends once 4 hypotheses have (ours stop=early, HF early_stopping=True, "
        f"CTranslate2's default), except the row 'ours stop={stop}' (the shipped default); ours "
        f"ranks with GNMT alpha={a.alpha}, HF and CTranslate2 with their default "
        "length_penalty=1.0; compare mean_len beside speed (random weights run to max_len). "
        "Ours decodes "
        f"{n} batches at once as translate.Translator does (one thread each); CTranslate2 runs "
        f"with intra_threads={n}, and with inter_threads={n} ('at once'); the speedup is "
        "against the faster of the two",
        "rows": rows,
        "decode_speedup_vs_hf": round(speed["ours"] / speed["hf generate"], 3),
        "decode_speedup_vs_ctranslate2": round(
            speed["ours"] / max(speed["ctranslate2 fp32"], speed[at_once]), 3
        ),
        "decode_speedup_vs_ctranslate2_median": round(
            min(median["ctranslate2 fp32"], median[at_once]) / median["ours"], 3
        ),
        "batched_vs_one_at_a_time": round(speed["ours"] / speed["ours 1-at-a-time"], 3),
    }
    if "ours bf16" in speed:  # `translate --precision bf16`, against CTranslate2 in fp32
        fp32 = max(speed["ctranslate2 fp32"], speed[at_once])
        result["decode_bf16_speedup_vs_ctranslate2"] = round(speed["ours bf16"] / fp32, 3)
        fp32 = min(median["ctranslate2 fp32"], median[at_once])
        result["decode_bf16_speedup_vs_ctranslate2_median"] = round(fp32 / median["ours bf16"], 3)
    return result


# -------------------------------------------------------------------------------------- gpu

PEAK_FLOPS = [  # dense bf16 (T4: fp16) tensor-core peaks, first substring match of the name wins
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
    ("T4", 65e12),
]
FLOPS_FORMULA = (
    "FLOPs = 6 * (N_src * src_tokens + N_tgt * tgt_tokens) + 12 * d * (L_enc * sum(S^2) + "
    "L_dec * sum(T^2 + T*S)); N_src = encoder weight matrices + decoder cross-attention k/v, "
    "N_tgt = the other decoder matrices + output projection (V*d); real tokens per sentence "
    "(S, T); the causal mask is not halved"
)


def train_flops(model: Transformer, batches: list[Batch]) -> float:
    """Training FLOPs of `batches` by FLOPS_FORMULA (matmuls only: 2 per multiply-add, x3)."""
    mats = {n: p.numel() for n, p in model.named_parameters() if p.dim() == 2}
    cross_kv = sum(v for n, v in mats.items() if ".encoder_attn.k_" in n or ".encoder_attn.v_" in n)
    n_src = sum(v for n, v in mats.items() if n.startswith("encoder.")) + cross_kv
    n_tgt = sum(v for n, v in mats.items() if n.startswith("decoder.")) - cross_kv
    n_tgt += mats["shared.weight"]
    c, total = model.cfg, 0.0
    for src, _, tgt_out, _ in batches:
        s, t = src.ne(PAD_ID).sum(1).double(), tgt_out.ne(PAD_ID).sum(1).double()  # (B,)
        total += 6 * (n_src * s.sum() + n_tgt * t.sum()).item()
        attn = c.encoder_layers * (s * s).sum() + c.decoder_layers * (t * t + t * s).sum()
        total += 12 * c.d_model * attn.item()
    return total


def peak_flops(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return next((peak for key, peak in PEAK_FLOPS if key in name), None)


def gpu_row(cfg: Config, vocab: int, batches: list[Batch], device, dtype, compile_mode, warmup):
    """Train the model on batches (first `warmup` untimed): tokens/s, peak memory, MFU."""
    from translate.step import build_optimizer, guarded_step, maybe_compile, train_step

    torch._dynamo.reset()  # each row compiles its own model from scratch
    torch.manual_seed(0)
    model = Transformer(cfg.model, vocab, PAD_ID).to(device).train()
    optimizer = build_optimizer(model, cfg.train, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    net, how = maybe_compile(model, compile_mode, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    t0 = time.perf_counter()
    for b in batches[:warmup]:
        args = ([b], optimizer, 1e-4, cfg.train, dtype, scaler)
        if net is not model:  # compiling happens at the first call, recompiling after it
            _, net, note = guarded_step(net, model, optimizer, train_step, *args)
            how = note or how
        else:
            train_step(net, *args)
    sync()
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for b in batches[warmup:]:
        train_step(net, [b], optimizer, 1e-4, cfg.train, dtype, scaler)
    sync()
    s = time.perf_counter() - t0
    src_tok, tgt_tok = count_tokens(batches[warmup:])
    flops, peak = train_flops(model, batches[warmup:]), peak_flops(device)
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "precision": {torch.bfloat16: "bf16", torch.float16: "fp16 + GradScaler"}.get(
            dtype, "fp32"
        ),
        "compile": how,
        "warmup_s": round(warm_s, 1),
        "steps": len(batches) - warmup,
        "tok/s": round((src_tok + tgt_tok) / s),
        "tgt_tok/s": round(tgt_tok / s),
        "TFLOP/s": round(flops / s / 1e12, 1),
        "MFU": round(flops / s / peak, 4) if peak else None,
        "peak_mem_gib": round(mem, 2) if mem is not None else None,
    }


def bench_gpu(args: argparse.Namespace) -> dict:
    """The base config on WMT14-shaped synthetic batches: bf16+compile, bf16 eager, fp16 path."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    device = torch.device("cuda")
    torch.set_float32_matmul_precision("high")
    cfg = bench_config(args.gpu_config)
    vocab, warmup = round_vocab(cfg.data.vocab_size), max(args.warmup, 5)
    batches = synthetic_batches(vocab, args.gpu_max_tokens, warmup + args.gpu_steps, 27.0, 256)
    batches = [(*(t.to(device) for t in b[:3]), b[3]) for b in batches]
    rows = []
    for dtype, mode in ((torch.bfloat16, "on"), (torch.bfloat16, "off"), (torch.float16, "on")):
        rows.append(gpu_row(cfg, vocab, batches, device, dtype, mode, warmup))
        # each row as it is done: a run stopped by its time limit keeps what it measured
        print(f"gpu row: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    return {
        "device": torch.cuda.get_device_name(device),
        "model": dataclasses.asdict(cfg.model) | {"vocab": vocab},
        "max_tokens": args.gpu_max_tokens,
        "peak_flops": peak_flops(device),
        "flops": FLOPS_FORMULA,
        "note": TOKENS + "; synthetic lengths log-normal, mean ~27 tokens, like WMT14 BPE",
        "rows": rows,
    }


# ------------------------------------------------------------------------------------- main

SECTIONS = {"train": bench_train, "decode": bench_decode, "gpu": bench_gpu}


def print_table(name: str, result: dict) -> None:
    """Scalars as `key: value` lines, `rows` as an aligned table."""
    print(f"== {name}")
    for key, value in result.items():
        if isinstance(value, dict):  # a sub-measure: one line per figure
            print(f"  {key}:")
            for sub, figure in value.items():
                print(f"    {sub}: {figure}")
        elif key != "rows":
            print(f"  {key}: {value}")
    rows = result.get("rows", [])
    if rows:
        cols = list(rows[0])
        width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
        print("  " + "  ".join(c.rjust(width[c]) for c in cols))
        for r in rows:
            print("  " + "  ".join(str(r[c]).rjust(width[c]) for c in cols))
