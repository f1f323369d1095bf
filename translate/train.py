"""Train a Transformer: `python -m translate.train --config configs/demo.yaml [--set k=v ...]`.

Token-bucketed micro-batches, gradient accumulation up to train.tokens_per_update (across ranks
with `torchrun --nproc_per_node=N -m translate.train ...`), the paper's warmup/rsqrt schedule,
label-smoothed cross-entropy, bf16/fp16 autocast, torch.compile, validation BLEU, atomic
checkpoints and exact resume from `{out_dir}/last`. The logged `loss`/`ppl` are the plain NLL
per target token (natural log) and exp(NLL), not the label-smoothed training objective. One
update is translate.step.train_step, when to stop is translate.stopping, the log is
translate.runlog; this module is the loop around them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from data_prep import (
    PAD_ID,
    DataError,
    collate,
    load_split,
    load_tokenizer,
    prepare,
    read_raw_split,
    token_batches,
)
from data_prep.tokenizer import tokenizer_file
from translate import tolerant_stdout
from translate.checkpoint import (
    STATE_FILE,
    CheckpointError,
    check_model_config,
    checkpoint_info,
    complete,
    discard_removed,
    load_checkpoint_config,
    load_trainer_state,
    load_weights,
    recover,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_checkpoints,
)
from translate.config import (
    Config,
    ConfigError,
    TrainConfig,
    add_config_args,
    data_identity,
    differences,
    load_config,
)
from translate.distributed import setup_distributed
from translate.model import Transformer
from translate.runlog import Interval, RunLog
from translate.step import (
    Batch,
    build_optimizer,
    guarded_step,
    lr_at,
    maybe_compile,
    pick_precision,
    train_step,
    update_tokens,
    validate,
)
from translate.stopping import Stops


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite losses, out of memory); the message says what to change."""


class Batches:
    """Endless stream of micro-batches, epoch after epoch; (epoch, pos) is the resume point."""

    def __init__(self, split, tc: TrainConfig, device, rank=0, world=1, epoch=0, pos=0, of=None):
        """`pos` of `of` batches per rank into `epoch` (None: as many as now): resuming with
        another number of ranks or train.max_tokens goes on from the same share of the epoch."""
        self.split, self.tc, self.device, self.rank, self.world = split, tc, device, rank, world
        self.src_lens = np.asarray(split.src_lens) + 1  # + eos
        self.tgt_lens = np.asarray(split.tgt_lens) + 1  # + bos / eos
        self.epoch, self.batches = epoch, self._epoch_batches(epoch)
        self.pos = pos if not of else pos * len(self.batches) // of

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of `epoch` (token_batches gives every rank the same count)."""
        args = (self.src_lens, self.tgt_lens, self.tc.max_tokens, self.tc.seed, epoch)
        batches = token_batches(*args, rank=self.rank, world_size=self.world)
        if not batches:
            raise ConfigError(f"no training batch for train.max_tokens={self.tc.max_tokens}")
        return batches

    def current_epoch(self) -> int:
        """Epoch of the next micro-batch (moves on when this epoch is used up)."""
        while self.pos >= len(self.batches):
            self.epoch, self.pos = self.epoch + 1, 0
            self.batches = self._epoch_batches(self.epoch)
        return self.epoch

    def next(self) -> Batch:
        self.current_epoch()
        idx = self.batches[self.pos]
        self.pos += 1
        tensors = collate([self.split[i] for i in idx])  # src (B,S), tgt_in (B,T), tgt_out (B,T)
        if self.device.type == "cuda":
            tensors = [t.pin_memory().to(self.device, non_blocking=True) for t in tensors]
        return (*tensors, int(self.tgt_lens[idx].sum()))


class Trainer:
    """One run's state; `run()` is the loop: micro-batches -> train_step -> log/validate/save."""

    def __init__(self, cfg: Config):
        self.cfg, tc = cfg, cfg.train
        self.env, self.device = setup_distributed(tc.device)
        self.out, self.bar = Path(tc.out_dir), None
        self.log = RunLog(self.out)  # written by rank 0
        self.interval = Interval(self.device, self.env.world)  # what the next record sums up
        self.stops = Stops(tc, self.env, self.device, self.say)
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"train.out_dir '{self.out}' is a file; give a directory path")
        created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)  # a bad out_dir fails before a long prepare
        try:
            resuming = self._check_resumable()  # before prepare() rewrites a shared data.dir
            self.data_dir = self._prepare()
        except BaseException:
            if created and self.env.main:  # e.g. offline: no empty run folder left behind
                with contextlib.suppress(OSError):  # not empty: rmdir leaves it
                    self.out.rmdir()
            raise
        # read once: a rebuild of a shared data.dir (other settings) cannot reach this run
        self.tokenizer_json = tokenizer_file(self.data_dir).read_bytes()
        self.tokenizer = load_tokenizer(self.tokenizer_json)
        random.seed(tc.seed), np.random.seed(tc.seed), torch.manual_seed(tc.seed)
        vocab = self.tokenizer.get_vocab_size()
        self.model = Transformer(cfg.model, vocab, PAD_ID).to(self.device)
        self.amp_dtype, why, warning = pick_precision(tc.precision, self.device)
        fp16 = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.optimizer = build_optimizer(self.model, tc, self.device)
        self.step = 0  # updates done
        self.best: float | None = None  # best/'s validation score
        self.best_metric: str | None = None  # "bleu" or "loss": what self.best is a score of
        self.pending_best: dict | None = None  # best/'s info until the first last/ is saved
        self.saved_step = self.valid_step = -1  # the step last/ was saved at, last validated at
        self.logged_step = 0  # the step of the last log record
        self.saved_interval: dict | None = None  # the resumed log interval's sums (_resume)
        self.saved_batches: int | None = None  # this rank's batches per epoch when last saved
        epoch, pos = self._resume() if resuming else self._start_fresh()
        self._check_ranks_agree()
        self.ddp = None
        if self.env.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, ids, broadcast_buffers=False)
        self.net, compile_note = maybe_compile(self.ddp or self.model, tc.compile, self.device)
        self.guard_compile = True  # see _update
        train_split = load_split(self.data_dir, "train")
        args = (self.env.rank, self.env.world, epoch, pos, self.saved_batches)
        self.batches = Batches(train_split, tc, self.device, *args)
        self.accum = math.ceil(tc.tokens_per_update / (tc.max_tokens * self.env.world))
        self.valid = load_split(self.data_dir, "valid")
        self.refs = read_raw_split(self.data_dir, "valid", cfg.data.tgt_lang)
        self.say(
            f"{self.model.num_parameters():,} parameters, vocab {vocab} | {self.device} x "
            f"{self.env.world} | {why} | {compile_note} | {self.accum} micro-batch(es) of "
            f"<= {tc.max_tokens} tokens per update and rank | {len(train_split):,} train pairs"
        )
        if warning:
            self.say(f"warning: {warning}")

    def say(self, msg: str) -> None:
        if self.env.main:
            (self.bar.write if self.bar is not None else print)(msg)

    def _prepare(self) -> Path:
        """Rank 0 prepares (or reuses) the data first, then the others read the cache; where one
        cannot (offline, another machine, no shared filesystem), all stop, each with a line."""
        data_dir, error = None, None
        if self.env.main:
            try:
                data_dir = prepare(self.cfg.data)
            except Exception as e:  # shared, then raised again here
                error = e
        self._stop_together(error, f"could not prepare the data in '{self.cfg.data.dir}'")
        if data_dir is None:
            try:
                data_dir = prepare(self.cfg.data, build=False)
            except (DataError, OSError) as e:
                error = e
        self._stop_together(
            error,
            f"cannot read the data prepared in '{self.cfg.data.dir}'",
            "on several machines put data.dir and the raw data.* files on a filesystem they all "
            "share",
        )
        return Path(data_dir)

    def _stop_together(self, error: Exception | None, failed: str, hint: str = "") -> None:
        """A barrier that raises on every rank if `error` is some rank's: that rank's own there,
        on the others one naming the first rank that `failed`, so that every node says why in
        one line and none is left to wait for the failed rank at a later collective."""
        if self.env.world > 1:
            first = self.env.world if error is None else self.env.rank
            first = torch.tensor(first, device=self.device)
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
            if error is None and first < self.env.world:
                hint = f"; {hint}" if hint else ""
                raise TrainingError(f"rank {int(first)} {failed} (its own error says why){hint}")
        if error is not None:
            raise error

    def _check_ranks_agree(self) -> None:
        """Every rank starts at the same step, on the same data: one that cannot see
        `{out_dir}/last` (another machine without a shared filesystem) would train on from fresh
        optimizer state, one with a data.dir of its own prepared from other files on other
        token ids (its tokenizer.json or its pairs differ)."""
        if self.env.world == 1:
            return
        data = self._data_digest()
        sums = [self.step, -self.step, data, -data]
        sums = torch.tensor(sums, dtype=torch.int64, device=self.device)
        dist.all_reduce(sums, op=dist.ReduceOp.MAX)
        if sums[0] != -sums[1]:
            raise TrainingError(
                f"ranks start at different steps ({int(-sums[1])} to {int(sums[0])}): some do "
                f"not see '{self.out}/last'; on several machines put train.out_dir and data.dir on "
                "a filesystem they all share"
            )
        if sums[2] != -sums[3]:
            raise TrainingError(
                f"ranks see other prepared data in '{self.data_dir}' (tokenizer.json or the "
                "number of pairs and tokens differ); on several machines put data.dir and the raw "
                "data.* files on a filesystem they all share"
            )

    def _data_digest(self) -> int:
        """48 bits of the sha256 of tokenizer.json and the split sizes of manifest.json."""
        splits = {}
        with contextlib.suppress(OSError, ValueError, AttributeError):
            manifest = json.loads(
                (Path(self.data_dir) / "manifest.json").read_text(encoding="utf-8")
            )
            splits = manifest.get("splits", {})
        text = self.tokenizer_json + json.dumps(splits, sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:6], "big")

    def _check_resumable(self) -> bool:
        """Whether `{out_dir}/last` is there to resume; refuses one this config cannot resume."""
        last, tc = self.out / "last", self.cfg.train
        if self.env.main:
            recover(last, state=True)
            recover(self.out / "best")
            discard_removed(self.out)
        self.env.barrier()
        if not last.exists():
            earlier = ["step checkpoints"] if step_checkpoints(self.out) else []
            if (self.out / "best").exists():  # a fresh run would replace it
                earlier.append("best/ of an earlier run")
            if earlier:
                raise CheckpointError(
                    f"'{self.out}' holds {' and '.join(earlier)} but no last/ to resume from; "
                    "use a new train.out_dir, or move them away to start over there"
                )
            return False
        if not (last / STATE_FILE).is_file():
            raise CheckpointError(
                f"'{last}' has no {STATE_FILE}, so training cannot resume from it (replaced by "
                "an averaged or copied checkpoint?); put the run's own last/ back, or use a new "
                "train.out_dir"
            )
        saved = self.saved_cfg = load_checkpoint_config(last)
        check_model_config(last, saved.model)
        changed = {
            "model": differences("model", asdict(saved.model), asdict(self.cfg.model)),
            "data": differences("data", data_identity(saved.data), data_identity(self.cfg.data)),
        }
        if (saved.train.weight_decay > 0) != (tc.weight_decay > 0):  # other parameter groups
            changed["train"] = f"train.weight_decay: {saved.train.weight_decay} then, "
            changed["train"] += f"{tc.weight_decay} now"
        for section, what in changed.items():
            if what:
                raise CheckpointError(
                    f"'{last}' was trained with other {section} settings ({what}); use the "
                    "same config to resume, or a new train.out_dir to start over"
                )
        return True

    def _start_fresh(self) -> tuple[int, int]:
        """A new run: distinct dropout masks per rank, and no log lines of an earlier run."""
        if self.env.rank > 0:
            torch.manual_seed(self.cfg.train.seed + self.env.rank)
        if self.env.main and self.log.truncate(0):
            self.say(f"note: no last/ checkpoint in {self.out}; starting over, log.jsonl too")
        return 0, 0

    def _resume(self) -> tuple[int, int]:
        """Restore weights, optimizer, scaler, RNG and data position from `last` -> (epoch, pos)."""
        last, tc = self.out / "last", self.cfg.train
        if not (last / "tokenizer.json").is_file():
            raise CheckpointError(f"'{last}' has no tokenizer.json; put the run's own last/ back")
        if (last / "tokenizer.json").read_bytes() != self.tokenizer_json:
            raise CheckpointError(
                f"'{last}' was trained with another tokenizer than the one prepared now in "
                f"'{self.data_dir}' (the raw data files changed?); put them back, or use a new "
                "train.out_dir to start over"
            )
        load_weights(self.model, last, self.device)
        state = load_trainer_state(last)
        try:
            position = self._restore(state)
        except torch.cuda.OutOfMemoryError:  # a RuntimeError, but no fault of the checkpoint
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise CheckpointError(
                f"'{last / STATE_FILE}' does not fit this trainer ({type(e).__name__}: "
                f"{str(e).splitlines()[0]}); put the run's own last/ back, or use a new "
                "train.out_dir"
            ) from None
        if (
            self.env.main
            and (info := state.get("pending_best"))
            and not complete(self.out / "best")
        ):
            self._save_checkpoint(self.out / "best", info=info)  # last/ holds that model
            self.best, self.best_metric = self._best_score(self.best)
        if self.env.main and tc.save_every and self.step and self.step % tc.save_every == 0:
            # killed between last/ and its step checkpoint, or before pruning
            self._save_step(write=not complete(self.out / f"step_{self.step:07d}"))
        if self.env.main:
            self.log.truncate(self.step)
        note = ""
        if self.saved_world != self.env.world:
            note = (
                f" (saved on {self.saved_world} rank(s), now {self.env.world}: going on from the "
                f"same share of epoch {position[0]}, with fresh dropout streams, not bit-exact)"
            )
        self.say(f"resumed from {last} at step {self.step}{note}")
        return position

    def _restore(self, state: dict) -> tuple[int, int]:
        """The trainer state of `last` -> (epoch, pos): optimizer, scaler, counters, RNG."""
        tc = self.cfg.train
        fused = self.device.type == "cuda" or None  # the run may have started on another device
        for group in state["optimizer"]["param_groups"]:  # `fused` decides where `step` goes
            group["fused"] = fused
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the config wins
            group.update(betas=tc.betas, eps=tc.eps)
            group["weight_decay"] = tc.weight_decay if group["weight_decay"] else 0.0
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.best, self.stops.elapsed = state["step"], state["best"], state["elapsed"]
        self.best, self.best_metric = self._best_score(self.best)
        old = self.saved_cfg.train
        stops = self.stops
        if (old.max_steps, old.max_time) == (tc.max_steps, tc.max_time):
            stops.decay_end = state.get("decay_end", stops.decay_end)
        elif self.step and stops.elapsed:  # the new end, at the earlier sessions' pace
            pace = stops.elapsed / self.step
            stops.decay_end = stops.projected_end(self.step, pace, stops.elapsed)
        self.saved_step = self.step
        self.valid_step = state.get("valid_step", self.step)
        self.saved_interval = state.get("interval")
        unlogged = self.saved_interval and self.saved_interval["tokens"]
        self.logged_step = state.get("logged_step", -1) if unlogged else self.step
        rngs = [state["rng"], *state.get("rank_rngs", [])]
        if state.get("world_size") == self.env.world and self.env.rank < len(rngs):
            set_rng_state(rngs[self.env.rank])
        else:  # another number of ranks: fresh dropout streams (resuming is not bit-exact then)
            torch.manual_seed(self.cfg.train.seed + 1000 * self.env.rank + self.step)
        self.saved_batches = state.get("batches_per_rank")
        self.saved_world = state.get("world_size", self.env.world)
        return state["epoch"], state["batch_in_epoch"]

    def _best_score(self, saved: float | None) -> tuple[float | None, str | None]:
        """(score, metric) of best/ itself: `last` can be older than best/ (validated after the
        last save), and a resume that is not bit-exact must not replace best/ with a worse model."""
        try:
            info = checkpoint_info(self.out / "best")
        except CheckpointError:  # no best/ yet, or a damaged one: the next validation replaces it
            return None, None
        if "valid_score" not in info:  # best/ saved before scores were
            return saved, None
        return float(info["valid_score"]), info.get("valid_metric")

    def run(self) -> int:
        """The training loop; ends with a checkpoint in every case but a crash -> the exit
        status (Stops.exit_status)."""
        tc = self.cfg.train
        old = {s: signal.signal(s, self.stops.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.stops.start_session(self.step)
        self.bar = tqdm(
            total=tc.max_steps or None,
            initial=self.step,
            disable=not self.env.main,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.1 if sys.stderr.isatty() else 10,  # a log file: a redraw every 10 s
        )
        self.interval.reset()
        # the last update's lr and gradient norm, which a record logged before the next one shows
        self.lr = self._lr()
        self.grad_norm = torch.tensor(math.nan)
        if self.saved_interval and self.env.main:  # a resume between log steps: as if unbroken
            self.interval.restore(self.saved_interval)
            if self.saved_interval.get("grad_norm") is not None:
                self.grad_norm = torch.tensor(self.saved_interval["grad_norm"])
        try:
            while (reason := self.stops.reason(self.step, self.batches.current_epoch)) is None:
                micro = [self.batches.next() for _ in range(self.accum)]
                self.step += 1
                self._update(micro)
                self.bar.update(1)
                self._after_update()
            self._finish(reason)
            return self.stops.exit_status()
        except torch.cuda.OutOfMemoryError:
            raise TrainingError(
                f"CUDA out of memory with train.max_tokens={tc.max_tokens}; try --set "
                f"train.max_tokens={tc.max_tokens // 2} (train.tokens_per_update is kept by "
                "accumulating more micro-batches)"
            ) from None
        finally:
            self.bar.close()
            for s, handler in old.items():
                signal.signal(s, handler)

    def _lr(self) -> float:
        """lr_at(self.step) with this run's schedule."""
        tc, end = self.cfg.train, self.stops.decay_end
        return lr_at(self.step, self.cfg.model.d_model, tc.warmup, tc.lr_scale, tc.decay, end)

    def _update(self, micro: list[Batch]) -> None:
        """train_step with the scheduled lr; a failing compile or recompile falls back to eager."""
        tc, lr = self.cfg.train, self._lr()
        eager = self.ddp or self.model
        if self.net is eager or not self.guard_compile:
            args = (micro, self.optimizer, lr, tc, self.amp_dtype, self.scaler, self.ddp)
            return self._record(train_step(self.net, *args), lr, micro)
        # The tokens are all-reduced once, before the guarded call: a rank whose compile fails
        # redoes the update in eager mode, and must not all-reduce them a second time while the
        # others go on to the gradients' all-reduce (a collective mismatch: gloo aborts, NCCL
        # may hang). With several ranks only the first call is guarded: a recompile failing on
        # one rank alone, mid-backward, would leave the ranks at different collectives
        ntok = update_tokens(micro, self.ddp)
        args = (micro, self.optimizer, lr, tc, self.amp_dtype, self.scaler, self.ddp, ntok)
        self.guard_compile = self.env.world == 1
        result, self.net, note = guarded_step(self.net, eager, self.optimizer, train_step, *args)
        if note:  # every rank's: a node whose compile failed runs eager, slowing them all
            if self.env.main:
                self.say(note)
            else:
                print(f"rank {self.env.rank}: {note}")
        self._record(result, lr, micro)

    def _record(self, result: tuple[Tensor, Tensor, Tensor], lr: float, micro: list[Batch]) -> None:
        """Add the update to the log interval's sums (tensors: no host sync on CUDA)."""
        nll, self.grad_norm, finite = result
        self.lr = lr
        bad = self.interval.add(nll, finite, sum(b[3] for b in micro))
        if self.device.type == "cpu" and self.env.world == 1 and bad.item():
            self.say(f"step {self.step}: non-finite loss or gradient, update skipped")
            self._check_streak()

    def _check_streak(self) -> None:
        if (streak := int(self.interval.streak.item())) >= 5:
            raise TrainingError(
                f"loss or gradient non-finite for {streak} updates in a "
                f"row (step {self.step}); lower train.lr_scale, set train.clip_norm=1.0, or use "
                "train.precision=fp32"
            )

    def _after_update(self) -> None:
        """Log, validate and save at their intervals; one JSONL record per logged step."""
        tc, record = self.cfg.train, {}
        final = self.step == tc.max_steps  # log and validate now: one record for the last step
        if self.step % tc.log_every == 0 or final:
            record.update(self._interval_metrics())
        if (tc.valid_every and self.step % tc.valid_every == 0) or final:
            record.update(self._validate())
        if record and self.env.main:
            self.log.write({"step": self.step, "epoch": self.batches.epoch, **record})
        if tc.save_every and self.step % tc.save_every == 0:
            self._save(step_dir=True)
        elif self.valid_step == self.step and self.saved_step < 0:  # on every rank alike
            self._save()  # a run killed now must resume: a best/ without last/ would block it

    def _interval_metrics(self) -> dict:
        """Per-token NLL, perplexity, lr, tokens/s (all ranks) since the last log step."""
        if self.env.world > 1:  # the longest streak of any rank: all ranks stop together
            dist.all_reduce(self.interval.streak, op=dist.ReduceOp.MAX)
        self._check_streak()
        sums = self.interval.totals()
        loss = sums["nll"] / sums["loss_tokens"] if sums["loss_tokens"] else math.nan  # all skipped
        metrics = {
            "loss": loss,
            "ppl": math.exp(min(loss, 50.0)),
            "lr": self.lr,
            "tokens_per_s": sums["tokens"] / max(sums["seconds"], 1e-9),
            "grad_norm": self.grad_norm.item(),
        }
        if sums["skipped"]:
            metrics["skipped_updates"] = sums["skipped"]
        left = self.stops.seconds_left(self.step)
        self.bar.set_postfix(
            loss=f"{loss:.3f}",
            lr=f"{self.lr:.2e}",
            tok_s=f"{metrics['tokens_per_s']:.0f}",
            eta="?" if left is None else self.bar.format_interval(left),
            refresh=False,
        )
        self.interval.reset()
        self.logged_step = self.step
        return metrics

    def _validate(self) -> dict:
        """Rank 0 validates (others wait); keeps `best` by BLEU, or by loss without BLEU. Any
        failure there (a full disk, CUDA out of memory) stops every rank, each saying so."""
        metrics, error = {}, None
        if self.env.main:
            start = time.time()
            try:
                metrics = self._validate_here()
            except Exception as e:  # shared, then raised again here
                error = e
            self.interval.start += time.time() - start  # keep tokens/s about training
        self.valid_step = self.step
        self._stop_together(error, f"could not validate or write {self.out / 'best'}")
        return metrics

    def _validate_here(self) -> dict:
        """validate() on this rank, the line that says how it went, and `best` if it is."""
        args = (self.valid, self.refs, self.tokenizer, self.cfg, self.device, self.amp_dtype)
        metrics = validate(self.model, *args)
        score = metrics.get("valid_bleu", -metrics["valid_loss"])
        metric = "bleu" if "valid_bleu" in metrics else "loss"
        line = f"step {self.step} valid: loss {metrics['valid_loss']:.3f}"
        line += f", ppl {metrics['valid_ppl']:.2f}"
        if "valid_bleu" in metrics:
            n = self.cfg.train.valid_bleu_sentences
            line += f", BLEU {metrics['valid_bleu']:.2f} (greedy, up to {n} sentences)"
        before = self.best_metric
        switched = before not in (None, metric)  # valid_bleu_sentences changed on resume
        if self.best is None or switched or score > self.best:
            self.best, self.best_metric = score, metric
            info = {"step": str(self.step), "valid_score": repr(score), "valid_metric": metric}
            if self.saved_step < 0:  # no last/ yet: a best/ alone would block the re-run
                self.pending_best = info  # written by _save, right after last/
            else:
                self._save_checkpoint(self.out / "best", info=info)
            line += f"; new best, saved to {self.out / 'best'}"
            if switched:
                line += f" (by {metric} now; the one before was chosen by {before})"
        self.say(line)
        return metrics

    def _save(self, step_dir: bool = False) -> None:
        """`last` with the full trainer state, then a weights-only step_NNNNNNN; rank 0 writes.
        `last` first: a run killed in between resumes from it (no step dir without a `last`)."""
        rngs = [rng_state()]  # every rank's, so that each resumes its own dropout stream
        if self.env.world > 1:
            rngs = [None] * self.env.world
            dist.all_gather_object(rngs, rng_state())
        interval = self.interval.totals()
        interval["grad_norm"] = float(self.grad_norm) if interval["tokens"] else None  # as logged
        error = None
        if self.env.main:
            try:
                self._save_checkpoint(self.out / "last", self._trainer_state(rngs, interval))
                if self.pending_best is not None:
                    self._save_checkpoint(self.out / "best", info=self.pending_best)
                    self.pending_best = None
                if step_dir:
                    self._save_step()
            except Exception as e:  # a full disk, or any other: every rank stops, saying so
                error = e
        self.saved_step = self.step
        self._stop_together(error, f"could not write a checkpoint to '{self.out}'")

    def _save_step(self, write: bool = True) -> None:
        """step_NNNNNNN/ (weights only) of this step, then only the last train.keep_last kept."""
        if write:
            self._save_checkpoint(self.out / f"step_{self.step:07d}")
        for old in step_checkpoints(self.out)[: -self.cfg.train.keep_last or None]:
            remove_checkpoint(old)

    def _save_checkpoint(self, path: Path, state: dict | None = None, info: dict | None = None):
        info = {"step": str(self.step), **(info or {})}
        save_checkpoint(path, self.model, self.cfg, self.tokenizer_json, state, info)

    def _trainer_state(self, rngs: list[dict], interval: dict) -> dict:
        return {
            "step": self.step,
            "epoch": self.batches.epoch,
            "batch_in_epoch": self.batches.pos,
            "elapsed": self.stops.total_elapsed(),
            "decay_end": self.stops.decay_end,
            "best": self.best,
            "world_size": self.env.world,
            "batches_per_rank": len(self.batches.batches),  # of this epoch, for batch_in_epoch
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "rng": rngs[0],
            "rank_rngs": rngs[1:],
            "interval": interval,
            "valid_step": self.valid_step,
            "pending_best": self.pending_best,  # written right after: a kill may come between
            "logged_step": self.logged_step,
        }

    def _finish(self, reason: str) -> None:
        """The last log record and validation (unless the run is to be resumed: a signal or
        session_time; the resumed run logs and validates as an unbroken one), `last`."""
        # by `reason`, which all ranks agree on: a signal that reached one rank after the last
        # log step must not keep it out of the validation's barrier
        resumable = reason.startswith(("received ", "reached train.session_time"))
        record = {}
        if not resumable:
            if self.logged_step != self.step:  # the updates since the last log step
                record.update(self._interval_metrics())
            if self.valid_step != self.step and self.step > 0:
                record.update(self._validate())
        if record and self.env.main:
            self.log.write({"step": self.step, "epoch": self.batches.epoch, **record})
        if self.saved_step != self.step or "loss" in record:  # "loss": the interval was reset
            self._save()
        hint = "; re-run the same command to resume" if resumable else ""
        self.say(f"stopped at step {self.step}: {reason}; checkpoint in {self.out / 'last'}{hint}")


def train(cfg: Config) -> int:
    """Train (or resume) the run in cfg.train.out_dir until max_steps/max_epochs/max_time ->
    the exit status: 0, or 128 + the signal number where SIGINT or SIGTERM reached it on any
    rank (after a checkpoint), as shells expect of an interrupted program (`train && evaluate`
    stops there)."""
    return Trainer(cfg).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m translate.train", description="Train (or resume) a Transformer NMT model."
    )
    add_config_args(parser)
    args = parser.parse_args(argv)
    tolerant_stdout()
    if args.config is None and int(os.environ.get("RANK", 0)) == 0:
        print(
            "note: no --config, so the built-in defaults (the base model on the demo corpus, "
            "in runs/default) with the --set values; an experiment is e.g. --config "
            "configs/demo.yaml"
        )  # on stdout with the trainer's other notes
    try:
        return train(load_config(args.config, args.set))
    except (ConfigError, DataError, CheckpointError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except torch.cuda.OutOfMemoryError as e:  # before training: the model or optimizer state
        print(
            f"error: {str(e).splitlines()[0]}; free GPU memory that other processes hold "
            "(nvidia-smi), or train a smaller model",
            file=sys.stderr,
        )
        return 1
    except OSError as e:  # e.g. train.out_dir or data.dir not writable, a full disk
        where = f": '{e.filename}'" if e.filename else ""
        print(
            f"error: {e.strerror or e}{where}; check train.out_dir, data.dir and free space",
            file=sys.stderr,
        )
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
