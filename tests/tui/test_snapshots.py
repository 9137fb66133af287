"""SVG snapshots of the browsing screens on the fixed runs of tests/helpers/fixed_runs.py, at 100x30 (and the runs
screen at 80x24, the smallest terminal cltui supports).

The runs directory is given as the relative path `runs` from a temporary working directory, so no temporary
path shows on screen. Update the baselines with `pytest --snapshot-update tests/tui/test_snapshots.py` and
look at the SVGs in tests/tui/__snapshots__/test_snapshots/ before keeping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from cltui.app import create_app
from tests.helpers.fixed_runs import IDS, write_fixture_runs
from tests.helpers.tui import settle_workers, snapshot_versions

pytestmark = snapshot_versions


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    write_fixture_runs(tmp_path / "runs")
    return create_app(Path("runs"))


def opening(run_id: str | None, *keys: str):
    """run_before: wait for the runs, put the cursor on `run_id`, press `keys`, wait for what they load."""

    async def run_before(pilot: Pilot) -> None:
        await settle_workers(pilot.app)
        await pilot.pause()
        if run_id is not None:
            table = pilot.app.screen.query_one("#runs", DataTable)
            table.move_cursor(row=table.get_row_index(run_id), animate=False)
        for key in keys:
            await pilot.press(key)
            await settle_workers(pilot.app)
            await pilot.pause()

    return run_before


def test_runs_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=(100, 30), run_before=opening(IDS["failed"]))


def test_runs_screen_at_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=opening(IDS["finished"]))


def test_detail_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=(100, 30), run_before=opening(IDS["finished"], "enter"))


def test_detail_screen_of_a_failed_run(app, snap_compare):
    assert snap_compare(app, terminal_size=(100, 30), run_before=opening(IDS["failed"], "enter", "4"))


def test_dreams_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=(100, 30),
                        run_before=opening(IDS["dreams"], "enter", "i", "right_square_bracket"))


def test_compare_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=(100, 30),
                        run_before=opening(IDS["dreams"], "space", "space", "space", "c"))


def composing(method: str, focus: str):
    """run_before: open the compose form (`n`), choose `method`, put the focus on the field `focus` (its cursor
    steady, so the picture does not depend on the blink)."""

    async def run_before(pilot: Pilot) -> None:
        from textual.widgets import Input

        from tests.helpers.tui import choose, field, open_compose

        await settle_workers(pilot.app)
        await pilot.pause()
        screen = await open_compose(pilot.app, pilot)
        await choose(pilot, screen, "method", method)
        control = field(screen, focus)
        if isinstance(control, Input):
            control.cursor_blink = False
        control.focus(scroll_visible=False)
        await pilot.pause()  # the help line under the form takes the field's help (and its height) first
        screen.query_one("#form").scroll_to_widget(control, animate=False)
        await pilot.pause()

    return run_before


def test_compose_screen_at_80x24(app, snap_compare):
    """Every label apart from its value, the values in one column, the focused field marked (▸)."""
    assert snap_compare(app, terminal_size=(80, 24), run_before=composing("gan-finetune", "method.export_per_class"))
