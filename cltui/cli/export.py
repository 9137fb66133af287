"""`cltui plot` and `cltui export mlflow|tensorboard`: runs and studies out of cltui, into a paper's figures and
the trackers researchers already use. matplotlib, mlflow and tensorboard are imported only by the command that
uses them (`--help` stays fast); a missing one is one line naming the `pip install 'cltui[...]'` to run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cltui.cli.common import EXIT_FAILED, RunsDir, console, err_console, escape, fail
from cltui.cli.output import runs_dir_flag
from core.runs.paths import StoreError
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.schema.config import ConfigError
from core.studies import study as studies

export_app = typer.Typer(help="Push runs and studies to MLflow or TensorBoard.", no_args_is_help=True)

Targets = Annotated[list[str], typer.Argument(metavar="RUN...|STUDY", help="Run ids (or unique prefixes, or their "
                                             "folders) and study ids; a study stands for all its runs.")]


class Target:
    """A run (`study` None) or a study and its runs, as the command line named them."""

    def __init__(self, runs: list[tuple[Path, dict[str, Any]]], study: dict[str, Any] | None = None):
        self.runs, self.study = runs, study


def study_ids(store: RunStore) -> list[str]:
    try:
        return [p.stem for p in studies.study_files(store)]
    except StoreError:  # a studies folder that is a link: no studies cltui would read
        return []


def resolve(store: RunStore, names: list[str]) -> list[Target]:
    """Each name as a study (its exact id or a unique prefix of one) or a run (store.resolve); a prefix that
    fits both a study and a run is ambiguous (a study's id is the start of the ids of runs it started)."""
    targets = []
    for name in names:
        is_path = "/" in name.rstrip("/") or "\\" in name
        ids = [] if is_path else study_ids(store)
        try:
            exact_run = not is_path and (store.root / name).is_dir()
        except (OSError, ValueError):  # not a name a folder can have: store.resolve says why below
            exact_run, ids = False, []
        if name in ids or (not exact_run and any(i.startswith(name) for i in ids)):
            if name not in ids and any(p.name.startswith(name) for p in store.folders()):
                flag = runs_dir_flag(store.root)
                fail(f"{name!r} is the start of a study id and of a run id; give the whole id "
                     f"(`cltui studies list{flag}`, `cltui runs list{flag}`)")
            try:
                study = studies.load(store, name)
            except StoreError as e:
                fail(str(e))
            runs = []
            for entry in study["runs"]:  # a run not started yet, or unreadable, is left out
                try:
                    path = store.run_dir(entry["run_id"])
                    runs.append((path, read_run_json(path)))
                except (KeyError, TypeError, StoreError):
                    continue
            targets.append(Target(runs, study))
            continue
        try:
            path = store.resolve(name)
            targets.append(Target([(path, read_run_json(path))]))
        except StoreError as e:
            fail(str(e))
    return targets


# --- --track: a run's tracker ---------------------------------------------------------------------------


Track = Annotated[str | None, typer.Option(
    "--track", metavar="mlflow[:URI]|none", show_default=False,
    help="Log the run to MLflow as it goes (params, metrics per context, artifacts) \\[default: $CLTUI_TRACK, else "
         "the preset's track.tracker]. Plain mlflow: the SQLite store <runs-dir>/mlflow.db. Needs "
         "`pip install 'cltui\\[mlflow]'`.")]
TrackCheckpoints = Annotated[bool, typer.Option("--track-checkpoints", help="With --track: also log the final "
                                                "checkpoint as an artifact.")]


def with_tracking(config: Any, track: str | None, checkpoints: bool) -> Any:
    """`config` with the tracker that --track (else $CLTUI_TRACK, else the preset) names; bad input exits 2."""
    from core.reporting.tracking import TrackingError, parse_track, require_mlflow
    from core.schema.config import validate_config

    flag = "--track" if track is not None else "CLTUI_TRACK"
    spec = track if track is not None else os.environ.get("CLTUI_TRACK") or None
    data = config.to_dict()
    try:
        if spec is not None:
            data["track"].update(parse_track(spec, flag))
        if checkpoints:
            if data["track"]["tracker"] == "none":
                fail("--track-checkpoints: nothing tracks this run; add --track mlflow")
            data["track"]["checkpoints"] = True
        if data["track"]["tracker"] == "mlflow":
            require_mlflow(f"{flag} mlflow" if spec is not None else "track.tracker=mlflow (the preset's)")
        return validate_config(data)
    except (TrackingError, ConfigError) as e:
        fail(str(e) + ("; or pass --track none" if spec is None and isinstance(e, TrackingError) else ""))


def tracking_line(config: Any, store: RunStore) -> str:
    from core.reporting.tracking import experiment_name, resolve_uri

    uri = resolve_uri(config.track.uri, store.root)
    see = f" · see it with: mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else ""
    return f"tracking in MLflow: {uri}, experiment {experiment_name(config.to_dict())!r}{see}"


# --- cltui plot ----------------------------------------------------------------------------------------


def plot_targets(store: RunStore, targets: list[Target], out: Path, dpi: int = 300, title: str | None = None
                 ) -> tuple[Path, list[str]]:
    """The figure of the targets in `out`, and the ids of the runs left out (not finished, in a comparison).
    FigureError when it cannot be drawn."""
    from core.reporting.figures import write_figure

    runs = [run for t in targets for run in t.runs]
    if len(runs) == 1 and targets[0].study is None:
        return write_figure([runs[0][1]], out, dpi=dpi), []
    finished = [(p, r) for p, r in runs if r.get("status") == "finished"]
    left_out = [r["id"] for p, r in runs if r.get("status") != "finished"]
    records = [r for _, r in finished]
    keys = {(r.get("preset"), (r.get("config") or {}).get("scenario")) for r in records}
    published = studies.PUBLISHED.get(keys.pop(), {}) if len(keys) == 1 else {}
    only = targets[0].study if len(targets) == 1 else None
    order = only["methods"] if only else None
    if only and title is None:
        title = f"{only.get('preset')}, {only.get('scenario')}-IL"
    return write_figure(records, out, published=published, order=order, title=title, dpi=dpi), left_out


def plot(
    names: Targets,
    out: Annotated[Path, typer.Option("--out", "-o", help="The figure file: .pdf (a page per panel, "
                                      "column width), .png or .svg (panels side by side).")],
    dpi: Annotated[int, typer.Option(min=50, max=1200, help="Resolution of a .png.")] = 300,
    title: Annotated[str | None, typer.Option(help="Title over the panels \\[default: preset and scenario].",
                                              show_default=False)] = None,
    runs_dir: RunsDir = None,
) -> None:
    """A figure for a paper (PDF, PNG or SVG) of a run, several runs or a study.

    One run: its accuracy matrix and the accuracy on each context after each context. Several runs or a study:
    the average accuracy after each context per method (mean ± SEM) and the final accuracy beside the published
    number."""
    from core.reporting.figures import FigureError, check_output, matplotlib_pyplot

    try:
        check_output(out)
        matplotlib_pyplot()
    except FigureError as e:
        fail(str(e))
    store = RunStore(runs_dir)
    targets = resolve(store, names)
    try:
        path, left_out = plot_targets(store, targets, out, dpi, title)
    except FigureError as e:
        fail(str(e))
    except OSError as e:
        fail(f"--out {out}: cannot write it ({e.strerror or e})", EXIT_FAILED)
    if left_out:
        err_console.print(f"[yellow]left out {len(left_out)} run(s) that did not finish:[/] "
                          f"{escape(', '.join(left_out))}", soft_wrap=True)
    console.print(f"wrote {escape(str(path))}")


# --- cltui export mlflow -------------------------------------------------------------------------------


def env_uri() -> str | None:
    from core.reporting.tracking import TrackingError, parse_track

    spec = os.environ.get("CLTUI_TRACK")
    if not spec:
        return None
    try:
        track = parse_track(spec, "CLTUI_TRACK")
    except TrackingError as e:
        fail(str(e))
    return track["uri"] if track["tracker"] == "mlflow" else None


def run_uri(record: dict[str, Any]) -> str | None:
    track = (record.get("config") or {}).get("track") or {}
    return track.get("uri") if track.get("tracker") == "mlflow" else None


@export_app.command("mlflow")
def export_mlflow(
    names: Targets,
    uri: Annotated[str | None, typer.Option(help="Tracking URI \\[default: the run's own track.uri, else "
                                            "$CLTUI_TRACK's, else sqlite:///<runs-dir>/mlflow.db].",
                                            show_default=False)] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment \\[default: the run's track.experiment, else "
                                                   "its preset].", show_default=False)] = None,
    track_checkpoints: Annotated[bool, typer.Option("--track-checkpoints", help="Also log each run's final "
                                                    "checkpoint.")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Push runs that have ended (old ones too) to MLflow from their run.json.

    Params, metrics per context, the loss curve, tags and artifacts; a study as a run with its runs nested. A run
    already there is skipped."""
    from core.reporting.mlflow_store import MlflowStore, log_study, push_run, study_run
    from core.reporting.tracking import (
        TrackingError,
        check_uri,
        experiment_name,
        require_mlflow,
        resolve_uri,
        short_reason,
    )

    try:
        require_mlflow("export mlflow")
    except TrackingError as e:
        fail(str(e))
    if uri is not None and not uri.strip():
        fail("--uri: empty; give a tracking URI, e.g. http://localhost:5000 or sqlite:///mlflow.db")
    if uri is not None:
        try:
            check_uri(uri)
        except TrackingError as e:
            fail(str(e))
    store = RunStore(runs_dir)
    targets = resolve(store, names)
    fallback = env_uri()
    stores: dict[tuple[str, str], MlflowStore] = {}
    current = [""]  # the store being written to, for the error line

    def open_store(record: dict[str, Any]) -> MlflowStore:
        where = resolve_uri(uri or run_uri(record) or fallback, store.root)
        current[0] = where
        name = experiment or experiment_name(record.get("config") or {})
        if (where, name) not in stores:
            stores[(where, name)] = MlflowStore(where, name)
        return stores[(where, name)]

    pushed = 0
    try:
        for target in targets:
            runs = [(p, r) for p, r in target.runs if r.get("status") != "running"]
            for _, r in target.runs:
                if r.get("status") == "running":
                    err_console.print(f"[yellow]skipped {escape(r['id'])}: it has not ended (run.json says "
                                      f"running)[/]", soft_wrap=True)
            if target.study is not None:
                if not runs:
                    err_console.print(f"[yellow]study {escape(target.study['id'])} has no run that ended yet[/]")
                    continue
                mlflow_store = open_store(runs[0][1])
                parent = study_run(mlflow_store, target.study)
                for path, record in runs:
                    what, run_id = push_run(mlflow_store, path, record, parent.id, track_checkpoints)
                    pushed += what == "pushed"
                    console.print(f"{what}: {escape(record['id'])} → MLflow run {run_id}")
                log_study(parent, studies.table(store, target.study), target.study, study_figure(store, target))
                console.print(f"study {escape(target.study['id'])} → MLflow run {parent.id} "
                              f"(experiment {escape(mlflow_store.experiment)} at {escape(mlflow_store.uri)})")
                continue
            for path, record in runs:
                mlflow_store = open_store(record)
                what, run_id = push_run(mlflow_store, path, record, None, track_checkpoints)
                pushed += what == "pushed"
                console.print(f"{what}: {escape(record['id'])} → MLflow run {run_id} (experiment "
                              f"{escape(mlflow_store.experiment)} at {escape(mlflow_store.uri)})")
    except TrackingError as e:
        fail(str(e), EXIT_FAILED)
    except Exception as e:  # noqa: BLE001 - MLflow's errors (a server down, a store it cannot open): one line
        fail(f"MLflow at {current[0]}: {short_reason(e)}" + ("" if uri else "; pass --uri to push to another store"),
             EXIT_FAILED)
    sqlite = [s.uri for s in stores.values() if s.uri.startswith("sqlite:")]
    see = f" · see them with: mlflow ui --backend-store-uri {sqlite[0]}" if sqlite else ""
    console.print(f"[dim]{pushed} run(s) pushed{escape(see)}[/]")


def study_figure(store: RunStore, target: Target) -> Any:
    """A function writing the study's figure to a path, when matplotlib is installed."""
    from core.reporting.tracking import has_module

    if not has_module("matplotlib") or not any(r.get("status") == "finished" for _, r in target.runs):
        return None
    return lambda path: plot_targets(store, [target], path)


# --- cltui export tensorboard --------------------------------------------------------------------------


@export_app.command("tensorboard")
def export_tensorboard(
    names: Targets,
    logdir: Annotated[Path, typer.Option("--logdir", help="Folder for the event files: <logdir>/<run-id>, a "
                                         "study's runs in <logdir>/<study-id>/<run-id>.")],
    runs_dir: RunsDir = None,
) -> None:
    """Write runs as TensorBoard event files.

    Scalars per context and per iteration, the accuracy matrix and the dreams as images, the config as text (an
    earlier export of the same run is replaced)."""
    from core.reporting.tensorboard import write_tensorboard
    from core.reporting.tracking import TENSORBOARD_EXTRA, has_module

    if not has_module("tensorboard"):
        fail(f"export tensorboard: TensorBoard is not installed; {TENSORBOARD_EXTRA}")
    store = RunStore(runs_dir)
    targets = resolve(store, names)
    if logdir.exists() and not logdir.is_dir():
        fail(f"--logdir {logdir}: a file is there; give a folder")
    written = 0
    for target in targets:
        base = logdir / target.study["id"] if target.study is not None else logdir
        for path, record in target.runs:
            try:
                write_tensorboard(record, path, base / record["id"])
            except OSError as e:
                fail(f"--logdir {logdir}: cannot write it ({e.strerror or e})", EXIT_FAILED)
            written += 1
            console.print(f"wrote {escape(str(base / record['id']))}")
    console.print(f"[dim]{written} run(s); see them with: tensorboard --logdir {escape(str(logdir))}[/]")
