"""The charts (cltui.tui.widgets.charts) under Textual's Pilot: nothing drawn for an empty matrix and a redraw only
on new data, the y axis fitted to the data with `y` for 0-100 on the live and detail screens (a note when there is
no data), legends that wrap under the plot instead of being cut, and the training loss: three significant digits,
iterations counted across contexts, a log scale when it spans decades. Most tests push their screen onto a bare
home screen."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.screen import Screen

from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.formats import fmt_loss
from cltui.tui.state.live import loss_track
from cltui.tui.widgets.charts import AccuracyChart, AverageByRunChart, Chart, LossChart, fitted_range, legend
from core.runs.events import ContextStarted, Progress
from tests.helpers.tui import BareApp, eventually, footer_keys, screen_text, settle

pytestmark = pytest.mark.anyio


async def test_charts_draw_nothing_for_an_empty_matrix_and_redraw_only_on_new_data(runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
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

    assert seen["empty"][0] == "no context evaluated yet"
    assert seen["same"] and seen["appended"]
    assert seen["emptied"] == "no context evaluated yet"


async def test_charts_keep_their_data_when_the_scale_flips(runs_dir, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app

    class One(Screen):
        def compose(self):
            yield AccuracyChart()

    await app.push_screen(One())
    chart = app.screen.query_one(AccuracyChart)
    chart.set_matrix([[0.99, 0.0], [0.88, 0.97]])
    await pilot.pause(0.2)
    version = chart.version
    chart.set_full_scale(True)
    chart.set_full_scale(True)  # the same again: nothing to redraw

    redraws, matrix = chart.version - version, chart.matrix
    assert redraws == 1 and matrix == [[0.99, 0.0], [0.88, 0.97]]


def test_the_y_axis_is_fitted_to_the_data_unless_full():
    lo, hi = fitted_range([87.0, 93.5, 100.0])
    assert 80 <= lo < 87 and hi == 100  # ER's 87-100 % uses the height
    assert fitted_range([87.0, 100.0], full=True) == (0.0, 100.0)
    assert fitted_range([]) == (0.0, 100.0)
    lo, hi = fitted_range([50.0, 50.0])
    assert hi - lo >= 4  # a flat line still has an axis


@pytest.mark.parametrize("where", ["live", "detail"])
async def test_y_flips_the_charts_of_the_live_and_detail_screens(runs_dir, fixed, where, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    screen = LiveScreen(fixed["running"]) if where == "live" else DetailScreen(fixed["finished"])
    await app.push_screen(screen)
    await eventually(pilot, lambda: screen.query_one(AccuracyChart).matrix)
    await pilot.pause(0.2)
    await pilot.press("y")
    await pilot.pause()

    scales, shown = {type(c).__name__: c.full_scale for c in screen.query(Chart)}, "toggle_y_scale" in footer_keys(app)
    assert shown
    assert scales["AccuracyChart"] and scales["AverageChart"]
    assert scales["LossChart"] is False  # a loss has no 0-100


async def test_y_with_no_chart_data_does_nothing(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    screen = DetailScreen(fixed["corrupted"])
    await app.push_screen(screen)
    await settle(pilot, 0.2)
    await pilot.press("y")
    await pilot.pause()

    flag, scales, notes = screen.y_full_scale, [c.full_scale for c in screen.query(Chart)], list(tui.notes)
    assert flag is False and not any(scales)
    assert any("no chart data" in n for n in notes)


async def test_a_legend_too_long_for_the_border_wraps_under_the_plot(runs_dir, tui):
    pilot = await tui.start(app=BareApp(runs_dir), size=(60, 20))
    app = pilot.app

    class One(Screen):
        def compose(self):
            yield AverageByRunChart(id="lines")

    await app.push_screen(One())
    chart = app.screen.query_one(AverageByRunChart)
    chart.set_lines([(f"method-{k} s{k} it300", k, [90.0, 85.0]) for k in range(6)])
    await eventually(pilot, lambda: "method-5 s5 it300" in screen_text(app))

    subtitle, lines, text = chart.border_subtitle, chart.legend_lines, screen_text(app)
    assert not subtitle and lines >= 2
    for k in range(6):
        assert f"method-{k} s{k} it300" in text


def test_legend_helper_joins_entries_with_a_gap():
    assert legend([("a", 0), ("b", 1)]).plain == "━ a  ━ b"
    assert isinstance(legend([]), Text)


def test_fmt_loss_has_three_significant_digits():
    assert [fmt_loss(v) for v in (1.777e-05, 0.0003041, 156.1, 0.05, 2500.0, None)] == \
        ["1.78e-05", "0.000304", "156", "0.05", "2.5e3", "–"]


def test_the_loss_track_counts_iterations_across_contexts_and_drops_a_restarted_one():
    events = [ContextStarted(context=0, classes=[0, 1], iterations=100, t=1.0),
              Progress(context=0, phase="train", step=50, total=100, loss=2.0, t=2.0),
              Progress(context=0, phase="fisher", step=5, total=10, loss=9.0, t=2.5),  # not training
              Progress(context=0, phase="train", step=100, total=100, loss=1.0, t=3.0),
              ContextStarted(context=1, classes=[2, 3], iterations=100, t=4.0),
              Progress(context=1, phase="train", step=50, total=100, loss=0.5, t=5.0)]
    track = loss_track(events)
    assert track.series() == [(50, 2.0), (100, 1.0), (150, 0.5)]
    assert track.boundaries() == [100]
    track.apply(ContextStarted(context=1, classes=[2, 3], iterations=100, t=6.0))  # resumed
    assert track.series() == [(50, 2.0), (100, 1.0)]


async def test_the_loss_chart_goes_log_when_the_loss_spans_decades(runs_dir, tui):
    pilot = await tui.start(app=BareApp(runs_dir), size=(60, 16))
    app = pilot.app

    class One(Screen):
        def compose(self):
            yield LossChart()

    await app.push_screen(One())
    chart = app.screen.query_one(LossChart)
    chart.set_points([(10, 156.0), (20, 0.3), (30, 1.78e-5)])
    await pilot.pause(0.2)
    log = (chart.log_scale, chart.border_title)
    chart.set_points([(10, 0.5), (20, 0.2)])
    await eventually(pilot, lambda: "last 0.2" in screen_text(app))

    linear, text = (chart.log_scale, chart.border_title), screen_text(app)
    assert log == (True, "training loss (log scale)")
    assert linear == (False, "training loss")
    assert "last 0.2" in text


async def test_the_loss_chart_draws_each_context_apart_and_ends_each_at_its_recorded_final_loss(runs_dir, tui):
    """Sparse reports never joined across a boundary (the loss would seem to rise through a context); with the
    record's final losses each context's line ends at its own, so "last" is the final loss the matrix shows."""
    pilot = await tui.start(app=BareApp(runs_dir), size=(60, 16))
    app = pilot.app

    class One(Screen):
        def compose(self):
            yield LossChart()

    await app.push_screen(One())
    chart = app.screen.query_one(LossChart)
    chart.set_points([(50, 2.0), (100, 1.0), (150, 0.5), (200, 0.4)], [100])
    split = chart.segments
    events = [ContextStarted(context=0, classes=[0, 1], iterations=100, t=1.0),
              Progress(context=0, phase="train", step=50, total=100, loss=2.0, t=2.0),
              Progress(context=0, phase="train", step=100, total=100, loss=1.0, t=3.0),
              ContextStarted(context=1, classes=[2, 3], iterations=100, t=4.0),
              Progress(context=1, phase="train", step=60, total=100, loss=0.5, t=5.0),
              Progress(context=1, phase="train", step=100, total=100, loss=0.45, t=6.0)]
    chart.set_track(loss_track(events), {0: 0.8, 1: 0.3})
    await eventually(pilot, lambda: "last 0.3" in screen_text(app))

    assert split == [[(50, 2.0), (100, 1.0)], [(150, 0.5), (200, 0.4)]]
    assert chart.segments == [[(50, 2.0), (100, 0.8)], [(160, 0.5), (200, 0.3)]]
    assert "last 0.3" in screen_text(app)
