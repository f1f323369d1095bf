"""Checkpoint directories: atomic save, safe load (never unpickles code), resume state, averaging.

A checkpoint is a directory holding
    model.safetensors   weights (the tied embedding stored once)
    config.yaml         the resolved Config, enough to rebuild the model
    tokenizer.json      the shared subword tokenizer
    trainer_state.pt    (`last` only) optimizer/scaler state, step, epoch, batch position, RNGs;
                        tensors and plain Python types, read with torch.load(weights_only=True)

The safetensors metadata holds the sha256 of tokenizer.json (`tokenizer_sha256`), so a swapped
tokenizer is refused even when its vocabulary size matches.

Crash safety: a checkpoint is written into `.NAME.tmp-PID` next to the target, every file and the
directory are fsynced, then renamed into place. Replacing an existing NAME renames it to
`.NAME.old-PID` first, renames the new one in, then deletes the old one. A crash at any moment
leaves the complete old or the complete new checkpoint: `recover()` puts back the newest complete
orphaned `.old` (one half deleted by a kill is never put back) and clears `.old`/`.tmp`
leftovers. Step checkpoints are renamed to `.NAME.del-PID` before they are deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import safetensors
import safetensors.torch
import torch
import yaml
from torch import nn

from translate.config import (
    Config,
    ConfigError,
    ModelConfig,
    differences,
    load_config,
    save_config,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from translate.model import Transformer

MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, STATE_FILE = (
    "model.safetensors",
    "config.yaml",
    "tokenizer.json",
    "trainer_state.pt",
)
# what Trainer._resume reads unconditionally (the other keys, added later, are read with .get)
TRAINER_STATE_KEYS = ("step", "epoch", "batch_in_epoch", "elapsed", "best", "optimizer", "rng")
TRAINING_NAMES = ("last", "best")  # written by training, like step_NNNNNNN: never an average
AVERAGE_FILES = {MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE}  # all an average writes


class CheckpointError(ValueError):
    """A missing, corrupt or mismatched checkpoint; the message says which file and why."""


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk. Windows flushes only a handle open for
    writing and opens no directory with os.open (NTFS journals the renames itself)."""
    windows = os.name == "nt"
    if windows and path.is_dir():
        return
    fd = os.open(path, os.O_RDWR if windows else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temp dir to fill; on success it atomically replaces `target`; on error it is gone."""
    target = Path(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:  # e.g. a read-only folder: name the target, not the hidden temp dir
        raise OSError(e.errno, e.strerror, str(target)) from e
    try:
        yield tmp
        mode = 0o666 & ~_umask()  # as open() would make them; safetensors writes 0600
        for f in tmp.iterdir():
            f.chmod(mode)
            _fsync(f)
        _fsync(tmp)
        shutil.rmtree(old, ignore_errors=True)  # left by a killed process that had this pid
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def complete(ckpt_dir: Path, state: bool = False) -> bool:
    """Whether ckpt_dir holds every file of a checkpoint (and trainer_state.pt if `state`)."""
    names = (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE) + ((STATE_FILE,) if state else ())
    return all((ckpt_dir / name).is_file() for name in names)


def recover(target: str | Path, state: bool = False) -> None:
    """After a crash between atomic_dir's two renames, put back the newest complete checkpoint
    it had set aside; then drop what killed saves left (.tmp-*, .old-* dirs: a kill during
    their removal leaves them half deleted, so an incomplete one is never put back)."""
    target = Path(target)
    aside = list(target.parent.glob(f".{target.name}.old-*"))
    if not target.exists() and (newest := set_aside(target, state)):
        os.replace(newest, target)
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):  # never put back
        shutil.rmtree(leftover, ignore_errors=True)
    if target.exists():
        for leftover in aside:
            shutil.rmtree(leftover, ignore_errors=True)


def set_aside(target: Path, state: bool = False) -> Path | None:
    """The newest complete `.NAME.old-*` that atomic_dir set aside for `target`, which recover()
    puts back when a crash came between its two renames; None if there is none."""
    whole = [p for p in target.parent.glob(f".{target.name}.old-*") if complete(p, state)]
    return max(whole, key=lambda p: (p / MODEL_FILE).stat().st_mtime, default=None)


def remove_checkpoint(ckpt_dir: Path) -> None:
    """Delete a checkpoint dir, renamed away first: a kill midway leaves no half of it behind
    under its name (`discard_removed` clears the renamed rest)."""
    gone = ckpt_dir.parent / f".{ckpt_dir.name}.del-{os.getpid()}"
    os.replace(ckpt_dir, gone)
    shutil.rmtree(gone, ignore_errors=True)


def discard_removed(run_dir: Path) -> None:
    """What remove_checkpoint calls left half deleted in run_dir, and step checkpoints that a
    killed save left half written (last/ and best/ have recover())."""
    for leftover in [*run_dir.glob(".*.del-*"), *run_dir.glob(".step_*.tmp-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def save_checkpoint(
    ckpt_dir: str | Path,
    model: nn.Module,
    cfg: Config,
    tokenizer: str | Path | bytes,
    trainer_state: dict | None = None,
    info: dict[str, str] | None = None,
) -> Path:
    """Write model weights, config, tokenizer (a tokenizer.json path, or its bytes) and trainer
    state atomically into `ckpt_dir`; `info` (e.g. the step) goes into the safetensors metadata,
    read by `checkpoint_info`."""
    if not isinstance(tokenizer, bytes):
        tokenizer = Path(tokenizer).read_bytes()
    with atomic_dir(ckpt_dir) as tmp:
        metadata = {**(info or {}), **_metadata(tokenizer, cfg.model)}
        with _write_errors(Path(ckpt_dir) / MODEL_FILE):
            safetensors.torch.save_model(model, str(tmp / MODEL_FILE), metadata=metadata)
        save_config(cfg, tmp / CONFIG_FILE)
        (tmp / TOKENIZER_FILE).write_bytes(tokenizer)
        if trainer_state is not None:
            with _write_errors(Path(ckpt_dir) / STATE_FILE), open(tmp / STATE_FILE, "wb") as f:
                torch.save(trainer_state, f)  # not to the path: torch then drops the OSError
    return Path(ckpt_dir)


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    """A full disk (or any failed write) in safetensors or torch.save as an OSError naming
    `path`, so that it reads as one line: safetensors says '(os error 28)' in a SafetensorError,
    torch.save raises a RuntimeError whose context is the file's OSError (or, at its close, the
    OSError itself)."""
    try:
        yield
    except (OSError, RuntimeError, safetensors.SafetensorError) as e:
        cause = e if isinstance(e, OSError) else e.__context__
        if isinstance(cause, OSError) and cause.errno:
            code = cause.errno
        elif found := re.search(r"\(os error (\d+)\)", str(e)):
            code = int(found[1])
        else:
            raise
        raise OSError(code, os.strerror(code), str(path)) from e


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# What the weights mean: a config.yaml edited in these (n_heads, pre_norm: every tensor keeps its
# shape) would rebuild another model around them. Dropout and max_positions (the sinusoid table is
# not saved) may change.
ARCHITECTURE = ("d_model", "n_heads", "d_ff", "encoder_layers", "decoder_layers", "pre_norm")


def _metadata(tokenizer: bytes, model_cfg: ModelConfig) -> dict[str, str]:
    """safetensors metadata: the format, the fingerprint of the tokenizer the weights go with and
    the model ARCHITECTURE they were saved with."""
    model = json.dumps({k: getattr(model_cfg, k) for k in ARCHITECTURE}, sort_keys=True)
    return {"format": "pt", "tokenizer_sha256": _sha256(tokenizer), "model": model}


def check_model_config(ckpt_dir: Path, model_cfg: ModelConfig) -> None:
    """CheckpointError if config.yaml's ARCHITECTURE is not the one the weights were saved in."""
    stored = _read_header(ckpt_dir / MODEL_FILE)[1].get("model")
    if stored is None:  # older checkpoints did not record it
        return
    try:
        stored = json.loads(stored)
        changed = differences("model", stored, dataclasses.asdict(model_cfg))
    except (ValueError, TypeError, AttributeError):  # not a JSON object: edited by hand
        raise CheckpointError(
            f"'{ckpt_dir / MODEL_FILE}' has damaged 'model' metadata; use another checkpoint"
        ) from None
    if changed:
        raise CheckpointError(
            f"'{ckpt_dir / CONFIG_FILE}' was changed after the weights were saved ({changed}); "
            "put back the saved values"
        )


def checkpoint_info(ckpt_dir: str | Path) -> dict[str, str]:
    """The weights' metadata: `step`, `valid_score` for best/, the tokenizer's sha256."""
    _require(Path(ckpt_dir), MODEL_FILE)
    return _read_header(Path(ckpt_dir) / MODEL_FILE)[1]


def _require(ckpt_dir: Path, *names: str) -> None:
    if ckpt_dir.exists() and not ckpt_dir.is_dir():
        raise CheckpointError(f"checkpoint '{ckpt_dir}' is a file; give its directory")
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"checkpoint directory '{ckpt_dir}' does not exist")
    for name in names:
        if not (ckpt_dir / name).is_file():
            inside = [n for n in ("best", "last") if (ckpt_dir / n / name).is_file()]
            if inside:  # a run directory
                raise CheckpointError(
                    f"'{ckpt_dir}' is a run directory, not a checkpoint; give "
                    + " or ".join(f"'{ckpt_dir / n}'" for n in inside)
                )
            if (ckpt_dir / "config.json").is_file() and not (ckpt_dir / CONFIG_FILE).is_file():
                raise CheckpointError(
                    f"'{ckpt_dir}' holds config.json, not {CONFIG_FILE}: a transformers or "
                    "CTranslate2 model (as `translate export` writes), not a checkpoint; load it "
                    "with that library, or give the checkpoint it was exported from"
                )
            raise CheckpointError(f"checkpoint '{ckpt_dir}' has no {name}; it is incomplete")


def load_checkpoint_config(ckpt_dir: str | Path) -> Config:
    """The resolved Config saved next to the weights."""
    ckpt_dir = Path(ckpt_dir)
    _require(ckpt_dir, CONFIG_FILE)
    if _is_empty_yaml(ckpt_dir / CONFIG_FILE):
        raise CheckpointError(
            f"checkpoint '{ckpt_dir}': {CONFIG_FILE} is empty, so the model it holds is unknown "
            f"(defaults are never assumed); copy {CONFIG_FILE} back from another checkpoint of "
            "the same run"
        )
    try:
        return load_config(ckpt_dir / CONFIG_FILE)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint '{ckpt_dir}': {e}") from None


def _is_empty_yaml(path: Path) -> bool:
    """True for a YAML file without content (0 bytes, whitespace, comments, `{}`, `null`)."""
    try:
        return not yaml.safe_load(path.read_bytes())
    except yaml.YAMLError:
        return False  # not empty; load_config says what is wrong with it


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata of a safetensors file, without reading the tensors."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            return shapes, f.metadata() or {}
    except Exception as e:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({e})") from None


def _check_tokenizer(ckpt_dir: Path) -> str:
    """sha256 of the checkpoint's tokenizer.json; CheckpointError if the weights expect another."""
    sha = _sha256((ckpt_dir / TOKENIZER_FILE).read_bytes())
    stored = _read_header(ckpt_dir / MODEL_FILE)[1].get("tokenizer_sha256")
    if stored is not None and stored != sha:  # older checkpoints have no fingerprint
        raise CheckpointError(
            f"'{ckpt_dir / TOKENIZER_FILE}' is not the tokenizer this model was trained with "
            f"(sha256 {sha[:12]}, the weights expect {stored[:12]}); copy tokenizer.json back "
            "from the run's data dir (data.dir) or another checkpoint of the run"
        )
    return sha


def load_weights(
    model: nn.Module, ckpt_dir: str | Path, device: str | torch.device = "cpu"
) -> None:
    """Load model.safetensors into `model`, checking every tensor's name and shape first."""
    path = Path(ckpt_dir) / MODEL_FILE
    shapes = _read_header(path)[0]
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, shape in shapes.items():
        if name in expected and expected[name] != shape:
            raise CheckpointError(
                f"'{path}': tensor '{name}' has shape {shape} but the model built from config.yaml "
                f"and tokenizer.json expects {expected[name]}; is tokenizer.json the one it was "
                "trained with?"
            )
    missing, unexpected = sorted(expected.keys() - shapes), sorted(shapes.keys() - expected)
    if missing or unexpected:
        names = ", ".join(
            [
                *(f"'{k}' missing" for k in missing[:3]),
                *(f"'{k}' unexpected" for k in unexpected[:3]),
            ]
        )
        raise CheckpointError(
            f"'{path}' does not match the model built from config.yaml: {names} "
            f"({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    try:
        safetensors.torch.load_model(model, str(path), strict=True, device=str(device))
    except Exception as e:
        raise CheckpointError(f"'{path}' does not match the model: {e}".splitlines()[0]) from None
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"'{path}': tensor '{name}' holds NaN or infinite values (a damaged file, or a "
                "run that diverged); use an earlier checkpoint"
            )


def load_model(
    ckpt_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[Transformer, Config, Tokenizer]:
    """Rebuild the model from a checkpoint dir -> (model in eval mode, Config, Tokenizer)."""
    from data_prep import load_tokenizer
    from translate.model import Transformer

    ckpt_dir = Path(ckpt_dir)
    _require(ckpt_dir, MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE)
    cfg = load_checkpoint_config(ckpt_dir)
    check_model_config(ckpt_dir, cfg.model)
    _check_tokenizer(ckpt_dir)
    try:
        tokenizer = load_tokenizer(ckpt_dir / TOKENIZER_FILE)
    except Exception as e:
        raise CheckpointError(
            f"'{ckpt_dir / TOKENIZER_FILE}' is not a valid tokenizer ({e})"
        ) from None
    model = Transformer(cfg.model, tokenizer.get_vocab_size(), pad_id=0)
    load_weights(model, ckpt_dir, "cpu")
    return model.to(device).eval(), cfg, tokenizer


def load_trainer_state(ckpt_dir: str | Path) -> dict:
    """trainer_state.pt read with weights_only=True: tensors and plain types, never code."""
    path = Path(ckpt_dir) / STATE_FILE
    _require(Path(ckpt_dir), STATE_FILE)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message advises weights_only=False: never pass it on
        raise CheckpointError(
            f"'{path}' holds objects other than tensors and plain values; refusing to load it, "
            "since unpickling them could run code; resume from a trainer_state.pt this trainer "
            "wrote, or use a new train.out_dir"
        ) from None
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"'{path}' is corrupt; refusing to load it ({msg})") from None
    missing = [k for k in TRAINER_STATE_KEYS if k not in state] if isinstance(state, dict) else []
    if not isinstance(state, dict) or missing:
        found = f"lacks {', '.join(missing)}" if missing else f"holds a {type(state).__name__}"
        raise CheckpointError(
            f"'{path}' is not a trainer state this trainer can resume from (it {found}); put the "
            "run's own last/ back, or use a new train.out_dir"
        )
    return state


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain values."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of rng_state()."""
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # a run saved with more GPUs visible than now: rank 0 uses the first
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def find_default_checkpoint(runs_dir: str | Path = "runs") -> Path | None:
    """`best` (else `last`) of the most recently modified run under `runs_dir`, or None. Only
    complete checkpoints count; where a crash between atomic_dir's two renames left best/ or
    last/ set aside, the one recover() will put back stands in for it."""
    found = []  # (mtime, checkpoint dir)
    for run in Path(runs_dir).glob("*/"):
        ckpts = [c for n in ("best", "last") if (c := _usable(run / n))]
        if ckpts:
            found.append((max(c.stat().st_mtime for c in ckpts), ckpts[0]))
    return max(found)[1] if found else None


def _usable(target: Path) -> Path | None:
    """`target` if it is a complete checkpoint; if it is missing, what recover() would put back."""
    if target.exists():
        return target if complete(target) else None
    return set_aside(target)


def step_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's complete `step_NNNNNNN` checkpoint dirs, oldest step first."""
    dirs = [p for p in Path(run_dir).glob("step_*") if p.name[5:].isdigit() and complete(p)]
    return sorted(dirs, key=lambda p: int(p.name[5:]))


def _out_dir_problem(out: Path, dirs: list[Path]) -> str | None:
    """Why writing an average into `out` would destroy something, or None if it is safe."""
    target = out.resolve()
    inputs = [d for d in dirs if d.resolve().is_relative_to(target)]
    if target in (d.resolve() for d in dirs):
        return "is one of the checkpoints being averaged"
    if inputs:
        return f"contains the checkpoint '{inputs[0]}' being averaged"
    if inside := next((p for p in target.parents if complete(p)), None):
        return f"lies inside the checkpoint '{inside}', which training or pruning replaces"
    if out.name in TRAINING_NAMES or out.name.startswith("step_"):
        return f"is named '{out.name}', a checkpoint training writes (last, best, step_NNNNNNN)"
    if out.exists() and not out.is_dir():
        return "is a file, not a directory"
    if (out / STATE_FILE).exists():
        return f"holds {STATE_FILE}, the state training resumes from"
    if out.is_dir() and any(out.iterdir()) and not (out / MODEL_FILE).is_file():
        return f"is a directory but not a checkpoint (no {MODEL_FILE})"
    if out.is_dir() and (others := sorted({p.name for p in out.iterdir()} - AVERAGE_FILES)):
        return f"holds {', '.join(others[:3])}, which an average does not write"
    with contextlib.suppress(CheckpointError):  # no weights, or unreadable ones: replaced
        if "step" in checkpoint_info(out):
            return "holds a checkpoint training wrote (its weights name their step), not an average"
    return None


def _check_inputs(dirs: list[Path], out: Path) -> ModelConfig:
    """Complete checkpoints of one model and tokenizer, each given once, and an `out` that
    destroys none of them -> their model config."""
    problem = _out_dir_problem(out, dirs)
    if problem:
        raise CheckpointError(
            f"cannot write the average into '{out}': it {problem}, and writing there would "
            f"delete it; choose a new directory such as '{dirs[-1].parent / f'avg{len(dirs)}'}'"
        )
    first, model, seen = "", None, set()
    for d in dirs:
        if d.resolve() in seen:  # it would count twice in the average
            raise CheckpointError(f"'{d}' is given twice; name each checkpoint once")
        seen.add(d.resolve())
        _require(d, MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE)
        sha = _check_tokenizer(d)
        first = first or sha
        if sha != first:
            raise CheckpointError(
                f"'{d / TOKENIZER_FILE}' differs from '{dirs[0] / TOKENIZER_FILE}'; average "
                "checkpoints trained with one tokenizer (one run)"
            )
        theirs = load_checkpoint_config(d).model
        check_model_config(d, theirs)
        model = model or theirs
        if theirs != model:
            raise CheckpointError(  # n_heads, pre_norm, ...: tensors of the same shapes
                f"'{d / CONFIG_FILE}' describes another model than '{dirs[0] / CONFIG_FILE}'; "
                "average checkpoints of one run"
            )
    return model


def _read_weights(d: Path, ref: dict[str, torch.Tensor], ref_dir: Path) -> dict[str, torch.Tensor]:
    """d's tensors, checked to have the names, shapes and dtypes of `ref` (when given)."""
    try:
        weights = safetensors.torch.load_file(str(d / MODEL_FILE))
    except Exception as e:
        raise CheckpointError(f"'{d / MODEL_FILE}' is not readable ({e})") from None
    if ref and weights.keys() != ref.keys():
        raise CheckpointError(f"'{d}' holds different tensors than '{ref_dir}'; same run?")
    for name, t in weights.items():
        r = ref.get(name, t)
        if t.shape != r.shape or t.dtype != r.dtype:
            raise CheckpointError(
                f"tensor '{name}' is {tuple(t.shape)} {t.dtype} in '{d}' but {tuple(r.shape)} "
                f"{r.dtype} in '{ref_dir}'; these are different models: average checkpoints of "
                "one run"
            )
    return weights


def average_checkpoints(dirs: list[Path], out_dir: str | Path) -> Path:
    """Average the float weights of several checkpoints of one model (summed in float64) into a
    new checkpoint dir; integer and bool tensors are the last checkpoint's."""
    if not dirs:
        raise CheckpointError("no checkpoints to average")
    dirs, out_dir = [Path(d) for d in dirs], Path(out_dir)
    model_cfg = _check_inputs(dirs, out_dir)
    ref: dict[str, torch.Tensor] = {}  # the first checkpoint's tensors: names, shapes, dtypes
    total: dict[str, torch.Tensor] = {}
    for d in dirs:
        weights = _read_weights(d, ref, dirs[0])
        ref = ref or weights
        for k, v in weights.items():
            if not v.is_floating_point():  # counters, masks: the last checkpoint's, not averaged
                total[k] = v
            else:
                total[k] = total[k] + v.double() if k in total else v.double()
    avg = {
        k: (v / len(dirs)).to(ref[k].dtype) if v.is_floating_point() else v
        for k, v in total.items()
    }
    with atomic_dir(out_dir) as tmp:
        metadata = _metadata((dirs[-1] / TOKENIZER_FILE).read_bytes(), model_cfg)
        safetensors.torch.save_file(avg, str(tmp / MODEL_FILE), metadata=metadata)
        shutil.copyfile(dirs[-1] / CONFIG_FILE, tmp / CONFIG_FILE)
        shutil.copyfile(dirs[-1] / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
    return out_dir
