"""The run store: one folder per run under the runs directory, holding run.json (schema 1, rewritten
atomically), events.jsonl (append-only), worker.log, checkpoints/ and dreams/.

Two rules make it trustworthy:

- run.json is read and written only through `RunRecord`, a typed record with its transitions (new,
  resumed, context completed, ended, worker died) written once, here. A file it cannot read, whatever is
  wrong with it (cut JSON, wrong types, a folder where the file should be), becomes one "unreadable: why"
  entry; it never stops a listing, a screen or a study table.
- every id that names a folder (a run, a study) goes through `RunStore.run_dir` / `child_name`, which
  refuse anything but a plain child of the runs folder: no separators, no `..`, no symlink out. So no run
  id, study file or command line makes cltui touch a file outside its runs folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import math
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from core.files import slug, write_json_atomic, write_text_atomic  # noqa: F401 - re-exported
from core.runs.events import Event, RunCancelled, RunFailed, RunFinished, from_json, to_json
from core.runs.metrics import summarize, trains_once

if TYPE_CHECKING:
    from core.schema.config import RunConfig

SCHEMA = 1
RUN_JSON = "run.json"
EVENTS = "events.jsonl"
WORKER_LOG = "worker.log"

Status = Literal["running", "finished", "failed", "cancelled"]
ENDED: tuple[str, ...] = ("finished", "failed", "cancelled")


class StoreError(ValueError):
    """A user-facing problem with the runs directory or a run in it, phrased as one line."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("CLTUI_RUNS_DIR") or "runs")


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def run_folder_name(preset: str | None, scenario: str, method: str, seed: int) -> str:
    """The readable part of a run folder's name; the store puts the time in front."""
    return f"{preset or 'run'}-{scenario}-{method}-s{seed}"


# --- the record ------------------------------------------------------------------------------------


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
    merge: MergeInfo | None = None  # a merge run (docs/architecture.md, run kinds): its teachers and phases

    @field_validator("acc_init", "acc_matrix", "acc_curve")
    @classmethod
    def _figures(cls, value: Any, info: ValidationInfo) -> Any:
        """Figures read from disk are shown and averaged: each must be a score this benchmark can give, an
        accuracy in [0, 1] (sine's R²: any finite value up to 1), never NaN, inf or -5."""
        config = info.data.get("config")
        regression = isinstance(config, ConfigView) and config.benchmark.get("name") == "sine"
        if value is None:  # acc_init before the first evaluation
            return value
        rows = value if info.field_name == "acc_matrix" else [value] if info.field_name == "acc_init" else \
            [point[2] for point in value]
        if info.field_name == "acc_matrix" and len({len(row) for row in value}) > 1:
            raise ValueError("acc_matrix: its rows differ in length (each row holds a score for every context)")
        for i, row in enumerate(rows or []):
            for j, figure in enumerate(row):
                if not (math.isfinite(figure) and figure <= 1 and (regression or figure >= 0)):
                    where = f"[{i}][{j}]" if info.field_name == "acc_matrix" else f"[{j}]" \
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
        self.acc_curve = [p for p in self.acc_curve if p[1] < completed]
        self.dreams = [d for d in self.dreams if d.context < completed]

    def context_completed(self, row: ContextRow, accuracies: list[float], extra: dict[str, float | None] | None = None,
                          dreams: dict[str, Any] | None = None) -> None:
        """A stage has been trained and evaluated. `extra`: figures beside the matrix's own (validation)."""
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
        try:
            return summarize(self.acc_matrix, self.acc_init, self.acc_curve, once=self.trains_jointly, contexts=known)
        except (IndexError, TypeError, ValueError):  # a curve of another shape: the matrix's own figures stand
            return summarize(self.acc_matrix, once=self.trains_jointly, contexts=known)

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


# --- the folder ------------------------------------------------------------------------------------


@dataclass
class RunEntry:
    """One folder of the runs directory: its run.json, or why it could not be read."""

    id: str
    path: Path
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.data is None:
            return "unreadable"
        status = self.data.get("status", "?")
        if status == "running" and not run_alive(self.path, self.data.get("pid")):
            return "stale"  # its worker is gone without a word: killed, or the machine went down
        return status


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


LOCK = ".lock"  # a run folder's lock file (RunLock); a study's is studies/<id>.lock


class RunLocked(StoreError):
    """Another process holds the lock of a run or study: one line naming it (exit 1 in the faces)."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


class RunLock:
    """One writer per run and per study: an advisory `flock` on a lock file (`<run>/.lock`, `studies/<id>.lock`).

    Whoever starts or resumes a run takes its lock first (`acquire`, never waiting: a holder means "someone else
    trains it"), and hands the same open file to the worker process that trains (core/launch/worker.py), so the lock
    lives as long as the process that writes the run, however it ends (a kill included: the kernel drops it).
    The file holds the pid of the process that last took it, for the message a second writer gets. A write
    failure (a read-only folder, a full disk) is the OSError of the open, for the caller's one line."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what
        self.fd: int | None = None

    @classmethod
    def of_run(cls, run_dir: Path) -> RunLock:
        return cls(run_dir / LOCK, f"run {run_dir.name}")

    @classmethod
    def of_study(cls, studies: Path, study_id: str) -> RunLock:
        return cls(studies / f"{child_name(study_id, 'study')}.lock", f"study {study_id}")

    def acquire(self, wait: float = 0.3) -> RunLock:
        """Take the lock or raise RunLocked naming its holder. `wait`: how long a lock held for an instant (a
        `held_by` probe) may take to come free."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StoreError(f"{self.path} is a symbolic link; cltui does not follow it (remove it)") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{self.path} is not a plain file; cltui leaves it alone (remove it)")
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        pid = _lock_pid(fd)
                        who = f"process {pid}" if pid else "another process"
                        raise RunLocked(f"{self.what} is in use by {who} (another cltui trains it); wait for it to "
                                        f"end or stop it first", pid) from None
                    time.sleep(0.05)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.mark(os.getpid())
        return self

    @classmethod
    def adopt(cls, fd: int, path: Path | str = LOCK, what: str = "run") -> RunLock:
        """The lock a parent took and handed to this process (its open file): held here now."""
        lock = cls(Path(path), what)
        lock.fd = fd
        lock.mark(os.getpid())
        return lock

    def mark(self, pid: int) -> None:
        """Write `pid` into the lock file as its holder (best effort: a full disk keeps the lock, not the pid)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{pid}\n".encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        """Close this process's copy of the lock (the lock is free once every process holding it has)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def held_by(lock_file: Path) -> int | None | bool:
    """Whether a lock file is held: False when free or absent (nothing to say), else the holder's pid (True when
    the file names none). A probe takes the lock for an instant, so `acquire` waits briefly before giving up."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_pid(fd) or True
        except OSError:
            return False
        return False
    finally:
        os.close(fd)


def run_alive(run_dir: Path, pid: Any) -> bool:
    """Whether a "running" run still has a live writer: its lock when the run has a lock file (a pid can be
    reused by another process; a lock dies with its holder), else the pid its run.json names."""
    lock = run_dir / LOCK
    if os.path.lexists(lock):
        return held_by(lock) is not False
    return pid_alive(pid)


def child_name(name: Any, what: str = "run") -> str:
    """`name` if it can name a plain child of a runs folder; StoreError otherwise. Every run and study id
    read from a command line, a study file or a screen passes through here before it is joined to a path."""
    if not isinstance(name, str) or not name:
        raise StoreError(f"{what} id {name!r}: not a name")
    try:
        too_long = len(name.encode()) > 255  # a folder name the file system cannot hold
    except UnicodeEncodeError:
        raise StoreError(f"{what} id {name!r}: not a valid file name") from None
    if too_long:
        raise StoreError(f"{what} id {name[:40]!r}...: longer than a folder name can be")
    if name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise StoreError(f"{what} id {name!r}: not a plain folder name in the runs folder; cltui touches nothing "
                         f"outside it")
    return name


# --- every path below a run folder, studies/ and .cltui/ ----------------------------------------------------

RECORD_MAX_BYTES = 16 << 20  # run.json, a study file, the TUI's marks and last choice: real ones are kilobytes
EVENTS_MAX_BYTES = 512 << 20  # events.jsonl: a long run with continual evaluation writes tens of MB


class UnsafePathError(StoreError):
    """A path below the runs folder that cltui refuses: a symbolic link (it could lead anywhere), or something
    that is not a regular file or folder (a FIFO blocks its reader, a device reads without end)."""


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file or folder is, for a message; None for those two."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("a link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
            if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")


def _refuse(path: Path | str, kind: str, action: str) -> UnsafePathError:
    if kind == "a link":
        return UnsafePathError(f"{path} is a link; refusing to {action} outside the runs folder")
    return UnsafePathError(f"{path} is {kind}, not a regular file; refusing to {action} it")


def inside(base: Path | str, *parts: str, action: str = "write") -> Path:
    """`base/parts...` once every level below `base` (a run folder, checked by `RunStore.child`, or the runs
    folder itself) is a real folder and the last a regular file or folder, or missing (about to be created):
    the one resolver every open, write and delete under the runs folder goes through. UnsafePathError (one
    line) for a link at any level, a FIFO, a device or a socket; `action` ("read", "write") words it."""
    path = Path(base)
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return Path(base, *parts)  # nothing can lie below a missing level
        except OSError as e:
            raise StoreError(f"{path}: cannot be read ({e.strerror or e})") from None
        kind = _kind(mode)
        if kind is None and i < len(parts) - 1 and not stat.S_ISDIR(mode):
            kind = "a file where a folder should be"
        if kind is not None:
            raise _refuse(path, kind, action)
    return path


def _open_checked(path: Path, flags: int, action: str, mode: int = 0o666) -> int:
    """os.open with O_NOFOLLOW | O_NONBLOCK (a link or a FIFO never blocks or leads out), then fstat: a
    regular file's descriptor, or UnsafePathError. Other OSErrors (missing, no permission) are the caller's."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refuse(path, "a link", action) from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise _refuse(path, "a FIFO", action) from None
        raise
    kind = _kind(os.fstat(fd).st_mode)
    if kind is not None or stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refuse(path, kind or "a folder", action)
    os.set_blocking(fd, True)
    return fd


def check_run_files(run_dir: Path, action: str = "write") -> None:
    """Every file a worker writes or deletes in a run folder (run.json, events.jsonl, worker.log, checkpoints/
    and dreams/ with what is in them) through `inside`: UnsafePathError names the first link, FIFO or device,
    before a resume writes a byte."""
    for name in (RUN_JSON, EVENTS, WORKER_LOG):
        inside(run_dir, name, action=action)
    for folder in ("checkpoints", "dreams"):
        if not inside(run_dir, folder, action=action).is_dir():
            continue
        for parent, dirs, files in os.walk(run_dir / folder):  # os.walk does not descend into links
            for name in dirs + files:
                inside(run_dir, *Path(parent, name).relative_to(run_dir).parts, action=action)


CHECKPOINT_NAME = re.compile(r"context-(\d{1,9})\.pt")


def checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    """(context, path) of each `context-<n>.pt` in a run's checkpoints folder; other names (`context-x.pt`, a
    `.tmp` a crash left) are not checkpoints and are ignored."""
    try:
        names = os.listdir(folder)
    except OSError:  # missing, or not a folder
        return []
    return [(int(m.group(1)), folder / name) for name in names if (m := CHECKPOINT_NAME.fullmatch(name))]


def read_bounded(path: Path, limit: int = RECORD_MAX_BYTES) -> bytes:
    """A regular file's bytes, never through a link, never more than `limit` (StoreError beyond it); a FIFO or
    a device is refused at once rather than read. FileNotFoundError and other OSErrors pass through."""
    fd = _open_checked(Path(path), os.O_RDONLY, "read")
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise StoreError(f"{path}: larger than {limit >> 20} MB, more than cltui ever writes there; not read")
    return data


def open_checked(path: Path, mode: str = "rb", action: str | None = None) -> Any:
    """`open(path, mode)` for "rb", "ab", "wb", "r+b" through `_open_checked`: never a link, FIFO or device."""
    flags = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
             "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a+b": os.O_RDWR | os.O_CREAT | os.O_APPEND}[mode]
    fd = _open_checked(Path(path), flags, action or ("read" if mode == "rb" else "write"))
    f: Any = os.fdopen(fd, mode)
    f.raw.name = str(path)  # named as open() names a file (messages, tools that look at f.name), not by its fd
    return f


class RunStore:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def child(self, name: Any, what: str = "run", allow_link: bool = False) -> Path:
        """`root/name` for a plain child name whose folder, if it is a link, stays inside the root
        (`allow_link`: return the link itself, whatever it points to, for removing it)."""
        path = self.root / child_name(name, what)
        try:
            link = path.is_symlink()
        except OSError as e:
            raise StoreError(f"{what} {name!r} in {self.root}: cannot be read ({e.strerror or e})") from None
        if link and not allow_link:
            target = path.resolve()
            if target.parent != self.root.resolve():
                raise StoreError(f"{what} {name!r} in {self.root} is a symbolic link to {target}, outside the runs "
                                 f"folder; cltui does not follow it (`cltui runs rm {name}` removes the link)")
        return path

    def new_run_dir(self, name: str) -> Path:
        """A fresh folder `<time>-<name>`; an existing folder is never reused."""
        self.root.mkdir(parents=True, exist_ok=True)
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(name)}"
        for n in range(1000):
            path = self.root / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise StoreError(f"{self.root}: cannot find a free run folder name for {base}")

    def new_run_dir_for(self, config: RunConfig) -> Path:
        """A fresh folder for a run of `config`, named after it: `<time>-<preset>-<scenario>-<method>-s<seed>`."""
        return self.new_run_dir(run_folder_name(config.preset, config.scenario, config.method.name,
                                                config.train.seed))

    def folders(self) -> list[Path]:
        """The run folders: children holding a run.json (studies/ and other folders are not runs); links
        out of the runs folder are left out."""
        try:
            children = sorted(self.root.iterdir())
        except OSError:
            return []
        out = []
        for path in children:
            if path.name.startswith("."):
                continue
            try:
                self.child(path.name)
                if path.is_dir() and os.path.lexists(path / RUN_JSON):
                    out.append(path)
            except (StoreError, OSError):
                continue
        return out

    def entry(self, path: Path) -> RunEntry:
        try:
            return RunEntry(path.name, path, read_run_json(path))
        except StoreError as e:
            return RunEntry(path.name, path, None, str(e))

    def list(self) -> list[RunEntry]:
        return [self.entry(path) for path in self.folders()]

    def resolve(self, run: str, allow_link: bool = False) -> Path:
        """A run by id, unique id prefix, or the path of its folder inside the runs folder; never a folder
        outside it."""
        if not isinstance(run, str) or not run:
            raise StoreError("no run given; `cltui runs list` shows the runs")
        if "\0" in run:
            raise StoreError(f"{run!r}: not a run id (it holds a NUL character)")
        try:
            run.encode()
        except UnicodeEncodeError:
            raise StoreError(f"{run!r}: not a valid run id or path") from None
        name = run.rstrip("/")
        if "/" in name or "\\" in name or name in (".", ".."):
            as_path = Path(name)
            if as_path.absolute().parent.resolve() != self.root.resolve():
                raise StoreError(f"{run!r} is not a run in the runs folder {self.root}; cltui touches nothing "
                                 f"outside it (pass --runs-dir for another runs folder)")
            name = as_path.name
        path = self.child(name, allow_link=allow_link)
        if os.path.lexists(path):
            if (path / RUN_JSON).exists() or path.is_symlink():
                return path
            raise StoreError(f"{path} holds no run.json: not a cltui run, so cltui leaves it alone")
        matches = [p for p in self.folders() if p.name.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise StoreError(f"run {run!r} is ambiguous in {self.root}: {', '.join(p.name for p in matches[:5])}")
        raise StoreError(f"no run {run!r} in {self.root}; `cltui runs list` shows the runs there (or pass --runs-dir)")

    def run_dir(self, run_id: str) -> Path:
        """The folder of an exact run id (a study's runs), checked as `child`."""
        return self.child(run_id)

    def load(self, run: str) -> dict[str, Any]:
        return read_run_json(self.resolve(run))

    def remove(self, run: str) -> Path:
        """Delete a run's folder. A symbolic link is removed itself, never what it points to; a folder
        whose run.json is not a cltui record is left alone; a running run is refused."""
        path = self.resolve(run, allow_link=True)
        if path.is_symlink():
            path.unlink()
            return path
        try:
            data = read_run_json(path)
        except StoreError as e:
            if not os.path.isfile(path / RUN_JSON):
                raise StoreError(f"{path}: {e}; not removed") from None
            data = {}  # a damaged run.json of a run: removing it is what a user wants
            if not _looks_like_run(path):
                raise StoreError(f"{path} does not look like a cltui run ({e}); not removed") from None
        if data.get("status") == "running" and run_alive(path, data.get("pid")):
            raise StoreError(f"run {path.name} is still running (pid {data['pid']}); stop it before removing it")
        shutil.rmtree(path)
        return path


def _looks_like_run(path: Path) -> bool:
    """A folder with a damaged run.json is still a run when cltui's other files are there, or when the
    file at least says it is a cltui record."""
    if (path / EVENTS).exists() or (path / WORKER_LOG).exists() or (path / "checkpoints").is_dir():
        return True
    try:
        head = read_bounded(inside(path, RUN_JSON, action="read")).decode(errors="replace")[:200]
    except (OSError, StoreError):
        return False
    return '"schema"' in head


def append_event(run_dir: Path, event: Event) -> None:
    """Append one event line. A last line a full disk cut short is closed first with a newline of its own, so
    this event is a line of its own that followers read (the cut line is skipped as damaged)."""
    line = (to_json(event) + "\n").encode()
    with open_checked(inside(run_dir, EVENTS), "a+b") as f:
        size = os.fstat(f.fileno()).st_size
        if size and os.pread(f.fileno(), 1, size - 1) != b"\n":
            line = b"\n" + line
        f.write(line)


def read_events(run_dir: Path) -> Iterator[Event]:
    """Every complete event line; a line cut short by a crash (the last one) or damaged is skipped."""
    try:
        f = open_checked(inside(run_dir, EVENTS, action="read"))
    except (OSError, StoreError):  # missing, a link, a FIFO: no events to read
        return
    read = 0
    with io.TextIOWrapper(f, errors="replace") as text:
        while read < EVENTS_MAX_BYTES and (line := text.readline(1 << 20)):  # bounded: no line is a megabyte
            read += len(line)
            if line.endswith("\n"):
                try:
                    yield from_json(line)
                except (ValueError, RecursionError):
                    continue
