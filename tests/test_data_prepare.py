"""prepare(): end to end on generated files, caching, drops, verbatim references, load_split."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import unicodedata

import numpy as np
import pytest

from data_prep import DataError, load_split, load_tokenizer, prepare, read_raw_split
from translate.config import DataConfig

DE = ["Guten Morgen", "Wie geht es dir?", "Ich habe einen Hund.", "Die Katze schläft.", "Danke"]
EN = ["Good morning", "How are you?", "I have a dog.", "The cat sleeps.", "Thank you"]


def corpus(tmp_path, train_extra=()):
    """train = 40 distinct pairs + duplicates + an empty side + a 20,000-word line."""
    de = [f"{s} {i}" for i in range(8) for s in DE] + [DE[0] + " 0"] * 3 + ["", "Hallo"]
    en = [f"{s} {i}" for i in range(8) for s in EN] + [EN[0] + " 0"] * 3 + ["Hello", ""]
    de.append(" ".join(["Wort"] * 20_000))
    en.append("word")
    for split, (d, e) in {
        "train": (de, en),
        "valid": (DE, EN),
        "test": (DE[::-1], EN[::-1]),
    }.items():
        (tmp_path / f"{split}.de").write_text("\n".join(d) + "\n", encoding="utf-8")
        (tmp_path / f"{split}.en").write_text("\n".join(e) + "\n", encoding="utf-8")
    # a valid line with surrounding spaces and NFD text stays verbatim in the reference file
    (tmp_path / "valid.en").write_text("\n".join(EN[:-1] + ["  Tha\u0308nk you  "]) + "\n", "utf-8")
    return DataConfig(source="local", train=str(tmp_path / "train"), valid=str(tmp_path / "valid"),
                      test=str(tmp_path / "test"), dir=str(tmp_path / "out"), vocab_size=300,
                      max_len=64)  # fmt: skip


def test_prepare_counts_drops_and_roundtrips(tmp_path):
    cfg = corpus(tmp_path)
    out = prepare(cfg)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["drops"] == {"empty": 2, "too_long": 1, "ratio": 0, "duplicate": 3}
    assert manifest["splits"]["train"]["pairs"] == 40
    assert manifest["vocab_size"] % 64 == 0
    train = load_split(out, "train")
    tok = load_tokenizer(out)
    assert len(train) == 40 and train.src.dtype == np.uint16
    texts = {(tok.decode(s.tolist()), tok.decode(t.tolist())) for s, t in train}
    assert ("Guten Morgen 0", "Good morning 0") in texts and len(texts) == 40
    assert (train.src_lens == [len(s) for s, _ in train]).all()


def test_valid_and_test_stay_verbatim(tmp_path):
    out = prepare(corpus(tmp_path))
    raw = read_raw_split(out, "valid", "en")
    assert raw[-1] == "  Tha\u0308nk you  " and len(raw) == 5
    valid = load_split(out, "valid")
    assert len(valid) == 5
    last = load_tokenizer(out).decode(valid[4][1].tolist())
    assert last == unicodedata.normalize("NFC", "Tha\u0308nk you")
    assert read_raw_split(out, "test", "de") == DE[::-1]


def test_cache_reuses_and_rebuilds(tmp_path):
    cfg = corpus(tmp_path)
    manifest = prepare(cfg) / "manifest.json"
    first = manifest.stat().st_mtime_ns
    prepare(cfg)
    assert manifest.stat().st_mtime_ns == first  # same config: reused
    cfg.max_len = 4
    prepare(cfg)
    rebuilt = json.loads(manifest.read_text())
    assert rebuilt["drops"]["too_long"] > 1  # changed config: rebuilt
    second = manifest.stat().st_mtime_ns
    (tmp_path / "valid.de").write_text("\n".join(DE[::-1]) + "\n", "utf-8")  # input changed
    prepare(cfg)
    assert manifest.stat().st_mtime_ns != second


def test_a_rebuild_says_why_and_leaves_a_running_reader_its_files(tmp_path, capsys):
    """A run training on data.dir keeps reading its own build while another config rebuilds it:
    every file is replaced by a rename, never rewritten in place."""
    cfg = corpus(tmp_path)
    out = prepare(cfg)
    train = load_split(out, "train")
    before = [(s.copy(), t.copy()) for s, t in train]
    prepare(dataclasses.replace(cfg, max_len=4, vocab_size=320))
    assert "rebuilding" in capsys.readouterr().out
    assert len(load_split(out, "train")) < len(train)  # max_len 4 drops pairs
    same = zip(train, before, strict=True)
    assert all((s == s0).all() and (t == t0).all() for (s, t), (s0, t0) in same)
    cfg.vocab_size = 330
    prepare(cfg)
    said = capsys.readouterr().out
    assert "other data settings (data.vocab_size: 320 then, 330 now, data.max_len: 4 then" in said


def test_a_deleted_reference_file_is_rebuilt(tmp_path, capsys):
    cfg = corpus(tmp_path)
    out = prepare(cfg)
    (out / "valid.en").unlink()
    prepare(cfg)
    assert "files of it are missing" in capsys.readouterr().out
    assert len(read_raw_split(out, "valid", "en")) == 5


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])  # empty, or a byte-order mark alone
def test_an_empty_valid_or_test_set_is_refused_before_the_tokenizer(tmp_path, content):
    cfg = corpus(tmp_path)
    for lang in ("de", "en"):
        (tmp_path / f"test.{lang}").write_bytes(content)
    with pytest.raises(DataError, match=r"test.de' has no lines; data.test must name a test set"):
        prepare(cfg)
    assert not (tmp_path / "out").exists()
    cfg.test = cfg.valid
    manifest = prepare(cfg) / "manifest.json"
    cfg.test = str(tmp_path / "test")
    with pytest.raises(DataError, match="has no lines"):
        prepare(cfg)
    assert manifest.is_file()  # another config's data is left as it was


def test_reverse_direction(tmp_path):
    cfg = corpus(tmp_path)
    cfg.src_lang, cfg.tgt_lang = "en", "de"
    out = prepare(cfg)
    tok = load_tokenizer(out)
    src, tgt = load_split(out, "test")[0]
    assert (tok.decode(src.tolist()), tok.decode(tgt.tolist())) == (EN[-1], DE[-1])


def test_repeats_of_a_too_long_pair_count_as_duplicates(tmp_path):
    cfg = corpus(tmp_path)
    for lang, extra in (("de", " ".join(["Wort"] * 20_000)), ("en", "word")):
        with open(tmp_path / f"train.{lang}", "a", encoding="utf-8") as f:
            f.write(f"{extra}\n{extra}\n")  # two more copies of the 20,000-word pair
    manifest = json.loads((prepare(cfg) / "manifest.json").read_text())
    assert manifest["drops"] == {"empty": 2, "duplicate": 5, "too_long": 1, "ratio": 0}
    assert list(manifest["drops"]) == ["empty", "duplicate", "too_long", "ratio"]  # rule order
    assert manifest["splits"]["train"]["pairs"] == 40


def test_other_training_ranks_only_check_what_rank_0_prepared(tmp_path):
    """Ranks > 0 read data.dir without ever rebuilding it under rank 0 (prepare(build=False)):
    raw files that differ on their machine (here: rewritten, so a new mtime) are an error."""
    cfg = corpus(tmp_path)
    with pytest.raises(DataError, match="filesystem they all share"):
        prepare(cfg, build=False)  # nothing prepared yet
    out = prepare(cfg)
    assert prepare(cfg, build=False) == out
    raw = tmp_path / "train.de"
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="differ from rank 0's"):
        prepare(cfg, build=False)
    assert (out / "manifest.json").is_file()  # left as rank 0 made it


def test_no_training_pair_left_is_a_data_error_and_no_cache(tmp_path):
    cfg = dataclasses.replace(corpus(tmp_path), max_len=1)  # every pair is too long
    with pytest.raises(
        DataError, match=r"no training pair is left of \d+ read \(dropped: .*too_long"
    ):
        prepare(cfg)
    assert not (tmp_path / "out" / "manifest.json").exists()  # not reused by the next run


def test_a_line_break_inside_a_dataset_row_keeps_references_aligned(tmp_path, monkeypatch):
    """Rows from `datasets` (wmt14) may hold a line break; the reference file keeps one line
    per pair, so BLEU compares each hypothesis with its own reference."""
    from data_prep import binarize

    def split_with_a_break(cfg, split, stats):
        src, tgt = ([f"{s} {i}" for i in range(8) for s in side] for side in (DE, EN))
        if split != "train":
            tgt[1] = "two\nlines"
        return len(src), iter([(src, tgt)])

    monkeypatch.setattr(binarize, "open_split", split_with_a_break)
    cfg = dataclasses.replace(corpus(tmp_path), max_len=64)
    out = prepare(cfg)
    refs = read_raw_split(out, "valid", "en")
    assert len(refs) == len(load_split(out, "valid")) == 40 and refs[1] == "two lines"


@pytest.mark.parametrize("gz", [False, True])
def test_a_data_dir_holding_the_raw_valid_files_is_refused_not_emptied(tmp_path, gz):
    """data.dir gets copies named valid.de, test.en, ...: never over the raw files themselves, nor
    beside raw .gz ones, which the next run would then read in their place."""
    cfg = dataclasses.replace(corpus(tmp_path), dir=str(tmp_path))
    if gz:
        for path in tmp_path.glob("*.*"):
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(DataError, match=r"is where data.valid lies .*valid.de'\), which"):
        prepare(cfg)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_tree_moved_with_its_corpus_keeps_its_prepared_data(tmp_path):
    (tmp_path / "a").mkdir()
    out = prepare(corpus(tmp_path / "a"))
    manifest = (out / "manifest.json").read_bytes()
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # copy2 keeps the files' mtimes
    moved = corpus(tmp_path / "b")  # rewrites the raw files: give them their old mtimes back
    for path in (tmp_path / "a").glob("*.*"):
        shutil.copystat(path, tmp_path / "b" / path.name)
    assert prepare(moved) == tmp_path / "b" / "out"
    assert (tmp_path / "b" / "out" / "manifest.json").read_bytes() == manifest  # not rebuilt
