"""The runs screen over a lab's folder (tests/helpers/lab.py: the thirty runs, a task-IL study, an EWC λ sweep, a
sine-regression run, a merge of two sine teachers, a stability-gap run), as a new user meets it at 80x24:
the default grouping (`g`) pools only runs that differ by seed, the sweep's rows show their λ, scenario shows
when runs of several scenarios are shown, ids take the width they need, presets are whole when there is
room; `G` groups by a chosen set of keys, `C` picks the columns for the session. Pilot tests, then SVG
snapshots at 80x24, ungrouped and grouped (the runs directory is the relative path `runs` from a temporary
working directory, so no temporary path shows on screen; update the baselines with `pytest --snapshot-update
tests/tui/test_lab_folder.py` and look at them in tests/tui/__snapshots__/test_lab_folder/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, SelectionList

from cltui.app import create_app
from cltui.tui.screens.pick import PickScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.state.formats import fmt_value
from cltui.tui.state.runquery import setup_overrides
from tests.helpers.lab import Lab, write_lab_runs
from tests.helpers.tui import (
    pressing,
    runs_rows,
    screen_text,
    settle,
    snapshot_versions,
)

pytestmark = pytest.mark.anyio
SETUP = ("preset", "scenario", "method", "iterations")  # with the overrides: what a default group shares


@pytest.fixture
def lab(runs_dir: Path) -> Lab:
    return write_lab_runs(runs_dir)


async def press(pilot: Pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def headers(app: Any) -> list[str]:
    return [str(c.label) for c in app.screen.query_one("#runs", DataTable).ordered_columns]


def rows(app: Any) -> list[dict[str, str]]:
    """The table's rows, top to bottom: {header without its sort mark: cell, "key": row key}."""
    names = [h.rstrip(" ▲▼") or "mark" for h in headers(app)]
    table = app.screen.query_one("#runs", DataTable)
    return [{"key": str(r.key.value), **dict(zip(names, (str(c) for c in table.get_row(r.key)), strict=True))}
            for r in table.ordered_rows]


def group_rows_shown(app: Any) -> list[dict[str, str]]:
    return [r for r in rows(app) if r["key"].startswith("\0group:")]


async def test_the_default_groups_pool_only_runs_that_differ_by_seed(lab, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    await press(pilot, "g")
    shown, groups, subtitle = group_rows_shown(app), dict(app.screen.groups), app.screen.sub_title

    assert "by setup" in subtitle
    assert len(shown) == len(groups) == 20  # 10 of the thirty, task-IL none, 4 λ, sine, 2 teachers, merge, gap
    for g in groups.values():  # a mean is only ever over runs of one setup
        assert all(len({getattr(r, key) for r in g.rows}) == 1 for key in SETUP), g.key
        assert len({setup_overrides(r, SETUP) for r in g.rows}) == 1, g.key
    assert sorted(len(g.rows) for g in groups.values()) == [1] * 5 + [2] * 4 + [3] * 11
    # Each group's row shows all its keys' values, one value each (never "0,1,2" or "4 values").
    assert {"preset", "method", "scenario", "iters", "overrides"} <= set(shown[0])
    for row in shown:
        assert not any("," in row[k] or "values" in row[k] for k in ("preset", "method", "scenario", "iters"))
        assert "setups" not in row["overrides"]
    none = {(r["preset"], r["scenario"], r["iters"]): r["acc %"] for r in shown if r["method"] == "none"}
    assert set(none) == {("spli…its", "class", "300"), ("spli…its", "class", "50"), ("spli…its", "task", "300"),
                         ("merg…ine", "task", "400")}  # class-IL, task-IL and the sine R² apart
    assert none[("merg…ine", "task", "400")] == "R² -0.221" and none[("spli…its", "task", "300")] == "97.2 ± 0.1"
    sweep = sorted(r["overrides"] for r in shown if r["method"] == "ewc" and r["iters"] == "30")
    assert sweep == ["lambda=1e10…", "lambda=1e6…", "lambda=1e7…", "lambda=1e8…"]  # one group per λ
    assert "Group by" not in screen_text(app) and not any("…" in r["run"] for r in shown)


async def test_at_80_columns_the_sweep_shows_its_lambda_and_scenario_stays(lab, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    seen = {"headers": headers(app), "rows": runs_rows(app)}
    seen["run width"] = app.screen.query_one("#runs", DataTable).ordered_columns[1].width
    for _ in range(8):  # o until the accuracy column is the sorted one
        await press(pilot, "o")
        if "acc % ▼" in headers(app):
            break
    seen["by acc"] = (headers(app), rows(app)[:4])

    for lam, ids in lab.sweep.items():
        for run_id in ids:
            assert seen["rows"][run_id]["overrides"].startswith(f"lambda={fmt_value(lam)}"), seen["rows"][run_id]
    assert {"scenario", "iters", "overrides"} <= set(seen["headers"])
    assert seen["rows"][lab.merge]["run"] == "01-06 09:20"  # the merge's id is as short as the others
    assert seen["run width"] == len("01-06 09:20")  # no room kept for an id that is not shown
    names, best = seen["by acc"]
    assert "scenario" in names  # task-IL's 97 % ranks first, and says it is task-IL
    assert [r["scenario"] for r in best] == ["task"] * 4  # the merge's R² 0.994, then task-IL none


async def test_presets_are_whole_when_there_is_room(lab, runs_dir, tui):
    """At 200x50 no preset is cut, not even a long one (split-digits-dfcil, 18 characters)."""
    long_id = "20260108-090000-split-digits-dfcil-class-none-s0"
    shutil.copytree(runs_dir / lab.thirty[-1], runs_dir / long_id)
    record = json.loads((runs_dir / long_id / "run.json").read_text())
    record.update(id=long_id, preset="split-digits-dfcil")
    record["config"]["preset"] = "split-digits-dfcil"
    (runs_dir / long_id / "run.json").write_text(json.dumps(record))

    pilot = await tui.start(runs_dir, size=(200, 50))
    app = pilot.app
    shown = runs_rows(app)
    presets = {run_id: json.loads((runs_dir / run_id / "run.json").read_text())["preset"] for run_id in shown}

    assert shown[long_id]["preset"] == "split-digits-dfcil"
    assert all(shown[run_id]["preset"] == presets[run_id] for run_id in shown)


async def test_G_groups_by_the_keys_ticked(lab, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    seen: dict[str, Any] = {}
    await press(pilot, "G")
    seen["modal"] = (type(app.screen), list(app.screen.query_one(SelectionList).selected), screen_text(app))
    # ticked: preset, scenario, method, overrides, iterations; keep only preset
    await press(pilot, "down", "space", "down", "space", "down", "down", "space", "down", "space", "enter")
    seen["preset"] = (app.screen.sub_title, group_rows_shown(app), headers(app))
    await press(pilot, "G")
    picker = app.screen.query_one(SelectionList)
    picker.deselect_all()
    picker.select("iterations")
    await press(pilot, "enter")
    seen["iterations"] = (app.screen.sub_title, group_rows_shown(app), headers(app))
    await press(pilot, "g")
    seen["off"] = (app.screen.sub_title, len(rows(app)))
    await press(pilot, "g")  # g groups by the keys chosen last
    seen["again"] = app.screen.sub_title

    screen, ticked, text = seen["modal"]
    assert screen is PickScreen
    assert ticked == ["preset", "method", "scenario", "iterations", "overrides"]
    assert "Apply (enter)" in text and "Default (d)" in text  # whole at 80x24
    subtitle, shown, names = seen["preset"]
    assert "by preset" in subtitle and "preset" in names
    assert {r["preset"]: r["run"] for r in shown} == {"stability-gap": "1 run", "merge-sine": "4 runs",
                                                      "split-digits": "41 runs"}  # each preset named on its row
    subtitle, shown, names = seen["iterations"]
    assert "by iters" in subtitle and "iters" in names  # the grouped column stays
    assert sorted((int(r["iters"]), r["run"]) for r in shown) == [
        (30, "8 runs"), (50, "15 runs"), (100, "1 run"), (300, "18 runs"), (400, "3 runs"), (2000, "1 run")]
    assert seen["off"] == (seen["off"][0], 46) and "by " not in seen["off"][0]
    assert "by iters" in seen["again"]


async def test_C_picks_the_columns_for_the_session(lab, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    seen: dict[str, Any] = {"auto": headers(app)}
    await press(pilot, "C")
    picker = app.screen.query_one(SelectionList)
    seen["offered"] = (list(picker.selected), screen_text(app))
    picker.deselect("overrides")
    picker.deselect("scenario")
    picker.select("seed")
    picker.select("status")
    await press(pilot, "enter")
    seen["picked"] = headers(app)
    await press(pilot, "g", "g", "slash", *"method:ewc", "enter")  # grouping and a filter keep the choice
    seen["kept"] = headers(app)
    await press(pilot, "escape", "C", "d")
    seen["default"] = headers(app)
    await press(pilot, "C", "escape")
    seen["cancelled"] = (type(app.screen), headers(app))

    assert seen["auto"] == ["", "run ▼", "method", "scenario", "iters", "overrides", "acc %"]
    offered, text = seen["offered"]
    assert offered == ["run", "method", "scenario", "iterations", "overrides", "acc"]  # what is shown, ticked
    assert "Apply (enter)" in text
    assert seen["picked"] == ["", "run ▼", "method", "seed", "iters", "status", "acc %"]
    assert seen["kept"] == seen["picked"]
    assert seen["default"] == seen["auto"]
    assert seen["cancelled"] == (RunsScreen, seen["auto"])


# --- snapshots -----------------------------------------------------------------------------------------


@pytest.fixture
def lab_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    write_lab_runs(tmp_path / "runs")
    return create_app(Path("runs"))


@snapshot_versions
@pytest.mark.parametrize("keys", [(), ("g",)], ids=["ungrouped", "grouped"])
def test_snapshot_at_80x24(lab_app, snap_compare, keys):
    assert snap_compare(lab_app, terminal_size=(80, 24), run_before=pressing(*keys))
