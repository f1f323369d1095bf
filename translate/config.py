"""Typed experiment configuration: nested dataclasses, YAML files, `--set a.b=c` overrides.

The resolved config is saved next to every checkpoint, so a checkpoint rebuilds its model alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from translate import VersionAction

STOPS = ("exact", "current", "early")  # decode.stop; see translate.search.finished_bound


class ConfigError(ValueError):
    """A config problem the user can fix; the message says what and how."""


@dataclass
class DataConfig:
    source: str = "demo"  # demo | local | wmt14
    src_lang: str = "de"
    tgt_lang: str = "en"
    train: str = ""  # local: path prefix, `data/train` means data/train.de + data/train.en
    valid: str = ""
    test: str = ""
    dir: str = "data/default"  # where tokenizer.json, the token arrays and manifest.json go
    vocab_size: int = 8000  # shared BPE vocabulary, rounded up to a multiple of 64
    max_len: int = 128  # training pairs with a longer side (in tokens) are dropped
    max_ratio: float = 3.0  # drop training pairs whose token-length ratio exceeds this
    dedup: bool = True  # drop exact duplicate training pairs
    demo_pairs: int = 30000  # size of the generated demo corpus
    tokenizer_sample: int = 1_000_000  # at most this many sentences train the BPE
    invalid_utf8: str = "error"  # error | replace (replacements are counted)


@dataclass
class ModelConfig:
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    encoder_layers: int = 6
    decoder_layers: int = 6
    dropout: float = 0.1  # residual and embedding dropout
    activation_dropout: float = 0.0  # on the ReLU output inside the feed-forward (paper: none)
    attn_dropout: float = 0.0
    pre_norm: bool = False  # the paper is post-LN
    max_positions: int = 1024  # longest sequence the sinusoidal table covers


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"  # not a config's, so that a run without one clashes with none
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    max_tokens: int = 4096  # padded tokens per micro-batch (per side)
    tokens_per_update: int = 25000  # reached by gradient accumulation over micro-batches and ranks
    lr_scale: float = 1.0  # lr = lr_scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)
    warmup: int = 4000
    decay: str = "rsqrt"  # after warmup: rsqrt (paper) | linear | cosine (0 at the end of the run)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0  # matrices only
    clip_norm: float = 0.0  # 0 disables clipping
    label_smoothing: float = 0.1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: str = "auto"  # auto | on | off
    max_steps: int = 0  # 0 means no limit
    max_epochs: int = 0
    max_time: str = ""  # total training time, e.g. "30m", "11.5h", "11:30" (h:mm), "90s"
    session_time: str = ""  # this process's share (a Colab session); re-run to go on
    log_every: int = 50
    valid_every: int = 1000
    valid_bleu_sentences: int = 500  # greedy BLEU on this many valid sentences (0: loss only)
    save_every: int = 1000
    keep_last: int = 5  # step checkpoints kept besides best and last


@dataclass
class DecodeConfig:
    beam: int = 4
    alpha: float = 0.6  # GNMT length penalty exponent
    beta: float = 0.0  # GNMT coverage penalty weight (0: off)
    max_len_a: float = 1.0  # output at most a * source length + b tokens
    max_len_b: int = 50
    batch_tokens: int = 4096
    stop: str = "exact"  # one of STOPS: when beam search drops a sentence (translate.search)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of lists and scalars (safe for YAML and JSON)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass `cls` from a dict, rejecting unknown keys and converting types."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        name = f"{where}.{key}" if where else key
        if key not in known:
            raise ConfigError(f"unknown config key '{name}'; known keys: {', '.join(known)}")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' must be a section, got {value!r}")
            kwargs[key] = _build(type(default), value, name)
        else:
            kwargs[key] = _coerce(value, default, name)
    return cls(**kwargs)


def _coerce(value: Any, default: Any, name: str) -> Any:
    """Convert a YAML or command-line value to the type of the field's default."""
    kind = type(default)
    try:
        if value is None:  # `key:` with no value in YAML
            raise ValueError(value)
        if isinstance(value, (list, dict)) and kind is not tuple:  # str() would take them
            raise ValueError(value)
        if kind in (int, float) and isinstance(value, bool):  # int(True) is 1
            raise ValueError(value)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is str and isinstance(value, bool):  # YAML reads a bare on/off as a boolean
            return "on" if value else "off"
        if kind is tuple:
            items = yaml.safe_load(value) if isinstance(value, str) else value
            return tuple(type(d)(v) for d, v in zip(default, items, strict=True))
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config key '{name}' expects {'an' if kind is int else 'a'} {kind.__name__} like "
            f"{default!r}, got {value!r}"
        ) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings to a nested dict (values parsed as YAML scalars)."""
    for item in overrides:
        path, sep, value = item.partition("=")
        keys = path.strip().split(".")
        if not sep or len(keys) != 2 or not all(keys):
            raise ConfigError(f"--set expects section.key=value, got '{item}'")
        try:
            parsed = yaml.load(value, Loader=UniqueKeyLoader) if value.strip() else ""
        except yaml.YAMLError as e:  # e.g. undecodable bytes in a path
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            undecodable = any("\udc80" <= c <= "\udcff" for c in value)  # argv bytes, kept
            hint = (
                "rename or link the folder to a name in this system's encoding"
                if undecodable
                else "quote text with YAML syntax"
            )
            raise ConfigError(
                f"--set {path.strip()}: '{value}' is not a YAML value ({what}); {hint}"
            ) from None
        raw.setdefault(keys[0], {})
        if not isinstance(raw[keys[0]], dict):
            raise ConfigError(f"config key '{keys[0]}' must be a section")
        raw[keys[0]][keys[1]] = parsed
    return raw


def add_config_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """The `--config FILE` and repeatable `--set section.key=value` options of every entry point,
    and `--version`."""
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument(
        "--config", required=required, help="experiment YAML, e.g. configs/demo.yaml"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set data.vocab_size=16000 (repeatable)",
    )


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one section (YAML keeps the last one)
    and keeps YAML 1.1's base-60 numbers as written: `max_time: 11:30` is '11:30', not 690."""

    def construct_yaml_int(self, node):
        return node.value if ":" in node.value else super().construct_yaml_int(node)

    def construct_yaml_float(self, node):
        return node.value if ":" in node.value else super().construct_yaml_float(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float) and key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice (line {line}); keep one", None
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", UniqueKeyLoader.construct_yaml_int)
UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", UniqueKeyLoader.construct_yaml_float)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML experiment file (or the defaults), apply overrides, validate every key."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist; see configs/ for examples")
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader) or {}
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"config file '{path}' is not UTF-8 text (byte {e.start}); save it as UTF-8"
            ) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"config file '{path}' is not valid YAML{where}: {what}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file '{path}' must hold sections like 'data:' and 'model:'")
    return config_from_dict(apply_overrides(raw, overrides or []))


def config_from_dict(raw: dict[str, Any]) -> Config:
    cfg = _build(Config, raw, "")
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    choices = {
        "data.source": (cfg.data.source, ("demo", "local", "wmt14")),
        "data.invalid_utf8": (cfg.data.invalid_utf8, ("error", "replace")),
        "train.precision": (cfg.train.precision, ("auto", "fp32", "bf16", "fp16")),
        "train.compile": (cfg.train.compile, ("auto", "on", "off")),
        "train.device": (cfg.train.device, ("auto", "cpu", "cuda")),
        "train.decay": (cfg.train.decay, ("rsqrt", "linear", "cosine")),
        "decode.stop": (cfg.decode.stop, STOPS),
    }
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got '{value}'")
    _check_ranges(cfg)
    if cfg.model.d_model % cfg.model.n_heads:
        raise ConfigError(
            f"model.d_model ({cfg.model.d_model}) must be divisible by model.n_heads "
            f"({cfg.model.n_heads})"
        )
    if not 320 <= cfg.data.vocab_size <= MAX_VOCAB:
        raise ConfigError(
            f"data.vocab_size must be from 320 (256 byte symbols + 4 special tokens, rounded "
            f"up to a multiple of 64) to {MAX_VOCAB:,}; got {cfg.data.vocab_size:,}"
        )
    for key, most in DECODE_MOST.items():
        if getattr(cfg.decode, key) > most:
            raise ConfigError(
                f"decode.{key} must be at most {most}; got {getattr(cfg.decode, key)}"
            )
    if cfg.model.max_positions < cfg.data.max_len + 1:
        raise ConfigError(
            f"model.max_positions ({cfg.model.max_positions}) must cover data.max_len + 1 "
            f"({cfg.data.max_len + 1}: the longest sentence plus eos or bos); raise it"
        )
    if not 0 <= cfg.train.seed < 2**32:
        raise ConfigError(f"train.seed must be in [0, 2**32); got {cfg.train.seed}")
    for name in ("train.out_dir", "data.dir"):
        section, key = name.split(".")
        if not getattr(getattr(cfg, section), key).strip():
            raise ConfigError(f"{name} is empty; give a directory path (e.g. the config's)")
    if cfg.train.max_tokens < cfg.data.max_len + 1:
        raise ConfigError(
            f"train.max_tokens ({cfg.train.max_tokens}) must hold the longest training pair, "
            f"data.max_len + 1 ({cfg.data.max_len + 1}) tokens a side; raise it, or lower "
            "data.max_len"
        )
    for key in ("max_time", "session_time"):
        if getattr(cfg.train, key) and parse_duration(getattr(cfg.train, key), key) <= 0:
            raise ConfigError(f"train.{key} must be positive; got '{getattr(cfg.train, key)}'")
    if cfg.train.decay != "rsqrt" and not (cfg.train.max_steps > 0 or cfg.train.max_time):
        raise ConfigError(
            f"train.decay={cfg.train.decay} decays the learning rate to 0 at the end of the run; "
            "set train.max_steps or train.max_time, or use train.decay=rsqrt"
        )


MAX_VOCAB = 1 << 18  # the BPE pads a vocabulary up to its size: a typo would fill memory
# Output length limits, for the config's decode section and translate's options alike (the
# model's positions cap the length anyway)
DECODE_MOST = {"max_len_a": 1000, "max_len_b": 1_000_000}

# (section.key, lowest allowed value, whether the lowest is allowed): positive counts and sizes,
# non-negative limits (0 disables), probabilities below 1.
RANGES = [
    *((f"model.{k}", 1, True) for k in ("d_model", "n_heads", "d_ff", "max_positions")),
    *((f"model.{k}", 1, True) for k in ("encoder_layers", "decoder_layers")),
    *((f"model.{k}", 0, True) for k in ("dropout", "activation_dropout", "attn_dropout")),
    *((f"data.{k}", 1, True) for k in ("max_len", "max_ratio", "demo_pairs", "tokenizer_sample")),
    *((f"train.{k}", 1, True) for k in ("max_tokens", "tokens_per_update", "warmup", "log_every")),
    *((f"train.{k}", 0, False) for k in ("lr_scale", "eps")),
    *((f"train.{k}", 0, True) for k in ("weight_decay", "clip_norm", "label_smoothing")),
    *((f"train.{k}", 0, True) for k in ("max_steps", "max_epochs", "valid_every", "save_every")),
    *((f"train.{k}", 0, True) for k in ("keep_last", "valid_bleu_sentences")),
    *((f"decode.{k}", 1, True) for k in ("beam", "batch_tokens")),
    *((f"decode.{k}", 0, True) for k in ("alpha", "beta", "max_len_a", "max_len_b")),
]
BELOW_ONE = (
    "model.dropout",
    "model.activation_dropout",
    "model.attn_dropout",
    "train.label_smoothing",
)


def _check_ranges(cfg: Config) -> None:
    """Every number in RANGES at or above its lowest value, finite, and < 1 where BELOW_ONE."""
    for name, low, inclusive in RANGES:
        section, key = name.split(".")
        value = getattr(getattr(cfg, section), key)
        ok = value >= low if inclusive else value > low
        if not (ok and math.isfinite(value) and (name not in BELOW_ONE or value < 1)):
            bound = f"{'at least' if inclusive else 'above'} {low}"
            if name in BELOW_ONE:
                bound = f"from {low} up to (not including) 1"
            raise ConfigError(f"{name} must be {bound}; got {value}")
    betas = cfg.train.betas
    if not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"train.betas must both be from 0 up to (not including) 1; got {betas}")


def parse_duration(text: str, key: str = "max_time") -> float:
    """'90s', '30m', '11.5h', '11:30' (h:mm), '11:30:00' or a bare number of seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = str(text).strip().lower()
    scale = units.get(text[-1:])
    parts = text.split(":")
    try:
        if len(parts) in (2, 3):  # h:mm or h:mm:ss
            if not all(p.isdigit() for p in parts) or any(int(p) >= 60 for p in parts[1:]):
                raise ValueError(text)
            hours, minutes, secs = map(int, (parts + ["0"])[:3])
            seconds = hours * 3600 + minutes * 60 + secs
        else:
            seconds = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ConfigError(f"train.{key} expects e.g. '30m', '11.5h' or '11:30', got '{text}'")
    return seconds


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def data_identity(data: DataConfig, base: str | None = None) -> dict[str, Any]:
    """The fields that change prepared data: not `dir`, nor those the source never reads. Local
    corpus paths are resolved (`..`, symlinks), made relative to the resolved `base` if given."""
    fields = {k: v for k, v in dataclasses.asdict(data).items() if k != "dir"}
    unused = ["demo_pairs"] if data.source != "demo" else []  # what the source never reads
    if data.source != "local":
        unused += ["train", "valid", "test", "invalid_utf8"]
    for key in unused:
        del fields[key]
    if data.source == "local":
        for split in ("train", "valid", "test"):
            if fields[split]:
                fields[split] = resolved(fields[split], base)
    return fields


def resolved(path: str | Path, base: str | Path | None = None) -> str:
    """`path` with symlinks and `..` resolved, relative to the resolved `base` where given."""
    path = os.path.realpath(path)
    if base is None:
        return path
    try:
        return os.path.relpath(path, os.path.realpath(base))
    except ValueError:  # another drive (Windows): no relative path
        return path


def data_hash(data: DataConfig) -> str:
    """The prepared data's cache key: data_identity relative to data.dir, so that a tree moved
    with its corpus, or a shared filesystem mounted elsewhere, keeps its prepared data."""
    text = json.dumps(data_identity(data, data.dir), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(section: str, then: dict[str, Any], now: dict[str, Any]) -> str:
    """'section.key: old then, new now' for each key whose value changed, comma-separated."""
    changed = [k for k in then if k in now and then[k] != now[k]]
    return ", ".join(f"{section}.{k}: {then[k]!r} then, {now[k]!r} now" for k in changed)
