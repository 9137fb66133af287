"""The sine benchmark (regression, issue 15's toy) and `merge-sine`: five noisy sine waves, one per context,
learned by MLP regressors under MSE and scored by R^2 where classification runs report accuracy; two teachers
that learned disjoint waves merge (`cltui merge`) into one student of their architecture that knows every wave.
Real runs through the engine and the CLI, a few seconds each."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cltui.cli.main import app
from core.engine.data import build_benchmark, sine_wave
from core.engine.models import build_model, count_parameters
from core.engine.scenarios import ScenarioView
from core.runs.record import read_record
from core.runs.store import RunStore
from core.schema.config import BenchmarkConfig
from core.schema.presets import build_config
from core.training import run

WIDE = {"COLUMNS": "200"}
TEACHER = ("train.iterations=100",)  # joint: 100 x 5 = 500 steps, about a second


def cli(runs: Path, *args: str):
    return CliRunner().invoke(app, [*args, "--runs-dir", str(runs)], env=WIDE)


def train(runs: Path, seed: int, *overrides: str, method: str = "joint", scenario: str = "task") -> dict:
    config = build_config("merge-sine", method=method, scenario=scenario, seed=seed, device="cpu",
                          overrides=list(overrides))
    folder = RunStore(runs).new_run_dir_for(config)
    record = run(config, folder)
    assert record["status"] == "finished", record.get("error")
    return record


def test_the_waves_are_the_same_for_every_run_and_noisy_only_where_trained():
    bench = build_benchmark(BenchmarkConfig(name="sine", contexts=5, classes_per_context=1))
    again = build_benchmark(BenchmarkConfig(name="sine", contexts=5, classes_per_context=1))
    assert len(bench.contexts) == 5 and bench.input_shape == (1, 1, 1)
    for c, d in zip(bench.contexts, again.contexts, strict=True):
        assert torch.equal(c.x_train, d.x_train) and torch.equal(c.y_train, d.y_train)
        f, phase = sine_wave(c.index)
        clean = torch.sin(f * c.x_train.flatten() + phase)
        noise = (c.y_train - clean).std().item()
        assert 0.08 < noise < 0.12  # the training targets carry N(0, 0.1^2)
        assert torch.allclose(c.y_test, torch.sin(f * c.x_test.flatten() + phase))  # the test: the wave itself
        assert c.x_train.abs().max() <= math.pi


def test_r2_is_one_for_the_wave_zero_for_its_mean_and_negative_for_worse():
    view = ScenarioView("task", 1, 5, regression=True)
    y = torch.sin(torch.linspace(-3, 3, 200))
    outputs = torch.zeros(200, 5)

    def r2(prediction: torch.Tensor) -> float:
        outputs[:, 2] = prediction
        return view.score(view.tally(*view.eval_view(outputs, y, 2, 4)).tolist(), 200)

    assert r2(y) == pytest.approx(1.0)
    assert r2(torch.full_like(y, y.mean().item())) == pytest.approx(0.0, abs=1e-5)
    assert r2(-y) == pytest.approx(-3.0, abs=1e-4)  # SSE = 4 SST
    # mixed contexts in one batch: each sample is read off its own context's output
    ids = torch.tensor([0, 3, 4])
    logits = torch.arange(15.0).view(3, 5)
    assert view.train_view(logits, torch.zeros(3), 4, ids)[0].tolist() == [0.0, 8.0, 14.0]


@pytest.mark.parametrize(("overrides", "words"), [
    (["--scenario", "class"], ["scenario", "regression", "--scenario task"]),
    (["--method", "er"], ["method", "none, joint, cumulative"]),
    (["--method", "ewc"], ["method", "classification"]),
    (["--set", "benchmark.classes_per_context=2", "--set", "benchmark.contexts=2"], ["classes_per_context=1"]),
    (["--set", "model.kind=lenet5"], ["model.kind", "mlp"]),
    (["--set", "benchmark.augment=true"], ["benchmark.augment"]),
])
def test_a_setting_regression_cannot_do_is_one_line_and_exit_2_without_a_run_folder(tmp_path, overrides, words):
    result = cli(tmp_path, "run", "merge-sine", *overrides)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    for word in words:
        assert word in line, line
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # no failed run folder


def test_a_sine_run_learns_every_wave_and_says_r2_not_accuracy(tmp_path):
    result = cli(tmp_path, "run", "merge-sine", "--set", "train.iterations=300", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert "R² per context" in result.output and "final avg R²" in result.output
    assert "acc per context" not in result.output and "final avg acc" not in result.output
    record = read_record(next(p for p in tmp_path.iterdir() if p.name.endswith("-s0")))
    assert record.metrics["final_avg_acc"] > 0.85  # joint on all five waves, 1500 steps of a 16-16 MLP


def test_fine_tuning_one_wave_after_another_forgets_the_earlier_waves(tmp_path):
    """task-IL: each wave has its own output, yet the shared hidden layers drift; domain-IL: one output for
    five waves of the same inputs cannot hold more than the last."""
    task = train(tmp_path, 0, "train.iterations=300", method="none", scenario="task")
    matrix = task["acc_matrix"]
    assert matrix[0][0] > 0.8  # wave 0 learned ...
    assert matrix[-1][0] < matrix[0][0] - 0.2  # ... and forgotten after four more waves
    assert matrix[-1][-1] > 0.8
    domain = train(tmp_path, 0, "train.iterations=300", method="none", scenario="domain")
    assert domain["acc_matrix"][-1][-1] > 0.4 and domain["metrics"]["final_avg_acc"] < 0.2


def test_validation_holds_out_a_share_of_every_wave(tmp_path):
    record = train(tmp_path, 0, "train.iterations=200", "benchmark.validation=0.2", method="none")
    assert len(record["val_matrix"]) == 5 and all(len(row) == 5 for row in record["val_matrix"])
    assert record["val_matrix"][0][0] > 0.5  # wave 0's held-out noisy targets, right after learning it
    bench = build_benchmark(BenchmarkConfig(name="sine", contexts=5, classes_per_context=1, validation=0.2))
    assert all(c.n_train == 800 and c.x_val.shape[0] == 200 for c in bench.contexts)


@pytest.fixture(scope="module")
def halves(tmp_path_factory) -> tuple[Path, str, str]:
    runs = tmp_path_factory.mktemp("sine-runs")
    a = train(runs, 0, *TEACHER, "benchmark.learn_contexts=[0,1]")["id"]
    b = train(runs, 1, *TEACHER, "benchmark.learn_contexts=[2,3,4]")["id"]
    return runs, a, b


@pytest.mark.parametrize("approach", ["greedy", "l0"])
def test_teachers_of_disjoint_waves_merge_into_a_student_of_their_architecture_that_fits_all(halves, approach):
    runs, a, b = halves
    result = cli(runs, "merge", a, b, "--approach", approach, "--seed", "0",
                 "--set", "iterations=400", "--set", "finetune_iterations=300")
    assert result.exit_code == 0, result.output
    assert "→ student R² 0." in result.output, result.output
    newest = max((p for p in runs.iterdir() if "-merge-" in p.name), key=lambda p: p.stat().st_mtime)
    record = read_record(newest)
    teachers = record.merge.teachers
    # each teacher fits 2 or 3 of the 5 waves; its other outputs were never trained (R^2 near 0 or below)
    assert all(t.final_avg_acc < 0.62 for t in teachers), [t.final_avg_acc for t in teachers]
    student = record.metrics["final_avg_acc"]
    assert student > 0.8 and student > max(t.final_avg_acc for t in teachers) + 0.3, record.acc_matrix
    assert min(record.acc_matrix[-1]) > 0.5, record.acc_matrix  # every wave, not three of five
    state = torch.load(newest / "checkpoints" / "context-0.pt", weights_only=True)["model"]
    fresh = build_model("mlp", (1, 1, 1), 5, hidden=[16, 16])
    fresh.load_state_dict(state, strict=True)  # exactly the teachers' shape
    assert count_parameters(fresh) == sum(t.numel() for t in state.values())


@pytest.mark.anyio
async def test_the_tui_shows_a_sine_run_whose_forgotten_waves_are_far_below_zero(tmp_path, tui):
    """R^2 of a forgotten wave goes far below 0 (-9 on seed 0), which no accuracy does: the detail screen, its
    charts and the runs table draw it without a crash."""
    from textual.widgets import DataTable, TabbedContent

    from cltui.tui.screens.detail import DetailScreen
    from tests.helpers.tui import settle_workers

    record = train(tmp_path, 0, "train.iterations=300", method="none", scenario="task")
    assert min(record["acc_matrix"][-1]) < -1

    pilot = await tui.start(tmp_path, size=(120, 40))
    app = pilot.app
    table = app.screen.query_one(DataTable)
    assert table.row_count == 1
    await pilot.press("enter")
    await settle_workers(app)
    await pilot.pause()
    screen = app.screen
    screen.query_one(TabbedContent).active = "charts"
    await pilot.pause()
    await pilot.pause()

    assert (type(screen), str(screen.query_one(TabbedContent).active)) == (DetailScreen, "charts")
