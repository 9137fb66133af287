"""The compose screen under Textual's Pilot: the preset's defaults and only the methods of the scenario, inline
validation that starts nothing while the form is invalid, ctrl+s launching the run (a fake worker) and opening it
live, the form saved as a preset; a form that starts from the last preset, scenario and method started here, and
from a run to clone. End to end: a tiny split-digits run composed, trained by the real detached worker and
watched to the end in the live screen and the runs table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select, Static

from cltui.tui.screens.compose import ComposeScreen, SavePresetScreen, row_of
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.choices import LAST_CHOICE
from cltui.tui.state.form import methods_for
from cltui.tui.widgets.charts import AccuracyChart, AverageChart
from core.files import write_json_atomic
from core.runs.record import new_run_record, read_run_json
from core.runs.store import RunStore
from core.schema.presets import build_config, load_preset, toml_text
from tests.helpers.tui import (
    BareApp,
    FakeHandle,
    choose,
    field,
    open_compose,
    process_gone,
    screen_text,
    settle,
    static_text,
    tree_text,
    until,
)

pytestmark = pytest.mark.anyio

SIZE = (100, 30)
PRESETS = Path(__file__).resolve().parents[2] / "presets"


def field_error(screen: ComposeScreen, key: str) -> str:
    row = row_of(field(screen, key))
    assert row is not None
    return str(row.query_one("Static.error", Static).render()) if row.has_class("-invalid") else ""


async def test_compose_shows_the_preset_and_only_valid_methods(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    assert field(screen, "preset").value == "split-digits"
    assert field(screen, "scenario").value == "class"
    assert field(screen, "method").value == "none"
    assert field(screen, "train.iterations").value == "300"
    assert field(screen, "train.lr").value == "0.001"
    assert "✓ ready" in static_text(screen, "#verdict")
    offered = [value for _, value in field(screen, "method")._options if value != Select.NULL]
    assert "xdg" not in offered and "separate" not in offered and "ewc" in offered
    assert offered == methods_for("class")

    # ewc: its per-scenario tuned lambda from the preset is the default shown, with its help.
    await choose(pilot, screen, "method", "ewc")
    assert field(screen, "method.lambda").value == toml_text(1e9)
    assert "Penalty strength" in str(field(screen, "method.lambda").parent.query_one(".help").render())
    await choose(pilot, screen, "scenario", "task")
    assert field(screen, "method.lambda").value == toml_text(1e5)
    offered = [value for _, value in field(screen, "method")._options]
    assert "xdg" in offered
    await choose(pilot, screen, "method", "xdg")
    assert field(screen, "method.gating").value == "0.9"
    await choose(pilot, screen, "scenario", "class")  # xdg is task-IL only: back to none
    assert field(screen, "method").value == "none"
    assert screen.config is not None and screen.config.method.name == "none"

    # A method parameter typed by the user survives a scenario change.
    await choose(pilot, screen, "method", "er")
    assert field(screen, "method.budget").value == "20"
    field(screen, "method.budget").value = "7"
    await pilot.pause()
    await choose(pilot, screen, "scenario", "domain")
    assert field(screen, "method.budget").value == "7"
    assert screen.config is not None and screen.config.method.budget == 7


async def test_compose_validates_inline_and_starts_nothing_while_invalid(runs_dir, monkeypatch, tui):
    started: list[Any] = []
    monkeypatch.setattr("core.launch.worker.start_detached", lambda *a, **k: started.append(a))

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    lr = field(screen, "train.lr")
    lr.focus()
    await pilot.press("end", "backspace", "backspace", "backspace", "backspace", "backspace", "-", "1")
    await pilot.pause()
    assert "greater than 0" in field_error(screen, "train.lr")
    field(screen, "train.iterations").value = "many"
    await pilot.pause()
    assert "valid integer" in field_error(screen, "train.iterations")
    assert "fix train.iterations, train.lr" in static_text(screen, "#verdict")
    await pilot.press("ctrl+s")
    await pilot.pause()
    assert started == [] and list(runs_dir.iterdir()) == []
    assert app.screen is screen and app.focused is field(screen, "train.iterations")

    # A check that needs the whole config (the device pattern) lands on its field too.
    field(screen, "train.iterations").value = "20"
    lr.value = "0.01"
    field(screen, "train.device").value = "gpu"
    await pilot.pause()
    assert "is not a device" in field_error(screen, "train.device")
    field(screen, "train.device").value = "cpu"
    await pilot.pause()
    assert "✓ ready" in static_text(screen, "#verdict") and field_error(screen, "train.device") == ""
    assert screen.config.train.lr == 0.01 and screen.config.train.iterations == 20

    # Escape leaves without starting anything (once the changes are discarded).
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the discard question")
    await pilot.press("y")
    await until(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    assert started == []


async def test_ctrl_s_launches_the_run_and_opens_it_live(runs_dir, monkeypatch, tui):
    launched: list[Any] = []

    def fake_start(config, run_dir, threads=None):
        write_json_atomic(run_dir / "run.json", new_run_record(run_dir.name, config.preset, config.to_dict(), {}))
        handle = FakeHandle(run_dir)
        launched.append((config, handle))
        return handle

    monkeypatch.setattr("core.launch.worker.start_detached", fake_start)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    await choose(pilot, screen, "method", "si")
    field(screen, "train.seed").value = "3"
    await pilot.pause()
    await pilot.click("#start")  # the Start button does what ctrl+s does
    await until(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
    config, handle = launched[0]
    assert config.method.name == "si" and config.method.c == 5e3 and config.train.seed == 3
    assert app.launched == {handle.run_id: handle}
    assert app.screen.run_dir == handle.run_dir and handle.run_dir.parent == runs_dir
    assert handle.run_id.endswith("split-digits-class-si-s3")


async def test_the_composed_config_saves_as_a_preset(runs_dir, tmp_path, monkeypatch, tui):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "split-digits.toml").write_text((PRESETS / "split-digits.toml").read_text())
    monkeypatch.setenv("CLTUI_PRESETS_DIR", str(presets))

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    await choose(pilot, screen, "method", "ewc")
    field(screen, "train.iterations").value = "42"
    await pilot.pause()
    await pilot.press("f2")
    await until(pilot, lambda: isinstance(app.screen, SavePresetScreen), what="the name question")
    name = app.screen.query_one(Input)
    name.value = "my-ewc"
    await pilot.press("enter")
    await until(pilot, lambda: (presets / "my-ewc.toml").exists(), what="the preset file")
    assert app.screen is screen
    assert "my-ewc" in [value for _, value in field(screen, "preset")._options]

    # Saving again under the same name asks first; no keeps the file as it was.
    field(screen, "train.iterations").value = "43"
    await pilot.pause()
    for answer, iterations in (("n", 42), ("y", 43)):
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, SavePresetScreen))
        app.screen.query_one(Input).value = "my-ewc"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the overwrite question")
        await pilot.press(answer)
        await until(pilot, lambda: app.screen is screen)
        await pilot.pause(0.1)
        assert build_config("my-ewc").train.iterations == iterations
    saved = build_config("my-ewc")
    assert saved.method.name == "ewc" and saved.method.lambda_ == 1e9 and saved.scenario == "class"
    # The base preset's tuned defaults travel along: another method on top of it keeps them.
    assert build_config("my-ewc", method="si", scenario="task").method.c == 10
    assert load_preset("my-ewc")["description"].startswith("Composed in cltui from split-digits")


# --- how the form reads at 80x24: labels, focus, leaving, the scenario's description -------------------


def line_of(app: Any, label: str) -> str:
    """The screen's line that starts with the form row label `label` (after the focus marker, if any)."""
    lines = [line for line in screen_text(app).splitlines() if line.lstrip(" ▸").startswith(label)]
    assert len(lines) == 1, f"{label!r} on {len(lines)} lines of:\n{screen_text(app)}"
    return lines[0]


async def test_every_label_stands_apart_from_its_value_at_80x24(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    screen = await open_compose(app, pilot)
    await choose(pilot, screen, "method", "gan-finetune")  # the longest labels: samples per class, reverse ...
    rows = screen.rows()
    assert any(len(row.spec.label) >= 17 for row in rows)
    for row in rows:
        row.control.focus(scroll_visible=False)
        await pilot.pause()  # the help line below the form takes the field's help (and its height) first
        screen.query_one("#form").scroll_to_widget(row, animate=False)
        await pilot.pause()
        value = row.value_text() or row.spec.default_text
        line = line_of(app, row.spec.label)
        # the whole label, at least one space, then the value: never `dreams per class20`
        assert f"{row.spec.label} " in line and f" {value}" in line.partition(row.spec.label)[2], line
    columns = {line_of(app, row.spec.label).index(row.value_text() or row.spec.default_text) for row in rows[-5:]}
    assert len(columns) == 1  # the values line up


async def test_the_focused_field_is_marked_beside_its_label(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    screen = await open_compose(app, pilot)
    marked = [line for line in screen_text(app).splitlines() if "▸" in line]
    assert len(marked) == 1 and "preset" in marked[0]  # the focus starts on the preset
    for _ in range(3):
        await pilot.press("tab")  # scenario, method, iterations
    await pilot.pause()
    assert app.focused is field(screen, "train.iterations")
    marked = [line for line in screen_text(app).splitlines() if "▸" in line]
    assert len(marked) == 1 and marked[0].lstrip().startswith("▸ iterations"), marked
    label, other = (field(screen, key).parent.query_one("Label.name") for key in ("train.iterations", "train.lr"))
    assert label.styles.color != other.styles.color  # the focused label in the accent colour, not muted


async def test_escape_asks_before_it_discards_changes_and_leaves_at_once_when_there_are_none(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    screen = await open_compose(app, pilot)
    await pilot.press("escape")  # nothing changed: straight back
    await until(pilot, lambda: not isinstance(app.screen, ComposeScreen), what="back to the runs")

    screen = await open_compose(app, pilot)
    await choose(pilot, screen, "method", "ewc")
    field(screen, "train.iterations").value = "42"
    await pilot.pause()
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the discard question")
    assert "Discard" in app.screen.question
    await pilot.press("n")  # keep editing: the form as it was
    await until(pilot, lambda: app.screen is screen)
    assert field(screen, "train.iterations").value == "42" and field(screen, "method").value == "ewc"
    await pilot.press("escape", "escape")  # the question's escape is "no" too
    await until(pilot, lambda: app.screen is screen)
    field(screen, "train.iterations").value = "300"  # changed back to what it was: nothing to lose
    await choose(pilot, screen, "method", "none")
    await pilot.press("escape")
    await until(pilot, lambda: not isinstance(app.screen, (ComposeScreen, ConfirmScreen)), what="back at once")

    screen = await open_compose(app, pilot)
    field(screen, "train.seed").value = "7"
    await pilot.pause()
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")  # discard
    await until(pilot, lambda: not isinstance(app.screen, (ComposeScreen, ConfirmScreen)), what="the runs")
    screen = await open_compose(app, pilot)
    assert field(screen, "train.seed").value == "0"


async def test_another_preset_describes_its_own_scenario(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    screen = await open_compose(app, pilot)
    assert static_text(screen, "#scenario-help").startswith("class-incremental")
    for preset, scenario in (("merge-sine", "task"), ("stability-gap", "domain"), ("split-digits", "class")):
        await choose(pilot, screen, "preset", preset)
        assert field(screen, "scenario").value == scenario
        assert static_text(screen, "#scenario-help").startswith(f"{scenario}-incremental"), preset
        field(screen, "scenario").focus()  # the help line under the form describes it too, and follows it
        await pilot.pause()
        assert static_text(screen, "#field-help").startswith(f"{scenario}-incremental"), preset
    await choose(pilot, screen, "scenario", "domain")
    assert static_text(screen, "#field-help").startswith("domain-incremental")
    assert static_text(screen, "#scenario-help").startswith("domain-incremental")


# --- the last choice and a clone ----------------------------------------------------------------------


async def test_compose_starts_from_the_method_last_started_here(runs_dir, monkeypatch, tui):
    def fake_start(config, run_dir, threads=None):
        write_json_atomic(run_dir / "run.json", new_run_record(run_dir.name, config.preset, config.to_dict(), {}))
        return FakeHandle(run_dir)

    monkeypatch.setattr("core.launch.worker.start_detached", fake_start)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    await choose(pilot, screen, "scenario", "task")
    await choose(pilot, screen, "method", "lwf")
    await pilot.click("#start")
    await until(pilot, lambda: not isinstance(app.screen, ComposeScreen), what="the run started")
    await tui.close()
    assert json.loads((runs_dir / LAST_CHOICE).read_text()) == {"preset": "split-digits", "scenario": "task",
                                                               "method": "lwf"}
    pilot = await tui.start(runs_dir, size=SIZE)  # a new session in the same runs folder
    app = pilot.app
    screen = await open_compose(app, pilot)
    assert (field(screen, "scenario").value, field(screen, "method").value) == ("task", "lwf")


async def test_a_damaged_or_foreign_last_choice_is_ignored(runs_dir, tui):
    (runs_dir / LAST_CHOICE).parent.mkdir()
    for text in ("{not json", json.dumps({"preset": "no-such-preset", "method": "er"}),
                 json.dumps({"method": ["er"], "scenario": "sideways"})):
        (runs_dir / LAST_CHOICE).write_text(text)

        pilot = await tui.start(runs_dir, size=SIZE)
        app = pilot.app
        screen = await open_compose(app, pilot)
        assert screen.preset == "split-digits" and screen.scenario in ("class", "task", "domain")
        assert screen.validate_form() is not None  # a startable form, whatever the file said


def cloned_record(runs_dir: Path) -> dict[str, Any]:
    config = build_config("split-digits", method="ewc", scenario="task", seed=4,
                          overrides=["train.iterations=70", "model.hidden=[100, 50]", "method.lambda=123",
                                     "train.lr=0.01"])
    return new_run_record("20260101-090000-split-digits-task-ewc-s4", "split-digits", config.to_dict(), {})


async def test_a_clone_starts_with_the_runs_config_including_what_the_form_has_no_field_for(runs_dir, tui):
    record = cloned_record(runs_dir)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = ComposeScreen(runs_dir, clone=record)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen and screen.is_mounted, what="the cloned form")
    await pilot.pause()
    assert (field(screen, "scenario").value, field(screen, "method").value) == ("task", "ewc")
    assert field(screen, "train.iterations").value == "70" and field(screen, "train.seed").value == "4"
    assert field(screen, "method.lambda").value == "123"
    carried = str(screen.query_one("#carried", Static).render())
    assert record["id"] in carried and "model.hidden=[100, 50]" in carried
    config = screen.validate_form()
    assert config is not None and config.to_dict() == record["config"]  # the same run, to the last field
    screen.query_one("#field-train-seed", Input).value = "5"
    await pilot.pause()
    config = screen.validate_form()
    assert config is not None and config.train.seed == 5 and config.model.hidden == [100, 50]
    await choose(pilot, screen, "preset", "split-mnist")  # another preset: the clone no longer applies
    assert screen.carried == [] and str(screen.query_one("#carried", Static).render()) == ""


async def test_a_clone_of_a_run_whose_preset_is_gone_starts_from_the_default_form(runs_dir, tui):
    record = cloned_record(runs_dir)
    record["preset"] = record["config"]["preset"] = "a-preset-deleted-since"

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = ComposeScreen(runs_dir, clone=record)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen and screen.is_mounted, what="the form")
    assert screen.preset == "split-digits" and screen.carried == [] and screen.origin == ""
    assert screen.validate_form() is not None


# --- end to end ---------------------------------------------------------------------------------------


async def test_compose_a_tiny_run_watch_it_train_and_find_it_finished(runs_dir, tui):
    seen: dict[str, Any] = {}

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    assert field(screen, "preset").value == "split-digits" and field(screen, "method").value == "none"
    assert field(screen, "scenario").value == "class"
    await pilot.click("#field-train-iterations")
    await pilot.press("end", "backspace", "backspace", "backspace", "2", "0")
    await pilot.pause()
    assert "5 contexts × 20 it" in static_text(screen, "#verdict")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
    live = app.screen
    [handle] = app.launched.values()
    seen["handle"] = handle
    await until(pilot, lambda: "context 0" in tree_text(live), timeout=60, what="the first context")
    await until(pilot, lambda: live.query_one("#outcome").display, timeout=90, what="the end of the run")
    seen["outcome"] = static_text(live, "#outcome")
    seen["tree"] = tree_text(live)
    await until(pilot, lambda: len(live.query_one(AccuracyChart).matrix or []) == 5, what="the chart")
    seen["average"] = live.query_one(AverageChart).matrix
    await pilot.press("escape")
    await until(pilot, lambda: app.screen.query("#runs"), what="the runs screen")
    table = app.screen.query_one("#runs")
    await until(pilot, lambda: table.row_count == 1 and "finished" in " ".join(
        str(cell) for cell in table.get_row_at(0)), what="the run finished in the table")
    await pilot.press("q")
    await pilot.pause(0.2)
    await tui.close()
    seen["exited"] = True
    handle = seen["handle"]
    assert seen["outcome"].startswith("✓ finished") and "final avg acc" in seen["outcome"]
    assert all(f"✓ context {k}" in seen["tree"] for k in range(5))
    assert len(seen["average"]) == 5
    record = read_run_json(handle.run_dir)
    assert record["status"] == "finished" and record["config"]["train"]["iterations"] == 20
    assert record["pid"] == handle.pid
    assert handle.wait(10) == 0 and process_gone(handle.pid)  # no process left behind
    assert json.loads((handle.run_dir / "run.json").read_text())["acc_matrix"] == seen["average"]
    assert RunStore(runs_dir).list()[0].status == "finished"


# --- a clone of a merge ---------------------------------------------------------------------------------


def write_merge(runs_dir: Path, with_teachers: bool = True) -> tuple[Path, list[str]]:
    """A finished merge of two merge-sine teachers (joint on waves 0-1 and 2-4), as `cltui merge` records it:
    the first teacher's config with the merge's steps and method; the teachers' run folders when asked."""
    teachers = []
    for seed, learn in ((0, "[0, 1]"), (1, "[2, 3, 4]")):
        config = build_config("merge-sine", method="joint", seed=seed, overrides=[f"benchmark.learn_contexts={learn}",
                                                                                  "train.iterations=40"])
        run_id = f"20260101-09000{seed}-merge-sine-task-joint-s{seed}"
        record = new_run_record(run_id, "merge-sine", config.to_dict(), {})
        record.update(status="finished", finished="2026-01-01T09:01:00+00:00", acc_matrix=[[0.5] * 5])
        if with_teachers:
            (runs_dir / run_id).mkdir()
            write_json_atomic(runs_dir / run_id / "run.json", record)
        teachers.append((run_id, config.to_dict()))
    merged = {**teachers[0][1], "benchmark": {**teachers[0][1]["benchmark"], "learn_contexts": None},
              "train": {**teachers[0][1]["train"], "seed": 3, "iterations": 2000},
              "method": {"name": "merge", "approach": "l0", "data": "union", "teachers": [t for t, _ in teachers]}}
    run_id = "20260101-100000-merge-sine-task-merge-s3"
    record = new_run_record(run_id, "merge-sine", merged, {})
    record.update(status="finished", finished="2026-01-01T10:01:00+00:00", acc_matrix=[[0.8] * 5],
                  merge={"approach": "l0", "data": "union", "settings": {"iterations": 1000},
                         "teachers": [{"id": t, "accuracies": [0.5] * 5, "learned": []} for t, _ in teachers]})
    (runs_dir / run_id).mkdir()
    write_json_atomic(runs_dir / run_id / "run.json", record)
    return runs_dir / run_id, [t for t, _ in teachers]


async def clone_of(tui: Any, runs_dir: Path, run: Path) -> ComposeScreen:
    """`e` on the detail screen of `run`: the compose form it opens."""
    from cltui.tui.screens.detail import DetailScreen

    pilot = await tui.start(app=BareApp(runs_dir), size=SIZE)
    app = pilot.app
    await app.push_screen(DetailScreen(run))
    await settle(pilot, 0.2)
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, ComposeScreen), what="the compose form")
    await settle(pilot)
    return app.screen


async def test_e_on_a_merge_opens_the_form_with_its_preset_and_its_teachers_method_and_settings(runs_dir, tui):
    merge, (first, second) = write_merge(runs_dir)

    screen = await clone_of(tui, runs_dir, merge)
    assert (field(screen, "preset").value, field(screen, "scenario").value) == ("merge-sine", "task")
    assert field(screen, "method").value == "joint"  # what its teachers were trained with, not `none`
    assert field(screen, "train.iterations").value == "40" and field(screen, "train.seed").value == "0"
    carried = static_text(screen, "#carried")
    assert f"cltui merge {first} {second} --approach l0 --data union" in carried and first in carried
    assert "benchmark.learn_contexts=[0, 1]" in carried
    config = screen.validate_form()
    assert config is not None and config.method.name == "joint" and config.benchmark.learn_contexts == [0, 1]


async def test_e_on_a_merge_whose_teachers_are_gone_keeps_its_preset_model_and_data(runs_dir, tui):
    merge, _ = write_merge(runs_dir, with_teachers=False)

    screen = await clone_of(tui, runs_dir, merge)
    assert (field(screen, "preset").value, field(screen, "method").value) == ("merge-sine", "joint")
    assert field(screen, "train.iterations").value == "400"  # the preset's, not the merge's 2000 steps
    assert field(screen, "train.seed").value == "3"
    assert "is a merge" in static_text(screen, "#carried")
    config = screen.validate_form()
    assert config is not None and config.method.name == "joint" and config.benchmark.learn_contexts is None
