"""translate.evaluate: scores equal sacreBLEU on the written hypotheses; errors are one line."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
import yaml

from translate.config import load_config
from translate.evaluate import main, metrics
from translate.translator import Translator

REPO = Path(__file__).resolve().parents[1]
SRC = [
    "Guten Morgen, wie geht es dir?",
    "Ich habe einen kleinen Hund.",
    "",
    "Das Wetter ist heute schön.",
    "Wir fahren morgen nach Berlin.",
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def references(ckpt: Path) -> list[str]:
    """References that share most n-grams with the model's output, so BLEU is not trivially 0."""
    hyps = Translator.load(ckpt, device="cpu").translate(SRC)
    return [h if i % 2 == 0 else h + " the dog is small" for i, h in enumerate(hyps)]


def test_scores_equal_sacrebleu_on_written_hypotheses(tiny_checkpoint, tmp_path):
    src = write_lines(tmp_path / "test.de", SRC)
    refs = references(tiny_checkpoint)
    ref = write_lines(tmp_path / "test.en", refs)
    out = tmp_path / "hyp.en"
    cmd = [sys.executable, "-m", "translate.evaluate", "--checkpoint", str(tiny_checkpoint)]
    cmd += ["--src", str(src), "--ref", str(ref), "--output", str(out), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr

    hyps = out.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(hyps) == len(SRC)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {"bleu", "chrf", "signature", "sentences", "seconds", "sentences_per_second"}
    assert expected <= result.keys()
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert result["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert result["chrf"] > 0 and result["sentences"] == len(SRC)
    assert "tok:13a" in result["signature"]["bleu"] and "BLEU" in proc.stdout


@pytest.mark.parametrize("which", ["src", "ref"])
def test_output_over_the_source_or_references_is_refused(tiny_checkpoint, tmp_path, capsys, which):
    files = {"src": write_lines(tmp_path / "t.de", SRC), "ref": write_lines(tmp_path / "t.en", SRC)}
    before = files[which].read_bytes()
    args = ["--checkpoint", str(tiny_checkpoint), "--src", str(files["src"])]
    assert main([*args, "--ref", str(files["ref"]), "--output", str(files[which])]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"--{which} file" in err and len(err.splitlines()) == 1
    os.link(files[which], tmp_path / "link")  # a hard link of it is the same file too
    assert main([*args, "--ref", str(files["ref"]), "--output", str(tmp_path / "link")]) == 1
    assert f"--{which} file" in capsys.readouterr().err
    assert files[which].read_bytes() == before


def test_a_bom_does_not_stick_to_the_first_reference(tiny_checkpoint, tmp_path, capsys):
    src = write_lines(tmp_path / "t.de", SRC)
    hyps = Translator.load(tiny_checkpoint, device="cpu").translate(SRC)
    ref = tmp_path / "t.en"
    ref.write_bytes(b"\xef\xbb\xbf" + "".join(h + "\n" for h in hyps).encode("utf-8"))
    args = ["--checkpoint", str(tiny_checkpoint), "--src", str(src), "--ref", str(ref), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["chrf"] == pytest.approx(100.0)


def test_tokenize_and_lowercase_pass_through(tiny_checkpoint, tmp_path, capsys):
    src = write_lines(tmp_path / "a.de", SRC[:2])
    refs = [r.upper() for r in references(tiny_checkpoint)[:2]]
    ref = write_lines(tmp_path / "a.en", refs)
    out = tmp_path / "hyp.en"
    args = ["--checkpoint", str(tiny_checkpoint), "--src", str(src), "--ref", str(ref)]
    args += ["--tokenize", "char", "--lowercase", "--json", "--output", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    hyps = out.read_text(encoding="utf-8").split("\n")[:-1]
    expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="char", lowercase=True).score
    assert result["bleu"] == pytest.approx(expected) and result["bleu"] > 50
    assert "case:lc" in result["signature"]["bleu"] and "tok:char" in result["signature"]["bleu"]


def test_mismatched_line_counts_is_one_line_error(tiny_checkpoint, tmp_path, capsys):
    src = write_lines(tmp_path / "a.de", SRC)
    ref = write_lines(tmp_path / "a.en", SRC[:3])
    assert main(["--checkpoint", str(tiny_checkpoint), "--src", str(src), "--ref", str(ref)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "5" in err and "3" in err


def test_split_prepares_missing_data_then_scores_it(tiny_checkpoint, tmp_path, capsys):
    from conftest import tiny_overrides, write_corpus

    write_corpus(tmp_path / "raw", sizes=(("train", 60), ("valid", 4), ("test", 6)))
    data = load_config(None, tiny_overrides(tmp_path, tmp_path / "run")).data  # not prepared
    ckpt = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    cfg = yaml.safe_load((ckpt / "config.yaml").read_text(encoding="utf-8"))
    cfg["data"] = dataclasses.asdict(data)
    (ckpt / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = tmp_path / "hyp.en"
    args = ["--checkpoint", str(ckpt), "--split", "test", "--json", "--output", str(out)]
    assert main([*args, "--beam", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    refs = (tmp_path / "raw" / "test.en").read_text(encoding="utf-8").split("\n")[:-1]
    hyps = out.read_text(encoding="utf-8").split("\n")[:-1]
    assert result["sentences"] == len(refs) == len(hyps) == 6
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)


def test_needs_src_and_ref_or_split(tiny_checkpoint, capsys):
    assert main(["--checkpoint", str(tiny_checkpoint), "--src", "x.de"]) != 0
    assert capsys.readouterr().err.startswith("error: ")


def run_with_decoy(tiny_checkpoint, at: Path, root: Path, decoy: Path) -> Path:
    """A checkpoint at/runs/x/best (out_dir runs/x, data.dir data/d) with the run's 5 test
    pairs in root/data/d and a decoy of 2 in decoy/data/d."""
    ckpt = Path(shutil.copytree(tiny_checkpoint, at / "runs" / "x" / "best"))
    cfg = yaml.safe_load((ckpt / "config.yaml").read_text(encoding="utf-8"))
    cfg["train"]["out_dir"], cfg["data"]["dir"] = "runs/x", "data/d"
    (ckpt / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    for where, n in ((root, 5), (decoy, 2)):
        (where / "data" / "d").mkdir(parents=True)
        write_lines(where / "data" / "d" / "test.de", SRC[:n])
        write_lines(where / "data" / "d" / "test.en", SRC[:n])
    return ckpt


def test_split_reads_the_data_of_the_directory_training_ran_in(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    """runs/x/best with data.dir data/d: --split reads ROOT/data/d from anywhere, never ./data/d."""
    root, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    ckpt = run_with_decoy(tiny_checkpoint, root, root, elsewhere)
    monkeypatch.chdir(elsewhere)
    assert main(["--checkpoint", str(ckpt), "--split", "test", "--json", "--beam", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sentences"] == 5


def test_split_with_runs_linked_elsewhere_reads_the_data_beside_the_link(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    """Colab: ROOT/runs is a link to a Drive folder; the data is ROOT/data/d, not beside Drive's."""
    root, drive = tmp_path / "project", tmp_path / "drive"
    run_with_decoy(tiny_checkpoint, drive, root, drive)
    (root / "runs").symlink_to(drive / "runs")
    monkeypatch.chdir(root)
    assert main(["--checkpoint", "runs/x/best", "--split", "test", "--json", "--beam", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sentences"] == 5


@pytest.mark.parametrize("lang", ["de", "en"])
def test_output_over_the_split_files_is_refused(
    tiny_checkpoint, tmp_path, monkeypatch, capsys, lang
):
    """--split test --output data/d/test.en would replace the references: the next evaluation
    would score the hypotheses against themselves (BLEU 100)."""
    root = tmp_path / "project"
    ckpt = run_with_decoy(tiny_checkpoint, root, root, tmp_path / "elsewhere")
    monkeypatch.chdir(root)
    split_file = root / "data" / "d" / f"test.{lang}"
    before = split_file.read_bytes()
    args = ["--checkpoint", str(ckpt), "--split", "test", "--beam", "1"]
    assert main([*args, "--output", f"data/d/test.{lang}"]) == 1
    err = capsys.readouterr().err
    name = "source" if lang == "de" else "reference"
    assert err == (
        f"error: --output 'data/d/test.{lang}' is the --split test {name} file '{split_file}', "
        "which the hypotheses would overwrite; give another output file\n"
    )
    assert split_file.read_bytes() == before


def test_a_tokenizer_that_cannot_download_fails_before_decoding(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    import urllib.error

    import translate.evaluate as evaluate

    class Offline(evaluate.BLEU):  # what flores200 / spm do offline
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(evaluate, "BLEU", Offline)
    monkeypatch.setattr(Translator, "translate", lambda *a, **k: pytest.fail("decoded"))
    src, ref = write_lines(tmp_path / "a.de", SRC), write_lines(tmp_path / "a.en", SRC)
    args = ["--checkpoint", str(tiny_checkpoint), "--src", str(src), "--ref", str(ref)]
    assert main([*args, "--tokenize", "flores200"]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "--tokenize flores200" in err and "13a" in err


def test_a_tokenizer_without_its_extras_says_what_to_install():
    if importlib.util.find_spec("MeCab") is not None:
        pytest.skip("sacrebleu[ja] is installed here")
    with pytest.raises(ValueError, match=r'pip install "sacrebleu\[ja\]"'):
        metrics("ja-mecab", lowercase=False)
