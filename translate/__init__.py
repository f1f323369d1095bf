"""German->English Transformer NMT: model, training, search, CLI and evaluation."""

import argparse
import contextlib
import ctypes
import os
import sys

# How long torch's idle OpenMP threads spin before they sleep. libgomp's default (300,000 rounds)
# made torch 10-40x slower whenever another process competed for the cores (shared machines, CI);
# never spinning (OMP_WAIT_POLICY=PASSIVE) made 2 threads no faster than 1 for beam search on a VM
# where waking a thread is slow. 3,000 rounds ran that search 1.3-1.7x faster than PASSIVE alone and
# 1.5-2.0x slower with a second such process on the cores (docs/benchmarks.md, session 8). Takes
# effect only if torch is not imported yet; the user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if sys.platform.startswith("linux"):  # libgomp, torch's OpenMP there
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "3000")
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# oneDNN, which runs bf16 matmuls on CPU, keeps up to 1024 compiled primitives, one per matmul
# shape, about 8 MB each here: token batches of ever-new shapes grew bf16 CPU training of the
# Multi30k model to 5.9 GB. 256 kept the measured speed and peaked at 3.4 GB (benchmarks.md).
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")


def _keep_freed_memory() -> None:
    """Let glibc reuse freed CPU tensors instead of unmapping them.

    By default glibc maps every block over 32 MB afresh (the Multi30k logits alone are 70 MB)
    and returns freed heap tops to the OS, so each training step paid page faults to zero the
    same memory again; keeping it makes CPU training 1.25-1.35x faster (docs/benchmarks.md).
    Other C libraries are left alone, and so are the user's MALLOC_*_THRESHOLD_ / GLIBC_TUNABLES.
    """
    own = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
    if not sys.platform.startswith("linux") or any(k in os.environ for k in own):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 30)


_keep_freed_memory()

# Started with stderr closed (`2>&-`): warnings, errors and progress bars go nowhere, rather than
# failing (tqdm, isatty) or, through print(file=None), into the translations on stdout.
if sys.stderr is None:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def tolerant_stdout() -> None:
    """For the entry points: what stdout's encoding lacks is printed as a \\u escape, not raised
    as UnicodeEncodeError (Windows writes a redirected stdout in its ANSI code page, cp1252 for
    one, which has no 'Ł' of a train.out_dir)."""
    with contextlib.suppress(AttributeError):  # a stdout without reconfigure() (replaced)
        sys.stdout.reconfigure(errors="backslashreplace")


def version() -> str:
    """'translate 0.1.0 (torch 2.13.0+cpu, no CUDA, Python 3.11.7)': what a bug report needs."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    import torch

    try:
        own = installed("translate")
    except PackageNotFoundError:  # run from a checkout that pip did not install
        own = "(not installed)"
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA"
    return (
        f"translate {own} (torch {torch.__version__}, {cuda}, Python {platform.python_version()})"
    )


class VersionAction(argparse.Action):
    """`--version` for the entry points: prints version() and exits; torch is imported only then,
    so --help stays quick."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("help", "print the versions of translate, torch and Python, and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version())
        parser.exit()
