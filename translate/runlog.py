"""A run's log: `{out_dir}/log.jsonl`, one JSON object per logged step, and `curves.png` drawn
from it at each validation."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path


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
