"""When a training run stops, with every rank agreeing: train.max_steps or train.max_epochs,
train.max_time over all sessions, train.session_time in this one, or SIGINT/SIGTERM on any rank;
and the step where a linear or cosine decay ends when train.max_time ends the run first."""

from __future__ import annotations

import collections
import math
import signal
import sys
import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from translate.config import TrainConfig, parse_duration
from translate.distributed import Dist


class Stops:
    """The stop rules of one run and the clocks they read; `signum` is the signal this rank
    received (or, first, another rank's, which stops this one too)."""

    def __init__(self, tc: TrainConfig, env: Dist, device: torch.device, say: Callable):
        self.tc, self.env, self.device, self.say = tc, env, device, say
        self.max_time = parse_duration(tc.max_time) if tc.max_time else math.inf  # seconds
        self.session_time = (
            parse_duration(tc.session_time, "session_time") if tc.session_time else math.inf
        )
        self.elapsed = 0.0  # training seconds of the earlier sessions
        self.decay_end = tc.max_steps or sys.maxsize  # moved sooner by max_time: projected_end
        self.signum: int | None = None
        self.signal_name: str | None = None  # e.g. "SIGTERM", or "SIGTERM on another rank"
        self.start_session(0)

    def start_session(self, step: int) -> None:
        """This session begins at update `step`, now: its clock, and no stop flags in flight."""
        self.session_start, self.session_step = time.time(), step
        self.flags = collections.deque()  # see _agreed_between_logs

    def reason(self, step: int, epoch: Callable[[], int]) -> str | None:
        """Why to stop before update `step` + 1 (the same on every rank), or None; `epoch()`
        gives the epoch of the next micro-batch."""
        tc = self.tc
        if tc.max_steps and step >= tc.max_steps:
            return f"reached train.max_steps={tc.max_steps}"
        if tc.max_epochs and epoch() >= tc.max_epochs:
            return f"reached train.max_epochs={tc.max_epochs}"
        if self.env.world > 1 and step % tc.log_every and step > self.session_step:
            return self._agreed_between_logs()  # the first check of a session waits for all
        # The decay end moves only at log steps, to what all ranks agree on (max of -end).
        end = -self.projected_end(step) if step % tc.log_every == 0 else -self.decay_end
        flags = torch.tensor([self.signum or 0, *self.time_up(), end], dtype=torch.float64)
        if self.env.world > 1:
            flags = flags.to(self.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        self.decay_end = int(-flags[3])
        return self._reason(*flags[:3].tolist())

    def _reason(self, signalled: float, total_up: float, session_up: float) -> str | None:
        """`signalled`: the highest signal number any rank received (0: none)."""
        if signalled:
            if self.signum is None:  # exit as that rank will (128 + the signal), not 0: on
                # another node, torchrun would report success (after its 300 s exit barrier)
                self.signum = int(signalled)
                self.signal_name = f"{signal.Signals(self.signum).name} on another rank"
            return f"received {self.signal_name}"
        if total_up:
            return f"reached train.max_time={self.tc.max_time} (training time over all sessions)"
        return f"reached train.session_time={self.tc.session_time}" if session_up else None

    def _agreed_between_logs(self) -> str | None:
        """Between log steps with several ranks: which signal some rank got or whether one ran out
        of time, agreed on every step without waiting for the GPU, so a checkpoint is saved
        within a few updates (torchrun kills its workers 30 s after passing a signal on). Each
        step all-reduces this rank's flags into pinned host memory and reads the flags of two
        steps back, long arrived, so every rank sees the same values at the same step."""
        flags = torch.zeros(3, device=self.device)
        for i, up in enumerate([self.signum or 0, *self.time_up()]):
            flags[i] = float(up)  # a fill on the device: no copy from pageable host memory
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        arrived = None
        if flags.is_cuda:
            flags = torch.empty(3, pin_memory=True).copy_(flags, non_blocking=True)
            arrived = torch.cuda.Event()
            arrived.record()
        self.flags.append((flags, arrived))
        if len(self.flags) <= 2:
            return None
        flags, arrived = self.flags.popleft()
        if arrived is not None:
            arrived.synchronize()
        return self._reason(*flags.tolist())

    def time_up(self) -> tuple[bool, bool]:
        """(train.max_time used up over all sessions, train.session_time used up by this one)."""
        session = time.time() - self.session_start
        return self.total_elapsed() >= self.max_time, session >= self.session_time

    def total_elapsed(self) -> float:
        """Training seconds over all sessions, this one's so far included."""
        return self.elapsed + time.time() - self.session_start

    def projected_end(
        self, step: int, per_step: float | None = None, elapsed: float | None = None
    ) -> int:
        """The step where a linear/cosine decay reaches 0: max_steps, or sooner if max_time
        will run out first at this session's pace (so a slower machine still ends annealed),
        or at `per_step` seconds an update from `elapsed` seconds where given (on resuming)."""
        if per_step is None or elapsed is None:
            done = step - self.session_step
            if done <= 0:  # no pace measured yet this session (a resume set the end)
                return self.decay_end
            per_step, elapsed = (time.time() - self.session_start) / done, self.total_elapsed()
        end = self.tc.max_steps or sys.maxsize
        if self.tc.decay != "rsqrt" and self.tc.max_time:
            left = self.max_time - elapsed
            end = min(end, step + max(int(left / per_step), 0))
        return end

    def on_signal(self, signum: int, frame: object) -> None:
        """SIGINT/SIGTERM handler: stop after this update; a second Ctrl-C exits at once."""
        if self.signal_name is not None:
            if signum == signal.SIGINT:
                raise SystemExit(128 + signum)
            return  # SIGTERM again (a scheduler and torchrun both send it): already stopping
        self.signum, self.signal_name = signum, signal.Signals(signum).name
        self.say(f"{self.signal_name}: saving a checkpoint after this update, then exiting")

    def exit_status(self) -> int:
        """0, or 128 + the highest signal number any rank received, the same on every rank; called
        by all at the end. A signal that reached some ranks only after the stop was agreed (while
        validating or saving), or SIGINT on one node and SIGTERM on another, would otherwise
        make some exit 0 (a success, to torchrun) and others 130 or 143."""
        signum = torch.tensor(self.signum or 0, device=self.device)
        if self.env.world > 1:
            dist.all_reduce(signum, op=dist.ReduceOp.MAX)
        return 128 + int(signum) if signum else 0

    def seconds_left(self, step: int) -> float | None:
        """Seconds toward max_steps, max_time or session_time, whichever comes first (None:
        no end in sight)."""
        tc, left = self.tc, []
        done, session = step - self.session_step, time.time() - self.session_start
        if tc.max_steps and done:
            left.append((tc.max_steps - step) * session / done)
        if tc.max_time:
            left.append(self.max_time - self.total_elapsed())
        if tc.session_time:
            left.append(self.session_time - session)
        return max(min(left), 0) if left else None
