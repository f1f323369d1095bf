"""DDP on CPU (gloo): ranks stay identical and equal one process accumulating all ranks' batches."""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import limit_file_size, stop_flag_reads, tiny_overrides

import translate.train as train_mod
from data_prep import DataError, collate
from translate.config import load_config
from translate.distributed import Dist
from translate.model import Transformer
from translate.runlog import Interval
from translate.step import train_step
from translate.stopping import Stops
from translate.train import Trainer, TrainingError

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


def worker(rank: int, init_file: str, out_dir: str, fp16: bool = False) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    cfg, model, batches = setup()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    amp = {"amp_dtype": torch.float16, "scaler": torch.amp.GradScaler("cpu")} if fp16 else {}
    made = []  # whether each update counts as made, as the trainer logs it
    for step in range(STEPS):
        result = train_step(ddp, [batches[step][rank]], opt, 1.0, cfg.train, ddp=ddp, **amp)
        made.append(bool(result[2]))
    torch.save(flat_params(model), Path(out_dir) / f"rank{rank}.pt")
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(made))
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


def poisoned_worker(rank: int, init_file: str, out_dir: str, fp16: bool) -> None:
    """`worker` with rank 1's NLL non-finite at every step while its gradients stay finite."""
    import translate.step as step_mod

    smoothed = step_mod.smoothed_loss
    if rank == 1:
        step_mod.smoothed_loss = lambda *args: (smoothed(*args)[0] + math.inf, smoothed(*args)[1])
    worker(rank, init_file, out_dir, fp16)


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16-scaler"])
def test_a_non_finite_loss_on_one_rank_skips_the_update_on_every_rank(tmp_path, fp16):
    mp.spawn(poisoned_worker, args=(str(tmp_path / "init"), str(tmp_path), fp16), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert torch.equal(ranks[0], ranks[1])
    assert torch.equal(ranks[0], flat_params(setup()[1]))  # every update skipped
    made = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert made == [[False] * STEPS] * WORLD  # and logged as skipped on every rank


def test_torchrun_two_cpu_processes(tiny_data, tmp_path):
    """A validation before any save (which saves last/ too) is reached by every rank."""
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_steps=4"]
    sets += ["train.save_every=3", "train.valid_every=2"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, "-m", "translate.train"] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # rank 0 alone writes the log
    assert "valid_loss" in rows[1] and (tmp_path / "run" / "best").is_dir()
    assert proc.stdout.count("parameters") == 1
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and state["world_size"] == 2
    # resumed with max_time used up, between log steps: it stops before any update
    more = ["train.max_steps=100", "train.max_time=0.01s", "train.log_every=3"]
    cmd += [x for s in more for x in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopped at step 4: reached train.max_time" in proc.stdout


def start_worker(
    rank: int, init_file: str, out_dir: str, steps: list[int], tokenizers: list[bytes]
) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    fake = SimpleNamespace(env=Dist(rank, WORLD), step=steps[rank], device=torch.device("cpu"))
    fake.out, fake.data_dir, fake.tokenizer_json = Path(out_dir), Path(out_dir), tokenizers[rank]
    fake._data_digest = lambda: Trainer._data_digest(fake)
    try:
        Trainer._check_ranks_agree(fake)
        said = "agree"
    except TrainingError as e:
        said = str(e)
    (Path(out_dir) / f"rank{rank}.txt").write_text(said)
    dist.destroy_process_group()


def teardown_worker(rank: int, port: int, out_dir: str) -> None:
    import gc

    from translate.distributed import setup_distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    setup_distributed("cpu")
    ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
    del ddp
    dist.destroy_process_group()
    gc.collect()
    names = [(task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()]
    gloo = [name for name in names if "gloo" in name]
    (Path(out_dir) / f"rank{rank}.txt").write_text(" ".join(gloo))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_destroy_process_group_ends_gloo_threads_at_once(tmp_path):
    """Not during the interpreter's finalization, at a moment the other rank cannot expect:
    torch.distributed.nn, imported by DDP, would otherwise hold the group in default arguments."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(teardown_worker, args=(port, str(tmp_path)), nprocs=WORLD, join=True)
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)] == [""] * WORLD


def test_ranks_that_would_start_at_different_steps_all_stop(tmp_path):
    """A rank that cannot see out_dir/last (another machine, no shared filesystem) starts at 0."""
    for steps, n in (([7, 7], 0), ([7, 0], 1)):
        init = str(tmp_path / f"init{n}")
        args = (init, str(tmp_path), steps, [b"{}", b"{}"])
        mp.spawn(start_worker, args=args, nprocs=WORLD, join=True)
        said = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
        if n == 0:
            assert said == ["agree", "agree"]
        else:  # every rank raises, so none waits for the others at a collective
            assert all("0 to 7" in s and "all share" in s for s in said), said


def test_ranks_that_see_other_data_all_stop(tmp_path):
    """A node without a shared filesystem whose own data.dir was prepared from other files
    (another tokenizer, other pairs) would train on other token ids, silently."""
    args = (str(tmp_path / "init"), str(tmp_path), [0, 0], [b'{"a": 1}', b'{"b": 2}'])
    mp.spawn(start_worker, args=args, nprocs=WORLD, join=True)
    said = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
    assert all("other prepared data" in s and "all share" in s for s in said), said


def torchrun_train(nproc: int, *sets: str) -> subprocess.CompletedProcess:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd = [*torchrun, f"--nproc_per_node={nproc}", "-m", "translate.train"]
    cmd += [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_process_resume_is_exact_with_dropout(tiny_data, tmp_path):
    """Every rank's RNG is saved, so rank 1's dropout goes on where it stopped, too."""
    steps = ["model.dropout=0.3", "train.save_every=4"]
    torchrun_train(2, *tiny_overrides(tiny_data, tmp_path / "full"), *steps, "train.max_steps=8")
    cut = [*tiny_overrides(tiny_data, tmp_path / "cut"), *steps]
    torchrun_train(2, *cut, "train.max_steps=4")
    assert "resumed from" in torchrun_train(2, *cut, "train.max_steps=8").stdout

    def losses(run: str) -> dict[int, float]:
        rows = [json.loads(line) for line in (tmp_path / run / "log.jsonl").open()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    full, resumed = losses("full"), losses("cut")
    assert [resumed[s] for s in range(5, 9)] == [full[s] for s in range(5, 9)]
    state = torch.load(tmp_path / "cut" / "last" / "trainer_state.pt", weights_only=True)
    assert len(state["rank_rngs"]) == 1 and state["world_size"] == 2


def children(pid: int) -> list[int]:
    """Linux: the processes whose parent is `pid` (torchrun's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
def test_a_signal_to_one_rank_stops_all_ranks_between_log_steps(tiny_data, tmp_path):
    """torchrun kills its workers 30 s after passing a signal on: the ranks agree on a stop
    within a few updates, not at the next log step (none comes here), and save `last`."""
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_steps=100000"]
    sets += ["train.log_every=100000", "train.save_every=0", "train.valid_every=0"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, "-m", "translate.train"] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while "parameters" not in (line := proc.stdout.readline()):  # rank 0: training starts
            assert line, "the run ended before training started"
        time.sleep(2)
        workers = children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(max(workers), signal.SIGTERM)  # one rank only
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert 0 < state["step"] < 100000
    assert f"stopped at step {state['step']}: received " in out, out + err[-2000:]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("signal", "received SIGTERM"),
        ("max_time", "reached train.max_time=1h (training time over all sessions)"),
        ("session_time", "reached train.session_time=10m"),
    ],
)
def test_the_per_step_stop_flags_are_read_two_steps_later(tmp_path, event, reason):
    """Every rank reads the all-reduced flags of two steps back, so all stop at the same step,
    a few updates after a signal or the end of max_time / session_time, not at a log step."""
    assert stop_flag_reads("cpu", "gloo", tmp_path / "init", event) == [None, None, None, reason]


def exit_status_worker(rank: int, init_file: str, out_dir: str, signals: list) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    stops = Stops(load_config(None).train, Dist(rank, WORLD), torch.device("cpu"), print)
    stops.signum = signals[rank]
    (Path(out_dir) / f"rank{rank}.txt").write_text(str(stops.exit_status()))
    dist.destroy_process_group()


@pytest.mark.parametrize(
    "signals, status",
    [
        ([None, None], 0),
        ([None, signal.SIGTERM], 143),  # reached one node after the stop was agreed
        ([signal.SIGINT, None], 130),
        ([signal.SIGINT, signal.SIGTERM], 143),  # Ctrl-C here, the scheduler's SIGTERM there
    ],
)
def test_every_rank_exits_with_the_same_status(tmp_path, signals, status):
    """Not 0 on some (a success, to torchrun) and 128 + a signal on others."""
    args = (str(tmp_path / "init"), str(tmp_path), signals)
    mp.spawn(exit_status_worker, args=args, nprocs=WORLD, join=True)
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)] == [str(status)] * WORLD


def late_signal_worker(rank: int, port: int, data: str, out_dir: str) -> None:
    """A 2-update run where SIGTERM reaches rank 1 only after the stop (max_steps) is agreed."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    sets = [*tiny_overrides(Path(data), Path(out_dir) / "run"), "train.max_steps=2"]
    cfg, finish = load_config(None, sets), Trainer._finish

    def signalled_finish(self, reason):
        if rank == 1:
            self.stops.on_signal(signal.SIGTERM, None)
        finish(self, reason)

    with mock.patch.object(Trainer, "_finish", signalled_finish):
        status = Trainer(cfg).run()
    (Path(out_dir) / f"rank{rank}.txt").write_text(str(status))
    dist.destroy_process_group()


def test_a_signal_during_the_final_save_on_one_rank_gives_every_rank_its_status(
    tiny_data, tmp_path
):
    """Not 0 on rank 0 (a success, to torchrun) and 143 on rank 1."""
    args = (free_port(), str(tiny_data), str(tmp_path))
    mp.spawn(late_signal_worker, args=args, nprocs=WORLD, join=True)
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)] == ["143", "143"]


def prepare_worker(rank: int, init_file: str, root: str, data_dirs: list[str]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    sets = tiny_overrides(Path(root), Path(root) / "unused") + [f"data.dir={data_dirs[rank]}"]
    fake = SimpleNamespace(cfg=load_config(None, sets), env=Dist(rank, WORLD))
    fake.device, fake._stop_together = (
        torch.device("cpu"),
        lambda *a: Trainer._stop_together(fake, *a),
    )
    try:
        Trainer._prepare(fake)
        said = "read"
    except (DataError, TrainingError) as e:
        said = f"{type(e).__name__}: {e}"
    (Path(data_dirs[1]) / f"rank{rank}.txt").write_text(said)
    dist.destroy_process_group()


def test_a_rank_that_cannot_read_the_prepared_data_stops_every_rank(tiny_data, tmp_path):
    """Rank 1 on a node without a shared filesystem (its data.dir empty) stops with its error;
    rank 0 stops too, naming it, instead of failing later in a collective with 'Connection
    closed by peer' (or waiting there for it)."""
    dirs = [str(tiny_data / "data"), str(tmp_path)]
    mp.spawn(prepare_worker, args=(str(tmp_path / "init"), str(tiny_data), dirs), nprocs=WORLD)
    said = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
    assert said[1].startswith("DataError: ") and str(tmp_path) in said[1], said
    assert said[0].startswith("TrainingError: rank 1 cannot read the data prepared in "), said


def rank_0_failure_worker(rank: int, init_file: str, root: str, stage: str) -> None:
    """Trainer._prepare or ._validate on 2 ranks where rank 0's prepare() or validate() fails
    with something other than an OSError (a DataError offline, CUDA out of memory)."""
    timeout = datetime.timedelta(seconds=60)  # a rank left waiting must not hang the test
    init = f"file://{init_file}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD, timeout=timeout)
    run = Trainer.__new__(Trainer)  # no __init__: only what _prepare and _validate read
    run.cfg = load_config(None, tiny_overrides(Path(root), Path(root) / "run"))
    run.env, run.device, run.out = Dist(rank, WORLD), torch.device("cpu"), Path(root)
    run.step, run.interval = 2, Interval(run.device, WORLD)
    run.model = run.valid = run.refs = run.tokenizer = run.amp_dtype = None
    error = DataError("no network") if stage == "prepare" else torch.cuda.OutOfMemoryError("OOM")

    def fail(*args, **kwargs):
        raise error

    with contextlib.ExitStack() as patches:
        if rank == 0:
            patches.enter_context(mock.patch.object(train_mod, stage, fail))
        try:
            Trainer._prepare(run) if stage == "prepare" else Trainer._validate(run)
            said = "went on"
        except Exception as e:  # noqa: BLE001 - what each rank said is the test's subject
            said = f"{type(e).__name__}: {e}"
    (Path(root) / f"rank{rank}.txt").write_text(said)
    dist.destroy_process_group()


@pytest.mark.parametrize("stage", ["prepare", "validate"])
def test_a_failure_on_rank_0_alone_stops_every_rank_saying_so(tmp_path, stage):
    """Rank 0 fails at a step the others wait for (preparing the data offline, validating out of
    CUDA memory): they stop naming it, not with 'Connection closed by peer' in a traceback."""
    args = (str(tmp_path / "init"), str(tmp_path), stage)
    mp.spawn(rank_0_failure_worker, args=args, nprocs=WORLD)
    said = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
    assert said[0] in ("DataError: no network", "OutOfMemoryError: OOM"), said
    assert said[1].startswith("TrainingError: rank 0 could not "), said


def compile_failure_worker(rank: int, init_file: str, out_dir: str) -> None:
    """Trainer._update on 2 ranks whose compiled net fails at its first call on rank 1 alone
    (a node without a working compiler)."""
    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=60)  # a collective mismatch must not hang the test
    init = f"file://{init_file}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD, timeout=timeout)
    cfg, model, batches = setup()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    failed = []

    def compiled(*args):
        if rank == 1 and not failed:
            failed.append(True)
            raise RuntimeError("inductor exploded")
        return ddp(*args)

    run = SimpleNamespace(cfg=cfg, env=Dist(rank, WORLD), model=model, ddp=ddp, net=compiled)
    run.optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    run.amp_dtype, run.scaler, run.guard_compile, run.say = None, None, True, print
    run._lr, run._record = lambda: 1.0, lambda *args: None
    for step in range(STEPS):
        Trainer._update(run, [batches[step][rank]])
    torch.save(flat_params(model), Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_a_compile_failure_on_one_rank_falls_back_to_eager_there_alone(tmp_path, capfd):
    """The redone update must not all-reduce the token count a second time while the other
    rank goes on to the gradients' all-reduce: gloo aborts on that mismatch, NCCL may hang."""
    mp.spawn(compile_failure_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert torch.equal(ranks[0], ranks[1])
    cfg, model, batches = setup()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for step in range(STEPS):  # one process, both ranks' batches as micro-batches
        train_step(model, batches[step], opt, 1.0, cfg.train)
    torch.testing.assert_close(ranks[0], flat_params(model), rtol=0, atol=1e-5)
    assert "rank 1: note: torch.compile failed (inductor exploded); eager" in capfd.readouterr().out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups, SIGTERM")
def test_a_preempted_node_stops_the_other_node_at_once_and_not_as_a_success(tiny_data, tmp_path):
    """SIGTERM to one node's torchrun: every rank saves `last` and exits 128 + 15, so the other
    node's torchrun reports a failure at once; a rank that exited 0 there would have its torchrun
    wait 300 s in its exit barrier for the gone node, then report success."""
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_steps=100000"]
    sets += ["train.log_every=100000", "train.save_every=0", "train.valid_every=0"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1"]
    torchrun += ["--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    nodes = []
    try:
        for node in (0, 1):
            cmd = [*torchrun, f"--node_rank={node}", "-m", "translate.train"]
            cmd += [x for s in sets for x in ("--set", s)]
            nodes.append(
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=REPO,
                    start_new_session=True,
                )
            )
        while "parameters" not in (line := nodes[0].stdout.readline()):  # rank 0 trains
            assert line, "the run ended before training started"
        time.sleep(2)
        nodes[1].send_signal(signal.SIGTERM)  # its torchrun only, which passes it on
        out, err = nodes[0].communicate(timeout=90)
        nodes[1].communicate(timeout=60)
    finally:
        for proc in nodes:  # torchrun and its worker
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert 0 < state["step"] < 100000
    assert f"stopped at step {state['step']}: received SIGTERM on another rank" in out, err
    assert nodes[0].returncode != 0 and "exitcode: 143" in err, err[-2000:]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="POSIX file size limits")
def test_a_checkpoint_rank_0_cannot_write_stops_every_rank_saying_so(tiny_data, tmp_path):
    """A full disk under rank 0's last/ (here a file size limit): rank 0 says so in one line, the
    others that rank 0 could not write it, not 'Connection closed by peer' in a traceback."""
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.max_steps=4", "train.save_every=2"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, "-m", "translate.train"] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=180,
        preexec_fn=limit_file_size(64_000),
    )
    assert proc.returncode != 0
    model = tmp_path / "run" / "last" / "model.safetensors"
    assert f"error: File too large: '{model}'; check train.out_dir" in proc.stderr, proc.stderr
    assert f"error: rank 0 could not write a checkpoint to '{tmp_path / 'run'}'" in proc.stderr
    assert "Connection closed by peer" not in proc.stderr


def test_resuming_on_fewer_ranks_says_so_and_keeps_the_share_of_the_epoch(tiny_data, tmp_path):
    sets = [*tiny_overrides(tiny_data, tmp_path / "run"), "train.save_every=1000"]
    torchrun_train(2, *sets, "train.max_steps=3")
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    cmd = [sys.executable, "-m", "translate.train"]
    cmd += [x for s in [*sets, "train.max_steps=4"] for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    epoch = state["epoch"]
    assert (
        f"at step 3 (saved on 2 rank(s), now 1: going on from the same share of epoch {epoch}"
        in (proc.stdout)
    )
    after = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert after["epoch"] == epoch and after["world_size"] == 1
    share = state["batch_in_epoch"] * after["batches_per_rank"] // state["batches_per_rank"]
    assert after["batch_in_epoch"] == share + 2  # one update of 2 micro-batches on one rank
