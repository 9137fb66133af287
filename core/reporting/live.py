"""Tracking while the run trains: the worker's events turned into one MLflow run as they arrive (`MlflowSink`), fed
from a queue by a thread of its own (`EventTracker`) so that training never waits for the tracker, and the
worker's emit with that tracker attached (`tracked`). A tracker that is down or misconfigured never fails the run:
one warning line (in worker.log, and a `Warned` event the faces show), then it stays quiet and the run goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.reporting.mlflow_store import MlflowRun, MlflowStore, log_ending
from core.reporting.tracking import (
    MLFLOW_EXTRA,
    TrackingError,
    context_metrics,
    experiment_name,
    flat_params,
    iteration_offsets,
    resolve_uri,
    run_tags,
    short_reason,
)
from core.runs.events import (
    TERMINAL,
    ContextEvaluated,
    ContextStarted,
    DreamsSaved,
    Event,
    Progress,
    RunStarted,
    Warned,
)
from core.runs.record import read_run_json

CLOSE_TIMEOUT = 120.0  # seconds the worker waits, at the end of a run, for the tracker to catch up
FLUSH_EVERY = 1.0  # seconds between two batches sent to the tracker


class MlflowSink:
    """The worker's events -> one MLflow run, as they arrive."""

    def __init__(self, config: dict[str, Any], run_dir: Path):
        self.config, self.run_dir = config, run_dir
        self.track = config.get("track") or {}
        self.store = MlflowStore(resolve_uri(self.track.get("uri"), run_dir.parent), experiment_name(config))
        self.run: MlflowRun | None = None
        self.rows: list[list[float]] = []
        self.offsets: dict[int, int] = {}  # the iteration of the whole run at which each context starts
        self._iterations: dict[int, int] = {}

    def add(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.start(event)
        elif self.run is None:
            return  # nothing ran (bad input found by the worker): no MLflow run for it
        elif isinstance(event, ContextStarted):
            if event.context not in self.offsets:
                self.offsets[event.context] = max((o + n for o, n in self._spans()), default=0)
            self._iterations[event.context] = event.iterations
        elif isinstance(event, Progress) and event.phase == "train" and event.loss is not None:
            self.run.metric("loss", event.loss, self.offsets.get(event.context, 0) + event.step, event.t)
        elif isinstance(event, ContextEvaluated):
            del self.rows[event.context:]
            self.rows.append(list(event.accuracies))
            self.run.metrics({**context_metrics(self.rows, event.context, self.config),
                              "context_loss": event.final_loss, "context_train_s": event.train_s},
                             event.context, event.t)
        elif isinstance(event, DreamsSaved):
            path = (self.run_dir / event.path).resolve()
            if path.is_file() and self.run_dir.resolve() in path.parents:
                self.run.artifact(path, f"dreams/context-{event.context}")
        elif isinstance(event, TERMINAL):
            log_ending(self.run, read_run_json(self.run_dir), self.run_dir, bool(self.track.get("checkpoints")))
            self.run = None

    def _spans(self) -> Iterable[tuple[int, int]]:
        return ((self.offsets[k], self._iterations.get(k, 0)) for k in self.offsets)

    def start(self, event: RunStarted) -> None:
        record = read_run_json(self.run_dir)
        found = self.store.find("cltui.run_id", event.run_id)
        if found is not None and event.resumed_from:
            self.run = self.store.reuse(found)  # the same MLflow run goes on with the contexts left
            self.run.tags({"status": "running"})
        else:
            self.run = self.store.create(event.run_id, run_tags(event.config, event.run_id, "running"),
                                         self.track.get("parent"), event.t)
            self.run.params(flat_params(event.config))
        done = event.resumed_from or 0
        self.rows = [list(r) for r in (record.get("acc_matrix") or [])[:done]]
        contexts = [c for c in record.get("contexts") or [] if c.get("index", 0) < done]
        self.offsets = iteration_offsets(contexts)
        self._iterations = {c.get("index", 0): c.get("iterations") or 0 for c in contexts}
        print(f"tracking in MLflow: {self.store.uri}, experiment {self.store.experiment!r}, run {self.run.id}",
              flush=True)

    def flush(self) -> None:
        if self.run is not None:
            self.run.flush()


_END = object()


class EventTracker:
    """A sink fed from a queue by a thread of its own: `observe` never waits. The first failure disables it
    with one warning line (`warn`); `close` hands over the final event and waits, at most `timeout` seconds,
    for everything to be sent."""

    def __init__(self, make_sink: Callable[[], Any], warn: Callable[[str], None], what: str, run_id: str):
        self.make_sink, self.warn, self.what, self.run_id = make_sink, warn, what, run_id
        self.failed = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="cltui-tracker", daemon=True)
        self._thread.start()

    def observe(self, event: Event) -> None:
        if not self.failed:
            self._queue.put(event)

    def close(self, event: Event | None = None, timeout: float = CLOSE_TIMEOUT) -> None:
        if event is not None:
            self.observe(event)
        self._queue.put(_END)
        self._thread.join(timeout)
        if self._thread.is_alive() and not self.failed:
            self.failed = True
            self.warn(f"tracking: {self.what} did not answer within {timeout:.0f} s; the run is saved in run.json: "
                      f"push it with `cltui export mlflow {self.run_id}`")

    def _fail(self, error: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        reason = str(error) if isinstance(error, TrackingError) else short_reason(error)
        if isinstance(error, ImportError):
            reason = f"MLflow is not installed ({MLFLOW_EXTRA})"
        self.warn(f"tracking: {self.what}: {reason}; the run goes on untracked (push it later with "
                  f"`cltui export mlflow {self.run_id}`)")

    def _loop(self) -> None:
        sink = None
        while True:
            # A batch: the events of up to FLUSH_EVERY seconds after the first one, cut short by the end.
            events = [self._queue.get()]
            deadline = time.monotonic() + FLUSH_EVERY
            while events[-1] is not _END and not isinstance(events[-1], TERMINAL):
                try:
                    events.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            done = False
            for event in events:
                if event is _END:
                    done = True
                    continue
                if self.failed:
                    continue
                try:
                    if sink is None:
                        if not isinstance(event, RunStarted):
                            continue  # nothing ran yet: a run that fails at start-up is not tracked
                        sink = self.make_sink()
                    sink.add(event)
                except Exception as e:  # noqa: BLE001 - a tracker never fails the run
                    self._fail(e)
            if sink is not None and not self.failed:
                try:
                    sink.flush()
                except Exception as e:  # noqa: BLE001
                    self._fail(e)
            if done:
                return


def tracked(emit: Callable[[Event], None], config: dict[str, Any], run_dir: Path) -> Callable[[Event], None]:
    """`emit` with the run's tracker attached (the same `emit` when the config names none). Every event still
    goes to `emit` (one at a time: the tracker's warning comes from its own thread); the final one only once the
    tracker has sent everything, so a warning about it comes first."""
    track = config.get("track") or {}
    if track.get("tracker") != "mlflow":
        return emit
    lock = threading.Lock()

    def emit_one(event: Event) -> None:
        with lock:
            emit(event)

    def warn(message: str) -> None:
        from core.runs.record import now_iso

        print(f"{now_iso()} warning: {message}", flush=True)  # worker.log
        emit_one(Warned(message=message))

    where = f"MLflow at {resolve_uri(track.get('uri'), run_dir.parent)}"
    tracker = EventTracker(lambda: MlflowSink(config, run_dir), warn, where, run_dir.name)

    def emit_tracked(event: Event) -> None:
        if isinstance(event, TERMINAL):
            tracker.close(event)
        else:
            tracker.observe(event)
        emit_one(event)

    return emit_tracked
