"""Trainer: schedule, exact gradient accumulation, exact resume after SIGKILL, signals, the CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import limit_file_size, tiny_overrides
from safetensors import safe_open

import translate.train as train_mod
from data_prep import DataError, prepare
from translate.checkpoint import CheckpointError, checkpoint_info
from translate.config import ConfigError, load_config
from translate.distributed import Dist
from translate.runlog import Interval
from translate.step import lr_at
from translate.stopping import Stops
from translate.train import Trainer

REPO = Path(__file__).resolve().parents[1]


def test_decay_ends_where_max_time_runs_out():
    cfg = load_config("configs/demo.yaml", ["train.max_steps=1000", "train.max_time=100s"])
    now, stops = time.time(), Stops(cfg.train, Dist(), torch.device("cpu"), print)
    stops.session_start = now - 20
    end = stops.projected_end(100)  # 0.2 s per step, about 80 s left: about 400 more steps
    assert 480 <= end <= 500
    stops.session_start = now - 1  # a fast machine: max_steps ends first
    assert stops.projected_end(100) == 1000
    stops.session_step = 100  # resumed, no step taken yet: keep the saved end
    stops.decay_end = 777
    assert stops.projected_end(100) == 777


def train_cmd(*sets: str, config: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "translate.train"] + (["--config", config] if config else [])
    return cmd + [x for s in sets for x in ("--set", s)]


ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def run_train(*sets: str, config: str | None = None) -> subprocess.CompletedProcess:
    cmd = train_cmd(*sets, config=config)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)


def log_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_resume_after_sigkill_is_exact(tiny_data, tmp_path):
    steps = ["train.max_steps=30", "train.save_every=4", "model.dropout=0.3"]
    full = run_train(*tiny_overrides(tiny_data, tmp_path / "full"), *steps)
    assert full.returncode == 0, full.stderr

    sets = [*tiny_overrides(tiny_data, tmp_path / "cut"), *steps]
    proc = subprocess.Popen(
        train_cmd(*sets), cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    state = tmp_path / "cut" / "last" / "trainer_state.pt"
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    resumed = run_train(*sets)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    step = int(resumed.stdout.split("resumed from")[1].split("at step")[1].split()[0])
    assert 0 < step < 30
    expected, got = log_losses(tmp_path / "full"), log_losses(tmp_path / "cut")
    assert sorted(got) == list(range(1, 31))
    assert [got[s] for s in range(step + 1, 31)] == [expected[s] for s in range(step + 1, 31)]
    # the same tensors and metadata (safetensors writes metadata keys in no fixed order)
    full, cut = (
        safe_open(str(tmp_path / r / "last/model.safetensors"), "pt") for r in ("full", "cut")
    )
    assert full.metadata() == cut.metadata() and full.keys() == cut.keys()
    assert all(torch.equal(full.get_tensor(k), cut.get_tensor(k)) for k in full.keys())  # noqa: SIM118


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_exits_128_plus_its_number(tiny_data, tmp_path, sig):
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_time=5m"]
    proc = subprocess.Popen(
        train_cmd(*sets),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err  # 143 / 130: interrupted, as shells expect
    assert sig.name in out and "resume" in out
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert state["step"] >= 2


def test_demo_config_end_to_end(tmp_path):
    """The README path: configs/demo.yaml on a small generated corpus, 3 steps, then best/last."""
    out = tmp_path / "run"
    sets = [
        "data.demo_pairs=300",
        f"data.dir={tmp_path / 'data'}",
        "train.max_steps=3",
        f"train.out_dir={out}",
        "train.valid_bleu_sentences=4",
        "train.max_tokens=1024",
        "decode.max_len_b=5",
        "train.device=cpu",
    ]
    proc = run_train(*sets, config="configs/demo.yaml")
    assert proc.returncode == 0, proc.stderr
    for name in ("best/model.safetensors", "last/trainer_state.pt", "log.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3] and {"loss", "valid_bleu"} <= set(rows[0])
    assert "parameters" in proc.stdout and "precision fp32" in proc.stdout
    assert "step 3 valid: loss" in proc.stdout and "new best" in proc.stdout


def test_user_errors_are_one_line(tmp_path):
    proc = run_train(
        f"train.out_dir={tmp_path}",
        "data.source=local",
        f"data.dir={tmp_path}/d",
        f"data.train={tmp_path}/nope",
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    proc = run_train("train.out_dir=/proc/no_such_run")  # an OSError, even as root
    assert proc.returncode == 1, proc.stderr
    assert "no --config" in proc.stdout
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "/proc/no_such_run" in proc.stderr and "train.out_dir" in proc.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="POSIX file size limits")
@pytest.mark.parametrize(
    ("limit", "name"),
    [(64_000, "model.safetensors"), (200_000, "trainer_state.pt")],  # 131 KB, 318 KB
)
def test_a_checkpoint_write_that_fails_is_one_line(tiny_data, tmp_path, limit, name):
    """safetensors raises its own SafetensorError and torch.save a RuntimeError ('unexpected pos
    576 vs 534') for a full disk: both read as the OSError they are, naming the file."""
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_steps=4"]
    proc = subprocess.run(
        train_cmd(*sets, "train.save_every=2"),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=300,
        preexec_fn=limit_file_size(limit),
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: File too large: ") and "free space" in error, proc.stderr
    assert f"{tmp_path / 'run' / 'last' / name}'" in error
    assert not list((tmp_path / "run").glob(".last.tmp-*"))


@pytest.mark.parametrize("fail_at", [1, 3])
def test_compile_failure_falls_back_to_eager(tiny_cfg, monkeypatch, capsys, fail_at):
    """At the first call, where compiling happens, or at a later recompile: the update is
    redone in eager mode from the same RNG state, so the run equals an eager one."""
    eager_cfg = tiny_cfg("train.max_steps=4", "train.valid_bleu_sentences=0", "model.dropout=0.3")
    train_mod.train(eager_cfg)
    calls = 0

    def compile_failing_at_call(net, **kw):
        def compiled(*a, **k):
            nonlocal calls
            calls += 1
            out = net(*a, **k)  # draws dropout masks first: the redo must start from the same RNG
            if calls == fail_at:
                raise RuntimeError("inductor exploded")
            return out

        return compiled

    monkeypatch.setattr(torch, "compile", compile_failing_at_call)
    # quoted: YAML would read a bare `on` as true
    cfg = tiny_cfg(
        "train.max_steps=4",
        "train.compile='on'",
        "train.valid_bleu_sentences=0",
        "model.dropout=0.3",
        out="compiled",
    )
    train_mod.train(cfg)
    out = capsys.readouterr().out
    assert "inductor exploded" in out and "eager" in out
    assert log_losses(Path(cfg.train.out_dir)) == log_losses(Path(eager_cfg.train.out_dir))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_non_finite_losses_stop_with_a_message(tiny_cfg, monkeypatch, precision):
    """Also under fp16's GradScaler, which skips overflowing gradients by itself but cannot
    mend a loss that overflowed in the forward pass."""

    def nan_step(net, micro, optimizer, *args):
        return torch.tensor(float("nan")), torch.tensor(float("nan")), torch.tensor(False)

    monkeypatch.setattr(train_mod, "train_step", nan_step)
    with pytest.raises(train_mod.TrainingError, match="non-finite for 5 updates"):
        train_mod.train(tiny_cfg("train.max_steps=20", f"train.precision={precision}"))


def test_cuda_oom_suggests_smaller_max_tokens(tiny_cfg, monkeypatch):
    def oom(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(train_mod, "train_step", oom)
    with pytest.raises(train_mod.TrainingError, match="train.max_tokens=128"):
        train_mod.train(tiny_cfg("train.max_steps=2"))


@pytest.mark.parametrize("log_every", [1, 1000])
def test_max_epochs_ends_with_a_checkpoint_and_one_record_for_the_last_step(tiny_cfg, log_every):
    cfg = tiny_cfg(
        "train.max_epochs=1",
        "train.max_tokens=1024",
        "train.valid_bleu_sentences=0",
        f"train.log_every={log_every}",
    )
    train_mod.train(cfg)
    state = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["batch_in_epoch"] == 0 and state["step"] > 3
    assert (Path(cfg.train.out_dir) / "best" / "model.safetensors").is_file()
    log = (Path(cfg.train.out_dir) / "log.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in log]
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})  # one record a step
    # the last record: the updates since the last log step (all of them with log_every=1000)
    # and the final validation
    assert rows[-1]["step"] == state["step"] and {"loss", "valid_loss"} <= rows[-1].keys()
    assert state["interval"]["tokens"] == 0  # logged, so a longer resumed run does not repeat it


def train_until_signal(cfg, step: int, sig: int, monkeypatch) -> int:
    """train(cfg) with `sig` arriving after update `step` -> the exit status."""
    after_update = Trainer._after_update

    def signal_at_step(self):
        after_update(self)
        if self.step == step:
            self.stops.on_signal(sig, None)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_after_update", signal_at_step)
        return train_mod.train(cfg)


def test_a_resume_between_log_steps_logs_the_same_losses(tiny_cfg, monkeypatch):
    sets = ("train.max_steps=6", "train.log_every=3", "train.valid_bleu_sentences=0")
    full = tiny_cfg(*sets, "model.dropout=0.3", out="full")
    cut = tiny_cfg(*sets, "model.dropout=0.3", out="cut")
    assert train_mod.train(full) == 0
    assert train_until_signal(cut, 4, signal.SIGTERM, monkeypatch) == 128 + signal.SIGTERM
    state = torch.load(Path(cut.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and state["interval"]["tokens"] > 0  # step 4's, not yet logged
    assert train_mod.train(cut) == 0
    assert log_losses(Path(cut.train.out_dir)) == log_losses(Path(full.train.out_dir))
    assert sorted(log_losses(Path(cut.train.out_dir))) == [3, 6]


def test_resume_keeps_the_score_of_best_not_the_older_one_in_last(tiny_cfg):
    cfg = tiny_cfg("train.max_steps=4", "train.valid_every=2", "train.valid_bleu_sentences=0")
    train_mod.train(cfg)
    run = Path(cfg.train.out_dir)
    info = checkpoint_info(run / "best")
    rows = {r["step"]: r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}
    assert float(info["valid_score"]) == -rows[int(info["step"])]["valid_loss"]
    state = torch.load(run / "last" / "trainer_state.pt", weights_only=True)
    state["best"] = -1e9  # as if last/ was saved before best/'s validation
    torch.save(state, run / "last" / "trainer_state.pt")
    trainer = Trainer(tiny_cfg("train.max_steps=8", "train.valid_bleu_sentences=0"))
    assert trainer.best == float(info["valid_score"]) and trainer.step == 4
    (run / "best" / "model.safetensors").write_bytes(b"damaged")  # replaced at the next check
    assert Trainer(tiny_cfg("train.max_steps=8", "train.valid_bleu_sentences=0")).best is None


def test_the_first_validation_saves_last_so_that_a_kill_after_it_resumes(tiny_cfg, monkeypatch):
    """best/ without last/ would refuse the re-run (a demo killed between steps 200 and 500):
    the first validation saves last/, and best/ only after it."""
    saved, save = [], Trainer._save_checkpoint
    monkeypatch.setattr(
        Trainer,
        "_save_checkpoint",
        lambda self, path, *a, **k: (
            saved.append((self.step, path.name)),
            save(self, path, *a, **k),
        ),
    )
    sets = ("train.valid_every=2", "train.save_every=1000", "train.valid_bleu_sentences=0")
    train_mod.train(tiny_cfg("train.max_steps=6", *sets))
    assert saved[:2] == [(2, "last"), (2, "best")] and saved[-1][0] == 6


def test_a_best_lost_to_a_kill_after_the_first_last_is_written_on_resume(tiny_cfg, monkeypatch):
    save = Trainer._save_checkpoint

    def killed_at_best(self, path, *args, **kwargs):
        if path.name == "best":
            raise SystemExit(137)
        save(self, path, *args, **kwargs)

    sets = ("train.valid_every=2", "train.save_every=1000", "train.valid_bleu_sentences=0")
    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(Trainer, "_save_checkpoint", killed_at_best)
        train_mod.train(tiny_cfg("train.max_steps=6", *sets))
    run = Path(tiny_cfg().train.out_dir)
    assert not (run / "best").exists()
    trainer = Trainer(tiny_cfg("train.max_steps=6", *sets))
    assert checkpoint_info(run / "best")["step"] == "2" and trainer.best is not None


def test_a_step_checkpoint_lost_to_a_kill_after_last_is_written_on_resume(tiny_cfg):
    sets = ("train.save_every=2", "train.valid_bleu_sentences=0")
    train_mod.train(tiny_cfg("train.max_steps=4", *sets))
    run = Path(tiny_cfg().train.out_dir)
    shutil.rmtree(run / "step_0000004")  # killed between last/ and step_0000004
    trainer = Trainer(tiny_cfg("train.max_steps=6", *sets))
    assert sorted(p.name for p in run.glob("step_*")) == ["step_0000002", "step_0000004"]
    assert trainer.step == 4


def test_a_trainer_state_that_does_not_fit_is_one_line(tiny_cfg):
    train_mod.train(tiny_cfg("train.max_steps=2", "train.valid_bleu_sentences=0"))
    path = Path(tiny_cfg().train.out_dir) / "last" / "trainer_state.pt"
    state = torch.load(path, weights_only=True)
    state["optimizer"]["param_groups"] = []
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="does not fit this trainer .ValueError"):
        Trainer(tiny_cfg("train.max_steps=4"))


def test_out_of_memory_while_resuming_is_not_blamed_on_the_checkpoint(
    tiny_data, tmp_path, monkeypatch, capsys
):
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.valid_bleu_sentences=0"]
    train_mod.train(load_config(None, [*sets, "train.max_steps=2"]))

    def oom(self, state):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB\nmore")

    monkeypatch.setattr(Trainer, "_restore", oom)
    capsys.readouterr()
    sets = [x for s in [*sets, "train.max_steps=4"] for x in ("--set", s)]
    assert train_mod.main(sets) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: CUDA out of memory. Tried to allocate 2 GiB; free GPU memory")
    assert "does not fit" not in err and len(err.splitlines()) == 1


def test_a_new_max_time_on_resume_projects_the_decay_end_at_the_earlier_pace(tiny_cfg):
    """Not the new max_steps (or no end) until this session has measured its pace: the lr of a
    run annealed to 0 would jump back up."""
    sets = ("train.decay=linear", "train.valid_bleu_sentences=0")
    train_mod.train(tiny_cfg(*sets, "train.max_time=1h", "train.max_steps=4"))
    trainer = Trainer(tiny_cfg(*sets, "train.max_time=2h", "train.max_steps=0"))
    stops = trainer.stops
    assert trainer.step == 4 and stops.elapsed > 0
    assert stops.decay_end == 4 + int((7200 - stops.elapsed) / (stops.elapsed / 4))


def test_session_time_ends_a_session_and_the_next_one_goes_on(tiny_cfg, capsys):
    cfg = tiny_cfg(
        "train.session_time=1s", "train.max_steps=100000", "train.valid_bleu_sentences=0"
    )
    train_mod.train(cfg)
    first = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    out = capsys.readouterr().out
    assert "reached train.session_time=1s" in out and "re-run the same command" in out
    train_mod.train(cfg)
    second = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    assert (
        f"resumed from {cfg.train.out_dir}/last at step {first['step']}" in capsys.readouterr().out
    )
    assert second["step"] > first["step"] > 0


def test_max_time_counts_every_session(tiny_cfg, capsys):
    cfg = tiny_cfg("train.max_time=1s", "train.max_steps=100000", "train.valid_bleu_sentences=0")
    train_mod.train(cfg)
    first = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    train_mod.train(cfg)
    assert "reached train.max_time=1s (training time over all sessions)" in capsys.readouterr().out
    second = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    assert second["step"] == first["step"] > 0


def test_last_without_trainer_state_is_refused(tiny_cfg):
    cfg = tiny_cfg("train.max_steps=2", "train.save_every=1", "train.valid_bleu_sentences=0")
    train_mod.train(cfg)
    run = Path(cfg.train.out_dir)
    (run / "last" / "trainer_state.pt").unlink()  # e.g. an average written over last/
    with pytest.raises(CheckpointError, match="has no trainer_state.pt"):
        train_mod.train(cfg)
    shutil.rmtree(run / "last")  # step checkpoints left: a fresh start would delete them
    with pytest.raises(CheckpointError, match="step checkpoints and best/ .* but no last"):
        train_mod.train(cfg)


def test_fresh_start_drops_an_earlier_runs_log(tiny_cfg, capsys):
    cfg = tiny_cfg("train.max_steps=2", "train.valid_bleu_sentences=0")
    Path(cfg.train.out_dir).mkdir()
    (Path(cfg.train.out_dir) / "log.jsonl").write_text('{"step": 99, "loss": 1.0}\n')
    train_mod.train(cfg)
    assert sorted(log_losses(Path(cfg.train.out_dir))) == [1, 2]
    assert "starting over" in capsys.readouterr().out


def test_resume_with_other_data_settings_leaves_the_data_alone(tiny_cfg, tiny_data, tmp_path):
    """The refusal names what changed; the same files under another path are the same data."""
    data = f"data.dir={tmp_path / 'data'}"
    train_mod.train(tiny_cfg(data, "train.max_steps=1", "train.valid_bleu_sentences=0"))
    manifest = (tmp_path / "data" / "manifest.json").read_bytes()
    with pytest.raises(CheckpointError, match=r"other data settings \(data.max_len: 64 then, 50 "):
        Trainer(tiny_cfg(data, "data.max_len=50"))
    with pytest.raises(CheckpointError, match=r"other model settings \(model.d_ff: 64 then, 48 "):
        Trainer(tiny_cfg(data, "model.d_ff=48"))
    assert (tmp_path / "data" / "manifest.json").read_bytes() == manifest
    (tmp_path / "link").symlink_to(tiny_data / "raw")
    splits = [f"data.{s}={tmp_path / 'link' / s}" for s in ("train", "valid", "test")]
    Trainer(tiny_cfg(data, *splits))  # resumes
    assert (tmp_path / "data" / "manifest.json").read_bytes() == manifest


def test_a_rebuild_of_its_data_dir_does_not_reach_a_running_trainer(tiny_cfg, tmp_path):
    """Another config rebuilding a shared data.dir: the run saves the tokenizer it trains with."""
    data = f"data.dir={tmp_path / 'data'}"
    trainer = Trainer(tiny_cfg(data, "train.max_steps=1", "train.valid_bleu_sentences=0"))
    tokenizer = (tmp_path / "data" / "tokenizer.json").read_bytes()
    prepare(tiny_cfg(data, "data.tokenizer_sample=60").data)
    assert (tmp_path / "data" / "tokenizer.json").read_bytes() != tokenizer
    trainer.run()
    assert (tmp_path / "run" / "last" / "tokenizer.json").read_bytes() == tokenizer


def test_resume_refuses_an_edited_last_config(tiny_cfg):
    """last/config.yaml edited to match a new --set: the weights were trained with other heads."""
    cfg = tiny_cfg("train.max_steps=1", "train.valid_bleu_sentences=0")
    train_mod.train(cfg)
    config = Path(cfg.train.out_dir) / "last" / "config.yaml"
    config.write_text(config.read_text().replace("n_heads: 2", "n_heads: 1"))
    with pytest.raises(CheckpointError, match=r"saved \(model.n_heads: 2 then, 1 now\)"):
        Trainer(tiny_cfg("model.n_heads=1", "train.max_steps=2"))


def test_resume_takes_the_configs_weight_decay(tiny_cfg):
    train_mod.train(tiny_cfg("train.weight_decay=0.01", "train.max_steps=1"))
    groups = Trainer(tiny_cfg("train.weight_decay=0.1", "train.max_steps=2")).optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    with pytest.raises(CheckpointError, match="train.weight_decay"):
        Trainer(tiny_cfg("train.weight_decay=0", "train.max_steps=2"))


def test_out_dir_or_data_dir_that_is_a_file_is_refused(tiny_cfg, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="train.out_dir .* is a file"):
        Trainer(tiny_cfg(out="file"))
    with pytest.raises(DataError, match="data.dir .* is a file"):
        Trainer(tiny_cfg(f"data.dir={tmp_path / 'file'}"))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_precisions_train_and_resume_on_cpu(tiny_cfg, precision, capsys):
    """The trainer's fp16 + GradScaler path (a T4's) and its bf16 path, run on CPU autocast: they
    train, save the scaler's state with the checkpoint and resume from it."""
    cfg = tiny_cfg(f"train.precision={precision}", "train.max_steps=2", "train.save_every=1")
    train_mod.train(cfg)
    out = capsys.readouterr().out
    assert f"precision {precision} (train.precision={precision}) |" in out
    if precision == "fp16":  # a slow choice is said on a line of its own
        assert "\nwarning: CPUs have no fast fp16, so it trains many times slower" in out
    state = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 2 and bool(state["scaler"]) == (precision == "fp16")
    if precision == "fp16":
        assert state["scaler"]["scale"] > 0 and state["scaler"]["_growth_tracker"] == 2
    cfg.train.max_steps = 3
    train_mod.train(cfg)
    assert "resumed from" in capsys.readouterr().out
    log = [json.loads(line) for line in (Path(cfg.train.out_dir) / "log.jsonl").open()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r)
    if precision == "fp16":  # the scaler went on from its saved state, not from a new one
        state = torch.load(Path(cfg.train.out_dir) / "last" / "trainer_state.pt", weights_only=True)
        assert state["scaler"]["_growth_tracker"] == 3


def test_an_update_skipped_on_another_rank_counts_as_skipped_under_fp16():
    """train_step's flag is what all ranks agreed on; fp16 must not trust this rank's finite loss
    over it (the logged loss would hold a skipped update, skipped_updates would miss it)."""
    run = SimpleNamespace(interval=Interval(torch.device("cpu"), 1), scaler=object(), step=1)
    run.device, run.env = torch.device("cpu"), SimpleNamespace(world=2)
    Trainer._record(
        run, (torch.tensor(3.0), torch.tensor(1.0), torch.tensor(False)), 0.1, [(0,) * 3 + (5,)]
    )
    sums = run.interval.totals()
    assert (sums["skipped"], sums["nll"], sums["loss_tokens"], sums["tokens"]) == (1, 0, 0, 5)


def test_a_skipped_update_leaves_the_logged_loss_finite(tiny_cfg, monkeypatch):
    """The interval's loss is of the updates made; one whose updates were all skipped logs
    null (strict JSON), not NaN or Infinity."""
    step, calls = train_mod.train_step, []

    def skip_3(*args):
        calls.append(1)
        if len(calls) == 3:  # a skipped update, as train_step reports one
            return torch.tensor(math.inf), torch.tensor(math.nan), torch.tensor(False)
        return step(*args)

    monkeypatch.setattr(train_mod, "train_step", skip_3)
    cfg = tiny_cfg("train.max_steps=4", "train.valid_bleu_sentences=0", "train.valid_every=0")
    train_mod.train(cfg)
    strict = {"parse_constant": lambda name: pytest.fail(f"{name} in log.jsonl")}
    log = [json.loads(line, **strict) for line in (Path(cfg.train.out_dir) / "log.jsonl").open()]
    assert [r["loss"] is None for r in log] == [False, False, True, False]
    assert log[2]["skipped_updates"] == 1 and log[2]["grad_norm"] is None


@pytest.mark.parametrize(("saved", "now"), [(4, 2), (2, 1), (2, 4), (1, 3)])
def test_resuming_with_another_number_of_ranks_goes_on_from_the_same_share_of_the_epoch(
    tiny_data, tiny_cfg, saved, now
):
    """batch_in_epoch counts one rank's batches: it is rescaled to the ranks there are now, so
    the resumed ranks neither repeat nor skip the epoch's earlier batches (beyond a few)."""
    from data_prep import load_split
    from translate.train import Batches

    tc = tiny_cfg().train
    split = load_split(tiny_data / "data", "train")
    before = [Batches(split, tc, torch.device("cpu"), r, saved) for r in range(saved)]
    pos = len(before[0].batches) // 2
    done = {int(i) for b in before for batch in b.batches[:pos] for i in batch}
    after = [
        Batches(split, tc, torch.device("cpu"), r, now, 0, pos, len(before[0].batches))
        for r in range(now)
    ]
    rest = [int(i) for b in after for batch in b.batches[b.pos :] for i in batch]
    all_pairs = {int(i) for batch in Batches(split, tc, torch.device("cpu")).batches for i in batch}
    repeated = done.intersection(rest)
    skipped = all_pairs - done - set(rest)
    per_batch = max(len(batch) for batch in before[0].batches)
    assert len(repeated) <= now * per_batch and len(skipped) <= (saved + now) * per_batch
    same = Batches(split, tc, torch.device("cpu"), 0, saved, 0, pos, len(before[0].batches))
    assert same.pos == pos  # the same ranks: exactly where it stopped


def test_a_repeated_sigterm_keeps_stopping_and_a_second_ctrl_c_exits_at_once():
    """A scheduler and torchrun may both send SIGTERM: the second must not skip the checkpoint."""
    said = []
    stops = Stops(load_config(None).train, Dist(), torch.device("cpu"), said.append)
    stops.on_signal(signal.SIGTERM, None)
    stops.on_signal(signal.SIGTERM, None)  # ignored: already stopping
    assert stops.signum == signal.SIGTERM and len(said) == 1
    with pytest.raises(SystemExit) as stop:
        stops.on_signal(signal.SIGINT, None)
    assert stop.value.code == 130


def test_resume_refuses_a_tokenizer_rebuilt_from_changed_raw_files(tiny_cfg, tmp_path):
    """The raw training files changed between sessions: prepare() trained another BPE, which
    the saved model's token ids do not match."""
    import shutil as sh

    raw = tmp_path / "raw"
    sh.copytree(Path(tiny_cfg().data.train).parent, raw)
    sets = [f"data.train={raw / 'train'}", f"data.dir={tmp_path / 'data'}", "train.max_steps=1"]
    cfg = tiny_cfg(*sets)
    train_mod.train(cfg)
    with (raw / "train.de").open("a", encoding="utf-8") as f:
        f.write("Katzen und Hunde sind sehr rote Bäume\n" * 50)
    with (raw / "train.en").open("a", encoding="utf-8") as f:
        f.write("cats and dogs are very red trees\n" * 50)
    cfg.train.max_steps = 2
    with pytest.raises(CheckpointError, match="another tokenizer"):
        train_mod.train(cfg)


def test_a_fresh_start_does_not_replace_an_earlier_best(tiny_cfg):
    cfg = tiny_cfg("train.max_steps=2", "train.valid_bleu_sentences=0")
    train_mod.train(cfg)
    run = Path(cfg.train.out_dir)
    shutil.rmtree(run / "last")  # e.g. to save space, keeping best/
    before = (run / "best" / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="best/ of an earlier run but no last/"):
        train_mod.train(cfg)
    assert (run / "best" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("stop", [4, 6])  # between log steps, at one (one record for step 6)
def test_a_resume_that_stops_at_once_still_logs_and_validates_the_last_step(
    tiny_cfg, monkeypatch, stop
):
    sets = ("train.log_every=3", "train.valid_bleu_sentences=0")
    cfg = tiny_cfg("train.max_steps=100", *sets)
    assert train_until_signal(cfg, stop, signal.SIGINT, monkeypatch) == 128 + signal.SIGINT
    run = Path(tiny_cfg().train.out_dir)
    assert not (run / "best").exists()  # a signal: no validation, as an unbroken run has none
    assert train_mod.train(tiny_cfg(f"train.max_steps={stop}", *sets)) == 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, stop] and {"loss", "valid_loss"} <= rows[1].keys()
    assert checkpoint_info(run / "best")["step"] == str(stop)


def test_a_session_time_stop_validates_only_on_schedule(tiny_cfg):
    cfg = tiny_cfg("train.session_time=1s", "train.max_steps=100000", "train.log_every=1000")
    train_mod.train(cfg)
    run = Path(cfg.train.out_dir)
    assert not (run / "best").exists()  # no validation step reached, so no validation yet
    log = run / "log.jsonl"
    assert not log.exists() or "valid_loss" not in log.read_text()


def test_a_longer_max_steps_on_resume_decays_to_the_new_end(tiny_cfg):
    sets = ("train.decay=linear", "train.warmup=2", "train.valid_bleu_sentences=0")
    sets += ("train.log_every=4",)
    train_mod.train(tiny_cfg("train.max_steps=6", *sets))
    train_mod.train(tiny_cfg("train.max_steps=12", *sets))
    rows = [json.loads(line) for line in (Path(tiny_cfg().train.out_dir) / "log.jsonl").open()]
    lr = {r["step"]: r["lr"] for r in rows if "lr" in r}
    expected = lr_at(8, 32, 2, 2.0, "linear", 12)  # d_model 32, lr_scale 2
    assert lr[8] == pytest.approx(expected) and expected > 0


def test_best_is_replaced_when_its_metric_changes(tiny_cfg, capsys):
    train_mod.train(tiny_cfg("train.max_steps=2", "train.valid_bleu_sentences=0"))
    run = Path(tiny_cfg().train.out_dir)
    assert checkpoint_info(run / "best")["valid_metric"] == "loss"
    train_mod.train(tiny_cfg("train.max_steps=3", "train.valid_bleu_sentences=10"))
    assert checkpoint_info(run / "best") | {} == {
        **checkpoint_info(run / "best"),
        "valid_metric": "bleu",
        "step": "3",
    }
    assert "the one before was chosen by loss" in capsys.readouterr().out


def test_valid_pairs_longer_than_the_model_are_cut_for_validation(tiny_data, tmp_path):
    raw = Path(shutil.copytree(tiny_data / "raw", tmp_path / "raw"))
    for lang, word in (("de", "Hund"), ("en", "dog")):
        with open(raw / f"valid.{lang}", "a", encoding="utf-8") as f:
            f.write(" ".join([word] * 300) + "\n")  # valid stays verbatim: 300 words
    sets = tiny_overrides(tmp_path, tmp_path / "run") + [
        "train.max_steps=2",
        "train.valid_bleu_sentences=40",
    ]
    assert train_mod.train(load_config(None, sets)) == 0
    assert checkpoint_info(tmp_path / "run" / "best")["step"] == "2"


def test_a_killed_step_checkpoint_save_leaves_nothing_behind(tiny_cfg):
    cfg = tiny_cfg("train.max_steps=2", "train.valid_bleu_sentences=0")
    train_mod.train(cfg)
    leftover = Path(cfg.train.out_dir) / ".step_0000003.tmp-99999"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    train_mod.train(tiny_cfg("train.max_steps=3", "train.valid_bleu_sentences=0"))
    assert not leftover.exists()


def test_a_failed_first_data_preparation_leaves_no_empty_folders(tiny_cfg, tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'wmt14' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = tiny_cfg("data.source=wmt14", f"data.dir={tmp_path / 'new' / 'data'}")
    with pytest.raises(DataError, match="wmt14"):
        train_mod.train(cfg)
    assert not Path(cfg.train.out_dir).exists() and not Path(cfg.data.dir).exists()
