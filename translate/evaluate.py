"""Corpus BLEU and chrF (sacreBLEU) of a checkpoint on a test set.

    python -m translate.evaluate --checkpoint runs/demo/best --split test
    python -m translate.evaluate --checkpoint DIR --src newstest2014.de --ref newstest2014.en --json

Scores compare detokenized hypotheses with raw references (sacreBLEU defaults: 13a tokenization,
mixed case) unless --tokenize / --lowercase say otherwise. --json prints one JSON object last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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
    same_file,
)
from translate.config import Config, DataConfig


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m translate.evaluate",
        description="Translate a test set and print sacreBLEU BLEU and chrF with signatures.",
    )
    parser.add_argument("--src", help="source sentences, one per line")
    parser.add_argument("--ref", help="reference translations, line-aligned with --src")
    parser.add_argument(
        "--split",
        choices=["valid", "test"],
        help="the checkpoint's own data (its config's data paths, relative to the directory "
        "training ran in)",
    )
    parser.add_argument("--output", "-o", help="write the hypotheses to this file")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
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


def training_root(ckpt_dir: Path, cfg: Config) -> Path | None:
    """The directory training ran in, where the config's relative paths start, when the
    checkpoint lies in train.out_dir (ROOT/runs/NAME/best for out_dir runs/NAME); else None."""
    # not resolve(): with runs/ a link to a Drive folder, the root is still the link's folder
    out, run = Path(cfg.train.out_dir), Path(os.path.abspath(ckpt_dir)).parent
    n = len(out.parts)
    if out.is_absolute() or n == 0 or run.parts[-n:] != out.parts:
        return None
    return Path(*run.parts[:-n])


def rebased(data: DataConfig, root: Path) -> DataConfig:
    """`data` with its relative paths (dir, train, valid, test) starting at `root`."""

    def at_root(path: str) -> str:
        return str(root / path) if path and not Path(path).is_absolute() else path

    paths = {k: at_root(getattr(data, k)) for k in ("dir", "train", "valid", "test")}
    return dataclasses.replace(data, **paths)


def refuse_output_over(output: str | None, what: str, path: str | Path | None) -> None:
    """ValueError if --output names the input file `path` (described by `what`)."""
    if same_file(output, None if path is None else str(path)):
        raise ValueError(
            f"--output '{output}' is the {what}, which the hypotheses would overwrite; give "
            "another output file"
        )


def read_split(
    cfg: Config, split: str, root: Path | None = None, output: str | None = None
) -> tuple[list[str], list[str]]:
    """Raw source and reference lines of the checkpoint's valid/test data (prepared if missing).
    Relative data paths start at `root` (the directory training ran in) when known, else here.
    ValueError if `output` (--output) is one of the two files."""
    from data_prep import DataError, prepare, read_raw_split

    data = rebased(cfg.data, root) if root is not None else cfg.data
    data_dir = Path(data.dir)
    langs = (data.src_lang, data.tgt_lang)
    if not all((data_dir / f"{split}.{lang}").is_file() for lang in langs):
        print(f"{data_dir.resolve()} has no {split} text yet; preparing it...", file=sys.stderr)
        try:
            data_dir = prepare(data)
        except DataError as e:
            raise DataError(
                f"--split {split} needs the checkpoint's data in '{data_dir}', which could not be "
                f"prepared ({e}); give --src FILE --ref FILE instead"
            ) from None
    for lang, name in zip(langs, ("source", "reference"), strict=True):
        path = data_dir / f"{split}.{lang}"
        refuse_output_over(output, f"--split {split} {name} file '{path}'", path)
    src, ref = (read_raw_split(data_dir, split, lang) for lang in langs)
    if len(src) != len(ref):
        raise ValueError(f"{data_dir}: {split} has {len(src)} sources but {len(ref)} references")
    return src, ref


def metrics(tokenize: str | None, lowercase: bool) -> tuple[BLEU, CHRF]:
    """sacreBLEU's BLEU and chrF; made before decoding, as some tokenizers download a model."""
    try:
        return BLEU(tokenize=tokenize, lowercase=lowercase), CHRF(lowercase=lowercase)
    except OSError as e:  # urllib's URLError among them
        raise ValueError(
            f"--tokenize {tokenize} needs a model sacreBLEU downloads, which failed ({e}); "
            "offline, use one that needs none (13a, intl, char, zh)"
        ) from None
    except RuntimeError as e:  # ja-mecab, ko-mecab: their packages are not installed
        extra = {"ja-mecab": "ja", "ko-mecab": "ko"}.get(tokenize or "")
        hint = f' (pip install "sacrebleu[{extra}]")' if extra else ""
        raise ValueError(f"--tokenize {tokenize}: {str(e).strip().splitlines()[0]}{hint}") from None


def score(hyps: list[str], refs: list[str], bleu_metric: BLEU, chrf_metric: CHRF) -> dict:
    """Corpus BLEU and chrF with their sacreBLEU signatures and formatted report lines."""
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
    for name, path in (("--src", args.src), ("--ref", args.ref)):
        refuse_output_over(args.output, f"{name} file", path)
    bleu_chrf = metrics(args.tokenize, args.lowercase)  # one that cannot download fails first
    pair = None if args.split else read_pair(args.src, args.ref)  # file errors before model load
    translator = load_translator(args)
    translator.options(**decode_options(args))  # before preparing data or decoding
    if pair is None:
        root = training_root(translator.checkpoint_dir, translator.cfg)
        pair = read_split(translator.cfg, args.split, root, args.output)
    src, refs = pair
    if not src:
        raise ValueError("the test set is empty; nothing to evaluate")
    start = time.perf_counter()
    hyps = translator.translate(
        src,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        **decode_options(args),
    )
    seconds = time.perf_counter() - start
    if args.output:
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    result = score(hyps, refs, *bleu_chrf)
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
