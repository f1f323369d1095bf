"""A run's log: `{out_dir}/log.jsonl`, one JSON object per logged step, `curves.png` drawn from
it at each validation, and the sums a record reports for the updates since the one before."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor


class RunLog:
    def __init__(self, out: Path):
        self.path, self.png = out / "log.jsonl", out / "curves.png"
        self.last: dict | None = None  # the last record, as written

    def truncate(self, step: int) -> int:
        """Drop the records after `step` (a killed run's, or at step 0 all of an earlier run's)
        -> how many lines were dropped."""
        if not self.path.is_file():
            return 0
        lines, kept = self.path.read_text(encoding="utf-8").splitlines(), []
        for line in lines:
            with contextlib.suppress(ValueError):  # a line cut short by the kill
                if (record := json.loads(line))["step"] <= step:
                    kept.append(line + "\n")
                    self.last = record  # a record for `step` takes its final one
        self._replace("".join(kept))
        return len(lines) - len(kept)

    def write(self, record: dict) -> None:
        """Append one record; a second one for the same step (the final validation after a log
        step) is merged into the first, so there is one record per logged step. A non-finite
        figure (the loss of an interval whose updates were all skipped) is written as null."""
        record = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in record.items()
        }
        if self.last is not None and self.last["step"] == record["step"]:
            record = {**self.last, **record}
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]
            self._replace("".join(lines) + json.dumps(record) + "\n")
        else:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.last = record
        if any(k.startswith("valid_") for k in record):
            plot_curves(self.path, self.png)

    def _replace(self, text: str) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")  # a kill while writing keeps the old
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


class Interval:
    """The updates since the last log record: the NLL and target tokens of those made, the target
    tokens of all (for tokens/s), how many were skipped, and how many in a row (kept across
    records). Tensors, so that adding an update never waits for the GPU."""

    def __init__(self, device: torch.device, world: int):
        self.device, self.world = device, world
        self.streak = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        zeros = [torch.zeros((), device=self.device) for _ in range(3)]
        self.nll, self.loss_tokens, self.skipped = zeros  # loss_tokens: the target tokens of nll
        self.tokens, self.start = 0, time.time()

    def add(self, nll: Tensor, finite: Tensor, tokens: int) -> Tensor:
        """One update: its summed NLL, whether it was made (agreed by all ranks), its target
        tokens -> 1.0 if it was skipped (a tensor)."""
        bad = (~finite).float()
        self.streak, self.skipped = (self.streak + 1) * bad, self.skipped + bad
        self.nll += torch.where(finite, nll, 0.0)  # the loss is of the updates made
        self.loss_tokens += (1 - bad) * tokens
        self.tokens += tokens
        return bad

    def totals(self) -> dict:
        """The sums over all ranks (skipped updates are the same on every rank) and the seconds
        so far; saved with a checkpoint, so that a run resumed between log steps logs what an
        unbroken one would."""
        tokens = torch.tensor(float(self.tokens), device=self.device)
        sums = torch.stack([self.nll, self.loss_tokens, tokens])
        if self.world > 1:
            dist.all_reduce(sums)
        nll, loss_tokens, tokens = sums.tolist()
        return {
            "nll": nll,
            "loss_tokens": int(loss_tokens),
            "tokens": int(tokens),
            "seconds": time.time() - self.start,
            "skipped": int(self.skipped.item()),
        }

    def restore(self, saved: dict) -> None:
        """Go on from totals() saved by the run resumed (on one rank: they are all ranks' sums)."""
        self.nll += saved["nll"]
        self.loss_tokens += saved.get("loss_tokens", saved["tokens"])
        self.tokens, self.skipped = saved["tokens"], self.skipped + saved["skipped"]
        self.start -= saved["seconds"]


def plot_curves(log_file: Path, png: Path) -> None:
    """Train/valid loss and valid BLEU against steps (matplotlib Agg, imported lazily)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    lines = log_file.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    fig, (ax_loss, ax_bleu) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("loss", "valid_loss"):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax_loss.plot(*zip(*pts, strict=True), label=key)
    pts = [(r["step"], r["valid_bleu"]) for r in rows if "valid_bleu" in r]
    if pts:
        ax_bleu.plot(*zip(*pts, strict=True), marker="o", label="valid BLEU")
    ax_loss.set(xlabel="step", ylabel="NLL per token")
    ax_bleu.set(xlabel="step", ylabel="BLEU")
    for ax in (ax_loss, ax_bleu):
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png)
