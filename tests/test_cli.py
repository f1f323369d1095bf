"""`translate` end to end via subprocess, the way the README runs it."""

from __future__ import annotations

import gzip
import io
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from translate import cli
from translate.cli import count_lines, format_results, iter_lines, read_lines

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, stdin: bytes = b"", cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRANSLATE_DEBUG", None)
    cmd = [sys.executable, "-m", "translate", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err and proc.stdout == b""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err


def test_read_lines_splits_like_wc_and_replaces_invalid_utf8(capsys):
    assert read_lines(b"a\r\nb\n\nc", "x") == ["a", "b", "", "c"]
    assert read_lines(b"\xef\xbb\xbfThe cat\n\xef\xbb\xbfx\n", "x") == ["The cat", "\ufeffx"]
    assert read_lines(b"", "x") == []
    assert read_lines(b"ok\n\xff\xfebad\n\xc3\n", "stdin") == ["ok", "\ufffd\ufffdbad", "\ufffd"]
    first, total = capsys.readouterr().err.splitlines()  # the first bad line, then a count
    assert "stdin line 2 is not valid UTF-8" in first and "2 lines in all" in total


LONG = b"x" * 150_000 + b"\nb\r\n" + b"y" * 70_000  # lines across FdLines' 64 KiB reads


@pytest.mark.parametrize("text", [b"", b"a", b"a\n", b"a\n\nb", b"a\r\nb\n", LONG])
def test_count_lines_counts_them_as_read_lines_splits_them(tmp_path, text):
    path = tmp_path / "in.de"
    path.write_bytes(text)
    assert count_lines(str(path)) == len(read_lines(text, "x"))
    with open(path, "rb") as f:
        assert list(iter_lines(f, "x")) == read_lines(text, "x")
    with open(path, "rb") as f:
        assert list(iter_lines(cli.FdLines(f.fileno()), "x")) == read_lines(text, "x")


def test_a_pipe_that_keeps_up_is_read_in_whole_chunks():
    """A writer that refills the pipe a moment after it was drained (another process producing
    lines) has not paused: the chunk goes on, as from a file, instead of ending at every 64 KiB
    the pipe holds (~700-line chunks from a Python producer: less sorting, fuller batches lost).
    A line longer than one read does not end it either."""
    from translate.translator import _take

    read_fd, write_fd = os.pipe()

    def write() -> None:
        for part in (b"a\n", b"b" * 100_000, b"\nc\n"):
            time.sleep(0.002)
            os.write(write_fd, part)
        os.close(write_fd)

    writer = threading.Thread(target=write)
    writer.start()
    reader = cli.FdLines(read_fd)
    lines = iter_lines(reader, "x")
    chunk, rest = _take(lines, 10, reader.ready), list(lines)  # rest: the writer can finish
    writer.join()
    os.close(read_fd)
    assert (chunk, rest) == (["a", "b" * 100_000, "c"], [])


def test_stdin_without_a_file_descriptor_is_read_as_before(tiny_checkpoint, monkeypatch, capsys):
    """A notebook's or an embedding program's sys.stdin has no fileno(): FdLines cannot read it,
    so its lines are read the buffered way (as is Windows' console, whose os.read is not UTF-8)."""
    stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(b"Guten Morgen\nHallo\n")))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert cli.main(["--checkpoint", str(tiny_checkpoint), "--beam", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_format_n_best():
    assert format_results(["a", "b"], 1) == ["a", "b"]
    assert format_results([[("a", -1.0), ("b", -2.5)]], 2) == ["-1.0000\ta", "-2.5000\tb"]


def test_texts_give_one_line_each(tiny_checkpoint):
    proc = run_cli(
        "--checkpoint", str(tiny_checkpoint), "Guten Morgen", "Hallo Welt", "--beam", "3"
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().splitlines()) == 2


def test_stdin_with_bad_lines_stays_line_aligned(tiny_checkpoint):
    lines = [
        b"Guten Morgen",
        b"",
        b"   \t ",
        b"\x00\x07\x1b[31mrot\x1b[0m",
        "Emoji 😀 und Привет und 東京".encode(),
        b"\xff\xfe kaputt \xc3",
        ("Wort " * 5000).encode(),
        b"Das Wetter ist sch\xc3\xb6n.\r",
    ]
    proc = run_cli(
        "--checkpoint", str(tiny_checkpoint), "--max-len-b", "4", stdin=b"\n".join(lines)
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    out = proc.stdout.decode().split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)  # one line per input, newline-terminated
    assert out[1] == "" and out[2] == ""
    assert "Traceback" not in err
    assert "line 6" in err and "UTF-8" in err  # invalid bytes: warned once with the line number
    assert "line 7" in err  # the 5000-word line was truncated


def test_input_output_files_and_n_best(tiny_checkpoint, tmp_path):
    src = tmp_path / "in.de"
    src.write_text("Guten Morgen\n\nIch habe einen Hund.\n", encoding="utf-8")
    out = tmp_path / "out.en"
    proc = run_cli("--checkpoint", str(tiny_checkpoint), "--input", str(src), "--output", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(out.read_text(encoding="utf-8").split("\n")) == 4
    assert out.read_text(encoding="utf-8").split("\n")[1] == ""

    proc = run_cli(
        "--checkpoint", str(tiny_checkpoint), "--n-best", "2", "--beam", "2", "--input", str(src)
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rows = proc.stdout.decode().splitlines()
    assert len(rows) == 6 and all("\t" in r for r in rows)
    float(rows[0].split("\t")[0])


def test_a_line_from_a_pipe_is_translated_before_the_next_one_comes(tiny_checkpoint):
    """A program that writes a line and waits for its translation (a co-process, `tail -f |`)
    gets it at once, not once 10,000 more lines or the end of the input have come."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "translate", "--checkpoint", str(tiny_checkpoint)]
    proc = subprocess.Popen(
        [*cmd, "--max-len-b", "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        for line in (b"Guten Morgen\n", b"\n", b"Hallo Welt\n"):
            proc.stdin.write(line)
            proc.stdin.flush()
            assert select.select([proc.stdout], [], [], 60)[0], f"no translation of {line}"
            answer = proc.stdout.readline()
            assert answer.endswith(b"\n") and (answer == b"\n") == (line == b"\n")
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0 and proc.stdout.read() == b""
    finally:
        proc.kill()
        proc.wait()


def test_input_from_a_pipe(tiny_checkpoint, tmp_path):
    """--input /dev/stdin, a pipe that can be read only once (no line count first)."""
    src = b"Guten Morgen\n\nHallo\n"
    out = tmp_path / "out.en"
    args = ["--checkpoint", str(tiny_checkpoint), "--input", "/dev/stdin", "--output", str(out)]
    proc = run_cli(*args, stdin=src)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes().count(b"\n") == 3


def test_output_is_written_as_it_goes(tmp_path, monkeypatch, capsys):
    """Each translation is written as soon as it is done: a run stopped by an error keeps the
    lines before it, one per input line."""

    failure, fail_at = RuntimeError("simulated failure in the third line"), 2

    class Failing:
        def options(self, **opts):
            return opts

        def stream(self, lines, opts, progress, total, ready=None):
            for n, line in enumerate(lines):
                if n == fail_at:
                    raise failure
                yield line.upper()

    src, out = tmp_path / "in.de", tmp_path / "out.en"
    src.write_text("a\nb\nc\nd\n", encoding="utf-8")
    monkeypatch.setattr(cli, "load_translator", lambda args: Failing())
    assert cli.main(["--input", str(src), "--output", str(out)]) == 1
    assert out.read_text(encoding="utf-8") == "A\nB\n"
    assert "simulated failure" in capsys.readouterr().err
    failure = KeyboardInterrupt()  # Ctrl-C: exit 130, and say how far the output goes
    assert cli.main(["--input", str(src), "--output", str(out)]) == 130
    assert out.read_text(encoding="utf-8") == "A\nB\n"
    err = capsys.readouterr().err
    assert "input lines 1-2" in err and f"tail -n +3 {src}" in err
    fail_at = 0  # stopped before the first chunk was done
    assert cli.main(["--input", str(src), "--output", str(out)]) == 130
    err = capsys.readouterr().err
    assert "holds the translations of no line yet" in err and f"tail -n +1 {src}" in err


def test_a_file_is_read_in_whole_chunks_and_a_pipe_as_it_comes(tmp_path, monkeypatch):
    """Only input that arrives over time (a pipe) ends a chunk where it pauses or after
    GATHER_SECONDS: a file on slow storage still gets whole sorted chunks."""
    given = []

    class Echo:
        def options(self, **opts):
            return opts

        def stream(self, lines, opts, progress, total, ready=None):
            given.append(ready)
            yield from lines

    src, out = tmp_path / "in.de", tmp_path / "out.en"
    src.write_text("a\nb\n", encoding="utf-8")
    monkeypatch.setattr(cli, "load_translator", lambda args: Echo())
    assert cli.main(["--input", str(src), "--output", str(out)]) == 0
    read, write = os.pipe()
    os.write(write, b"a\nb\n"), os.close(write)
    with open(read, "rb") as pipe:
        assert cli.main(["--input", f"/dev/fd/{pipe.fileno()}", "--output", str(out)]) == 0
    assert given[0] is None and callable(given[1])
    assert out.read_text(encoding="utf-8") == "a\nb\n"


def test_ctrl_c_in_a_flush_counts_the_line_it_wrote(tmp_path, monkeypatch, capsys):
    """A signal during a write is handled as the call returns, after the line got out: the
    message counts what the file holds, so `tail -n +N` neither repeats nor skips a line."""

    class Echo:
        def options(self, **opts):
            return opts

        def stream(self, lines, opts, progress, total, ready=None):
            yield from (line.upper() for line in lines)

    class CtrlCInSecondFlush:
        def __init__(self, f):
            self.f, self.flushes = f, 0

        def write(self, data):
            return self.f.write(data)

        def flush(self):
            self.f.flush()
            self.flushes += 1
            if self.flushes == 2:
                raise KeyboardInterrupt

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def interrupted_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)  # noqa: SIM115
        return CtrlCInSecondFlush(f) if "w" in mode else f

    src, out = tmp_path / "in.de", tmp_path / "out.en"
    src.write_text("a\nb\nc\n", encoding="utf-8")
    monkeypatch.setattr(cli, "load_translator", lambda args: Echo())
    monkeypatch.setattr(cli, "open", interrupted_open, raising=False)
    assert cli.main(["--input", str(src), "--output", str(out)]) == 130
    assert out.read_text(encoding="utf-8") == "A\nB\n"
    err = capsys.readouterr().err
    assert "input lines 1-2 " in err and f"tail -n +3 {src}" in err, err


def test_sigterm_stops_like_ctrl_c(tiny_checkpoint, tmp_path):
    """`kill`, `timeout` or a batch scheduler's SIGTERM: the lines done are in --output, one
    line says how far they go, and the exit status is 143, not a silent death by the signal."""
    out = tmp_path / "out.en"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "translate", "--checkpoint", str(tiny_checkpoint), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"Guten Morgen\nHallo\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") == 2):
            assert time.monotonic() < deadline and proc.poll() is None, "no output"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # while it waits for a third line
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err
    assert "input lines 1-2 " in err and "Traceback" not in err, err
    assert out.read_bytes().count(b"\n") == 2


def test_default_checkpoint_is_the_newest_run(tiny_checkpoint, tmp_path):
    shutil.copytree(tiny_checkpoint, tmp_path / "runs" / "demo" / "best")
    proc = run_cli("Guten Morgen", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().splitlines()) == 1
    assert "runs/demo/best" in proc.stderr.decode()  # says which one it took


def test_a_broken_default_checkpoint_is_one_line_too(tiny_checkpoint, tmp_path):
    best = Path(shutil.copytree(tiny_checkpoint, tmp_path / "runs" / "demo" / "best"))
    (best / "model.safetensors").write_bytes(b"damaged")
    assert_one_line_error(run_cli("Guten Morgen", cwd=tmp_path), "runs/demo/best")


def test_closed_stderr_still_translates(tiny_checkpoint, tmp_path):
    """`2>&-`: warnings and the progress bar go nowhere; stdout holds the translations only."""
    (tmp_path / "in.de").write_bytes(b"Guten Morgen\n\xff bad\n\nDas Wetter\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ckpt = str(tiny_checkpoint)
    for args in (f"< {tmp_path / 'in.de'}", f"--input {tmp_path / 'in.de'}"):
        cmd = f"{sys.executable} -m translate --checkpoint {ckpt} {args} 2>&-"
        proc = subprocess.run(cmd, shell=True, capture_output=True, env=env, timeout=120)
        assert proc.returncode == 0
        assert len(proc.stdout.decode().split("\n")) == 5 and b"warning" not in proc.stdout


def test_no_checkpoint_says_how_to_train(tmp_path):
    assert_one_line_error(run_cli("Hallo", cwd=tmp_path), "python -m translate.train")


def test_missing_checkpoint_dir(tmp_path):
    assert_one_line_error(run_cli("--checkpoint", str(tmp_path / "nope"), "Hallo"), "nope")
    (tmp_path / "file").write_text("")
    assert_one_line_error(run_cli("--checkpoint", str(tmp_path / "file"), "Hallo"), "is a file")


@pytest.mark.parametrize("damage", ["corrupt_weights", "other_tokenizer", "bad_config"])
def test_broken_checkpoint_is_one_line_error(tiny_checkpoint, tmp_path, damage):
    from conftest import write_tokenizer

    ckpt = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    if damage == "corrupt_weights":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "other_tokenizer":
        write_tokenizer(ckpt / "tokenizer.json", vocab_size=384)
    else:
        (ckpt / "config.yaml").write_text("model: [not, a, section\n", encoding="utf-8")
    assert_one_line_error(run_cli("--checkpoint", str(ckpt), "Hallo"))


def test_invalid_utf8_in_an_argument_is_replaced_not_fatal(tiny_checkpoint):
    bad = b"Ein \xff Hund".decode("utf-8", "surrogateescape")  # as Python passes such argv
    proc = run_cli("--checkpoint", str(tiny_checkpoint), bad, "Zwei Katzen", "--max-len-b", "3")
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().split("\n")) == 3


@pytest.mark.parametrize(
    "option",
    [
        ["--max-len-b", "100000000000000000000"],
        ["--max-len-a", "inf"],
        ["--max-len-a=-1"],
        ["--alpha", "nan"],
        ["--alpha=-1"],
        ["--beta", "inf"],
    ],
)
def test_out_of_range_search_options_are_one_line_errors(tiny_checkpoint, option):
    proc = run_cli("--checkpoint", str(tiny_checkpoint), "Hallo", *option)
    assert_one_line_error(proc, option[0].split("=")[0].removeprefix("--").replace("-", "_"))


def test_bad_paths_fail_before_decoding_in_one_line(tiny_checkpoint, tmp_path):
    ckpt = str(tiny_checkpoint)
    src = tmp_path / "in.de"
    src.write_text("Hallo\n", encoding="utf-8")
    proc = run_cli("--checkpoint", ckpt, "--input", str(src), "--output", str(tmp_path / "no/x"))
    assert_one_line_error(proc, "does not exist")
    assert_one_line_error(run_cli("--checkpoint", ckpt, "--input", str(tmp_path)), "directory")
    proc = run_cli("--checkpoint", ckpt, "--input", str(src), "--output", str(tmp_path))
    assert_one_line_error(proc, "directory")
    same = str(tmp_path / "." / "in.de")  # the input under another spelling
    assert_one_line_error(run_cli("--checkpoint", ckpt, "--input", str(src), "--output", same))
    os.link(src, tmp_path / "link.de")  # ... or a hard link of it
    proc = run_cli("--checkpoint", ckpt, "--input", str(src), "--output", str(tmp_path / "link.de"))
    assert_one_line_error(proc, "--input")
    with open(src, "rb") as stdin:  # ... or the file on stdin
        cmd = [sys.executable, "-m", "translate", "--checkpoint", ckpt, "--output", str(src)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(cmd, stdin=stdin, capture_output=True, env=env, timeout=120)
    assert_one_line_error(proc, "stdin")
    assert src.read_text(encoding="utf-8") == "Hallo\n"  # left as it was
    gz = tmp_path / "in.de.gz"
    gz.write_bytes(gzip.compress(b"Hallo\n"))
    assert_one_line_error(run_cli("--checkpoint", ckpt, "--input", str(gz)), "gzip", "zcat")


def test_a_run_directory_as_checkpoint_names_its_checkpoints(tiny_checkpoint, tmp_path):
    shutil.copytree(tiny_checkpoint, tmp_path / "run" / "best")
    proc = run_cli("--checkpoint", str(tmp_path / "run"), "Hallo")
    assert_one_line_error(proc, "run directory", str(tmp_path / "run" / "best"))


def test_usage_errors_are_one_line():
    for args in (["--stop", "never", "Hallo"], ["--beam", "x", "Hallo"]):
        proc = run_cli(*args)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("translate: error: ") and "--help" in err


def test_export_of_a_missing_checkpoint_is_one_line():
    proc = run_cli("export", "--checkpoint", "x", "--to", "hf", "out")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr.decode()


@pytest.mark.parametrize("option", [["--beam", "0"], ["--n-best", "9"], ["--batch-tokens", "0"]])
def test_option_errors_come_before_the_first_prompt(tiny_checkpoint, option):
    """At a terminal (stdin a pty) a bad option fails at once, not once a line is typed."""
    leader, follower = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "translate", "--checkpoint", str(tiny_checkpoint), *option]
    try:
        proc = subprocess.run(cmd, stdin=follower, capture_output=True, env=env, timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert_one_line_error(proc, option[0].removeprefix("--").replace("-", "_"))


@pytest.mark.parametrize(
    "module", ["translate", "translate.train", "translate.evaluate", "data_prep"]
)
def test_every_entry_point_prints_its_versions(module):
    import torch

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", module, "--version"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("translate ") and f"torch {torch.__version__}" in line, line
    assert f"Python {sys.version.split()[0]}" in line and "\n" not in line


def test_same_file_is_about_regular_files(tmp_path):
    text = tmp_path / "a.de"
    text.write_text("Hallo\n", encoding="utf-8")
    os.link(text, tmp_path / "b.de")
    assert cli.same_file(str(tmp_path / "b.de"), str(text))
    assert not cli.same_file(str(tmp_path / "new.en"), str(text))  # not there yet
    assert not cli.same_file(os.devnull, os.devnull)  # -o /dev/null < /dev/null empties nothing


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes."),
        MemoryError(),
    ],
)
def test_running_out_of_memory_says_what_to_lower(capsys, error):
    def decode():
        raise error

    assert cli.report_errors(decode) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "(try a smaller --batch-tokens or --beam)" in err


def test_interactive_speaks_the_terminals_encoding(monkeypatch, capsys):
    """A Latin-1 terminal (de_DE.ISO-8859-1): typed umlauts reach the model, and a translation
    the terminal cannot show gets '?' instead of ending the session."""
    seen = []

    class Echo:
        def translate(self, lines, n_best, **options):
            seen.extend(lines)
            return ["“Greetings” from Köln" for _ in lines]

    typed = io.BytesIO("Grüße aus Köln\n".encode("latin-1"))
    shown = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(typed, encoding="latin-1"))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(shown, encoding="latin-1"))
    cli.interactive(Echo(), cli.build_parser().parse_args([]))
    sys.stdout.flush()
    assert seen == ["Grüße aus Köln"]
    assert shown.getvalue().decode("latin-1") == "?Greetings? from Köln\n"
    assert "warning" not in capsys.readouterr().err
