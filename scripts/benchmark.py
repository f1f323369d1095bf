"""Speed benchmarks, one function per section; prints each section's figures as it ends.

  python scripts/benchmark.py [--only data|train|decode|gpu ...] [--json] [--big PREFIX] [--profile]

--json prints one JSON object last (the speedup keys at its top level, then each section).
train, decode and gpu live in scripts/bench_models.py (ours vs HF transformers vs CTranslate2;
they need `pip install -e .[bench]`). --profile adds a torch.profiler table of where our train
step and our beam search spend their time.

data: Multi30k preparation time and peak memory (a fresh subprocess), detokenization round trip,
padding efficiency of length-bucketed vs random batches; with --big PREFIX also a WMT14-sized
local corpus (PREFIX.de / PREFIX.en; valid/test reuse Multi30k). --multi30k DIR says where the
corpus is (default: ../shared/data/multi30k beside the checkout, as in configs/multi30k.yaml).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_models  # scripts/ is on sys.path when run as a script; it puts the repo there too
from bench_models import ROOT

MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"
# --big: configs/multi30k.yaml with wmt14_base.yaml's data settings
BIG = ["data.vocab_size=37000", "data.max_len=256", "model.max_positions=1024"]


def timed_prepare(corpus: Path, overrides: list[str]) -> dict:
    """Run `python -m data_prep` under /usr/bin/time in a fresh process: seconds and peak RSS."""
    cmd = [sys.executable, "-m", "data_prep", "--config", "configs/multi30k.yaml"]
    splits = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
    overrides = [f"data.{k}={corpus / v}" for k, v in splits.items()] + overrides
    cmd += [arg for o in overrides for arg in ("--set", o)]
    start = time.time()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:  # data_prep's own message, without /usr/bin/time's report
        message = proc.stderr.split("\tCommand being timed")[0].strip().splitlines()
        raise SystemExit(
            "\n".join(m for m in message if not m.startswith("Command exited"))[-2000:]
        )
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"seconds": round(time.time() - start, 1), "peak_rss_mb": round(rss_kb / 1024)}


def padding(data_dir: Path, max_tokens: int) -> dict:
    import numpy as np

    from data_prep import load_split, token_batches
    from data_prep.batching import padding_efficiency, random_batches

    train = load_split(data_dir, "train")
    src, tgt = train.src_lens + 1, train.tgt_lens + 1
    bucketed = token_batches(src, tgt, max_tokens, seed=1, epoch=0)
    shuffled = random_batches(np.maximum(src, tgt), max_tokens, seed=1)
    return {
        "max_tokens": max_tokens,
        "bucketed": round(padding_efficiency(bucketed, src, tgt), 4),
        "random": round(padding_efficiency(shuffled, src, tgt), 4),
        "batches_bucketed": len(bucketed),
        "batches_random": len(shuffled),
    }


def round_trip(data_dir: Path, files: list[Path]) -> dict:
    from data_prep import load_tokenizer
    from data_prep.clean import normalize

    tok = load_tokenizer(data_dir)
    total = exact = 0
    for path in files:
        lines = normalize(path.read_text("utf-8").split("\n"))
        lines = [s for s in lines if s]
        ids = [e.ids for e in tok.encode_batch(lines)]
        exact += sum(d == s for d, s in zip(tok.decode_batch(ids), lines, strict=True))
        total += len(lines)
    return {"sentences": total, "exact": exact, "rate": round(exact / total, 6)}


def bench_data(args: argparse.Namespace) -> dict:
    results, corpus = {}, Path(args.multi30k).resolve()
    if not (corpus / "train.de").is_file():
        raise SystemExit(
            f"error: no Multi30k in '{corpus}' (train.de missing); give --multi30k DIR"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "multi30k"
        results["multi30k_prepare"] = timed_prepare(corpus, [f"data.dir={out}"])
        files = [corpus / f"{s}.{lang}" for s in ("train", "val") for lang in ("de", "en")]
        results["multi30k_round_trip"] = round_trip(out, files)
        results["multi30k_padding"] = padding(out, 4096)
        if args.big:
            big = Path(tmp) / "big"
            overrides = [f"data.dir={big}", f"data.train={args.big}", *BIG]
            results["big_prepare"] = timed_prepare(corpus, overrides)
            manifest = json.loads((big / "manifest.json").read_text())
            results["big_prepare"]["train"] = manifest["splits"]["train"]
            results["big_prepare"]["drops"] = manifest["drops"]
    return results


SECTIONS = {"data": bench_data, **bench_models.SECTIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SECTIONS), action="append", help="run a section")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--big", help="data: prefix of a WMT14-sized corpus (PREFIX.de, PREFIX.en)")
    parser.add_argument(
        "--multi30k", default=MULTI30K, help="data: the Multi30k folder (%(default)s)"
    )
    bench_models.add_args(parser)
    args = parser.parse_args()
    results = {}
    from translate.export import ExportError

    for name in args.only or SECTIONS:
        try:
            results[name] = SECTIONS[name](args)
        except ExportError as e:  # a pre-norm model: HF and CTranslate2 have no such variant
            raise SystemExit(f"error: {e}") from None
        bench_models.print_table(name, results[name])
    if args.json:
        summary = {k: v for r in results.values() for k, v in r.items() if "speedup" in k}
        print(json.dumps({**summary, **results}))


if __name__ == "__main__":
    main()
