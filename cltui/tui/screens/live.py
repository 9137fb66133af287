"""The Live screen: one run followed from its folder while it trains, whoever started it.

A tree of its contexts (classes; training with iteration progress and loss, the method's consolidation
phases, evaluation with the accuracy on every context), the accuracy charts, the tail of worker.log, and a
system line (the worker's CPU and memory, the machine's memory, the GPU's use on CUDA, iterations per second
and the time left; cltui.tui.state.system). `s` stops the run after a confirmation, `escape` goes back while it
keeps going; when it ends the outcome stays shown. A run resumed here (`R` on the detail screen) shows as
resuming until its new worker speaks: the failure or cancel it ended with before is history, not its state.
Events arrive in batches from `RunFollower` and are folded into `LiveRun` (cltui.tui.state.live, with the
labels); a batch is applied in one `batch_update`, charts redraw on a timer, at most four times a second,
whatever the event rate.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Log, Static, Tree
from textual.widgets.tree import TreeNode
from textual.worker import Worker, WorkerState

from cltui.tui.screens.base import ReachesCltui
from cltui.tui.state.follow import RunFollower
from cltui.tui.state.formats import acc_style, fmt_duration, fmt_score
from cltui.tui.state.live import (
    LiveRun,
    accuracy_label,
    context_label,
    eval_label,
    outcome_text,
    phase_label,
)
from cltui.tui.state.system import GpuSample, Pace, SystemFigures, SystemProbe, gpu_index, process_start, system_line
from cltui.tui.widgets.charts import (
    Y_SCALE_BINDING,
    AccuracyChart,
    AverageChart,
    CurveChart,
    LossChart,
    ScalesCharts,
    UnitsChart,
)
from cltui.tui.widgets.header import Header
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    CurveEvaluated,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    UnitsActive,
)
from core.runs.metrics import context_name
from core.runs.paths import StoreError
from core.runs.record import read_run_json

CHART_INTERVAL = 0.25  # s between chart redraws: plotext is the costly part of a frame
LOG_LINES = 500
FINAL = ("finished", "failed", "cancelled")
LOG_ROWS = (4, 2)  # most worker.log lines shown (tall, short screen): the panel shrinks to the lines it has
SYSTEM_INTERVAL = 1.0  # s between looks at the worker's CPU and memory (/proc: microseconds)
GPU_INTERVAL, GPU_BACKOFF = 2.0, 30.0  # s between nvidia-smi queries; after one that failed
PID_REREAD = 5.0  # s between reads of run.json's worker pid (a detached worker writes its own as it starts)


# --- the screen ------------------------------------------------------------------------------------


class LiveScreen(ReachesCltui, ScalesCharts, Screen[None]):
    """Follow one run live."""

    TITLE = "Live run"
    BINDINGS: ClassVar = [
        Binding("s", "stop", "Stop run"),
        Binding("escape", "back", "Back"),
        Y_SCALE_BINDING,
    ]
    DEFAULT_CSS = """
    LiveScreen #run-summary { height: 2; padding: 0 1; background: $boost; text-wrap: nowrap;
                              text-overflow: ellipsis; }
    LiveScreen #system-line { height: 1; padding: 0 1; background: $boost; text-wrap: nowrap; }
    LiveScreen #live-main { height: 1fr; }
    LiveScreen #left { width: 55%; min-width: 36; }
    LiveScreen #progress { height: 1fr; border: round $panel-lighten-2; padding: 0; overflow-x: hidden; }
    LiveScreen #loss-chart, LiveScreen #units-chart { height: 45%; min-height: 7; }
    LiveScreen #progress:focus { border: round $accent; }
    LiveScreen #charts { width: 1fr; }
    LiveScreen #outcome { height: auto; max-height: 4; padding: 0 1; display: none; }
    LiveScreen #outcome.-shown { display: block; }
    LiveScreen #worker-log { height: 3; border: round $panel-lighten-2; overflow-x: hidden; overflow-y: auto; }
    LiveScreen.-short Chart { min-height: 5; }
    """

    @dataclass
    class StopFinished(Message):
        """The stop request has been carried out (or could not be: `problem`)."""

        problem: str | None = None

    @dataclass
    class GpusSampled(Message):
        """nvidia-smi's answer (None: it failed or took too long)."""

        gpus: list[GpuSample] | None

    def __init__(self, run_dir: Path, probe: SystemProbe | None = None, worker_start: float | None = None):
        """`probe`: where the system line's figures come from (this machine by default). `worker_start`: when
        the worker this screen follows started (epoch seconds), for a run resumed in its folder: a final event or
        status older than it is the previous attempt's. By default, for a run this TUI started whose worker is
        alive, that worker's start."""
        super().__init__()
        self.run_dir = run_dir
        self.state = LiveRun()
        self.pace = Pace()
        self.probe = probe if probe is not None else SystemProbe()
        self.system: SystemFigures | None = None
        self._gpus: list[GpuSample] | None = None
        self._gpu_tool: bool | None = None
        self._gpu_busy = False
        self._gpu_next = 0.0
        self._pid_read_at = time.monotonic()
        self.worker_start = worker_start
        self.opened = time.time()
        self.awaiting = False  # a resumed run's new worker has not spoken yet
        self._resume_checked = False
        self._resume_handle: Any = None
        self._held: Any = None  # the previous attempt's final event, held while the new worker starts
        self._held_status: str | None = None  # and run.json's final status
        self.status: str | None = None
        self.stopping = False
        self.record: dict[str, Any] = {}
        self.context_nodes: dict[int, TreeNode[Any]] = {}
        self.phase_nodes: dict[tuple[int, str], TreeNode[Any]] = {}
        self.folded: set[int] = set()  # contexts folded away once, as newer ones started
        self._charts_dirty = False
        self._ended_shown = False
        self._dirty: set[int] = set()  # contexts (-1: the run) changed since the widgets last showed them
        self._log: list[str] = []  # worker.log lines not shown yet
        self._summary: Text | None = None
        self._added = False  # tree lines were added since the last scroll
        self._outcome_shown = False
        self.compact = False  # a narrow tree: phase labels leave the rate out
        self.log_lines = 0

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-summary")
        yield Static(id="system-line")
        with Horizontal(id="live-main"):
            with Vertical(id="left"):
                tree: Tree[Any] = Tree("contexts", id="progress")
                tree.show_root = False
                tree.border_title = "progress"
                yield tree
                yield LossChart(id="loss-chart")
                units = UnitsChart(id="units-chart")
                units.display = False  # a merge by L0 only: in place of the loss chart, which it has none of
                yield units
            with Vertical(id="charts"):
                yield AccuracyChart(id="accuracy-chart")
                yield AverageChart(id="average-chart")
                curve = CurveChart(id="curve-chart")
                curve.display = False  # in place of the average chart once continual-evaluation points come
                yield curve
        yield Static(id="outcome")
        log = Log(max_lines=LOG_LINES, id="worker-log")
        log.border_title = "worker.log"
        yield log
        yield Footer()
        yield RunFollower(self.run_dir)

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self.compact = self.app.size.width < 100
        try:
            self.record = read_run_json(self.run_dir)
        except StoreError:
            self.record = {}
        self.query_one(AccuracyChart).set_matrix([])
        self.query_one(AverageChart).set_matrix([])
        self.show_summary()
        self.set_interval(CHART_INTERVAL, self.redraw_charts)
        self.set_interval(SYSTEM_INTERVAL, self.sample_system)
        self.sample_system()
        self.query_one(Tree).focus()

    def on_resize(self) -> None:
        self.set_class(self.size.height < 30, "-short")
        compact = self.size.width < 100
        if compact != self.compact:
            self.compact = compact
            self._dirty.update(self.state.contexts)
            if self.is_mounted:
                self.show_changes()
        self.size_log()
        self.show_system()

    def size_log(self) -> None:
        """The worker.log panel as tall as its lines, up to a few: the charts take the rest."""
        most = LOG_ROWS[1] if self.size.height < 30 else LOG_ROWS[0]
        rows = max(1, min(most, self.log_lines)) + 2
        log = self.query_one(Log)
        if log.styles.height is None or log.styles.height.value != rows:
            log.styles.height = rows

    # --- following -------------------------------------------------------------------------------

    @on(RunFollower.Batch)
    def apply_batch(self, batch: RunFollower.Batch) -> None:
        self.check_resuming()
        had_pace = self.pace.rate is not None
        for event in batch.events:
            if self.awaiting:
                if self.worker_start is not None and event.t >= self.worker_start:
                    self.end_awaiting(restore=False)  # the new worker speaks
                elif isinstance(event, (RunFinished, RunFailed, RunCancelled)):
                    self._held = event  # how the previous attempt ended: history while the new one starts
                    continue
            self.pace.apply(event)
            index = self.state.apply(event)
            if index is not None:
                self._dirty.add(index)
            if isinstance(event, ContextStarted):
                self.reset_context(event.context)
            elif isinstance(event, (ContextEvaluated, CurveEvaluated, UnitsActive)) or (
                    isinstance(event, Progress) and event.phase == "train" and event.loss is not None):
                self._charts_dirty = True
        if not had_pace and self.pace.rate is not None and self.system is not None:
            self.sample_system()  # the pace is known now: no need to wait for the next second's sample
        if batch.status is not None and self.awaiting and batch.status in ("stale", *FINAL) \
                and self.ended_before_worker():
            self._held_status = batch.status  # run.json still tells of the previous attempt
        elif batch.status is not None:
            self.status = batch.status
            if batch.status in FINAL:
                self.reread_record()  # its timing.total_s: the run's duration, shown everywhere
                if self.state.outcome is None:
                    self.set_timer(1.5, self.outcome_from_record)  # the final event may be a moment behind
            self._dirty.add(-1)
        self._log.extend(batch.log_lines)
        del self._log[:-LOG_LINES]
        if self.is_current:
            self.show_changes()

    def on_screen_resume(self) -> None:
        self.show_changes()

    # --- a run resumed here --------------------------------------------------------------------------

    def launched_handle(self) -> Any:
        """The handle of this run's worker if this TUI started it (a new run, or `R` on the detail screen)."""
        launched = getattr(self.app, "launched", None)
        return launched.get(self.run_id) if isinstance(launched, dict) else None

    def check_resuming(self) -> None:
        """Once, before the first events: a live worker this TUI started, with a final event or status in the
        folder older than it, is a resumed run starting (it imports torch and loads its checkpoint for seconds
        before its first event): until it speaks, what ended the run before is held back, not shown."""
        if self._resume_checked:
            return
        self._resume_checked = True
        handle = self.launched_handle()
        if handle is None or not handle_alive(handle):
            self.awaiting = self.worker_start is not None
            return
        if self.worker_start is None:
            started = process_start(handle.pid) if isinstance(getattr(handle, "pid", None), int) else None
            self.worker_start = started if started is not None else self.opened
        self._resume_handle = handle
        self.awaiting = True

    @property
    def resuming(self) -> bool:
        """A resumed run's new worker is starting and the previous attempt's end is held back."""
        return self.awaiting and (self._held is not None or self._held_status is not None)

    def ended_before_worker(self) -> bool:
        """Whether run.json's end (its `finished` time) is older than the worker this screen follows: the
        previous attempt's. A run.json with no end time (a stale "running") is the previous attempt's too."""
        self.reread_record()
        finished = self.record.get("finished")
        if not isinstance(finished, str) or self.worker_start is None:
            return True
        try:
            return datetime.fromisoformat(finished).timestamp() < self.worker_start
        except ValueError:
            return True

    def end_awaiting(self, restore: bool) -> None:
        """The new worker spoke (`restore` False: what was held is dropped), or it ended without a word
        (`restore`: the held outcome and status are shown again, run.json still being the previous attempt's)."""
        self.awaiting = False
        held, status = self._held, self._held_status
        self._held = self._held_status = None
        if restore and (held is not None or status is not None):
            if held is not None:
                self.state.apply(held)
            if status is not None:
                self.status = status
                self.reread_record()
            self.notify(f"the worker of {self.run_id} ended before its first event: see worker.log",
                        severity="warning", timeout=10)
        self._dirty.add(-1)
        self.query_one(RunFollower).resend_status()  # run.json's status now, even if it reads as before
        if self.is_current:
            self.show_changes()

    def show_changes(self) -> None:
        """Bring the widgets up to date with the state, in one batch. Only while this screen is the one shown:
        under a modal (the stop question) every repaint of it would repaint the dimmed whole."""
        changed, self._dirty = self._dirty, set()
        with self.app.batch_update():
            for index in sorted(changed - {-1}):
                self.update_context(index)
            if changed:
                self.show_summary()
            if self._log:
                log = self.query_one(Log)
                log.write_lines(self._log)
                self._log.clear()
                self.log_lines = log.line_count
                self.size_log()

    def reset_context(self, index: int) -> None:
        """A context (re)started: a resumed run trains it again, so its old phases go. The contexts before the
        previous one fold away (once: the user may open them again)."""
        node = self.context_nodes.get(index)
        if node is not None:
            node.remove_children()
            for key in [k for k in self.phase_nodes if k[0] == index]:
                del self.phase_nodes[key]
        for old, old_node in self.context_nodes.items():
            if old < index - 1 and old not in self.folded:
                old_node.collapse()
                self.folded.add(old)

    def update_context(self, index: int) -> None:
        context = self.state.contexts.get(index)
        if context is None:
            return
        tree = self.query_one(Tree)
        label = context_label(context, index == self.state.current, self.state.outcome)
        node = self.context_nodes.get(index)
        if node is None:
            fold = index < (self.state.current or 0) - 1
            node = tree.root.add(label, expand=not fold)
            self.context_nodes[index] = node
            self._added = True
            if fold:
                self.folded.add(index)
        elif node.label != label:
            node.set_label(label)
        for name, phase in context.phases.items():
            if name != "eval":
                self.set_phase_node(node, index, name, phase_label(phase, self.state.outcome is None, self.compact))
        if "eval" in context.phases or context.accuracies is not None:
            eval_node = self.set_phase_node(node, index, "eval", eval_label(context, context.phases.get("eval")))
            if context.accuracies is not None and not eval_node.children:
                for j, accuracy in enumerate(context.accuracies):
                    eval_node.add_leaf(accuracy_label(j, accuracy, self.state.trained(index, j), self.compact))
                eval_node.allow_expand = True
                eval_node.expand()
        if context.dreams is not None:
            self.set_phase_node(node, index, "dreams", Text(f"{'dreams':<7}{context.dreams} images saved", "dim"))
        if self._added and index == self.state.current and self.state.outcome is None:
            self._added = False  # a new line for the current context: keep it in view
            target = node.children[-1] if node.children else node
            tree.scroll_to_node(target, animate=False)
            # Once laid out too: a line added in this batch may not have its place in the tree yet.
            self.call_after_refresh(tree.scroll_to_node, target, animate=False)

    def set_phase_node(self, node: TreeNode[Any], index: int, name: str, label: Text) -> TreeNode[Any]:
        phase_node = self.phase_nodes.get((index, name))
        if phase_node is None:
            phase_node = node.add(label, expand=False, allow_expand=False)
            self.phase_nodes[(index, name)] = phase_node
            self._added = True
        elif phase_node.label != label:
            phase_node.set_label(label)
        return phase_node

    def redraw_charts(self) -> None:
        if not self._charts_dirty or not self.is_current:
            return
        self._charts_dirty = False
        matrix = [list(row) for row in self.state.acc_matrix]
        weights = self.state.figures.weights
        self.query_one(AccuracyChart).set_matrix(matrix, self.state.joint, weights=weights)
        self.query_one(AverageChart).set_matrix(matrix, self.state.joint, weights=weights)
        if self.state.curve:
            curve = self.query_one(CurveChart)
            curve.display, self.query_one(AverageChart).display = True, False
            curve.set_curve(self.state.curve, self.state.joint)
        self.query_one(LossChart).set_track(self.state.loss)
        if self.state.units:
            units = self.query_one(UnitsChart)
            units.set_units(self.state.units)
            units.display, self.query_one(LossChart).display = True, False

    def outcome_from_record(self) -> None:
        """run.json says the run ended but no final event came (a worker that died before writing one)."""
        if self.state.outcome is not None:
            return
        try:
            record = read_run_json(self.run_dir)
        except StoreError:
            return
        error = record.get("error") or {}
        status = record.get("status")
        if status == "failed":
            self.state.outcome = RunFailed(error=str(error.get("message", "failed")),
                                           traceback=str(error.get("traceback") or ""))
        elif status == "cancelled":
            self.state.outcome = RunCancelled(reason=str(error.get("message", "cancelled")))
        elif status == "finished":
            self.state.outcome = RunFinished(metrics=record.get("metrics") or {},
                                             total_s=float((record.get("timing") or {}).get("total_s") or 0))
        self.record = record
        self._dirty.add(-1)
        if self.is_current:
            self.show_changes()

    def reread_record(self) -> None:
        try:
            self.record = read_run_json(self.run_dir)
        except StoreError:
            pass

    @property
    def duration(self) -> float | None:
        """The run's duration, one figure for the whole screen: run.json's timing.total_s once it has one (the
        figure the runs table and `cltui runs show` print), else that of the final event, else the events'
        own clock (from the start to the latest event) while it runs."""
        total = (self.record.get("timing") or {}).get("total_s") if isinstance(self.record.get("timing"), dict) \
            else None
        if isinstance(total, (int, float)) and self.ended:
            return float(total)
        if isinstance(self.state.outcome, RunFinished) and self.state.outcome.total_s:
            return self.state.outcome.total_s
        return self.state.elapsed

    def show_summary(self) -> None:
        config = self.record.get("config") or {}
        bench = config.get("benchmark") or {}
        method = (config.get("method") or {}).get("name", "?")
        train = config.get("train") or {}
        device = self.state.device or (self.record.get("env") or {}).get("device") or train.get("device", "?")
        first = Text.assemble((f"{bench.get('name', '?')} {bench.get('protocol', '')}", "bold"),
                              f" · {config.get('scenario', '?')}-IL · ", (str(method), "bold"),
                              f" · {bench.get('contexts', '?')} contexts × {train.get('iterations', '?')} it · "
                              f"seed {train.get('seed', '?')} · {device}")
        state = self.state
        total = state.total_contexts or bench.get("contexts")
        done = len(state.acc_matrix)
        second = Text()
        if state.outcome is None and self.status not in ("stale", "unreadable", "missing"):
            second.append("stopping… " if self.stopping else "resuming " if self.resuming else "running ",
                          "bold yellow" if self.stopping else "bold cyan")
            if self.resuming:
                second.append(f"· {done}/{total} contexts done · the worker loads torch and the checkpoint…")
            elif state.current is None:
                second.append("· waiting for the worker (it imports torch and loads the data)")
            else:
                second.append(f"· {context_name(state.current)} · {done}/{total} evaluated")
        else:
            second.append({"finished": "finished", "failed": "failed", "cancelled": "cancelled"}.get(
                self.outcome_status() or "", str(self.status)), "bold")
            second.append(f" · {done}/{total} contexts evaluated")
        figures = state.figures
        if figures.headline is not None:
            second.append(" · avg seen " if figures.seen_only or state.outcome is None else " · final avg ")
            second.append(fmt_score(figures.headline, figures.score) + ("%" if figures.score != "R²" else ""),
                          acc_style(figures.headline))
        duration = self.duration
        if duration is not None:
            second.append(f" · {fmt_duration(duration)}", "dim")
        summary = Text("\n").join([first, second])
        if summary != self._summary:  # its height is fixed: no layout pass for a new text
            self._summary = summary
            self.query_one("#run-summary", Static).update(summary, layout=False)
        if self.ended != self._ended_shown:  # the footer drops Stop once; re-rendering it costs a frame
            self._ended_shown = self.ended
            self.refresh_bindings()
            self.query_one("#system-line").display = not self.ended  # the outcome says the rest
        outcome = outcome_text(state.outcome, self.status, state.figures, duration)
        box = self.query_one("#outcome", Static)
        box.set_class(outcome is not None, "-shown")
        if outcome is not None:
            box.update(outcome)
            if state.current is not None:
                self.update_context(state.current)  # its marker shows how it ended
            if not self._outcome_shown:
                self._outcome_shown = True
                self.call_after_refresh(self.query_one(Tree).scroll_end, animate=False)  # the last results

    def outcome_status(self) -> str | None:
        outcome = self.state.outcome
        return {RunFinished: "finished", RunFailed: "failed", RunCancelled: "cancelled"}.get(type(outcome))

    @property
    def ended(self) -> bool:
        return self.state.outcome is not None or self.status in ("stale", *FINAL)

    # --- the system line ----------------------------------------------------------------------------

    def sample_system(self) -> None:
        """Every second: the worker's CPU and memory, the machine's memory (/proc, microseconds), the GPU's
        figures last fetched (nvidia-smi runs in a thread, at most every GPU_INTERVAL s) and the pace. Gone once
        the run has ended: the outcome says the rest."""
        if self.awaiting and self._resume_handle is not None and not handle_alive(self._resume_handle):
            self.end_awaiting(restore=True)
        if self.ended:
            self.system = None
            return
        cpu, rss = self.probe.worker(self.worker_pid())
        gpu = None
        index = gpu_index(self.device_name(), os.environ.get("CUDA_VISIBLE_DEVICES"))
        if index is not None:
            self.fetch_gpus()
            gpu = self._gpus[index] if self._gpus is not None and index < len(self._gpus) else None
        resuming = self.resuming  # the pace of the previous attempt is not this one's
        self.system = SystemFigures(cpu, rss, self.probe.memory(), gpu,
                                    None if resuming else self.pace.rate,
                                    None if resuming else self.pace.eta(self.probe.now()))
        self.show_system()

    def show_system(self) -> None:
        if self.system is None or not self.is_mounted:
            return
        line = self.query_one("#system-line", Static)
        width = line.content_region.width or self.app.size.width - 2
        line.update(system_line(self.system, width), layout=False)

    def device_name(self) -> str | None:
        """The run's device as the worker named it ("cuda:0 NVIDIA H100"), else as its config asks."""
        env, config = self.record.get("env"), self.record.get("config")
        train = config.get("train") if isinstance(config, dict) else None
        device = self.state.device or (env.get("device") if isinstance(env, dict) else None) \
            or (train.get("device") if isinstance(train, dict) else None)
        return device if isinstance(device, str) else None

    def worker_pid(self) -> int | None:
        """The worker's pid: its handle's when this TUI started it, else the one run.json names (re-read now
        and then: a detached worker writes its own as it starts)."""
        handle = self.launched_handle()
        if handle is not None and isinstance(getattr(handle, "pid", None), int):
            return int(handle.pid)
        if time.monotonic() - self._pid_read_at >= PID_REREAD:
            self._pid_read_at = time.monotonic()
            self.reread_record()
        pid = self.record.get("pid")
        return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None

    def fetch_gpus(self) -> None:
        if self._gpu_tool is None:
            self._gpu_tool = self.probe.can_query_gpus()
        if self._gpu_tool and not self._gpu_busy and time.monotonic() >= self._gpu_next:
            self._gpu_busy = True
            self.query_gpus()

    @work(thread=True, exclusive=True, exit_on_error=False, group="gpu")
    def query_gpus(self) -> None:
        self.post_message(self.GpusSampled(self.probe.gpus()))

    @on(GpusSampled)
    def gpus_sampled(self, message: GpusSampled) -> None:
        self._gpu_busy = False
        self._gpus = message.gpus
        self._gpu_next = time.monotonic() + (GPU_INTERVAL if message.gpus is not None else GPU_BACKOFF)

    # --- keys --------------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Stop is gone from the footer once the run has ended, and `s` does nothing: nothing left to stop.
        return not (action == "stop" and self.ended)

    def action_stop(self) -> None:
        if self.ended:
            self.notify("the run has already ended")
            return
        if self.stopping:
            self.notify("already stopping: it ends after the current step")
            return
        from cltui.tui.screens.confirm import ConfirmScreen

        self.app.push_screen(  # enter stops: `s` then enter is the quick way, and nothing completed is lost
            ConfirmScreen(f"Stop run {self.run_id}?", detail="It stops after the current step and is saved as "
                          "cancelled; the contexts it completed are kept.", confirm="Stop run", danger=True,
                          default=True),
            self.stop_answered)

    def stop_answered(self, yes: bool | None) -> None:
        if not yes or self.ended:
            return
        self.stopping = True
        self.show_summary()
        self.stop_run()

    @work(thread=True, exclusive=True, exit_on_error=False, group="stop")
    def stop_run(self) -> None:
        """Through the handle when this TUI started the run (it waits for the end), else through the run folder
        (the worker pid its run.json names): the worker turns it into a clean cancel, which the follower sees."""
        from core.launch.worker import StopError, stop_and_wait, stop_run

        handle = self.cltui.launched.get(self.run_id)
        try:
            if handle is not None:
                stop_and_wait([handle])
            else:
                stop_run(self.run_dir)
        except StopError as e:
            self.post_message(self.StopFinished(str(e)))
            return
        self.post_message(self.StopFinished())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "stop":
            self.post_message(self.StopFinished(str(event.worker.error)))
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED) and event.worker.group == "gpu":
            self.post_message(self.GpusSampled(None))

    @on(StopFinished)
    def stop_finished(self, message: StopFinished) -> None:
        if message.problem:
            self.stopping = False
            self.notify(f"could not stop the run: {message.problem}", severity="error")
            self.show_summary()


def handle_alive(handle: Any) -> bool:
    try:
        return bool(handle.alive())
    except Exception:  # noqa: BLE001 - a broken handle is a worker gone
        return False
