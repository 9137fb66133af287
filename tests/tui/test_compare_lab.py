"""The compare screen over a lab's study of six methods x three seeds (issue 29): whole at 80x24 (every method's
group in the table, horizontal bars that tell 19 from 41, names never cut), a baseline pinned with `b` (first
everywhere, the others' Δ against it), the lines chart read at a context with `[` / `]`, and SVG snapshots of it
at 80x24. The runs are written by hand here in the real on-disk format, with the finals the issue names.

Update the snapshots with `pytest --snapshot-update tests/tui/test_compare_lab.py` and look at the SVGs in
tests/tui/__snapshots__/test_compare_lab/ before keeping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.widgets.charts import AverageByRunChart, FinalAccuracyChart
from core.runs.metrics import mean_sem, seen_averages
from core.schema.presets import build_config
from tests.helpers.fixed_runs import context_events, record, write_run
from tests.helpers.tui import BareApp, screen_text, settle, settle_workers, snapshot_versions, tables_sized, until

pytestmark = pytest.mark.anyio

# The final average accuracy of seed 1 (seeds 0 and 2 lie 1.1 points under and over it), as the issue saw them.
FINALS = {"none": 0.192, "ewc": 0.113, "lwf": 0.413, "agem": 0.236, "er": 0.905, "icarl": 0.748}
SEEDS = (0, 1, 2)


def lab_matrix(final: float) -> list[list[float]]:
    """A 5x5 accuracy matrix whose last row averages to `final`: each context learnt to 0.98 (the last one to
    no more than 5 x `final`), the earlier ones forgotten linearly towards what the last row keeps of them."""
    last = min(0.98, 5 * final)
    kept = (5 * final - last) / 4
    rows = []
    for i in range(5):
        row = [0.0] * 5
        for j in range(i + 1):
            row[j] = 0.98 if j == i else round(0.98 - (0.98 - kept) * (i - j) / 4, 4)
        rows.append(row)
    rows[-1] = [round(kept, 4)] * 4 + [round(last, 4)]
    return rows


def write_lab(root: Path) -> list[Path]:
    """Six finished split-digits class-IL runs a method, three seeds each, in the order they ran."""
    folders = []
    for n, (method, final) in enumerate((m, f) for m, f in FINALS.items()):
        for seed in SEEDS:
            minute = 2 * (3 * n + seed)
            run_id = f"20260105-{9 + minute // 60:02d}{minute % 60:02d}00-split-digits-class-{method}-s{seed}"
            cfg = build_config("split-digits", method=method, scenario="class", seed=seed).to_dict()
            acc = lab_matrix(final + 0.011 * (seed - 1))
            stamp = f"2026-01-05T{9 + minute // 60:02d}:{minute % 60:02d}:00+00:00"
            data = record(run_id, cfg, "finished", acc, total_s=4.0 + seed, created=stamp, finished=stamp)
            folders.append(write_run(root, data, context_events(cfg, run_id, acc, 1767603600.0 + 60 * minute)))
    return folders


def mean_at(method: str, context: int) -> float:
    """The mean over seeds of a method's average accuracy (%) after `context` (1-based)."""
    values = [seen_averages(lab_matrix(FINALS[method] + 0.011 * (s - 1)))[context - 1] for s in SEEDS]
    mean, _ = mean_sem(values)
    assert mean is not None
    return 100 * mean


async def open_lab(tui, runs_dir: Path, size: tuple[int, int]) -> Pilot:
    pilot = await tui.start(app=BareApp(runs_dir), size=size)
    screen = CompareScreen(write_lab(runs_dir))
    await pilot.app.push_screen(screen)
    await settle(pilot)
    await until(pilot, lambda: screen.compared and tables_sized(screen), what="the compared runs")
    await pilot.pause()
    return pilot


def bar_rows(text: str) -> dict[str, str]:
    """The bars chart's row of each method on the screen (the chart's part of the line, after the name)."""
    rows = {}
    for method in FINALS:
        line = next((line for line in text.splitlines() if line.startswith(f"│{method} ×3 ")), "")
        rows[method] = line.split("││")[0].removeprefix(f"│{method} ×3 ")
    return rows


async def test_six_methods_are_whole_at_80x24(runs_dir, tui):
    pilot = await open_lab(tui, runs_dir, (80, 24))
    app = pilot.app
    text = screen_text(app)
    bars = bar_rows(text)

    lengths = {m: row.count("█") for m, row in bars.items()}
    assert lengths["ewc"] < lengths["none"] < lengths["agem"] < lengths["lwf"] < lengths["icarl"] < lengths["er"]
    assert lengths["lwf"] - lengths["none"] >= 3  # 19 and 41 read apart
    assert "icar " not in text
    for method, final in FINALS.items():
        assert f"{100 * final:.1f}±0.6" in bars[method], method  # each bar says its figure, its name whole
        assert f"▸ {method} ×3" in text, method  # every group's row in the table, folded (its runs: enter)
    assert "Back" in text and "Baseline" in text


async def test_enter_or_right_unfolds_a_group_and_left_folds_it(runs_dir, tui):
    pilot = await open_lab(tui, runs_dir, (80, 24))
    app = pilot.app
    table = app.screen.query_one("#table")
    await pilot.press("down", "enter")  # ewc's group
    await pilot.pause()
    unfolded = screen_text(app)
    await pilot.press("down", "left")  # on one of its runs: the group folds, the cursor on its row
    await pilot.pause()
    folded = (screen_text(app), table.cursor_row)
    await pilot.press("right")
    await pilot.pause()
    again = screen_text(app)

    assert "▾ ewc ×3" in unfolded and "▸ none ×3" in unfolded
    for seed in SEEDS:
        assert f"ewc s{seed}" in unfolded and f"ewc s{seed}" not in folded[0] and f"ewc s{seed}" in again
    assert "▸ ewc ×3" in folded[0] and folded[1] == 1


async def test_b_pins_a_baseline_first_everywhere_with_the_differences_to_it(runs_dir, tui):
    pilot = await open_lab(tui, runs_dir, (80, 24))
    app = pilot.app
    screen = app.screen
    await pilot.press("down", "down", "b")  # lwf's group
    await pilot.pause()
    table = screen.query_one("#table")
    pinned = {"columns": [str(c.label) for c in table.ordered_columns],
              "rows": {str(row.key.value): [str(c) for c in table.get_row(row.key)] for row in table.ordered_rows},
              "bars": [(b.label, b.baseline) for b in screen.query_one(FinalAccuracyChart).bars],
              "legend": screen.query_one(AverageByRunChart).legend_text.plain, "text": screen_text(app)}
    await pilot.press("b")  # again: unpinned
    await pilot.pause()
    unpinned = screen_text(app)

    columns, rows = pinned["columns"], pinned["rows"]
    assert "Δ final" in columns and "Δ forget" in columns
    final, delta = columns.index("final acc %"), columns.index("Δ final")
    assert list(rows)[0] == "group:lwf" and rows["group:lwf"][delta] == "baseline"
    assert rows["group:none"][delta] == f"{100 * (FINALS['none'] - FINALS['lwf']):+.1f}"  # -22.1
    assert rows["group:er"][delta] == f"{100 * (FINALS['er'] - FINALS['lwf']):+.1f}"  # +49.2
    assert rows["group:er"][final].startswith("90.5")
    assert pinned["bars"][0] == ("lwf", True) and not any(b for _, b in pinned["bars"][1:])
    assert pinned["legend"].startswith("━ lwf")
    assert "-22.1" in pinned["text"] and "+49.2" in pinned["text"] and "base" in pinned["text"]
    assert "Δ final" not in unpinned and "-22.1" not in unpinned


async def test_brackets_read_every_line_at_a_context(runs_dir, tui):
    pilot = await open_lab(tui, runs_dir, (80, 24))
    app = pilot.app
    chart = app.screen.query_one(AverageByRunChart)
    seen = {}
    await pilot.press("left_square_bracket")  # the cursor lands on the last context
    seen["last"] = (chart.cursor, chart.legend_text.plain)
    await pilot.press("left_square_bracket", "left_square_bracket")
    await pilot.pause()
    seen["third"] = (chart.cursor, chart.legend_text.plain, screen_text(app))
    await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
    seen["clamped"] = chart.cursor

    assert seen["last"][0] == 5 and seen["last"][1].startswith("at 5:")
    assert "━ er 90.5" in seen["last"][1]
    cursor, legend, text = seen["third"]
    assert cursor == 3 and legend.startswith("at 3:")
    for method in FINALS:
        assert f"━ {method} {mean_at(method, 3):.1f}" in legend, method
        assert f"━ {method} {mean_at(method, 3):.1f}" in text, method  # under the chart, at 80x24
    assert seen["clamped"] == 5


# --- snapshots -------------------------------------------------------------------------------------------


def lab_screen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *keys: str):
    """The app and run_before of a snapshot: the lab's compare screen, `keys` pressed."""
    monkeypatch.chdir(tmp_path)
    folders = [Path("runs") / f.name for f in write_lab(tmp_path / "runs")]

    async def run_before(pilot: Pilot) -> None:
        screen = CompareScreen(folders)
        await pilot.app.push_screen(screen)
        await settle_workers(pilot.app)
        await until(pilot, lambda: screen.compared and tables_sized(screen), what="the compared runs")
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        await until(pilot, lambda: tables_sized(screen), what="the table's columns")

    return BareApp(Path("runs")), run_before


@snapshot_versions
def test_snapshot_of_six_methods_at_80x24(snap_compare, tmp_path, monkeypatch):
    app, run_before = lab_screen(tmp_path, monkeypatch)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@snapshot_versions
def test_snapshot_with_a_baseline_and_a_context_at_80x24(snap_compare, tmp_path, monkeypatch):
    app, run_before = lab_screen(tmp_path, monkeypatch, "down", "down", "b", "left_square_bracket",
                                 "left_square_bracket")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_old_and_new_classes_show_from_120_columns_and_leave_at_80(runs_dir, tui):
    pilot = await open_lab(tui, runs_dir, (120, 30))
    screen = pilot.app.screen
    columns = [str(c.label) for c in screen.query_one(DataTable).ordered_columns]
    assert "old %" in columns and "new %" in columns
    row = screen.stats[next(iter(screen.groups))]
    assert row["old_acc"][0] is not None and row["new_acc"][0] is not None
    await pilot.resize_terminal(80, 24)
    await until(pilot, lambda: "old %" not in [str(c.label) for c in screen.query_one(DataTable).ordered_columns],
                what="the narrow table")
