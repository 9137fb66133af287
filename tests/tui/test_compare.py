"""The compare screen under Textual's Pilot, on the thirty runs of tests/helpers/daily.py: what differs between the
runs' configs, method-and-seed labels, groups with mean ± SEM, `enter` on a group row (folds its runs) and on a
run (opens it), `y` for 0-100 on every chart, all of it readable at 80x24. The screen is pushed onto a bare home
screen. Six methods at 80x24, the baseline and the context cursor: test_compare_lab.py."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from cltui.tui.screens.compare import CompareScreen, differing
from cltui.tui.screens.detail import DetailScreen
from cltui.tui.widgets.charts import AverageByRunChart, Chart, FinalAccuracyChart
from core.schema.config import flat_config
from tests.helpers.daily import FINAL, pick
from tests.helpers.tui import BareApp, eventually, footer_keys, screen_text, settle, table_rows

pytestmark = pytest.mark.anyio


async def test_compare_says_what_differs_and_groups_two_methods_by_seed(runs_dir, thirty, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er", "lwf"))))
    await settle(pilot, 0.2)
    await eventually(pilot, lambda: "n=3" in screen_text(app))
    screen = app.screen

    seen = {"differs": str(screen.query_one("#differs", Static).render()), "rows": table_rows(app, "#table"),
            "bars": screen.query_one(FinalAccuracyChart).bars,
            "lines": [(label, k) for label, k, _ in screen.query_one(AverageByRunChart).lines],
            "text": screen_text(app)}
    assert "method.name er | lwf" in seen["differs"]
    assert "train.seed 0 | 1 | 2" in seen["differs"]
    assert "buffer_size" not in seen["differs"]  # a method's own parameter, said by its name
    labels = [cells[0].strip() for cells in seen["rows"].values()]
    assert labels == ["▾ er ×3", "er s2", "er s1", "er s0", "▾ lwf ×3", "lwf s2", "lwf s1", "lwf s0"]
    er_group = seen["rows"]["group:er"]
    finals = [FINAL["er"] + 0.011 * (s - 1) for s in range(3)]
    assert er_group[1 + 1].startswith(f"{100 * sum(finals) / 3:.1f}±")  # final acc % column: mean ± SEM
    ids = [cells[-1] for key, cells in seen["rows"].items() if not key.startswith("group:")]
    assert all(not i.startswith("2026") and len(i) == 11 for i in ids), ids  # 01-02 08:24, as the runs table
    bars = seen["bars"]
    assert [(b.label, b.n) for b in bars] == [("er", 3), ("lwf", 3)]
    assert bars[0].value == pytest.approx(sum(finals) / 3, abs=1e-3)
    assert bars[0].sem == pytest.approx(0.011 / 3 ** 0.5, abs=1e-3)  # the seeds' spread, over root n
    assert seen["lines"] == [("er", 0), ("lwf", 1)]
    assert "avg accuracy so far (%), means" in seen["text"]
    assert "er ×3" in seen["text"] and "91.2±0.6" in seen["text"]  # the bars' rows, whole
    for n in ("1", "2", "3", "4", "5", "6"):
        assert f"{n} er" not in seen["text"] and f"{n} lwf" not in seen["text"]  # no bare numbers


async def test_compare_tells_two_runs_apart_by_iterations(runs_dir, thirty, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    dirs = pick(runs_dir, thirty, ("er",), None, seed=0)
    await app.push_screen(CompareScreen(dirs))
    await settle(pilot, 0.2)
    screen = app.screen

    seen = {"differs": str(screen.query_one("#differs", Static).render()), "rows": table_rows(app, "#table"),
            "bars": [b.label for b in screen.query_one(FinalAccuracyChart).bars or []]}
    assert "train.iterations 300 | 50" in seen["differs"]
    assert "method.name" not in seen["differs"]
    assert sorted(cells[0].strip() for cells in seen["rows"].values()) == ["er s0 it300", "er s0 it50"]
    assert sorted(seen["bars"]) == ["er s0 it300", "er s0 it50"]


async def test_compare_of_two_groups_reads_at_80x24(runs_dir, thirty, tui):
    needed = ("differs: method.name er | lwf", "▾ er ×3", "▾ lwf ×3", "91.2±0.6", "50.3±0.6", "01-02 08:24",
              "Back")

    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er", "lwf"))))
    await settle(pilot, 0.2)
    await eventually(pilot, lambda: all(n in screen_text(app) for n in needed))  # a busy machine draws late

    text = screen_text(app)
    for part in needed:
        assert part in text, part


async def test_enter_on_a_group_row_folds_its_runs_and_on_a_run_opens_it(runs_dir, thirty, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er", "lwf"))))
    await settle(pilot, 0.2)
    await pilot.press("enter")  # the cursor is on the er group's row
    await pilot.pause()
    folded = (type(app.screen), [cells[0].strip() for cells in table_rows(app, "#table").values()])
    await pilot.press("enter")
    await pilot.pause()
    unfolded = len(table_rows(app, "#table"))
    await pilot.press("down", "enter")
    await settle(pilot, 0.2)

    second, opened = type(app.screen), app.screen.run_dir.name
    assert folded == (CompareScreen, ["▸ er ×3", "▾ lwf ×3", "lwf s2", "lwf s1", "lwf s0"])
    assert unfolded == 8
    assert second is DetailScreen and opened.endswith("-er-s2")


def test_differing_fields():
    a = flat_config({"method": {"name": "er", "buffer_size": 1000}, "train": {"seed": 0, "iterations": 300}})
    b = flat_config({"method": {"name": "lwf", "temperature": 2.0}, "train": {"seed": 1, "iterations": 300}})
    c = flat_config({"method": {"name": "er", "buffer_size": 500}, "train": {"seed": 0, "iterations": 300}})
    assert differing([a, b]) == ["method.name", "train.seed"]
    assert differing([a, b, c]) == ["method.name", "train.seed", "method.buffer_size"]


async def test_y_flips_every_chart_of_the_compare_screen_to_0_100_and_back(runs_dir, thirty, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    await app.push_screen(CompareScreen(pick(runs_dir, thirty, ("er",))))
    await settle(pilot, 0.2)
    charts = list(app.screen.query(Chart))
    seen = [[c.full_scale for c in charts]]
    await pilot.press("y")
    await pilot.pause()
    seen.append([c.full_scale for c in charts])
    await pilot.press("y")
    await pilot.pause()
    seen.append([c.full_scale for c in charts])

    shown = "toggle_y_scale" in footer_keys(app)
    assert seen == [[False, False], [True, True], [False, False]]
    assert shown
