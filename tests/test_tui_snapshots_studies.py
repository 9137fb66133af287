"""SVG snapshots of the Studies screen on the runs folder of tests/daily_fixtures.py (30 runs and a study over
the 50-iteration ones, plus one study still running), at 80x24 and 100x30: the studies list with the highlighted
study's settings (overrides included), progress and table of mean ± SEM per method.

The runs directory is the relative path `runs` from a temporary working directory, so no temporary path shows on
screen. Update the baselines with `pytest --snapshot-update tests/test_tui_snapshots_studies.py` and look at the
SVGs in tests/__snapshots__/test_tui_snapshots_studies/ before keeping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from cltui.app import create_app
from cltui.tui.studies import StudiesScreen
from tests.daily_fixtures import write_thirty_runs
from tests.test_tui_studies import add_running_study
from tests.tui_fixtures import snapshot_versions

pytestmark = snapshot_versions


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    ids, _ = write_thirty_runs(tmp_path / "runs")
    add_running_study(tmp_path / "runs", ids)
    return create_app(Path("runs"))


def studies(*keys: str):
    """run_before: wait for the runs, open the Studies screen, press `keys`."""

    async def run_before(pilot: Pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        pilot.app.push_screen(StudiesScreen())
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        # the highlighted study's table is filled from a worker's message: wait for it, not for a fixed time
        table = pilot.app.screen.query_one("#table", DataTable)
        for _ in range(100):
            if table.row_count:
                break
            await pilot.pause(0.02)
        await pilot.pause(1.2)  # and one poll of the folder (every second) after it, which changes nothing here
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def test_studies_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=(100, 30), run_before=studies("down"))


def test_studies_screen_at_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=studies("down"))


def test_studies_screen_running_study_at_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=studies())
