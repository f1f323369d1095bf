"""The run log: one record per logged step, strict JSON, cut back to a resumed step."""

from __future__ import annotations

import json
import math

import torch

from translate.runlog import Interval, RunLog


def records(log: RunLog) -> list[dict]:
    return [json.loads(line) for line in log.path.read_text(encoding="utf-8").splitlines()]


def test_a_second_record_for_a_step_is_merged_into_the_first(tmp_path):
    log = RunLog(tmp_path)
    log.write({"step": 1, "loss": 2.0})
    log.write({"step": 2, "loss": 1.5})
    log.write({"step": 2, "valid_loss": 1.7})  # the final validation after a log step
    assert records(log) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "valid_loss": 1.7}]
    assert (tmp_path / "curves.png").is_file()  # drawn at each validation


def test_non_finite_figures_are_written_as_null(tmp_path):
    log = RunLog(tmp_path)
    log.write({"step": 1, "loss": math.nan, "ppl": math.inf, "lr": 1e-3})

    def refuse(name: str) -> None:
        raise ValueError(f"{name} in log.jsonl")

    line = log.path.read_text(encoding="utf-8")
    assert json.loads(line, parse_constant=refuse) == {
        "step": 1,
        "loss": None,
        "ppl": None,
        "lr": 1e-3,
    }


def test_truncate_keeps_the_records_up_to_a_step_and_drops_a_line_cut_short(tmp_path):
    lines = [json.dumps({"step": step, "loss": 4.0 - step}) for step in (1, 2, 3)]
    cut = '{"step": 4, "lo'  # the kill came mid-write
    (tmp_path / "log.jsonl").write_text("\n".join([*lines, cut]), encoding="utf-8")
    log = RunLog(tmp_path)
    assert log.truncate(2) == 2
    assert records(log) == [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}]
    log.write({"step": 2, "valid_loss": 2.5})  # the resumed run's record for step 2 merges
    assert records(log)[-1] == {"step": 2, "loss": 2.0, "valid_loss": 2.5}
    assert log.truncate(0) == 2 and records(log) == []
    assert RunLog(tmp_path / "none").truncate(0) == 0  # no log yet


def test_an_interval_sums_the_updates_made_and_goes_on_from_its_saved_totals():
    cpu = torch.device("cpu")
    interval = Interval(cpu, world=1)
    interval.add(torch.tensor(6.0), torch.tensor(True), 3)
    interval.add(torch.tensor(math.inf), torch.tensor(False), 4)  # skipped: no loss, its tokens
    sums = interval.totals()
    assert (sums["nll"], sums["loss_tokens"], sums["tokens"], sums["skipped"]) == (6.0, 3, 7, 1)
    resumed = Interval(cpu, world=1)
    resumed.restore(sums)
    for rest in (interval, resumed):
        rest.add(torch.tensor(2.0), torch.tensor(True), 1)
    got, want = resumed.totals(), interval.totals()
    assert got.pop("seconds") >= sums["seconds"] and want.pop("seconds") >= sums["seconds"]
    assert got == want == {"nll": 8.0, "loss_tokens": 4, "tokens": 8, "skipped": 1}


def test_the_streak_of_skipped_updates_runs_across_log_records():
    interval, bad = Interval(torch.device("cpu"), world=1), torch.tensor(False)
    for _ in range(3):
        interval.add(torch.tensor(0.0), bad, 1)
    interval.reset()  # a log record
    interval.add(torch.tensor(0.0), bad, 1)
    assert interval.streak.item() == 4 and interval.totals()["skipped"] == 1
    interval.add(torch.tensor(1.0), torch.tensor(True), 1)
    assert interval.streak.item() == 0
