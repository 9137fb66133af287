"""Continual evaluation (`train.eval_every`): the accuracy curve in run.json and in the events, its cost (no host
read per step), the stability gap and min-ACC, `cltui runs show`, and the live and detail charts.

Split digits with a few dozen iterations; the stability-gap preset at 100 iterations per context (~15 s).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app as cli_app
from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.widgets.charts import AverageChart, CurveChart, boundaries
from core import training
from core.files import write_json_atomic
from core.runs.events import ContextEvaluated, ContextStarted, CurveEvaluated, Progress, RunStarted
from core.runs.metrics import min_acc, stability_gap
from core.runs.record import new_run_record
from core.runs.store import append_event
from core.schema.presets import build_config


def run_in(folder: Path, preset: str, overrides: list[str], **options: Any) -> tuple[dict[str, Any], list[Any]]:
    folder.mkdir(parents=True)
    events: list[Any] = []
    record = training.run(build_config(preset, overrides=overrides, **options), folder, events.append)
    return record, events


@pytest.fixture(scope="module")
def every_step(tmp_path_factory):
    """Split digits, 3 contexts x 20 iterations, tested after every step, one report per context."""
    folder = tmp_path_factory.mktemp("every") / "run"
    record, events = run_in(folder, "split-digits", ["benchmark.contexts=3", "train.iterations=20",
                                                     "train.eval_every=1", "train.progress_interval=3600"],
                            scenario="class", method="none")
    return record, events, folder


@pytest.fixture(scope="module")
def gap_run(tmp_path_factory):
    """The stability-gap preset (rotated digits, domain-IL, incremental joint training), 100 it per context."""
    folder = tmp_path_factory.mktemp("gap") / "runs" / "20260101-090000-stability-gap-domain-cumulative-s0"
    record, _ = run_in(folder, "stability-gap", ["train.iterations=100"], seed=0)
    return record, folder


def test_the_curve_has_a_point_per_step_and_ends_each_context_at_its_matrix_row(every_step):
    record, _, folder = every_step
    assert record["status"] == "finished"
    curve = json.loads((folder / "run.json").read_text())["acc_curve"]
    assert [p[0] for p in curve] == list(range(61))  # the untrained network, then every step
    assert [p[1] for p in curve] == [0] * 21 + [1] * 20 + [2] * 20  # the context being trained
    assert all(len(p[2]) == 3 and all(0 <= a <= 1 for a in p[2]) for p in curve)
    for k, row in enumerate(record["acc_matrix"]):  # whole test sets (fewer than eval_samples): the same figures
        assert curve[20 * (k + 1)][2] == pytest.approx(row, abs=1e-4)
    assert curve[10][2][0] > 0.9 and curve[-1][2][0] < 0.2  # context 0 learned, then forgotten (class-IL, none)


def test_points_are_read_only_when_a_report_is_due(every_step):
    """60 evaluations, 3 reports (one per context): the points travel in 3 events, read from the device at the
    reports that read the loss anyway."""
    record, events, _ = every_step
    curves = [e for e in events if isinstance(e, CurveEvaluated)]
    reports = [e for e in events if isinstance(e, Progress) and e.phase == "train"]
    assert len(curves) == len(reports) == 3
    assert [len(e.iterations) for e in curves] == [21, 20, 20]
    assert [e.context for e in curves] == [0, 1, 2]
    assert [[it, e.context, accs] for e in curves for it, accs in zip(e.iterations, e.accuracies, strict=True)] \
        == [list(p) for p in record["acc_curve"]]


def test_a_fixed_subset_per_context(tmp_path):
    record, _ = run_in(tmp_path / "run", "split-digits", ["benchmark.contexts=2", "train.iterations=10",
                                                          "train.eval_every=5", "train.eval_samples=16"],
                       scenario="task", method="none")
    curve = record["acc_curve"]
    assert [p[0] for p in curve] == [0, 5, 10, 15, 20]
    assert all(round(a * 16, 3) == round(a * 16) for p in curve for a in p[2])  # hits out of 16 samples


def test_stability_gap_and_min_acc_of_a_curve():
    curve = [(0, 0, [0.1, 0.1]), (10, 0, [0.9, 0.1]), (20, 0, [0.95, 0.2]),  # boundary: c0 at 0.95
             (30, 1, [0.6, 0.5]), (40, 1, [0.8, 0.8]), (50, 1, [0.94, 0.9]), (60, 1, [0.9, 0.95])]
    gap = stability_gap(curve)
    assert gap["stability_gap"] == pytest.approx(0.35)
    assert (gap["stability_gap_context"], gap["stability_gap_stage"]) == (0, 1)
    assert gap["stability_gap_recovery"] == 30  # back within 0.035 of 0.95 at iteration 50
    assert min_acc(curve) == pytest.approx(0.6)
    assert stability_gap(curve[:3])["stability_gap"] is None  # one context: no boundary yet


def test_the_stability_gap_preset_shows_context_0_dipping_after_the_boundary(gap_run):
    record, _ = gap_run
    m = record["metrics"]
    assert record["status"] == "finished"
    assert record["config"]["method"]["name"] == "cumulative" and record["config"]["scenario"] == "domain"
    assert m["stability_gap_context"] == 0 and m["stability_gap"] >= 0.05
    assert m["stability_gap_stage"] in (1, 2)  # right after a boundary, with every context's data in each batch
    assert m["min_acc"] < record["acc_matrix"][-1][0]  # the worst point lies below where context 0 ends


def test_runs_show_prints_the_stability_gap(gap_run, monkeypatch):
    _, folder = gap_run
    monkeypatch.setenv("CLTUI_RUNS_DIR", str(folder.parent))
    result = CliRunner().invoke(cli_app, ["runs", "show", folder.name], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "stability gap" in result.stdout and "(c0 as c" in result.stdout and "min-ACC" in result.stdout
    assert "301 curve points" in result.stdout


def test_bad_eval_every_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("CLTUI_RUNS_DIR", str(tmp_path))
    result = CliRunner().invoke(cli_app, ["run", "split-digits", "--set", "train.eval_every=-5"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "train.eval_every" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


# --- the TUI ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_live_screen_draws_the_curve_with_the_boundaries(tmp_path, tui):
    runs_dir = tmp_path / "runs"
    run_dir = runs_dir / "20260101-120000-split-digits-class-none-s0"
    run_dir.mkdir(parents=True)
    config = build_config("split-digits", overrides=["benchmark.contexts=2", "train.eval_every=50"])
    record = new_run_record(run_dir.name, "split-digits", config.to_dict(), {})
    record["pid"] = os.getpid()
    write_json_atomic(run_dir / "run.json", record)

    pilot = await tui.start(runs_dir, size=(100, 30))
    app = pilot.app
    screen = LiveScreen(run_dir)
    app.push_screen(screen)
    await pilot.pause(0.2)
    assert not screen.query_one(CurveChart).display and screen.query_one(AverageChart).display
    for event in (RunStarted(run_id=run_dir.name, contexts=2, device="cpu", config={}, t=1.0),
                  ContextStarted(context=0, classes=[0, 1], iterations=300, t=1.0),
                  CurveEvaluated(context=0, iterations=[0, 50, 100], accuracies=[[0.5, 0.0], [0.9, 0.0],
                                                                                 [0.99, 0.0]], t=2.0),
                  ContextEvaluated(context=0, accuracies=[0.99, 0.0], train_s=1.0, final_loss=0.1, t=2.0),
                  ContextStarted(context=1, classes=[2, 3], iterations=300, t=2.0),
                  CurveEvaluated(context=1, iterations=[150], accuracies=[[0.4, 0.7]], t=3.0)):
        append_event(run_dir, event)
    chart = screen.query_one(CurveChart)
    for _ in range(100):
        if chart.curve and len(chart.curve) == 4:
            break
        await pilot.pause(0.05)
    assert chart.display and not screen.query_one(AverageChart).display
    assert boundaries(chart.curve) == [100]
    assert "c0" in str(chart.border_subtitle) and "c1" in str(chart.border_subtitle)


@pytest.mark.anyio
async def test_detail_charts_tab_draws_the_curve(gap_run, tmp_path, tui):
    _, folder = gap_run

    pilot = await tui.start(folder.parent, size=(120, 40))
    app = pilot.app
    screen = DetailScreen(folder)
    app.push_screen(screen)
    for _ in range(100):
        if screen.record is not None:
            break
        await pilot.pause(0.05)
    await pilot.press("2")
    await pilot.pause(0.2)
    chart = screen.query_one("#detail-curve", CurveChart)
    assert chart.display and len(chart.curve or []) == 301
    assert boundaries(chart.curve) == [100, 200]
    assert "stability gap" in str(screen.query_one("#summary").render())
