"""The run detail under Textual's Pilot: the metrics, the coloured matrix, the charts, config and log tabs of the
fixed runs (tests/helpers/fixed_runs.py) and of odd records; the training loss on the charts tab; `e` (clone into
compose) and `R` (resume) on the runs they apply to, doing nothing on the others; and a real cancelled run
resumed to the end. The e and R tests push the detail screen onto a bare home screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.detail import DetailScreen, resume_problem
from cltui.tui.screens.dreams import DreamGrid, DreamsScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.widgets.charts import AccuracyChart, AverageChart, LossChart
from core.runs.store import RunStore, append_event
from core.schema.presets import build_config
from tests.helpers.daily import pick
from tests.helpers.fixed_runs import ACC_EWC, IDS
from tests.helpers.tui import (
    BareApp,
    eventually,
    footer_keys,
    runs_rows,
    screen_text,
    select,
    settle,
    table_rows,
    text_of,
    tree_text,
    until,
)

pytestmark = pytest.mark.anyio


# --- the detail screen --------------------------------------------------------------------------------


async def open_detail(tui: Any, runs_dir: Path, run_id: str, size: tuple[int, int] = (100, 30)) -> Pilot:
    """The app on `runs_dir` with the detail of `run_id` opened from the runs table."""
    pilot = await tui.start(runs_dir, size=size)
    await select(pilot, run_id)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DetailScreen)
    return pilot


async def test_the_detail_shows_metrics_the_coloured_matrix_charts_and_config(fixed, runs_dir, tui):
    pilot = await open_detail(tui, runs_dir, IDS["finished"])
    app = pilot.app
    seen: dict[str, Any] = {"summary": text_of(app, "#summary")}
    matrix = app.screen.query_one("#matrix", DataTable)
    seen["columns"] = [str(c.label) for c in matrix.ordered_columns]
    seen["rows"] = [[str(c) for c in matrix.get_row_at(i)] for i in range(matrix.row_count)]
    seen["styles"] = [str(c.style) for c in matrix.get_row_at(4)[2:7]]
    seen["charts"] = [c.matrix for c in app.screen.query(AccuracyChart)]
    seen["average"] = [c.matrix for c in app.screen.query(AverageChart)]
    await pilot.press("2")
    seen["tab 2"] = app.screen.query_one(TabbedContent).active
    await pilot.press("3")
    seen["tab 3"] = app.screen.query_one(TabbedContent).active
    seen["config"] = app.screen.query_one("#config-text", Static).content.code
    await pilot.press("4")
    seen["tab 4"] = app.screen.query_one(TabbedContent).active
    seen["log"] = text_of(app, "#log-text")
    await pilot.press("1")
    seen["tab 1"] = app.screen.query_one(TabbedContent).active

    assert "final avg acc 63.2%" in seen["summary"] and "avg forgetting 44.0%" in seen["summary"]
    assert "ewc (lambda=1e9" in seen["summary"]
    assert seen["columns"] == ["after", "classes", "c0", "c1", "c2", "c3", "c4", "avg seen", "old", "new", "loss",
                               "train"]
    assert seen["rows"][4][:7] == ["c4", "8,9", "41.2", "49.8", "54.7", "72.2", "97.9"]
    assert seen["rows"][4][8:10] == ["54.5", "97.9"]  # class-IL: the old classes (c0-c3) and the new ones (c4)
    assert seen["rows"][0][3] == "0.0"  # a context not trained yet: shown, dimmed
    assert len(set(seen["styles"])) == 5  # one colour per accuracy level
    assert seen["charts"] == [ACC_EWC, ACC_EWC] and seen["average"] == [ACC_EWC, ACC_EWC]
    assert (seen["tab 1"], seen["tab 2"], seen["tab 3"], seen["tab 4"]) == ("overview", "charts", "config", "log")
    assert "[method]" in seen["config"] and 'name = "ewc"' in seen["config"]
    assert "lambda = 1000000000.0" in seen["config"]
    assert "worker pid 4242 started" in seen["log"]


async def test_the_detail_of_a_failed_run_shows_its_error_and_traceback(fixed, runs_dir, tui):
    pilot = await open_detail(tui, runs_dir, IDS["failed"])
    await pilot.press("4")

    summary, error = text_of(pilot.app, "#summary"), text_of(pilot.app, "#error")
    assert "failed: loss is nan in context 2 at iteration 117" in summary
    assert "failed: loss is nan" in error and "core.training.train.NonFiniteLoss" in error


async def test_at_80x24_the_overview_leaves_the_charts_to_their_tab(fixed, runs_dir, tui):
    pilot = await open_detail(tui, runs_dir, IDS["finished"], size=(80, 24))
    assert pilot.app.screen.query_one("#overview-charts").display is False
    pilot = await open_detail(tui, runs_dir, IDS["finished"], size=(100, 30))
    assert pilot.app.screen.query_one("#overview-charts").display is True


async def test_i_without_dreams_says_so(fixed, runs_dir, tui):
    pilot = await open_detail(tui, runs_dir, IDS["finished"])
    await pilot.press("i")
    await pilot.pause()

    screen, notes = type(pilot.app.screen), tui.notes
    assert screen is DetailScreen
    assert any("no dreams" in n for n in notes)


async def test_odd_run_json_files_do_not_crash_the_screens(runs_dir, tui):
    """A sparse but valid record opens on every screen; wrong types, a folder where run.json should be and a
    status that is not one are each one "unreadable" row that says why and never opens a screen."""
    sparse = {"schema": 1, "id": "20260101-000001-sparse", "status": "finished", "created": "2026-01-01T00:00:01",
              "preset": None, "config": {"method": {"name": "none"}}, "metrics": {"final_avg_acc": None, "bwt": None},
              "timing": {"total_s": None}, "acc_matrix": [], "error": None, "dreams": [{"context": 0}]}
    unreadable = {
        "20260101-000002-bare": {"schema": 1, "id": "20260101-000002-bare"},
        "20260101-000003-status": {"schema": 1, "id": "x", "status": 5},
        "20260101-000004-junk": {"schema": 1, "id": "20260101-000004-junk", "status": "failed", "config": [],
                                 "acc_matrix": [[0.5, "x"], None], "metrics": "??", "timing": []},
    }
    one_row = {**sparse, "id": "20260101-000000-one-row", "acc_matrix": [[1.0, 0.0]], "dreams": []}
    for record in (sparse, one_row):
        (runs_dir / record["id"]).mkdir()
        (runs_dir / record["id"] / "run.json").write_text(json.dumps(record))
    for name, record in unreadable.items():
        (runs_dir / name).mkdir()
        (runs_dir / name / "run.json").write_text(json.dumps(record))
    (runs_dir / "20260101-000005-folder" / "run.json").mkdir(parents=True)  # a folder where the file should be
    names = [*unreadable, "20260101-000005-folder"]

    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen: dict[str, Any] = {"rows": runs_rows(app)}
    await select(pilot, sparse["id"])
    await pilot.press("enter")
    await settle(pilot)
    seen["summary"] = text_of(app, "#summary")
    await pilot.press("2", "3", "4", "i")
    await settle(pilot)
    if isinstance(app.screen, DreamsScreen):
        seen["dreams"] = text_of(app, "#empty"), app.screen.query_one("#grid", DreamGrid).problem
        await pilot.press("escape")
    await pilot.press("escape")
    await pilot.pause()
    for name in names:
        await select(pilot, name)
        await pilot.press("enter")
        await settle(pilot)
        seen.setdefault("screens", []).append(type(app.screen))
    for name in [sparse["id"], one_row["id"], *names]:
        await select(pilot, name)
        await pilot.press("space")
    await pilot.press("c")
    await settle(pilot)
    seen["compare"] = table_rows(app, "#table")
    seen["notes"] = list(tui.notes)

    assert list(seen["rows"][sparse["id"]].values())[-3:] == ["finished", "–", "–"]
    assert sparse["id"] in seen["summary"]
    assert seen["dreams"][1] == "no grid image saved for this context"
    for name in names:
        assert seen["rows"][name]["status"] == "unreadable", seen["rows"][name]
    assert seen["screens"] == [RunsScreen] * len(names)  # an unreadable run says why instead of opening
    assert sum("unreadable" in n or "run.json" in n for n in seen["notes"]) >= len(names)
    runs = [key for key in seen["compare"] if not key.startswith("group:")]  # two none runs: a group row too
    assert len(runs) == 2  # the unreadable runs are left out, and the screen says so
    assert any(f"{len(names)} unreadable run(s) left out" in n for n in seen["notes"])


async def test_the_detail_charts_tab_plots_the_loss_or_says_there_is_none(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    seen = {}
    for name in ("finished", "baseline"):
        screen = DetailScreen(fixed[name])
        await app.push_screen(screen)
        await settle(pilot, 0.2)
        await pilot.press("2")
        await pilot.pause(0.2)
        chart = screen.query_one("#detail-loss", LossChart)
        seen[name] = (len(chart.points or []), str(chart.border_title))
        app.pop_screen()
        await pilot.pause()

    assert seen["finished"] == (15, "training loss")
    assert seen["baseline"][0] == 0 and "no training loss" in seen["baseline"][1]


async def test_brackets_read_each_chart_line_at_a_context(fixed, runs_dir, tui):
    """`]` / `[` move a cursor over the contexts (from the overview too: the Charts tab opens); the lines under
    the accuracy charts read each line's value there, the charts mark it, and it stops at the first and last."""
    from cltui.tui.widgets.charts import MatrixChart

    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    screen = DetailScreen(fixed["finished"])  # ewc, ACC_EWC
    await app.push_screen(screen)
    await settle(pilot, 0.2)

    def readouts() -> tuple[str, str]:
        """The two lines under the charts (each may wrap between its entries at 80 columns: joined again)."""
        return tuple(str(screen.query_one(f"#readout-{name}").render()).replace("\n", "  ")
                     for name in ("accuracy", "average"))

    await pilot.press("2")
    await pilot.pause(0.1)
    seen: dict[str, Any] = {"before": screen_text(app)}
    await pilot.press("1", "right_square_bracket")
    await pilot.pause(0.1)
    seen["tab"] = screen.query_one(TabbedContent).active
    seen["c0"] = readouts()
    await pilot.press("right_square_bracket", "right_square_bracket")
    await pilot.pause(0.1)
    seen["c2"] = readouts()
    seen["marks"] = [c.cursor for c in screen.query("#context-charts Chart").results(MatrixChart)]
    seen["c2 text"] = screen_text(app)
    await pilot.press(*["right_square_bracket"] * 5)
    await pilot.pause(0.1)
    seen["last"] = readouts()
    await pilot.press("left_square_bracket")
    await pilot.pause(0.1)
    seen["c3"] = readouts()

    assert "[ ] read each line at a context" in seen["before"] and "PgDn PgUp" in seen["before"]
    assert seen["tab"] == "charts"
    assert seen["c0"][0] == "after c0  ━ c0 99.8"
    assert seen["c0"][1] == "after c0  ━ avg acc seen 99.8"  # no forgetting after one context
    assert seen["c2"][0] == "after c2  ━ c0 70.2  ━ c1 75.4  ━ c2 97.2"
    assert "avg acc seen 80.9" in seen["c2"][1] and "avg forgetting 26.2" in seen["c2"][1]
    assert seen["marks"] == [3, 3]  # the vertical line at 3 contexts trained
    assert "━ c2 97.2" in seen["c2 text"] and "avg forgetting 26.2" in seen["c2 text"]  # whole at 80 columns
    assert seen["last"][0].startswith("after c4") and "━ c4 97.9" in seen["last"][0]
    assert seen["c3"][0].startswith("after c3")


# --- e and R ------------------------------------------------------------------------------------------


async def clone(tui: Any, runs_dir: Path, run: Path) -> tuple[set[str], type, Any, Any, dict[str, str]]:
    from textual.widgets import Input

    from cltui.tui.screens.compose import ComposeScreen

    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(DetailScreen(run))
    await settle(pilot, 0.2)
    keys = footer_keys(app)
    await pilot.press("e")
    await settle(pilot, 0.2)
    screen = app.screen
    values = {str(i.id): i.value for i in screen.query(Input)} if isinstance(screen, ComposeScreen) else {}
    return keys, type(screen), getattr(screen, "method", None), getattr(screen, "scenario", None), values


async def test_e_clones_the_run_into_the_compose_form(runs_dir, thirty, tui):
    from cltui.tui.screens.compose import ComposeScreen

    keys, kind, method, scenario, values = await clone(tui, runs_dir, pick(runs_dir, thirty, ("er",), 50, seed=2)[0])
    assert "clone" in keys
    assert kind is ComposeScreen
    assert (method, scenario) == ("er", "class")
    assert values.get("field-train-iterations") == "50"
    assert values.get("field-train-seed") == "2"


async def test_e_fills_in_the_method_parameters_too(runs_dir, fixed, tui):
    from core.schema.presets import toml_text

    _, _, method, scenario, values = await clone(tui, runs_dir, fixed["cancelled"])  # lwf, task-IL, seed 1
    assert (method, scenario) == ("lwf", "task")
    assert values.get("field-train-seed") == "1"
    _, _, method, _, values = await clone(tui, runs_dir, fixed["finished"])  # ewc with lambda 1e9, not the preset's
    assert method == "ewc"
    assert values.get("field-method-lambda") == toml_text(1e9)


async def test_e_and_r_do_nothing_on_an_unreadable_run(runs_dir, fixed, monkeypatch, tui):
    launched: list[Path] = []
    monkeypatch.setattr("cltui.tui.screens.detail.launch_resume", lambda run_dir: launched.append(run_dir))

    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(DetailScreen(fixed["corrupted"]))
    await settle(pilot, 0.2)
    keys = footer_keys(app)
    await pilot.press("e")
    await pilot.pause()
    after_e = type(app.screen)
    await pilot.press("R")
    await settle(pilot, 0.2)

    after_r = type(app.screen)
    assert "clone" not in keys and "resume" not in keys
    assert after_e is DetailScreen and after_r is DetailScreen
    assert launched == []


async def test_r_on_a_finished_run_only_says_it_is_finished(runs_dir, fixed, monkeypatch, tui):
    launched: list[Path] = []
    monkeypatch.setattr("cltui.tui.screens.detail.launch_resume", lambda run_dir: launched.append(run_dir))

    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(DetailScreen(fixed["finished"]))
    await settle(pilot, 0.2)
    keys = footer_keys(app)
    await pilot.press("R")
    await settle(pilot, 0.2)

    after, notes = type(app.screen), list(tui.notes)
    assert "resume" not in keys and "clone" in keys
    assert after is DetailScreen and launched == []
    assert any("finished" in n for n in notes)


async def test_r_resumes_a_cancelled_run_with_a_checkpoint_after_a_confirmation(runs_dir, fixed, monkeypatch, tui):
    folder = fixed["cancelled"]
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "context-2.pt").write_bytes(b"")
    launched: list[Path] = []
    monkeypatch.setattr("cltui.tui.screens.detail.launch_resume", lambda run_dir: launched.append(run_dir))

    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(DetailScreen(folder))
    await settle(pilot, 0.2)
    keys = footer_keys(app)
    await pilot.press("R")
    await pilot.pause()
    asked = type(app.screen)
    await pilot.press("escape")  # no: nothing starts
    await pilot.pause()
    nothing = list(launched)
    await pilot.press("R")
    await pilot.pause()
    await pilot.click("#yes") if app.screen.query("#yes") else await pilot.press("enter")
    await eventually(pilot, lambda: isinstance(app.screen, LiveScreen))

    launched_after, final = list(launched), type(app.screen)
    assert "resume" in keys
    assert asked is ConfirmScreen
    assert nothing == []
    assert launched_after == [folder]
    assert final is LiveScreen


def test_resume_problem_says_why_a_run_cannot_be_resumed(tmp_path, fixed):
    assert resume_problem(None, tmp_path) == "its run.json is unreadable"
    finished = json.loads((fixed["finished"] / "run.json").read_text())
    assert "finished" in (resume_problem(finished, fixed["finished"]) or "")
    cancelled = json.loads((fixed["cancelled"] / "run.json").read_text())
    assert "no checkpoint" in (resume_problem(cancelled, fixed["cancelled"]) or "")
    cancelled["acc_matrix"] = []
    assert resume_problem(cancelled, fixed["cancelled"]) is None  # nothing completed: it starts again


async def test_shift_r_on_a_cancelled_run_resumes_it_in_a_detached_worker_to_the_end(runs_dir, tui):
    """A real run stopped after its second context, resumed from the detail screen: the worker continues from
    the checkpoint in the same folder, the live screen follows it, and the contexts it had are kept."""
    from cltui.tui.screens.confirm import ConfirmScreen
    from cltui.tui.screens.detail import DetailScreen
    from cltui.tui.screens.live import LiveScreen
    from core import training
    from core.runs.record import read_run_json

    config = build_config("split-digits", device="cpu", overrides=["train.iterations=20"])
    folder = RunStore(runs_dir).new_run_dir_for(config)
    done: list = []
    def emit(event: Any) -> None:  # as a worker does: every event in events.jsonl too
        done.append(event)
        append_event(folder, event)

    stopped = training.run(config, folder, emit=emit,
                        should_stop=lambda: sum(type(e).__name__ == "ContextEvaluated" for e in done) >= 2)
    assert stopped["status"] == "cancelled" and len(stopped["acc_matrix"]) == 2
    seen: dict[str, Any] = {}

    pilot = await tui.start(runs_dir)
    app = pilot.app
    app.push_screen(DetailScreen(folder))
    await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, what="detail")
    await pilot.pause()
    await pilot.press("R")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
    await pilot.press("y")
    await until(pilot, lambda: isinstance(app.screen, LiveScreen), timeout=20, what="the live screen")
    live = app.screen
    seen["handle"] = app.launched.get(folder.name)
    # the old session's end is in events.jsonl too: the resumed session's RunStarted clears it
    await until(pilot, lambda: str(live.query_one("#outcome", Static).render()).startswith("✓ finished"),
                timeout=90, what="the end of the resumed run")
    seen["tree"] = tree_text(live)
    assert seen["handle"] is not None and seen["handle"].wait(10) == 0
    record = read_run_json(folder)
    assert all(f"✓ context {k}" in seen["tree"] for k in range(5)), seen["tree"]
    assert record["status"] == "finished" and len(record["acc_matrix"]) == 5
    assert record["acc_matrix"][:2] == stopped["acc_matrix"]  # the contexts it had are kept, not retrained
