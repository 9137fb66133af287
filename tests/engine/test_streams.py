"""Task-free streams (`benchmark.stream`): the schedule of contexts, batches drawn on the device, methods told no
boundary (replay fills a reservoir, EWC / SI consolidate every `update_every` iterations), methods that need
boundaries refused in one line, and van de Ven's task-free ordering on split digits (short runs, seed 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from cltui.cli.main import app as cli_app
from core import training
from core.engine.data import StreamSampler, build_benchmark
from core.methods.lwf import LwF
from core.runs.events import PhaseStarted
from core.schema.presets import build_config

# The accuracy checks below were measured on the non-circular stream, and pin it.
SHORT = ["benchmark.stream=fuzzy-linear", "train.iterations=100", "benchmark.fuzziness=50", "train.eval_every=20"]


def run_in(folder: Path, overrides: list[str], **options: Any) -> tuple[dict[str, Any], list[Any]]:
    folder.mkdir(parents=True)
    events: list[Any] = []
    record = training.run(build_config("split-digits", overrides=overrides, **options), folder, events.append)
    assert record["status"] == "finished", record.get("error")
    return record, events


def sampler(kind: str, fuzziness: int = 40) -> StreamSampler:
    config = build_config("split-digits", overrides=["benchmark.contexts=3"])
    benchmark = build_benchmark(config.benchmark)
    return StreamSampler(benchmark.contexts, kind, 100, fuzziness, 512, torch.Generator().manual_seed(0),
                         torch.device("cpu"))


def test_a_fuzzy_linear_stream_blends_the_next_context_in_linearly_around_each_boundary():
    stream = sampler("fuzzy-linear")
    assert stream.mix(0) == (0, 0, 0.0) and stream.mix(79) == (0, 0, 0.0)  # before the window: context 0 only
    share = []
    for step in (80, 90, 100, 110, 119):  # the window: 80..119, centred on the boundary at 100
        _, _, ids = stream.next(step)
        assert set(ids.tolist()) <= {0, 1}
        share.append(ids.float().mean().item())
    assert share == sorted(share) and share[0] < 0.1 and 0.35 < share[2] < 0.65 and share[-1] > 0.9
    assert stream.mix(120) == (1, 1, 0.0) and stream.mix(299) == (2, 2, 0.0)
    assert stream.seen(79) == 0 and stream.seen(80) == 1  # the classes a class-IL loss lets compete
    x, y, ids = stream.next(150)
    assert x.shape == (512, 1, 8, 8) and bool((y // 2 == ids).all())  # each label from its sample's context


def reference_probabilities(contexts: int, iterations: int, half: int) -> list[list[float]]:
    """Each context's chance at each step in van de Ven's circular stream, written from its definition: context 0
    for the first and last half-context, context k >= 1 from the middle of block k-1 to the middle of block k, a
    linear ramp of 2 * half steps ((i + 0.5) / (2 * half)) across each of those boundaries."""
    total, mid = contexts * iterations, iterations // 2
    probs = [[0.0] * total for _ in range(contexts)]

    def ramp(k: int, start: int, up: bool) -> None:
        for i in range(2 * half):
            probs[k][start + i] = (i + 0.5) / (2 * half) if up else 1 - (i + 0.5) / (2 * half)

    for t in range(mid - half):
        probs[0][t] = 1.0
    ramp(0, mid - half, up=False)
    last = mid + (contexts - 1) * iterations
    ramp(0, last - half, up=True)
    for t in range(last + half, total):
        probs[0][t] = 1.0
    for k in range(1, contexts):
        start, end = mid + (k - 1) * iterations, mid + k * iterations
        ramp(k, start - half, up=True)
        for t in range(start + half, end - half):
            probs[k][t] = 1.0
        ramp(k, end - half, up=False)
    return probs


def test_a_fuzzy_stream_is_the_reference_circular_stream_that_ends_on_context_0():
    stream = sampler("fuzzy", fuzziness=40)  # 3 contexts of 100 steps; the reference's fuzziness is 20
    expected = reference_probabilities(3, 100, 20)
    for step in range(300):
        a, b, p = stream.mix(step)
        ours = [0.0, 0.0, 0.0]
        ours[a] += 1 - p
        ours[b] += p
        assert ours == pytest.approx([expected[k][step] for k in range(3)], abs=1e-9), step
    assert stream.mix(299) == (0, 0, 0.0)  # the stream ends on context 0
    assert stream.seen(29) == 0 and stream.seen(30) == 1 and stream.seen(299) == 2
    _, _, ids = stream.next(250)  # the last boundary hands over from context 2 back to context 0
    assert set(ids.tolist()) == {0, 2}


def test_fine_tuning_on_the_circular_stream_ends_knowing_context_0_and_the_last_one(tmp_path):
    """What the circular stream changes for a user: `none` ends on context 0 again, so its final row knows two
    contexts (the reference's fine-tuning ends at 0.39 on Fashion-MNIST where the linear stream gives 0.22),
    while replay stays far above it. Measured on split-digits class-IL, seed 0: none c0 1.00, c4 0.92."""
    circular = ["benchmark.stream=fuzzy", "train.iterations=100", "benchmark.fuzziness=50"]
    none, _ = run_in(tmp_path / "none", circular, method="none", scenario="class", seed=0)
    er, _ = run_in(tmp_path / "er", circular, method="er", scenario="class", seed=0)
    last = none["acc_matrix"][-1]
    assert last[0] > 0.8 and last[-1] > 0.5 and max(last[1:4]) < 0.3, last
    assert er["metrics"]["final_avg_acc"] > none["metrics"]["final_avg_acc"] + 0.3


def test_a_random_stream_draws_each_batch_from_one_context_of_all():
    stream = sampler("random")
    contexts = {int(stream.next(step)[2].unique().item()) for step in range(60)}
    assert contexts == {0, 1, 2} and stream.seen(0) == 2


def test_the_issue_command_finishes_with_the_curve_and_one_row_per_block(tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli_app, ["run", "split-digits", "--set", "benchmark.stream=fuzzy", "--method", "er",
                                          "--set", "train.eval_every=20", "--set", "train.iterations=40",
                                          "--set", "benchmark.fuzziness=20", "--runs-dir", str(runs)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    import json

    (folder,) = runs.iterdir()
    record = json.loads((folder / "run.json").read_text())
    assert len(record["acc_matrix"]) == 5 and [p[0] for p in record["acc_curve"]] == list(range(0, 201, 20))
    assert record["config"]["benchmark"]["stream"] == "fuzzy"


@pytest.mark.parametrize("method", ["icarl", "xdg", "joint", "abd"])
def test_methods_that_need_boundaries_are_refused_in_one_line(method, tmp_path):
    scenario = "task" if method == "xdg" else "class"
    result = CliRunner().invoke(cli_app, ["run", "split-digits", "--method", method, "--scenario", scenario,
                                          "--set", "benchmark.stream=fuzzy", "--runs-dir", str(tmp_path / "runs")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "benchmark.stream" in lines[0] and "academic" in lines[0] and method in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_class_il_fuzzy_stream_replay_far_above_fine_tuning_online_ewc_near_it(tmp_path):
    """van de Ven's task-free class-IL ordering: er far above none, online EWC (consolidating every
    update_every iterations on what was seen since, never at the blocks' ends) level with none."""
    none, _ = run_in(tmp_path / "none", SHORT, method="none", scenario="class", seed=0)
    er, _ = run_in(tmp_path / "er", SHORT, method="er", scenario="class", seed=0)
    ewc, events = run_in(tmp_path / "ewc", [*SHORT, "method.update_every=50", "method.fisher_n=256"],
                         method="online-ewc", scenario="class", seed=0)
    assert len(er["acc_matrix"]) == 5 and er["acc_curve"]
    acc = {name: r["metrics"]["final_avg_acc"] for name, r in (("none", none), ("er", er), ("ewc", ewc))}
    assert acc["none"] < 0.45  # measured 0.33 (0.34 with seed 1)
    assert acc["er"] > acc["none"] + 0.4  # measured 0.93 (seed 1: 0.93)
    assert abs(acc["ewc"] - acc["none"]) < 0.1  # measured 0.33 (update_every 100, the whole window)
    fishers = [e for e in events if isinstance(e, PhaseStarted) and e.phase == "fisher"]
    assert len(fishers) == 10  # 500 iterations / 50: none more at the 5 blocks' ends


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_lwf_on_a_stream_distils_a_snapshot_taken_every_update_every_iterations(scenario, tmp_path, monkeypatch):
    """van de Ven's task-free LwF: no previous context, so the teacher is the model as it was at the last update;
    in class-IL the student's softmax runs over the classes seen so far, the snapshot's over those it had seen."""
    snapshots: list[int] = []
    distilled: list[tuple[int, int]] = []  # (student outputs, teacher outputs) in class-IL
    after, distil = LwF.after_context, LwF.stream_distillation

    def snapshot(self, info):
        after(self, info)
        snapshots.append(self.teacher_seen)

    def spy(self, logits, x):
        kd = distil(self, logits, x)
        distilled.append((self.scenario.trained_outputs(self.seen), self.scenario.trained_outputs(self.teacher_seen)))
        return kd

    monkeypatch.setattr(LwF, "after_context", snapshot)
    monkeypatch.setattr(LwF, "stream_distillation", spy)
    record, _ = run_in(tmp_path / "lwf", ["benchmark.stream=fuzzy-linear", "train.iterations=40",
                                          "benchmark.fuzziness=20", "method.update_every=20", "model.hidden=[32,32]"],
                       method="lwf", scenario=scenario, seed=0)
    assert len(record["acc_matrix"]) == 5
    # 200 / 20, none at blocks' ends
    assert len(snapshots) == 10 and snapshots == sorted(snapshots) and snapshots[-1] == 4
    assert len(distilled) == 200 - 20  # from the first snapshot on, every step
    if scenario == "class":
        assert all(student >= teacher for student, teacher in distilled)
        assert distilled[0] == (2, 2) and distilled[-1] == (10, 10) and any(s > t for s, t in distilled)


TASK_IL = ["benchmark.stream=fuzzy-linear", "train.iterations=300", "benchmark.fuzziness=50", "model.hidden=[100,100]",
           "train.lr=0.01"]


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_task_il_fuzzy_stream_online_ewc_si_and_lwf_beat_fine_tuning(seed, tmp_path):
    """van de Ven's task-free task-IL result: the parameter regularisers, consolidating every update_every
    iterations, keep what fine-tuning loses. At the preset's lr 1e-3 and 100-300 iterations a block none forgets
    next to nothing in task-IL on digits (0.95-0.99; the gap is noise); a higher rate, a narrower network and
    300 iterations a block make the shared layers drift. Measured (none / online-ewc / si), seeds 0-2:
    0.84 / 0.98 / 0.94, 0.82 / 0.99 / 0.98, 0.88 / 0.99 / 0.99 (the smallest gap: 10 points)."""
    acc = {}
    for method, extra in (("none", []), ("online-ewc", ["method.fisher_n=256"]), ("si", []), ("lwf", [])):
        record, _ = run_in(tmp_path / method, [*TASK_IL, *extra], method=method, scenario="task", seed=seed)
        acc[method] = record["metrics"]["final_avg_acc"]
    assert acc["online-ewc"] > acc["none"] + 0.05, acc
    assert acc["si"] > acc["none"] + 0.05, acc
    assert acc["lwf"] > acc["none"] + 0.05, acc  # its snapshot every update_every: 0.99 / 0.99 / 0.98
