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

from cltui.tui.screens.compose import ComposeScreen, SavePresetScreen
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.choices import LAST_CHOICE
from cltui.tui.state.form import methods_for
from cltui.tui.widgets.charts import AccuracyChart, AverageChart
from core.files import write_json_atomic
from core.runs.record import new_run_record, read_run_json
from core.runs.store import RunStore
from core.schema.presets import build_config, load_preset, toml_text
from tests.helpers.tui import FakeHandle, choose, field, open_compose, process_gone, static_text, tree_text, until

pytestmark = pytest.mark.anyio

SIZE = (100, 30)
PRESETS = Path(__file__).resolve().parents[2] / "presets"


def field_error(screen: ComposeScreen, key: str) -> str:
    row = field(screen, key).parent.parent
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

    # Escape leaves without starting anything.
    await pilot.press("escape")
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
