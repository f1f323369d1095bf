"""DDP on CPU (gloo): ranks stay identical and equal one process accumulating all ranks' batches."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import tiny_overrides

from data_prep import collate
from translate.config import load_config
from translate.model import Transformer
from translate.train import train_step

REPO = Path(__file__).resolve().parents[1]
STEPS, WORLD = 3, 2


def setup():
    cfg = load_config(None, tiny_overrides(Path("."), Path(".")) + ["model.dropout=0"])
    torch.manual_seed(0)
    model = Transformer(cfg.model, 64, pad_id=0)
    g = torch.Generator().manual_seed(1)
    batches = []  # batches[step][rank]: each rank sees different pairs of a different size
    for _ in range(STEPS):
        per_rank = []
        for rank in range(WORLD):
            pairs = [
                (
                    torch.randint(4, 64, (int(n),), generator=g).numpy(),
                    torch.randint(4, 64, (int(n) + rank,), generator=g).numpy(),
                )
                for n in torch.randint(2, 10, (3 + 2 * rank,), generator=g)
            ]
            src, tgt_in, tgt_out = collate(pairs)
            per_rank.append((src, tgt_in, tgt_out, int((tgt_out != 0).sum())))
        batches.append(per_rank)
    return cfg, model, batches


def flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    cfg, model, batches = setup()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for step in range(STEPS):
        train_step(ddp, [batches[step][rank]], opt, 1.0, cfg.train, ddp=ddp)
    torch.save(flat_params(model), Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_agree_and_equal_accumulation(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert torch.equal(ranks[0], ranks[1])
    cfg, model, batches = setup()
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.parameters(), lr=1.0)
    for step in range(STEPS):  # one process, both ranks' batches as micro-batches
        train_step(reference, batches[step], opt, 1.0, cfg.train)
    torch.testing.assert_close(ranks[0], flat_params(reference), rtol=0, atol=1e-5)
    assert not torch.equal(ranks[0], flat_params(model))  # it did train


def test_torchrun_two_cpu_processes(tiny_data, tmp_path):
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_steps=3", "train.save_every=2"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, "-m", "translate.train"] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # rank 0 alone writes the log
    assert proc.stdout.count("parameters") == 1
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 3 and state["world_size"] == 2


def start_worker(rank: int, init_file: str, out_dir: str, steps: list[int]) -> None:
    from types import SimpleNamespace

    from translate.train import Dist, Trainer, TrainingError

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    fake = SimpleNamespace(env=Dist(rank, WORLD), step=steps[rank], device=torch.device("cpu"))
    fake.out = Path(out_dir)
    try:
        Trainer._check_ranks_agree(fake)
        said = "agree"
    except TrainingError as e:
        said = str(e)
    (Path(out_dir) / f"rank{rank}.txt").write_text(said)
    dist.destroy_process_group()


def test_ranks_that_would_start_at_different_steps_all_stop(tmp_path):
    """A rank that cannot see out_dir/last (another machine, no shared filesystem) starts at 0."""
    for steps, n in (([7, 7], 0), ([7, 0], 1)):
        init = str(tmp_path / f"init{n}")
        mp.spawn(start_worker, args=(init, str(tmp_path), steps), nprocs=WORLD, join=True)
        said = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
        if n == 0:
            assert said == ["agree", "agree"]
        else:  # every rank raises, so none waits for the others at a collective
            assert all("0 to 7" in s and "all share" in s for s in said), said
