"""The TUI's browsing side, driven by Textual's Pilot on fixed runs (tests/tui_fixtures.py): the Runs screen and
every key on it, the run detail, the dreams, the compare screen, the confirmations, and quitting with runs
still going. Also: the app never imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Group
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TabbedContent, Tabs

from cltui.tui.app import CltuiApp
from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.confirm import ChoiceScreen, ConfirmScreen
from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.dreams import DreamGrid, DreamsScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.widgets.charts import AccuracyChart, AverageChart, FinalAccuracyChart
from tests.tui_fixtures import ACC_EWC, IDS, drive, select, settle, write_fixture_runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(runs_dir: Path) -> dict[str, Path]:
    return write_fixture_runs(runs_dir)






async def until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 4.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await pilot.pause(0.1)
    return condition()


def table_rows(app: CltuiApp, selector: str = "#runs") -> dict[str, list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return {str(row.key.value): [str(c) for c in table.get_row(row.key)] for row in table.ordered_rows}


def runs_rows(app: CltuiApp) -> dict[str, dict[str, str]]:
    """run id -> {column: cell} of the runs table (the "run" cell may be shortened to fit the terminal)."""
    table = app.screen.query_one("#runs", DataTable)
    names = [str(c.label).rstrip(" ▲▼") or "mark" for c in table.ordered_columns]  # the sort arrow is not a name
    return {run_id: dict(zip(names, cells, strict=True)) for run_id, cells in table_rows(app).items()}




def text_of(app: CltuiApp, selector: str) -> str:
    content = app.screen.query_one(selector, Static).content
    if isinstance(content, Group):
        return "\n".join(str(getattr(r, "code", r)) for r in content.renderables)
    return str(content)


# --- the runs screen -------------------------------------------------------------------------------


def test_the_runs_table_shows_every_run_newest_first_and_a_corrupted_one_as_a_row(runs, runs_dir):
    async def script(app, pilot, notes):
        return (runs_rows(app), [str(r.key.value) for r in app.screen.query_one("#runs", DataTable).ordered_rows],
                text_of(app, "#preview"), app.screen.sub_title)

    rows, order, preview, subtitle = drive(runs_dir, script, size=(140, 30))
    assert order == sorted(IDS.values(), reverse=True)
    # the id's date and time; preset, method, scenario and seed have columns of their own
    assert rows[IDS["finished"]] == {"mark": " ", "run": "01-01 09:00", "preset": "split-digits", "method": "ewc",
                                     "scenario": "class", "seed": "0", "iters": "300", "overrides": "",
                                     "status": "finished", "acc %": f"{100 * sum(ACC_EWC[-1]) / 5:.1f}",
                                     "time": "9.8 s"}
    assert rows[IDS["dreams"]]["time"] == "3m 04s"
    assert rows[IDS["running"]]["status"] == "running 2/5"
    assert rows[IDS["running"]]["acc %"] == "95.8 seen"  # over the contexts it has seen, as the live screen
    assert rows[IDS["corrupted"]]["run"] == "01-01 12:00"
    assert rows[IDS["failed"]]["status"] == "failed 2/5"  # what it trained before it failed
    assert rows[IDS["failed"]]["acc %"].endswith(" seen")  # never averaged over contexts it never trained
    assert rows[IDS["corrupted"]]["status"] == "unreadable"
    assert rows[IDS["corrupted"]]["method"] == "–"
    # The cursor starts on the newest run (here the corrupted one): the preview says what is wrong with it.
    assert "unreadable JSON" in preview
    assert subtitle == f"7 runs in {runs_dir} · 1 running"


def test_at_80_columns_columns_drop_by_priority_and_ids_are_short(runs, runs_dir):
    async def script(app, pilot, notes):
        table = app.screen.query_one("#runs", DataTable)
        return [str(c.label) for c in table.ordered_columns], runs_rows(app)

    columns, rows = drive(runs_dir, script, size=(80, 24))
    assert columns == ["", "run ▼", "method", "seed", "iters", "status", "acc %"]  # dropped by priority, none cut
    assert rows[IDS["finished"]]["run"] == "01-01 09:00"
    assert (rows[IDS["finished"]]["status"], rows[IDS["finished"]]["acc %"]) == ("finished", "63.2")


def test_running_runs_update_live_and_new_runs_appear_without_a_key(runs, runs_dir):
    running = runs["running"] / "run.json"

    async def script(app, pilot, notes):
        seen = {}
        record = json.loads(running.read_text())
        record["acc_matrix"].append([0.9, 0.95, 0.97, 0.0, 0.0])
        running.write_text(json.dumps(record))
        seen["one more context"] = await until(pilot, lambda: runs_rows(app)[IDS["running"]]["status"] == "running 3/5")
        record["acc_matrix"] += [[0.5] * 5, [0.5] * 5]  # every context trained: its final average is 50.0
        record.update(status="finished", timing={"total_s": 12.0})
        running.write_text(json.dumps(record))
        # (at 100 columns the time column gives way to the longer statuses of runs that ended early)
        seen["finished"] = await until(pilot, lambda: [runs_rows(app)[IDS["running"]].get(c) for c in
                                                       ("status", "acc %", "time")] in (["finished", "50.0", "12.0 s"],
                                                                                         ["finished", "50.0", None]))
        shutil.copytree(runs["finished"], runs_dir / "20300101-000000-split-digits-class-ewc-s1")
        seen["new run"] = await until(pilot, lambda: "20300101-000000-split-digits-class-ewc-s1" in runs_rows(app))
        return seen

    assert drive(runs_dir, script) == {"one more context": True, "finished": True, "new run": True}


def test_a_running_run_whose_worker_is_gone_is_stale(runs, runs_dir):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    record = json.loads((runs["running"] / "run.json").read_text())
    record["pid"] = int(gone)
    (runs["running"] / "run.json").write_text(json.dumps(record))

    async def script(app, pilot, notes):
        await select(pilot, IDS["running"])
        return runs_rows(app)[IDS["running"]]["status"], text_of(app, "#preview")

    status, preview = drive(runs_dir, script)
    assert status == "stale 2/5"
    assert "worker is gone" in preview


def test_r_reloads_a_run_json_rewritten_in_place(runs, runs_dir):
    path = runs["baseline"] / "run.json"

    async def script(app, pilot, notes):
        app.screen.POLL_S = 3600  # only r brings the change in
        record = json.loads(path.read_text())
        record["acc_matrix"][-1] = [0.25] * 5  # the figures are computed from the matrix on reading
        path.write_text(json.dumps(record))
        await pilot.press("r")
        await settle(pilot)
        return runs_rows(app)[IDS["baseline"]]["acc %"]

    assert drive(runs_dir, script) == "25.0"


def test_enter_opens_the_detail_of_a_finished_run_and_escape_comes_back(runs, runs_dir):
    async def script(app, pilot, notes):
        await select(pilot, IDS["finished"])
        await pilot.press("enter")
        await settle(pilot)
        opened = type(app.screen)
        await pilot.press("escape")
        await pilot.pause()
        return opened, type(app.screen)

    assert drive(runs_dir, script) == (DetailScreen, RunsScreen)


def test_enter_on_an_unreadable_run_says_why_and_stays(runs, runs_dir):
    async def script(app, pilot, notes):
        await select(pilot, IDS["corrupted"])
        await pilot.press("enter")
        await pilot.pause()
        return type(app.screen), notes

    screen, notes = drive(runs_dir, script)
    assert screen is RunsScreen
    assert any("unreadable JSON" in n for n in notes)


def test_enter_on_a_running_run_follows_it_live(runs, runs_dir):
    pytest.importorskip("cltui.tui.screens.live")

    async def script(app, pilot, notes):
        await select(pilot, IDS["running"])
        await pilot.press("enter")
        await pilot.pause()
        return type(app.screen).__name__

    assert drive(runs_dir, script) == "LiveScreen"


def test_n_composes_a_new_run(runs, runs_dir):
    pytest.importorskip("cltui.tui.screens.compose")

    async def script(app, pilot, notes):
        await pilot.press("n")
        await pilot.pause()
        return type(app.screen).__name__

    assert drive(runs_dir, script) == "ComposeScreen"


def test_space_marks_runs_and_c_compares_them(runs, runs_dir):
    async def script(app, pilot, notes):
        seen: dict[str, Any] = {}
        await pilot.press("c")  # nothing marked yet
        seen["nothing marked"] = (type(app.screen), list(notes))
        await select(pilot, IDS["baseline"])
        await pilot.press("space")  # marks, and the cursor stays: space, down, space marks two neighbours
        await pilot.press("down")
        await pilot.press("space")
        seen["marks"] = {k: v["mark"] for k, v in runs_rows(app).items() if v["mark"].strip()}
        seen["subtitle"] = app.screen.sub_title
        await pilot.press("c")
        await settle(pilot)
        seen["screen"] = type(app.screen)
        seen["compared"] = table_rows(app, "#table")
        seen["bars"] = app.screen.query_one(FinalAccuracyChart).values
        await pilot.press("down", "enter")
        await settle(pilot)
        seen["opened"] = (type(app.screen), app.screen.run_dir.name)
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.pause()
        await select(pilot, IDS["finished"])
        await pilot.press("space")  # unmark
        seen["marks after"] = {k for k, v in runs_rows(app).items() if v["mark"].strip()}
        return seen

    seen = drive(runs_dir, script)
    assert seen["nothing marked"][0] is RunsScreen
    assert any("mark two runs" in n for n in seen["nothing marked"][1])
    assert seen["marks"] == {IDS["baseline"]: "●", IDS["finished"]: "●"}
    assert "2 marked" in seen["subtitle"]
    assert seen["screen"] is CompareScreen
    assert [row[0] for row in seen["compared"].values()] == ["ewc s0", "none s0"]  # oldest first, by method, seed
    assert [(label, value) for label, value, *_ in seen["bars"]] == [
        ("ewc s0", pytest.approx(sum(ACC_EWC[-1]) / 5, abs=1e-6)), ("none s0", pytest.approx(0.1972, abs=1e-6))]
    assert seen["opened"] == (DetailScreen, IDS["baseline"])
    assert seen["marks after"] == {IDS["baseline"]}


def test_d_deletes_a_run_only_after_a_confirmation(runs, runs_dir):
    async def script(app, pilot, notes):
        seen: dict[str, Any] = {}
        await select(pilot, IDS["baseline"])
        await pilot.press("d")
        seen["asked"] = isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        seen["after no"] = runs["baseline"].exists()
        await pilot.press("d")
        await pilot.press("escape")
        await pilot.pause()
        seen["after escape"] = runs["baseline"].exists()
        await pilot.press("d")
        await pilot.press("y")
        await settle(pilot)
        await settle(pilot)
        seen["after yes"] = runs["baseline"].exists()
        seen["rows"] = set(runs_rows(app))
        return seen

    seen = drive(runs_dir, script)
    assert seen["asked"] and seen["after no"] and seen["after escape"]
    assert seen["after yes"] is False
    assert IDS["baseline"] not in seen["rows"] and len(seen["rows"]) == 6


def test_d_does_not_delete_a_running_run(runs, runs_dir):
    async def script(app, pilot, notes):
        await select(pilot, IDS["running"])
        await pilot.press("d")
        await pilot.pause()
        return type(app.screen), notes

    screen, notes = drive(runs_dir, script)
    assert screen is RunsScreen
    assert any("still running" in n for n in notes)
    assert runs["running"].exists()


def test_d_deletes_an_unreadable_run_too(runs, runs_dir):
    async def script(app, pilot, notes):
        await select(pilot, IDS["corrupted"])
        await pilot.press("d", "y")
        await settle(pilot)
        await settle(pilot)
        return set(runs_rows(app))

    assert IDS["corrupted"] not in drive(runs_dir, script)
    assert not runs["corrupted"].exists()


def test_slash_filters_the_runs_and_escape_clears_the_filter(runs, runs_dir):
    async def script(app, pilot, notes):
        seen: dict[str, Any] = {}
        await pilot.press("slash")
        seen["input focused"] = isinstance(app.focused, Input)
        await pilot.press(*"ewc")
        seen["ewc"] = set(runs_rows(app))
        await pilot.press("enter")  # back to the table; the filter stays
        seen["table focused"] = isinstance(app.focused, DataTable)
        seen["subtitle"] = app.screen.sub_title
        await pilot.press("slash", *"x", "backspace", "backspace", "backspace", "backspace", *"failed")
        seen["failed"] = set(runs_rows(app))
        await pilot.press("escape")
        await pilot.pause()
        seen["cleared"] = len(runs_rows(app))
        return seen

    seen = drive(runs_dir, script)
    assert seen["input focused"] and seen["table focused"]
    assert seen["ewc"] == {IDS["finished"]}
    assert "1 match “ewc”" in seen["subtitle"]
    assert seen["failed"] == {IDS["failed"]}
    assert seen["cleared"] == 7


def test_q_quits(runs, runs_dir):
    async def script(app, pilot, notes):
        await pilot.press("q")
        await pilot.pause()
        return app.is_running

    assert drive(runs_dir, script) is False


class FakeHandle:
    """What core.launch.worker.start_detached returns, as far as the app needs it."""

    def __init__(self, run_id: str):
        self.run_id, self.pid, self.stopped = run_id, None, False

    def alive(self) -> bool:
        return not self.stopped

    def stop(self, timeout: float = 30) -> None:
        self.stopped = True


def test_quitting_with_a_launched_run_asks_whether_to_stop_it(runs, runs_dir):
    async def script(app, pilot, notes):
        seen: dict[str, Any] = {}
        handle = FakeHandle(IDS["running"])
        app.launched[handle.run_id] = handle
        await pilot.press("q")
        await pilot.pause()
        seen["asked"] = isinstance(app.screen, ChoiceScreen)
        await pilot.press("c")  # cancel
        await pilot.pause()
        seen["after cancel"] = (app.is_running, handle.stopped)
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("s")  # stop them
        await settle(pilot)
        seen["after stop"] = (app.is_running, handle.stopped)
        return seen

    seen = drive(runs_dir, script)
    assert seen["asked"]
    assert seen["after cancel"] == (True, False)
    assert seen["after stop"] == (False, True)


def test_quitting_can_leave_a_launched_run_running(runs, runs_dir):
    async def script(app, pilot, notes):
        handle = FakeHandle(IDS["running"])
        app.launched[handle.run_id] = handle
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("enter")  # the default answer: leave it running
        await pilot.pause()
        return app.is_running, handle.stopped

    assert drive(runs_dir, script) == (False, False)


def test_an_empty_or_missing_runs_dir_says_how_to_start(tmp_path):
    async def script(app, pilot, notes):
        return runs_rows(app), text_of(app, "#preview")

    rows, preview = drive(tmp_path / "nothing-here", script)
    assert rows == {}
    assert "press n to compose one" in preview


def test_a_real_run_shows_in_the_table_and_its_detail(runs_dir, tiny):
    """The fixtures are written by hand; this run is written by the training loop itself, so a change in the
    real run.json format that the screens do not follow fails here."""
    from core import training
    from core.runs.store import RunStore
    from core.schema.presets import build_config

    folder = RunStore(runs_dir).new_run_dir("split-digits-class-none-s0")
    record = training.run(build_config("split-digits", overrides=list(tiny)), folder)
    assert record["status"] == "finished"

    async def script(app, pilot, notes):
        row = runs_rows(app)[folder.name]
        await pilot.press("enter")
        await settle(pilot)
        matrix = app.screen.query_one("#matrix", DataTable)
        return row, text_of(app, "#summary"), matrix.row_count, app.screen.query(AccuracyChart).first().matrix

    row, summary, matrix_rows, chart = drive(runs_dir, script, size=(140, 30))
    assert (row["preset"], row["method"], row["scenario"], row["status"]) == (
        "split-digits", "none", "class", "finished"
    )
    assert row["acc %"] == f"{100 * record['metrics']['final_avg_acc']:.1f}"
    assert f"final avg acc {100 * record['metrics']['final_avg_acc']:.1f}%" in summary
    assert matrix_rows == 5
    assert chart == record["acc_matrix"]


# --- run detail ---------------------------------------------------------------------------------------


def open_detail(runs_dir: Path, run_id: str, script: Callable[[CltuiApp, Pilot, list[str]], Awaitable[Any]],
                size: tuple[int, int] = (100, 30)) -> Any:
    async def opened(app, pilot, notes):
        await select(pilot, run_id)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        return await script(app, pilot, notes)

    return drive(runs_dir, opened, size)


def test_the_detail_shows_metrics_the_coloured_matrix_charts_and_config(runs, runs_dir):
    async def script(app, pilot, notes):
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
        return seen

    seen = open_detail(runs_dir, IDS["finished"], script)
    assert "final avg acc 63.2%" in seen["summary"] and "avg forgetting 44.0%" in seen["summary"]
    assert "ewc (lambda=1e9" in seen["summary"]
    assert seen["columns"] == ["after", "classes", "c0", "c1", "c2", "c3", "c4", "avg seen", "loss", "train"]
    assert seen["rows"][4][:7] == ["c4", "8,9", "41.2", "49.8", "54.7", "72.2", "97.9"]
    assert seen["rows"][0][3] == "0.0"  # a context not trained yet: shown, dimmed
    assert len(set(seen["styles"])) == 5  # one colour per accuracy level
    assert seen["charts"] == [ACC_EWC, ACC_EWC] and seen["average"] == [ACC_EWC, ACC_EWC]
    assert (seen["tab 1"], seen["tab 2"], seen["tab 3"], seen["tab 4"]) == ("overview", "charts", "config", "log")
    assert "[method]" in seen["config"] and 'name = "ewc"' in seen["config"]
    assert "lambda = 1000000000.0" in seen["config"]
    assert "worker pid 4242 started" in seen["log"]


def test_the_detail_of_a_failed_run_shows_its_error_and_traceback(runs, runs_dir):
    async def script(app, pilot, notes):
        await pilot.press("4")
        return text_of(app, "#summary"), text_of(app, "#error")

    summary, error = open_detail(runs_dir, IDS["failed"], script)
    assert "failed: loss is nan in context 2 at iteration 117" in summary
    assert "failed: loss is nan" in error and "core.training.train.NonFiniteLoss" in error


def test_at_80x24_the_overview_leaves_the_charts_to_their_tab(runs, runs_dir):
    async def script(app, pilot, notes):
        return app.screen.query_one("#overview-charts").display

    assert open_detail(runs_dir, IDS["finished"], script, size=(80, 24)) is False
    assert open_detail(runs_dir, IDS["finished"], script, size=(100, 30)) is True


def test_i_without_dreams_says_so(runs, runs_dir):
    async def script(app, pilot, notes):
        await pilot.press("i")
        await pilot.pause()
        return type(app.screen), notes

    screen, notes = open_detail(runs_dir, IDS["finished"], script)
    assert screen is DetailScreen
    assert any("no dreams" in n for n in notes)


def test_odd_run_json_files_do_not_crash_the_screens(runs_dir):
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

    async def script(app, pilot, notes):
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
        seen["notes"] = list(notes)
        return seen

    seen = drive(runs_dir, script)
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


# --- dreams ---------------------------------------------------------------------------------------------


def test_the_dreams_screen_shows_each_context_grid_quality_and_latent_map(runs, runs_dir):
    async def script(app, pilot, notes):
        seen: dict[str, Any] = {}
        await select(pilot, IDS["dreams"])
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        screen = app.screen
        seen["screen"] = type(screen)
        tabs = screen.query_one(Tabs)
        seen["tabs"] = [str(t.label) for t in tabs.query("Tab")]
        grid = screen.query_one("#grid", DreamGrid)
        title = str(screen.query_one("#grid-pane").border_title)
        seen["c0"] = (tabs.active, grid.picture.image.size, grid.size.width, title)
        await pilot.press("right_square_bracket")
        await pilot.pause()
        seen["c1 quality"] = screen.query_one("#quality", Static).content.columns[1]._cells
        seen["c1 latent"] = screen.query_one("#latent").class_ids
        await pilot.press("plus")  # from the fit (under 1x: 4 classes fill the pane's height) to 1x
        await pilot.pause()
        seen["zoomed"] = (grid.zoom, grid.size.width, grid.size.height)
        await pilot.press("plus", "minus", "minus")
        seen["zoomed out"] = grid.zoom
        await pilot.press("plus", "plus", "0")
        await pilot.pause()
        seen["fit"] = grid.zoom
        await pilot.press("escape")
        seen["back"] = type(app.screen)
        return seen

    seen = drive(runs_dir, script)
    assert seen["screen"] is DreamsScreen
    assert seen["tabs"] == ["context 0", "context 1", "context 2", "context 3"]
    assert seen["c0"][0] == "context-0" and seen["c0"][1] == (78, 18)
    assert seen["c0"][2] >= 78  # a grid this size is drawn at full resolution, one pixel per half cell
    assert "classes 0,1" in seen["c0"][3]
    assert seen["c1 quality"][:3] == ["32", "97.0%", "71.0%"]
    assert seen["c1 latent"] == [0, 1, 2, 3]
    zoom, width, rows = seen["zoomed"]
    assert (zoom, rows) == (1, 18) and width >= 78  # 78x36 px, 1 px per half cell: 18 rows, the labels beside
    assert seen["zoomed out"] == 0  # plus to 2x, minus to 1x, minus to the fit: and no further
    assert seen["fit"] == 0
    assert seen["back"] is DetailScreen


# --- confirm screens ------------------------------------------------------------------------------------


def test_confirm_screen_answers_and_a_dangerous_one_defaults_to_no(runs, runs_dir):
    async def script(app, pilot, notes):
        answers: list[Any] = []
        app.push_screen(ConfirmScreen("Delete?", danger=True), answers.append)
        await pilot.pause()
        await pilot.press("enter")  # the focus is on Cancel
        app.push_screen(ConfirmScreen("Stop?"), answers.append)
        await pilot.pause()
        await pilot.press("enter")  # the focus is on Yes
        app.push_screen(ChoiceScreen("Which?", [("a", "First", "f"), ("b", "Second", "g")]), answers.append)
        await pilot.pause()
        await pilot.press("g")
        app.push_screen(ChoiceScreen("Which?", [("a", "First", "f")]), answers.append)
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        return answers

    assert drive(runs_dir, script) == [False, True, "b", None]


# --- charts -------------------------------------------------------------------------------------------


def test_charts_draw_nothing_for_an_empty_matrix_and_redraw_only_on_new_data(runs_dir):
    async def script(app, pilot, notes):
        screen = DetailScreen(runs_dir / "none")
        await app.push_screen(screen)
        await settle(pilot)
        chart = screen.query(AccuracyChart).first()
        seen = {"empty": (chart.border_title, chart.version)}
        chart.set_matrix([[0.9, 0.1]])
        version = chart.version
        chart.set_matrix([[0.9, 0.1]])  # the same data again: nothing to do
        seen["same"] = chart.version == version
        chart.set_matrix([[0.9, 0.1], [0.5, 0.8]])  # a row appended live
        seen["appended"] = chart.version == version + 1
        chart.set_matrix([])
        seen["emptied"] = chart.border_title
        return seen

    seen = drive(runs_dir, script)
    assert seen["empty"][0] == "no context evaluated yet"
    assert seen["same"] and seen["appended"]
    assert seen["emptied"] == "no context evaluated yet"


# --- no torch ----------------------------------------------------------------------------------------


def test_the_app_never_imports_torch(runs, runs_dir):
    # The test process may have torch loaded already; a fresh interpreter shows what the app itself imports.
    code = f"""
import asyncio, sys
from cltui.app import create_app

async def main():
    app = create_app({str(runs_dir)!r})
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#runs")
        print("rows", table.row_count)
        table.move_cursor(row=table.get_row_index({IDS["dreams"]!r}))
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.press("2", "i")
        await app.workers.wait_for_complete()
        await pilot.pause()
        print("screen", type(app.screen).__name__)
        await pilot.press("escape", "escape", "q")

asyncio.run(main())
print("torch", "torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "rows 7" in result.stdout
    assert "screen DreamsScreen" in result.stdout
    assert "torch False" in result.stdout

