"""`cltui compare` and `cltui studies`: every method x seed as ordinary runs in parallel worker processes,
a live row per run, and the table with mean +- SEM over seeds."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Self

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cltui.cli.common import EXIT_FAILED, RunsDir, console, err_console, escape, fail, plain
from cltui.cli.export import Track, TrackCheckpoints, with_tracking
from cltui.cli.output import json_text, print_fitted, print_table, rounded, runs_dir_flag
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    Warned,
)
from core.runs.lock import RunLocked, pid_alive
from core.runs.metrics import RunFigures, run_figures
from core.runs.paths import StoreError
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.runs.threads import ThreadChoice, choose
from core.schema.config import ConfigError, validate_config
from core.schema.presets import build_config
from core.studies import study as studies

# Where a study's runs train, shared by compare and sweep.
Executor = Annotated[str, typer.Option(help="local (worker processes here) or ray (Ray tasks; needs "
                                       "`pip install cltui\\[ray]` and a runs dir every node sees).")]
RayAddress = Annotated[str | None, typer.Option(help="Ray cluster address \\[default: $RAY_ADDRESS, else a local "
                                                "Ray instance].", show_default=False)]

studies_app = typer.Typer(help="List, show and remove studies (the tables `cltui compare` makes).",
                          no_args_is_help=True)


def study_table(rows: list[dict[str, Any]], title: str) -> Any:
    """The per-method table. Short headers, so that it fits 80 columns with each mean ± SEM on one line. A class-IL
    study also gives the final accuracy on the old and on the newest classes (means), where a method's bias
    towards new classes shows: a column from 100 columns (and into a pipe), a line under the table below."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    old_new = any(r.get("old_acc") is not None for r in rows)
    column = old_new and (not console.is_terminal or console.width >= 100)
    for name in ("method", "runs", "final acc %", "forgetting %", "BWT %", *(("old/new %",) if column else ()),
                 "s/run", "paper %"):
        table.add_column(name, justify="left" if name == "method" else "right", no_wrap=name != "method",
                         overflow="fold")
    for r in rows:
        cells = [escape(r["method"]), f"{r['runs']}/{r['of']}", studies.pct(r["final_avg_acc"], r["final_avg_acc_sem"]),
                 studies.pct(r["avg_forgetting"], r["avg_forgetting_sem"]), studies.pct(r["bwt"], r["bwt_sem"]),
                 *((studies.old_new_text(r),) if column else ())]
        table.add_row(*cells, "–" if r["time_s"] is None else f"{r['time_s']:.1f}",
                      "–" if r["published"] is None else f"{r['published']:g}")
    if not old_new or column:
        return table
    line = " · ".join(f"{escape(r['method'])} {studies.old_new_text(r)}" for r in rows)
    return Group(table, Text.from_markup(f"[dim]final acc on old / new classes %:[/] {line}"))


def study_title(study: dict[str, Any]) -> str:
    """A study's setup in one line, overrides included, so that a pasted table states what it ran:
    `study ID (split-digits, class-IL, 3 seeds, train.iterations=50)`."""
    seeds = study.get("seeds")
    setup = [str(study.get("preset")), f"{study.get('scenario')}-IL", f"{seeds} seed{'s' if seeds != 1 else ''}",
             *map(str, study.get("overrides") or [])]
    return f"study {study['id']} ({', '.join(setup)})"


def saved_config(store: RunStore, entry: dict[str, Any]) -> Any:
    """The config a study's run was started with, when its run.json can be read; else None (it is planned
    again from the study's settings)."""
    if not entry.get("run_id"):
        return None
    try:
        return validate_config(read_run_json(store.run_dir(entry["run_id"]))["config"])
    except StoreError:
        return None


def devices_and_threads(jobs: int | None, device: str | None) -> tuple[list[str | None], int, ThreadChoice]:
    """One job per visible GPU (round-robin), else `jobs` CPU workers; either way the jobs share the cores this
    process may use, OMP_NUM_THREADS when the user set it (core/runs/threads.py)."""
    if device in (None, "auto", "cuda"):
        import torch  # only here: counting GPUs needs it, --help and the rest of the CLI do not

        gpus = torch.cuda.device_count()
        if gpus:
            jobs = jobs or gpus
            return [f"cuda:{i}" for i in range(gpus)], jobs, choose(runs=jobs)
    jobs = jobs or 1
    return [None], jobs, choose(runs=jobs)


# Study kinds other than compare's, by their `kind`: (the Rich summary, `studies show` of it); cltui/cli/sweeping.py
# adds "sweep" when the CLI loads it (this module does not import its plug-ins).
KINDS: dict[str, tuple[Any, Any]] = {}


def study_summary(store: RunStore, study: dict[str, Any], title: str) -> Any:
    """What a study's display and end show: the per-method table, or its kind's own (a sweep's tables)."""
    if study.get("kind") in KINDS:
        return KINDS[study["kind"]][0](store, study, title)
    return study_table(studies.table(store, study), title)


def entry_label(entry: dict[str, Any]) -> str:
    """A run of a study as its rows name it: its method, and a sweep's point."""
    return f"{entry['method']} {entry['label']}" if entry.get("label") else entry["method"]


class StudyDisplay:
    """A live row per run of a study on a terminal (a line per ended run into a pipe, nothing with --quiet)."""

    def __init__(self, console, store: RunStore, study: dict[str, Any], quiet: bool):
        self.console, self.store, self.study, self.quiet = console, store, study, quiet
        self.rows = {i: {"status": "waiting", "context": "", "acc": ""} for i in range(len(study["runs"]))}
        self.seen: dict[int, float] = {}  # each run's average over the contexts seen, after its last context
        self.figures: dict[int, RunFigures] = {}  # each started run's (empty) figures: its config's averaging
        self.started = time.monotonic()
        # Last: Rich's Live calls render() in its constructor, which reads every attribute above.
        self.live = Live(get_renderable=self.render, console=console, refresh_per_second=2) \
            if console.is_terminal and not quiet else None

    def update(self, i: int, event: Any) -> None:
        row, entry = self.rows[i], self.study["runs"][i]
        if isinstance(event, ContextStarted):
            row.update(status="running", context=f"c{event.context}")
        elif isinstance(event, Progress) and event.phase == "train":
            row["context"] = f"c{event.context} {event.step}/{event.total}"
        elif isinstance(event, RunStarted):  # its config says how the contexts weigh in an average
            self.figures[i] = run_figures({"config": event.config})
        elif isinstance(event, ContextEvaluated):
            figures = self.figures.get(i) or run_figures({"config": {"method": {"name": entry["method"]}}})
            average = figures.seen_average(event.accuracies, event.context)
            if average is not None:
                self.seen[i] = average
                row["acc"] = f"{100 * average:.1f}"
        elif isinstance(event, Warned):
            self.console.print(f"[yellow]{escape(entry_label(entry))} seed {entry['seed']}: warning: "
                               f"{escape(event.message)}[/]", soft_wrap=True)
        elif isinstance(event, (RunFinished, RunFailed, RunCancelled)):
            row["status"] = type(event).__name__.removeprefix("Run").lower()
            if isinstance(event, RunFinished):
                row["acc"] = studies.pct(event.metrics.get("final_avg_acc"))
                figure = f"final avg acc {row['acc']}%"
            elif self.seen_so_far(i) is not None:  # ended early: what it saw, never contexts it did not train
                row["acc"] = f"{100 * self.seen[i]:.1f} seen"
                figure = f"avg acc {100 * self.seen[i]:.1f}% over the contexts seen"
            else:
                row["acc"], figure = "–", "no context trained"
            if self.live is None and not self.quiet:
                self.console.print(f"{escape(entry_label(entry))} seed {entry['seed']}: {row['status']} "
                                   f"({figure}) {entry['run_id']}")

    def seen_so_far(self, i: int) -> float | None:
        """Run i's average over the contexts seen: from its last context's event, else (a resumed run that ended
        before a new context) from its run.json."""
        if i not in self.seen:
            try:
                record = read_run_json(self.store.run_dir(self.study["runs"][i]["run_id"]))
            except (KeyError, StoreError):
                return None
            average = run_figures(record).metrics.get("seen_avg_acc")
            if average is None:
                return None
            self.seen[i] = average
        return self.seen[i]

    def render(self) -> Group:
        runs = Table(show_edge=False, pad_edge=False, box=None)
        for name in ("method", "seed", "status", "progress", "avg acc %", "run"):
            runs.add_column(name)
        for i, entry in enumerate(self.study["runs"]):
            row = self.rows[i]
            runs.add_row(escape(entry_label(entry)), str(entry["seed"]), row["status"], row["context"], row["acc"],
                         entry.get("run_id") or "")
        summary = study_summary(self.store, self.study, "so far")
        header = Text(f"study {self.study['id']} · {time.monotonic() - self.started:.0f} s", style="bold")
        return Group(header, runs, summary)

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)


Watch = Callable[[int, Any], list[int]]  # (run index, its event) -> the runs to stop now


def execute(console, store: RunStore, study: dict[str, Any], configs: list, jobs: int,
            devices: list[str | None], threads: int | ThreadChoice | None, quiet: bool, start: Any = None,
            report: bool = True, watch: Watch | None = None) -> int:
    """Run every unfinished run of the study, `jobs` at a time; the study file follows along. `start` launches
    one run (by default a pool of `jobs` worker processes that each train many runs, core/launch/pool.py; or a Ray
    executor's, or a pool the caller keeps across calls: `pool.start`) and returns a handle to pump. `report`:
    print the table at the end (an Optuna sweep runs a batch of trials at a time and prints once). `watch(i, event)`
    sees every event of run i and names the runs to stop now (an Optuna sweep's pruning); an entry marked
    `pruned` in the study is not run again."""
    pool = None
    if start is None and os.environ.get("CLTUI_WORKER_POOL", "1") != "0":
        # A pool of `jobs` worker processes, each importing torch once for many runs (core/launch/pool.py);
        # CLTUI_WORKER_POOL=0 starts a process per run instead (benchmarks/compare_parallel.py compares the two).
        from core.launch.pool import WorkerPool

        pool = WorkerPool(jobs)
        start = pool.start
    elif start is None:
        from core.launch.worker import start
    lock = study_lock(store, study)
    try:
        return _execute(console, store, study, configs, jobs, devices, threads, quiet, start, report, watch)
    except OSError as e:  # the study file or a run folder could not be written: a read-only runs folder, a full disk
        fail(write_failure(store, study, e), EXIT_FAILED)
    except StoreError as e:  # a file of the study's that cltui refuses to write through (a link, a FIFO)
        fail(str(e), EXIT_FAILED)
    finally:
        if pool is not None:
            pool.close()
        lock.release()
        _tidy_study_folder(store, study, lock)


def study_lock(store: RunStore, study: dict[str, Any]) -> Any:
    """The study's lock (core.runs.lock.RunLock on studies/<id>.lock), held while this process runs it: a second
    `compare --resume` or `sweep --resume` of the same study gets one line naming this process, exit 1."""
    from core.runs.lock import RunLock
    from core.runs.paths import inside

    folder = studies.studies_dir(store)
    try:
        inside(store.root, folder.name)  # a studies folder linked out of the runs folder is never written
        folder.mkdir(parents=True, exist_ok=True)
        return RunLock.of_study(folder, study["id"]).acquire()
    except StoreError as e:  # held by another process, or a lock file or studies folder cltui will not follow
        fail(str(e), EXIT_FAILED)
    except OSError as e:
        _tidy_study_folder(store, study, None)
        fail(write_failure(store, study, e), EXIT_FAILED)


def write_failure(store: RunStore, study: dict[str, Any], error: OSError) -> str:
    """One line for a study that could not be written: why, what is kept, how to go on."""
    import errno

    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    saved = (studies.studies_dir(store) / f"{study['id']}.json").is_file()
    again = ("repeat the sweep with --resume" if study.get("kind") == "sweep"
             else f"`cltui compare --resume {study['id']}{runs_dir_flag(store.root)}`") if saved \
        else "run the command again"
    return (f"cannot write in the runs folder {store.root} ({error.strerror or error}"
            f"{': the disk is full' if full else ''}); the runs finished so far are kept; "
            f"{'free some space' if full else 'make the runs folder writable'}, then {again}")


def _tidy_study_folder(store: RunStore, study: dict[str, Any], lock: Any) -> None:
    """A study whose file was never written leaves nothing behind: not its lock file, nor an empty studies/."""
    folder = studies.studies_dir(store)
    if (folder / f"{study['id']}.json").exists():
        return
    if lock is not None:
        lock.path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _execute(console, store: RunStore, study: dict[str, Any], configs: list, jobs: int,
             devices: list[str | None], threads: int | ThreadChoice | None, quiet: bool, start: Any,
             report: bool, watch: Watch | None = None) -> int:
    from core.launch.worker import CtrlC

    pending = []
    for i, record in enumerate(studies.run_records(store, study)):
        if (record is None or record.get("status") != "finished") and study["runs"][i].get("pruned") is None:
            pending.append(i)
    studies.save(store, study)
    active: dict[int, Any] = {}
    next_device = 0
    started = time.monotonic()
    # The first Ctrl+C starts no more runs and stops the running ones cleanly, the second kills them.
    with CtrlC() as ctrl_c, StudyDisplay(console, store, study, quiet) as display:
        while pending or active:
            while pending and len(active) < jobs and not ctrl_c.pressed:
                i = pending.pop(0)
                entry, config = study["runs"][i], configs[i]
                device = devices[next_device % len(devices)]
                next_device += 1
                if device is not None:
                    config = config.model_copy(update={"train": config.train.model_copy(update={"device": device})})
                resume = bool(entry.get("run_id")) and store.run_dir(entry["run_id"]).is_dir()
                run_dir = store.run_dir(entry["run_id"]) if resume else store.new_run_dir_for(config)
                entry["run_id"] = run_dir.name
                studies.save(store, study)
                try:
                    active[i] = start(config, run_dir, threads=threads, resume=resume)
                except RunLocked as e:  # trained elsewhere right now (`cltui run --resume`): never twice at once
                    console.print(f"[yellow]{escape(entry_label(entry))} seed {entry['seed']}: not started: "
                                  f"{escape(str(e))}[/]", soft_wrap=True)
            if ctrl_c.pressed:
                pending.clear()
            ctrl_c.act(active.values())
            for i, handle in list(active.items()):
                for event in handle.pump(0.05):
                    display.update(i, event)
                    for j in watch(i, event) if watch is not None else ():
                        study["runs"][j]["pruned"] = True
                        if j in active:
                            active[j].stop()
                        elif j in pending:
                            pending.remove(j)
                if handle.done:
                    del active[i]
    wall = time.monotonic() - started
    records = studies.run_records(store, study)
    if all((r is not None and r.get("status") == "finished") or e.get("pruned")
           for e, r in zip(study["runs"], records, strict=False)):
        study["finished"] = studies.now_iso()
    study.setdefault("wall_s", []).append(round(wall, 2))
    studies.save(store, study)
    summed = sum(r["timing"].get("total_s") or 0 for r in records if r and r.get("timing"))
    if report:
        print_table(study_summary(store, study, escape(study_title(study))))  # a pipe gets it whole, as studies show
        console.print(f"[dim]wall {wall:.1f} s for {summed:.1f} s of runs · study file "
                      f"{studies.studies_dir(store) / (study['id'] + '.json')}[/]")
    if ctrl_c.pressed:
        again = "repeat the `cltui sweep` command with --resume" if study.get("kind") == "sweep" \
            else f"`cltui compare --resume {study['id']}{escape(runs_dir_flag(store.root))}`"
        console.print(f"interrupted: continue with {again}")
        return 130
    return 0 if study["finished"] else 1


def compare(
    preset: Annotated[str | None, typer.Argument(help="Preset name or .toml path.", show_default=False)] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated methods, e.g. none,ewc,er.")] = "",
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="task, domain or class.")] = "class",
    seeds: Annotated[int, typer.Option(help="Seeds per method (0, 1, ...).")] = 3,
    jobs: Annotated[int | None, typer.Option(help="Runs at a time \\[default: one per GPU, else 1].",
                                             show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value for every run.")] = None,
    device: Annotated[str | None, typer.Option(help="auto (one job per GPU), cpu, cuda or cuda:N.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", metavar="STUDY",
                                               help="Finish an interrupted study.")] = None,
    executor: Executor = "local",
    ray_address: RayAddress = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the table.")] = False,
    track: Track = None,
    track_checkpoints: TrackCheckpoints = False,
) -> None:
    """Run every method x seed of a preset as ordinary runs in parallel; print mean ± SEM per method."""
    store = RunStore(runs_dir)
    if jobs is not None and jobs < 1:  # before anything is written: 0 or less would start no run, ever
        fail(f"--jobs: {jobs} runs at a time; give at least 1, e.g. --jobs 2")
    try:
        if resume is not None:
            if preset or methods or set_:
                fail(f"--resume continues study {resume} with its saved settings; drop PRESET/--methods/--set")
            study = studies.load(store, resume)
            for e in study["runs"]:  # every run folder it names must be a plain child of the runs folder
                if e.get("run_id"):
                    store.run_dir(e["run_id"])
            configs = [saved_config(store, e) or
                       build_config(study["preset"], method=e["method"], scenario=study["scenario"],
                                    seed=e["seed"], overrides=study["overrides"])
                       for e in study["runs"]]
            jobs = jobs or study.get("jobs")
        else:
            overrides = list(set_ or [])
            if device:
                overrides.append(f"train.device={device}")
            study, configs = studies.plan(preset or "split-digits", [m for m in methods.split(",") if m],
                                          scenario, seeds, overrides, jobs or 0)
    except (ConfigError, StoreError) as e:
        fail(str(e))
    if executor not in ("local", "ray"):
        fail(f"--executor: {executor!r} is not one of local, ray")
    configs = [with_tracking(c, track, track_checkpoints) for c in configs]
    tracking = StudyTracking.start(store, study, configs, quiet)
    configs = tracking.configs
    if executor == "ray":
        try:
            from core.launch.ray_executor import RayExecutor
        except ImportError:
            fail("--executor ray: Ray is not installed; pip install 'cltui[ray]'")
        ray = RayExecutor(ray_address or os.environ.get("RAY_ADDRESS"))
        study["jobs"] = jobs or len(study["runs"])  # Ray queues what its resources cannot run yet
        try:
            code = execute(console, store, study, configs, study["jobs"], [None], 1, quiet, start=ray.start)
        finally:
            ray.shutdown()
        tracking.finish(store, study, push_runs=True)  # Ray's tasks do not track: their runs are pushed now
        raise typer.Exit(code)
    devices, jobs, threads = devices_and_threads(jobs, device or configs[0].train.device)
    study["jobs"] = jobs
    code = execute(console, store, study, configs, jobs, devices, threads, quiet)
    tracking.finish(store, study)
    raise typer.Exit(code)


class StudyTracking:
    """A study tracked in MLflow: its own MLflow run, made here before the runs start, that the worker of each
    run nests its run under; its table and figure logged once the runs have ended. A store that cannot be
    reached is one warning line: the study goes on untracked (`cltui export mlflow STUDY` pushes it later)."""

    def __init__(self, configs: list[Any], mlflow_store: Any = None, run: Any = None):
        self.configs, self.mlflow_store, self.run = configs, mlflow_store, run

    @classmethod
    def start(cls, store: RunStore, study: dict[str, Any], configs: list[Any], quiet: bool) -> StudyTracking:
        track = configs[0].track
        if track.tracker != "mlflow":
            return cls(configs)
        from core.reporting.mlflow_store import MlflowStore, study_run
        from core.reporting.tracking import experiment_name, resolve_uri, short_reason

        uri = resolve_uri(track.uri, store.root)
        try:
            mlflow_store = MlflowStore(uri, experiment_name(configs[0].to_dict()))
            run = study_run(mlflow_store, study)
        except Exception as e:  # noqa: BLE001 - a tracker never stops a study
            err_console.print(f"[yellow]warning: tracking: MLflow at {escape(uri)}: {escape(short_reason(e))}; the "
                              f"study goes on untracked (push it later with `cltui export mlflow {study['id']}"
                              f"{escape(runs_dir_flag(store.root))}`)[/]",
                              soft_wrap=True)
            untracked = [c.model_copy(update={"track": c.track.model_copy(update={"tracker": "none"})})
                         for c in configs]
            return cls(untracked)
        if not quiet:
            see = f" · see it with: mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else ""
            console.print(f"tracking in MLflow: {escape(uri)}, experiment {escape(mlflow_store.experiment)!r}, "
                          f"study run {run.id}{escape(see)}", soft_wrap=True)
        nested = [c.model_copy(update={"track": c.track.model_copy(update={"parent": run.id})}) for c in configs]
        return cls(nested, mlflow_store, run)

    def finish(self, store: RunStore, study: dict[str, Any], push_runs: bool = False) -> None:
        if self.run is None:
            return
        from cltui.cli.export import Target, plot_targets
        from core.reporting.mlflow_store import log_study, push_run
        from core.reporting.tracking import has_module, short_reason

        try:
            runs = []
            for entry in study["runs"]:
                try:
                    path = store.run_dir(entry["run_id"])
                    runs.append((path, read_run_json(path)))
                except (KeyError, StoreError):
                    continue
            if push_runs:
                for path, record in runs:
                    if record.get("status") != "running":
                        push_run(self.mlflow_store, path, record, self.run.id, self.configs[0].track.checkpoints)
            target = Target(runs, study)
            figure = (lambda path: plot_targets(store, [target], path)) \
                if has_module("matplotlib") and any(r.get("status") == "finished" for _, r in runs) else None
            log_study(self.run, studies.table(store, study), study, figure)
        except Exception as e:  # noqa: BLE001
            err_console.print(f"[yellow]warning: tracking: the study's table did not reach MLflow "
                              f"({escape(short_reason(e))}); push it with `cltui export mlflow {study['id']}"
                              f"{escape(runs_dir_flag(store.root))}`[/]",
                              soft_wrap=True)


STUDY_COLUMNS = (("study", "left"), ("preset", "left"), ("scenario", "left"), ("methods", "left"),
                 ("seeds", "right"), ("overrides", "left"), ("finished", "right"), ("status", "left"))


def study_progress(store: RunStore, study: dict[str, Any]) -> tuple[int, int, int]:
    """(finished, running, all) runs of a study, from the run.json files on disk (a run whose worker is gone
    is not running)."""
    records = studies.run_records(store, study)
    done = sum(r is not None and r.get("status") == "finished" for r in records)
    running = sum(r is not None and r.get("status") == "running" and pid_alive(r.get("pid")) for r in records)
    return done, running, len(study["runs"])


@studies_app.command("list")
def studies_list(runs_dir: RunsDir = None) -> None:
    """Every study in the runs directory, with its settings (overrides included) and progress."""
    store = RunStore(runs_dir)
    found = sorted(studies.list_studies(store), key=lambda s: s["id"], reverse=True)  # newest first
    if not found:
        console.print(f"no studies in {escape(str(store.root))} yet; `cltui compare --methods none,er"
                      f"{escape(runs_dir_flag(runs_dir))}` runs one", soft_wrap=True)
        return
    rows = []
    for s in found:
        if "error" in s:
            rows.append([escape(s["id"]), "[red]unreadable[/]", "", "", "", "", "", ""])
            continue
        done, running, total = study_progress(store, s)
        rows.append([escape(s["id"]), escape(str(s["preset"])), escape(s["scenario"]), escape(", ".join(s["methods"])),
                     str(s["seeds"]), escape(" ".join(s.get("overrides") or [])) or "–", f"{done}/{total}",
                     "running" if running else "finished" if done == total else "unfinished"])
    print_fitted(list(STUDY_COLUMNS), rows, ("scenario", "preset", "seeds", "status"), fold="study",
                 wrap=("methods", "overrides"))


@studies_app.command("show")
def studies_show(
    study_id: Annotated[str, typer.Argument(metavar="STUDY", help="Study id (or a unique prefix).")],
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, csv or json.")] = "table",
    runs_dir: RunsDir = None,
) -> None:
    """A study's table: mean ± SEM per method over seeds, from the runs on disk; its header names the preset,
    scenario, seeds and overrides."""
    store = RunStore(runs_dir)
    if fmt not in ("table", "markdown", "csv", "json"):
        fail(f"--format: {fmt!r} is not one of table, markdown, csv, json")
    try:
        study = studies.load(store, study_id)
    except StoreError as e:
        fail(str(e))
    if study.get("kind") in KINDS:
        KINDS[study["kind"]][1](store, study, fmt)
        return
    rows = studies.table(store, study)
    if fmt == "table":
        print_table(study_table(rows, escape(study_title(study))))
    elif fmt == "json":
        print(json_text(rows, indent=2))
    elif fmt == "csv":
        print(plain(studies.render(rounded(rows), fmt)))
    else:
        print(plain(studies.render(rows, fmt)))


@studies_app.command("rm")
def studies_rm(
    study_ids: Annotated[list[str], typer.Argument(metavar="STUDY...", help="Studies to delete (ids or unique "
                                                   "prefixes).")],
    runs: Annotated[bool, typer.Option("--runs", help="Delete the studies' runs too (a running one is refused).")
                    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Delete studies (their study files) after a confirmation; their runs stay unless --runs is given."""
    store = RunStore(runs_dir)
    plans: dict[Any, list[Any]] = {}
    try:  # every study and run is resolved and checked before anything is deleted
        for study_id in study_ids:
            path, folders = studies.removal(store, study_id, runs)
            plans.setdefault(path, [])
            plans[path] += [f for f in folders if f not in plans[path]]
    except StoreError as e:
        fail(str(e))
    folders = [f for fs in plans.values() for f in fs]
    if not yes:
        if not sys.stdin.isatty():
            fail("studies rm: refusing to delete without confirmation; pass --yes")
        n = len(plans)
        what = f" and {len(folders)} run(s)" if runs else ""
        typer.confirm(f"delete {n} stud{'y' if n == 1 else 'ies'}{what}: {', '.join(p.stem for p in plans)}?",
                      abort=True)

    def said(path: Any) -> None:
        console.print(f"deleted {'study ' if path.suffix == '.json' else ''}{escape(str(path))}", soft_wrap=True)

    for path, run_folders in plans.items():
        try:
            studies.remove(store, path, run_folders, said)
        except StoreError as e:
            fail(str(e))
        except OSError as e:
            fail(f"{path}: not fully deleted ({e.strerror or e})", EXIT_FAILED)
    if not runs:
        console.print("[dim]their runs are kept (`cltui runs rm` deletes a run; `cltui studies rm --runs` deletes a "
                      "study with its runs)[/]", soft_wrap=True)
