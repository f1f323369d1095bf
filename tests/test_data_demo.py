"""The generated demo corpus: size, determinism, phrasebook content, disjoint held-out splits."""

from __future__ import annotations

import os
import subprocess
import sys

from data_prep.demo_corpus import demo_splits


def test_default_demo_is_deterministic_and_large():
    a, b = demo_splits(30_000), demo_splits(30_000)
    assert a == b
    src, tgt = a["train"]
    assert len(src) == len(tgt) >= 20_000
    assert len(set(zip(src, tgt, strict=True))) == len(src)  # survives exact dedup
    pairs = dict(zip(src, tgt, strict=True))
    assert pairs["Guten Morgen"] == "Good morning"
    assert sum("Guten Morgen" in s for s in src) >= 10
    assert pairs["Wie geht es dir?"] == "How are you?"
    assert max(len(s.split()) for s in src) <= 16


def test_held_out_splits_are_disjoint_from_train():
    splits = demo_splits(3000)
    train = set(splits["train"][0])
    for split in ("valid", "test"):
        assert len(splits[split][0]) > 0
        assert not train & set(splits[split][0])
    assert not set(splits["valid"][0]) & set(splits["test"][0])


def test_grammar_samples():
    src, tgt = demo_splits(3000)["train"]
    for s, t in zip(src, tgt, strict=True):
        assert " ein " not in f" {t} " and "inein" not in s  # English articles, German stems
        if t[-1] in ".?!":  # sentences (not fragments like "am Montag") start with a capital
            assert t[0].isupper() and s[0].isupper(), (s, t)
        if t.startswith("Does ") or t.startswith("Do "):
            assert t.endswith("?")


def test_cli_prints_summary_and_errors(tmp_path):
    out = tmp_path / "demo"

    def run(*args):
        cmd = [sys.executable, "-m", "data_prep", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    ok = run(
        "--config", "configs/demo.yaml", "--set", f"data.dir={out}", "--set", "data.demo_pairs=2000"
    )
    assert ok.returncode == 0, ok.stderr
    assert "padding efficiency" in ok.stdout and "peak memory" in ok.stdout
    bad = run(
        "--config", "configs/demo.yaml", "--set", f"data.dir={out}", "--set", "data.source=local"
    )
    (tmp_path / "file").write_text("")
    under_a_file = run(
        "--config", "configs/demo.yaml", "--set", f"data.dir={tmp_path / 'file' / 'demo'}"
    )
    for proc in (bad, under_a_file):
        assert proc.returncode == 1
        assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_runs_without_resource_module_and_reads_macos_bytes(monkeypatch):
    """Windows has no `resource` (the summary leaves peak memory out); macOS's ru_maxrss is in
    bytes, Linux's in KiB."""
    import importlib
    import types

    import data_prep.__main__ as cli

    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` raises ImportError
    cli = importlib.reload(cli)
    assert cli.peak_memory_mb() is None
    usage = types.SimpleNamespace(ru_maxrss=3 * 2**20)
    fake = types.SimpleNamespace(RUSAGE_SELF=0, getrusage=lambda who: usage)
    monkeypatch.setitem(sys.modules, "resource", fake)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli.peak_memory_mb() == 3.0
    monkeypatch.setattr(sys, "platform", "linux")
    assert cli.peak_memory_mb() == 3 * 1024


def test_cli_prints_a_path_stdouts_encoding_lacks(tmp_path):
    """Windows writes a redirected stdout in its ANSI code page (cp1252 here), which has no 'Ł':
    the summary escapes it rather than ending in a UnicodeEncodeError."""
    out = tmp_path / "Łódź"
    cmd = [sys.executable, "-m", "data_prep", "--config", "configs/demo.yaml"]
    cmd += ["--set", f"data.dir={out}", "--set", "data.demo_pairs=2000"]
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    shown = str(out).encode("cp1252", "backslashreplace").decode("cp1252")  # ...\\u0141ód\\u017a
    assert f"data: {shown} (" in proc.stdout.decode("cp1252")
