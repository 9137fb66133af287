"""`cltui sweep`: a method of a preset tuned over a grid (or random / Optuna-chosen points) of config values, every
point x seed an ordinary run of a study run as `cltui compare` runs one (parallel, on Ray, resumable); then the
metric against each parameter and the value chosen on held-out training data (core/studies/sweep.py)."""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cltui.cli.common import EXIT_CANCELLED, RunsDir, console, escape, fail, plain
from cltui.cli.studies import KINDS, Executor, RayAddress, devices_and_threads, execute, saved_config
from core.runs.events import ContextEvaluated
from core.runs.paths import StoreError
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.schema.config import ConfigError
from core.schema.presets import builtin_presets_dir, preset_save_path, shadows_builtin, write_preset_text
from core.studies import study as studies
from core.studies import sweep


def sweep_tables(store: RunStore, study: dict[str, Any], title: str) -> Group:
    """Per swept parameter: mean ± SEM of validation and test accuracy per value, and n; the chosen value bold,
    and the line that says what was chosen on which split."""
    chosen = sweep.best(store, study)
    parts: list[Any] = [Text.from_markup(f"[bold]{title}[/] · sweep {escape(study.get('search', 'grid'))} · "
                                         f"chosen on the {escape(study.get('select', 'validation'))} split")]
    for text in study["grid"]:
        key = text.partition("=")[0]
        table = Table(show_edge=False, pad_edge=False)
        for name in (key, "validation acc (%)", "test acc (%)", "n"):
            table.add_column(escape(name), justify="right")
        for row in sweep.axis_table(store, study, key):
            bold = chosen is not None and chosen["params"].get(key) == row["value"]
            table.add_row(escape(sweep.short(row["value"])), studies.pct(row["val"], row["val_sem"]),
                          studies.pct(row["test"], row["test_sem"]), f"{row['n']}/{row['of']}",
                          style="bold" if bold else None)
        parts.append(table)
    pruned = study.get("pruned", {})
    if pruned:
        parts.append(Text("pruned (stopped as hopeless on validation accuracy): " + ", ".join(
            f"trial {t} after context {p['context']}" for t, p in sorted(pruned.items(), key=lambda kv: int(kv[0]))),
            style="dim"))
    parts.append(Text(sweep.choice_line(chosen), style="bold"))
    return Group(*parts)


def show_sweep(store: RunStore, study: dict[str, Any], fmt: str) -> None:
    """`cltui studies show` of a sweep."""
    if fmt == "table":
        console.print(sweep_tables(store, study, escape(f"study {study['id']}")))
    elif fmt in ("markdown", "json"):
        print(plain(sweep.render(store, study, fmt)))
    else:
        fail(f"--format {fmt}: a sweep's tables come as table, markdown or json")


def preset_target(name: str) -> Any:
    """Where --write-preset NAME goes; checked before anything trains (a built-in or an existing file is kept)."""
    path = preset_save_path(name)
    if path.resolve().parent == builtin_presets_dir().resolve():
        fail(f"--write-preset {name}: the built-in presets are not changed; give another name")
    if shadows_builtin(path):
        fail(f"--write-preset {name}: a built-in preset has that name and would always hide it; give another name")
    if path.exists():
        fail(f"--write-preset {name}: {path} exists and is kept; give another name, or remove it first")
    return path


def sweep_command(
    preset: Annotated[str | None, typer.Argument(help="Preset name or .toml path \\[default: split-digits].",
                                                 show_default=False)] = None,
    method: Annotated[str, typer.Option("--method", "-m", help="The method to tune.")] = "ewc",
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="task, domain or class.")] = "class",
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="A swept key: KEY=lo:hi:log:n, KEY=lo:hi:lin:n or KEY=a,b,c (repeatable), e.g. "
        "method.lambda=1:1e12:log:7.", show_default=False)] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per point (0, 1, ...).")] = 2,
    search: Annotated[str, typer.Option(help="grid (every point), random or optuna (--trials points; "
                                             "optuna needs `pip install 'cltui\\[optuna]'`).")] = "grid",
    trials: Annotated[int | None, typer.Option(help="Points a random or optuna search trains.",
                                               show_default=False)] = None,
    select: Annotated[str, typer.Option(help="Split the best value is chosen on: validation (held-out training "
                                             "data, benchmark.validation, 0.1 unless set) or test.")] = "validation",
    jobs: Annotated[int | None, typer.Option(help="Runs at a time \\[default: one per GPU, else 1].",
                                             show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value for every run.")] = None,
    device: Annotated[str | None, typer.Option(help="auto (one job per GPU), cpu, cuda or cuda:N.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the newest sweep with these same settings: "
                                         "finished runs are kept, the rest run.")] = False,
    write_preset: Annotated[str | None, typer.Option("--write-preset", metavar="NAME", help="Save the preset "
                                                     "with the chosen value (for this scenario) as NAME.")] = None,
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Optuna: stop a trial after a context whose "
                                        "validation accuracy so far is below the earlier trials' median.")] = True,
    executor: Executor = "local",
    ray_address: RayAddress = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the tables.")] = False,
) -> None:
    """Tune a method: every grid point x seed as ordinary runs; the metric per value and the best one,
    chosen on validation data."""
    store = RunStore(runs_dir)
    if jobs is not None and jobs < 1:  # before anything is written: 0 or less would start no run, ever
        fail(f"--jobs: {jobs} runs at a time; give at least 1, e.g. --jobs 2")
    if executor not in ("local", "ray"):
        fail(f"--executor: {executor!r} is not one of local, ray")
    if search == "optuna" and importlib.util.find_spec("optuna") is None:
        fail("--search optuna: Optuna is not installed; pip install 'cltui[optuna]'")
    target = preset_target(write_preset) if write_preset else None
    overrides = list(set_ or [])
    if device:
        overrides.append(f"train.device={device}")
    try:
        plan = sweep.make_plan(preset or "split-digits", method, scenario, list(grid or []), seeds, overrides,
                               select, search, trials)
        if resume:
            study = sweep.find_previous(store, plan)
            if study is None:
                fail(f"--resume: no earlier sweep with these settings in {store.root}; drop --resume to start one")
            for e in study["runs"]:  # every run folder it names must be a plain child of the runs folder
                if e.get("run_id"):
                    store.run_dir(e["run_id"])
            configs = [saved_config(store, e) or plan.config(e["params"], e["seed"]) for e in study["runs"]]
        else:
            study = sweep.new_study(plan, jobs or 0)
            for trial, point in enumerate(sweep.points(plan.axes, search, trials)):
                study["runs"] += plan.entries(point, trial)
            configs = [plan.config(e["params"], e["seed"]) for e in study["runs"]]
    except (ConfigError, StoreError) as e:
        fail(str(e))
    title = escape(f"study {study['id']} ({study['preset']}, {method}, {scenario}-IL, "
                   f"{seeds} seed{'s' if seeds != 1 else ''})")
    started = time.monotonic()
    ray = None
    if executor == "ray":
        try:
            from core.launch.ray_executor import RayExecutor
        except ImportError:
            fail("--executor ray: Ray is not installed; pip install 'cltui[ray]'")
        ray = RayExecutor(ray_address or os.environ.get("RAY_ADDRESS"))
        devices, threads, start = [None], 1, ray.start
        jobs = jobs or max(len(study["runs"]), 1)  # Ray queues what its resources cannot run yet
    else:
        devices, jobs, threads = devices_and_threads(jobs, device or plan.config({}, 0).train.device)
        start = None
    study["jobs"] = jobs
    try:
        if search == "optuna":
            code = optuna_loop(store, study, configs, plan, jobs, devices, threads, quiet, start, prune)
        else:
            code = execute(console, store, study, configs, jobs, devices, threads, quiet, start=start,
                           report=False)
    finally:
        if ray is not None:
            ray.shutdown()
    console.print(sweep_tables(store, study, title))
    console.print(f"[dim]wall {time.monotonic() - started:.1f} s · study file "
                  f"{studies.studies_dir(store) / (study['id'] + '.json')} · `cltui studies show {study['id']}`[/]")
    if code == EXIT_CANCELLED:
        console.print("interrupted: continue by repeating this command with --resume")
    if target is not None and code != EXIT_CANCELLED:
        chosen = sweep.best(store, study)
        if chosen is None:
            fail("--write-preset: no run finished with the metric to choose on; no preset written", 1)
        try:
            write_preset_text(target, sweep.tuned_preset_text(study, chosen))
        except ConfigError as e:
            fail(f"--write-preset: {e}")
        except OSError as e:
            fail(f"--write-preset: cannot write {target} ({e.strerror or e})", 1)
        console.print(f"wrote preset {target.stem} ({target}): {sweep.choice_line(chosen).split(' — ')[0]} for "
                      f"{scenario}-IL")
    raise typer.Exit(code)


def optuna_loop(store: RunStore, study: dict[str, Any], configs: list[Any], plan: sweep.Plan, jobs: int,
                devices: list[str | None], threads: Any, quiet: bool, start: Any, prune: bool = True) -> int:
    """Optuna's trials a batch at a time (as many trials as `jobs` runs hold): ask, train every seed of each, tell
    the mean selection metric; a resumed sweep finishes its unfinished runs and tells every trial first.

    Pruning: after each context of a trial's run, its validation accuracy so far (run.json's val_matrix, saved
    before the context's event is sent) is reported to Optuna by the first of the trial's seeds to get there; a
    hopeless trial has its runs stopped (they end cancelled, their contexts kept), its unstarted seeds dropped,
    and is told as pruned. The study file names the pruned trials, so a resumed sweep neither re-runs them nor
    forgets them."""
    search = sweep.OptunaSearch(plan.axes, prune=prune)
    code = 0
    if study["runs"]:
        code = execute(console, store, study, configs, jobs, devices, threads, quiet, start=start, report=False)
        if code == EXIT_CANCELLED:
            return code
    search.replay(study, sweep.trial_values(store, study), sweep.trial_curves(store, study))
    done = len({e["trial"] for e in study["runs"]})
    per_batch = max(1, jobs // plan.seeds)
    while done < (plan.trials or 0):
        asked: dict[int, Any] = {}
        for _ in range(min(per_batch, (plan.trials or 0) - done)):
            trial, params = search.ask()
            asked[done] = trial
            study["runs"] += plan.entries(params, done)
            configs += [plan.config(params, seed) for seed in range(plan.seeds)]
            done += 1

        def watch(i: int, event: Any, asked: dict[int, Any] = asked) -> list[int]:
            """The runs to stop after run i's event: every run of its trial, when the trial is pruned."""
            entry = study["runs"][i]
            trial = asked.get(entry["trial"])
            if trial is None or not isinstance(event, ContextEvaluated) or not entry.get("run_id"):
                return []
            try:
                value = sweep.so_far(read_run_json(store.run_dir(entry["run_id"])), event.context)
            except StoreError:
                return []
            if value is None or not search.report(trial, event.context, value):
                return []
            study.setdefault("pruned", {})[str(entry["trial"])] = {
                "context": event.context, "reported": search.reported[trial.number]}
            if not quiet:
                console.print(f"[yellow]trial {entry['trial']} ({escape(entry['label'])}) pruned after context "
                              f"{event.context}: validation accuracy so far {100 * value:.1f}%[/]")
            return [j for j, e in enumerate(study["runs"]) if e["trial"] == entry["trial"]]

        code = execute(console, store, study, configs, jobs, devices, threads, quiet, start=start, report=False,
                       watch=watch)
        if code == EXIT_CANCELLED:
            return code
        values = sweep.trial_values(store, study)
        for index, trial in asked.items():
            if str(index) in study.get("pruned", {}):
                search.prune(trial)
            else:
                search.tell(trial, values.get(index))
    return code


KINDS["sweep"] = (sweep_tables, show_sweep)
