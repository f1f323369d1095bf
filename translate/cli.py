"""`translate`: German -> English from the command line.

    translate "Guten Morgen" --beam 4            # one line per text argument
    translate < in.de > out.en                     # one output line per input line
    translate --input in.de --output out.en        # same, with a progress bar on stderr
    translate --n-best 3 "Guten Morgen"            # n lines 'score<TAB>translation' per input
    translate export --checkpoint DIR --to hf OUT  # a transformers MarianMTModel directory

Decoding options default to the checkpoint's `decode` section. Bad input lines never stop a run;
a bad checkpoint or option prints one `error: ...` line and exits 1.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import contextlib
import io
import os
import select
import signal
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from translate import VersionAction
from translate.config import STOPS  # no torch: --help stays quick

if TYPE_CHECKING:
    from translate.translator import Translator


TRAIN_HINT = "python -m translate.train --config configs/demo.yaml"


def add_decode_args(parser: argparse.ArgumentParser) -> None:
    """Checkpoint, device and search options shared by `translate` and `translate.evaluate`."""
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--checkpoint", metavar="DIR", help="default: best of the newest runs/*")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    g = parser.add_argument_group("search (defaults: the checkpoint's decode section)")
    g.add_argument("--beam", metavar="N", type=int, help="beam size (1: greedy)")
    g.add_argument("--alpha", metavar="A", type=float, help="GNMT length penalty exponent")
    g.add_argument("--beta", metavar="B", type=float, help="GNMT coverage penalty weight")
    g.add_argument(
        "--max-len-a", metavar="A", type=float, help="at most A * source length + B tokens"
    )
    g.add_argument("--max-len-b", metavar="B", type=int)
    g.add_argument("--batch-tokens", metavar="N", type=int, help="padded source tokens per batch")
    g.add_argument(
        "--stop",
        choices=STOPS,
        help="drop a sentence once no live hypothesis can beat its finished ones (exact), once "
        "the best would not if it ended next (current: faster, may miss a longer better one), or "
        "once `beam` hypotheses have finished (early: fairseq's and CTranslate2's rule)",
    )


def decode_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for Translator.translate (None means: the checkpoint's default)."""
    names = ("beam", "alpha", "beta", "max_len_a", "max_len_b", "batch_tokens", "stop")
    return {name: getattr(args, name) for name in names}


def load_translator(args: argparse.Namespace) -> Translator:
    """Translator for --checkpoint, or for the best checkpoint of the newest run under runs/."""
    from translate.checkpoint import find_default_checkpoint  # imports torch: not needed for --help
    from translate.translator import Translator

    checkpoint = args.checkpoint or find_default_checkpoint("runs")
    if checkpoint is None:
        raise ValueError(
            f"no checkpoint found under runs/; train one with `{TRAIN_HINT}` "
            "or pass --checkpoint DIR"
        )
    translator = Translator.load(checkpoint, device=args.device, precision=args.precision)
    if not args.checkpoint:  # after loading: a failure is one line, which names the checkpoint
        print(f"checkpoint {checkpoint} (newest run under runs/)", file=sys.stderr)
    return translator


def iter_lines(raw_lines: Iterable[bytes], name: str) -> Iterator[str]:
    """Lines of bytes (each split at \\n, which it may end with; a final \\r dropped) decoded as
    UTF-8, without a byte-order mark at the start; bad bytes become U+FFFD. The first bad line is
    named in a warning at once, and where there were more, a count follows at the end."""
    bad = 0
    for n, line in enumerate(raw_lines, start=1):
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        if n == 1:  # a BOM would stick to the first word (of a reference, too)
            line = line.removeprefix(b"\xef\xbb\xbf")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", errors="replace")
            bad += 1
            if bad == 1:
                warn(f"{name} line {n} is not valid UTF-8; invalid bytes were replaced with U+FFFD")
        yield text
    if bad > 1:
        warn(f"{name}: {bad} lines in all were not valid UTF-8")


class FdLines:
    """The lines of a file descriptor, as bytes without their \\n, read as they arrive (no
    read-ahead beyond one read of 64 KiB). `ready()` says whether the next line, or the end,
    comes within `PAUSE` seconds: not where a pipe or a terminal has paused."""

    PAUSE = 0.05  # a writer that keeps up refills a pipe within this; one that waits is waited for

    def __init__(self, fd: int):
        self.fd, self.eof = fd, False
        self.lines: collections.deque[bytes] = collections.deque()
        self.partial: list[bytes] = []  # the start of a line whose newline has not come yet

    def __iter__(self) -> FdLines:
        return self

    def __next__(self) -> bytes:
        while not self.lines:
            if self.eof:
                raise StopIteration
            self._read()
        return self.lines.popleft()

    def ready(self) -> bool:
        while not (self.lines or self.eof):  # a line longer than one read: read on
            try:
                if not select.select([self.fd], [], [], self.PAUSE)[0]:
                    return False  # a regular file always is readable
            except (OSError, ValueError):  # no select() for it (Windows pipes): wait as before
                return True
            self._read()
        return True

    def _read(self) -> None:
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.eof = True
            if self.partial:  # a last line without its newline
                self.lines.append(b"".join(self.partial))
            return
        *ended, rest = data.split(b"\n")
        if ended:
            ended[0] = b"".join([*self.partial, ended[0]])
            self.partial = []
            self.lines.extend(ended)
        if rest:
            self.partial.append(rest)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def read_lines(data: bytes, name: str) -> list[str]:
    """iter_lines of a whole text: split on \\n; a final newline ends the last line."""
    raw = data.split(b"\n")
    if raw[-1] == b"":
        raw.pop()  # the final newline ends the last line, it does not start a new one
    return list(iter_lines(raw, name))


def read_text_file(path: str) -> list[str]:
    """Lines of a UTF-8 text file ('-' is stdin), never failing on invalid bytes."""
    if path == "-":
        return list(iter_lines(sys.stdin.buffer, "stdin"))
    check_input(path)
    with open(path, "rb") as f:  # also pipes: /dev/stdin, <(...)
        return list(iter_lines(f, path))


def check_input(path: str) -> None:
    """Fail before decoding, not after, on an --input that is no file ('-' is stdin)."""
    if path == "-":
        return
    if Path(path).is_dir():
        raise ValueError(f"input '{path}' is a directory; give a text file, one sentence per line")
    if not Path(path).exists():
        raise ValueError(f"input file '{path}' does not exist")
    if Path(path).is_file():
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                raise ValueError(
                    f"input '{path}' is gzip-compressed; unpack it first (gunzip -k), or pipe "
                    "it in: zcat FILE | ..."
                )


def count_lines(path: str) -> int | None:
    """Lines of a regular file, as iter_lines splits them; None for '-' and pipes such as
    /dev/stdin or <(...), which can be read only once."""
    if path == "-" or not Path(path).is_file():
        return None
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            lines, last = lines + block.count(b"\n"), block[-1:]
    return lines + (last != b"\n")  # a last line without its newline counts too


def check_output(path: str | None) -> None:
    """Fail before decoding, not after, when the output file cannot be written."""
    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"output '{path}' is a directory; give a file name")
    if not out.parent.is_dir():
        raise ValueError(f"output directory '{out.parent}' does not exist; create it first")
    if not os.access(out if out.exists() else out.parent, os.W_OK):
        raise ValueError(f"output '{path}' is not writable")


def argv_text(text: str) -> str:
    """A command-line argument as valid UTF-8: bytes that were not (which Python keeps as lone
    surrogates) become U+FFFD, as on stdin."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def format_results(results: list, n_best: int) -> list[str]:
    """One line per translation; for n_best > 1, n lines 'score\\ttranslation' per input."""
    if n_best == 1:
        return results
    return [f"{score:.4f}\t{text}" for hyps in results for text, score in hyps]


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (the usage stays in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="translate",
        description="Translate German to English with a trained checkpoint.",
        epilog="Reads stdin when no TEXT and no --input is given. "
        "`translate export --checkpoint DIR --to hf OUT` exports a checkpoint (--help for more).",
    )
    parser.add_argument("text", nargs="*", help="German text(s), one output line each")
    parser.add_argument("--input", "-i", metavar="FILE", help="one sentence per line")
    parser.add_argument("--output", "-o", metavar="FILE", help="default: stdout")
    parser.add_argument(
        "--n-best",
        metavar="N",
        type=int,
        default=1,
        help="print N 'score<TAB>text' lines per input",
    )
    add_decode_args(parser)
    return parser


def lines_given(args: argparse.Namespace) -> bool:
    return bool(args.text) or args.input not in (None, "-")


def run(args: argparse.Namespace) -> None:
    if args.text and args.input:
        raise ValueError("give either TEXT arguments or --input FILE, not both")
    if (sys.stdout is None and not args.output) or (sys.stdin is None and not lines_given(args)):
        raise ValueError("stdin or stdout is closed; give --input FILE / --output FILE")
    check_output(args.output)
    if args.input:
        check_input(args.input)
    source = args.input or ("-" if not lines_given(args) else None)
    if same_file(args.output, source):
        where = "--input" if args.input else "stdin"
        raise ValueError(
            f"--output '{args.output}' is the file on {where}, which writing would empty before "
            "it is read; give another output file"
        )
    total = count_lines(args.input) if args.input else len(args.text) or None  # progress bar
    translator = load_translator(args)  # before reading stdin: a bad checkpoint fails fast
    opts = translator.options(n_best=args.n_best, **decode_options(args))  # bad options too
    stdin = not lines_given(args)
    if stdin and sys.stdin.isatty() and not args.output:
        return interactive(translator, args)
    # A bar for --input files; for stdin only where stderr is a terminal to draw it on.
    progress = not args.text and (not stdin or sys.stderr.isatty())
    with contextlib.ExitStack() as files:
        if args.text:
            lines, ready = [argv_text(t) for t in args.text], None
        else:  # a line is translated once it is in, not once 10,000 more are (a slow pipe)
            f = sys.stdin.buffer if stdin else files.enter_context(open(args.input, "rb"))
            name, ready = "stdin" if stdin else args.input, None
            if isinstance(getattr(f, "raw", None), io.FileIO):  # not Windows' console, nor a
                f = FdLines(f.fileno())  # stdin with no file descriptor (a notebook's)
                ready = None if stat.S_ISREG(os.fstat(f.fd).st_mode) else f.ready  # a file: all in
            lines = iter_lines(f, name)
        out = files.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer
        written = 0
        try:
            for result in translator.stream(lines, opts, progress, total, ready=ready):
                text = "".join(line + "\n" for line in format_results([result], args.n_best))
                out.write(text.encode("utf-8"))
                out.flush()  # each line as it is done: what a stopped run did is not lost
                written += 1
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Terminated)
            from translate.translator import CHUNK_LINES

            if args.output:  # sentences decoded out of order past this point are not written
                with contextlib.suppress(OSError):  # a signal ends a flush after its line got
                    out.flush()  # out, before `written` counts it: count the file's lines
                    written = (count_lines(args.output) or written * args.n_best) // args.n_best
                rest = f"tail -n +{written + 1} {args.input}" if args.input else "the rest"
                done = f"input lines 1-{written}" if written else "no line yet"
                print(
                    f"interrupted: '{args.output}' holds the translations of {done} (they are "
                    f"written in chunks of up to {CHUNK_LINES:,} lines); translate {rest} to go on",
                    file=sys.stderr,
                )
            raise


def interactive(translator: Translator, args: argparse.Namespace) -> None:
    """Typed at a terminal: translate each line as soon as it is entered, in the terminal's
    encoding (UTF-8 on most, and on Windows' console; Latin-1 under de_DE.ISO-8859-1)."""
    print("Type German sentences, one per line (Ctrl-D to quit).", file=sys.stderr)
    encoding = codecs.lookup(sys.stdin.encoding or "utf-8").name
    with contextlib.suppress(AttributeError):  # a stdout without reconfigure()
        sys.stdout.reconfigure(errors="replace")  # '?' for what the terminal cannot show
    for raw in sys.stdin.buffer:
        if encoding not in ("utf-8", "ascii"):  # ascii: a C locale, on what is most likely UTF-8
            raw = raw.decode(encoding, "replace").encode("utf-8")
        results = translator.translate(
            read_lines(raw, "input"), n_best=args.n_best, **decode_options(args)
        )
        print("\n".join(format_results(results, args.n_best)), flush=True)


def build_export_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="translate export",
        description="Export a post-LN checkpoint for Hugging Face transformers (MarianMTModel) or "
        "CTranslate2. Needs the optional packages: pip install -e .[bench]",
    )
    parser.add_argument("--checkpoint", metavar="DIR", required=True)
    parser.add_argument("--to", choices=["hf", "ctranslate2"], default="hf", help="format (hf)")
    parser.add_argument("out", metavar="OUT", help="output directory")
    return parser


def export_main(argv: list[str]) -> int:
    """`translate export --checkpoint DIR --to hf OUT` (see translate/export.py)."""
    args = build_export_parser().parse_args(argv)

    def run_export() -> None:
        from translate.export import export

        out = export(args.checkpoint, args.to, args.out)
        print(f"wrote {out}", file=sys.stderr)

    return report_errors(run_export)


def same_file(output: str | None, path: str | None) -> bool:
    """Whether --output is the regular file `path` names ('-': the file on stdin), by device and
    inode, so through a symlink or a hard link too (/dev/null in and out is no clash)."""
    if not output or not path or not os.path.isfile(output):
        return False
    try:
        there = os.fstat(sys.stdin.fileno()) if path == "-" else os.stat(path)
        here = os.stat(output)
    except (OSError, ValueError, AttributeError):  # no such input, a closed or unreal stdin
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a batch scheduler), raised where Ctrl-C raises
    KeyboardInterrupt, so that it stops as cleanly and says as much; exit status 143."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated meanwhile (in the main thread, unless SIGTERM is ignored)."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            yield
            return
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: only it can set handlers
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def report_errors(fn: Callable[..., object], *args: object) -> int:
    """Run fn(*args): user errors become one `error:` line and exit 1, Ctrl-C exits 130 and
    SIGTERM 143 (128 + the signal, as a shell reports a process it killed)."""
    try:
        with sigterm_as_interrupt():
            fn(*args)
    except KeyboardInterrupt as e:
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # e.g. `translate < in.de | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError, RuntimeError, MemoryError) as e:
        if os.environ.get("TRANSLATE_DEBUG"):
            raise
        message = (str(e).strip().splitlines() or [type(e).__name__])[0]
        memory = isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
        if memory or "can't allocate memory" in message:  # torch's CPU allocator says so
            message += " (try a smaller --batch-tokens or --beam)"
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    return report_errors(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
