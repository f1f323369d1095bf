"""German->English Transformer NMT: model, training, search, CLI and evaluation."""

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
    same memory again; keeping it makes CPU training 1.2-1.3x faster (docs/benchmarks.md).
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
