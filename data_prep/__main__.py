"""`python -m data_prep --config configs/X.yaml [--set data.key=value ...]`: prepare, summarize."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from data_prep import DataError, load_split, prepare
from data_prep.batching import padding_efficiency, token_batches
from translate import tolerant_stdout
from translate.config import ConfigError, add_config_args, load_config


def peak_memory_mb() -> float | None:
    """This process's peak resident memory in MB; None on Windows, which has no `resource`."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, but bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def summary(data_dir: Path, max_tokens: int, seconds: float, reused: bool) -> str:
    """Human-readable report of a prepared directory."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    lines = [
        f"data: {data_dir} ({manifest['source']}, {manifest['src_lang']}->{manifest['tgt_lang']}, "
        f"vocab {manifest['vocab_size']}, {'reused cache' if reused else 'built'})"
    ]
    for split, s in manifest["splits"].items():
        lines.append(
            f"  {split:5s} {s['pairs']:>10,} pairs  {s['src_tokens']:>12,} src tokens  "
            f"{s['tgt_tokens']:>12,} tgt tokens  (read {s['read']:,})"
        )
    drops = ", ".join(f"{k} {v:,}" for k, v in manifest["drops"].items())
    lines.append(f"  dropped from train: {drops}")
    if manifest["invalid_utf8_replaced"]:
        lines.append(f"  lines with invalid UTF-8 replaced: {manifest['invalid_utf8_replaced']:,}")
    train = load_split(data_dir, "train")
    src, tgt = train.src_lens + 1, train.tgt_lens + 1  # + eos / bos, as the trainer sees them
    eff = padding_efficiency(token_batches(src, tgt, max_tokens, seed=1, epoch=0), src, tgt)
    lines.append(f"  padding efficiency at train.max_tokens={max_tokens}: {eff:.1%}")
    peak_mb = peak_memory_mb()
    memory = f", peak memory {peak_mb:,.0f} MB" if peak_mb is not None else ""
    lines.append(f"  {seconds:.1f} s{memory}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__)
    add_config_args(parser, required=True)
    args = parser.parse_args(argv)
    tolerant_stdout()
    start = time.time()
    try:
        cfg = load_config(args.config, args.set)
        manifest = Path(cfg.data.dir) / "manifest.json"
        before = manifest.stat().st_mtime_ns if manifest.is_file() else None
        data_dir = prepare(cfg.data)
        reused = before == manifest.stat().st_mtime_ns
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. data.dir under a file, not writable, or a full disk
        where = f": '{e.filename}'" if e.filename else ""
        print(f"error: {e.strerror or e}{where}; check data.dir and free space", file=sys.stderr)
        return 1
    print(summary(data_dir, cfg.train.max_tokens, time.time() - start, reused))
    return 0


if __name__ == "__main__":
    sys.exit(main())
