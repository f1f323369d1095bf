"""Raw parallel text: WMT14 via Hugging Face `datasets`, line-aligned local files, the demo corpus.

Every source yields a split as chunks of raw (not yet cleaned) sentence pairs, so a 4.5M-pair
corpus streams through in constant memory.
"""

from __future__ import annotations

import errno
import gzip
import os
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from translate.config import DataConfig

SPLITS = ("train", "valid", "test")
CHUNK = 20_000  # pairs per chunk
Chunk = tuple[list[str], list[str]]  # (source sentences, target sentences)


class DataError(ValueError):
    """A data problem the user can fix; the message is one line that says what and how."""


class Stats:
    """Counts kept while reading: lines whose invalid UTF-8 was replaced."""

    def __init__(self) -> None:
        self.replaced_utf8 = 0


def open_split(cfg: DataConfig, split: str, stats: Stats) -> tuple[int, Iterator[Chunk]]:
    """(number of pairs, iterator of chunks) for one split of the configured source."""
    if cfg.source == "local":
        return _local_split(cfg, split, stats)
    if cfg.source == "wmt14":
        return _wmt14_split(cfg, split)
    from data_prep.demo_corpus import demo_splits

    src, tgt = demo_splits(cfg.demo_pairs, cfg.src_lang, cfg.tgt_lang)[split]
    return len(src), iter([(src, tgt)])


def input_files(cfg: DataConfig) -> list[Path]:
    """The local files a prepared directory depends on (their size and mtime join the cache key)."""
    if cfg.source != "local":
        return []
    return [_find(cfg, split, lang) for split in SPLITS for lang in (cfg.src_lang, cfg.tgt_lang)]


# ---------------------------------------------------------------- local files


def _find(cfg: DataConfig, split: str, lang: str) -> Path:
    prefix = getattr(cfg, split)
    if not prefix:
        raise DataError(f"data.{split} is empty; source: local needs a path prefix for {split}")
    for path in (Path(f"{prefix}.{lang}"), Path(f"{prefix}.{lang}.gz")):
        if path.is_file():
            return path
    where = "" if Path(prefix).is_absolute() else f" (that is {Path(prefix).resolve()}.{lang})"
    raise DataError(
        f"file '{prefix}.{lang}' (or '{prefix}.{lang}.gz') does not exist{where}; set "
        f"data.{split}=PREFIX where PREFIX.{cfg.src_lang} and PREFIX.{cfg.tgt_lang} are"
    )


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


@contextmanager
def gzip_errors(path: Path) -> Iterator[None]:
    """A damaged .gz file (cut short, or not gzip at all) is a DataError naming it."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(
            f"'{path}' is not a complete gzip file ({e}); download it again, or give the "
            "uncompressed file"
        ) from None


def count_lines(path: Path) -> int:
    """Lines in a (possibly gzipped) file, as read_lines yields them: a last line without a
    newline counts; a byte-order mark alone is no line."""
    n, last = 0, b"\n"
    with gzip_errors(path), _open(path) as f:
        if f.read(3) != b"\xef\xbb\xbf":
            f.seek(0)
        while block := f.read(1 << 22):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def read_lines(path: Path, policy: str, stats: Stats, size: int = CHUNK) -> Iterator[list[str]]:
    """Decoded lines without BOM or line ending (CRLF or LF), `size` per list; not stripped or
    normalized. Each block of lines is decoded in one call; only a block holding invalid UTF-8
    is redone line by line (to name the line, or to replace and count)."""
    with gzip_errors(path), _open(path) as f:
        first = f.read(3)
        if first != b"\xef\xbb\xbf":
            f.seek(0)
        lineno = 0
        while raw := list(islice(f, size)):
            block = b"".join(raw)
            try:
                lines = block.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                lines = [
                    _decode_line(r, path, lineno + i, policy, stats) for i, r in enumerate(raw, 1)
                ]
            else:
                if block.endswith(b"\n"):
                    lines.pop()  # the split leaves "" after the last newline
            if b"\r" in block:
                lines = [line.removesuffix("\r") for line in lines]
            lineno += len(raw)
            yield lines


def _decode_line(raw: bytes, path: Path, lineno: int, policy: str, stats: Stats) -> str:
    raw = raw.removesuffix(b"\n")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if policy != "replace":
            raise DataError(
                f"{path}:{lineno}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                f"{e.start + 1}); fix the file or set data.invalid_utf8: replace"
            ) from None
        stats.replaced_utf8 += 1
        return raw.decode("utf-8", errors="replace")


def sample_lines(path: Path, stride: int) -> Iterator[str]:
    """Every stride-th line from the first, skipped in C: a fast tokenizer sample.
    Undecodable bytes are replaced here; the full pass reports them."""
    with gzip_errors(path), _open(path) as f:
        for raw in islice(f, 0, None, stride):
            yield (
                raw.removeprefix(b"\xef\xbb\xbf")
                .rstrip(b"\n")
                .rstrip(b"\r")
                .decode(errors="replace")
            )


def sample_split(cfg: DataConfig, stride: int) -> Iterator[tuple[str, str]] | None:
    """Stride-sampled training pairs read directly from local files (None for other sources)."""
    if cfg.source != "local":
        return None
    src, tgt = (
        sample_lines(_find(cfg, "train", lang), stride) for lang in (cfg.src_lang, cfg.tgt_lang)
    )
    return zip(src, tgt, strict=True)


def _local_split(cfg: DataConfig, split: str, stats: Stats) -> tuple[int, Iterator[Chunk]]:
    src_path, tgt_path = _find(cfg, split, cfg.src_lang), _find(cfg, split, cfg.tgt_lang)
    n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
    if n_src != n_tgt:
        raise DataError(
            f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}; "
            "the files must be line-aligned"
        )
    if n_src == 0 and split != "train":
        raise DataError(
            f"'{src_path}' has no lines; data.{split} must name a {split} set of at least one pair "
            f"({'the trainer validates on it' if split == 'valid' else 'evaluate scores it'})"
        )

    def chunks() -> Iterator[Chunk]:
        src_blocks = read_lines(src_path, cfg.invalid_utf8, stats)
        tgt_blocks = read_lines(tgt_path, cfg.invalid_utf8, stats)
        yield from zip(src_blocks, tgt_blocks, strict=True)

    return n_src, chunks()


# ---------------------------------------------------------------- WMT14 (Hugging Face hub)

WMT14_REPO = "wmt/wmt14"  # the hub's parquet conversion of the script-based "wmt14"
WMT14_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


def load_wmt14(cfg: DataConfig):
    """The `datasets` DatasetDict of wmt14 de-en (train: Europarl v7 + News Commentary v9 + Common
    Crawl, validation: newstest2013, test: newstest2014), or a one-line DataError when offline."""
    from datasets import load_dataset

    pair = "-".join(sorted((cfg.src_lang, cfg.tgt_lang)))
    offline = not hub_reachable()
    if offline:
        go_offline()  # a cached copy still loads; otherwise fail now, not after 5 retries
    try:
        return load_dataset(WMT14_REPO, pair)
    except Exception as e:  # hub unreachable, offline mode, unknown config, a full disk, ...
        if disk_full(e):  # `datasets` wraps it: "An error occurred while generating the dataset"
            from huggingface_hub.constants import HF_HOME

            raise DataError(
                f"no space left on the disk of the Hugging Face cache ('{HF_HOME}') while loading "
                f"'{WMT14_REPO}' ({pair}), which needs about 2.2 GB there (0.8 GB of parquet, 1.4 "
                "GB of Arrow); free space on it, or set HF_HOME to a folder on a disk with room"
            ) from None
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        if offline:
            reason = (
                f"the hub's host does not resolve (offline?) and no cached copy loads ({reason})"
            )
        raise DataError(
            f"could not load the Hugging Face dataset '{WMT14_REPO}' ({pair}): {reason}; without "
            "hub access, put line-aligned files on disk and set data.source=local with data.train, "
            "data.valid and data.test naming them (PREFIX.de + PREFIX.en)"
        ) from None


def disk_full(e: BaseException | None) -> bool:
    """Whether `e`, or an exception it was raised from, is an OSError for a full disk."""
    while e is not None:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        e = e.__cause__ or e.__context__
    return False


def hub_reachable() -> bool:
    """Whether the Hugging Face hub's host name resolves (offline machines fail at once)."""
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.getaddrinfo(host.split(":")[0], 443)
    except OSError:
        return False
    return True


def go_offline() -> None:
    """Switch `datasets` and `huggingface_hub` to offline mode for this process (cache only)."""
    import datasets.config
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True


def _wmt14_split(cfg: DataConfig, split: str) -> tuple[int, Iterator[Chunk]]:
    ds = load_wmt14(cfg)[WMT14_SPLITS[split]]

    def chunks() -> Iterator[Chunk]:
        # Arrow record batches: never materializes the 4.5M rows as Python objects at once.
        for table in ds.with_format("arrow").iter(batch_size=CHUNK):
            column = table.column("translation").combine_chunks()
            yield column.field(cfg.src_lang).to_pylist(), column.field(cfg.tgt_lang).to_pylist()

    return ds.num_rows, chunks()
