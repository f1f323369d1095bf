"""The README's offline demo, end to end (about 7 minutes on 2 CPU cores: `pytest -m slow`)."""

import subprocess
import sys

import pytest

PHRASES = {
    "Guten Morgen": "Good morning",
    "Gute Nacht": "Good night",
    "Wie geht es dir?": "How are you?",
}


@pytest.mark.slow
def test_demo_learns_common_phrases(tmp_path):
    run = tmp_path / "runs" / "demo"
    overrides = ["--set", f"train.out_dir={run}", "--set", f"data.dir={tmp_path / 'data'}"]
    train = [sys.executable, "-m", "translate.train", "--config", "configs/demo.yaml", *overrides]
    subprocess.run(train, check=True, timeout=900)
    cmd = [sys.executable, "-m", "translate", "--checkpoint", str(run / "best"), *PHRASES]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.rstrip(".!").strip() for line in out] == list(PHRASES.values())
