"""The Compose and Live screens, driven by Textual's Pilot, and the events.jsonl follower behind Live.

Live tests write a run folder by hand and append events to it as a worker would; compose tests start nothing
real except the one end-to-end test, which composes a tiny split-digits run through the form, lets the real
detached worker train it, and watches it to the end in the live screen and the runs table.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Log, Select, Static

from cltui.tui.app import create_app
from cltui.tui.screens.compose import ComposeScreen, SavePresetScreen
from cltui.tui.screens.confirm import ChoiceScreen, ConfirmScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.follow import LineTail, parse_events
from cltui.tui.state.form import methods_for
from cltui.tui.widgets.charts import AccuracyChart, AverageChart
from core.files import write_json_atomic
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    PhaseFinished,
    PhaseStarted,
    Progress,
    RunFailed,
    RunStarted,
    to_json,
)
from core.runs.record import new_run_record, read_run_json
from core.runs.store import RunStore, append_event
from core.schema.presets import build_config, load_preset, toml_text
from tests.tui_fixtures import FakeHandle, choose, field, open_compose, tree_text, until

SIZE = (100, 30)
PRESETS = Path(__file__).resolve().parent.parent / "presets"


# --- helpers -------------------------------------------------------------------------------------------








def static_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def running_run(runs_dir: Path, name: str = "20260101-120000-split-digits-class-none-s0", pid: int | None = None,
                contexts: int = 3) -> Path:
    """A run folder as a worker leaves it right after starting: run.json (running, a live pid), no events."""
    folder = runs_dir / name
    folder.mkdir(parents=True)
    config = build_config("split-digits", overrides=[f"benchmark.contexts={contexts}", "train.iterations=300",
                                                     "benchmark.classes_per_context=1"])
    record = new_run_record(name, "split-digits", config.to_dict(), {})
    record["pid"] = os.getpid() if pid is None else pid
    write_json_atomic(folder / "run.json", record)
    (folder / "worker.log").write_text("worker pid 1 started\n")
    return folder


def first_context(run_dir: Path, step: int = 120) -> None:
    for event in (RunStarted(run_id=run_dir.name, contexts=3, device="cpu", config={}, t=100.0),
                  ContextStarted(context=0, classes=[0, 1], iterations=300, t=101.0),
                  PhaseStarted(context=0, phase="train", total=300, t=101.0),
                  Progress(context=0, phase="train", step=step, total=300, loss=0.4321, samples_per_s=25000.0,
                           t=102.0)):
        append_event(run_dir, event)


def finish_context(run_dir: Path, k: int, accuracies: list[float], t: float) -> None:
    for event in (PhaseFinished(context=k, phase="train", seconds=1.5, t=t),
                  PhaseStarted(context=k, phase="fisher", total=200, t=t),
                  Progress(context=k, phase="fisher", step=200, total=200, t=t + 0.1),
                  PhaseFinished(context=k, phase="fisher", seconds=0.2, t=t + 0.2),
                  PhaseStarted(context=k, phase="eval", total=3, t=t + 0.2),
                  PhaseFinished(context=k, phase="eval", seconds=0.05, t=t + 0.3),
                  ContextEvaluated(context=k, accuracies=accuracies, train_s=1.5, final_loss=0.05, t=t + 0.3)):
        append_event(run_dir, event)




async def open_live(app: Any, pilot: Pilot, run_dir: Path) -> LiveScreen:
    screen = LiveScreen(run_dir)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen and screen.is_mounted, what="the live screen")
    return screen


# --- the follower ----------------------------------------------------------------------------------------


def test_line_tail_reads_complete_lines_once_and_waits_for_the_rest(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = LineTail(path)
    assert tail.read() == []  # not there yet: nothing, no error
    path.write_text("one\ntw")
    assert tail.read() == ["one"]
    assert tail.read() == []  # the partial line waits for its newline
    with path.open("a") as f:
        f.write("o\nthree\n")
    assert tail.read() == ["two", "three"]
    path.write_text("new\n")  # replaced by a shorter file: read from its start
    assert tail.read() == ["new"]


def test_line_tail_from_the_end_skips_the_cut_line(tmp_path):
    path = tmp_path / "worker.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    lines = LineTail(path, from_end=30).read()
    assert lines and lines[-1] == "line 999" and all(line.startswith("line ") for line in lines)
    assert len(lines) < 5


def test_parse_events_skips_damaged_lines():
    good = to_json(ContextStarted(context=0, classes=[0, 1], iterations=5, t=1.0))
    events, skipped = parse_events([good, "{not json", '{"event": "Nope"}', "", good])
    assert [type(e) for e in events] == [ContextStarted, ContextStarted] and skipped == 2


# --- live ------------------------------------------------------------------------------------------------


def test_live_follows_events_as_they_are_appended(runs_dir):
    run_dir = running_run(runs_dir)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_live(app, pilot, run_dir)
            assert "waiting for the worker" in static_text(screen, "#run-summary")
            first_context(run_dir)
            await until(pilot, lambda: "120/300" in tree_text(screen), what="training progress in the tree")
            text = tree_text(screen)
            assert "context 0" in text and "classes 0,1" in text and "loss 0.432" in text
            # one numbering on the screen: the tree's "context 0" is the summary's, counts are counts
            assert "context 0 · 0/3 evaluated" in static_text(screen, "#run-summary")

            # A line half written: nothing of it shows until its newline arrives.
            line = to_json(Progress(context=0, phase="train", step=250, total=300, loss=0.2, t=103.0))
            with (run_dir / "events.jsonl").open("a") as f:
                f.write(line[:20])
            await pilot.pause(0.4)
            assert "250/300" not in tree_text(screen)
            with (run_dir / "events.jsonl").open("a") as f:
                f.write(line[20:] + "\n")
            await until(pilot, lambda: "250/300" in tree_text(screen), what="the completed line")

            # A context evaluated: consolidation and eval phases, accuracies, both charts.
            finish_context(run_dir, 0, [0.99, 0.0, 0.0], t=104.0)
            with (run_dir / "worker.log").open("a") as f:
                f.write("context 0 evaluated\n")
            await until(pilot, lambda: screen.query_one(AccuracyChart).matrix == [[0.99, 0.0, 0.0]],
                        what="the accuracy chart")
            assert screen.query_one(AverageChart).matrix == [[0.99, 0.0, 0.0]]
            text = tree_text(screen)
            assert "fisher" in text and "200/200" in text
            assert "seen 99.0%" in text and "on c0" in text and "not trained" in text
            await until(pilot, lambda: "context 0 evaluated" in "\n".join(screen.query_one(Log).lines),
                        what="the worker.log tail")

            # The next context: a second row in the charts, the first context folds only when it is old.
            append_event(run_dir, ContextStarted(context=1, classes=[2, 3], iterations=300, t=105.0))
            finish_context(run_dir, 1, [0.5, 0.97, 0.0], t=106.0)
            await until(pilot, lambda: len(screen.query_one(AccuracyChart).matrix or []) == 2, what="row 2")
            assert "avg seen 73.5%" in static_text(screen, "#run-summary")
            assert screen.query_one("#outcome").display is False
            assert screen.is_current  # still following; no outcome yet

    asyncio.run(drive())


def test_charts_redraw_at_most_four_times_a_second(runs_dir, monkeypatch):
    run_dir = running_run(runs_dir, contexts=10)
    first_context(run_dir)
    drawn: list[int] = []
    original = AccuracyChart.set_matrix

    def counting(self: AccuracyChart, acc_matrix: Any, joint: bool | None = None) -> None:
        drawn.append(len(acc_matrix))
        original(self, acc_matrix, joint)

    monkeypatch.setattr(AccuracyChart, "set_matrix", counting)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_live(app, pilot, run_dir)
            await until(pilot, lambda: "120/300" in tree_text(screen))
            drawn.clear()
            started = time.monotonic()
            for k in range(40):  # a row every 30 ms: far more often than a chart may redraw
                append_event(run_dir, ContextStarted(context=k, classes=[k], iterations=300, t=110.0 + k))
                append_event(run_dir, ContextEvaluated(context=k, accuracies=[0.9] * 50, train_s=0.1,
                                                       final_loss=0.1, t=110.5 + k))
                await pilot.pause(0.03)
            await until(pilot, lambda: drawn and drawn[-1] == 40, what="the last row drawn")
            elapsed = time.monotonic() - started
            assert len(drawn) <= 4 * elapsed + 2, (len(drawn), elapsed)

    asyncio.run(drive())


def test_live_shows_how_the_run_ended_and_stays_up(runs_dir):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    append_event(run_dir, RunFailed(error="loss is nan in context 0 at iteration 130; lower train.lr",
                                    traceback="Traceback ...\ncore.train.NonFiniteLoss: loss is nan", context=0,
                                    t=103.0))

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_live(app, pilot, run_dir)
            await until(pilot, lambda: screen.query_one("#outcome").display, what="the outcome")
            outcome = static_text(screen, "#outcome")
            assert "failed in context 0" in outcome and "loss is nan" in outcome
            assert "✗ context 0" in tree_text(screen)
            await pilot.press("s")  # nothing left to stop: no question
            await pilot.pause(0.1)
            assert app.screen is screen

    asyncio.run(drive())


def test_a_run_whose_worker_vanished_shows_as_stale(runs_dir):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = running_run(runs_dir, pid=gone.pid)
    first_context(run_dir)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_live(app, pilot, run_dir)
            await until(pilot, lambda: screen.query_one("#outcome").display, what="the outcome")
            assert "gone without a final word" in static_text(screen, "#outcome")

    asyncio.run(drive())


def test_s_stops_a_launched_run_after_a_confirmation(runs_dir):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    handle = FakeHandle(run_dir)

    async def drive() -> None:
        app = create_app(runs_dir)
        app.launched[handle.run_id] = handle
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_live(app, pilot, run_dir)
            await until(pilot, lambda: "120/300" in tree_text(screen))
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("n")  # no: nothing happens
            await until(pilot, lambda: app.screen is screen)
            assert handle.stopped == 0
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: handle.stopped == 1, what="the stop")
            await until(pilot, lambda: "cancelled" in static_text(screen, "#outcome"), what="the outcome")
            assert "■ context 0" in tree_text(screen)
            assert app.screen is screen  # the screen stays up after the end

    asyncio.run(drive())


def test_s_stops_a_run_started_elsewhere_with_sigterm(runs_dir):
    # A headless `cltui run` in another terminal: no handle here, so the pid in run.json gets SIGTERM.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = running_run(runs_dir, pid=other.pid)
        first_context(run_dir)

        async def drive() -> None:
            app = create_app(runs_dir)
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_live(app, pilot, run_dir)
                await until(pilot, lambda: "120/300" in tree_text(screen))
                await pilot.press("s")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                await pilot.press("y")
                await until(pilot, lambda: other.poll() is not None, what="the SIGTERM")
                assert "stopping" in static_text(screen, "#run-summary")

        asyncio.run(drive())
        assert other.returncode == -signal.SIGTERM
    finally:
        if other.poll() is None:
            other.kill()


def test_escape_goes_back_and_the_run_keeps_going(runs_dir):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    handle = FakeHandle(run_dir)

    async def drive() -> None:
        app = create_app(runs_dir)
        app.launched[handle.run_id] = handle
        async with app.run_test(size=SIZE) as pilot:
            home = app.screen
            screen = await open_live(app, pilot, run_dir)
            await until(pilot, lambda: "120/300" in tree_text(screen))
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is home, what="the runs screen")
            await until(pilot, lambda: not [w for w in app.workers if w.group == "follow" and w.is_running],
                        what="the follower to stop")
            assert handle.stopped == 0 and handle.alive()

    asyncio.run(drive())


def test_enter_on_a_running_run_opens_it_live(runs_dir):
    run_dir = running_run(runs_dir)
    first_context(run_dir)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.screen.query("#runs") and app.screen.query_one("#runs").row_count == 1)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
            await until(pilot, lambda: "120/300" in tree_text(app.screen))

    asyncio.run(drive())


# --- compose ---------------------------------------------------------------------------------------------




def field_error(screen: ComposeScreen, key: str) -> str:
    row = field(screen, key).parent.parent
    return str(row.query_one("Static.error", Static).render()) if row.has_class("-invalid") else ""






def test_compose_shows_the_preset_and_only_valid_methods(runs_dir):
    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
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

    asyncio.run(drive())


def test_compose_validates_inline_and_starts_nothing_while_invalid(runs_dir, monkeypatch):
    started: list[Any] = []
    monkeypatch.setattr("core.launch.worker.start_detached", lambda *a, **k: started.append(a))

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
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

    asyncio.run(drive())


def test_ctrl_s_launches_the_run_and_opens_it_live(runs_dir, monkeypatch):
    launched: list[Any] = []

    def fake_start(config, run_dir, threads=None):
        write_json_atomic(run_dir / "run.json", new_run_record(run_dir.name, config.preset, config.to_dict(), {}))
        handle = FakeHandle(run_dir)
        launched.append((config, handle))
        return handle

    monkeypatch.setattr("core.launch.worker.start_detached", fake_start)

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
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

    asyncio.run(drive())


def test_the_composed_config_saves_as_a_preset(runs_dir, tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "split-digits.toml").write_text((PRESETS / "split-digits.toml").read_text())
    monkeypatch.setenv("CLTUI_PRESETS_DIR", str(presets))

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
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

    asyncio.run(drive())
    saved = build_config("my-ewc")
    assert saved.method.name == "ewc" and saved.method.lambda_ == 1e9 and saved.scenario == "class"
    # The base preset's tuned defaults travel along: another method on top of it keeps them.
    assert build_config("my-ewc", method="si", scenario="task").method.c == 10
    assert load_preset("my-ewc")["description"].startswith("Composed in cltui from split-digits")


# --- end to end ------------------------------------------------------------------------------------------


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def test_compose_a_tiny_run_watch_it_train_and_find_it_finished(runs_dir):
    seen: dict[str, Any] = {}

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
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
        seen["exited"] = True

    asyncio.run(drive())
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


def test_a_run_left_running_at_quit_shows_live_in_the_next_cltui_and_stops_there(runs_dir):
    # The first cltui starts a long run and quits leaving it running; the second finds it running, follows
    # it live (it did not start it: no handle) and stops it with `s`, which SIGTERMs the worker's pid.
    seen: dict[str, Any] = {}

    async def first() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_compose(app, pilot)
            field(screen, "train.iterations").value = "100000"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
            live = app.screen
            await until(pilot, lambda: "/100000" in tree_text(live), timeout=60, what="training")
            [seen["handle"]] = app.launched.values()
            await pilot.press("escape")
            await until(pilot, lambda: app.screen.query("#runs"))
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the quit question")
            await pilot.press("l")
            await pilot.pause(0.2)

    async def second() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one("#runs")
            await until(pilot, lambda: table.row_count == 1 and "running" in " ".join(
                str(cell) for cell in table.get_row_at(0)), what="the run as running")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
            live = app.screen
            await until(pilot, lambda: "/100000" in tree_text(live), what="the live tree")
            assert app.launched == {}
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: "cancelled" in static_text(live, "#outcome"), timeout=30, what="the stop")

    try:
        asyncio.run(first())
        handle = seen["handle"]
        assert handle.alive()  # left running: the first cltui is gone, the run is not
        asyncio.run(second())
        assert handle.wait(10) == 130
    finally:
        if "handle" in seen and seen["handle"].alive():
            seen["handle"].kill()
    assert read_run_json(handle.run_dir)["status"] == "cancelled" and process_gone(handle.pid)


def test_a_title_change_after_the_header_lost_its_title_is_not_a_crash(runs_dir):
    """CI once failed with NoMatches from Textual's Header: a title update queued as the screen switched ran
    after the Header's children were gone. The screens' Header skips that update."""
    from textual.widgets import Header
    from textual.widgets._header import HeaderTitle

    async def drive() -> None:
        app = create_app(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            header = app.screen.query_one(Header)
            await header.query_one(HeaderTitle).remove()
            app.screen.sub_title = "a title with nowhere to go"
            await pilot.pause()
            assert app.screen.query_one(Header) is header  # the app is still up, the header in place

    asyncio.run(drive())
