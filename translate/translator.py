"""Translator: a loaded checkpoint that turns lists of German sentences into English ones.

Inputs are cleaned (NFC, control characters dropped, stripped), sorted by length into token-budget
batches, decoded with beam search (greedy when beam == 1; on CPU several batches at once, see
batch_map) and returned in input order, one line per input: outputs never contain a line break.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from data_prep import collate, never_emitted, sorted_batches
from data_prep.clean import clean_line
from translate.checkpoint import load_model
from translate.config import DECODE_MOST, STOPS, Config
from translate.cpu_gemm import ONEDNN_BF16
from translate.model import Transformer
from translate.search import beam_search, greedy_search

Hypotheses = list[tuple[str, float]]  # n-best (translation, score), best first
CHUNK_LINES = 10_000  # Translator.stream: lines sorted and decoded together, then written
GATHER_SECONDS = 1.0  # input that arrives over time: a chunk ends this long after its first line
# On CPU a decoding batch holds at most this many sentences besides batch_tokens, which short
# sentences filled with hundreds of them x beams: 20,000 Multi30k lines then decoded in 206 s
# and 1.4 GB against 213 s and 3.9 GB (docs/benchmarks.md, session 19). GPUs take any batch.
CPU_BATCH_SENTENCES = 128


def one_line(text: str) -> str:
    """Replace every line break (\\n, \\r, U+2028, ...) with a space: outputs stay one line."""
    return " ".join(text.splitlines()).strip()


def resolve_device(
    device: str, index: int | None = None, use_cpu: str = "use --device cpu"
) -> torch.device:
    """'auto' picks cuda:`index` (None: the current CUDA device) when available; 'cuda' without a
    GPU, or with a torch build that has no kernels for it, is a user error (a ValueError ending
    with `use_cpu`)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda; got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device cuda was requested but no CUDA GPU is visible; {use_cpu}")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda and (problem := cuda_build_problem(index)):
        raise ValueError(f"{problem}, or {use_cpu}")
    if not cuda:
        return torch.device("cpu")
    return torch.device("cuda" if index is None else f"cuda:{index}")


def cuda_build_problem(index: int | None = None) -> str | None:
    """Why this torch build cannot run on CUDA device `index`, or None. PyTorch's CUDA 12.8 and
    13.0 wheels (PyPI's for recent releases) carry no kernels for compute capability 6.x (P100,
    one of Kaggle's GPUs), nor since 2.10 for 7.0 (V100); its CUDA 12.6 wheels do. A kernel
    built for sm_XY runs on X.Y to X.9; PTX (compute_XY) on X.Y and newer."""
    archs = torch.cuda.get_arch_list()  # e.g. ['sm_75', 'sm_80', ..., 'compute_120']
    if torch.version.cuda is None or not archs:  # ROCm, or a build that does not say
        return None
    major, minor = torch.cuda.get_device_capability(index)
    for arch in archs:
        kind, _, digits = arch.partition("_")
        cc = int("".join(itertools.takewhile(str.isdigit, digits)) or 0)  # 'sm_90a' -> 90
        if (kind == "sm" and cc // 10 == major and cc % 10 <= minor) or (
            kind == "compute" and (cc // 10, cc % 10) <= (major, minor)
        ):
            return None
    return (
        f"this PyTorch build ({torch.__version__}) has no CUDA kernels for the "
        f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor}; it has "
        f"{' '.join(archs)}); install one that has, e.g. `pip install torch --index-url "
        "https://download.pytorch.org/whl/cu126` for compute capability 5.0-7.0"
    )


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for decoding (None: plain fp32). 'auto': bf16 on GPUs that support it,
    fp32 on CPU. bf16 on CPU needs AVX512-BF16 or AMX (translate.cpu_gemm.ONEDNN_BF16)."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"--precision must be auto, fp32, bf16 or fp16; got '{precision}'")
    if device.type != "cuda":
        if precision == "fp16":
            raise ValueError("--precision fp16 needs --device cuda; on CPU use fp32 or bf16")
        if precision == "bf16" and not ONEDNN_BF16:
            raise ValueError(
                "--precision bf16 on CPU needs AVX512-BF16 or AMX (Intel Xeon 4th generation "
                "or newer, AMD Zen 4 or newer), which this CPU lacks; use fp32"
            )
        return torch.bfloat16 if precision == "bf16" else None
    if precision == "auto":
        # emulated bf16 (T4, P100: compute capability < 8.0) is slower than fp32 there
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def batch_map(device: torch.device, n_batches: int) -> Iterator[Callable[..., Iterable]]:
    """A `map` for decoding n_batches batches: on CPU, with more than one of them and of torch's
    threads, as many batches at once as torch has threads, each op on one thread (torch's thread
    count is 1 meanwhile, for the whole process, then restored); elsewhere the builtin map.

    The ops of a decoding step are small: a second thread adds little to each and has to be
    woken for each. Two batches at once on 2 cores decoded 1.16x the sentences/s of one batch
    on both (docs/benchmarks.md, session 10). On an error or Ctrl-C the batches not yet begun
    are dropped; those running finish first.
    """
    threads = torch.get_num_threads()
    workers = min(threads, n_batches) if device.type == "cpu" else 1
    if workers < 2:
        yield map
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="translate")
    torch.set_num_threads(1)
    try:
        yield pool.map
    finally:
        pool.shutdown(cancel_futures=True)
        torch.set_num_threads(threads)


class Translator:
    """A checkpoint ready to translate: the model (eval mode, on `device`), tokenizer and config."""

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        cfg: Config,
        device: torch.device,
        dtype: torch.dtype | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.never = never_emitted(tokenizer)  # special ids but eos: never in a translation
        self.cfg = cfg
        self.device = device
        self.dtype = dtype  # autocast dtype, None for fp32
        self.max_src_tokens = cfg.model.max_positions - 1  # room for the appended eos
        # A token stands for at most `longest` bytes, so the tokens the model reads come from a
        # line's first max_src_tokens * longest characters: encode() tokenizes twice that, not a
        # line of megabytes (a 10 MB line: 2.0 GB and 10.8 s before, 0.3 GB and 3.7 s now).
        longest = max(map(len, tokenizer.get_vocab()), default=1)
        self.max_src_chars = 2 * self.max_src_tokens * longest
        self.checkpoint_dir: Path | None = None  # set by load()

    @classmethod
    def load(
        cls, checkpoint_dir: str | Path, device: str = "auto", precision: str = "auto"
    ) -> Translator:
        """Load model, tokenizer and config from a checkpoint directory (CheckpointError if bad)."""
        dev = resolve_device(device)
        dtype = resolve_precision(precision, dev)
        model, cfg, tokenizer = load_model(checkpoint_dir, device=str(dev))
        translator = cls(model, tokenizer, cfg, dev, dtype)
        translator.checkpoint_dir = Path(checkpoint_dir)
        return translator

    def translate(
        self,
        texts: Sequence[str],
        beam: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        max_len_a: float | None = None,
        max_len_b: int | None = None,
        n_best: int = 1,
        batch_tokens: int | None = None,
        progress: bool = False,
        stop: str | None = None,
    ) -> list[str] | list[Hypotheses]:
        """Translate sentences; options left as None come from the checkpoint's `decode` section.

        n_best == 1: one translation per input (list[str]). n_best > 1: per input a list of exactly
        n_best (translation, score) pairs, best first (list[list[tuple[str, float]]]); the score is
        the search's GNMT score, log P / lp + cp. Empty inputs give "" (score 0.0).
        """
        if isinstance(texts, str):
            raise TypeError("translate() takes a list of sentences; wrap a single one: [text]")
        texts = list(texts)
        opts = self.options(beam, alpha, beta, max_len_a, max_len_b, n_best, batch_tokens, stop)
        return list(self.stream(texts, opts, progress, len(texts), max(len(texts), 1)))

    def stream(
        self,
        lines: Iterable[str],
        opts: dict,
        progress: bool = False,
        total: int | None = None,
        chunk_lines: int = CHUNK_LINES,
        ready: Callable[[], bool] | None = None,
    ) -> Iterator[str] | Iterator[Hypotheses]:
        """translate() over any iterable of lines, `chunk_lines` at a time, with `opts` from
        options(): yields each result (a str, or n-best Hypotheses) in input order as soon as its
        chunk is done, so a long input holds one chunk in memory and its output appears as it
        goes. `total` sizes the progress bar (lines; None: a count without one). `ready`, for
        input that arrives over time (a pipe), says whether the next line can be read without
        waiting: a chunk also ends where the input pauses, or GATHER_SECONDS after its first line,
        so a line is never held back long waiting for the lines after it."""
        n_best = opts["n_best"]
        search = {k: v for k, v in opts.items() if k not in ("n_best", "batch_tokens")}
        bar = tqdm(total=total, disable=not progress, file=sys.stderr, unit="sent")
        with bar:
            rest, first = iter(lines), 1  # first: line number of the chunk's first line
            while chunk := _take(rest, chunk_lines, ready):
                results = self._translate_all(
                    chunk, search, n_best, opts["batch_tokens"], bar, first
                )
                first += len(chunk)
                for hyps in results:
                    yield hyps[0][0] if n_best == 1 else hyps

    def options(
        self,
        beam: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        max_len_a: float | None = None,
        max_len_b: int | None = None,
        n_best: int = 1,
        batch_tokens: int | None = None,
        stop: str | None = None,
    ) -> dict:
        """translate()'s options with the checkpoint's defaults filled in, checked (ValueError),
        without translating: the CLI checks them before reading any input, then `stream`s."""
        given = dict(beam=beam, alpha=alpha, beta=beta, max_len_a=max_len_a, stop=stop)
        given.update(max_len_b=max_len_b, batch_tokens=batch_tokens)
        opts = {k: getattr(self.cfg.decode, k) if v is None else v for k, v in given.items()}
        _check_options(opts, n_best)
        return {**opts, "n_best": n_best}

    def encode(self, texts: Sequence[str], first_line: int = 1) -> list[list[int]]:
        """Clean and tokenize; sources longer than the model's positions are truncated (a warning
        names the line, texts[0] being line `first_line`)."""
        lines = [clean_line(t) for t in texts]
        cut = [len(line) > self.max_src_chars for line in lines]
        lines = [line[: self.max_src_chars] for line in lines]
        ids = [enc.ids for enc in self.tokenizer.encode_batch(lines, add_special_tokens=False)]
        for n, (seq, was_cut) in enumerate(zip(ids, cut, strict=True), start=first_line):
            if len(seq) > self.max_src_tokens:
                count = f"more than {self.max_src_tokens}" if was_cut else len(seq)
                print(
                    f"warning: line {n} has {count} tokens but the model reads at most "
                    f"{self.max_src_tokens}; translating only its first {self.max_src_tokens}",
                    file=sys.stderr,
                )
        return [seq[: self.max_src_tokens] for seq in ids]

    def _translate_all(
        self, texts: list[str], opts: dict, n_best: int, batch_tokens: int, bar: tqdm, first: int
    ) -> list[Hypotheses]:
        """Decode non-empty inputs in length-sorted batches; results back in input order. `bar`
        counts the lines done; texts[0] is line `first` of the input (for warnings)."""
        ids = self.encode(texts, first)
        results: list[Hypotheses] = [[("", 0.0)] * n_best for _ in texts]
        todo = [i for i, seq in enumerate(ids) if seq]  # empty lines never reach the model
        cap = CPU_BATCH_SENTENCES if self.device.type == "cpu" else None
        batches = sorted_batches([len(ids[i]) + 1 for i in todo], batch_tokens, cap)
        jobs = [[todo[j] for j in batch.tolist()] for batch in batches]  # input rows per batch

        def decode(rows: list[int]) -> list[Hypotheses]:
            return self._decode_batch([ids[i] for i in rows], opts, n_best)

        with batch_map(self.device, len(jobs)) as map_batches:
            bar.update(len(texts) - len(todo))
            for rows, found in zip(jobs, map_batches(decode, jobs), strict=True):
                for i, hyps in zip(rows, found, strict=True):
                    results[i] = hyps
                bar.update(len(rows))
        return results

    def _decode_batch(self, seqs: list[list[int]], opts: dict, n_best: int) -> list[Hypotheses]:
        """Search one batch of token-id sources and detokenize the n-best lists."""
        src = collate([(seq, ()) for seq in seqs])[0].to(self.device)  # (B, S): ids + [eos]
        with self._autocast():
            if opts["beam"] == 1 and n_best == 1:  # same result as beam 1, less bookkeeping
                lengths = opts["max_len_a"], opts["max_len_b"]
                found = greedy_search(self.model, src, *lengths, never=self.never)
                nbest = [[(tokens, 0.0)] for tokens in found]
            else:
                nbest = beam_search(self.model, src, n_best=n_best, never=self.never, **opts)
        return [self._detokenize(hyps, n_best) for hyps in nbest]

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _detokenize(self, hyps: list[tuple[list[int], float]], n_best: int) -> Hypotheses:
        texts = self.tokenizer.decode_batch([ids for ids, _ in hyps], skip_special_tokens=True)
        out = [(one_line(t), float(score)) for t, (_, score) in zip(texts, hyps, strict=True)]
        out = out or [("", 0.0)]  # the search found nothing (should not happen)
        return (out + out[-1:] * n_best)[:n_best]  # exactly n_best, even if the search found fewer


def _take(lines: Iterator[str], n: int, ready: Callable[[], bool] | None) -> list[str]:
    """The next chunk: up to n lines; with `ready`, only its first line waits for input, and the
    chunk also ends GATHER_SECONDS after it (a steady trickle of lines never pauses)."""
    chunk = list(itertools.islice(lines, 1 if ready else n))
    until = time.monotonic() + GATHER_SECONDS
    while chunk and len(chunk) < n and ready and ready() and time.monotonic() < until:
        line = next(lines, None)
        if line is None:
            break
        chunk.append(line)
    return chunk


def _check_options(opts: dict, n_best: int) -> None:
    beam, stop, batch_tokens = opts["beam"], opts["stop"], opts["batch_tokens"]
    if beam < 1:
        raise ValueError(f"beam must be at least 1; got {beam}")
    if not 1 <= n_best <= beam:
        raise ValueError(f"n_best must be between 1 and the beam size ({beam}); got {n_best}")
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be positive; got {batch_tokens}")
    if stop not in STOPS:
        raise ValueError(f"stop must be one of {', '.join(STOPS)}; got '{stop}'")
    for name in ("alpha", "beta", "max_len_a"):  # nan, inf: scores or lengths that mean nothing
        if not math.isfinite(opts[name]) or opts[name] < 0:
            raise ValueError(f"{name} must be finite and at least 0; got {opts[name]}")
    if opts["max_len_b"] < 0:
        raise ValueError(f"max_len_b must be at least 0; got {opts['max_len_b']}")
    for name, most in DECODE_MOST.items():  # the config's bounds too
        if opts[name] > most:
            raise ValueError(f"{name} must be at most {most}; got {opts[name]}")
