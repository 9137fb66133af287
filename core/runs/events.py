"""The event stream: small frozen dataclasses that the training loop emits and every face consumes.

Past-tense names, scalars only (never tensors), so events pickle through a multiprocessing queue
and round-trip through `events.jsonl` unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    t: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    contexts: int
    device: str
    config: dict[str, Any]
    resumed_from: int | None = None


@dataclass(frozen=True)
class ContextStarted(Event):
    context: int
    classes: list[int]
    iterations: int


@dataclass(frozen=True)
class PhaseStarted(Event):
    """A named phase of a context: train, eval, or a method's consolidation (fisher, herding, dreaming...)."""

    context: int
    phase: str
    total: int | None = None


@dataclass(frozen=True)
class Progress(Event):
    """Throttled (a few per second): `step` of `total` in the current phase, mean loss since the last one."""

    context: int
    phase: str
    step: int
    total: int
    loss: float | None = None
    samples_per_s: float | None = None


@dataclass(frozen=True)
class PhaseFinished(Event):
    context: int
    phase: str
    seconds: float


@dataclass(frozen=True)
class ContextEvaluated(Event):
    """Accuracy on every context (future ones too) after training on `context`."""

    context: int
    accuracies: list[float]
    train_s: float
    final_loss: float | None


@dataclass(frozen=True)
class CurveEvaluated(Event):
    """Continual evaluation (`train.eval_every`): accuracy on every context at `iterations` (counted from the
    run's first step) while training stage `context`; `accuracies[k]` holds one value per context."""

    context: int
    iterations: list[int]
    accuracies: list[list[float]]


@dataclass(frozen=True)
class DreamsSaved(Event):
    """Images dreamed after `context` are on disk (`path`: the grid, relative to the run folder)."""

    context: int
    path: str
    count: int
    quality: dict[str, float | None] = field(default_factory=dict)  # the scalar quality figures


@dataclass(frozen=True)
class Warned(Event):
    """Something beside the run went wrong and the run goes on (a tracker that cannot be reached): one line."""

    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    metrics: dict[str, float | None]
    total_s: float


@dataclass(frozen=True)
class RunFailed(Event):
    error: str
    traceback: str = ""
    context: int | None = None
    iteration: int | None = None
    kind: str = "error"  # "input": bad input found by the worker (exit code 2), "error": a crash


@dataclass(frozen=True)
class RunCancelled(Event):
    reason: str
    context: int | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (RunStarted, ContextStarted, PhaseStarted, Progress, PhaseFinished, ContextEvaluated,
                CurveEvaluated, DreamsSaved, Warned, RunFinished, RunFailed, RunCancelled)
}
TERMINAL = (RunFinished, RunFailed, RunCancelled)


def to_json(event: Event) -> str:
    return json.dumps({"event": type(event).__name__, **dataclasses.asdict(event)})


def from_json(line: str) -> Event:
    """One events.jsonl line back into its event; ValueError names what is wrong with it."""
    data = json.loads(line)
    cls = EVENT_TYPES.get(data.pop("event", None)) if isinstance(data, dict) else None
    if cls is None:
        raise ValueError(f"not a cltui event: {line[:80]!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as e:  # a required field missing: a damaged line, not a crash of the reader
        raise ValueError(f"damaged {cls.__name__} event ({e}): {line[:80]!r}") from None


@dataclass(frozen=True)
class UnitsActive(Event):
    """Merging by L0 (`cltui merge --approach l0`): at `step` of `total` joint-training steps, the units per
    layer whose hard-concrete gate is still likely open, out of `widths` (the joint, double-width network);
    pruning keeps `keep` of each layer. Faces draw it as a chart of active units falling toward half."""

    context: int
    step: int
    total: int
    active: dict[str, int]
    widths: dict[str, int]
    keep: dict[str, int]


EVENT_TYPES[UnitsActive.__name__] = UnitsActive
