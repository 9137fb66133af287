"""The live screen under Textual's Pilot, and the events.jsonl follower behind it.

Live tests write a run folder by hand and append events to it as a worker would: the tree and the charts as
events arrive (at most four chart redraws a second), how the run ended, `s` (a stop, asked first, and only while
the run goes, and `s` then enter stops it), escape, one duration and one loss format, the worker log's panel, the
system line (the worker's CPU and memory, the GPU through a stand-in nvidia-smi, the pace and the time left), and
a run resumed here shown as resuming, never as its previous failure. One test starts real detached workers: a
run left running when cltui quits is found, followed and stopped by the next cltui.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Log, Static

from cltui.tui.app import create_app
from cltui.tui.screens.confirm import ChoiceScreen, ConfirmScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.follow import LineTail, parse_events
from cltui.tui.state.formats import fmt_duration
from cltui.tui.state.live import PhaseState, phase_label
from cltui.tui.widgets.charts import AccuracyChart, AverageChart, LossChart
from core.files import write_json_atomic
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    PhaseFinished,
    PhaseStarted,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    to_json,
)
from core.runs.record import new_run_record, read_run_json
from core.runs.store import append_event
from core.schema.presets import build_config
from tests.helpers.tui import (
    BareApp,
    FakeHandle,
    eventually,
    field,
    footer_keys,
    open_compose,
    process_gone,
    screen_text,
    static_text,
    tree_text,
    until,
)

pytestmark = pytest.mark.anyio

SIZE = (100, 30)


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


# --- the follower -------------------------------------------------------------------------------------


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


# --- live ---------------------------------------------------------------------------------------------


async def test_live_follows_events_as_they_are_appended(runs_dir, tui):
    run_dir = running_run(runs_dir)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
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


async def test_charts_redraw_at_most_four_times_a_second(runs_dir, monkeypatch, tui):
    run_dir = running_run(runs_dir, contexts=10)
    first_context(run_dir)
    drawn: list[int] = []
    original = AccuracyChart.set_matrix

    def counting(self: AccuracyChart, acc_matrix: Any, *args: Any, **kwargs: Any) -> None:
        drawn.append(len(acc_matrix))
        original(self, acc_matrix, *args, **kwargs)

    monkeypatch.setattr(AccuracyChart, "set_matrix", counting)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
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


async def test_live_shows_how_the_run_ended_and_stays_up(runs_dir, tui):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    append_event(run_dir, RunFailed(error="loss is nan in context 0 at iteration 130; lower train.lr",
                                    traceback="Traceback ...\ncore.train.NonFiniteLoss: loss is nan", context=0,
                                    t=103.0))

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_live(app, pilot, run_dir)
    await until(pilot, lambda: screen.query_one("#outcome").display, what="the outcome")
    outcome = static_text(screen, "#outcome")
    assert "failed in context 0" in outcome and "loss is nan" in outcome
    assert "✗ context 0" in tree_text(screen)
    await pilot.press("s")  # nothing left to stop: no question
    await pilot.pause(0.1)
    assert app.screen is screen


async def test_a_run_whose_worker_vanished_shows_as_stale(runs_dir, tui):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = running_run(runs_dir, pid=gone.pid)
    first_context(run_dir)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_live(app, pilot, run_dir)
    await until(pilot, lambda: screen.query_one("#outcome").display, what="the outcome")
    assert "gone without a final word" in static_text(screen, "#outcome")


async def test_s_stops_a_launched_run_after_a_confirmation(runs_dir, tui):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    handle = FakeHandle(run_dir)

    app = create_app(runs_dir)
    app.launched[handle.run_id] = handle
    pilot = await tui.start(app=app, size=SIZE)
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


async def test_s_stops_a_run_started_elsewhere_with_sigterm(runs_dir, tui):
    # A headless `cltui run` in another terminal: no handle here, so the pid in run.json gets SIGTERM.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = running_run(runs_dir, pid=other.pid)
        first_context(run_dir)

        pilot = await tui.start(runs_dir, size=SIZE)
        app = pilot.app
        screen = await open_live(app, pilot, run_dir)
        await until(pilot, lambda: "120/300" in tree_text(screen))
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: other.poll() is not None, what="the SIGTERM")
        assert "stopping" in static_text(screen, "#run-summary")
        assert other.returncode == -signal.SIGTERM
    finally:
        if other.poll() is None:
            other.kill()


async def test_escape_goes_back_and_the_run_keeps_going(runs_dir, tui):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    handle = FakeHandle(run_dir)

    app = create_app(runs_dir)
    app.launched[handle.run_id] = handle
    pilot = await tui.start(app=app, size=SIZE)
    home = app.screen
    screen = await open_live(app, pilot, run_dir)
    await until(pilot, lambda: "120/300" in tree_text(screen))
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is home, what="the runs screen")
    await until(pilot, lambda: not [w for w in app.workers if w.group == "follow" and w.is_running],
                what="the follower to stop")
    assert handle.stopped == 0 and handle.alive()


async def test_enter_on_a_running_run_opens_it_live(runs_dir, tui):
    run_dir = running_run(runs_dir)
    first_context(run_dir)

    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    await until(pilot, lambda: app.screen.query("#runs") and app.screen.query_one("#runs").row_count == 1)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
    await until(pilot, lambda: "120/300" in tree_text(app.screen))


async def test_s_leaves_the_footer_once_the_run_ended_and_then_does_nothing(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    screen = LiveScreen(fixed["finished"])
    await app.push_screen(screen)
    await eventually(pilot, lambda: screen.ended)
    await pilot.pause(0.2)
    keys = footer_keys(app)
    await pilot.press("s")
    await pilot.pause(0.2)

    after, stopping = type(app.screen), screen.stopping
    assert "stop" not in keys and "back" in keys
    assert after is LiveScreen and not stopping  # no confirmation asked, nothing stopped


async def test_s_shows_while_the_run_is_going(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    screen = LiveScreen(fixed["running"])
    await app.push_screen(screen)
    await eventually(pilot, lambda: screen.state.current is not None)
    await pilot.pause(0.2)
    keys = footer_keys(app)
    await pilot.press("s")
    await pilot.pause(0.2)
    asked = type(app.screen)
    await pilot.press("escape")

    assert "stop" in keys
    assert asked is ConfirmScreen


async def test_the_live_screen_shows_one_duration_for_a_finished_run(runs_dir, fixed, tui):
    folder = fixed["finished"]
    record = json.loads((folder / "run.json").read_text())
    record["timing"]["total_s"] = 6.7  # the events' clock says more: run.json's figure is the one shown
    (folder / "run.json").write_text(json.dumps(record))
    with (folder / "events.jsonl").open("a") as f:
        last = json.loads((folder / "events.jsonl").read_text().splitlines()[-1])["t"]
        f.write(to_json(RunFinished(metrics=record["metrics"], total_s=6.7, t=last + 3.1)) + "\n")

    pilot = await tui.start(app=BareApp(runs_dir))
    app = pilot.app
    screen = LiveScreen(folder)
    await app.push_screen(screen)
    await eventually(pilot, lambda: isinstance(screen.state.outcome, RunFinished))
    await pilot.pause(0.3)

    summary, outcome, elapsed = (str(screen.query_one("#run-summary", Static).render()),
            str(screen.query_one("#outcome", Static).render()), screen.state.elapsed)
    assert elapsed is not None and fmt_duration(elapsed) != "6.7 s"
    assert "6.7 s" in summary and "6.7 s" in outcome
    assert fmt_duration(elapsed) not in summary


async def test_the_live_tree_prints_the_loss_with_three_digits_and_the_loss_chart_plots_it(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    screen = LiveScreen(fixed["running"])
    await app.push_screen(screen)
    await eventually(pilot, lambda: screen.query_one(LossChart).points)
    await eventually(pilot, lambda: "120/300 loss 0.21" in screen_text(app))

    points, text = screen.query_one(LossChart).points, screen_text(app)
    assert points[-1] == (600 + 120, 0.21)  # two contexts of 300 iterations, then step 120
    assert "120/300 loss 0.21" in text  # the loss, whole, in the 80-column tree, the current context in view


def test_a_narrow_tree_drops_the_rate_before_the_loss():
    phase = PhaseState("train", step=180, total=300, loss=1.777e-05, samples_per_s=30125.0)
    assert phase_label(phase).plain == "train  ━━━━━━━━━━ 180/300 loss 1.78e-05 30.1k/s"
    assert phase_label(phase, compact=True).plain == "train  ━━━━━━ 180/300 loss 1.78e-05"


async def test_the_worker_log_panel_is_as_tall_as_its_lines(runs_dir, fixed, tui):
    pilot = await tui.start(app=BareApp(runs_dir), size=(80, 24))
    app = pilot.app
    screen = LiveScreen(fixed["running"])
    await app.push_screen(screen)
    await eventually(pilot, lambda: screen.query_one(Log).line_count)
    await pilot.pause(0.2)
    one = screen.query_one(Log).outer_size.height
    with (fixed["running"] / "worker.log").open("a") as f:
        f.write("".join(f"line {n}\n" for n in range(10)))
    await eventually(pilot, lambda: screen.query_one(Log).line_count > 5)
    await pilot.pause(0.2)

    many = screen.query_one(Log).outer_size.height
    assert one == 3  # one line and its border
    assert many == 4  # at 80x24 at most two lines: the charts get the rest


# --- end to end ---------------------------------------------------------------------------------------


async def test_a_run_left_running_at_quit_shows_live_in_the_next_cltui_and_stops_there(runs_dir, tui):
    # The first cltui starts a long run and quits leaving it running; the second finds it running, follows
    # it live (it did not start it: no handle) and stops it with `s`, which SIGTERMs the worker's pid.
    seen: dict[str, Any] = {}

    try:
        pilot = await tui.start(runs_dir, size=SIZE)
        app = pilot.app
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
        await tui.close()
        handle = seen["handle"]
        assert handle.alive()  # left running: the first cltui is gone, the run is not

        pilot = await tui.start(runs_dir, size=SIZE)  # the next cltui
        app = pilot.app
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
        await tui.close()
        assert handle.wait(10) == 130
    finally:
        if "handle" in seen and seen["handle"].alive():
            seen["handle"].kill()
    assert read_run_json(handle.run_dir)["status"] == "cancelled" and process_gone(handle.pid)


# --- the system line ----------------------------------------------------------------------------------


def recent_progress(run_dir: Path, device: str = "cpu") -> None:
    """Context 0 training now at 60 iterations a second: 120 of 3 x 300 done."""
    now = time.time()
    for event in (RunStarted(run_id=run_dir.name, contexts=3, device=device, config={}, t=now - 3),
                  ContextStarted(context=0, classes=[0, 1], iterations=300, t=now - 3),
                  PhaseStarted(context=0, phase="train", total=300, t=now - 3),
                  Progress(context=0, phase="train", step=60, total=300, loss=0.5, t=now - 2),
                  Progress(context=0, phase="train", step=120, total=300, loss=0.4, t=now - 1)):
        append_event(run_dir, event)


async def test_the_system_line_shows_the_worker_the_machine_and_the_pace_at_80_columns(runs_dir, tui):
    run_dir = running_run(runs_dir)  # its worker pid: this process
    recent_progress(run_dir)

    pilot = await tui.start(runs_dir, size=(80, 24))
    app = pilot.app
    screen = await open_live(app, pilot, run_dir)
    await until(pilot, lambda: "%" in static_text(screen, "#system-line"), what="the worker's CPU")
    line = static_text(screen, "#system-line")
    rows = screen_text(app).splitlines()

    # this process is the worker: its memory grows with the tests it ran before (MB or GB)
    assert line.startswith("worker cpu ") and re.search(r" mem \d+(\.\d)? [MG]B ", line) and "ram " in line
    assert "60 it/s" in line and "eta " in line and "eta –" not in line  # 780 left at 60 a second: ~13 s
    assert "gpu" not in line  # a CPU run
    assert any(row.strip() == line for row in rows)  # one row, whole, at 80 columns

    append_event(run_dir, RunFinished(metrics={}, total_s=5.0))
    await until(pilot, lambda: not screen.query_one("#system-line").display, what="the line to go")


async def test_the_system_line_shows_the_gpu_of_a_cuda_run(runs_dir, tui, tmp_path, monkeypatch):
    # This machine may have no GPU: a stand-in nvidia-smi on the PATH answers as the real one does.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\nprint('87, 3072, 81920')\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    run_dir = running_run(runs_dir)
    recent_progress(run_dir, device="cuda:0 NVIDIA H100 80GB HBM3")

    pilot = await tui.start(runs_dir, size=SIZE)
    screen = await open_live(pilot.app, pilot, run_dir)
    await until(pilot, lambda: "gpu 87%" in static_text(screen, "#system-line"), what="the GPU's figures")
    assert "gpu 87% 3.0/80.0 GB" in static_text(screen, "#system-line")


# --- the stop dialog ----------------------------------------------------------------------------------


async def test_s_then_enter_stops_the_run_and_the_dialog_names_its_keys(runs_dir, tui):
    run_dir = running_run(runs_dir)
    first_context(run_dir)
    handle = FakeHandle(run_dir)

    app = create_app(runs_dir)
    app.launched[handle.run_id] = handle
    pilot = await tui.start(app=app, size=(80, 24))
    screen = await open_live(app, pilot, run_dir)
    await until(pilot, lambda: "120/300" in tree_text(screen))
    await pilot.press("s")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
    await pilot.pause()
    labels = [str(button.label) for button in app.screen.query(Button)]
    await pilot.press("enter")
    await until(pilot, lambda: handle.stopped == 1, what="the stop")

    assert labels == ["Cancel (n)", "Stop run (y)"]
    await until(pilot, lambda: "cancelled" in static_text(screen, "#outcome"), what="the outcome")


# --- a run resumed here -------------------------------------------------------------------------------


class WorkerProcess:
    """A launched run's handle around a real process started now, as `R` leaves one in app.launched: a resumed
    run's worker, still importing torch (it writes nothing)."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.run_id = run_dir, run_dir.name
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> None:
        self.process.kill()
        self.process.wait()

    def wait(self, timeout: float | None = None) -> int | None:
        return self.process.poll()


def failed_before(runs_dir: Path) -> Path:
    """A run that failed in context 1 a minute ago: its events end with RunFailed, run.json says failed."""
    run_dir = running_run(runs_dir)
    t = time.time() - 60
    for event in (RunStarted(run_id=run_dir.name, contexts=3, device="cpu", config={}, t=t),
                  ContextStarted(context=0, classes=[0, 1], iterations=300, t=t)):
        append_event(run_dir, event)
    finish_context(run_dir, 0, [0.99, 0.0, 0.0], t=t + 1)
    for event in (ContextStarted(context=1, classes=[2, 3], iterations=300, t=t + 3),
                  Progress(context=1, phase="train", step=130, total=300, loss=float("nan"), t=t + 4),
                  RunFailed(error="loss is nan in context 1 at iteration 130", context=1, t=t + 4)):
        append_event(run_dir, event)
    record = read_run_json(run_dir)
    record.update(status="failed", finished="2026-01-01T12:00:10+00:00",
                  error={"message": "loss is nan in context 1 at iteration 130", "kind": "error"})
    write_json_atomic(run_dir / "run.json", record)
    return run_dir


async def test_a_run_resumed_here_shows_as_resuming_never_as_its_old_failure(runs_dir, tui):
    run_dir = failed_before(runs_dir)
    app = create_app(runs_dir)
    pilot = await tui.start(app=app, size=(80, 24))
    worker = WorkerProcess(run_dir)  # `R`: the worker starts, then the live screen opens
    try:
        app.launched[worker.run_id] = worker
        screen = await open_live(app, pilot, run_dir)
        await until(pilot, lambda: "context 0" in tree_text(screen), what="the run's history")
        shown = []
        for _ in range(20):  # two seconds: past the follower's status look and the outcome's 1.5 s wait
            shown.append(screen_text(app))
            await pilot.pause(0.1)

        assert not any("fail" in text or "✗" in text or "loss is nan" in text for text in shown), shown[-1]
        assert "resuming" in static_text(screen, "#run-summary") and not screen.query_one("#outcome").display
        assert "stop" in footer_keys(app)

        # The worker speaks: the run goes on from context 1, then fails again, which shows.
        now = time.time()
        for event in (RunStarted(run_id=run_dir.name, contexts=3, device="cpu", config={}, resumed_from=1, t=now),
                      ContextStarted(context=1, classes=[2, 3], iterations=300, t=now),
                      Progress(context=1, phase="train", step=40, total=300, loss=0.3, t=now + 0.5)):
            append_event(run_dir, event)
        await until(pilot, lambda: "40/300" in tree_text(screen), what="the resumed training")
        assert "running · context 1" in static_text(screen, "#run-summary")
        append_event(run_dir, RunCancelled(reason="stopped in context 1 at iteration 40", context=1))
        await until(pilot, lambda: "cancelled" in static_text(screen, "#outcome"), what="the new end")
    finally:
        worker.stop()


async def test_a_resuming_worker_that_dies_without_a_word_shows_the_run_as_run_json_has_it(runs_dir, tui):
    run_dir = failed_before(runs_dir)
    app = create_app(runs_dir)
    pilot = await tui.start(app=app, size=SIZE)
    worker = WorkerProcess(run_dir)
    try:
        app.launched[worker.run_id] = worker
        screen = await open_live(app, pilot, run_dir)
        await until(pilot, lambda: "resuming" in static_text(screen, "#run-summary"), what="resuming")
        worker.stop()  # it could not start (a broken checkpoint): nothing written, run.json untouched
        await until(pilot, lambda: screen.query_one("#outcome").display, what="the outcome")
        assert "loss is nan" in static_text(screen, "#outcome")
        assert any("ended before its first event" in note for note in tui.notes)
    finally:
        worker.stop()
