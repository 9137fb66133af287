"""The TUI as a daily tool (issue 17), driven by Textual's Pilot: compare that explains itself (differing config
fields, method-and-seed labels, groups with mean ± SEM), charts fitted to their data with `y` for 0-100, the
loss chart, the live screen's fixes (one duration, one loss format, Stop gone once the run ended, a log panel
as tall as its lines), the detail screen's `e` (clone into compose) and `R` (resume), and the dreams screen
(8 classes fit, `-` stops at the fit, PageDown without Tab, class numbers as text, no `│││`). Every key is
also pressed where it does not apply, and must do nothing.

The app runs with a bare home screen: these screens are pushed directly, on the fixed runs of
tests/daily_fixtures.py and tests/tui_fixtures.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Log, Static

from cltui.tui.app import CltuiApp
from cltui.tui.screens.compare import CompareScreen, differing
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.detail import DetailScreen, resume_problem
from cltui.tui.screens.dreams import DreamGrid, DreamsScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.formats import fmt_duration, fmt_loss
from cltui.tui.state.live import PhaseState, loss_track, phase_label
from cltui.tui.widgets.charts import (
    AccuracyChart,
    AverageByRunChart,
    Chart,
    FinalAccuracyChart,
    LatentMapChart,
    LossChart,
    fitted_range,
    legend,
)
from core.runs.events import ContextStarted, Progress, RunFinished, to_json
from core.schema.config import flat_config
from tests.daily_fixtures import FINAL, write_thirty_runs
from tests.tui_fixtures import BareApp, settle_workers, write_fixture_runs


def drive(runs_dir: Path, script: Callable[[CltuiApp, Pilot, list[str]], Awaitable[Any]],
          size: tuple[int, int] = (100, 30)) -> Any:
    async def main() -> Any:
        app = BareApp(runs_dir)
        notes: list[str] = []
        shown = app.notify
        app.notify = lambda message, **kw: (notes.append(str(message)), shown(message, **kw))[1]  # type: ignore[method-assign]
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            result = await script(app, pilot, notes)
            await pilot.pause()
        assert not [n for n in notes if n.startswith("internal error")], notes
        return result

    return asyncio.run(main())


async def settle(pilot: Pilot, pause: float = 0.2) -> None:
    await settle_workers(pilot.app)
    await pilot.pause(pause)


async def until(pilot: Pilot, condition: Callable[[], Any], timeout: float = 6.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await pilot.pause(0.05)
    return bool(condition())


def screen_text(app: CltuiApp) -> str:
    return "\n".join("".join(s.text for s in strip) for strip in app.screen._compositor.render_strips())


def footer_keys(app: CltuiApp) -> set[str]:
    """The actions the footer shows now."""
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show and b.enabled}


@pytest.fixture
def thirty(runs_dir: Path) -> list[str]:
    ids, _ = write_thirty_runs(runs_dir)
    return ids


@pytest.fixture
def fixed(runs_dir: Path) -> dict[str, Path]:
    return write_fixture_runs(runs_dir)


def pick(runs_dir: Path, ids: list[str], methods: tuple[str, ...], iterations: int | None = 300,
         seed: int | None = None) -> list[Path]:
    day = {300: "20260102", 50: "20260103", None: ""}[iterations]
    return [runs_dir / i for i in ids if i.split("-")[-2] in methods and i.startswith(day)
            and (seed is None or i.endswith(f"-s{seed}"))]


def rows(app: CltuiApp, selector: str = "#table") -> dict[str, list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return {str(r.key.value): [str(c) for c in table.get_row(r.key)] for r in table.ordered_rows}


# --- compare ---------------------------------------------------------------------------------------------


def test_compare_says_what_differs_and_groups_two_methods_by_seed(runs_dir, thirty):
    async def script(app, pilot, notes):
        await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er", "lwf"))))
        await settle(pilot)
        await until(pilot, lambda: "n=3" in screen_text(app))
        screen = app.screen
        return {"differs": str(screen.query_one("#differs", Static).render()), "rows": rows(app),
                "bars": screen.query_one(FinalAccuracyChart).bars,
                "lines": [(label, k) for label, k, _ in screen.query_one(AverageByRunChart).lines],
                "text": screen_text(app)}

    seen = drive(runs_dir, script)
    assert "method.name er | lwf" in seen["differs"]
    assert "train.seed 0 | 1 | 2" in seen["differs"]
    assert "buffer_size" not in seen["differs"]  # a method's own parameter, said by its name
    labels = [cells[0].strip() for cells in seen["rows"].values()]
    assert labels == ["er ×3", "er s2", "er s1", "er s0", "lwf ×3", "lwf s2", "lwf s1", "lwf s0"]
    er_group = seen["rows"]["group:er"]
    finals = [FINAL["er"] + 0.011 * (s - 1) for s in range(3)]
    assert er_group[1 + 1].startswith(f"{100 * sum(finals) / 3:.1f}±")  # final acc % column: mean ± SEM
    ids = [cells[-1] for key, cells in seen["rows"].items() if not key.startswith("group:")]
    assert all(not i.startswith("2026") and len(i) == 11 for i in ids), ids  # 01-02 08:24, as the runs table
    bars = seen["bars"]
    assert [(b.label, b.n) for b in bars] == [("er", 3), ("lwf", 3)]
    assert bars[0].value == pytest.approx(sum(finals) / 3, abs=1e-3)
    assert bars[0].sem == pytest.approx(0.011 / 3 ** 0.5, abs=1e-3)  # the seeds' spread, over root n
    assert seen["lines"] == [("er (mean)", 0), ("lwf (mean)", 1)]
    assert "er 91.2±0.6 n=3" in seen["text"]  # the bars' legend, whole
    for n in ("1", "2", "3", "4", "5", "6"):
        assert f"{n} er" not in seen["text"] and f"{n} lwf" not in seen["text"]  # no bare numbers


def test_compare_tells_two_runs_apart_by_iterations(runs_dir, thirty):
    async def script(app, pilot, notes):
        dirs = pick(runs_dir, thirty, ("er",), None, seed=0)
        await app.push_screen(CompareScreen(dirs))
        await settle(pilot)
        screen = app.screen
        return {"differs": str(screen.query_one("#differs", Static).render()), "rows": rows(app),
                "bars": [b.label for b in screen.query_one(FinalAccuracyChart).bars or []]}

    seen = drive(runs_dir, script)
    assert "train.iterations 300 | 50" in seen["differs"]
    assert "method.name" not in seen["differs"]
    assert sorted(cells[0].strip() for cells in seen["rows"].values()) == ["er s0 it300", "er s0 it50"]
    assert sorted(seen["bars"]) == ["er s0 it300", "er s0 it50"]


def test_compare_of_two_groups_reads_at_80x24(runs_dir, thirty):
    needed = ("differs: method.name er | lwf", "er ×3", "lwf ×3", "er 91.2±0.6 n=3", "lwf 50.3±0.6 n=3",
              "01-02 08:24", "Back")

    async def script(app, pilot, notes):
        await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er", "lwf"))))
        await settle(pilot)
        await until(pilot, lambda: all(n in screen_text(app) for n in needed))  # a busy machine draws late
        return screen_text(app)

    text = drive(runs_dir, script, size=(80, 24))
    for part in needed:
        assert part in text, part


def test_enter_on_a_group_row_does_nothing_and_on_a_run_opens_it(runs_dir, thirty):
    async def script(app, pilot, notes):
        await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er", "lwf"))))
        await settle(pilot)
        await pilot.press("enter")  # the cursor is on the er group's row
        await pilot.pause()
        first = type(app.screen)
        await pilot.press("down", "enter")
        await settle(pilot)
        return first, type(app.screen), app.screen.run_dir.name

    first, second, opened = drive(runs_dir, script)
    assert first is CompareScreen
    assert second is DetailScreen and opened.endswith("-er-s2")


def test_differing_fields():
    a = flat_config({"method": {"name": "er", "buffer_size": 1000}, "train": {"seed": 0, "iterations": 300}})
    b = flat_config({"method": {"name": "lwf", "temperature": 2.0}, "train": {"seed": 1, "iterations": 300}})
    c = flat_config({"method": {"name": "er", "buffer_size": 500}, "train": {"seed": 0, "iterations": 300}})
    assert differing([a, b]) == ["method.name", "train.seed"]
    assert differing([a, b, c]) == ["method.name", "train.seed", "method.buffer_size"]


# --- charts and the y key -----------------------------------------------------------------------------------


def test_the_y_axis_is_fitted_to_the_data_unless_full():
    lo, hi = fitted_range([87.0, 93.5, 100.0])
    assert 80 <= lo < 87 and hi == 100  # ER's 87-100 % uses the height
    assert fitted_range([87.0, 100.0], full=True) == (0.0, 100.0)
    assert fitted_range([]) == (0.0, 100.0)
    lo, hi = fitted_range([50.0, 50.0])
    assert hi - lo >= 4  # a flat line still has an axis


def test_y_flips_every_chart_of_the_compare_screen_to_0_100_and_back(runs_dir, thirty):
    async def script(app, pilot, notes):
        await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er",))))
        await settle(pilot)
        charts = list(app.screen.query(Chart))
        seen = [[c.full_scale for c in charts]]
        await pilot.press("y")
        await pilot.pause()
        seen.append([c.full_scale for c in charts])
        await pilot.press("y")
        await pilot.pause()
        seen.append([c.full_scale for c in charts])
        return seen, "toggle_y_scale" in footer_keys(app)

    seen, shown = drive(runs_dir, script)
    assert seen == [[False, False], [True, True], [False, False]]
    assert shown


@pytest.mark.parametrize("where", ["live", "detail"])
def test_y_flips_the_charts_of_the_live_and_detail_screens(runs_dir, fixed, where):
    async def script(app, pilot, notes):
        screen = LiveScreen(fixed["running"]) if where == "live" else DetailScreen(fixed["finished"])
        await app.push_screen(screen)
        await until(pilot, lambda: screen.query_one(AccuracyChart).matrix)
        await pilot.pause(0.2)
        await pilot.press("y")
        await pilot.pause()
        return {type(c).__name__: c.full_scale for c in screen.query(Chart)}, "toggle_y_scale" in footer_keys(app)

    scales, shown = drive(runs_dir, script)
    assert shown
    assert scales["AccuracyChart"] and scales["AverageChart"]
    assert scales["LossChart"] is False  # a loss has no 0-100


def test_y_with_no_chart_data_does_nothing(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = DetailScreen(fixed["corrupted"])
        await app.push_screen(screen)
        await settle(pilot)
        await pilot.press("y")
        await pilot.pause()
        return screen.y_full_scale, [c.full_scale for c in screen.query(Chart)], list(notes)

    flag, scales, notes = drive(runs_dir, script)
    assert flag is False and not any(scales)
    assert any("no chart data" in n for n in notes)


def test_a_legend_too_long_for_the_border_wraps_under_the_plot(runs_dir):
    async def script(app, pilot, notes):
        class One(Screen):
            def compose(self):
                yield AverageByRunChart(id="lines")

        await app.push_screen(One())
        chart = app.screen.query_one(AverageByRunChart)
        chart.set_lines([(f"method-{k} s{k} it300", k, [90.0, 85.0]) for k in range(6)])
        await until(pilot, lambda: "method-5 s5 it300" in screen_text(app))
        return chart.border_subtitle, chart.legend_lines, screen_text(app)

    subtitle, lines, text = drive(runs_dir, script, size=(60, 20))
    assert not subtitle and lines >= 2
    for k in range(6):
        assert f"method-{k} s{k} it300" in text


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


def test_the_loss_chart_goes_log_when_the_loss_spans_decades(runs_dir):
    async def script(app, pilot, notes):
        class One(Screen):
            def compose(self):
                yield LossChart()

        await app.push_screen(One())
        chart = app.screen.query_one(LossChart)
        chart.set_points([(10, 156.0), (20, 0.3), (30, 1.78e-5)])
        await pilot.pause(0.2)
        log = (chart.log_scale, chart.border_title)
        chart.set_points([(10, 0.5), (20, 0.2)])
        await until(pilot, lambda: "last 0.2" in screen_text(app))
        return log, (chart.log_scale, chart.border_title), screen_text(app)

    log, linear, text = drive(runs_dir, script, size=(60, 16))
    assert log == (True, "training loss (log scale)")
    assert linear == (False, "training loss")
    assert "last 0.2" in text


# --- the live screen -----------------------------------------------------------------------------------------


def test_s_leaves_the_footer_once_the_run_ended_and_then_does_nothing(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = LiveScreen(fixed["finished"])
        await app.push_screen(screen)
        await until(pilot, lambda: screen.ended)
        await pilot.pause(0.2)
        keys = footer_keys(app)
        await pilot.press("s")
        await pilot.pause(0.2)
        return keys, type(app.screen), screen.stopping

    keys, after, stopping = drive(runs_dir, script)
    assert "stop" not in keys and "back" in keys
    assert after is LiveScreen and not stopping  # no confirmation asked, nothing stopped


def test_s_shows_while_the_run_is_going(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = LiveScreen(fixed["running"])
        await app.push_screen(screen)
        await until(pilot, lambda: screen.state.current is not None)
        await pilot.pause(0.2)
        keys = footer_keys(app)
        await pilot.press("s")
        await pilot.pause(0.2)
        asked = type(app.screen)
        await pilot.press("escape")
        return keys, asked

    keys, asked = drive(runs_dir, script)
    assert "stop" in keys
    assert asked is ConfirmScreen


def test_the_live_screen_shows_one_duration_for_a_finished_run(runs_dir, fixed):
    folder = fixed["finished"]
    record = json.loads((folder / "run.json").read_text())
    record["timing"]["total_s"] = 6.7  # the events' clock says more: run.json's figure is the one shown
    (folder / "run.json").write_text(json.dumps(record))
    with (folder / "events.jsonl").open("a") as f:
        last = json.loads((folder / "events.jsonl").read_text().splitlines()[-1])["t"]
        f.write(to_json(RunFinished(metrics=record["metrics"], total_s=6.7, t=last + 3.1)) + "\n")

    async def script(app, pilot, notes):
        screen = LiveScreen(folder)
        await app.push_screen(screen)
        await until(pilot, lambda: isinstance(screen.state.outcome, RunFinished))
        await pilot.pause(0.3)
        return (str(screen.query_one("#run-summary", Static).render()),
                str(screen.query_one("#outcome", Static).render()), screen.state.elapsed)

    summary, outcome, elapsed = drive(runs_dir, script)
    assert elapsed is not None and fmt_duration(elapsed) != "6.7 s"
    assert "6.7 s" in summary and "6.7 s" in outcome
    assert fmt_duration(elapsed) not in summary


def test_the_live_tree_prints_the_loss_with_three_digits_and_the_loss_chart_plots_it(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = LiveScreen(fixed["running"])
        await app.push_screen(screen)
        await until(pilot, lambda: screen.query_one(LossChart).points)
        await until(pilot, lambda: "120/300 loss 0.21" in screen_text(app))
        return screen.query_one(LossChart).points, screen_text(app)

    points, text = drive(runs_dir, script, size=(80, 24))
    assert points[-1] == (600 + 120, 0.21)  # two contexts of 300 iterations, then step 120
    assert "120/300 loss 0.21" in text  # the loss, whole, in the 80-column tree, the current context in view


def test_a_narrow_tree_drops_the_rate_before_the_loss():
    phase = PhaseState("train", step=180, total=300, loss=1.777e-05, samples_per_s=30125.0)
    assert phase_label(phase).plain == "train  ━━━━━━━━━━ 180/300 loss 1.78e-05 30.1k/s"
    assert phase_label(phase, compact=True).plain == "train  ━━━━━━ 180/300 loss 1.78e-05"


def test_the_worker_log_panel_is_as_tall_as_its_lines(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = LiveScreen(fixed["running"])
        await app.push_screen(screen)
        await until(pilot, lambda: screen.query_one(Log).line_count)
        await pilot.pause(0.2)
        one = screen.query_one(Log).outer_size.height
        with (fixed["running"] / "worker.log").open("a") as f:
            f.write("".join(f"line {n}\n" for n in range(10)))
        await until(pilot, lambda: screen.query_one(Log).line_count > 5)
        await pilot.pause(0.2)
        return one, screen.query_one(Log).outer_size.height

    one, many = drive(runs_dir, script, size=(80, 24))
    assert one == 3  # one line and its border
    assert many == 4  # at 80x24 at most two lines: the charts get the rest


# --- the detail screen: e and R -----------------------------------------------------------------------------


def clone(runs_dir: Path, run: Path) -> tuple[set[str], type, Any, Any, dict[str, str]]:
    from textual.widgets import Input

    from cltui.tui.screens.compose import ComposeScreen

    async def script(app, pilot, notes):
        await app.push_screen(DetailScreen(run))
        await settle(pilot)
        keys = footer_keys(app)
        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        values = {str(i.id): i.value for i in screen.query(Input)} if isinstance(screen, ComposeScreen) else {}
        return keys, type(screen), getattr(screen, "method", None), getattr(screen, "scenario", None), values

    return drive(runs_dir, script)


def test_e_clones_the_run_into_the_compose_form(runs_dir, thirty):
    from cltui.tui.screens.compose import ComposeScreen

    keys, kind, method, scenario, values = clone(runs_dir, pick(runs_dir, thirty, ("er",), 50, seed=2)[0])
    assert "clone" in keys
    assert kind is ComposeScreen
    assert (method, scenario) == ("er", "class")
    assert values.get("field-train-iterations") == "50"
    assert values.get("field-train-seed") == "2"


def test_e_fills_in_the_method_parameters_too(runs_dir, fixed):
    from core.schema.presets import toml_text

    _, _, method, scenario, values = clone(runs_dir, fixed["cancelled"])  # lwf, task-IL, seed 1
    assert (method, scenario) == ("lwf", "task")
    assert values.get("field-train-seed") == "1"
    _, _, method, _, values = clone(runs_dir, fixed["finished"])  # ewc with lambda 1e9, not the preset's
    assert method == "ewc"
    assert values.get("field-method-lambda") == toml_text(1e9)


def test_e_and_r_do_nothing_on_an_unreadable_run(runs_dir, fixed, monkeypatch):
    launched: list[Path] = []
    monkeypatch.setattr("cltui.tui.screens.detail.launch_resume", lambda run_dir: launched.append(run_dir))

    async def script(app, pilot, notes):
        await app.push_screen(DetailScreen(fixed["corrupted"]))
        await settle(pilot)
        keys = footer_keys(app)
        await pilot.press("e")
        await pilot.pause()
        after_e = type(app.screen)
        await pilot.press("R")
        await settle(pilot)
        return keys, after_e, type(app.screen)

    keys, after_e, after_r = drive(runs_dir, script)
    assert "clone" not in keys and "resume" not in keys
    assert after_e is DetailScreen and after_r is DetailScreen
    assert launched == []


def test_r_on_a_finished_run_only_says_it_is_finished(runs_dir, fixed, monkeypatch):
    launched: list[Path] = []
    monkeypatch.setattr("cltui.tui.screens.detail.launch_resume", lambda run_dir: launched.append(run_dir))

    async def script(app, pilot, notes):
        await app.push_screen(DetailScreen(fixed["finished"]))
        await settle(pilot)
        keys = footer_keys(app)
        await pilot.press("R")
        await settle(pilot)
        return keys, type(app.screen), list(notes)

    keys, after, notes = drive(runs_dir, script)
    assert "resume" not in keys and "clone" in keys
    assert after is DetailScreen and launched == []
    assert any("finished" in n for n in notes)


def test_r_resumes_a_cancelled_run_with_a_checkpoint_after_a_confirmation(runs_dir, fixed, monkeypatch):
    folder = fixed["cancelled"]
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "context-2.pt").write_bytes(b"")
    launched: list[Path] = []
    monkeypatch.setattr("cltui.tui.screens.detail.launch_resume", lambda run_dir: launched.append(run_dir))

    async def script(app, pilot, notes):
        await app.push_screen(DetailScreen(folder))
        await settle(pilot)
        keys = footer_keys(app)
        await pilot.press("R")
        await pilot.pause()
        asked = type(app.screen)
        await pilot.press("escape")  # no: nothing starts
        await pilot.pause()
        nothing = list(launched)
        await pilot.press("R")
        await pilot.pause()
        await pilot.click("#yes") if app.screen.query("#yes") else await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LiveScreen))
        return keys, asked, nothing, list(launched), type(app.screen)

    keys, asked, nothing, launched_after, final = drive(runs_dir, script)
    assert "resume" in keys
    assert asked is ConfirmScreen
    assert nothing == []
    assert launched_after == [folder]
    assert final is LiveScreen


def test_resume_problem_says_why_a_run_cannot_be_resumed(tmp_path, fixed):
    assert resume_problem(None, tmp_path) == "its run.json is unreadable"
    finished = json.loads((fixed["finished"] / "run.json").read_text())
    assert "finished" in (resume_problem(finished, fixed["finished"]) or "")
    cancelled = json.loads((fixed["cancelled"] / "run.json").read_text())
    assert "no checkpoint" in (resume_problem(cancelled, fixed["cancelled"]) or "")
    cancelled["acc_matrix"] = []
    assert resume_problem(cancelled, fixed["cancelled"]) is None  # nothing completed: it starts again


def test_the_detail_charts_tab_plots_the_loss_or_says_there_is_none(runs_dir, fixed):
    async def script(app, pilot, notes):
        seen = {}
        for name in ("finished", "baseline"):
            screen = DetailScreen(fixed[name])
            await app.push_screen(screen)
            await settle(pilot)
            await pilot.press("2")
            await pilot.pause(0.2)
            chart = screen.query_one("#detail-loss", LossChart)
            seen[name] = (len(chart.points or []), str(chart.border_title))
            app.pop_screen()
            await pilot.pause()
        return seen

    seen = drive(runs_dir, script)
    assert seen["finished"] == (15, "training loss")
    assert seen["baseline"][0] == 0 and "no training loss" in seen["baseline"][1]


# --- the dreams screen -----------------------------------------------------------------------------------------


def open_dreams(context: int = 3):
    async def run(app: CltuiApp, pilot: Pilot, runs: dict[str, Path]) -> DreamsScreen:
        screen = DreamsScreen(runs["dreams"])
        await app.push_screen(screen)
        await settle(pilot)
        for _ in range(context):
            await pilot.press("right_square_bracket")
            await pilot.pause()
        await pilot.pause(0.2)
        return screen

    return run


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_eight_classes_fit_with_their_numbers_and_minus_stops_at_the_fit(runs_dir, fixed, size):
    async def script(app, pilot, notes):
        screen = await open_dreams(3)(app, pilot, fixed)
        grid = screen.query_one("#grid", DreamGrid)
        pane = screen.query_one("#grid-pane")
        await until(pilot, lambda: "7 ▀" in screen_text(app))
        seen = {"fit": (grid.zoom, grid.outer_size.height, pane.scrollable_content_region.height,
                        grid.outer_size.width, pane.scrollable_content_region.width),
                "text": screen_text(app)}
        await pilot.press("minus")  # at the fit already: nothing
        await pilot.pause()
        seen["minus at fit"] = grid.zoom
        await pilot.press("plus")
        await pilot.pause()
        seen["plus"] = grid.zoom
        await pilot.press("minus")
        await pilot.pause()
        seen["back to fit"] = grid.zoom
        return seen

    seen = drive(runs_dir, script, size=size)
    zoom, height, room, width, room_w = seen["fit"]
    assert zoom == 0 and height <= room and width <= room_w  # all 8 rows in view
    picture = [line.split("│")[1] for line in seen["text"].splitlines() if "▀" in line]
    labelled = [row.split()[0] for row in picture if row[:1].strip()]
    assert labelled == [str(c) for c in range(8)]  # the class numbers, as text, beside the rows
    assert seen["minus at fit"] == 0
    assert seen["plus"] >= 1 and seen["back to fit"] == 0


def test_pagedown_scrolls_the_grid_without_tab(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = await open_dreams(3)(app, pilot, fixed)
        pane = screen.query_one("#grid-pane")
        await pilot.press("plus", "plus")
        await pilot.pause(0.2)
        focused = app.focused
        await pilot.press("pagedown")
        await pilot.pause(0.2)
        down = pane.scroll_y
        await pilot.press("pageup")
        await pilot.pause(0.2)
        return focused is not pane, down, pane.scroll_y

    not_on_pane, down, up = drive(runs_dir, script)
    assert not_on_pane  # the tabs keep the focus
    assert down > 0 and up == 0


def test_pagedown_with_nothing_to_scroll_does_nothing(runs_dir, fixed):
    async def script(app, pilot, notes):
        screen = await open_dreams(0)(app, pilot, fixed)
        await pilot.press("pagedown")
        await pilot.pause()
        return screen.query_one("#grid-pane").scroll_y, type(app.screen)

    assert drive(runs_dir, script) == (0, DreamsScreen)


def test_the_latent_map_draws_no_axis_beside_its_border(runs_dir, fixed):
    async def script(app, pilot, notes):
        await open_dreams(3)(app, pilot, fixed)
        await until(pilot, lambda: "■ 7" in screen_text(app))
        return screen_text(app), app.screen.query_one(LatentMapChart).class_ids

    text, classes = drive(runs_dir, script, size=(80, 24))
    assert classes == list(range(8))
    assert "│││" not in text
    assert "■ 7" in text  # the legend wraps instead of being cut


def test_legend_helper_joins_entries_with_a_gap():
    assert legend([("a", 0), ("b", 1)]).plain == "━ a  ━ b"
    assert isinstance(legend([]), Text)


def test_charts_keep_their_data_when_the_scale_flips(runs_dir):
    async def script(app, pilot, notes):
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
        return chart.version - version, chart.matrix

    redraws, matrix = drive(runs_dir, script)
    assert redraws == 1 and matrix == [[0.99, 0.0], [0.88, 0.97]]
