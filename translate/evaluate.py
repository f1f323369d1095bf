"""Corpus BLEU and chrF (sacreBLEU) of a checkpoint on a test set.

    python -m translate.evaluate --checkpoint runs/demo/best --split test
    python -m translate.evaluate --checkpoint DIR --src newstest2014.de --ref newstest2014.en --json

Scores compare detokenized hypotheses with raw references (sacreBLEU defaults: 13a tokenization,
mixed case) unless --tokenize / --lowercase say otherwise. --json prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from translate.cli import (
    Parser,
    add_decode_args,
    check_output,
    decode_options,
    load_translator,
    read_text_file,
    report_errors,
)
from translate.config import Config


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m translate.evaluate",
        description="Translate a test set and print sacreBLEU BLEU and chrF with signatures.",
    )
    parser.add_argument("--src", help="source sentences, one per line")
    parser.add_argument("--ref", help="reference translations, line-aligned with --src")
    parser.add_argument("--split", choices=["valid", "test"], help="the checkpoint data's split")
    parser.add_argument("--output", "-o", help="write the hypotheses to this file")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    parser.add_argument("--tokenize", choices=list(BLEU.TOKENIZERS), help="BLEU tokenizer (13a)")
    parser.add_argument("--lowercase", action="store_true", help="case-insensitive BLEU/chrF")
    add_decode_args(parser)
    return parser


def read_pair(src_path: str, ref_path: str) -> tuple[list[str], list[str]]:
    """Line-aligned source and reference files (a count mismatch is an error)."""
    src, ref = read_text_file(src_path), read_text_file(ref_path)
    if len(src) != len(ref):
        raise ValueError(
            f"{src_path} has {len(src)} lines but {ref_path} has {len(ref)}; "
            "the files must be line-aligned"
        )
    return src, ref


def read_split(cfg: Config, split: str) -> tuple[list[str], list[str]]:
    """Raw source and reference lines of the checkpoint's valid/test data (prepared if missing)."""
    from data_prep import prepare, read_raw_split

    data_dir = Path(cfg.data.dir)
    langs = (cfg.data.src_lang, cfg.data.tgt_lang)
    if not all((data_dir / f"{split}.{lang}").is_file() for lang in langs):
        print(f"{data_dir} has no {split} text yet; preparing the data...", file=sys.stderr)
        data_dir = prepare(cfg.data)
    src, ref = (read_raw_split(data_dir, split, lang) for lang in langs)
    if len(src) != len(ref):
        raise ValueError(f"{data_dir}: {split} has {len(src)} sources but {len(ref)} references")
    return src, ref


def score(hyps: list[str], refs: list[str], tokenize: str | None, lowercase: bool) -> dict:
    """Corpus BLEU and chrF with their sacreBLEU signatures and formatted report lines."""
    bleu_metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    chrf_metric = CHRF(lowercase=lowercase)
    bleu = bleu_metric.corpus_score(hyps, [refs])
    chrf = chrf_metric.corpus_score(hyps, [refs])
    signature = {"bleu": str(bleu_metric.get_signature()), "chrf": str(chrf_metric.get_signature())}
    lines = [
        bleu.format(signature=signature["bleu"]),
        chrf.format(signature=signature["chrf"]),
    ]
    return {"bleu": bleu.score, "chrf": chrf.score, "signature": signature, "lines": lines}


def run(args: argparse.Namespace) -> None:
    if args.split and (args.src or args.ref):
        raise ValueError("give either --split or --src/--ref, not both")
    if not args.split and not (args.src and args.ref):
        raise ValueError("give --src FILE --ref FILE, or --split valid|test")
    check_output(args.output)
    pair = None if args.split else read_pair(args.src, args.ref)  # file errors before model load
    translator = load_translator(args)
    src, refs = pair or read_split(translator.cfg, args.split)
    if not src:
        raise ValueError("the test set is empty; nothing to evaluate")
    start = time.perf_counter()
    hyps = translator.translate(src, progress=args.progress, **decode_options(args))
    seconds = time.perf_counter() - start
    if args.output:
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    result = score(hyps, refs, args.tokenize, args.lowercase)
    print("\n".join(result.pop("lines")))
    speed = len(src) / max(seconds, 1e-9)
    print(f"{len(src)} sentences in {seconds:.1f} s ({speed:.1f} sentences/s)")
    if args.json:
        result.update(sentences=len(src), seconds=round(seconds, 3))
        result["sentences_per_second"] = round(speed, 2)
        print(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    return report_errors(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
