"""run.json, the run's record (schema 1): `RunRecord`, its parts (contexts, dreams, error, merge teachers) and
its transitions (new, resumed, context completed, ended, worker died), written once, here; and the one way to read
and write it (`read_record`, `parse_record`, `write_record`).

A file it cannot read, whatever is wrong with it (cut JSON, wrong types, a folder where the file should be),
becomes one "unreadable: why" StoreError; it never stops a listing, a screen or a study table.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from core.files import write_json_atomic
from core.runs.events import Event, RunCancelled, RunFailed, RunFinished
from core.runs.metrics import SIDE_MATRICES, class_weights, summarize, trains_once
from core.runs.paths import RUN_JSON, StoreError, inside, read_bounded

SCHEMA = 1

Status = Literal["running", "finished", "failed", "cancelled"]
ENDED: tuple[str, ...] = ("finished", "failed", "cancelled")


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")



class _Open(BaseModel):
    # Fields this version does not know (written by a newer cltui, or a new run kind) are kept as they are.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ContextRow(_Open):
    """One trained stage: what run.json's `contexts` lists."""

    index: int
    classes: list[int] = []
    train_s: float | None = None
    iterations: int | None = None
    final_loss: float | None = None
    elapsed_s: float | None = None  # wall time of the run (all its sessions) when this stage was saved


class DreamEntry(_Open):
    """One context's dreams (data-free methods): run.json's `dreams` list."""

    context: int
    path: str | None = None
    count: int = 0
    quality: dict[str, Any] = {}


class RunError(_Open):
    message: str
    kind: str = "error"  # error, input, cancelled, failed
    traceback: str | None = None
    context: int | None = None
    iteration: int | None = None


class Resumed(_Open):
    at: str
    status: str
    device: str | None = None


class MethodView(_Open):
    name: str


class ConfigView(_Open):
    """What every reader of a record relies on in its config; the rest is kept as written (a record stays
    readable when a later cltui changes a method's parameters; `--resume` validates the whole config)."""

    preset: str | None = None
    benchmark: dict[str, Any] = {}
    scenario: str | None = None
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    method: MethodView


class MergeTeacher(_Open):
    """One teacher of a merge run: its run id and what it scored on every context of the benchmark."""

    id: str
    accuracies: list[float] = []
    final_avg_acc: float | None = None
    learned: list[int] = []  # the contexts whose training data it saw


class MergeInfo(_Open):
    """What a merge run (`cltui merge`) was made from; its single acc_matrix row is the student's accuracy."""

    approach: str
    data: str
    teachers: list[MergeTeacher] = []
    settings: dict[str, Any] = {}
    phases: dict[str, float] = {}  # seconds spent in each phase
    active_units: list[dict[str, Any]] = []  # l0: {"step": .., "active": {layer: units}} during joint training
    widths: dict[str, int] = {}  # the student's units per prunable layer


class RunRecord(_Open):
    """run.json, schema 1 (docs/run-folder.md): the one typed view of a run's record. Faces read it as a dict
    (`to_dict`), normalised: every field present with the type named here."""

    schema_: Literal[1] = Field(1, alias="schema")
    id: str
    status: Status
    pid: int | None = None
    created: str
    finished: str | None = None
    preset: str | None = None
    config: ConfigView
    env: dict[str, str] = {}
    contexts: list[ContextRow] = []
    acc_init: list[float] | None = None
    acc_matrix: list[list[float]] = []
    # Continual evaluation (train.eval_every): [iteration, stage, [accuracy on each context]] per point.
    acc_curve: list[tuple[int, int, list[float]]] = []
    metrics: dict[str, float | None] = {}
    timing: dict[str, float | None] = {}
    dreams: list[DreamEntry] = []
    error: RunError | None = None
    resumed: list[Resumed] = []
    # Bytes held after the last context trained: "network" (its parameters and buffers), "method" (what the method
    # keeps between contexts: stored samples, importances, anchors, generators), "teacher" (a frozen previous model).
    memory: dict[str, int] = {}
    # Class-IL runs, rows as acc_matrix's (SIDE_MATRICES): the accuracy with each context's test images scored on its
    # own classes only (task-IL accuracy of the same network), top-5 accuracy (with more than ten classes in all),
    # and for the methods that keep exemplars the other rule's: the nearest mean of exemplars, or for iCaRL (whose
    # rule that is) the network's own logits.
    task_matrix: list[list[float]] = []
    top5_matrix: list[list[float]] = []
    nme_matrix: list[list[float]] = []
    cnn_matrix: list[list[float]] = []
    merge: MergeInfo | None = None  # a merge run (docs/architecture.md, run kinds): its teachers and phases

    @field_validator("acc_init", "acc_matrix", "acc_curve", "task_matrix", "top5_matrix", "nme_matrix", "cnn_matrix")
    @classmethod
    def _figures(cls, value: Any, info: ValidationInfo) -> Any:
        """Figures read from disk are shown and averaged: each must be a score this benchmark can give, an
        accuracy in [0, 1] (sine's R²: any finite value up to 1), never NaN, inf or -5."""
        config = info.data.get("config")
        regression = isinstance(config, ConfigView) and config.benchmark.get("name") == "sine"
        if value is None:  # acc_init before the first evaluation
            return value
        matrix = info.field_name == "acc_matrix" or str(info.field_name).removesuffix("_matrix") in SIDE_MATRICES
        rows = value if matrix else [value] if info.field_name == "acc_init" else [point[2] for point in value]
        if matrix and len({len(row) for row in value}) > 1:
            raise ValueError("acc_matrix: its rows differ in length (each row holds a score for every context)")
        for i, row in enumerate(rows or []):
            for j, figure in enumerate(row):
                if not (math.isfinite(figure) and figure <= 1 and (regression or figure >= 0)):
                    where = f"[{i}][{j}]" if matrix else f"[{j}]" \
                        if info.field_name == "acc_init" else f" point {i}, context {j}"
                    raise ValueError(f"{figure!r} at {info.field_name}{where} is not "
                                     f"{'an R² (finite, at most 1)' if regression else 'an accuracy in [0, 1]'}")
        return value

    # transitions ---------------------------------------------------------------------------------

    @classmethod
    def new(cls, run_id: str, preset: str | None, config: dict[str, Any], env: dict[str, str] | None = None
            ) -> RunRecord:
        """A run that has just started (its worker may not exist yet)."""
        return cls(id=run_id, status="running", pid=os.getpid(), created=now_iso(), preset=preset,
                   config=ConfigView.model_validate(config), env=env or {})

    def resume(self, config: dict[str, Any], env: dict[str, str], completed: int) -> None:
        """Continue in this process after `completed` stages whose checkpoint has loaded: rows past it are
        work a kill interrupted, and are dropped (they are trained again)."""
        self.resumed.append(Resumed(at=now_iso(), status=self.status, device=env.get("device")))
        self.status, self.finished, self.error, self.pid = "running", None, None, os.getpid()
        self.config, self.env = ConfigView.model_validate(config), env
        self.contexts = self.contexts[:completed]
        self.acc_matrix = self.acc_matrix[:completed]
        for key in SIDE_MATRICES:
            setattr(self, f"{key}_matrix", getattr(self, f"{key}_matrix")[:completed])
        self.acc_curve = [p for p in self.acc_curve if p[1] < completed]
        self.dreams = [d for d in self.dreams if d.context < completed]

    def context_completed(self, row: ContextRow, accuracies: list[float], extra: dict[str, float | None] | None = None,
                          dreams: dict[str, Any] | None = None, side: dict[str, list[float]] | None = None) -> None:
        """A stage has been trained and evaluated. `extra`: figures beside the matrix's own (validation); `side`:
        the rows of the class-IL side matrices (SIDE_MATRICES: "task", "top5", "nme", "cnn")."""
        for key, figures in (side or {}).items():
            if key in SIDE_MATRICES:
                getattr(self, f"{key}_matrix").append(figures)
        if dreams is not None:
            self.dreams = [d for d in self.dreams if d.context != row.index] + [DreamEntry.model_validate(dreams)]
        self.contexts.append(row)
        self.acc_matrix.append(accuracies)
        self.metrics = {**(extra or {}), **self.matrix_metrics()}

    def end(self, status: Status, error: RunError | None, extra: dict[str, float | None] | None,
            timing: dict[str, float | None]) -> None:
        self.status, self.finished, self.error = status, now_iso(), error
        self.metrics, self.timing = {**self.metrics, **(extra or {}), **self.matrix_metrics()}, timing

    def worker_died(self, asked: bool, message: str, log_tail: str) -> None:
        """The worker ended without its own final word: cancelled when it was asked to stop, else failed.
        What it had saved (every completed context) stays."""
        status: Status = "cancelled" if asked else "failed"
        self.status, self.finished = status, now_iso()
        self.error = RunError(message=message, kind=status, traceback=log_tail)

    # reading -------------------------------------------------------------------------------------

    @property
    def trains_jointly(self) -> bool:
        """One stage over every context's data: its single row is "all", not context 0 (a merge run's too)."""
        return trains_once(self.config.method.name)

    def matrix_metrics(self) -> dict[str, float | None]:
        """The figures the accuracy matrix (and curve) give, from their one home (core/runs/metrics.py)."""
        contexts = self.config.benchmark.get("contexts")
        known = contexts if isinstance(contexts, int) and not isinstance(contexts, bool) else None
        weights = class_weights(self.config.benchmark)
        side = {key: getattr(self, f"{key}_matrix") for key in SIDE_MATRICES}
        try:
            return summarize(self.acc_matrix, self.acc_init, self.acc_curve, once=self.trains_jointly, contexts=known,
                             weights=weights, side=side)
        except (IndexError, TypeError, ValueError):  # a curve of another shape: the matrix's own figures stand
            return summarize(self.acc_matrix, once=self.trains_jointly, contexts=known, weights=weights, side=side)

    def terminal_event(self) -> Event | None:
        """The event a follower would have seen for this record's final status (None while running)."""
        if self.status == "finished":
            return RunFinished(metrics=dict(self.metrics), total_s=self.timing.get("total_s") or 0.0)
        message = self.error.message if self.error else self.status
        if self.status == "failed":
            return RunFailed(error=message, traceback=(self.error.traceback or "") if self.error else "",
                             kind=self.error.kind if self.error else "error")
        if self.status == "cancelled":
            return RunCancelled(reason=message, context=len(self.acc_matrix))
        return None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _why(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "the top level"
    return f"{where}: {err['msg'][:1].lower()}{err['msg'][1:]}"


def parse_record(data: Any, where: Path | str) -> RunRecord:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise StoreError(f"{where}: not a cltui run.json (schema {SCHEMA} expected)")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as e:
        raise StoreError(f"{where}: unreadable ({_why(e)}); the run's other files are untouched") from None


def read_record(run_dir: Path) -> RunRecord:
    """The run's record, or StoreError with one line saying why it cannot be read."""
    path = run_dir / RUN_JSON
    try:
        text = read_bounded(inside(run_dir, RUN_JSON, action="read"))
    except FileNotFoundError:
        raise StoreError(f"{path}: missing; this folder is not a cltui run") from None
    except OSError as e:  # a folder where the file should be, no permission, an I/O error
        raise StoreError(f"{path}: unreadable ({e.strerror or e}); the run's other files are untouched") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # cut JSON, bad UTF-8, absurd nesting
        raise StoreError(f"{path}: unreadable JSON ({str(e)[:120]}); the run's other files are untouched") from None
    record = parse_record(data, path)
    try:
        # The matrix's figures are computed, never trusted from disk: an older cltui averaged a cancelled run
        # over contexts it never trained.
        record.metrics = {**record.metrics, **record.matrix_metrics()}
        # text no UTF-8 can hold (a lone surrogate, written as \\ud800) breaks every reader and printer later
        json.dumps(record.to_dict(), ensure_ascii=False).encode()
    except (UnicodeError, ValueError) as e:
        raise StoreError(f"{path}: unreadable ({str(e)[:120]}); the run's other files are untouched") from None
    return record


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The record as a normalised dict (every field present and typed), for the faces."""
    return read_record(run_dir).to_dict()


def write_record(run_dir: Path, record: RunRecord) -> None:
    write_json_atomic(run_dir / RUN_JSON, record.to_dict())


def new_run_record(run_id: str, preset: str | None, config: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """A run.json (schema 1) for a run that has just started, as a dict."""
    return RunRecord.new(run_id, preset, config, env).to_dict()
