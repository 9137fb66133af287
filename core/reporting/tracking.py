"""Results where researchers already look: a run in an MLflow tracking store, logged live by the worker from its
event stream or pushed later from run.json, and in TensorBoard event files.

The worker attaches a tracker to its emit (`tracked`): events go on a queue that a thread of the worker turns
into MLflow calls, so training never waits for the tracker. A tracker that is down or misconfigured never
fails the run: one warning line (in worker.log, and a `Warned` event the faces show), then it stays quiet and
the run goes on; `cltui export mlflow RUN` pushes the run later from run.json (old runs too).

What an MLflow run holds, live or pushed: the flattened config as params (`track.*` left out); per context k
(step k) the accuracy on every context `acc.c<j>`, the average accuracy over the contexts seen `avg_acc`, the
average forgetting so far `forgetting`, the context's final loss and training time; the training loss per
iteration `loss` (step: iteration of the whole run); at the end the run's metrics (`final_avg_acc`, `bwt`, ...);
tags preset, method, scenario, status (and `cltui.run_id`, by which a push finds a run already there);
artifacts run.json, the accuracy-matrix figure (when matplotlib is installed), the dreams / samples grids, and
the final checkpoint with `track.checkpoints`. A study is an MLflow run of its own with its runs nested under it
(`mlflow.parentRunId`) and its table as artifacts.

The default store is `sqlite:///<runs-dir>/mlflow.db` with artifacts in `<runs-dir>/mlartifacts`: inside the
runs folder, so that cltui writes nothing outside it, and the runs and their tracking store move, are copied and
are deleted together; `mlflow ui --backend-store-uri sqlite:///<runs-dir>/mlflow.db` opens it.

Torch-free except for the TensorBoard writer; mlflow, tensorboard and matplotlib are imported only when used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

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
from core.runs.store import RUN_JSON, StoreError, checkpoint_files, inside, read_events, read_run_json

MLFLOW_EXTRA = "pip install 'cltui[mlflow]'"
TENSORBOARD_EXTRA = "pip install 'cltui[tensorboard]'"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
CLOSE_TIMEOUT = 120.0  # seconds the worker waits, at the end of a run, for the tracker to catch up
FLUSH_EVERY = 1.0  # seconds between two batches sent to the tracker
STATUS = {"finished": "FINISHED", "failed": "FAILED", "cancelled": "KILLED", "running": "RUNNING"}


class TrackingError(ValueError):
    """A tracking request that cannot be met (a bad --track, an extra not installed): one line for the faces."""


# --- the --track spec ----------------------------------------------------------------------------------


def parse_track(spec: str, flag: str = "--track") -> dict[str, Any]:
    """`mlflow`, `mlflow:URI` or `none` -> the `track` settings it stands for; TrackingError naming the fix."""
    name, sep, uri = spec.strip().partition(":")
    name = name.strip().lower()
    if name == "none" and not sep:
        return {"tracker": "none", "uri": None}
    if name == "mlflow":
        if sep and not uri.strip():
            raise TrackingError(f"{flag} {spec!r}: give the tracking URI after the colon, e.g. "
                                f"mlflow:http://localhost:5000, or plain mlflow for the store in the runs folder")
        if uri.strip():
            check_uri(uri.strip(), flag)
        return {"tracker": "mlflow", "uri": uri.strip() or None}
    raise TrackingError(f"{flag} {spec!r}: not a tracker; use mlflow, mlflow:URI (e.g. mlflow:http://localhost:5000 "
                        f"or mlflow:sqlite:///path/mlflow.db) or none")


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_mlflow(what: str = "--track mlflow") -> None:
    if not has_module("mlflow"):
        raise TrackingError(f"{what}: MLflow is not installed; {MLFLOW_EXTRA}")


def default_uri(runs_root: Path) -> str:
    """The SQLite store inside the runs folder (see the module's docstring for why there)."""
    return f"sqlite:///{Path(runs_root).resolve() / DEFAULT_DB}"


def resolve_uri(uri: str | None, runs_root: Path) -> str:
    return uri or default_uri(runs_root)


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store (`mlartifacts/<experiment>`), else
    wherever the tracking server decides (None). Without it MLflow would put them under the current folder."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    if not db.is_absolute():  # sqlite:///relative.db
        db = Path.cwd() / db
    return (db.parent / DEFAULT_ARTIFACTS / re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-")).as_uri()


def experiment_name(config: dict[str, Any]) -> str:
    track = config.get("track") or {}
    return track.get("experiment") or config.get("preset") or "cltui"


def short_reason(error: BaseException) -> str:
    """One short line out of an exception whose text may be a page (MLflow quotes whole HTTP errors)."""
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    line = " ".join(text.split())
    if not line:
        return type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def quiet_mlflow() -> None:
    """Defaults for a tracker that must never hold a run up: a few quick retries instead of MLflow's four
    minutes of them, no run URLs printed, no INFO lines, and nothing written outside the runs folder: no
    telemetry (MLflow keeps an id in ~/.config/mlflow), matplotlib's cache in a temporary folder (a user's own
    settings win)."""
    for key, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                       ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30"), ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true"),
                       ("MLFLOW_DISABLE_TELEMETRY", "true")):
        os.environ.setdefault(key, value)
    import logging

    from core.reporting.figures import private_matplotlib_dir

    private_matplotlib_dir()  # before mlflow, which may import matplotlib

    import mlflow  # noqa: F401 - its import sets its loggers' levels: ours come after

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # its retries to open a store, a page each: the one line that says why comes from the caller
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)


# --- what is logged: the same numbers live and later -----------------------------------------------------


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """The config as `section.key` -> text (lists and None written as a preset would); `track` left out."""
    from core.schema.config import flat_config
    from core.schema.presets import toml_text

    flat = flat_config({k: v for k, v in config.items() if k != "track"})
    return {key: "none" if value is None else toml_text(value)[:6000] for key, value in flat.items()}


def run_tags(record_or_config: dict[str, Any], run_id: str, status: str) -> dict[str, str]:
    config = record_or_config.get("config", record_or_config)
    method = (config.get("method") or {}).get("name")
    return {"preset": str(config.get("preset")), "method": str(method), "scenario": str(config.get("scenario")),
            "benchmark": str((config.get("benchmark") or {}).get("name")), "status": status,
            "cltui.run_id": run_id}


def is_joint(config: dict[str, Any]) -> bool:
    """Trained once over every context (joint, merge): core/runs/metrics.py decides."""
    from core.runs.metrics import trains_once

    return trains_once((config.get("method") or {}).get("name"))


def context_metrics(rows: list[list[float]], k: int, joint: bool = False) -> dict[str, float | None]:
    """The figures after stage k (rows[k] the accuracies on every context): accuracy on each context, average
    accuracy over the contexts seen so far (all for a joint run) and average forgetting so far."""
    from core.runs.metrics import avg_forgetting, seen_average

    row = rows[k]
    metrics: dict[str, float | None] = {f"acc.c{j}": a for j, a in enumerate(row)}
    metrics["avg_acc"] = seen_average(row, k, joint)
    metrics["forgetting"] = None if joint else avg_forgetting(rows[: k + 1])
    return metrics


def final_metrics(record: dict[str, Any]) -> dict[str, float | None]:
    """The run's figures as every face shows them (core/runs/metrics.py, from the matrix), and its timing."""
    from core.runs.metrics import run_figures

    timing = record.get("timing") or {}
    return {**(record.get("metrics") or {}), **run_figures(record).metrics, "total_s": timing.get("total_s"),
            "samples_per_s": timing.get("samples_per_s")}


def loss_curve(run_dir: Path, record: dict[str, Any]) -> list[tuple[int, float, float]]:
    """(iteration of the whole run, training loss, time) from events.jsonl, for each completed context the last
    attempt only (a resumed run trained an interrupted context again)."""
    per_context: dict[int, list[tuple[int, float, float]]] = {}
    for event in read_events(run_dir):
        if isinstance(event, ContextStarted):
            per_context[event.context] = []
        elif isinstance(event, Progress) and event.phase == "train" and event.loss is not None:
            per_context.setdefault(event.context, []).append((event.step, event.loss, event.t))
    offsets = iteration_offsets(record.get("contexts") or [])
    curve = []
    for k in sorted(per_context):
        if k in offsets:
            curve += [(offsets[k] + step, loss, t) for step, loss, t in per_context[k]]
    return curve


def iteration_offsets(contexts: list[dict[str, Any]]) -> dict[int, int]:
    """The iteration of the whole run at which each context (by index) starts."""
    offsets, total = {}, 0
    for row in sorted(contexts, key=lambda r: r.get("index", 0)):
        offsets[row.get("index", 0)] = total
        total += row.get("iterations") or 0
    return offsets


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def last_checkpoint(run_dir: Path) -> Path | None:
    try:
        found = sorted(checkpoint_files(inside(run_dir, "checkpoints", action="read")))
    except StoreError:  # a link or a FIFO: nothing cltui would read
        return None
    return found[-1][1] if found else None


def dream_grids(run_dir: Path, record: dict[str, Any]) -> list[tuple[int, Path]]:
    """(context, PNG) of the dreams / samples grids run.json lists, inside the run folder and on disk."""
    out = []
    for entry in record.get("dreams") or []:
        path = (run_dir / str(entry.get("path") or "")).resolve()
        if path.suffix.lower() == ".png" and path.is_file() and run_dir.resolve() in path.parents:
            out.append((int(entry.get("context", 0)), path))
    return out


def parse_time(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except (TypeError, ValueError):
        return None


# --- MLflow ------------------------------------------------------------------------------------------------


class MlflowRun:
    """One run in an MLflow store, through MLflow's own client: batched calls within MLflow's limits."""

    def __init__(self, client: Any, run_id: str):
        self.client, self.id = client, run_id
        self.pending: list[Any] = []

    def metric(self, key: str, value: Any, step: int, t: float | None = None) -> None:
        if finite(value):
            from mlflow.entities import Metric

            self.pending.append(Metric(key, float(value), int(1000 * (t or time.time())), int(step)))

    def metrics(self, values: dict[str, Any], step: int, t: float | None = None) -> None:
        for key, value in values.items():
            self.metric(key, value, step, t)

    def flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:1000], self.pending[1000:]
            self.client.log_batch(self.id, metrics=batch)

    def params(self, values: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], v) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.id, params=items[i:i + 100])

    def tags(self, values: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.id, tags=items[i:i + 100])

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.id, str(path), folder)

    def end(self, status: str, t: float | None = None) -> None:
        self.flush()
        self.client.set_terminated(self.id, STATUS.get(status, "FAILED"),
                                   end_time=int(1000 * t) if t else None)


# The schemes of the tracking stores MLflow opens (a plain folder has none); anything else MLflow refuses only
# once it is asked for its model registry, with a page about that.
TRACKING_SCHEMES = ("", "file", "http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks",
                    "databricks-uc", "uc")


def check_uri(uri: str, flag: str = "--uri") -> None:
    """TrackingError naming `flag` unless `uri` is a tracking URI MLflow can open."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", uri.strip())
    name = scheme.group(1).lower().split("+")[0] if scheme else ""
    if len(name) == 1:  # C:\path: a folder on Windows
        name = ""
    if name not in TRACKING_SCHEMES:
        raise TrackingError(f"{flag} {uri!r}: not a tracking URI; use http(s)://HOST:PORT, sqlite:///PATH/mlflow.db, "
                            f"a database URI (postgresql://, mysql://) or file:///FOLDER")


def sqlite_path(uri: str) -> Path | None:
    """The store file of a `sqlite:///` URI (relative to the current folder unless absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///").split("?")[0])
    return db if db.is_absolute() else Path.cwd() / db


@contextlib.contextmanager
def creating(db: Path | None) -> Iterator[None]:
    """Held while MLflow first opens a SQLite store: one process at a time creates (or migrates) its tables;
    two at once on a fresh store would both run the migrations and one would lose its tracking. An advisory
    lock on `<store>.lock` beside it (none where the system has no fcntl)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None  # type: ignore[assignment]
    if db is None or fcntl is None:
        yield
        return
    fd = os.open(db.with_name(db.name + ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing it lets the lock go


def check_writable(db: Path) -> None:
    """TrackingError in one line when the SQLite store cannot be written (a read-only folder, a path that is no
    file): MLflow would retry for minutes, a page of warnings each time, before saying the same."""
    import sqlite3

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock: fails where nothing can be written
            connection.rollback()
    except (OSError, sqlite3.Error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise TrackingError(f"cannot write the tracking store {db} ({reason}); give a store in a folder you can "
                            f"write, e.g. --track mlflow:sqlite:///PATH/mlflow.db") from None


class MlflowStore:
    """A tracking store and one experiment in it."""

    def __init__(self, uri: str, experiment: str):
        quiet_mlflow()
        from mlflow.tracking import MlflowClient

        self.uri, self.experiment = uri, experiment
        check_uri(uri, "tracking URI")
        db = sqlite_path(uri)
        if db is not None:  # a store file the user named may be in a folder not made yet
            check_writable(db)
        with creating(db):
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment()

    def _experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        attempt = 0
        while True:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    raise TrackingError(f"experiment {self.experiment!r} is deleted in {self.uri}; restore it "
                                        f"(mlflow experiments restore) or set track.experiment")
                return found.experiment_id
            try:
                return self.client.create_experiment(self.experiment,
                                                     artifact_location=artifact_location(self.uri, self.experiment))
            except MlflowException:
                attempt += 1
                if attempt == 3:  # not another process creating it at the same moment: a real failure
                    raise
                time.sleep(0.5 * attempt)

    def find(self, tag: str, value: str) -> Any | None:
        """The live (not deleted) MLflow run whose tag `tag` is `value`, if any."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{tag}` = '{value}'",
                                       max_results=1)
        return runs[0] if runs else None

    def create(self, name: str, tags: dict[str, str], parent: str | None = None, t: float | None = None
               ) -> MlflowRun:
        if parent:
            tags = {**tags, "mlflow.parentRunId": parent}
        run = self.client.create_run(self.experiment_id, start_time=int(1000 * t) if t else None, tags=tags,
                                     run_name=name)
        return MlflowRun(self.client, run.info.run_id)

    def reuse(self, found: Any) -> MlflowRun:
        self.client.update_run(found.info.run_id, status="RUNNING")
        return MlflowRun(self.client, found.info.run_id)


def log_ending(run: MlflowRun, record: dict[str, Any], run_dir: Path, checkpoint: bool) -> None:
    """What a run gets once it has ended, live or pushed: its final metrics and status, run.json, the
    accuracy-matrix figure, the final checkpoint when asked, and the run closed with its status."""
    rows = record.get("acc_matrix") or []
    finished_t = parse_time(record.get("finished"))
    run.metrics(final_metrics(record), max(len(rows) - 1, 0), finished_t)
    run.flush()
    run.tags({"status": str(record.get("status"))})
    run.artifact(run_dir / RUN_JSON)
    if rows and has_module("matplotlib"):
        from core.reporting.figures import write_figure

        with tempfile.TemporaryDirectory(prefix="cltui-figure-") as tmp:
            for suffix in (".png", ".pdf"):
                path = Path(tmp) / f"accuracy{suffix}"
                write_figure([record], path)
                run.artifact(path, "figures")
    if checkpoint:
        last = last_checkpoint(run_dir)
        if last is not None:
            run.artifact(last, "checkpoints")
    run.end(str(record.get("status")), finished_t)


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
        self.joint = is_joint(config)

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
            self.run.metrics({**context_metrics(self.rows, event.context, self.joint),
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


def push_run(store: MlflowStore, run_dir: Path, record: dict[str, Any], parent: str | None = None,
             checkpoint: bool = False) -> tuple[str, str]:
    """A run that has ended, from run.json (and events.jsonl's loss curve), as one MLflow run: ("pushed", id),
    or ("already there", id) when the store holds it complete. A partial one (a tracker lost mid-run) is
    replaced."""
    run_id = str(record["id"])
    found = store.find("cltui.run_id", run_id)
    if found is not None:
        if found.data.tags.get("status") == record.get("status") and found.info.status != "RUNNING":
            if parent and found.data.tags.get("mlflow.parentRunId") != parent:
                store.client.set_tag(found.info.run_id, "mlflow.parentRunId", parent)
            return "already there", found.info.run_id
        store.client.delete_run(found.info.run_id)
    config = record.get("config") or {}
    run = store.create(run_id, run_tags(config, run_id, "running"), parent, parse_time(record.get("created")))
    run.params(flat_params(config))
    rows = record.get("acc_matrix") or []
    contexts = {c.get("index"): c for c in record.get("contexts") or []}
    for k in range(len(rows)):
        row = contexts.get(k) or {}
        run.metrics({**context_metrics(rows, k, is_joint(config)), "context_loss": row.get("final_loss"),
                     "context_train_s": row.get("train_s")}, k)
    for step, loss, t in loss_curve(run_dir, record):
        run.metric("loss", loss, step, t)
    for context, grid in dream_grids(run_dir, record):
        run.artifact(grid, f"dreams/context-{context}")
    log_ending(run, record, run_dir, checkpoint)
    return "pushed", run.id


def study_run(store: MlflowStore, study: dict[str, Any]) -> MlflowRun:
    """The MLflow run of a study (found by its tag, else created), for its runs to nest under."""
    found = store.find("cltui.study_id", study["id"])
    if found is not None:
        return store.reuse(found)
    run = store.create(study["id"], {"cltui.study_id": study["id"], "preset": str(study.get("preset")),
                                     "scenario": str(study.get("scenario")), "status": "running",
                                     "methods": ",".join(study.get("methods") or [])},
                       t=parse_time(study.get("created")))
    run.params({"preset": str(study.get("preset")), "scenario": str(study.get("scenario")),
                "methods": ",".join(study.get("methods") or []), "seeds": str(study.get("seeds")),
                "overrides": " ".join(study.get("overrides") or []) or "none"})
    return run


def log_study(run: MlflowRun, rows: list[dict[str, Any]], study: dict[str, Any], figure: Callable[[Path], Any]
              | None = None) -> None:
    """A study's table (markdown, csv, json) and figure as artifacts of its run, mean per method as metrics,
    and the run closed: finished when every run of the study is."""
    from core.studies.study import render

    for r in rows:
        run.metrics({f"{key}.{r['method']}": r.get(key) for key in ("final_avg_acc", "avg_forgetting", "bwt")}, 0)
    run.flush()
    with tempfile.TemporaryDirectory(prefix="cltui-study-") as tmp:
        for fmt, suffix in (("markdown", "md"), ("csv", "csv"), ("json", "json")):
            path = Path(tmp) / f"study.{suffix}"
            path.write_text(render(rows, fmt) + "\n")
            run.artifact(path, "table")
        if figure is not None:
            for suffix in (".pdf", ".png"):
                path = Path(tmp) / f"study{suffix}"
                figure(path)
                run.artifact(path, "figures")
    status = "finished" if study.get("finished") else "running"
    run.tags({"status": status})
    if status == "finished":
        run.end("finished", parse_time(study.get("finished")))


# --- the worker's side -------------------------------------------------------------------------------------


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
        from core.runs.store import now_iso

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


# --- TensorBoard -------------------------------------------------------------------------------------------


def write_tensorboard(record: dict[str, Any], run_dir: Path, logdir: Path) -> Path:
    """One run as TensorBoard event files in `logdir` (replacing the ones an earlier export wrote there), with
    the `tensorboard` package's writer: the same scalars as MLflow (per context, step = context; the loss per
    iteration), the accuracy matrix and the dreams as images, the config as text."""
    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob("events.out.tfevents.*"):
        old.unlink()
    config = record.get("config") or {}
    rows = record.get("acc_matrix") or []
    contexts = {c.get("index"): c for c in record.get("contexts") or []}
    writer = SummaryWriter(log_dir=str(logdir))
    try:
        for k in range(len(rows)):
            row = contexts.get(k) or {}
            values = {**context_metrics(rows, k, is_joint(config)), "context_loss": row.get("final_loss"),
                      "context_train_s": row.get("train_s")}
            for key, value in values.items():
                if finite(value):
                    writer.add_scalar(key.replace("acc.c", "acc/c"), value, k)
        for step, loss, t in loss_curve(run_dir, record):
            writer.add_scalar("loss", loss, step, walltime=t)
        for key, value in final_metrics(record).items():
            if finite(value):
                writer.add_scalar(f"final/{key}", value, max(len(rows) - 1, 0))
        if rows:
            writer.add_image("acc_matrix", matrix_image(record), max(len(rows) - 1, 0), dataformats="HWC")
        for context, grid in dream_grids(run_dir, record):
            writer.add_image("dreams", png_array(grid), context, dataformats="HWC")
        writer.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```", 0)
        writer.add_text("run", f"{record.get('id')}: {record.get('status')}, preset {record.get('preset')}", 0)
    finally:
        writer.close()
    return logdir


def png_array(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def matrix_image(record: dict[str, Any]) -> Any:
    """The accuracy-matrix figure as an RGB array (the heat map cltui plot draws), or, without matplotlib, the
    matrix itself as grey levels, 24 pixels a cell."""
    import numpy as np

    if has_module("matplotlib"):
        from core.reporting.figures import write_figure

        with tempfile.TemporaryDirectory(prefix="cltui-figure-") as tmp:
            path = Path(tmp) / "accuracy.png"
            write_figure([record], path, dpi=100)
            return png_array(path)
    matrix = np.asarray(record.get("acc_matrix") or [[0.0]], dtype=np.float32)
    grey = np.clip(matrix * 255, 0, 255).astype(np.uint8).repeat(24, 0).repeat(24, 1)
    return np.stack([grey] * 3, axis=-1)

