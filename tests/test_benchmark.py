"""The benchmark harness (scripts/bench_models.py) fails with one line, never hangs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_models  # noqa: E402
import benchmark  # noqa: E402

from translate.config import load_config


def test_an_engine_process_that_dies_is_reported_not_waited_for():
    """A decoding engine killed without a word (out of memory, a crash in a native library) must
    end the benchmark with its exit code: the parent holding the child's end of the pipe made
    it wait forever."""
    with pytest.raises(SystemExit, match="exited with code 3"):
        bench_models.EngineProcess(1, os._exit, 3)  # the child builds its engine: exits at once


def test_the_big_corpus_settings_are_a_valid_config():
    """`benchmark.py --big` and the command in docs/benchmarks.md stopped at once when a config
    check came to refuse data.max_len 256 with the Multi30k model's 256 positions."""
    cfg = load_config("configs/multi30k.yaml", benchmark.BIG)
    assert (cfg.data.vocab_size, cfg.data.max_len) == (37000, 256)
