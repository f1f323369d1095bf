"""Average the weights of the last N step checkpoints of a run (or of explicit checkpoint dirs).

    python scripts/average_checkpoints.py --run runs/wmt14_base --last 5 --out runs/wmt14_base/avg5
    python scripts/average_checkpoints.py --dirs runs/x/step_0090000 runs/x/step_0100000 --out avg

The result is a normal checkpoint directory (model.safetensors, config.yaml, tokenizer.json).
--out must be a new directory or an earlier average: never an input, the run dir, last/ or best/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from translate import tolerant_stdout  # noqa: E402
from translate.checkpoint import CheckpointError, average_checkpoints, step_checkpoints  # noqa: E402


def checkpoint_dirs(args: argparse.Namespace) -> list[Path]:
    """The checkpoints to average: --dirs, or the last --last step checkpoints of --run."""
    if args.dirs:
        return [Path(d) for d in args.dirs]
    if args.last < 1:
        raise CheckpointError(f"--last must be at least 1 (got {args.last}); e.g. --last 5")
    if not Path(args.run).is_dir():
        raise CheckpointError(f"--run '{args.run}' is not a directory; give a train.out_dir")
    dirs = step_checkpoints(args.run)[-args.last :]
    if len(dirs) < args.last:
        raise CheckpointError(
            f"'{args.run}' has {len(dirs)} step checkpoints, fewer than --last "
            f"{args.last}; lower --last, or train with train.keep_last >= {args.last} (one step "
            "checkpoint every train.save_every steps)"
        )
    return dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run dir holding step_NNNNNNN checkpoints")
    source.add_argument("--dirs", nargs="+", help="explicit checkpoint dirs")
    parser.add_argument(
        "--last", type=int, default=5, help="with --run: average the last N (%(default)s)"
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output checkpoint dir, e.g. RUN/avg5: a new one, or an earlier average to replace",
    )
    args = parser.parse_args(argv)
    tolerant_stdout()
    try:
        dirs = checkpoint_dirs(args)
        out = average_checkpoints(dirs, args.out)
    except (CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"averaged {len(dirs)} checkpoints ({dirs[0].name} .. {dirs[-1].name}) into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
