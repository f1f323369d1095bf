import dataclasses

import pytest

from translate.config import (
    ConfigError,
    DataConfig,
    config_from_dict,
    data_hash,
    load_config,
    parse_duration,
    save_config,
)

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
        ("train.max_tokens=abc", ["train.max_tokens", "expects an int", "abc"]),
        ("max_steps=3", ["section.key=value"]),
        ("data.vocab_size=256", ["data.vocab_size", "256"]),
        ("decode.stop=never", ["decode.stop", "exact, current, early", "never"]),
        ("train.max_tokens=0", ["train.max_tokens", "at least 1", "0"]),
        ("train.tokens_per_update=0", ["train.tokens_per_update", "0"]),
        ("train.log_every=0", ["train.log_every", "0"]),
        ("train.warmup=0", ["train.warmup", "0"]),
        ("model.n_heads=0", ["model.n_heads", "0"]),
        ("model.encoder_layers=0", ["model.encoder_layers", "0"]),
        ("train.max_steps=-1", ["train.max_steps", "-1"]),
        ("train.max_time=-5m", ["train.max_time", "positive"]),
        ("train.session_time=0", ["train.session_time", "positive"]),
        ("train.max_time=nan", ["train.max_time", "nan"]),
        ("train.lr_scale=0", ["train.lr_scale", "above 0"]),
        ("train.clip_norm=.nan", ["train.clip_norm", "nan"]),
        ("model.dropout=1.0", ["model.dropout", "not including) 1"]),
        ("train.label_smoothing=-0.1", ["train.label_smoothing", "-0.1"]),
        ("train.betas=[0.9, 1.0]", ["train.betas", "1.0"]),
        ("decode.beam=0", ["decode.beam", "0"]),
        ("model.max_positions=64", ["model.max_positions", "data.max_len + 1", "65"]),
        ("train.max_tokens=64", ["train.max_tokens (64)", "data.max_len + 1 (65)"]),
        ("train.seed=-1", ["train.seed", "-1"]),
        ("train.seed=4294967296", ["train.seed", "4294967296"]),
        ("train.out_dir=", ["train.out_dir is empty"]),
        ("data.dir= ", ["data.dir is empty"]),
        ("data.vocab_size=8000000", ["data.vocab_size", "262,144", "8,000,000"]),
        ("decode.max_len_a=5000", ["decode.max_len_a", "at most 1000", "5000"]),
        ("decode.max_len_b=2000000", ["decode.max_len_b", "at most 1000000"]),
        ("data.demo_pairs=yes", ["data.demo_pairs", "expects an int", "True"]),
        ("train.lr_scale=true", ["train.lr_scale", "expects a float", "True"]),
        ("train.out_dir=[a, b]", ["train.out_dir", "expects a str", "['a', 'b']"]),
        ("data.train={x: 1}", ["data.train", "expects a str", "{'x': 1}"]),
    ],
)
def test_bad_values_name_the_key(override, words):
    with pytest.raises(ConfigError) as e:
        load_config("configs/demo.yaml", [override])
    assert all(w in str(e.value) for w in words)


@pytest.mark.parametrize(
    "value, what, hint",
    [
        (  # argv in Latin-1
            "/data/Gr\udcfc\udcdfe",
            "special characters are not allowed",
            "rename or link the folder to a name in this system's encoding",
        ),
        ("[x", "expected ',' or ']'", "quote text with YAML syntax"),
    ],
)
def test_set_value_yaml_cannot_read_is_one_line(value, what, hint):
    """One line that says what to do for this value: no folder advice for unbalanced YAML."""
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"data.dir={value}"])
    assert str(e.value).startswith(f"--set data.dir: '{value}' is not a YAML value (")
    assert what in str(e.value)
    assert str(e.value).endswith(f"); {hint}")
    assert "\n" not in str(e.value)


def test_yaml_on_off_read_as_words():
    assert load_config(None, ["train.compile=off"]).train.compile == "off"
    assert load_config(None, ["train.compile=on"]).train.compile == "on"


def test_malformed_yaml_names_line_and_column(tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  d_model: 4\n train: x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(e.value) and "line 3, column 2" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("configs/wmt14_big.yaml", ["train.seed=5"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("30m", 1800), ("11.5h", 41400), ("45", 45), ("11:30", 41400), ("0:30:05", 1805)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_h_mm_is_a_duration_not_a_base_60_number(tmp_path):
    """YAML 1.1 reads 11:30 as the integer 690; the config keeps what was written."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  session_time: 11:30\n", encoding="utf-8")
    cfg = load_config(path, ["train.max_time=12:00"])
    assert (cfg.train.session_time, cfg.train.max_time) == ("11:30", "12:00")
    assert parse_duration(cfg.train.session_time) == 11.5 * 3600
    with pytest.raises(ConfigError, match="expects an int like 0, got '1:30'"):
        load_config(None, ["train.max_steps=1:30"])
    with pytest.raises(ConfigError, match="got '1:75'"):
        parse_duration("1:75")


def test_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"train:\n  out_dir: runs/\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_a_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  max_steps: 2\n  max_steps: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'max_steps' is given twice \\(line 3\\)"):
        load_config(path)


def test_a_key_without_a_value_in_yaml_is_refused(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("train:\n  out_dir:\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'train.out_dir' expects a str .* got None"):
        load_config(str(path))


def test_settings_the_source_never_reads_keep_its_prepared_data():
    demo, local = DataConfig(), DataConfig(source="local", train="t", valid="v", test="x")
    assert data_hash(dataclasses.replace(demo, invalid_utf8="replace", train="t")) == data_hash(
        demo
    )
    assert data_hash(dataclasses.replace(local, demo_pairs=5)) == data_hash(local)
    assert data_hash(dataclasses.replace(demo, demo_pairs=5)) != data_hash(demo)
    assert data_hash(dataclasses.replace(local, invalid_utf8="replace")) != data_hash(local)
