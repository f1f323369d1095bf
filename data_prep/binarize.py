"""prepare(): raw corpus -> cleaned pairs -> shared BPE -> flat token arrays + offsets + manifest.

Streams chunk by chunk: token ids go to disk as they are produced, so memory stays flat for
WMT14-sized corpora. Every file is written under a temporary name and renamed into place, so a
run training on an earlier build keeps reading that build's files. Output (per split and side,
`side` in src/tgt):
  {split}.{side}.npy      all token ids of the split, concatenated (uint16 when the vocab fits)
  {split}.{side}.idx.npy  (N+1,) int64 offsets: pair i is ids[idx[i]:idx[i+1]]
  {split}.{lang}          valid/test raw text, verbatim (sacreBLEU references)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep import clean
from data_prep.sources import (
    SPLITS,
    Chunk,
    DataError,
    Stats,
    input_files,
    open_split,
    sample_split,
)
from data_prep.tokenizer import PieceEncoder, train_tokenizer
from translate.config import DataConfig, data_hash, data_identity, differences, resolved

FORMAT = 2  # bump when the on-disk layout changes (invalidates every cache)


def prepare(cfg: DataConfig, build: bool = True) -> Path:
    """Build (or reuse, when config and inputs are unchanged) the prepared data dir; returns it.
    build=False only checks (training ranks other than 0, after rank 0 prepared it)."""
    out = Path(cfg.dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"data.dir '{out}' is a file; give a directory path")
    inputs = _signatures(cfg)
    manifest = _read_manifest(out)
    if _is_current(out, manifest, cfg, inputs):
        return out
    if not build:
        raise DataError(
            f"data.dir '{out}' does not hold this config's prepared data as this process sees "
            "it (the data config or the raw input files differ from rank 0's); on several "
            "machines put data.dir and the raw data.* files on a filesystem they all share"
        )
    _check_not_overwritten(cfg, out)
    stats = Stats()
    evals = {split: open_split(cfg, split, stats) for split in ("valid", "test")}  # checked first
    if manifest:
        print(f"data: rebuilding {out}, prepared for {_what_changed(manifest, cfg, inputs)}")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _build(cfg, out, inputs, stats, evals)
    except BaseException:
        if created:  # a first build that failed (offline, say) leaves no half-built folder
            shutil.rmtree(out, ignore_errors=True)
        raise


def _build(
    cfg: DataConfig,
    out: Path,
    inputs: list[list[Any]],
    stats: Stats,
    evals: dict[str, tuple[int, Iterator[Chunk]]],
) -> Path:
    """Tokenizer, token arrays, raw valid/test text (`evals`: open_split's), then manifest.json
    last (the commit)."""
    (out / "manifest.json").unlink(missing_ok=True)  # a half-built dir is never reused
    start, drops = time.time(), Counter()
    sample, n_sample = _tokenizer_sample(cfg, stats)
    tok = train_tokenizer(sample, vocab_size=cfg.vocab_size, length=n_sample)
    with _written(out / "tokenizer.json") as tmp:
        tok.save(str(tmp))
    tok.normalizer = None  # the saved file keeps NFC; every text below is NFC (clean.normalize)
    dtype = np.uint16 if tok.get_vocab_size() <= 1 << 16 else np.uint32
    stats.replaced_utf8 = 0  # the sample pass read train once already
    encode = PieceEncoder(tok, dtype)
    splits = {"train": _binarize_train(cfg, encode, out, dtype, drops, stats)}
    if splits["train"]["pairs"] == 0:
        dropped = ", ".join(f"{n} {reason}" for reason, n in drops.items() if n) or "none"
        raise DataError(
            f"no training pair is left of {splits['train']['read']} read (dropped: {dropped}); "
            "check data.train, or raise data.max_len / data.max_ratio"
        )
    for split in ("valid", "test"):
        splits[split] = _binarize_eval(cfg, split, evals[split], encode, out, dtype)
    manifest = {
        "format": FORMAT,
        "data_hash": data_hash(cfg),
        "inputs": inputs,
        "source": cfg.source,
        "src_lang": cfg.src_lang,
        "tgt_lang": cfg.tgt_lang,
        "vocab_size": tok.get_vocab_size(),
        "dtype": np.dtype(dtype).name,
        "splits": splits,
        "drops": {reason: drops[reason] for reason in clean.DROP_REASONS},
        "invalid_utf8_replaced": stats.replaced_utf8,
        "seconds": round(time.time() - start, 1),
        "config": dataclasses.asdict(cfg),
    }
    with _written(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


@contextmanager
def _written(path: Path) -> Iterator[Path]:
    """A temporary name to write `path` under, renamed onto it when the block succeeds: no reader
    sees a half-written file, and one that has the old file open (mapped) keeps reading it."""
    tmp = path.with_name(f"{path.name}.tmp")
    yield tmp
    os.replace(tmp, path)


def _check_not_overwritten(cfg: DataConfig, out: Path) -> None:
    """Refuse a data.dir where the raw corpus lies under the names of the valid/test copies it
    gets (`valid.de`, ...): those would be written over the raw files, or for `.gz` ones be read
    in their place by the next run. By name, so that the answer never changes between runs."""
    if cfg.source != "local":
        return
    langs = (cfg.src_lang, cfg.tgt_lang)
    copies = {resolved(out / f"{split}.{lang}") for split in ("valid", "test") for lang in langs}
    for split in SPLITS:
        prefix = getattr(cfg, split)
        for lang in langs:
            if prefix and resolved(f"{prefix}.{lang}") in copies:
                raise DataError(
                    f"data.dir '{out}' is where data.{split} lies ('{prefix}.{lang}'), which the "
                    "prepared data's own copy would replace; give data.dir a folder of its own"
                )


def _signatures(cfg: DataConfig) -> list[list[Any]]:
    """Each input file's path (as data_hash has it), size and mtime."""
    files = input_files(cfg)
    return [[resolved(p, cfg.dir), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_current(
    out: Path, manifest: dict[str, Any] | None, cfg: DataConfig, inputs: list[list[Any]]
) -> bool:
    if manifest is None:
        return False
    files = ["tokenizer.json"] + [
        f"{split}.{side}{ext}"
        for split in SPLITS
        for side in ("src", "tgt")
        for ext in (".npy", ".idx.npy")
    ]
    files += [
        f"{split}.{lang}" for split in ("valid", "test") for lang in (cfg.src_lang, cfg.tgt_lang)
    ]
    return (
        manifest.get("format") == FORMAT
        and manifest.get("data_hash") == data_hash(cfg)
        and manifest.get("inputs") == inputs
        and all((out / f).is_file() for f in files)
    )


def _what_changed(manifest: dict[str, Any], cfg: DataConfig, inputs: list[list[Any]]) -> str:
    """Why a prepared data.dir is not current: 'other data settings (data.max_len: ...)', ..."""
    if manifest.get("format") != FORMAT:
        return "an earlier version of data_prep"
    if manifest.get("data_hash") == data_hash(cfg):
        if manifest.get("inputs") != inputs:
            return "other raw files (data.train, data.valid or data.test changed since)"
        return "these settings, but files of it are missing"
    try:
        then = data_identity(DataConfig(**manifest["config"]), manifest["config"]["dir"])
        changed = differences("data", then, data_identity(cfg, cfg.dir))
    except (KeyError, TypeError):
        changed = ""
    return f"other data settings ({changed})" if changed else "other data settings"


def _tokenizer_sample(cfg: DataConfig, stats: Stats) -> tuple[Iterator[list[str]], int]:
    """Every k-th training pair (both sides), at most data.tokenizer_sample sentences."""
    n, chunks = open_split(cfg, "train", stats)
    stride = max(1, math.ceil(2 * n / max(cfg.tokenizer_sample, 2)))
    pairs = sample_split(cfg, stride) or _strided(chunks, stride)

    def batches() -> Iterator[list[str]]:
        total = math.ceil(n / stride)
        bar = tqdm(total=total, desc="bpe sample", unit="pairs", unit_scale=True, leave=False)
        while batch := list(islice(pairs, 10_000)):
            bar.update(len(batch))
            src, tgt = zip(*batch, strict=True)
            yield clean.normalize(list(src)) + clean.normalize(list(tgt))
        bar.close()

    return batches(), 2 * math.ceil(n / stride)


def _strided(
    chunks: Iterator[tuple[list[str], list[str]]], stride: int
) -> Iterator[tuple[str, str]]:
    """Pairs with global index divisible by `stride`, across chunk boundaries."""
    seen = 0
    for src, tgt in chunks:
        first = -seen % stride
        seen += len(src)
        yield from zip(src[first::stride], tgt[first::stride], strict=True)


class SplitWriter:
    """Appends one side's token ids to a temp file; `finish` writes the .npy and offsets."""

    def __init__(self, out: Path, name: str, dtype: type) -> None:
        self.out, self.name, self.dtype = out, name, dtype
        self.tmp = out / f"{name}.tmp"
        self.tmp.write_bytes(b"")
        self.lens: list[np.ndarray] = []

    def add(self, flat: np.ndarray, lens: np.ndarray) -> None:
        with open(self.tmp, "ab") as f:
            f.write(flat.tobytes())
        self.lens.append(lens)

    def finish(self) -> int:
        """Write {name}.npy and {name}.idx.npy; returns the number of tokens."""
        lens = np.concatenate(self.lens) if self.lens else np.zeros(0, np.int64)
        header = {
            "descr": np.dtype(self.dtype).str,
            "fortran_order": False,
            "shape": (int(lens.sum()),),
        }
        npy = self.out / f"{self.name}.npy"  # the header, then the ids
        with _written(npy) as tmp, open(self.tmp, "rb") as src, open(tmp, "wb") as dst:
            np.lib.format.write_array_header_1_0(dst, header)
            shutil.copyfileobj(src, dst, 1 << 24)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        with _written(self.out / f"{self.name}.idx.npy") as idx, open(idx, "wb") as f:
            np.save(f, offsets)
        self.tmp.unlink()
        return int(lens.sum())


def _binarize_train(
    cfg: DataConfig, encode: PieceEncoder, out: Path, dtype: type, drops: Counter, stats: Stats
) -> dict[str, int]:
    """Clean, encode and write the training split; returns its pair/token counts."""
    n, chunks = open_split(cfg, "train", stats)
    src_out, tgt_out = SplitWriter(out, "train.src", dtype), SplitWriter(out, "train.tgt", dtype)
    with tqdm(total=n, desc="train", unit="pairs", unit_scale=True) as bar:
        for src, tgt, read in _cleaned(cfg, chunks, drops):
            bar.update(read)
            (s_ids, s_lens), (t_ids, t_lens) = encode(src), encode(tgt)
            mask = clean.length_mask(s_lens, t_lens, cfg.max_len, cfg.max_ratio, drops)
            src_out.add(s_ids[np.repeat(mask, s_lens)], s_lens[mask])
            tgt_out.add(t_ids[np.repeat(mask, t_lens)], t_lens[mask])
    pairs = sum(map(len, src_out.lens))
    return {
        "read": n,
        "pairs": pairs,
        "src_tokens": src_out.finish(),
        "tgt_tokens": tgt_out.finish(),
    }


def _cleaned(
    cfg: DataConfig, chunks: Iterator[Chunk], drops: Counter
) -> Iterator[tuple[list[str], list[str], int]]:
    """Normalized, non-empty and (with data.dedup) first-seen pairs of each chunk, and the
    number of pairs read. Duplicates go before the costly encoding."""
    seen: set[int] = set()
    for src, tgt in chunks:
        read = len(src)
        src, tgt = clean.normalize(src), clean.normalize(tgt)
        src, tgt = _take(src, tgt, clean.non_empty(src, tgt, drops))
        if cfg.dedup:
            src, tgt = _take(src, tgt, clean.unseen(src, tgt, seen, drops))
        yield src, tgt, read


def _take(src: list[str], tgt: list[str], keep: list[int]) -> tuple[list[str], list[str]]:
    return [src[i] for i in keep], [tgt[i] for i in keep]


def _binarize_eval(
    cfg: DataConfig,
    split: str,
    opened: tuple[int, Iterator[Chunk]],
    encode: PieceEncoder,
    out: Path,
    dtype: type,
) -> dict[str, int]:
    """Valid/test (`opened` by open_split): every line, cleaned only for tokenizing, and the raw
    text verbatim."""
    n, chunks = opened
    writers = {side: SplitWriter(out, f"{split}.{side}", dtype) for side in ("src", "tgt")}
    langs = {"src": cfg.src_lang, "tgt": cfg.tgt_lang}
    with ExitStack() as stack:
        paths = {
            side: stack.enter_context(_written(out / f"{split}.{lang}"))
            for side, lang in langs.items()
        }
        texts = {
            side: stack.enter_context(open(path, "w", encoding="utf-8", newline=""))
            for side, path in paths.items()
        }
        for chunk in chunks:  # a few thousand lines: no progress bar
            for side, lines in zip(("src", "tgt"), chunk, strict=True):
                # one line each, also for a dataset row that holds a line break
                texts[side].writelines(line.replace("\n", " ") + "\n" for line in lines)
                writers[side].add(*encode(clean.normalize(lines)))
    tokens = {side: w.finish() for side, w in writers.items()}
    return {"read": n, "pairs": n, "src_tokens": tokens["src"], "tgt_tokens": tokens["tgt"]}
