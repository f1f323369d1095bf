"""Checkpoints: round trip, one-line errors, no unpickling of code, atomic replace, averaging."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from conftest import tiny_overrides, write_tokenizer

from translate.checkpoint import (
    CheckpointError,
    atomic_dir,
    average_checkpoints,
    find_default_checkpoint,
    load_model,
    load_trainer_state,
    recover,
    save_checkpoint,
)
from translate.config import load_config
from translate.model import Transformer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", vocab_size=320)


def tiny_model(seed: int = 0):
    cfg = load_config(None, tiny_overrides(Path("."), Path(".")))
    torch.manual_seed(seed)
    return Transformer(cfg.model, 320, pad_id=0).eval(), cfg


def test_round_trip_and_tied_embedding_stored_once(tok_file, tmp_path):
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "ckpt", model, cfg, tok_file)
    stored = safetensors.torch.load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    unique = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
    assert len(stored) == len(unique)  # a shared (tied) tensor is stored once
    loaded, cfg2, tokenizer = load_model(tmp_path / "ckpt")
    assert cfg2 == cfg and tokenizer.get_vocab_size() == 320
    src, tgt = torch.randint(4, 320, (2, 7)), torch.randint(4, 320, (2, 5))
    torch.testing.assert_close(loaded(src, tgt), model(src, tgt), rtol=0, atol=0)
    tied = [p for p in loaded.parameters() if p.shape[0] == 320 and p.dim() == 2]
    assert len(tied) == 1  # still one shared matrix after loading


DAMAGES = ["no_dir", "no_weights", "corrupt", "other_tokenizer", "config", "nan", "missing"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_broken_checkpoints_raise_one_line_errors(tok_file, tmp_path, damage):
    model, cfg = tiny_model()
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, tok_file)
    if damage == "no_dir":
        ckpt = tmp_path / "nope"
    elif damage == "no_weights":
        (ckpt / "model.safetensors").unlink()
    elif damage == "corrupt":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif damage == "other_tokenizer":
        write_tokenizer(ckpt / "tokenizer.json", vocab_size=384)
    elif damage in ("nan", "missing"):  # a readable file with a NaN weight, or one tensor fewer
        weights = safetensors.torch.load_file(ckpt / "model.safetensors")
        name = "decoder.layers.0.fc1.weight"
        if damage == "nan":
            weights[name][0, 0] = float("nan")
        else:
            del weights[name]
        safetensors.torch.save_file(weights, ckpt / "model.safetensors")
    else:
        (ckpt / "config.yaml").write_text("model: {d_model: 33}\n")
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    assert len(str(err.value).splitlines()) == 1
    if damage in ("nan", "missing"):
        assert "decoder.layers.0.fc1.weight" in str(err.value)


class Evil:
    """Unpickling this would create a file (a stand-in for running arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_poisoned_trainer_state_is_never_unpickled(tok_file, tmp_path):
    model, cfg = tiny_model()
    ckpt = save_checkpoint(tmp_path / "last", model, cfg, tok_file, {"step": 1})
    marker = tmp_path / "pwned"
    torch.save({"step": 3, "rng": Evil(marker)}, ckpt / "trainer_state.pt")
    with pytest.raises(CheckpointError, match="refusing"):
        load_trainer_state(ckpt)
    load_model(ckpt)  # weights load fine; trainer_state.pt is never touched
    assert not marker.exists()


def test_failed_save_leaves_the_old_checkpoint(tok_file, tmp_path):
    old, cfg = tiny_model(seed=0)
    save_checkpoint(tmp_path / "last", old, cfg, tok_file, {"step": 1})
    new, _ = tiny_model(seed=1)
    with pytest.raises(FileNotFoundError):  # dies after model.safetensors was written
        save_checkpoint(tmp_path / "last", new, cfg, tmp_path / "missing.json", {"step": 2})
    assert load_trainer_state(tmp_path / "last")["step"] == 1
    loaded, _, _ = load_model(tmp_path / "last")
    for a, b in zip(loaded.state_dict().values(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temp dir left behind


def test_crash_between_renames_is_recovered(tok_file, tmp_path):
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "last", model, cfg, tok_file, {"step": 5})
    os.replace(tmp_path / "last", tmp_path / ".last.old-123")  # state right after the 1st rename
    recover(tmp_path / "last")
    assert load_trainer_state(tmp_path / "last")["step"] == 5
    with atomic_dir(tmp_path / "last") as tmp:  # a normal replace removes the old copy
        (tmp / "x").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_average_of_step_checkpoints(tok_file, tmp_path):
    run = tmp_path / "run"
    models = [tiny_model(seed=s) for s in range(3)]
    for i, (m, cfg) in enumerate(models):
        save_checkpoint(run / f"step_{(i + 1) * 100:07d}", m, cfg, tok_file)
    script = REPO / "scripts" / "average_checkpoints.py"
    cmd = [sys.executable, str(script), "--run", str(run), "--last", "2", "--out", str(run / "avg")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    avg, _, _ = load_model(run / "avg")
    b, c = models[1][0].state_dict(), models[2][0].state_dict()
    for name, value in avg.state_dict().items():
        torch.testing.assert_close(value, (b[name] + c[name]) / 2)
    same = average_checkpoints([run / "step_0000100"], tmp_path / "one")
    assert (same / "config.yaml").is_file()


def test_find_default_checkpoint_prefers_best_of_newest_run(tok_file, tmp_path):
    assert find_default_checkpoint(tmp_path / "runs") is None
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "runs" / "old" / "best", model, cfg, tok_file)
    save_checkpoint(tmp_path / "runs" / "new" / "last", model, cfg, tok_file)
    os.utime(tmp_path / "runs" / "old" / "best", (1, 1))
    assert find_default_checkpoint(tmp_path / "runs") == tmp_path / "runs" / "new" / "last"
    shutil.copytree(tmp_path / "runs" / "new" / "last", tmp_path / "runs" / "new" / "best")
    assert find_default_checkpoint(tmp_path / "runs") == tmp_path / "runs" / "new" / "best"
