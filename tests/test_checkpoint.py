"""Checkpoints: round trip, one-line errors, no unpickling of code, atomic replace, averaging."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors
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
from translate.translator import Translator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import average_checkpoints as average_script  # noqa: E402


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", vocab_size=320)


def tiny_model(seed: int = 0, *overrides: str):
    cfg = load_config(None, [*tiny_overrides(Path("."), Path(".")), *overrides])
    torch.manual_seed(seed)
    return Transformer(cfg.model, 320, pad_id=0).eval(), cfg


def trainer_state(step: int) -> dict:
    """The keys the trainer reads on resume, with plain values."""
    optimizer = {"state": {}, "param_groups": []}
    return dict(
        step=step, epoch=0, batch_in_epoch=0, elapsed=0.0, best=None, optimizer=optimizer, rng={}
    )


def swap_tokens(src: Path, dst: Path) -> Path:
    """Another tokenizer of the same vocabulary size: two token ids exchanged."""
    data = json.loads(src.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    a, b = list(vocab)[300:302]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    dst.write_text(json.dumps(data), encoding="utf-8")
    return dst


def average(capsys, *argv) -> tuple[int, str]:
    """Run scripts/average_checkpoints.py main(argv) -> (exit code, stderr)."""
    code = average_script.main([str(a) for a in argv])
    return code, capsys.readouterr().err


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
    mask = os.umask(0o027)  # files are made as open() makes them, readable by the group here
    try:
        save_checkpoint(tmp_path / "ckpt", model, cfg, tok_file)
    finally:
        os.umask(mask)
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "ckpt").iterdir()}
    assert set(modes.values()) == {0o640}, modes


DAMAGES = ["no_dir", "no_weights", "corrupt", "other_tokenizer", "config", "nan", "missing"]
DAMAGES += ["swapped_tokenizer", "empty_config", "comment_config", "edited_config"]


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
    elif damage == "swapped_tokenizer":  # same vocabulary size: only the fingerprint tells
        swap_tokens(tok_file, ckpt / "tokenizer.json")
    elif damage == "edited_config":  # the same tensor shapes: only the recorded config tells
        text = (ckpt / "config.yaml").read_text().replace("n_heads: 2", "n_heads: 4")
        (ckpt / "config.yaml").write_text(text)
    elif damage in ("empty_config", "comment_config"):  # never silently all defaults
        (ckpt / "config.yaml").write_text("" if damage == "empty_config" else "  \n# none\n")
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
    if damage == "swapped_tokenizer":
        assert "not the tokenizer this model was trained with" in str(err.value)
        with pytest.raises(CheckpointError, match="not the tokenizer"):
            Translator.load(ckpt, device="cpu")
    if damage in ("empty_config", "comment_config"):
        assert "config.yaml is empty" in str(err.value)
    if damage == "edited_config":
        assert "changed after the weights were saved (model.n_heads: 2 then, 4 now)" in str(
            err.value
        )


def test_checkpoint_without_fingerprints_still_loads(tok_file, tmp_path):
    model, cfg = tiny_model()
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, tok_file)
    with safetensors.safe_open(ckpt / "model.safetensors", framework="pt") as f:
        assert set(f.metadata()) == {"format", "tokenizer_sha256", "model"}
    weights = safetensors.torch.load_file(ckpt / "model.safetensors")
    safetensors.torch.save_file(weights, ckpt / "model.safetensors", metadata={"format": "pt"})
    swap_tokens(tok_file, ckpt / "tokenizer.json")  # undetectable without a fingerprint
    load_model(ckpt)


class Evil:
    """Unpickling this would create a file (a stand-in for running arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_poisoned_trainer_state_is_never_unpickled(tok_file, tmp_path):
    model, cfg = tiny_model()
    ckpt = save_checkpoint(tmp_path / "last", model, cfg, tok_file, trainer_state(1))
    marker = tmp_path / "pwned"
    torch.save({"step": 3, "rng": Evil(marker)}, ckpt / "trainer_state.pt")
    with pytest.raises(CheckpointError, match="refusing") as err:
        load_trainer_state(ckpt)
    assert "weights_only" not in str(err.value)  # never advise unsafe loading
    assert "objects other than tensors and plain values" in str(err.value)
    load_model(ckpt)  # weights load fine; trainer_state.pt is never touched
    assert not marker.exists()


def test_failed_save_leaves_the_old_checkpoint(tok_file, tmp_path):
    old, cfg = tiny_model(seed=0)
    save_checkpoint(tmp_path / "last", old, cfg, tok_file, trainer_state(1))
    new, _ = tiny_model(seed=1)
    with pytest.raises(FileNotFoundError):  # dies inside the atomic write
        save_checkpoint(tmp_path / "last", new, cfg, tmp_path / "missing.json", trainer_state(2))
    assert load_trainer_state(tmp_path / "last")["step"] == 1
    loaded, _, _ = load_model(tmp_path / "last")
    for a, b in zip(loaded.state_dict().values(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temp dir left behind


def test_crash_between_renames_is_recovered(tok_file, tmp_path):
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "last", model, cfg, tok_file, trainer_state(5))
    os.replace(tmp_path / "last", tmp_path / ".last.old-123")  # state right after the 1st rename
    recover(tmp_path / "last")
    assert load_trainer_state(tmp_path / "last")["step"] == 5
    with atomic_dir(tmp_path / "last") as tmp:  # a normal replace removes the old copy
        (tmp / "x").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_a_folder_that_cannot_be_written_is_named_not_the_hidden_temp_dir(tmp_path, monkeypatch):
    """A read-only output folder (root cannot make one, so mkdir is made to refuse)."""
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if ".tmp-" in self.name:
            raise PermissionError(13, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(OSError) as refused, atomic_dir(tmp_path / "avg5"):
        pass
    assert str(refused.value) == f"[Errno 13] Permission denied: '{tmp_path / 'avg5'}'"


def test_a_half_deleted_leftover_is_neither_put_back_nor_in_the_way(tok_file, tmp_path):
    """A kill while atomic_dir removed the replaced copy leaves it half deleted (and newer): it is
    never put back, a later save by a process with the same pid is not blocked by it, and
    recover() clears such leftovers once the checkpoint is in place."""
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "last", model, cfg, tok_file, trainer_state(5))
    os.replace(tmp_path / "last", tmp_path / ".last.old-111")  # complete, step 5
    save_checkpoint(tmp_path / ".last.old-222", model, cfg, tok_file, trainer_state(9))
    (tmp_path / ".last.old-222" / "trainer_state.pt").unlink()  # half deleted, newer
    recover(tmp_path / "last", state=True)
    assert load_trainer_state(tmp_path / "last")["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    stale = tmp_path / f".last.old-{os.getpid()}"  # this pid's own leftover, half deleted
    save_checkpoint(stale, model, cfg, tok_file)
    save_checkpoint(tmp_path / "last", model, cfg, tok_file, trainer_state(6))
    assert load_trainer_state(tmp_path / "last")["step"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_a_save_killed_before_its_first_rename_leaves_nothing_after_recover(tok_file, tmp_path):
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / ".last.tmp-4242", model, cfg, tok_file, trainer_state(5))
    recover(tmp_path / "last", state=True)  # the run's first save: no last/ to keep
    assert list(tmp_path.iterdir()) == []


def test_damaged_model_metadata_is_one_line(tok_file, tmp_path):
    model, cfg = tiny_model()
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, tok_file)
    tensors = safetensors.torch.load_file(ckpt / "model.safetensors")
    with safetensors.safe_open(ckpt / "model.safetensors", "pt") as f:
        metadata = {**f.metadata(), "model": "5"}
    safetensors.torch.save_file(tensors, ckpt / "model.safetensors", metadata=metadata)
    with pytest.raises(CheckpointError, match="damaged 'model' metadata"):
        load_model(ckpt)


def test_step_checkpoints_are_complete_ones_in_step_order(tok_file, tmp_path):
    from translate.checkpoint import discard_removed, remove_checkpoint, step_checkpoints

    model, cfg = tiny_model()
    for step in (900, 10_000_000, 9_999_000):
        save_checkpoint(tmp_path / f"step_{step:07d}", model, cfg, tok_file)
    (tmp_path / "step_0000900" / "tokenizer.json").unlink()  # as a kill midway through rmtree
    names = [p.name for p in step_checkpoints(tmp_path)]
    assert names == ["step_9999000", "step_10000000"]  # by number, not as strings
    remove_checkpoint(tmp_path / "step_9999000")
    (tmp_path / ".step_0000900.del-7").mkdir()  # what a killed removal leaves
    discard_removed(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000900", "step_10000000"]


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


def test_find_default_checkpoint_takes_a_set_aside_last_and_skips_an_incomplete_best(
    tok_file, tmp_path
):
    """A crash between atomic_dir's two renames leaves the newest run's last/ as .last.old-PID,
    which resuming puts back: that run is still the newest, not an older one. A best/ that lacks
    a file (a copy cut short) is passed over for last/ instead of failing to load."""
    runs, (model, cfg) = tmp_path / "runs", tiny_model()
    save_checkpoint(runs / "old" / "best", model, cfg, tok_file)
    os.utime(runs / "old" / "best", (1, 1))
    save_checkpoint(runs / "new" / "last", model, cfg, tok_file, trainer_state(5))
    os.replace(runs / "new" / "last", runs / "new" / ".last.old-123")
    assert find_default_checkpoint(runs) == runs / "new" / ".last.old-123"
    recover(runs / "new" / "last", state=True)
    shutil.copytree(runs / "new" / "last", runs / "new" / "best")
    (runs / "new" / "best" / "tokenizer.json").unlink()
    assert find_default_checkpoint(runs) == runs / "new" / "last"
    Translator.load(find_default_checkpoint(runs), device="cpu")  # loads, where best/ would not


@pytest.mark.parametrize(
    "key", ["step", "epoch", "batch_in_epoch", "elapsed", "best", "optimizer", "rng"]
)
def test_trainer_state_missing_a_key_the_trainer_reads(tok_file, tmp_path, key):
    model, cfg = tiny_model()
    state = trainer_state(3)
    del state[key]
    ckpt = save_checkpoint(tmp_path / "last", model, cfg, tok_file, state)
    with pytest.raises(CheckpointError, match=f"lacks {key}") as err:
        load_trainer_state(ckpt)
    assert len(str(err.value).splitlines()) == 1


@pytest.fixture
def run(tok_file, tmp_path) -> Path:
    """A run dir with step_0000100, step_0000200, last (with trainer state) and best."""
    run = tmp_path / "run"
    for i in (1, 2):
        model, cfg = tiny_model(seed=i)
        save_checkpoint(run / f"step_{i * 100:07d}", model, cfg, tok_file)
    save_checkpoint(run / "last", model, cfg, tok_file, trainer_state(200))
    save_checkpoint(run / "best", model, cfg, tok_file)
    return run


TARGETS = ["input", "run_dir", "last", "best", "last_copy", "not_checkpoint", "file", "in_last"]
TARGETS += ["hf_export", "kept_step"]


@pytest.mark.parametrize("target", TARGETS)
def test_average_refuses_an_out_it_would_destroy(run, tok_file, capsys, target):
    out = {"input": run / "step_0000200", "last_copy": run / "resume", "file": run / "notes"}
    out["in_last"] = run / "last" / "avg"  # the next save of last/ would replace it
    out = out.get(target, run if target == "run_dir" else run / target)
    if target == "last_copy":
        shutil.copytree(run / "last", out)
    elif target == "not_checkpoint":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif target == "file":
        out.write_text("mine")
    elif target == "hf_export":  # `translate export ... runs/NAME/hf`: model.safetensors and more
        out.mkdir()
        shutil.copy(run / "step_0000200" / "model.safetensors", out)
        (out / "config.json").write_text("{}")
    elif target == "kept_step":  # a copy of a checkpoint training wrote (not an average)
        model, cfg = tiny_model()
        save_checkpoint(out, model, cfg, tok_file, info={"step": "200"})
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    code, err = average(capsys, "--run", run, "--last", 2, "--out", out)
    assert code == 1 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert f"'{out}'" in err and f"'{run / 'avg2'}'" in err  # what, and what to use instead
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before


def test_average_refuses_an_edited_config(run, capsys):
    """Each input's config.yaml must be the one its weights were saved with: the average would
    otherwise record the edited one as its own."""
    for step in ("step_0000100", "step_0000200"):
        config = run / step / "config.yaml"
        config.write_text(config.read_text().replace("n_heads: 2", "n_heads: 4"))
    code, err = average(capsys, "--run", run, "--last", 2, "--out", run / "avg")
    assert code == 1 and "changed after the weights were saved (model.n_heads: 2 then, 4" in err
    assert not (run / "avg").exists()


def test_an_edited_dropout_or_max_positions_still_loads(tok_file, tmp_path):
    """They do not change what the weights mean: the sinusoid table is not saved."""
    model, cfg = tiny_model()
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, tok_file)
    text = (ckpt / "config.yaml").read_text()
    text = text.replace("dropout: 0.1", "dropout: 0.3").replace(
        "max_positions: 128", "max_positions: 512"
    )
    (ckpt / "config.yaml").write_text(text)
    loaded, cfg2, _ = load_model(ckpt)
    assert (cfg2.model.dropout, cfg2.model.max_positions) == (0.3, 512)


def test_average_replaces_an_earlier_average(run, capsys):
    assert average(capsys, "--run", run, "--last", 1, "--out", run / "avg")[0] == 0
    assert average(capsys, "--run", run, "--last", 2, "--out", run / "avg") == (0, "")
    assert load_trainer_state(run / "last")["step"] == 200  # the run itself is untouched
    assert len(list((run / "avg").iterdir())) == 3


@pytest.mark.parametrize("last", [0, -1])
def test_average_refuses_last_below_one(run, capsys, last):
    code, err = average(capsys, "--run", run, "--last", last, "--out", run / "avg")
    assert (code, err) == (1, f"error: --last must be at least 1 (got {last}); e.g. --last 5\n")
    assert not (run / "avg").exists()


@pytest.mark.parametrize("other", ["shape", "heads", "dtype", "tokenizer"])
def test_average_refuses_checkpoints_of_different_models(run, tok_file, capsys, other):
    theirs = run.parent / "other"
    if other in ("shape", "heads"):  # heads: tensors of the same shapes, another model
        model, cfg = tiny_model(0, "model.d_ff=48" if other == "shape" else "model.n_heads=4")
        save_checkpoint(theirs, model, cfg, tok_file)
    else:
        shutil.copytree(run / "step_0000100", theirs)
    if other == "dtype":
        weights = safetensors.torch.load_file(theirs / "model.safetensors")
        half = {k: v.half() for k, v in weights.items()}
        safetensors.torch.save_file(half, theirs / "model.safetensors", metadata={"format": "pt"})
    if other == "tokenizer":  # both fingerprints match their own tokenizer.json, not each other
        model, cfg = tiny_model(0)
        save_checkpoint(theirs, model, cfg, swap_tokens(tok_file, run.parent / "tok2.json"))
    mine = run / "step_0000200"
    code, err = average(capsys, "--dirs", mine, theirs, "--out", run.parent / "avg")
    assert code == 1 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert str(mine) in err and str(theirs) in err
    if other == "dtype":
        assert err.startswith("error: tensor '")  # names the tensor
    if other in ("shape", "heads"):
        assert "describes another model" in err
    assert not (run.parent / "avg").exists()


def test_average_keeps_non_float_tensors_and_averages_floats_exactly(run, tmp_path):
    """Float tensors are averaged (accumulated in float64); integer and bool tensors are not
    averaged (a counter of 2**53 + 1 survives, a mask stays a mask): the last one's are kept."""
    dirs = [run / "step_0000100", run / "step_0000200"]
    for i, d in enumerate(dirs):
        path = str(d / "model.safetensors")
        with safetensors.safe_open(path, framework="pt") as f:
            metadata = f.metadata()
        weights = safetensors.torch.load_file(path)
        weights["counter"] = torch.tensor([2**53 + 1 + i], dtype=torch.int64)
        weights["mask"] = torch.tensor([True, i == 0])
        safetensors.torch.save_file(weights, path, metadata=metadata)
    avg = safetensors.torch.load_file(
        str(average_checkpoints(dirs, tmp_path / "avg") / "model.safetensors")
    )
    assert avg["counter"].tolist() == [2**53 + 2] and avg["mask"].tolist() == [True, False]
    a, b = (safetensors.torch.load_file(str(d / "model.safetensors")) for d in dirs)
    for name, value in avg.items():
        if value.is_floating_point():
            assert value.dtype == a[name].dtype
            torch.testing.assert_close(value, ((a[name].double() + b[name]) / 2).float())


def test_average_refuses_a_checkpoint_given_twice(run, capsys):
    """`--dirs a a b` would weigh a twice; a trailing slash or a link is the same checkpoint."""
    a, b = run / "step_0000100", run / "step_0000200"
    code, err = average(capsys, "--dirs", a, b, f"{a}/", "--out", run / "avg")
    assert code == 1 and err == f"error: '{a}' is given twice; name each checkpoint once\n"
    assert not (run / "avg").exists()


@pytest.mark.parametrize("export", ["hf", "ctranslate2"])
def test_an_exported_directory_is_named_as_such(tmp_path, export):
    """`translate --checkpoint runs/demo/hf` (an export) is not 'an incomplete checkpoint'."""
    out = tmp_path / export
    out.mkdir()
    for name in ("config.json", "tokenizer.json") + (("model.bin",) if export != "hf" else ()):
        (out / name).write_text("{}")
    with pytest.raises(CheckpointError) as err:
        load_model(out)
    assert str(err.value) == (
        f"'{out}' holds config.json, not config.yaml: a transformers or CTranslate2 model (as "
        "`translate export` writes), not a checkpoint; load it with that library, or give the "
        "checkpoint it was exported from"
    )


def test_save_on_windows_fsyncs_files_through_writable_handles(tok_file, tmp_path, monkeypatch):
    """Windows' os.open refuses a directory (EACCES) and its fsync needs a handle open for
    writing (EBADF otherwise): checkpoint.py's own `os` behaves so here; saves still work."""
    import errno
    import types

    from translate import checkpoint

    writable: dict[int, bool] = {}

    def win_open(path, flags, *args, **kwargs):
        if Path(path).is_dir():
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        fd = os.open(path, flags, *args, **kwargs)
        writable[fd] = bool(flags & (os.O_WRONLY | os.O_RDWR))
        return fd

    def win_fsync(fd):
        if not writable.get(fd):
            raise OSError(errno.EBADF, "Bad file descriptor")
        os.fsync(fd)

    win_os = types.SimpleNamespace(**{**vars(os), "name": "nt", "open": win_open})
    win_os.fsync = win_fsync
    monkeypatch.setattr(checkpoint, "os", win_os)
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "last", model, cfg, tok_file, trainer_state(1))
    save_checkpoint(tmp_path / "last", model, cfg, tok_file, trainer_state(2))  # a replace
    assert load_trainer_state(tmp_path / "last")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
