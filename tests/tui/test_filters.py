"""The runs screen's filter on any config key (cltui.tui.state.runquery's filter): dotted keys with
comparisons (`method.lambda>1e6`, `train.lr<=1e-3`), a key named by its last part when that is unambiguous,
`!=`, a typo in a key named with the nearest key, a subtitle that never counts the matches of a filter it could
not read whole, and the syntax on the `?` screen. The pure parser on rows with fixed configs; the screen on the
30 runs of tests/helpers/daily.py."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Static

from cltui.tui.screens.help import HelpScreen
from cltui.tui.state.runquery import Row, config_keys, parse_filter
from tests.helpers.daily import write_thirty_runs
from tests.helpers.tui import runs_rows, settle

pytestmark = pytest.mark.anyio


def run(run_id: str, **config: Any) -> Row:
    return Row(run_id, run_id, method="ewc", status="finished", status_label="finished", config=config)


ROWS = [
    run("small", **{"method.name": "ewc", "method.lambda": 100.0, "train.lr": 0.001, "train.iterations": 30}),
    run("large", **{"method.name": "ewc", "method.lambda": 1e7, "train.lr": 0.01, "train.iterations": 30}),
    run("huge", **{"method.name": "ewc", "method.lambda": 1e9, "train.lr": 0.001, "train.iterations": 300,
                   "benchmark.name": "folder", "model.bias": True}),
]


def ids(text: str) -> list[str]:
    flt, errors = parse_filter(text, config_keys(ROWS))
    assert errors == [], errors
    return [r.id for r in ROWS if flt.matches(r)]


def test_a_dotted_config_key_compares_numbers():
    assert ids("method.lambda>1e6") == ["large", "huge"]
    assert ids("train.lr<=1e-3") == ["small", "huge"]
    assert ids("method.lambda>=1e7 train.lr<1e-2") == ["huge"]
    assert ids("train.iterations:30") == ids("train.iterations=30") == ["small", "large"]
    assert ids("method.lambda=1e2") == ["small"]  # numbers by value, however they are written
    assert ids("train.lr!=0.001") == ["large"]
    assert ids("-method.lambda>1e6") == ["small"]


def test_a_key_by_its_last_part_text_and_booleans():
    assert ids("lambda>1e6") == ids("method.lambda>1e6")
    assert ids("lr=0.01") == ["large"]
    assert ids("benchmark.name:folder") == ["huge"]  # a run without the key never matches
    assert ids("model.bias:true") == ["huge"]


def test_a_key_no_run_has_is_an_error_that_names_the_nearest():
    flt, errors = parse_filter("method.lamda>1e6 method:ewc", config_keys(ROWS))
    assert errors == ["no run has the config key “method.lamda” (did you mean method.lambda?)"]
    assert len(flt.terms) == 1  # the good term stays
    assert parse_filter("method.lambda>big", config_keys(ROWS))[1] == ["“big” is not a number (method.lambda>number)"]
    assert "unknown field “colour”" in parse_filter("colour:red", config_keys(ROWS))[1][0]
    # a misspelt short name: the likely key first, before an 80-column line is cut
    assert parse_filter("lamda>1", config_keys(ROWS))[1] == ["unknown field “lamda”: did you mean method.lambda?"]
    assert parse_filter("methd:er", config_keys(ROWS))[1] == ["unknown field “methd”: did you mean method?"]


def test_an_ambiguous_last_part_asks_for_the_whole_key():
    rows = [run("a", **{"train.lr": 0.1, "generator.lr": 0.01})]
    errors = parse_filter("lr>0.05", config_keys(rows))[1]
    assert errors == ["“lr” is ambiguous: write one of generator.lr, train.lr"]


async def test_the_screen_filters_on_a_dotted_key_and_never_counts_a_bad_filter(runs_dir, tui):
    write_thirty_runs(runs_dir)
    pilot = await tui.start(runs_dir, size=(100, 30))
    app = pilot.app
    await settle(pilot)
    await pilot.press("slash", *"train.iterations<100")
    await settle(pilot)
    shown = set(runs_rows(app))
    subtitle = app.screen.sub_title
    await pilot.press(*" method.lamda>1")
    await settle(pilot)
    bad_subtitle = app.screen.sub_title
    error = str(app.screen.query_one("#filter-error", Static).render())

    assert len(shown) == 15 and all(i.startswith("20260103") for i in shown)  # the 50-iteration ones
    assert "15 match “train.iterations<100”" in subtitle
    assert "match" not in bad_subtitle and "1 term not understood" in bad_subtitle
    assert "method.lamda" in error


async def test_the_keys_screen_of_the_runs_screen_explains_the_filter(runs_dir, tui):
    write_thirty_runs(runs_dir)
    pilot = await tui.start(runs_dir, size=(80, 24))
    await settle(pilot)
    await pilot.press("question_mark")
    await pilot.pause()
    screen = pilot.app.screen
    text = str(screen.query_one("#help-list", Static).render())

    assert isinstance(screen, HelpScreen)
    assert "method.lambda>1e6" in text and "train.lr<=1e-3" in text and "method:er,ewc" in text
