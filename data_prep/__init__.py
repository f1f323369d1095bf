"""Data preparation: raw corpora -> cleaned pairs -> shared BPE -> binarized token arrays.

`python -m data_prep --config configs/demo.yaml` prepares data.dir; training reads it back with
`load_split`, `token_batches` and `collate`.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.batching import collate, load_split, sorted_batches, token_batches
from data_prep.binarize import prepare
from data_prep.sources import DataError
from data_prep.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, load_tokenizer, never_emitted

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "DataError",
    "collate",
    "load_split",
    "load_tokenizer",
    "never_emitted",
    "prepare",
    "read_raw_split",
    "sorted_batches",
    "token_batches",
]


def read_raw_split(data_dir: str | Path, split: str, lang: str) -> list[str]:
    """Verbatim lines of a prepared valid/test split (the sacreBLEU references)."""
    path = Path(data_dir) / f"{split}.{lang}"
    if not path.is_file():
        raise DataError(f"'{path}' does not exist; run python -m data_prep for this config first")
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    return text.split("\n")[:-1]  # one line per pair; never splitlines() (U+2028 etc.)
