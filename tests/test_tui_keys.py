"""Keys that work on every screen (`?` for the keys, ctrl+q shown in every footer) and the compose form as a
daily tool: it starts from the last preset, scenario and method started here, and from a run to clone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from textual.widgets import Input, Static

from cltui.tui.app import create_app
from cltui.tui.screens.compose import ComposeScreen
from cltui.tui.screens.help import HelpScreen
from cltui.tui.state.choices import LAST_CHOICE
from core.files import write_json_atomic
from core.runs.record import new_run_record
from core.runs.store import RunStore, append_event
from core.schema.presets import build_config
from tests.tui_fixtures import FakeHandle, choose, field, open_compose, tree_text, until

SIZE = (100, 30)


def help_text(app: Any) -> str:
    return "\n".join(str(s.render()) for s in app.screen.query(Static))


def test_question_mark_lists_the_keys_of_the_screen_it_was_pressed_on(runs_dir):
    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
            text = help_text(app)
            assert "Keys · Runs" in text
            for key, what in (("n", "New"), ("c", "Compare"), ("d", "Delete"), ("/", "Filter"), ("^q", "Quit")):
                assert key in text and what in text, (key, what, text)
            await pilot.press("question_mark")  # ? again closes it, as escape does
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")
            await open_compose(app, pilot)
            await pilot.press("question_mark")  # the preset select has the focus: ? is a key, not text
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the compose help")
            text = help_text(app)
            assert "Keys · Compose" in text and "Start" in text and "Save preset" in text
            assert "Compare" not in text  # only the keys of the screen it was opened on
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ComposeScreen), what="back on compose")

    asyncio.run(drive())


def test_question_mark_typed_into_a_field_is_text_not_help(runs_dir):
    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_compose(app, pilot)
            field(screen, "train.lr").focus()
            await pilot.press("end", "question_mark")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)
            assert field(screen, "train.lr").value.endswith("?")

    asyncio.run(drive())


def test_ctrl_q_is_in_the_footer_of_every_screen(runs_dir):
    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            for _ in range(2):
                keys = {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}
                assert keys & {"quit", "app.quit"}, keys
                await open_compose(app, pilot)

    asyncio.run(drive())


def test_compose_starts_from_the_method_last_started_here(runs_dir, monkeypatch):
    def fake_start(config, run_dir, threads=None):
        write_json_atomic(run_dir / "run.json", new_run_record(run_dir.name, config.preset, config.to_dict(), {}))
        return FakeHandle(run_dir)

    monkeypatch.setattr("core.launch.worker.start_detached", fake_start)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_compose(app, pilot)
            await choose(pilot, screen, "scenario", "task")
            await choose(pilot, screen, "method", "lwf")
            await pilot.click("#start")
            await until(pilot, lambda: not isinstance(app.screen, ComposeScreen), what="the run started")
        assert json.loads((runs_dir / LAST_CHOICE).read_text()) == {"preset": "split-digits", "scenario": "task",
                                                                   "method": "lwf"}
        app = create_app(runs_dir)  # a new session in the same runs folder
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_compose(app, pilot)
            assert (field(screen, "scenario").value, field(screen, "method").value) == ("task", "lwf")

    asyncio.run(drive())


def test_a_damaged_or_foreign_last_choice_is_ignored(runs_dir):
    (runs_dir / LAST_CHOICE).parent.mkdir()
    for text in ("{not json", json.dumps({"preset": "no-such-preset", "method": "er"}),
                 json.dumps({"method": ["er"], "scenario": "sideways"})):
        (runs_dir / LAST_CHOICE).write_text(text)

        async def drive() -> None:
            app = create_app(runs_dir)
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_compose(app, pilot)
                assert screen.preset == "split-digits" and screen.scenario in ("class", "task", "domain")
                assert screen.validate_form() is not None  # a startable form, whatever the file said

        asyncio.run(drive())


def cloned_record(runs_dir: Path) -> dict[str, Any]:
    config = build_config("split-digits", method="ewc", scenario="task", seed=4,
                          overrides=["train.iterations=70", "model.hidden=[100, 50]", "method.lambda=123",
                                     "train.lr=0.01"])
    return new_run_record("20260101-090000-split-digits-task-ewc-s4", "split-digits", config.to_dict(), {})


def test_a_clone_starts_with_the_runs_config_including_what_the_form_has_no_field_for(runs_dir):
    record = cloned_record(runs_dir)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
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

    asyncio.run(drive())


def test_a_clone_of_a_run_whose_preset_is_gone_starts_from_the_default_form(runs_dir):
    record = cloned_record(runs_dir)
    record["preset"] = record["config"]["preset"] = "a-preset-deleted-since"

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = ComposeScreen(runs_dir, clone=record)
            app.push_screen(screen)
            await until(pilot, lambda: app.screen is screen and screen.is_mounted, what="the form")
            assert screen.preset == "split-digits" and screen.carried == [] and screen.origin == ""
            assert screen.validate_form() is not None

    asyncio.run(drive())


def test_shift_r_on_a_cancelled_run_resumes_it_in_a_detached_worker_to_the_end(runs_dir):
    """A real run stopped after its second context, resumed from the detail screen: the worker continues from
    the checkpoint in the same folder, the live screen follows it, and the contexts it had are kept."""
    from cltui.tui.screens.confirm import ConfirmScreen
    from cltui.tui.screens.detail import DetailScreen
    from cltui.tui.screens.live import LiveScreen
    from core import training
    from core.runs.record import read_run_json

    config = build_config("split-digits", device="cpu", overrides=["train.iterations=20"])
    folder = RunStore(runs_dir).new_run_dir_for(config)
    done: list = []
    def emit(event: Any) -> None:  # as a worker does: every event in events.jsonl too
        done.append(event)
        append_event(folder, event)

    stopped = training.run(config, folder, emit=emit,
                        should_stop=lambda: sum(type(e).__name__ == "ContextEvaluated" for e in done) >= 2)
    assert stopped["status"] == "cancelled" and len(stopped["acc_matrix"]) == 2
    seen: dict[str, Any] = {}

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.push_screen(DetailScreen(folder))
            await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, what="detail")
            await pilot.pause()
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), timeout=20, what="the live screen")
            live = app.screen
            seen["handle"] = app.launched.get(folder.name)
            # the old session's end is in events.jsonl too: the resumed session's RunStarted clears it
            await until(pilot, lambda: str(live.query_one("#outcome", Static).render()).startswith("✓ finished"),
                        timeout=90, what="the end of the resumed run")
            seen["tree"] = tree_text(live)

    asyncio.run(drive())
    assert seen["handle"] is not None and seen["handle"].wait(10) == 0
    record = read_run_json(folder)
    assert all(f"✓ context {k}" in seen["tree"] for k in range(5)), seen["tree"]
    assert record["status"] == "finished" and len(record["acc_matrix"]) == 5
    assert record["acc_matrix"][:2] == stopped["acc_matrix"]  # the contexts it had are kept, not retrained
