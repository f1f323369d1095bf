"""translate.export: the MarianMTModel export computes our logits and searches like our search.

Tests needing transformers / ctranslate2 (the optional `bench` extra) are skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_prep import EOS_ID, PAD_ID, load_tokenizer, never_emitted
from translate.checkpoint import save_checkpoint
from translate.config import ModelConfig, load_config
from translate.export import ExportError, to_marian
from translate.model import Transformer
from translate.search import greedy_search

REPO = Path(__file__).resolve().parents[1]
SRC = [[5, 17, 33, 40, 8, 9], [71, 12, 200], [300, 4, 4, 150, 6], [44]]
MAX_LEN = 12


def random_model(pre_norm: bool = False, vocab: int = 320) -> Transformer:
    """A d=32, 2+2-layer model with every parameter random (biases and LayerNorms included)."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        d_model=32,
        n_heads=4,
        d_ff=64,
        encoder_layers=2,
        decoder_layers=2,
        max_positions=64,
        pre_norm=pre_norm,
    )
    model = Transformer(cfg, vocab)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # biases around 0, LayerNorm gains around 1
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("norm.weight") else 0.0))
            elif name != "shared.weight":
                p.mul_(2.0)  # sharper distributions: greedy picks differ between sentences
    return model.eval()


def padded(rows: list[list[int]], append: int | None = EOS_ID) -> torch.Tensor:
    """(B, S) int64: each row (+ append), right-padded with pad."""
    rows = [r + ([append] if append is not None else []) for r in rows]
    out = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def reloaded_marian(model: Transformer, tmp_path: Path):
    """to_marian(model) written with save_pretrained and read back (what users load)."""
    transformers = pytest.importorskip("transformers")
    to_marian(model).save_pretrained(tmp_path / "hf")
    return transformers.MarianMTModel.from_pretrained(tmp_path / "hf").eval()


def test_logits_equal_marian(tmp_path):
    model = random_model()
    marian = reloaded_marian(model, tmp_path)
    src = padded(SRC)
    tgt_in = padded([[1, 9, 8, 7, 6, 5], [1, 40, 41], [1, 2], [1, 77, 78, 79]], append=None)
    with torch.no_grad():
        ours = model(src, tgt_in)  # (B, T, V)
        hf = marian(input_ids=src, attention_mask=src.ne(PAD_ID), decoder_input_ids=tgt_in).logits
        real = tgt_in.ne(PAD_ID)  # pad queries are garbage in both (never used)
        assert (ours - hf)[real].abs().max() <= 1e-4
        # our incremental decoder (KV cache) at every position against Marian's full pass
        state = model.init_state(*model.encode(src))
        for t in range(tgt_in.size(1)):
            logits, _ = model.decode_step(tgt_in[:, t], state)  # (B, V)
            assert (logits - hf[:, t])[real[:, t]].abs().max() <= 1e-4


def test_pre_norm_is_refused():
    with pytest.raises(ExportError, match="post-LN"):
        to_marian(random_model(pre_norm=True))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRANSLATE_DEBUG", None)
    cmd = [sys.executable, "-m", "translate", "export", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_cli_refuses_pre_norm_in_one_line(tiny_checkpoint, tmp_path):
    from data_prep import load_tokenizer

    cfg = load_config(tiny_checkpoint / "config.yaml", ["model.pre_norm=true"])
    vocab = load_tokenizer(tiny_checkpoint).get_vocab_size()
    ckpt = save_checkpoint(
        tmp_path / "ckpt", Transformer(cfg.model, vocab), cfg, tiny_checkpoint / "tokenizer.json"
    )
    proc = run_cli("--checkpoint", str(ckpt), "--to", "hf", str(tmp_path / "out"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "post-LN" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("to", ["hf", "ctranslate2"])
@pytest.mark.parametrize("target", ["run", "checkpoint", "inside", "file", "other_files"])
def test_cli_refuses_an_out_it_would_destroy(tiny_checkpoint, tmp_path, to, target):
    run = tmp_path / "runs" / "demo"
    ckpt = Path(shutil.copytree(tiny_checkpoint, run / "best"))
    (run / "log.jsonl").write_text("{}\n")
    out = {
        "run": run,
        "checkpoint": ckpt,
        "inside": ckpt / "hf",
        "file": tmp_path / "notes.txt",
        "other_files": tmp_path / "mine",
    }[target]
    if target == "file":
        out.write_text("mine\n")
    if target == "other_files":
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "notes.txt").write_text("mine\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = run_cli("--checkpoint", str(ckpt), "--to", to, str(out))
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "OUT" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_cli_export_loads_in_transformers(tiny_checkpoint, tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    proc = run_cli("--checkpoint", str(tiny_checkpoint), "--to", "hf", str(out))
    assert proc.returncode == 0, proc.stderr
    again = run_cli("--checkpoint", str(tiny_checkpoint), "--to", "hf", str(out))
    assert again.returncode == 0, again.stderr  # an earlier export is replaced
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    marian = transformers.MarianMTModel.from_pretrained(out).eval()
    never = never_emitted(load_tokenizer(tiny_checkpoint))  # every special token but </s>
    assert marian.generation_config.bad_words_ids == [[i] for i in never]
    batch = tokenizer(
        ["Guten Morgen", "Das Wetter ist heute schön."], return_tensors="pt", padding=True
    )
    assert batch.input_ids[0, batch.attention_mask[0].sum() - 1] == EOS_ID  # source ends in </s>
    ids = tokenizer("Das Wetter ist heute schön.").input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Das Wetter ist heute schön."
    out_ids = marian.generate(**batch, num_beams=4, max_new_tokens=8)
    assert out_ids.shape[0] == 2 and bool((out_ids[:, 0] == 1).all())  # starts from <s>
    tokenizer.batch_decode(out_ids, skip_special_tokens=True)


def test_the_exported_tokenizer_truncates_to_what_the_model_reads(tiny_checkpoint, tmp_path):
    """tokenizer(text, truncation=True) keeps at most max_positions tokens, ending in </s> (as
    translate cuts a long line), so generate() does not run past the position table."""
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert run_cli("--checkpoint", str(tiny_checkpoint), "--to", "hf", str(out)).returncode == 0
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    marian = transformers.MarianMTModel.from_pretrained(out).eval()
    max_positions = load_config(tiny_checkpoint / "config.yaml").model.max_positions
    ids = tokenizer(["Guten Morgen " * max_positions], return_tensors="pt", truncation=True)
    assert ids.input_ids.shape == (1, max_positions) and ids.input_ids[0, -1] == EOS_ID
    assert marian.generate(**ids, num_beams=1, max_new_tokens=2).shape[0] == 1


def test_the_exported_tokenizer_encodes_as_translate_does(tiny_checkpoint):
    """Cleaning (control characters, surrounding space) and "</s>" as text, like Translator."""
    pytest.importorskip("transformers")
    from translate.export import hf_tokenizer
    from translate.translator import Translator

    max_positions = load_config(tiny_checkpoint / "config.yaml").model.max_positions
    hf = hf_tokenizer(tiny_checkpoint / "tokenizer.json", max_positions)
    ours = Translator.load(tiny_checkpoint, device="cpu")
    texts = ["Er sagt </s> und <s> nicht", " Guten Morgen ", "Guten\tMorgen\x07", "\ufeffa\u2028b"]
    texts += ["Ich habe <unk> <extra_3> Hund", "Gu\u0308ten Morgen\r\n", "Emoji 😀 東京"]
    for text in texts:
        assert hf(text).input_ids == [*ours.encode([text])[0], EOS_ID], text


def hf_tokens(row: list[int]) -> list[int]:
    """A generate() row without the start token, and cut at the first </s>."""
    row = row[1:]
    return row[: row.index(EOS_ID)] if EOS_ID in row else row


def test_greedy_equals_hf_generate(tmp_path):
    model = random_model()
    marian = reloaded_marian(model, tmp_path)
    src = padded(SRC)
    ours = greedy_search(model, src, max_len_a=0.0, max_len_b=MAX_LEN)
    with torch.no_grad():
        out = marian.generate(
            input_ids=src,
            attention_mask=src.ne(PAD_ID),
            num_beams=1,
            do_sample=False,
            max_new_tokens=MAX_LEN + 1,
        )
    assert [hf_tokens(row) for row in out.tolist()] == ours
    assert len({tuple(t) for t in ours}) > 1  # the sentences did not all decode alike


def test_ctranslate2_greedy_equals_ours(tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("transformers")
    from conftest import write_tokenizer

    from translate.export import hf_to_ctranslate2, hf_tokenizer

    model = random_model()
    to_marian(model).save_pretrained(tmp_path / "hf")
    tokenizer = hf_tokenizer(write_tokenizer(tmp_path / "tokenizer.json"), model.cfg.max_positions)
    tokenizer.save_pretrained(tmp_path / "hf")
    hf_to_ctranslate2(tmp_path / "hf", tmp_path / "ct2")
    vocab = json.loads((tmp_path / "ct2" / "shared_vocabulary.json").read_text(encoding="utf-8"))
    assert len(vocab) == model.vocab_size  # no row dropped (CTranslate2's OPUS-MT quirk)
    translator = ctranslate2.Translator(str(tmp_path / "ct2"), intra_threads=1)
    found = translator.translate_batch(
        [[vocab[i] for i in row] + ["</s>"] for row in SRC],
        beam_size=1,
        max_decoding_length=MAX_LEN,
        disable_unk=True,
        suppress_sequences=[["<pad>"], ["<s>"]],  # never emitted, as in translate.search
    )
    ids = {t: i for i, t in enumerate(vocab)}
    ct2 = [[ids[t] for t in r.hypotheses[0]] for r in found]
    assert ct2 == greedy_search(model, padded(SRC), max_len_a=0.0, max_len_b=MAX_LEN)


def test_cli_export_to_ctranslate2_translates(tiny_checkpoint, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer

    out = tmp_path / "ct2"
    proc = run_cli("--checkpoint", str(tiny_checkpoint), "--to", "ctranslate2", str(out))
    assert proc.returncode == 0, proc.stderr
    tokens = Tokenizer.from_file(str(out / "tokenizer.json")).encode("Guten Morgen").tokens
    assert tokens[-1] == "</s>"
    found = ctranslate2.Translator(str(out)).translate_batch([tokens], max_decoding_length=5)
    assert len(found[0].hypotheses[0]) <= 5
