"""The run detail over a lab's runs (issue 29; the runs of tests/helpers/lab.py): every chart of a stability-gap
run reachable at 80x24 (the Charts tab scrolls, PageDown / PageUp go from chart to chart, and `?` names those
keys), its training loss drawn one context at a time and ending at the final loss the matrix shows, a merge's
teachers and their scores on lines of their own, whole at 80 columns, and an SVG snapshot of the Charts tab at
80x24 scrolled to the stability-gap curve.

Update the snapshot with `pytest --snapshot-update tests/tui/test_detail_lab.py` and look at the SVG in
tests/tui/__snapshots__/test_detail_lab/ before keeping it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.help import keys_of
from cltui.tui.widgets.charts import CurveChart, LossChart
from tests.helpers.lab import GAP_STEPS, write_gap, write_merge, write_teachers
from tests.helpers.tui import BareApp, screen_text, settle, settle_workers, snapshot_versions, until

pytestmark = pytest.mark.anyio


async def open_charts(tui, folder: Path, size: tuple[int, int] = (80, 24)) -> Pilot:
    """The detail of the run in `folder` on a bare home screen, its Charts tab open."""
    pilot = await tui.start(app=BareApp(folder.parent), size=size)
    screen = DetailScreen(folder)
    await pilot.app.push_screen(screen)
    await settle(pilot)
    await until(pilot, lambda: screen.query_one("#detail-loss", LossChart).points, what="the loss chart")
    await pilot.press("2")
    await pilot.wait_for_scheduled_animations()  # the tab's underline slides: compare screens once it stops
    await pilot.pause(0.2)
    return pilot


async def test_at_80x24_pagedown_reaches_the_stability_gap_curve_and_the_loss(runs_dir, tui):
    pilot = await open_charts(tui, runs_dir / write_gap(runs_dir))
    app, seen = pilot.app, {}
    seen["first"] = screen_text(app)
    for name in ("curve", "loss", "end"):
        await pilot.press("pagedown")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.1)
        seen[name] = screen_text(app)
    for name in ("back", "top"):
        await pilot.press("pageup")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.1)
        seen[name] = screen_text(app)
    heights = {chart.id: chart.size.height for chart in app.screen.query("#charts-pane > Chart") if chart.display}
    keys = {k.description for k in keys_of(app.screen)}

    assert "accuracy on each context" in seen["first"] and "accuracy during training" not in seen["first"]
    assert "accuracy during training" in seen["curve"]
    assert "training loss" in seen["loss"] and "last " in seen["loss"]
    assert seen["end"] == seen["loss"]  # the last chart: nothing further down
    assert "accuracy during training" in seen["back"] and "training loss" not in seen["back"]
    assert seen["top"] == seen["first"]
    assert heights == {"detail-curve": 18, "detail-loss": 18}  # a page each, not squeezed into the 20 rows
    assert {"Next chart (Charts tab)", "Previous chart (Charts tab)"} <= keys  # `?` names them


async def test_the_loss_is_drawn_context_by_context_and_ends_at_the_recorded_final_loss(runs_dir, tui):
    pilot = await open_charts(tui, runs_dir / write_gap(runs_dir), size=(100, 40))
    app = pilot.app
    chart = app.screen.query_one("#detail-loss", LossChart)
    segments, text = chart.segments, screen_text(app)
    matrix = app.screen.query_one("#matrix", DataTable)
    final = str(matrix.get_row_at(matrix.row_count - 1)[-2])  # the "loss" column of the last row

    assert len(segments) == 3  # one line per context: none drawn across a boundary
    for k, segment in enumerate(segments):
        assert all(GAP_STEPS * k < x <= GAP_STEPS * (k + 1) for x, _ in segment), (k, segment)
    assert final == "0.126"
    assert f"last {final}" in text


async def test_a_merge_shows_its_teachers_and_their_scores_whole_at_80_columns(runs_dir, tui):
    teachers = write_teachers(runs_dir)
    merge = write_merge(runs_dir, teachers)
    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    screen = DetailScreen(runs_dir / merge)
    await pilot.app.push_screen(screen)
    await settle(pilot)
    lines = screen_text(pilot.app).splitlines()

    expected = ((teachers[0], "R² 0.060", "learned c0,c1"), (teachers[1], "R² 0.288", "learned c2-c4"))
    for run_id, score, learned in expected:
        line = next((line for line in lines if run_id in line), "")
        assert score in line and learned in line, line
        assert "…" not in line
    assert not any("teachers=" in line for line in lines)  # not in the config line any more


@snapshot_versions
def test_charts_tab_of_a_stability_gap_run_at_80x24_scrolled_to_its_curve(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gap = write_gap(tmp_path / "runs")

    async def run_before(pilot: Pilot) -> None:
        screen = DetailScreen(Path("runs") / gap)
        await pilot.app.push_screen(screen)
        await settle_workers(pilot.app)
        await until(pilot, lambda: screen.query_one("#detail-loss", LossChart).points
                    and screen.query_one("#detail-curve", CurveChart).curve)
        await pilot.press("2", "pagedown")
        await pilot.pause(0.3)

    assert snap_compare(BareApp(Path("runs")), terminal_size=(80, 24), run_before=run_before)
