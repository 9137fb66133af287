"""The live run without Textual: the screen's state as a pure fold over a run's events (`LiveRun`: its contexts,
their phases, the accuracy matrix, the continual-evaluation curve, the training loss, a merge's active units)
and the labels that draw it (the context tree's lines, the outcome). Testable without a terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from cltui.tui.state.formats import acc_style, figure_parts, fmt_duration, fmt_loss
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    CurveEvaluated,
    DreamsSaved,
    Event,
    PhaseFinished,
    PhaseStarted,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    UnitsActive,
)
from core.runs.metrics import RunFigures, run_figures, trains_once

BAR_WIDTH = 10
COMPACT_BAR_WIDTH = 6  # under 100 columns: the bar gives way to the loss


# --- the training loss ------------------------------------------------------------------------------------


class LossTrack:
    """The training loss against the iterations trained, folded from Progress events (the `train` phase):
    each context's steps count on from the iterations of the contexts before it; a context started again (a
    resumed run) drops its old points and those after it."""

    def __init__(self) -> None:
        self.iterations: dict[int, int] = {}  # context -> its iterations
        self.points: dict[int, list[tuple[int, float]]] = {}  # context -> (step, loss)

    def apply(self, event: Event) -> bool:
        """Fold one event in; whether the points changed."""
        if isinstance(event, ContextStarted):
            self.iterations[event.context] = event.iterations
            dropped = [k for k in self.points if k >= event.context]
            for k in dropped:
                del self.points[k]
            return bool(dropped)
        if isinstance(event, Progress) and event.phase == "train" and isinstance(event.loss, (int, float)) \
                and math.isfinite(event.loss):
            self.iterations.setdefault(event.context, event.total)
            self.points.setdefault(event.context, []).append((event.step, float(event.loss)))
            return True
        return False

    def series(self) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        offset = 0
        for k in range(max(self.points, default=-1) + 1):
            out += [(offset + step, loss) for step, loss in self.points.get(k, [])]
            offset += self.iterations.get(k, 0)
        return out

    def boundaries(self) -> list[int]:
        """The iterations at which each context after the first starts."""
        ends, offset = [], 0
        for k in range(max(self.points, default=-1)):
            offset += self.iterations.get(k, 0)
            ends.append(offset)
        return ends


def loss_track(events: Sequence[Event]) -> LossTrack:
    track = LossTrack()
    for event in events:
        track.apply(event)
    return track




# --- the run as the events tell it -------------------------------------------------------------------


@dataclass
class PhaseState:
    name: str
    step: int = 0
    total: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    seconds: float | None = None  # how long it took, once finished
    done: bool = False


@dataclass
class ContextState:
    index: int
    classes: list[int]
    iterations: int
    phases: dict[str, PhaseState] = field(default_factory=dict)
    accuracies: list[float] | None = None
    seen_avg: float | None = None
    dreams: int | None = None


@dataclass
class LiveRun:
    """Everything the screen shows, folded from the events; `apply` says which contexts changed."""

    contexts: dict[int, ContextState] = field(default_factory=dict)
    acc_matrix: list[list[float]] = field(default_factory=list)
    curve: list[tuple[int, int, list[float]]] = field(default_factory=list)  # continual evaluation points
    total_contexts: int | None = None
    device: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the run's, from RunStarted
    outcome: Event | None = None  # RunFinished / RunFailed / RunCancelled
    started_t: float | None = None
    last_t: float | None = None
    current: int | None = None
    loss: LossTrack = field(default_factory=LossTrack)  # the training loss against the iterations
    units: list[UnitsActive] = field(default_factory=list)  # a merge by L0: its gates' active units

    def apply(self, event: Event) -> int | None:
        """Fold one event in; the context it changed (-1: the whole run), or None."""
        self.last_t = event.t
        self.loss.apply(event)
        if isinstance(event, RunStarted):
            self.total_contexts, self.device, self.config = event.contexts, event.device, dict(event.config)
            if self.started_t is None or event.resumed_from is not None:
                self.started_t = event.t
            self.outcome = None  # a resumed run goes on in the same folder
            return -1
        if isinstance(event, ContextStarted):
            self.contexts[event.context] = ContextState(event.context, list(event.classes), event.iterations)
            self.current = event.context
            self.curve = [p for p in self.curve if p[1] < event.context]  # a resumed stage is trained again
            return event.context
        if isinstance(event, UnitsActive):
            self.units.append(event)
            return -1
        if isinstance(event, CurveEvaluated):
            self.curve += [(it, event.context, list(accs))
                           for it, accs in zip(event.iterations, event.accuracies, strict=False)]
            return -1
        if isinstance(event, (RunFinished, RunFailed, RunCancelled)):
            self.outcome = event
            return -1
        context = self.contexts.get(getattr(event, "context", -1))
        if context is None:
            return None
        if isinstance(event, PhaseStarted):
            context.phases[event.phase] = PhaseState(event.phase, total=event.total)
        elif isinstance(event, Progress):
            phase = context.phases.setdefault(event.phase, PhaseState(event.phase))
            phase.step, phase.total = event.step, event.total or phase.total
            phase.loss = event.loss if event.loss is not None else phase.loss
            phase.samples_per_s = event.samples_per_s
        elif isinstance(event, PhaseFinished):
            phase = context.phases.setdefault(event.phase, PhaseState(event.phase))
            phase.seconds, phase.done = event.seconds, True
            if phase.total:
                phase.step = phase.total
        elif isinstance(event, ContextEvaluated):
            context.accuracies = list(event.accuracies)
            for phase in context.phases.values():
                phase.done = True
            del self.acc_matrix[event.context:]
            self.acc_matrix.append(list(event.accuracies))
            context.seen_avg = self.seen_avg(event.context)
            train = context.phases.get("train")
            if train is not None and event.final_loss is not None:
                train.loss = event.final_loss
        elif isinstance(event, DreamsSaved):
            context.dreams = event.count
        else:
            return None
        return context.index

    @property
    def figures(self) -> RunFigures:
        """The run's figures so far, from their one home (core.runs.metrics), as every other face computes them."""
        return run_figures({"config": self.config, "acc_matrix": self.acc_matrix})

    @property
    def joint(self) -> bool:
        """One training stage over every context (joint, merge): every context counts as seen."""
        method = self.config.get("method")
        return trains_once(method.get("name") if isinstance(method, dict) else None)

    def seen_avg(self, row: int) -> float | None:
        if not 0 <= row < len(self.acc_matrix):
            return None
        return self.figures.seen_average(self.acc_matrix[row], row)

    def trained(self, row: int, j: int) -> bool:
        """Whether context j had been trained when row `row` of the accuracy matrix was measured."""
        return self.joint or j <= row

    @property
    def elapsed(self) -> float | None:
        """Seconds from the start to the latest event: the events' own clock, so a replay shows the same."""
        if self.started_t is None or self.last_t is None:
            return None
        return max(0.0, self.last_t - self.started_t)


# --- labels ----------------------------------------------------------------------------------------


def bar(step: int, total: int | None, width: int = BAR_WIDTH, done: bool = False) -> Text:
    if not total:
        return Text("━" * width, style="green" if done else "dim")
    filled = min(width, round(width * step / total))
    return Text.assemble(("━" * filled, "green" if done or step >= total else "magenta"),
                         ("━" * (width - filled), "bright_black"))


def rate_text(samples_per_s: float | None) -> str:
    if not samples_per_s:
        return ""
    return f"{samples_per_s / 1000:.1f}k/s" if samples_per_s >= 1000 else f"{samples_per_s:.0f}/s"


def context_label(context: ContextState, current: bool, outcome: Event | None) -> Text:
    classes = ",".join(str(c) for c in context.classes[:12]) + ("…" if len(context.classes) > 12 else "")
    text = Text()
    if context.accuracies is not None:
        text.append("✓ ", "green")
    elif current and isinstance(outcome, RunFailed):
        text.append("✗ ", "red")
    elif current and isinstance(outcome, RunCancelled):
        text.append("■ ", "yellow")
    elif current:
        text.append("▶ ", "magenta")
    else:
        text.append("· ", "dim")
    text.append(f"context {context.index}", "bold")
    text.append(f"  classes {classes}", "dim")
    if context.seen_avg is not None:
        text.append("  seen ")
        text.append(f"{100 * context.seen_avg:.1f}%", acc_style(context.seen_avg))
    return text


def phase_label(phase: PhaseState, running: bool = True, compact: bool = False) -> Text:
    """`train   ━━━━━━━━━━ 180/300 loss 0.183 30.1k/s`; `compact` (a narrow tree) shortens the bar and leaves
    the rate out, so the loss is never cut."""
    done = phase.done
    text = Text(f"{phase.name:<7}", "bold" if not done else "")
    text.append_text(bar(phase.step, phase.total, width=COMPACT_BAR_WIDTH if compact else BAR_WIDTH, done=done))
    if phase.total:
        text.append(f" {phase.step}/{phase.total}")
    elif phase.step:
        text.append(f" {phase.step}")
    if phase.loss is not None:
        text.append(f" loss {fmt_loss(phase.loss)}")
    if phase.seconds is not None:
        text.append(f" {phase.seconds:.1f} s", "dim")
    elif running and not done and phase.samples_per_s and not compact:
        text.append(f" {rate_text(phase.samples_per_s)}", "dim")
    return text


def eval_label(context: ContextState, phase: PhaseState | None) -> Text:
    text = Text(f"{'eval':<7}", "bold" if context.accuracies is None else "")
    if context.accuracies is None:
        text.append("evaluating on every context…", "dim")
        return text
    accuracies = context.accuracies
    if context.seen_avg is not None:
        text.append("avg seen ")
        text.append(f"{100 * context.seen_avg:.1f}%", acc_style(context.seen_avg))
    text.append(f" · all {100 * sum(accuracies) / len(accuracies):.1f}%", "dim")
    if phase is not None and phase.seconds is not None:
        text.append(f" {1000 * phase.seconds:.0f} ms", "dim")
    return text


def accuracy_label(j: int, accuracy: float, trained: bool, compact: bool = False) -> Text:
    width = COMPACT_BAR_WIDTH if compact else BAR_WIDTH
    text = Text(f"on c{j:<3}", "dim")
    text.append_text(bar(round(100 * accuracy), 100, width=width, done=True) if trained
                     else Text("━" * width, "bright_black"))
    text.append(f" {100 * accuracy:5.1f}%", acc_style(accuracy) if trained else "dim")
    if not trained:
        text.append("  not trained", "dim")
    return text


def outcome_text(outcome: Event | None, status: str | None, figures: RunFigures,
                 seconds: float | None = None) -> Text | None:
    """How the run ended; `seconds`: its duration as the screen shows it everywhere (run.json's total_s)."""
    if isinstance(outcome, RunFinished):
        text = Text("✓ finished", "bold green")
        for label, value in figure_parts(figures)[:3]:
            if not value.startswith("–"):
                text.append(f" · {label} {value}")
        text.append(f" · {fmt_duration(outcome.total_s if seconds is None else seconds)}")
        return text
    if isinstance(outcome, RunFailed):
        where = f" in context {outcome.context}" if outcome.context is not None else ""
        text = Text(f"✗ failed{where}: ", "bold red")
        text.append(outcome.error, "red")
        if outcome.traceback:
            last = [line for line in outcome.traceback.strip().splitlines() if line.strip()][-1:]
            if last and outcome.error.strip() not in last[0]:
                text.append(f"\n  {last[0].strip()}", "dim")
        return text
    if isinstance(outcome, RunCancelled):
        return Text.assemble(("■ cancelled: ", "bold yellow"), (outcome.reason, "yellow"),
                             " · the contexts it completed are saved")
    if status == "stale":
        return Text("? its worker is gone without a final word (killed, or the machine went down); "
                    "the contexts it completed are saved", "bold magenta")
    if status in ("unreadable", "missing"):
        return Text(f"? run.json is {status}", "bold magenta")
    return None
