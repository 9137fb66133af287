"""The Studies screen under Textual's Pilot, on the runs folder of tests/helpers/daily.py (30 runs and a study
over the 50-iteration ones): every study with its overrides, the highlighted study's mean ± SEM table, its
progress while it runs (followed by the poller), `enter` / `c` opening the compare view of its finished runs,
and the keys doing nothing where they do not apply (an unreadable study, no study at all)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from cltui.tui.app import CltuiApp
from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.studies import StudiesScreen
from tests.helpers.daily import STUDY_ID, write_thirty_runs
from tests.helpers.studies import RUNNING_ID, add_running_study
from tests.helpers.tui import eventually, screen_text, settle

pytestmark = pytest.mark.anyio


async def open_studies(tui: Any, runs_dir: Path, size: tuple[int, int] = (100, 30)) -> Pilot:
    """The app on `runs_dir` with the Studies screen pushed and loaded."""
    pilot = await tui.start(runs_dir, size=size, screen=StudiesScreen())
    # the first scan is a thread worker; on a loaded machine its message can land after the settle
    assert await eventually(pilot, lambda: getattr(pilot.app.screen, "loaded", False)), "the studies never loaded"
    await settle(pilot)
    return pilot


def rows(app: CltuiApp, selector: str) -> dict[str, dict[str, str]]:
    table = app.screen.query_one(selector, DataTable)
    keys = [str(c.key.value) for c in table.ordered_columns]
    return {str(row.key.value): dict(zip(keys, map(str, table.get_row(row.key)), strict=True))
            for row in table.ordered_rows}


def settings(app: CltuiApp) -> str:
    return str(app.screen.query_one("#settings", Static).render())


@pytest.fixture
def daily(runs_dir: Path) -> tuple[list[str], str]:
    return write_thirty_runs(runs_dir)


async def test_the_studies_list_shows_each_study_with_its_overrides_and_the_table(runs_dir, daily, tui):
    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    assert isinstance(app.screen, StudiesScreen)
    listed = rows(app, "#studies")
    assert list(listed) == [STUDY_ID]
    row = listed[STUDY_ID]
    assert row["overrides"] == "train.iterations=50" and row["runs"] == "15/15" and row["status"] == "finished"
    assert "train.iterations=50" in settings(app) and "15/15 finished" in settings(app)
    table = rows(app, "#table")
    assert list(table) == ["none", "ewc", "si", "lwf", "er"]
    assert table["er"]["n"] == "3/3" and table["er"]["final acc %"] == "85.2 ± 0.6"
    assert table["none"]["BWT"].startswith("-88.4 ±")
    assert "paper %" not in table["er"]  # no published figure for split-digits
    assert "1 study" in app.screen.sub_title


async def test_a_published_figure_stands_beside_the_mean(runs_dir, daily, tui):
    study = json.loads((runs_dir / "studies" / f"{STUDY_ID}.json").read_text())
    study.update(id="20260104-000000-split-mnist-class", preset="split-mnist")
    (runs_dir / "studies" / "20260104-000000-split-mnist-class.json").write_text(json.dumps(study))

    pilot = await open_studies(tui, runs_dir, size=(80, 24))
    app = pilot.app
    assert list(rows(app, "#studies")) == ["20260104-000000-split-mnist-class", STUDY_ID]  # newest first
    table = rows(app, "#table")
    assert table["er"]["paper %"] == "89" and table["none"]["paper %"] == "20"
    await pilot.press("down")
    await pilot.pause()
    assert "paper %" not in rows(app, "#table")["er"]  # the highlighted study's own table


async def test_a_running_study_shows_its_progress_and_follows_it(runs_dir, daily, tui):
    ids, _ = daily
    running = add_running_study(runs_dir, ids)

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    listed = rows(app, "#studies")
    assert list(listed) == [RUNNING_ID, STUDY_ID]
    assert listed[RUNNING_ID]["runs"] == "7/15" and listed[RUNNING_ID]["status"] == "running"
    assert "7/15 finished · 2 running" in settings(app)
    assert "1 running" in app.screen.sub_title
    path = runs_dir / running[0] / "run.json"  # one run ends: the poller re-reads that file
    record = json.loads(path.read_text())
    record["status"] = "finished"
    record["metrics"] = json.loads((runs_dir / ids[-1] / "run.json").read_text())["metrics"]
    path.write_text(json.dumps(record))
    assert await eventually(pilot, lambda: "8/15 finished · 1 running" in settings(app)), settings(app)
    assert rows(app, "#studies")[RUNNING_ID]["runs"] == "8/15"


async def test_a_run_whose_worker_is_gone_does_not_count_as_running(runs_dir, daily, tui):
    ids, _ = daily
    for run_id in add_running_study(runs_dir, ids):
        path = runs_dir / run_id / "run.json"
        path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    assert rows(app, "#studies")[RUNNING_ID]["status"] == "unfinished"
    assert "7/15 finished" in settings(app) and "running" not in settings(app)


@pytest.mark.parametrize("key", ["enter", "c"])
async def test_enter_and_c_open_the_compare_view_of_the_finished_runs(runs_dir, daily, key, tui):
    ids, _ = daily
    add_running_study(runs_dir, ids)

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    await pilot.press(key)
    await settle(pilot)
    assert isinstance(app.screen, CompareScreen)
    compared = sorted(p.name for p in app.screen.run_dirs)
    assert compared == sorted(ids)[:7]  # the running and the unstarted ones are left out
    await pilot.press("escape")
    await pilot.pause()
    assert isinstance(app.screen, StudiesScreen)
    await pilot.press("down", key)
    await settle(pilot)
    assert isinstance(app.screen, CompareScreen)
    assert sorted(p.name for p in app.screen.run_dirs) == sorted(ids[:15])  # the 50-iteration study
    await pilot.press("escape")
    await pilot.pause()
    await pilot.press("escape")
    await pilot.pause()
    assert not isinstance(app.screen, StudiesScreen)  # back on the runs screen


async def test_an_unreadable_study_is_one_row_and_its_keys_do_nothing(runs_dir, daily, tui):
    (runs_dir / "studies" / "20260109-000000-broken.json").write_text('{"schema": 1, "id": ')

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    listed = rows(app, "#studies")
    assert list(listed) == ["20260109-000000-broken", STUDY_ID]
    assert listed["20260109-000000-broken"]["status"] == "unreadable"
    assert "unreadable" in settings(app)
    assert not app.screen.query_one("#table", DataTable).display
    for key in ("enter", "c"):
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, StudiesScreen)
    assert any("unreadable" in n or "broken" in n for n in tui.notes), tui.notes
    await pilot.press("down")
    await pilot.pause()
    assert "er" in rows(app, "#table")  # the next study is still fine


async def test_an_empty_studies_folder_says_how_to_make_one_and_c_does_nothing(runs_dir, tui):
    pilot = await open_studies(tui, runs_dir, size=(80, 24))
    app = pilot.app
    empty = app.screen.query_one("#empty", Static)
    assert empty.display and "cltui compare" in str(empty.render())
    assert f"--runs-dir {runs_dir}" in str(empty.render())  # the command works when pasted
    for key in ("c", "enter", "down"):
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, StudiesScreen)
    assert not tui.notes
    assert "0 studies" in app.screen.sub_title


async def test_a_study_file_that_appears_is_listed_by_the_poller(runs_dir, daily, tui):
    study = (runs_dir / "studies" / f"{STUDY_ID}.json")
    moved = study.read_text()
    study.unlink()

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    assert app.screen.query_one("#empty", Static).display
    study.write_text(moved)
    assert await eventually(pilot, lambda: STUDY_ID in rows(app, "#studies"))
    assert not app.screen.query_one("#empty", Static).display
    assert rows(app, "#table")["er"]["final acc %"] == "85.2 ± 0.6"


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_nothing_that_matters_is_cut_at_80x24_and_100x30(runs_dir, daily, size, tui):
    ids, _ = daily
    add_running_study(runs_dir, ids)

    pilot = await open_studies(tui, runs_dir, size=size)
    app = pilot.app
    studies_table = app.screen.query_one("#studies", DataTable)
    assert studies_table.virtual_size.width <= studies_table.size.width  # no column off the screen
    table = app.screen.query_one("#table", DataTable)
    # a DataTable measures its rows when idle; a loaded machine can delay that past the settle
    assert await eventually(pilot, lambda: table.size.height >= 6)  # the header and the five methods
    assert table.virtual_size.width <= table.size.width
    for key in ("study", "overrides", "runs", "status"):
        assert key in [str(c.key.value) for c in studies_table.ordered_columns]


def add_long_study(root: Path) -> str:
    """A copy of the fixture's study with two overrides: with the sweep's long id beside it, the natural widths
    of the study and overrides columns leave no room for the status at 80 columns."""
    study = json.loads((root / "studies" / f"{STUDY_ID}.json").read_text())
    study_id = "20260107-000000-split-digits-class"
    study.update(id=study_id, overrides=["train.iterations=50", "model.hidden=[400, 400]"])
    (root / "studies" / f"{study_id}.json").write_text(json.dumps(study))
    return study_id


async def test_the_status_stays_whole_at_80_columns_and_the_overrides_give_way(runs_dir, daily, tui):
    ids, _ = daily
    for run_id in add_running_study(runs_dir, ids):  # their worker gone: an unfinished study
        path = runs_dir / run_id / "run.json"
        path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    add_sweep(runs_dir, ids)
    long_id = add_long_study(runs_dir)

    pilot = await open_studies(tui, runs_dir, size=(80, 24))
    app = pilot.app
    table = app.screen.query_one("#studies", DataTable)
    assert table.virtual_size.width <= table.size.width  # no column off the screen
    lines = screen_text(app).splitlines()
    for study_id, status in ((long_id, "finished"), (RUNNING_ID, "unfinished"), (STUDY_ID, "finished")):
        [line] = [line for line in lines if line.startswith(f" {study_id} ")]  # each id whole
        assert line.rstrip().endswith(f" {status}"), line  # the status whole, not `finis`
    overrides = rows(app, "#studies")[long_id]["overrides"]
    assert overrides.startswith("train.") and overrides.endswith("…")  # shortened, not dropped
    assert "model.hidden=[400, 400]" in settings(app)  # the line below the table has them all

    await pilot.resize_terminal(120, 30)  # room again: the overrides whole
    assert await eventually(pilot, lambda: "model.hidden=[400, 400]" in rows(app, "#studies")[long_id]["overrides"])


async def test_end_and_home_go_to_the_last_and_the_first_study(runs_dir, daily, tui):
    ids, _ = daily
    add_running_study(runs_dir, ids)
    sweep_id = add_sweep(runs_dir, ids)

    pilot = await open_studies(tui, runs_dir, size=(80, 24))
    app = pilot.app
    assert app.screen.current_id() == sweep_id  # the newest first
    await pilot.press("end")
    await settle(pilot)
    assert app.screen.current_id() == STUDY_ID  # the oldest, last
    assert "er" in rows(app, "#table")  # its table below
    await pilot.press("home")
    await settle(pilot)
    assert app.screen.current_id() == sweep_id
    assert "train.iterations=300" in rows(app, "#table")


def add_sweep(root: Path, ids: list[str]) -> str:
    """A finished sweep of train.iterations (50, 300) for er over seeds 0-2, on the fixture's er runs; each run
    gets a validation accuracy a little under its test accuracy, as a sweep's runs have."""
    sweep_id = "20260106-080000-sweep-split-digits-er-class"
    entries = []
    for run_id in sorted(i for i in ids if "-er-s" in i):
        path = root / run_id / "run.json"
        record = json.loads(path.read_text())
        iterations = record["config"]["train"]["iterations"]
        record["metrics"]["final_avg_val_acc"] = record["metrics"]["final_avg_acc"] - 0.01
        path.write_text(json.dumps(record))
        params = {"train.iterations": iterations}
        entries.append({"method": "er", "seed": record["config"]["train"]["seed"], "run_id": run_id,
                        "params": params, "trial": 0 if iterations == 50 else 1, "label": f"it={iterations}"})
    study = {"schema": 1, "id": sweep_id, "kind": "sweep", "created": "2026-01-06T08:00:00+00:00",
             "finished": "2026-01-06T08:10:00+00:00", "preset": "split-digits", "scenario": "class",
             "methods": ["er"], "seeds": 3, "overrides": [], "jobs": 1, "grid": ["train.iterations=50,300"],
             "select": "validation", "search": "grid", "trials": None, "runs": entries}
    (root / "studies" / f"{sweep_id}.json").write_text(json.dumps(study))
    return sweep_id


async def test_a_sweep_shows_the_metric_against_each_value_the_chosen_one_and_its_curve(runs_dir, daily, tui):
    from cltui.tui.widgets.charts import SweepChart

    ids, _ = daily
    sweep_id = add_sweep(runs_dir, ids)

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    assert list(rows(app, "#studies"))[0] == sweep_id  # newest first: it is highlighted
    chart = app.screen.query_one(SweepChart)
    seen = (rows(app, "#table"), settings(app), chart.display, list(chart.rows), chart.chosen)
    await pilot.press("down")  # an ordinary study: no sweep chart
    await settle(pilot)

    (table, text, shown, curve, chosen), after = seen, chart.display
    assert list(table) == ["train.iterations=50", "train.iterations=300"]
    at_300 = table["train.iterations=300"]
    assert at_300["n"] == "3/3" and at_300["test %"].startswith("91.2 ±")  # er at 300 iterations, seeds 0-2
    assert "best: train.iterations=300" in text and "chosen on the validation split" in text
    assert shown and chosen == "300" and [v for v, _, _ in curve] == ["50", "300"]
    assert after is False


async def test_d_deletes_the_highlighted_study_after_a_confirmation_and_keeps_its_runs(runs_dir, daily, tui):
    from cltui.tui.screens.confirm import ConfirmScreen
    from cltui.tui.screens.help import keys_of

    path = runs_dir / "studies" / f"{STUDY_ID}.json"
    run_ids = [e["run_id"] for e in json.loads(path.read_text())["runs"]]

    pilot = await open_studies(tui, runs_dir)
    app = pilot.app
    assert any(k.key == "d" and k.description == "Delete" for k in keys_of(app.screen))  # footer and `?`
    await pilot.press("d")
    await settle(pilot)
    assert isinstance(app.screen, ConfirmScreen) and STUDY_ID in app.screen.question
    await pilot.press("n")  # no: nothing happens
    await settle(pilot)
    assert isinstance(app.screen, StudiesScreen) and path.is_file()
    await pilot.press("d")
    await settle(pilot)
    await pilot.press("y")
    await settle(pilot)
    assert await eventually(pilot, lambda: STUDY_ID not in rows(app, "#studies"))
    assert any(f"deleted study {STUDY_ID}" in n for n in tui.notes), tui.notes

    assert not path.exists()
    assert all((runs_dir / r).is_dir() for r in run_ids)  # a study's runs are runs of their own
