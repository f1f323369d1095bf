"""A WMT14-sized German-English corpus for data-prep benchmarks when the hub is out of reach.

  python scripts/make_big_corpus.py --pairs 4500000 --out /tmp/big/train   # ~1.2 GB
  python scripts/benchmark.py --only data --big /tmp/big/train

Each pair joins 1-3 random Multi30k training pairs (the same lines on both sides), so the text is
real German and English with WMT-like lengths; about a third of the pairs repeat (dedup drops them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

MULTI30K = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4_500_000)
    parser.add_argument("--out", required=True, help="prefix: writes PREFIX.de and PREFIX.en")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    de = (MULTI30K / "train.de").read_text(encoding="utf-8").splitlines()
    en = (MULTI30K / "train.en").read_text(encoding="utf-8").splitlines()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(f"{out}.de", "w", encoding="utf-8") as f_de,
        open(f"{out}.en", "w", encoding="utf-8") as f_en,
    ):
        for start in range(0, args.pairs, 100_000):
            n = min(100_000, args.pairs - start)
            counts, rows = rng.integers(1, 4, n), rng.integers(0, len(de), (n, 3))  # (n,), (n, 3)
            picks = [r[:c] for r, c in zip(rows, counts, strict=True)]
            f_de.write("".join(" ".join(de[j] for j in p) + "\n" for p in picks))
            f_en.write("".join(" ".join(en[j] for j in p) + "\n" for p in picks))


if __name__ == "__main__":
    main()
