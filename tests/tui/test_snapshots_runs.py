"""SVG snapshots of the runs table on the 30 runs of tests/helpers/daily.py (5 methods x 3 seeds x 300 and 50
iterations), at 80x24 and 100x30: sorted by accuracy, grouped by method alone (chosen with `G`; mean ± SEM),
filtered `method:er`. (Grouped by setup, the default of `g`: tests/tui/test_lab_folder.py.)

The runs directory is given as the relative path `runs` from a temporary working directory, so no temporary
path shows on screen. Update the baselines with `pytest --snapshot-update tests/tui/test_snapshots_runs.py`
and look at the SVGs in tests/tui/__snapshots__/test_snapshots_runs/ before keeping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from cltui.app import create_app
from tests.helpers.daily import write_thirty_runs
from tests.helpers.tui import pressing, snapshot_versions

pytestmark = snapshot_versions
SIZES = [(80, 24), (100, 30)]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    write_thirty_runs(tmp_path / "runs")
    return create_app(Path("runs"))


def sort_by_accuracy(app) -> list[str]:
    """`o` until the accuracy column is the sorted one (the columns shown differ with the width)."""
    keys = [c for c in app.screen.plan.keys if c != "mark"] if app.screen.plan else []
    return ["o"] * keys.index("acc")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sorted_by_accuracy(app, snap_compare, size):
    async def run_before(pilot: Pilot) -> None:
        await pressing()(pilot)
        await pressing(*sort_by_accuracy(pilot.app))(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# `G` offers preset, method, scenario, seed, iters, overrides, status; the default ticks all but seed and status.
METHOD_ONLY = ("G", "space", "down", "down", "space", "down", "down", "space", "down", "space", "enter")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_grouped_by_method(app, snap_compare, size):
    assert snap_compare(app, terminal_size=size, run_before=pressing(*METHOD_ONLY, "enter"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_filtered_method_er(app, snap_compare, size):
    assert snap_compare(app, terminal_size=size, run_before=pressing("slash", *"method:er", "enter"))
