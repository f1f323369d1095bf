"""German->English Transformer NMT: model, training, search, CLI and evaluation."""

import os

# libgomp's default spin-waiting makes torch's CPU threads 10-40x slower whenever another process
# competes for the cores (shared machines, DDP on CPU, CI). Sleeping idle threads cost about
# nothing on a quiet machine. Takes effect only if torch is not imported yet; the user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
