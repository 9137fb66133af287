"""The runs table of the Runs screen (cltui.tui.screens.runs, cltui.tui.state.runquery): its columns (short id, seed,
iterations, overrides, accuracy over the contexts seen for a running run), sorting (o, O, a header click),
grouping by setup with mean ± SEM (g, enter, right, left; by a set of keys in tests/tui/test_lab_folder.py),
field filters, marks that stay where the cursor is and survive a restart, d and c on the marked runs, Home /
End, and the footer's keys. Driven by Textual's Pilot on the 30 runs of tests/helpers/daily.py and the fixed
runs of tests/helpers/fixed_runs.py; also the pure filter / sort / group functions on their own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets._footer import FooterKey

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.state.choices import MARKS
from cltui.tui.state.runquery import (
    GROUP_KEYS,
    PresetConfigs,
    Row,
    group_rows,
    parse_filter,
    row_of,
    short_id,
    sort_rows,
)
from core.runs.metrics import mean_sem
from tests.helpers.daily import FINAL
from tests.helpers.fixed_runs import IDS, write_fixture_runs
from tests.helpers.tui import settle

pytestmark = pytest.mark.anyio


# --- the pure part --------------------------------------------------------------------------------------


def row(run_id: str = "x", **kw: Any) -> Row:
    return Row(run_id, run_id, **{"status": "finished", "status_label": "finished", **kw})


def test_short_id_drops_what_has_its_own_column():
    assert short_id("20260103-085800-split-digits-class-er-s1", "split-digits", "class", "er", 1) == "01-03 08:58"
    assert short_id("20260103-085800-split-digits-class-er-s1-2", "split-digits", "class", "er", 1) == "01-03 08:58-2"
    assert short_id("20260103-085800-mine", "split-digits", "class", "er", 1) == "01-03 08:58 mine"
    assert short_id("no-stamp", None, None, None, None) == "no-stamp"
    # a merge's id, as `cltui merge` names it, is as short as the others
    assert short_id("20260106-092000-merge-sine-merge-l0-s0", "merge-sine", "task", "merge", 0) == "01-06 09:20"
    assert short_id("20260106-092000-merge-sine-merge-greedy-s3-2", "merge-sine", "task", "merge", 3) == \
        "01-06 09:20-2"


def test_field_filters_match_exactly_and_compare_numbers():
    rows = [row("a", method="er", seed=1, acc=0.95, iterations=50), row("b", method="deepinversion", seed=1, acc=0.5),
            row("c", method="ewc", seed=0, acc=None, status="failed", status_label="failed")]

    def ids(text: str) -> list[str]:
        flt, errors = parse_filter(text)
        assert errors == [], errors
        return [r.id for r in rows if flt.matches(r)]

    assert ids("method:er") == ["a"]  # never deepinversion
    assert ids("method:er,ewc") == ["a", "c"]
    assert ids("seed:1") == ["a", "b"]
    assert ids("acc>0.9") == ids("acc>90") == ids("acc>90%") == ["a"]
    assert ids("acc<=0.5") == ["b"]  # a run without an accuracy never passes a comparison
    assert ids("status:failed") == ["c"]
    assert ids("iterations:50") == ids("iters>=50") == ["a"]
    assert ids("-method:er seed:1") == ["b"]
    assert ids("deep") == ["b"]  # a free word: part of the id, method, … or status
    assert ids("METHOD:ER") == ["a"]


def test_a_bad_filter_says_what_is_wrong_and_keeps_the_good_terms():
    flt, errors = parse_filter("colour:red acc>high method> method:er")
    assert len(errors) == 3
    assert "unknown field “colour”" in errors[0] and "acc" in errors[0]
    assert "“high” is not a number" in errors[1]
    assert "needs a value" in errors[2]
    assert flt.matches(row(method="er")) and not flt.matches(row(method="ewc"))
    assert parse_filter("method<3")[1] == ["method is not a number: use method:value"]


def test_sorting_puts_missing_values_last_both_ways():
    rows = [row("a", acc=0.5), row("b", acc=None), row("c", acc=0.9)]
    assert [r.id for r in sort_rows(rows, "acc", True)] == ["c", "a", "b"]
    assert [r.id for r in sort_rows(rows, "acc", False)] == ["a", "c", "b"]


def test_groups_carry_n_mean_and_sem_of_finished_runs_only():
    rows = [row("a", method="er", acc=0.9, duration=2.0), row("b", method="er", acc=0.8, duration=4.0),
            row("c", method="er", acc=0.1, status="running", acc_seen=True), row("d", method="none", acc=0.2)]
    groups = group_rows(rows, "method", "acc", True)
    assert [(g.values, len(g.rows), g.acc_n) for g in groups] == [(("er",), 3, 2), (("none",), 1, 1)]
    assert (groups[0].acc, groups[0].acc_sem) == pytest.approx(mean_sem([0.9, 0.8]))
    assert groups[0].duration == pytest.approx(3.0)
    assert groups[1].acc_sem is None


def test_groups_by_a_set_of_keys_pool_only_what_they_share():
    """By the default keys (a setup), runs that differ in scenario, a swept value or iterations are never in one
    group; a group of runs scored by accuracy and by R² has no mean; every group's key is its own."""
    def run(run_id: str, scenario: str, iterations: int, acc: float, score: str = "accuracy",
            lam: str | None = None) -> Row:
        items = ((("method.lambda", f"lambda={lam}"),) if lam else ()) + (
            (("train.iterations", f"iterations={iterations}"),) if iterations != 300 else ())
        return row(run_id, preset="split-digits", method="none", scenario=scenario, iterations=iterations,
                   acc=acc, score=score, override_items=items, overrides=" ".join(t for _, t in items))

    rows = [run("a", "class", 300, 0.19), run("b", "class", 300, 0.21), run("c", "task", 300, 0.98),
            run("d", "class", 50, 0.15), run("e", "class", 300, 0.2, lam="1e6"),
            run("f", "class", 300, 0.22, lam="1e6"), run("g", "task", 300, -0.22, score="R²")]
    groups = group_rows(rows, GROUP_KEYS, "run", False)
    by_method = group_rows(rows, ("method",), "run", False)
    odd = group_rows([row("x", method=None), row("y", method="None"), row("z", method="none")], "method", "run", True)

    assert [[r.id for r in g.rows] for g in groups] == [["a", "b"], ["d"], ["e", "f"], ["c", "g"]]  # by newest
    assert [g.value("overrides") for g in groups] == ["", "", "lambda=1e6", ""]  # iterations: its own key
    assert [(g.score, g.acc) for g in groups][3] == (None, None)  # 98 % and R² -0.22 are not averaged
    assert groups[0].acc == pytest.approx(0.2) and groups[0].acc_n == 2
    assert by_method[0].score is None and by_method[0].acc is None
    assert len({g.key for g in groups}) == 4 and len({g.key for g in odd}) == 3


def test_rows_of_odd_records_and_overrides_against_the_preset():
    presets = PresetConfigs()
    base = {"preset": "split-digits", "config": {"scenario": "class", "method": {"name": "none"},
                                                   "train": {"seed": 2, "iterations": 50, "lr": 0.001}}}
    got = row_of("20260101-000000-split-digits-class-none-s2", base, "finished", presets)
    assert (got.short, got.seed, got.iterations, got.overrides) == ("01-01 00:00", 2, 50, "iterations=50")
    assert row_of("r", {**base, "preset": "no-such-preset"}, "finished", presets).overrides is None
    odd = row_of("r", {"config": [], "metrics": "?", "acc_matrix": [None], "timing": {"total_s": "x"}}, "failed",
                 presets)
    assert (odd.method, odd.acc, odd.duration, odd.overrides) == (None, None, None, None)
    running = row_of("r", {"status": "running", "acc_matrix": [[1.0, 0.0], [0.9, 0.7]],
                           "config": {"benchmark": {"contexts": 5}}}, "running")
    assert (running.acc, running.acc_seen, running.status_label) == (pytest.approx(0.8), True, "running 2/5")


# --- on screen ------------------------------------------------------------------------------------------


async def press(pilot: Pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def table(app: Any) -> DataTable:
    return app.screen.query_one("#runs", DataTable)


def headers(app: Any) -> list[str]:
    return [str(c.label) for c in table(app).ordered_columns]


def rows(app: Any) -> list[dict[str, str]]:
    """The table's rows, top to bottom: {header without its sort mark: cell, "key": row key}."""
    names = [h.replace(" ▲", "").replace(" ▼", "") or "mark" for h in headers(app)]
    t = table(app)
    return [{"key": str(r.key.value), **dict(zip(names, (str(c) for c in t.get_row(r.key)), strict=True))}
            for r in t.ordered_rows]


def cursor(app: Any) -> str:
    t = table(app)
    return str(t.ordered_rows[t.cursor_row].key.value)


async def put_cursor(pilot: Pilot, key: str) -> None:
    t = table(pilot.app)
    t.move_cursor(row=t.get_row_index(key), animate=False)
    await pilot.pause()


def footer(app: Any) -> list[str]:
    return [k.description for k in app.screen.query(FooterKey)]


async def test_the_columns_tell_seeds_iterations_and_overrides_apart(thirty, runs_dir, tui):
    for seed in (1, 2):  # the preset stores 100 per class: an override a user would set
        changed = runs_dir / f"20260103-085{4 + 2 * seed}00-split-digits-class-er-s{seed}" / "run.json"
        record = json.loads(changed.read_text())
        record["config"]["method"]["budget"] = 50
        changed.write_text(json.dumps(record))

    pilot = await tui.start(runs_dir, size=(160, 30))
    app = pilot.app
    names, shown, preview = headers(app), rows(app), app.screen.query_one("#preview", Static).content
    assert names == ["", "run ▼", "preset", "method", "scenario", "seed", "iters", "overrides", "status", "acc %",
                     "time"]
    assert [r["key"] for r in shown] == thirty  # newest first
    er = {r["key"]: r for r in shown}["20260103-085600-split-digits-class-er-s1"]
    assert (er["run"], er["preset"], er["seed"], er["iters"], er["status"], er["acc %"], er["time"]) == (
        "01-03 08:56", "split-digits", "1", "50", "finished", f"{100 * (FINAL['er'] - 0.06):.1f}", "2.5 s")
    assert er["overrides"] == "budget=50"  # iterations has a column of its own
    assert "set iterations=50 budget=50" in str(preview)  # the preview (of the newest, er s2) names every one
    none = {r["key"]: r for r in shown}["20260102-080000-split-digits-class-none-s0"]
    assert none["overrides"] == ""  # as the preset makes it


async def test_at_80_columns_columns_go_by_priority_and_no_cell_is_cut(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    names, shown, keys = headers(app), rows(app), footer(app)
    # what tells these runs apart stays; a column of one value in every run (scenario) goes first
    assert {"run ▼", "method", "seed", "iters", "status", "acc %"} <= set(names) and "scenario" not in names
    assert not any("…" in cell for r in shown for cell in r.values())
    assert keys[0] == "Quit"  # first: no other key pushes it off


async def test_a_long_preset_name_is_whole_with_room_and_shortened_in_the_middle_without(runs_dir, tui):
    write_fixture_runs(runs_dir)
    record = json.loads((runs_dir / IDS["finished"] / "run.json").read_text())
    record["preset"] = "split-digits-dfcil-very-long"
    (runs_dir / IDS["finished"] / "run.json").write_text(json.dumps(record))

    pilot = await tui.start(runs_dir, size=(140, 30))
    app = pilot.app
    wide = {r["key"]: r for r in rows(app)}
    pilot = await tui.start(runs_dir, size=(100, 30))
    app = pilot.app
    names, shown = headers(app), {r["key"]: r for r in rows(app)}

    assert wide[IDS["finished"]]["preset"] == "split-digits-dfcil-very-long"
    assert "preset" in names  # it tells the runs apart: shortened before it goes
    cut = shown[IDS["finished"]]["preset"]
    assert cut.startswith("split-d") and cut.endswith("-long") and "…" in cut
    assert shown[IDS["running"]]["acc %"] == "95.8 seen"  # a running run: the mean over the contexts seen
    assert shown[IDS["corrupted"]]["status"] == "unreadable"


async def test_o_cycles_the_sort_column_O_reverses_and_a_header_click_sorts(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen = {}
    for _ in range(12):  # run -> method -> seed -> iters -> status -> acc (the columns shown, in order)
        await press(pilot, "o")
        if any(h.startswith("acc %") for h in headers(app)[1:] if h.endswith(("▼", "▲"))):
            break
    seen["acc"] = (headers(app), [r["acc %"] for r in rows(app)][:3])
    await press(pilot, "O")
    seen["reversed"] = (headers(app), [r["acc %"] for r in rows(app)][:3])
    t = table(app)
    at = [h.rstrip(" ▲▼") for h in headers(app)].index("seed")
    x = sum(c.get_render_width(t) for c in t.ordered_columns[:at]) + 1  # inside the seed column's header
    await pilot.click("#runs", offset=(x, 0))
    await settle(pilot)
    seen["click"] = (headers(app)[at], [r["seed"] for r in rows(app)])
    await pilot.click("#runs", offset=(x, 0))
    await settle(pilot)
    seen["click again"] = (headers(app)[at], rows(app)[0]["seed"])

    assert "acc % ▼" in seen["acc"][0]
    assert seen["acc"][1] == ["92.3", "91.2", "90.1"]  # er at 300 iterations, best first
    assert "acc % ▲" in seen["reversed"][0]
    assert seen["reversed"][1] == ["26.9", "27.3", "27.5"]
    assert seen["click"][0] == "seed ▲" and seen["click"][1] == sorted(seen["click"][1])
    assert seen["click again"] == ("seed ▼", "2")


async def test_g_groups_by_setup_with_mean_and_sem_and_enter_right_left_open_and_close(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen = {}
    await press(pilot, "g")
    seen["groups"] = rows(app)
    seen["subtitle"] = app.screen.sub_title
    seen["preview"] = str(app.screen.query_one("#preview", Static).content)
    await press(pilot, "space")  # on a group row: marks nothing
    seen["marks"] = set(app.screen.marks())
    await press(pilot, "enter")
    seen["opened"] = [r["key"] for r in rows(app)][:5]
    await press(pilot, "down", "down", "left")  # on a run of the open group: closes it
    seen["closed"] = (len(rows(app)), cursor(app))
    await press(pilot, "right")
    seen["right"] = len(rows(app))
    await press(pilot, "g")  # off
    seen["off"] = (len(rows(app)), app.screen.sub_title)

    # one group per method and iteration count (a setup): 50 and 300 iterations are never averaged together
    assert [(r["method"], r["iters"]) for r in seen["groups"]] == [
        (m, n) for n in ("50", "300") for m in ("er", "lwf", "si", "ewc", "none")]  # newest run first
    mean, sem = mean_sem([FINAL["er"] - 0.06 + 0.011 * (s - 1) for s in (0, 1, 2)])
    er = seen["groups"][0]
    assert er["acc %"] == f"{100 * mean:.1f} ± {100 * sem:.1f}"
    assert (er["run"], er["seed"], er["preset"], er["scenario"]) == ("3 runs", "0,1,2", "split-digits", "class")
    assert "by setup" in seen["subtitle"]
    assert "split-digits · class-IL · er · 50 iterations  3 runs" in seen["preview"]
    assert "mean ± SEM over 3 finished" in seen["preview"]
    assert seen["marks"] == set()
    assert seen["opened"][0].startswith("\0group:preset,scenario,method,overrides,iterations:")
    assert seen["opened"][1:4] == thirty[:3]  # er s2, s1, s0 at 50 iterations
    assert seen["closed"] == (10, seen["opened"][0])
    assert seen["right"] == 13
    assert seen["off"][0] == 30 and "by " not in seen["off"][1]


async def test_field_filters_on_screen_and_a_bad_one_says_why(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen = {}
    await press(pilot, "slash", *"method:er")
    seen["er"] = {r["method"] for r in rows(app)}, len(rows(app))
    await press(pilot, "space", *"acc>90")
    seen["acc"] = len(rows(app))
    await press(pilot, *"x")
    seen["bad"] = (str(app.screen.query_one("#filter-error", Static).content),
                   app.screen.query_one("#filter-error").display, len(rows(app)))
    await press(pilot, "enter")
    seen["subtitle"] = app.screen.sub_title

    assert seen["er"] == ({"er"}, 6)
    assert seen["acc"] == 3  # er at 300 iterations: 90.1, 91.2, 92.3
    assert seen["bad"][0] == "“90x” is not a number (acc>number)" and seen["bad"][1]
    assert seen["bad"][2] == 6  # the bad term is left out, the rest still filters
    assert "1 term not understood" in seen["subtitle"] and "match" not in seen["subtitle"]  # no count for a filter
    # it could not read whole


async def test_space_marks_without_moving_and_marks_survive_a_restart(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await press(pilot, "space", "down", "space", "down", "space", "space")  # the third is marked, then not
    at, marked = cursor(app), {r["key"] for r in rows(app) if r["mark"] == "●"}
    await tui.close()
    assert at == thirty[2]
    assert marked == {thirty[0], thirty[1]}
    saved = json.loads((runs_dir / MARKS).read_text())
    assert saved["marks"] == sorted(marked)

    pilot = await tui.start(runs_dir)
    app = pilot.app
    marked_again, subtitle = {r["key"] for r in rows(app) if r["mark"] == "●"}, app.screen.sub_title
    assert marked_again == marked and "2 marked" in subtitle


@pytest.mark.parametrize("damage", ["{not json", '{"marks": "all"}', '[1, 2]', '{"marks": [1, null, "gone"]}'])
async def test_a_damaged_marks_file_is_no_marks(thirty, runs_dir, damage, tui):
    (runs_dir / MARKS).parent.mkdir()
    (runs_dir / MARKS).write_text(damage)

    pilot = await tui.start(runs_dir)
    app = pilot.app
    await press(pilot, "space")

    assert {r["key"] for r in rows(app) if r["mark"] == "●"} == {thirty[0]}
    assert json.loads((runs_dir / MARKS).read_text())["marks"] == [thirty[0]]


async def test_d_deletes_the_marked_runs_shown_but_never_a_running_one(runs_dir, tui):
    runs = write_fixture_runs(runs_dir)

    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen = {}
    for name in ("baseline", "failed", "running", "cancelled"):
        await put_cursor(pilot, IDS[name])
        await press(pilot, "space")
    await press(pilot, "slash", *"-status:cancelled", "enter")  # hides the marked cancelled run
    await press(pilot, "d")
    seen["question"] = (isinstance(app.screen, ConfirmScreen), app.screen.question, app.screen.detail)
    await press(pilot, "y")
    await settle(pilot)
    seen["rows"] = {r["key"] for r in rows(app)}
    seen["marks"] = set(app.screen.marked)
    seen["notes"] = list(tui.notes)

    asked, question, detail = seen["question"]
    assert asked and question == "Delete 2 marked runs?"
    assert IDS["baseline"] in detail and IDS["failed"] in detail
    assert "1 running run is kept" in detail and "1 marked run hidden by the filter is kept" in detail
    assert not runs["baseline"].exists() and not runs["failed"].exists()
    assert runs["running"].exists() and runs["cancelled"].exists()
    assert seen["marks"] == {IDS["running"], IDS["cancelled"]}
    assert "deleted 2 runs" in seen["notes"]


async def test_c_compares_only_the_marked_runs_shown_and_says_which_are_hidden(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    seen = {}
    await press(pilot, "c")  # nothing marked: stays, says how
    seen["nothing"] = (type(app.screen), list(tui.notes))
    for key in thirty[:3]:  # er s2, s1, s0 at 50 iterations
        await put_cursor(pilot, key)
        await press(pilot, "space")
    await press(pilot, "slash", *"seed<2", "enter")
    await press(pilot, "c")
    seen["compare"] = (type(app.screen), [p.name for p in app.screen.run_dirs]
                       if hasattr(app.screen, "run_dirs") else None, list(tui.notes))

    assert seen["nothing"][0] is RunsScreen and any("mark two runs" in n for n in seen["nothing"][1])
    screen, compared, notes = seen["compare"]
    assert screen is CompareScreen
    if compared is not None:
        assert set(compared) == {thirty[1], thirty[2]}
    assert any("1 marked run hidden by the filter left out" in n for n in notes)


async def test_keys_that_do_not_apply_do_nothing(tmp_path, tui):
    empty = tmp_path / "empty"
    empty.mkdir()

    pilot = await tui.start(empty)
    app = pilot.app
    await press(pilot, "g", "o", "O", "home", "end", "space", "c", "d", "enter", "right", "left")

    shown, screen, group_by, sort, keys = (rows(app), type(app.screen), app.screen.group_by, app.screen.sort,
                                           footer(app))
    notes = [n for n in tui.notes if "mark two runs" not in n]
    assert shown == [] and screen is RunsScreen
    assert (group_by, sort) == (None, "run")
    assert "Group" not in keys and "Sort" not in keys and "Quit" in keys
    assert notes == []


async def test_home_and_end_go_to_the_first_and_last_row(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir)
    app = pilot.app
    await press(pilot, "end")
    last = cursor(app)
    await press(pilot, "home")

    assert (last, cursor(app)) == (thirty[-1], thirty[0])


async def test_escape_clear_shows_in_the_footer_only_with_a_filter(thirty, runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    seen = {"before": footer(app)}
    await press(pilot, "slash", *"seed:1", "enter")
    seen["filtered"] = footer(app)
    await press(pilot, "escape")
    seen["after"] = (footer(app), len(rows(app)))

    assert "Clear" not in seen["before"] and "Clear" in seen["filtered"]
    assert seen["after"] == (seen["before"], 30)
    assert seen["filtered"][0] == "Quit"


async def test_S_opens_the_studies(thirty, runs_dir, tui):
    pytest.importorskip("cltui.tui.screens.studies")

    pilot = await tui.start(runs_dir)
    app = pilot.app
    await pilot.press("S")
    await pilot.pause()

    assert type(app.screen).__name__ == "StudiesScreen"


async def test_without_textuals_internals_the_table_falls_back_to_its_public_api(thirty, runs_dir, monkeypatch, tui):
    """The fast row moves use DataTable internals of the pinned Textual; where they are missing the table is
    filled through add_row and sorts and groups the same."""
    monkeypatch.setattr("cltui.tui.widgets.tables.FAST_ROWS", False)

    pilot = await tui.start(runs_dir)
    app = pilot.app
    first = [r["key"] for r in rows(app)]
    for _ in range(12):
        await press(pilot, "o")
        if any(h.startswith("acc %") and h.endswith(("▼", "▲")) for h in headers(app)):
            break
    by_acc = [r["acc %"] for r in rows(app)][:3]
    await press(pilot, "g")

    grouped = [r["key"] for r in rows(app)]
    assert first == thirty
    assert by_acc == ["92.3", "91.2", "90.1"]
    assert all("group:preset,scenario,method,overrides,iterations:" in key for key in grouped)
    assert len(grouped) == 10  # five methods x two iteration counts, closed
