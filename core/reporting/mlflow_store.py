"""The MLflow client cltui uses: a tracking store and one experiment in it (`MlflowStore`), one run in it through
MLflow's own client with batched calls (`MlflowRun`), what a run gets once it has ended (`log_ending`), and a run
or a study pushed later from run.json (`push_run`, `study_run`, `log_study`). What is logged, and the `--track`
spec, live in core/reporting/tracking.py; mlflow is imported only when used.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.reporting.tracking import (
    TrackingError,
    artifact_location,
    check_uri,
    context_metrics,
    dream_grids,
    final_metrics,
    finite,
    flat_params,
    has_module,
    last_checkpoint,
    loss_curve,
    parse_time,
    run_tags,
)
from core.runs.paths import RUN_JSON

STATUS = {"finished": "FINISHED", "failed": "FAILED", "cancelled": "KILLED", "running": "RUNNING"}


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
        run.metrics({**context_metrics(rows, k, config), "context_loss": row.get("final_loss"),
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
