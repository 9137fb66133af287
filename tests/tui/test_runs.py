"""The Runs screen under Textual's Pilot, on the fixed runs of tests/helpers/fixed_runs.py: every run in the table
(a corrupted one as a row), live updates, every key on it (enter, n, space and c, d, /, r, q), quitting with runs
still going; the confirmation dialogs; and the app itself: a title update that finds no header is no crash, and
the app never imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.confirm import ChoiceScreen, ConfirmScreen
from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.widgets.charts import AccuracyChart, FinalAccuracyChart
from tests.helpers.fixed_runs import ACC_EWC, IDS
from tests.helpers.tui import eventually, runs_rows, select, settle, table_rows, text_of

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


# --- the runs screen ----------------------------------------------------------------------------------


async def test_the_runs_table_shows_every_run_newest_first_and_a_corrupted_one_as_a_row(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(140, 30))
    app = pilot.app
    rows, order, preview, subtitle = (runs_rows(app),
                                      [str(r.key.value) for r in app.screen.query_one("#runs", DataTable).ordered_rows],
                                      text_of(app, "#preview"), app.screen.sub_title)
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


async def test_at_80_columns_columns_drop_by_priority_and_ids_are_short(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    table = app.screen.query_one("#runs", DataTable)

    columns, rows = [str(c.label) for c in table.ordered_columns], runs_rows(app)
    # one value in every run (preset, iterations) goes first, then the time, the status's width (cancelled 3/5
    # -> cancelled), the seed; the scenario tells the cancelled task-IL run apart and stays; none cut
    assert columns == ["", "run ▼", "method", "scenario", "overrides", "status", "acc %"]
    assert rows[IDS["cancelled"]]["status"] == "cancelled"
    assert rows[IDS["finished"]]["run"] == "01-01 09:00"
    assert (rows[IDS["finished"]]["status"], rows[IDS["finished"]]["acc %"]) == ("finished", "63.2")


async def test_running_runs_update_live_and_new_runs_appear_without_a_key(fixed, runs_dir, tui):
    running = fixed["running"] / "run.json"

    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen = {}
    record = json.loads(running.read_text())
    record["acc_matrix"].append([0.9, 0.95, 0.97, 0.0, 0.0])
    running.write_text(json.dumps(record))
    seen["one more context"] = await eventually(pilot,
                                                     lambda: runs_rows(app)[IDS["running"]]["status"] == "running 3/5")
    record["acc_matrix"] += [[0.5] * 5, [0.5] * 5]  # every context trained: its final average is 50.0
    record.update(status="finished", timing={"total_s": 12.0})
    running.write_text(json.dumps(record))
    # (at 100 columns the time column gives way to the longer statuses of runs that ended early)
    seen["finished"] = await eventually(pilot, lambda: [runs_rows(app)[IDS["running"]].get(c) for c in
                                                        ("status", "acc %", "time")] in (["finished", "50.0", "12.0 s"],
                                                                                          ["finished", "50.0", None]))
    shutil.copytree(fixed["finished"], runs_dir / "20300101-000000-split-digits-class-ewc-s1")
    seen["new run"] = await eventually(pilot, lambda: "20300101-000000-split-digits-class-ewc-s1" in runs_rows(app))

    assert seen == {"one more context": True, "finished": True, "new run": True}


async def test_a_running_run_whose_worker_is_gone_is_stale(fixed, runs_dir, tui):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    record = json.loads((fixed["running"] / "run.json").read_text())
    record["pid"] = int(gone)
    (fixed["running"] / "run.json").write_text(json.dumps(record))

    pilot = await tui.start(runs_dir)
    app = pilot.app
    await select(pilot, IDS["running"])

    status, preview = runs_rows(app)[IDS["running"]]["status"], text_of(app, "#preview")
    assert status == "stale 2/5"
    assert "worker is gone" in preview


async def test_r_reloads_a_run_json_rewritten_in_place(fixed, runs_dir, tui):
    path = fixed["baseline"] / "run.json"

    pilot = await tui.start(runs_dir)
    app = pilot.app
    app.screen.POLL_S = 3600  # only r brings the change in
    record = json.loads(path.read_text())
    record["acc_matrix"][-1] = [0.25] * 5  # the figures are computed from the matrix on reading
    path.write_text(json.dumps(record))
    await pilot.press("r")
    await settle(pilot)

    assert runs_rows(app)[IDS["baseline"]]["acc %"] == "25.0"


async def test_enter_opens_the_detail_of_a_finished_run_and_escape_comes_back(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await select(pilot, IDS["finished"])
    await pilot.press("enter")
    await settle(pilot)
    opened = type(app.screen)
    await pilot.press("escape")
    await pilot.pause()

    assert (opened, type(app.screen)) == (DetailScreen, RunsScreen)


async def test_enter_on_an_unreadable_run_says_why_and_stays(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await select(pilot, IDS["corrupted"])
    await pilot.press("enter")
    await pilot.pause()

    screen, notes = type(app.screen), tui.notes
    assert screen is RunsScreen
    assert any("unreadable JSON" in n for n in notes)


async def test_enter_on_a_running_run_follows_it_live(fixed, runs_dir, tui):
    pytest.importorskip("cltui.tui.screens.live")

    pilot = await tui.start(runs_dir)
    app = pilot.app
    await select(pilot, IDS["running"])
    await pilot.press("enter")
    await pilot.pause()

    assert type(app.screen).__name__ == "LiveScreen"


async def test_n_composes_a_new_run(fixed, runs_dir, tui):
    pytest.importorskip("cltui.tui.screens.compose")

    pilot = await tui.start(runs_dir)
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()

    assert type(app.screen).__name__ == "ComposeScreen"


async def test_space_marks_runs_and_c_compares_them(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen: dict[str, Any] = {}
    await pilot.press("c")  # nothing marked yet
    seen["nothing marked"] = (type(app.screen), list(tui.notes))
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


async def test_d_deletes_a_run_only_after_a_confirmation(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen: dict[str, Any] = {}
    await select(pilot, IDS["baseline"])
    await pilot.press("d")
    seen["asked"] = isinstance(app.screen, ConfirmScreen)
    await pilot.press("n")
    await pilot.pause()
    seen["after no"] = fixed["baseline"].exists()
    await pilot.press("d")
    await pilot.press("escape")
    await pilot.pause()
    seen["after escape"] = fixed["baseline"].exists()
    await pilot.press("d")
    await pilot.press("y")
    await settle(pilot)
    await settle(pilot)
    seen["after yes"] = fixed["baseline"].exists()
    seen["rows"] = set(runs_rows(app))

    assert seen["asked"] and seen["after no"] and seen["after escape"]
    assert seen["after yes"] is False
    assert IDS["baseline"] not in seen["rows"] and len(seen["rows"]) == 6


async def test_d_does_not_delete_a_running_run(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await select(pilot, IDS["running"])
    await pilot.press("d")
    await pilot.pause()

    screen, notes = type(app.screen), tui.notes
    assert screen is RunsScreen
    assert any("still running" in n for n in notes)
    assert fixed["running"].exists()


async def test_d_deletes_an_unreadable_run_too(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await select(pilot, IDS["corrupted"])
    await pilot.press("d", "y")
    await settle(pilot)
    await settle(pilot)

    assert IDS["corrupted"] not in set(runs_rows(app))
    assert not fixed["corrupted"].exists()


async def test_slash_filters_the_runs_and_escape_clears_the_filter(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
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

    assert seen["input focused"] and seen["table focused"]
    assert seen["ewc"] == {IDS["finished"]}
    assert "1 match “ewc”" in seen["subtitle"]
    assert seen["failed"] == {IDS["failed"]}
    assert seen["cleared"] == 7


async def test_q_quits(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await pilot.press("q")
    await pilot.pause()

    assert app.is_running is False


class FakeHandle:
    """What core.launch.worker.start_detached returns, as far as the app needs it."""

    def __init__(self, run_id: str):
        self.run_id, self.pid, self.stopped = run_id, None, False

    def alive(self) -> bool:
        return not self.stopped

    def stop(self, timeout: float = 30) -> None:
        self.stopped = True


async def test_quitting_with_a_launched_run_asks_whether_to_stop_it(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
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

    assert seen["asked"]
    assert seen["after cancel"] == (True, False)
    assert seen["after stop"] == (False, True)


async def test_quitting_can_leave_a_launched_run_running(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    handle = FakeHandle(IDS["running"])
    app.launched[handle.run_id] = handle
    await pilot.press("q")
    await pilot.pause()
    await pilot.press("enter")  # the default answer: leave it running
    await pilot.pause()

    assert (app.is_running, handle.stopped) == (False, False)


async def test_an_empty_or_missing_runs_dir_says_how_to_start(tmp_path, tui):
    pilot = await tui.start(tmp_path / "nothing-here")
    app = pilot.app
    rows, preview = runs_rows(app), text_of(app, "#preview")
    assert rows == {}
    assert "press n to compose one" in preview


async def test_a_real_run_shows_in_the_table_and_its_detail(runs_dir, tiny, tui):
    """The fixtures are written by hand; this run is written by the training loop itself, so a change in the
    real run.json format that the screens do not follow fails here."""
    from core import training
    from core.runs.store import RunStore
    from core.schema.presets import build_config

    folder = RunStore(runs_dir).new_run_dir("split-digits-class-none-s0")
    record = training.run(build_config("split-digits", overrides=list(tiny)), folder)
    assert record["status"] == "finished"

    pilot = await tui.start(runs_dir, size=(140, 30))
    app = pilot.app
    row = runs_rows(app)[folder.name]
    await pilot.press("enter")
    await settle(pilot)
    matrix = app.screen.query_one("#matrix", DataTable)
    summary, matrix_rows = text_of(app, "#summary"), matrix.row_count
    chart = app.screen.query(AccuracyChart).first().matrix

    assert (row["preset"], row["method"], row["scenario"], row["status"]) == (
        "split-digits", "none", "class", "finished"
    )
    assert row["acc %"] == f"{100 * record['metrics']['final_avg_acc']:.1f}"
    assert f"final avg acc {100 * record['metrics']['final_avg_acc']:.1f}%" in summary
    assert matrix_rows == 5
    assert chart == record["acc_matrix"]


# --- confirm screens ----------------------------------------------------------------------------------


async def test_confirm_screen_answers_and_a_dangerous_one_defaults_to_no(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
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

    assert answers == [False, True, "b", None]


# --- the app ------------------------------------------------------------------------------------------


async def test_a_title_change_after_the_header_lost_its_title_is_not_a_crash(runs_dir, tui):
    """CI once failed with NoMatches from Textual's Header: a title update queued as the screen switched ran
    after the Header's children were gone. The screens' Header skips that update."""
    from textual.widgets import Header
    from textual.widgets._header import HeaderTitle

    pilot = await tui.start(runs_dir)
    app = pilot.app
    header = app.screen.query_one(Header)
    await header.query_one(HeaderTitle).remove()
    app.screen.sub_title = "a title with nowhere to go"
    await pilot.pause()
    assert app.screen.query_one(Header) is header  # the app is still up, the header in place


def test_the_app_never_imports_torch(fixed, runs_dir):
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
