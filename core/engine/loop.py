"""What every run of the engine shares (a classification or generation run, a merge): the stop a user asks for
(`Cancelled`), a loss that is no longer a number (`NonFiniteLoss`), a run folder that cannot be written
(`StoreWriteError`), a long piece of work reported as a phase (`Phase`), the report tail of a training step
(`ReportTail`: the loss window, the throttled Progress event with its samples/s rate, the NaN/inf check and the stop
check), and the run's lifecycle (`run_and_record`: run.json and the terminal event, however the run ends)."""

from __future__ import annotations

import errno
import math
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol, Self, TypeVar

import torch
from torch import Tensor

from core.runs.events import Event, PhaseFinished, PhaseStarted, Progress, RunCancelled, RunFailed, RunFinished
from core.runs.record import RunError, RunRecord

FINAL_LOSS_TAIL = 10  # iterations averaged into a context's recorded final_loss


class Cancelled(Exception):
    """The user (or a dying parent process) asked the run to stop; raised at the next stop check."""


class NonFiniteLoss(Exception):
    def __init__(self, context: int, iteration: int):
        super().__init__(f"loss became NaN or infinite in context {context} at iteration {iteration}; "
                         f"lower train.lr or the method's strength")
        self.context, self.iteration = context, iteration


class StoreWriteError(Exception):
    """The run folder could not be written (a full disk, a read-only or vanished folder)."""

    def __init__(self, what: str, error: OSError, completed: int, run_id: str = "RUN"):
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        why = error.strerror or str(error)
        super().__init__(f"cannot write {what} ({why}){': the disk is full' if full else ''}; "
                         f"{completed} completed context(s) are saved; "
                         f"{'free some space' if full else 'fix the runs folder'}, then `cltui run --resume {run_id}`")


class Phase:
    """A long piece of work inside a run: PhaseStarted on entry (after a stop check), throttled Progress each time
    the phase is called with the steps done (and the loss, as a float or a device tensor read only when a report
    is due; each report also checks for a stop, so a phase that reports its steps is always stoppable), and
    PhaseFinished when the block ends normally. Its seconds are added to `seconds[name]` when a dict is given."""

    def __init__(self, emit: Callable[[Event], None], context: int, name: str, total: int | None = None, *,
                 interval: float = 0.25, check_stop: Callable[[], None] = lambda: None,
                 seconds: dict[str, float] | None = None):
        self.emit, self.context, self.name, self.total = emit, context, name, total
        self.interval, self.check_stop, self.seconds = interval, check_stop, seconds

    def __enter__(self) -> Self:
        self.check_stop()
        self.emit(PhaseStarted(context=self.context, phase=self.name, total=self.total))
        self.start = self.last = time.monotonic()
        return self

    def __call__(self, step: int, loss: float | Tensor | None = None) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval or (self.total is not None and step >= self.total):
            self.last = now
            self.emit(Progress(context=self.context, phase=self.name, step=step, total=self.total or 0,
                               loss=None if loss is None else float(loss)))
            self.check_stop()

    def __exit__(self, kind: object, *_: object) -> None:
        seconds = time.monotonic() - self.start
        if self.seconds is not None:
            self.seconds[self.name] = self.seconds.get(self.name, 0.0) + seconds
        if kind is None:
            self.emit(PhaseFinished(context=self.context, phase=self.name, seconds=seconds))


class ReportTail:
    """The tail of every step of a training loop. Each step's loss stays on the device; a few times a second (and
    at the last step) the mean of the steps since the last report is read (the loop's one host sync), the owner's
    `on_report(step)` runs (continual-evaluation points, active units), a NaN or infinite loss raises
    `nonfinite(first bad step index, step)`, a Progress event carries the mean and the samples/s rate, and a stop
    asked meanwhile raises Cancelled(`stopped(step)`)."""

    def __init__(self, steps: int, batch_size: int, device: torch.device, emit: Callable[[Event], None], *,
                 context: int, phase: str, interval: float, should_stop: Callable[[], bool],
                 stopped: Callable[[int], str], nonfinite: Callable[[int, int], Exception],
                 on_report: Callable[[int], None] | None = None):
        self.steps, self.batch_size, self.emit = steps, batch_size, emit
        self.context, self.phase, self.interval = context, phase, interval
        self.should_stop, self.stopped, self.nonfinite, self.on_report = should_stop, stopped, nonfinite, on_report
        self.losses = torch.zeros(steps, device=device)  # (steps,) on the device: read when a report is due
        self.reported = 0  # steps whose losses a Progress event has reported
        self.started = self.last = time.monotonic()  # the loop's clock starts here (after any device sync)

    def step(self, it: int, loss: Tensor) -> None:
        """Keep step `it`'s loss; report when a report is due."""
        self.losses[it] = loss.detach()
        now = time.monotonic()
        if now - self.last < self.interval and it != self.steps - 1:
            return
        window = self.losses[self.reported : it + 1]  # the steps since the last report
        mean = window.mean().item()  # the one host sync
        if self.on_report is not None:
            self.on_report(it + 1)
        if not math.isfinite(mean):
            raise self.nonfinite(self.reported + int((~torch.isfinite(window)).nonzero()[0]), it + 1)
        rate = (it + 1 - self.reported) * self.batch_size / max(now - self.last, 1e-9)
        self.emit(Progress(context=self.context, phase=self.phase, step=it + 1, total=self.steps, loss=mean,
                           samples_per_s=rate))
        self.reported, self.last = it + 1, now
        if self.should_stop():
            raise Cancelled(self.stopped(it + 1))

    def final_loss(self) -> float:
        """The mean loss of the last FINAL_LOSS_TAIL steps: a fixed tail, where the last report's window starts
        wherever the clock put the report before it."""
        return self.losses[-min(self.steps, FINAL_LOSS_TAIL) :].mean().item()


class Runner(Protocol):
    """A run in progress (core/training/train.py's Trainer, core/merge/merger.py's Merger)."""

    record: RunRecord

    def run(self) -> None: ...

    def finish(self, status: str, error: RunError | None = None) -> str | None:
        """Record how the run ended in run.json; the reason it could not be written, if it could not."""
        ...


R = TypeVar("R", bound=Runner)


def run_and_record(start: Callable[[], R], emit: Callable[[Event], None],
                   ended: Callable[[R | None, str, RunError], tuple[RunRecord, str | None]], *,
                   plain: tuple[type[Exception], ...], kind_of: Callable[[Exception], str] = lambda e: "error",
                   raises: tuple[type[Exception], ...] = ()) -> dict[str, Any]:
    """The lifecycle every run shares: `start()` makes the runner, which runs; however that ends, the record
    says so (`ended(runner or None, status, error)`: the record and the reason it could not be written, if it
    could not) and the matching terminal event goes out: RunFinished, RunCancelled (a Cancelled or Ctrl+C, which
    is raised again) or RunFailed (any other exception: its message bare for the `plain` kinds, typed otherwise,
    its kind from `kind_of`). Exceptions of the `raises` kinds are bad input, raised as they are. Returns the
    final record as a dict."""
    runner: R | None = None
    try:
        runner = start()
        runner.run()
    except raises:
        raise
    except (Cancelled, KeyboardInterrupt) as e:
        reason = str(e) or "interrupted"
        record, _ = ended(runner, "cancelled", RunError(message=reason, kind="cancelled"))
        emit(RunCancelled(reason=reason, context=len(record.acc_matrix)))
        if isinstance(e, KeyboardInterrupt):
            raise
        return record.to_dict()
    except Exception as e:  # noqa: BLE001 - every failure must land in run.json
        kind = kind_of(e)
        message = str(e) if isinstance(e, plain) else f"{type(e).__name__}: {e}"
        error = RunError(message=message, kind=kind, traceback=traceback.format_exc(),
                         context=getattr(e, "context", None), iteration=getattr(e, "iteration", None))
        record, unsaved = ended(runner, "failed", error)
        if unsaved and not isinstance(e, StoreWriteError):
            message = f"{message} (and {unsaved})"
        emit(RunFailed(error=message, traceback=error.traceback or "", context=error.context,
                       iteration=error.iteration, kind=kind))
        return record.to_dict()
    unsaved = runner.finish("finished")
    if unsaved:  # ran to the end, but the last write failed: say so instead of claiming success
        emit(RunFailed(error=unsaved, kind="error"))
        return runner.record.to_dict()
    emit(RunFinished(metrics=runner.record.metrics, total_s=runner.record.timing["total_s"] or 0.0))
    return runner.record.to_dict()
