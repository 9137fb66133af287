"""The dreams screen under Textual's Pilot, on the dreaming run of the fixed runs (tests/helpers/fixed_runs.py): each
context's grid, quality figures and latent map (a generation run's class coverage and reverse accuracy too, whole
at 80x24); zoom (`+`, `-` that stops at the fit, `0`) in gradual steps from the fit; eight classes that fit with
their numbers as text; PageDown without Tab (and nothing to scroll: nothing); no axis beside the latent map's
border. Every key is also pressed where it does not apply, and must do nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from textual.pilot import Pilot
from textual.widgets import Static, Tabs

from cltui.tui.app import CltuiApp
from cltui.tui.screens.detail import DetailScreen
from cltui.tui.screens.dreams import DreamGrid, DreamsScreen
from cltui.tui.widgets.charts import LatentMapChart
from tests.helpers.fixed_runs import IDS
from tests.helpers.tui import BareApp, eventually, screen_text, select, settle

pytestmark = pytest.mark.anyio


async def test_the_dreams_screen_shows_each_context_grid_quality_and_latent_map(fixed, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen: dict[str, Any] = {}
    await select(pilot, IDS["dreams"])
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("i")
    await settle(pilot)
    screen = app.screen
    seen["screen"] = type(screen)
    tabs = screen.query_one(Tabs)
    seen["tabs"] = [str(t.label) for t in tabs.query("Tab")]
    grid = screen.query_one("#grid", DreamGrid)
    title = str(screen.query_one("#grid-pane").border_title)
    seen["c0"] = (tabs.active, grid.picture.image.size, grid.size.width, title)
    await pilot.press("right_square_bracket")
    await pilot.pause()
    seen["c1 quality"] = screen.query_one("#quality", Static).content.columns[1]._cells
    seen["c1 latent"] = screen.query_one("#latent").class_ids
    await pilot.press("plus")  # from the fit (under 1x: 4 classes fill the pane's height) to 1x
    await pilot.pause()
    seen["zoomed"] = (grid.zoom, grid.size.width, grid.size.height)
    await pilot.press("plus", "minus", "minus")
    seen["zoomed out"] = grid.zoom
    await pilot.press("plus", "plus", "0")
    await pilot.pause()
    seen["fit"] = grid.zoom
    await pilot.press("escape")
    seen["back"] = type(app.screen)

    assert seen["screen"] is DreamsScreen
    assert seen["tabs"] == ["context 0", "context 1", "context 2", "context 3"]
    assert seen["c0"][0] == "context-0" and seen["c0"][1] == (78, 18)
    assert seen["c0"][2] >= 78  # a grid this size is drawn at full resolution, one pixel per half cell
    assert "16 dreamed images" in seen["c0"][3] and "classes 0,1" in seen["c0"][3]
    assert seen["c1 quality"][:2] == ["97.0%", "71.0/96.0%"]
    assert seen["c1 latent"] == [0, 1, 2, 3]
    zoom, width, rows = seen["zoomed"]
    assert (zoom, rows) == (1, 18) and width >= 78  # 78x36 px, 1 px per half cell: 18 rows, the labels beside
    assert seen["zoomed out"] == 0  # plus to 2x, minus to 1x, minus to the fit: and no further
    assert seen["fit"] == 0
    assert seen["back"] is DetailScreen


def open_dreams(context: int = 3):
    async def run(app: CltuiApp, pilot: Pilot, runs: dict[str, Path]) -> DreamsScreen:
        screen = DreamsScreen(runs["dreams"])
        await app.push_screen(screen)
        await settle(pilot, 0.2)
        for _ in range(context):
            await pilot.press("right_square_bracket")
            await pilot.pause()
        await pilot.pause(0.2)
        return screen

    return run


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_eight_classes_fit_with_their_numbers_and_minus_stops_at_the_fit(runs_dir, fixed, size, tui):
    pilot = await tui.start(app=BareApp(runs_dir), size=size)
    app = pilot.app
    screen = await open_dreams(3)(app, pilot, fixed)
    grid = screen.query_one("#grid", DreamGrid)
    pane = screen.query_one("#grid-pane")
    await eventually(pilot, lambda: "7 ▀" in screen_text(app))
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

    zoom, height, room, width, room_w = seen["fit"]
    assert zoom == 0 and height <= room and width <= room_w  # all 8 rows in view
    picture = [line.split("│")[1] for line in seen["text"].splitlines() if "▀" in line]
    labelled = [row.split()[0] for row in picture if row[:1].strip()]
    assert labelled == [str(c) for c in range(8)]  # the class numbers, as text, beside the rows
    assert seen["minus at fit"] == 0
    assert seen["plus"] > 0 and seen["back to fit"] == 0  # one step above the fit, and back


async def test_pagedown_scrolls_the_grid_without_tab(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
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

    not_on_pane, up = focused is not pane, pane.scroll_y
    assert not_on_pane  # the tabs keep the focus
    assert down > 0 and up == 0


async def test_pagedown_with_nothing_to_scroll_does_nothing(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    screen = await open_dreams(0)(app, pilot, fixed)
    await pilot.press("pagedown")
    await pilot.pause()

    assert (screen.query_one("#grid-pane").scroll_y, type(app.screen)) == (0, DreamsScreen)


async def test_the_latent_map_draws_no_axis_beside_its_border(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    await open_dreams(3)(app, pilot, fixed)
    await eventually(pilot, lambda: "■ 7" in screen_text(app))

    text, classes = screen_text(app), app.screen.query_one(LatentMapChart).class_ids
    assert classes == list(range(8))
    assert "│││" not in text
    assert "■ 7" in text  # the legend wraps instead of being cut


async def test_a_generation_runs_panel_shows_its_class_coverage_and_reverse_accuracy_at_80x24(runs_dir, fixed, tui):
    """The figures `cltui dreams` prints from run.json, class coverage and a generation run's reverse accuracy
    among them, every row of the panel in view at 80x24."""
    record = json.loads((fixed["dreams"] / "run.json").read_text())
    record["config"]["method"] = {"name": "mergan-jtr"}
    for k, entry in enumerate(record["dreams"]):
        entry["quality"].update(class_coverage=1.0, reverse_accuracy=round(0.912 - 0.05 * k, 3))
    (fixed["dreams"] / "run.json").write_text(json.dumps(record))
    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    await open_dreams(1)(app, pilot, fixed)
    await eventually(pilot, lambda: "reverse accuracy" in screen_text(app))
    quality = [line.split("│")[1] for line in screen_text(app).splitlines() if line.count("│") >= 2]

    rows = {" ".join(row.split()[:-1]): row.split()[-1] for row in quality if row.strip()}
    assert rows["class coverage"] == "100.0%"
    assert rows["reverse accuracy"] == "86.2%"
    for label in ("teacher agreement", "verifier, dreams/real", "feature distance", "Fréchet distance",
                  "farthest class"):  # every row of the panel in view
        assert any(row.strip().startswith(label) for row in quality), label


async def test_zoom_goes_from_the_fit_in_gradual_steps(runs_dir, fixed, tui):
    """A grid far larger than the pane (fitted at 9% at 80x24): `+` goes 12.5, 25, 50, 100 %, `-` comes back
    the same way to the fit, never from the fit straight to 100 %."""
    Image.new("L", (400, 200), 128).save(fixed["dreams"] / "dreams" / "context-0" / "grid.png")
    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    screen = await open_dreams(0)(app, pilot, fixed)
    pane = screen.query_one("#grid-pane")

    def shown() -> str:
        return str(pane.border_subtitle).split(" · ")[1]

    await eventually(pilot, lambda: "fit" in str(pane.border_subtitle))
    steps = [shown()]
    for key in ["plus"] * 4 + ["minus"] * 4:
        await pilot.press(key)
        await pilot.pause(0.1)
        steps.append(shown())

    assert steps == ["fit 9%", "zoom 12.5%", "zoom 25%", "zoom 50%", "zoom 100%",
                     "zoom 50%", "zoom 25%", "zoom 12.5%", "fit 9%"]
