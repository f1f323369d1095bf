"""Shared fixtures: a tiny checkpoint, a tiny prepared demo dataset, tiny-model config overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

SENTENCES = [
    "Guten Morgen, wie geht es dir?",
    "Ich habe einen kleinen Hund und eine große Katze.",
    "Das Wetter ist heute schön.",
    "Wir fahren morgen nach Berlin.",
    "Good morning, how are you?",
    "I have a small dog and a big cat.",
    "The weather is nice today.",
    "We are going to Berlin tomorrow.",
]


def write_tokenizer(path: Path, vocab_size: int = 320) -> Path:
    """Train the project's byte-level BPE on a few sentences and write it as tokenizer.json."""
    from data_prep.tokenizer import train_tokenizer

    tok = train_tokenizer(iter([SENTENCES * 4]), vocab_size, length=len(SENTENCES) * 4)
    tok.save(str(path))
    return path


def write_corpus(raw: Path, sizes=(("train", 400), ("valid", 30), ("test", 30))) -> Path:
    """Word-for-word German/English pairs as local line-aligned files raw/{split}.{de,en}."""
    import random

    de = "der die das Hund Katze Haus Baum ist groß klein rot blau sehr nicht und"
    en = "the the the dog cat house tree is big small red blue very not and"
    de, en = de.split(" "), en.split(" ")
    rng = random.Random(0)
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        pairs = [[rng.randrange(len(de)) for _ in range(rng.randint(2, 9))] for _ in range(n)]
        for lang, words in (("de", de), ("en", en)):
            lines = [" ".join(words[i] for i in p) + "\n" for p in pairs]
            (raw / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
    return raw


def tiny_overrides(root: Path, out_dir: Path) -> list[str]:
    """`--set` strings: a d=32, 1+1-layer model on root/raw (prepared in root/data), CPU, eager."""
    return [
        "data.source=local",
        f"data.train={root / 'raw' / 'train'}",
        f"data.valid={root / 'raw' / 'valid'}",
        f"data.test={root / 'raw' / 'test'}",
        f"data.dir={root / 'data'}",
        "data.vocab_size=320",
        "data.max_len=64",
        "model.d_model=32",
        "model.n_heads=2",
        "model.d_ff=64",
        "model.encoder_layers=1",
        "model.decoder_layers=1",
        "model.max_positions=128",
        f"train.out_dir={out_dir}",
        "train.device=cpu",
        "train.precision=auto",
        "train.compile=auto",  # eager on CPU
        "train.max_tokens=256",
        "train.tokens_per_update=512",
        "train.warmup=10",
        "train.lr_scale=2.0",
        "train.log_every=1",
        "train.valid_every=1000",
        "train.valid_bleu_sentences=8",
        "train.save_every=1000",
        "train.keep_last=2",
        "decode.max_len_b=10",
    ]


def stop_flag_reads(device: str, backend: str, init: Path, event: str) -> list[str | None]:
    """Stops._agreed_between_logs on 4 steps of a 1-rank group, `event` (a signal, or
    max_time or session_time running out) arriving at step 2."""
    import signal

    import torch
    import torch.distributed as dist

    from translate.config import load_config
    from translate.distributed import Dist
    from translate.stopping import Stops

    dist.init_process_group(backend, init_method=f"file://{init}", rank=0, world_size=1)
    try:
        tc = load_config(None, ["train.max_time=1h", "train.session_time=10m"]).train
        stops, up = Stops(tc, Dist(), torch.device(device), print), [False, False]
        stops.time_up = lambda: tuple(up)
        reads = [stops._agreed_between_logs()]
        if event == "signal":
            stops.signum, stops.signal_name = signal.SIGTERM, "SIGTERM"
        else:
            up[event == "session_time"] = True
        return reads + [stops._agreed_between_logs() for _ in range(3)]
    finally:
        dist.destroy_process_group()


def limit_file_size(limit: int):
    """preexec_fn: files of at most `limit` bytes, a write past it failing with EFBIG (as one
    into a full disk with ENOSPC) instead of killing the process with SIGXFSZ."""
    import resource
    import signal

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained d=32 checkpoint dir (model.safetensors, config.yaml, tokenizer.json)."""
    import torch

    from data_prep import load_tokenizer
    from translate.checkpoint import save_checkpoint
    from translate.config import load_config
    from translate.model import Transformer

    root = tmp_path_factory.mktemp("tiny_checkpoint")
    tokenizer = write_tokenizer(root / "tokenizer.json", vocab_size=320)
    cfg = load_config(None, tiny_overrides(root, root / "run"))
    torch.manual_seed(0)
    model = Transformer(cfg.model, load_tokenizer(tokenizer).get_vocab_size(), pad_id=0)
    return save_checkpoint(root / "ckpt", model, cfg, tokenizer)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Root of raw/ (400 generated train pairs) and data/ (prepared, 320-token BPE), once."""
    from data_prep import prepare
    from translate.config import load_config

    root = tmp_path_factory.mktemp("tiny_data")
    write_corpus(root / "raw")
    prepare(load_config(None, tiny_overrides(root, root / "unused")).data)
    return root


@pytest.fixture
def tiny_cfg(tiny_data, tmp_path):
    """Factory: a Config for the tiny model writing to tmp_path/run, with extra overrides."""
    from translate.config import load_config

    def make(*extra: str, out: str = "run"):
        return load_config(None, tiny_overrides(tiny_data, tmp_path / out) + list(extra))

    return make
