"""Translator: batching keeps order and results, bad input never crashes, one line per output."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import torch
from conftest import tiny_overrides, write_tokenizer

import translate.translator as translator_mod
from data_prep import BOS_ID, EOS_ID, PAD_ID, UNK_ID, load_tokenizer, never_emitted
from translate.checkpoint import save_checkpoint
from translate.config import load_config
from translate.cpu_gemm import ONEDNN_BF16
from translate.model import Transformer
from translate.translator import Translator, clean_line, one_line, resolve_device, resolve_precision

INPUTS = [
    "Guten Morgen",
    "",
    "Ich habe einen kleinen Hund und eine große Katze.",
    "Das",
    "   ",
    "Wir fahren morgen nach Berlin, weil das Wetter schön ist.",
    "Das Wetter ist heute schön.",
]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint) -> Translator:
    return Translator.load(tiny_checkpoint, device="cpu")


def test_clean_line():
    assert clean_line("  Gu\u0308ten\tMorgen\r\n") == "Güten Morgen"  # NFC, \t -> space, stripped
    assert clean_line("ok \ud800 x") == "ok \ufffd x"  # a lone surrogate, from surrogateescape


def test_a_lone_surrogate_does_not_fail_the_batch(translator):
    out = translator.translate(["Guten Morgen", "Ein \udcff Hund"])
    assert len(out) == 2 and out[0] == translator.translate(["Guten Morgen"])[0]
    assert clean_line("\ufeffa\x00b\x07c\x1bd\u2028e") == "abcd e"  # BOM and controls dropped
    assert clean_line("Emoji 😀 Привет 東京") == "Emoji 😀 Привет 東京"


def test_one_line():
    assert one_line("a\nb\r\nc\u2028d\x0be") == "a b c d e"


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_equals_one_at_a_time_in_input_order(translator, beam):
    batched = translator.translate(INPUTS, beam=beam, batch_tokens=40)
    single = [translator.translate([text], beam=beam)[0] for text in INPUTS]
    assert batched == single
    assert batched[1] == "" and batched[4] == ""
    assert all(isinstance(t, str) and "\n" not in t for t in batched)


@pytest.fixture
def two_threads():
    """torch on 2 threads for the test (batch_map decodes that many batches at once)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_batches_decode_at_once_on_one_thread_each(translator, monkeypatch, two_threads):
    """On CPU several batches decode at once, each op on one thread; the results equal one
    batch at a time, and torch's thread count comes back."""
    calls, search = [], translator_mod.beam_search

    def spy(*args, **kwargs):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return search(*args, **kwargs)

    monkeypatch.setattr(translator_mod, "beam_search", spy)
    at_once = translator.translate(INPUTS, beam=3, batch_tokens=20)
    assert len(calls) > 2 and torch.get_num_threads() == 2
    assert all(name.startswith("translate") and n == 1 for name, n in calls)
    one_by_one = lambda device, n: contextlib.nullcontext(map)  # noqa: E731
    monkeypatch.setattr(translator_mod, "batch_map", one_by_one)
    assert translator.translate(INPUTS, beam=3, batch_tokens=20) == at_once


def test_cpu_batches_hold_at_most_cpu_batch_sentences(translator, monkeypatch):
    sizes, search = [], translator_mod.beam_search

    def spy(model, src, **kwargs):
        sizes.append(src.size(0))
        return search(model, src, **kwargs)

    monkeypatch.setattr(translator_mod, "beam_search", spy)
    monkeypatch.setattr(translator_mod, "CPU_BATCH_SENTENCES", 2)
    capped = translator.translate(INPUTS, beam=3, batch_tokens=1000)
    assert max(sizes) == 2 and sum(sizes) == 5  # the 5 non-empty inputs
    monkeypatch.setattr(translator_mod, "CPU_BATCH_SENTENCES", 1000)
    assert translator.translate(INPUTS, beam=3, batch_tokens=1000) == capped


def test_a_failing_batch_raises_and_restores_threads(translator, monkeypatch, two_threads):
    def fail(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(translator_mod, "beam_search", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        translator.translate(INPUTS, beam=3, batch_tokens=20)
    assert torch.get_num_threads() == 2


def test_empty_lines_never_reach_the_model(translator, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model was called for an empty input")

    monkeypatch.setattr(translator_mod, "beam_search", fail)
    monkeypatch.setattr(translator_mod, "greedy_search", fail)
    assert translator.translate(["", "  ", "\t\x00\n"]) == ["", "", ""]


def test_n_best(translator):
    results = translator.translate(INPUTS[:3], beam=3, n_best=3)
    assert [len(hyps) for hyps in results] == [3, 3, 3]
    assert results[1] == [("", 0.0)] * 3
    for hyps in (results[0], results[2]):
        scores = [score for _, score in hyps]
        assert scores == sorted(scores, reverse=True)
    assert results[0][0][0] == translator.translate(INPUTS[:1], beam=3)[0]


def test_long_line_is_truncated_with_warning(translator, capsys):
    out = translator.translate(["Hallo", "Wort " * 5000], beam=1, max_len_b=4)
    assert len(out) == 2
    assert "line 2" in capsys.readouterr().err


def test_a_huge_line_is_cut_before_tokenizing_with_the_same_tokens(translator, monkeypatch):
    """Only the first max_src_tokens tokens are read, so a line of megabytes (a file without
    newlines) is not tokenized whole: a 10 MB line took 2.2 GB for 127 tokens."""
    tokenizer, seen = translator.tokenizer, []

    class Recording:
        def encode_batch(self, lines, **kwargs):
            seen.extend(len(line) for line in lines)
            return tokenizer.encode_batch(lines, **kwargs)

    texts = ["Wort " * 20_000, "Hund" * 10_000 + " Katze", "x" * 3000 + " Das ist gut. " * 2000]
    whole = [enc.ids for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]
    monkeypatch.setattr(translator, "tokenizer", Recording())
    ids = translator.encode(texts)
    assert ids == [seq[: translator.max_src_tokens] for seq in whole]
    assert max(seen) <= 20 * translator.max_src_tokens  # characters, not megabytes


def test_stream_yields_each_chunk_as_it_is_done_in_input_order(translator, capsys):
    """stream() reads `chunk_lines` lines at a time and yields their results before it reads
    on; the results equal translate()'s, and warnings name lines of the whole input."""
    texts = [*INPUTS, "Wort " * 5000, "Hallo"]
    read = []

    def lines():
        for text in texts:
            read.append(text)
            yield text

    opts = translator.options(beam=3, max_len_b=4)
    results = translator.stream(lines(), opts, chunk_lines=3)
    first = next(results)
    assert len(read) == 3  # one chunk read, not the whole input
    assert [first, *results] == translator.translate(texts, beam=3, max_len_b=4)
    assert "line 8 has" in capsys.readouterr().err  # the long line, in the third chunk
    n_best = translator.stream(iter(texts[:4]), translator.options(beam=3, n_best=2), True, 4, 2)
    assert [len(hyps) for hyps in n_best] == [2, 2, 2, 2]


def test_odd_characters_do_not_crash(translator):
    texts = ["😀😀", "Привет мир", "東京\x00\x1b[31m", "\ufffd\ufffd", "a\nb"]
    out = translator.translate(texts, beam=2)
    assert len(out) == len(texts) and all("\n" not in t for t in out)


def test_bad_options_are_value_errors(translator):
    with pytest.raises(ValueError, match="n_best"):
        translator.translate(["Hallo"], beam=2, n_best=3)
    with pytest.raises(ValueError, match="beam"):
        translator.translate(["Hallo"], beam=0)
    with pytest.raises(ValueError, match="stop"):
        translator.translate(["Hallo"], beam=1, stop="never")
    with pytest.raises(TypeError, match="list"):
        translator.translate("Hallo")
    with pytest.raises(ValueError, match="fp16"):
        Translator.load("unused", device="cpu", precision="fp16")


def test_cpu_bf16_is_autocast_where_the_cpu_has_it_and_a_clear_error_elsewhere():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None  # fp32: the default never depends on the CPU
    if ONEDNN_BF16:
        assert resolve_precision("bf16", cpu) == torch.bfloat16
    else:
        with pytest.raises(ValueError, match="AVX512-BF16 or AMX"):
            resolve_precision("bf16", cpu)


@pytest.mark.skipif(not ONEDNN_BF16, reason="CPU bf16 decoding needs AVX512-BF16 or AMX")
def test_bf16_translator_on_cpu_keeps_lines_aligned(tiny_checkpoint):
    bf16 = Translator.load(tiny_checkpoint, device="cpu", precision="bf16")
    out = bf16.translate(INPUTS, beam=3, batch_tokens=40)
    assert len(out) == len(INPUTS) and out[1] == "" and out[4] == ""
    assert all(isinstance(t, str) and "\n" not in t for t in out)


def test_defaults_come_from_checkpoint_config(translator):
    beam = translator.cfg.decode.beam
    default = translator.translate(["Guten Morgen"])
    assert default == translator.translate(["Guten Morgen"], beam=beam)


@pytest.mark.parametrize(
    ("archs", "capability", "runs"),
    [
        (["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], (6, 0), False),  # P100, cu130
        (["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], (7, 0), False),  # V100
        (["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], (7, 5), True),  # T4
        (["sm_75", "sm_80", "sm_90"], (8, 9), True),  # sm_80 kernels run on 8.x
        (["sm_75", "sm_80", "sm_90a"], (9, 0), True),
        (["sm_50", "sm_60", "sm_70", "sm_75"], (6, 1), True),  # cu126: P40 through sm_60
        (["sm_80", "compute_90"], (12, 0), True),  # PTX is compiled for newer GPUs
        (["sm_80", "compute_90"], (7, 5), False),
    ],
)
def test_a_torch_build_without_kernels_for_the_gpu_is_one_clear_error(
    monkeypatch, archs, capability, runs
):
    """PyTorch's CUDA 12.8+ wheels have no kernels for a P100 (Kaggle): say so, and what to
    install, instead of failing at the first CUDA op."""
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: archs)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla P100-PCIE-16GB")
    if runs:
        assert translator_mod.cuda_build_problem() is None
        assert resolve_device("auto").type == "cuda"
        return
    problem = translator_mod.cuda_build_problem()
    assert f"compute capability {capability[0]}.{capability[1]}" in problem
    assert "Tesla P100" in problem and "whl/cu126" in problem and "\n" not in problem
    with pytest.raises(ValueError, match="no CUDA kernels .* or use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_the_trainer_refuses_such_a_build_in_one_line(monkeypatch):
    from translate.config import ConfigError
    from translate.distributed import setup_distributed

    problem = "no CUDA kernels (test)"
    monkeypatch.setattr(translator_mod, "cuda_build_problem", lambda index: problem)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=r"no CUDA kernels \(test\), or set train.device=cpu"):
        setup_distributed("auto")


def test_filler_tokens_of_a_small_vocabulary_are_never_emitted(tmp_path, monkeypatch):
    """A corpus too small for its vocab_size fills the vocabulary with special `<extra_i>`
    tokens; like pad/bos/unk they never appear in a hypothesis, even where they score best."""
    tokenizer = write_tokenizer(tmp_path / "tokenizer.json", vocab_size=1024)
    tok = load_tokenizer(tokenizer)
    never = never_emitted(tok)
    fillers = [i for i in never if i > UNK_ID]
    assert len(fillers) > 100 and EOS_ID not in never and {PAD_ID, BOS_ID, UNK_ID} <= set(never)
    cfg = load_config(None, tiny_overrides(tmp_path, tmp_path / "run"))
    torch.manual_seed(0)
    model = Transformer(cfg.model, tok.get_vocab_size(), pad_id=PAD_ID)
    with torch.no_grad():
        model.shared.weight[fillers] *= 30  # the fillers' logits dwarf every word's
    translator = Translator.load(save_checkpoint(tmp_path / "ckpt", model, cfg, tokenizer), "cpu")
    emitted = []
    decode_batch = translator.tokenizer.decode_batch
    monkeypatch.setattr(
        translator.tokenizer,
        "decode_batch",
        lambda seqs, **kw: emitted.extend(seqs) or decode_batch(seqs, **kw),
        raising=False,
    )
    for beam in (1, 4):
        assert len(translator.translate(INPUTS, beam=beam)) == len(INPUTS)
    assert emitted and not {t for ids in emitted for t in ids} & set(never)


def test_a_steady_trickle_of_lines_is_cut_into_chunks_by_time(monkeypatch):
    """Lines that come every few ms never pause long enough to end a chunk: the chunk still
    ends GATHER_SECONDS after its first line instead of waiting for CHUNK_LINES of them."""
    monkeypatch.setattr(translator_mod, "GATHER_SECONDS", 0.2)

    def trickle():
        for i in range(500):  # 2.5 s in all
            time.sleep(0.005)
            yield f"line {i}"

    lines = trickle()
    chunk = translator_mod._take(lines, 10_000, ready=lambda: True)
    assert 1 < len(chunk) < 500 and chunk[0] == "line 0"
    assert translator_mod._take(lines, 10_000, ready=lambda: True)[0] == f"line {len(chunk)}"
