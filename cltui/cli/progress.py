"""The headless run display: a live per-context table in a terminal, plain lines in a log file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Self

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    CurveEvaluated,
    DreamsSaved,
    Event,
    PhaseStarted,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    Warned,
)
from core.runs.metrics import class_weights, seen_average, stage_name, trains_once
from core.schema.config import RunConfig


class RunProgress:
    def __init__(self, console: Console, config: RunConfig, run_dir: Path, quiet: bool = False):
        self.console, self.config, self.run_dir, self.quiet = console, config, run_dir, quiet
        self.live_mode = console.is_terminal and not quiet
        self.header = f"{run_dir.name} · starting worker…"
        self.rows: dict[int, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.started = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> Self:
        if self.live_mode:
            self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def note(self, text: str) -> None:
        self.notes.append(text)
        if not self.live_mode:
            self.console.print(text)

    def update(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.header = f"{event.run_id} · {event.device} · {event.contexts} contexts"
            if event.resumed_from:
                self.note(f"resumed after context {event.resumed_from - 1}")
            if not self.live_mode and not self.quiet:
                self.console.print(f"run {event.run_id}: {self.config.benchmark.name} "
                                   f"{self.config.benchmark.protocol}, {self.config.scenario}-IL, "
                                   f"method {self.config.method.name}, on {event.device}")
        elif isinstance(event, ContextStarted):
            self.rows[event.context] = {"classes": event.classes, "phase": "train", "step": 0,
                                        "total": event.iterations, "loss": None, "acc": None}
        elif isinstance(event, PhaseStarted) and event.context in self.rows:
            self.rows[event.context].update(phase=event.phase, phase_step=0, phase_total=event.total)
        elif isinstance(event, Progress) and event.context in self.rows:
            row = self.rows[event.context]
            if event.phase == "train":
                row.update(step=event.step, total=event.total, loss=event.loss, rate=event.samples_per_s)
            else:  # a consolidation phase (fisher, dreaming, generator...): the bar follows it
                row.update(phase_step=event.step, phase_total=event.total)
        elif isinstance(event, DreamsSaved):
            quality = event.quality.get("verifier_accuracy")
            self.note(f"context {event.context}: {event.count} dreamed images saved in {event.path}"
                      + ("" if quality is None else f" · the verifier recognises {100 * quality:.0f}%"))
        elif isinstance(event, ContextEvaluated) and event.context in self.rows:
            row = self.rows[event.context]
            row.update(phase="done", step=row["total"], acc=event.accuracies,
                       avg=seen_average(event.accuracies, event.context, trains_once(self.config.method.name),
                                        class_weights(self.config.benchmark)),
                       train_s=event.train_s, loss=event.final_loss)
            if not self.live_mode and not self.quiet:
                if self.config.benchmark.regression:
                    scores = " ".join(f"{a:.3f}" for a in event.accuracies)
                    summary = f"avg R² so far {row['avg']:.3f}, R² per context: {scores}"
                else:
                    accs = " ".join(f"{100 * a:.1f}" for a in event.accuracies)
                    summary = f"avg acc so far {100 * row['avg']:.1f}%, acc per context: {accs}"
                self.console.print(f"context {event.context}: {row['total']} it in {event.train_s:.1f} s, "
                                   f"loss {event.final_loss:.4f}, {summary}")
        elif isinstance(event, CurveEvaluated) and event.context in self.rows and event.accuracies:
            row = self.rows[event.context]
            if row["phase"] != "done":  # continual evaluation: the accuracy column follows the latest point
                row["acc"] = event.accuracies[-1]
        elif isinstance(event, Warned):  # beside the run (a tracker that cannot be reached): the run goes on
            self.note(f"warning: {event.message}")
        elif isinstance(event, (RunFinished, RunFailed, RunCancelled)):
            self.header += f" · {type(event).__name__.removeprefix('Run').lower()}"

    def render(self) -> Group:
        table = Table(show_edge=False, pad_edge=False, box=None)
        for name, justify in [("context", "left"), ("classes", "left"), ("phase", "left"), ("progress", "left"),
                              ("iter", "right"), ("loss", "right"), ("acc %", "right"), ("avg seen %", "right")]:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for k, row in sorted(self.rows.items()):
            step, total = row["step"], row["total"]
            if row["phase"] not in ("train", "done") and row.get("phase_total"):
                step, total = row["phase_step"], row["phase_total"]
            table.add_row(
                stage_name(k, trains_once(self.config.method.name)), escape(str(row["classes"])[:24]), row["phase"],
                ProgressBar(total=max(total, 1), completed=step, width=24),
                f"{step}/{total}", "" if row["loss"] is None else f"{row['loss']:.4f}",
                "" if row["acc"] is None else f"{100 * row['acc'][min(k, len(row['acc']) - 1)]:.1f}",
                "" if row.get("avg") is None else f"{100 * row['avg']:.1f}",
            )
        elapsed = time.monotonic() - self.started
        parts: list[Any] = [Text(f"{self.header} · {elapsed:.0f} s", style="bold"), table]
        parts += [Text(n, style="yellow") for n in self.notes[-3:]]
        return Group(*parts)
