import pytest

from translate.config import ConfigError, config_from_dict, load_config, parse_duration, save_config

CONFIGS = ["demo", "multi30k", "wmt14_base", "wmt14_big"]


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_load(name):
    cfg = load_config(f"configs/{name}.yaml")
    assert cfg.model.d_model % cfg.model.n_heads == 0


def test_overrides_are_typed():
    cfg = load_config("configs/demo.yaml", ["train.max_steps=7", "model.pre_norm=true"])
    assert cfg.train.max_steps == 7 and cfg.model.pre_norm is True
    cfg = load_config(None, ["train.betas=[0.9, 0.99]", "data.max_ratio=2"])
    assert cfg.train.betas == (0.9, 0.99) and cfg.data.max_ratio == 2.0


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.nope=1", ["unknown config key 'train.nope'"]),
        ("nope.key=1", ["unknown config key 'nope'"]),
        ("train.max_steps=ten", ["train.max_steps", "'ten'"]),
        ("train.max_steps=1.5", ["train.max_steps", "1.5"]),
        ("model.pre_norm=maybe", ["model.pre_norm"]),
        ("train.precision=fp8", ["train.precision", "fp8"]),
        ("model.n_heads=7", ["divisible"]),
        ("train.max_time=soon", ["train.max_time", "soon"]),
        ("max_steps=3", ["section.key=value"]),
        ("data.vocab_size=256", ["data.vocab_size", "256"]),
        ("decode.stop=never", ["decode.stop", "exact, current, early", "never"]),
    ],
)
def test_bad_values_name_the_key(override, words):
    with pytest.raises(ConfigError) as e:
        load_config("configs/demo.yaml", [override])
    assert all(w in str(e.value) for w in words)


def test_yaml_on_off_read_as_words():
    assert load_config(None, ["train.compile=off"]).train.compile == "off"
    assert load_config(None, ["train.compile=on"]).train.compile == "on"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("configs/wmt14_big.yaml", ["train.seed=5"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("30m", 1800), ("11.5h", 41400), ("45", 45)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
