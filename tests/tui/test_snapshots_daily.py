"""SVG snapshots of issue 17's screens at 80x24 and 100x30: the compare screen of two groups (er against lwf,
3 seeds each, from the 30-run folder of tests/helpers/daily.py), the live screen of the running fixture run,
and the detail screen's Charts tab (accuracy, average and training-loss charts).

The screens are pushed onto cltui's app with an empty home screen; the runs directory is the relative path
`runs` from a temporary working directory, so no temporary path shows. Update the baselines with
`pytest --snapshot-update tests/tui/test_snapshots_daily.py` and look at the SVGs before keeping them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Tree

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.widgets.charts import AccuracyChart, LossChart
from tests.helpers.daily import write_thirty_runs
from tests.helpers.fixed_runs import IDS, write_fixture_runs
from tests.helpers.tui import BareApp, FixedProbe, draw_live_now, settle_workers, snapshot_versions

pytestmark = snapshot_versions
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((100, 30), id="100x30")]
async def until(pilot: Pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await pilot.pause(0.05)


RUNNING_LAST_EVENT = 1767265210.5  # the time of the running fixture run's last event
RUNNING_LOG = f"2026-01-01T11:00:00+00:00 worker pid 4242 started for {IDS['running']}\n"


@pytest.mark.parametrize("size", SIZES)
def test_compare_of_two_groups(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    ids, _ = write_thirty_runs(tmp_path / "runs")
    chosen = [Path("runs") / i for i in ids if i.startswith("20260102") and i.split("-")[-2] in ("er", "lwf")]

    async def run_before(pilot: Pilot) -> None:
        screen = CompareScreen(chosen)
        await pilot.app.push_screen(screen)
        await settle_workers(pilot.app)
        await until(pilot, lambda: screen.compared)
        await pilot.pause(0.3)

    assert snap_compare(BareApp(Path("runs")), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_live_screen_of_the_running_run(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    runs = write_fixture_runs(tmp_path / "runs")
    (runs["running"] / "worker.log").write_text(RUNNING_LOG)  # the fixture's names this process's pid

    async def run_before(pilot: Pilot) -> None:
        screen = LiveScreen(Path("runs") / IDS["running"], probe=FixedProbe(now=RUNNING_LAST_EVENT + 1.5))
        await pilot.app.push_screen(screen)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await pilot.pause(0.05)
            labels = [str(n.label) for n in screen.query_one(Tree).root.children for n in [n, *n.children]]
            if any("120/300" in line for line in labels) and screen.query_one(AccuracyChart).matrix \
                    and screen.query_one(LossChart).points:
                break
        await draw_live_now(pilot, screen)
        await pilot.pause(0.4)

    assert snap_compare(BareApp(Path("runs")), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_detail_charts_tab(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    write_fixture_runs(tmp_path / "runs")

    async def run_before(pilot: Pilot) -> None:
        screen = DetailScreen(Path("runs") / IDS["finished"])
        await pilot.app.push_screen(screen)
        await settle_workers(pilot.app)
        await until(pilot, lambda: screen.query_one("#detail-loss", LossChart).points)
        await pilot.press("2")
        await pilot.pause(0.3)

    assert snap_compare(BareApp(Path("runs")), terminal_size=size, run_before=run_before)
