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

This module holds what every tracker shares: the `--track` spec and the store's URI, and what is logged (the
same numbers live and later). Beside it, by job: core/reporting/mlflow_store.py (the MLflow client: a store, a run
in it, a run or study pushed from run.json), core/reporting/live.py (the worker's sink and the thread that feeds
it) and core/reporting/tensorboard.py (the TensorBoard writer). Torch-free except for the TensorBoard writer;
mlflow, tensorboard and matplotlib are imported only when used.
"""

from __future__ import annotations

import importlib.util
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from core.runs.events import ContextStarted, Progress
from core.runs.paths import StoreError, inside
from core.runs.store import checkpoint_files, read_events

MLFLOW_EXTRA = "pip install 'cltui[mlflow]'"
TENSORBOARD_EXTRA = "pip install 'cltui[tensorboard]'"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


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


def context_metrics(rows: list[list[float]], k: int, config: dict[str, Any]) -> dict[str, float | None]:
    """The figures after stage k (rows[k] the accuracies on every context) of a run of `config`: accuracy on each
    context, average accuracy over the contexts seen so far (all for a joint run), accuracy on the old and the new
    classes, and average forgetting so far."""
    from core.runs.metrics import avg_forgetting, run_figures

    figures = run_figures({"config": config})
    joint = figures.once
    row = rows[k]
    metrics: dict[str, float | None] = {f"acc.c{j}": a for j, a in enumerate(row)}
    metrics["avg_acc"] = figures.seen_average(row, k)
    if not joint and k > 0:
        metrics["old_acc"], metrics["new_acc"] = figures.old_new(row, k)
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
