"""The headless face: `cltui run`, `cltui runs ...`, `cltui presets ...`; `cltui` alone opens the TUI.

Never imports torch (the worker process does) nor Textual (only `cltui tui` does), so `--help`
answers at once and scripts stay light. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cltui.cli import data, dreams, export, merging, pretraining, studies, sweeping
from cltui.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    RunsDir,
    console,
    discard,
    err_console,
    escape,
    fail,
    load_run,
    plain,
)
from cltui.cli.export import Track, TrackCheckpoints, tracking_line, with_tracking
from cltui.cli.output import json_text, print_fitted, print_table, runs_dir_flag
from cltui.cli.show import print_run
from cltui.tui.state.formats import fmt_headline, fmt_status
from core.runs.metrics import memory_mb, run_figures
from core.runs.paths import StoreError
from core.runs.store import RunEntry, RunStore
from core.schema.config import ConfigError, TrainConfig
from core.schema.params import METHOD_PARAMS
from core.schema.presets import (
    build_config,
    builtin_presets_dir,
    is_builtin,
    list_presets,
    load_preset,
    method_defaults,
    toml_text,
    user_presets_dir,
)

app = typer.Typer(
    name="cltui",
    help="A continual-learning workbench: train on a sequence of contexts, measure forgetting. "
    "Run with no command to open the terminal UI.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
runs_app = typer.Typer(help="List, show and remove saved runs.", no_args_is_help=True)
presets_app = typer.Typer(help="List and show the presets.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(presets_app, name="presets")

def store_for(runs_dir: Path | None) -> RunStore:
    return RunStore(runs_dir)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, runs_dir: RunsDir = None) -> None:
    if ctx.invoked_subcommand is None:
        tui(runs_dir)


@app.command()
def tui(runs_dir: RunsDir = None) -> None:
    """Open the terminal UI (the default when cltui is run without a command)."""
    from cltui.app import create_app

    create_app(store_for(runs_dir).root).run()


# --- cltui run -----------------------------------------------------------------------------------


@app.command(rich_help_panel="Training")
def run(
    preset: Annotated[str | None, typer.Argument(help="Preset name (see `cltui presets list`) or a .toml path "
                                                 "\\[default: split-digits].", show_default=False)] = None,
    method: Annotated[str | None, typer.Option("--method", "-m", help=f"Method: {', '.join(METHOD_PARAMS)}.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", help="task, domain or class.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value: KEY=VALUE, e.g. "
                                                  "train.lr=3e-4 (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the data set files (default: ./data).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Download the data set if its files are "
                                           "missing.")] = False,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    resume: Annotated[str | None, typer.Option("--resume", metavar="RUN", help="Continue an interrupted or "
                                               "failed run from its last completed context.")] = None,
    track: Track = None,
    track_checkpoints: TrackCheckpoints = False,
) -> None:
    """Train one continual-learning run in a worker process and print its accuracy matrix."""
    from core.engine.datafiles import missing_data

    store = store_for(runs_dir)
    lock = None  # a resumed run's lock (core.runs.lock.RunLock), taken before its record is read
    if resume is not None:
        changed = [name for name, value in (("PRESET", preset), ("--method", method), ("--scenario", scenario),
                                            ("--set", set_), ("--seed", seed)) if value]
        if changed:
            fail(f"--resume continues {resume} with its saved config; drop {', '.join(changed)}")
        config, run_dir, lock = resumable(store, resume)
        # Where the data lives and which device computes may change; what the run computes may not.
        if data_dir:
            config.benchmark.data_dir = str(data_dir)
        if device:
            try:
                config.train.device = TrainConfig.model_validate({"device": device}).device
            except ValueError:
                fail(f"--device: {device!r} is not a device; use auto, cpu, cuda or cuda:N")
        config.benchmark.download = download or config.benchmark.download
    else:
        try:
            config = build_config(
                preset or "split-digits", method=method, scenario=scenario, seed=seed, device=device,
                data_dir=str(data_dir) if data_dir else None, download=download or None, overrides=set_ or [],
            )
        except ConfigError as e:
            fail(str(e))
    config = with_tracking(config, track, track_checkpoints)
    problem = missing_data(config.benchmark)
    if problem:
        fail(problem)
    # The folders this command would create for the runs folder itself: bad input found later removes them.
    created = [p for p in (store.root, *store.root.parents) if not p.exists()]

    from cltui.cli.progress import RunProgress
    from core.launch import worker
    # The first Ctrl+C (or SIGTERM, SIGHUP) stops the run cleanly, the second kills the worker; from before the
    # run folder exists, so a stop at start-up ends the run recorded cancelled, never a "running" one.
    with worker.CtrlC(terminate=True) as ctrl_c:
        if resume is None:
            try:
                run_dir = store.new_run_dir_for(config)
            except (OSError, StoreError) as e:
                fail(f"--runs-dir: cannot create a run folder in {store.root} ({e}); pick a writable folder")
        try:
            handle = worker.start(config, run_dir, resume=resume is not None, lock=lock)
        except OSError as e:  # run.json could not be written: a full disk, a read-only runs folder
            if resume is None:
                discard(run_dir, created)
            fail(f"--runs-dir: cannot write a run in {store.root} ({e.strerror or e}); free some space or pick "
                 f"another folder", EXIT_FAILED)
        display = RunProgress(console, config, run_dir, quiet=quiet)
        if config.track.tracker != "none" and not quiet:
            display.note(tracking_line(config, store))

        def on_ctrl_c(action: str) -> None:
            display.note("stopping after the current step… (Ctrl+C again to kill the worker)" if action == "stop"
                         else "killing the worker")

        with display:
            worker.follow(handle, display.update, ctrl_c, on_ctrl_c)
    code = finish_run(handle, display, resumed=resume is not None, created=created)
    raise typer.Exit(code)


def resumable(store: RunStore, run: str) -> tuple[Any, Path, Any]:
    """The saved config and folder of a run that can be continued, and its lock (core.runs.lock.RunLock, taken
    before anything is read: one writer per run), or one line saying why not."""
    from core.runs.lock import RunLock, RunLocked, pid_alive
    from core.runs.paths import check_run_files
    from core.runs.record import read_record
    from core.schema.config import validate_config

    try:
        path = store.resolve(run)
    except StoreError as e:
        fail(f"--resume: {e}")
    try:
        lock = RunLock.of_run(path).acquire()
    except RunLocked as e:
        fail(f"--resume: {e}", EXIT_FAILED)
    except StoreError as e:
        fail(f"--resume: {e}")
    except OSError as e:  # a read-only runs folder, a full disk
        fail(f"--resume: cannot write in {path} ({e.strerror or e}); make the runs folder writable (or free some "
             f"space), then resume again", EXIT_FAILED)
    try:
        record = read_record(path)
    except StoreError as e:
        fail(f"--resume: {e}")
    if record.status == "finished":
        fail(f"--resume: run {path.name} is finished; nothing to continue")
    try:
        check_run_files(path)
    except StoreError as e:
        fail(f"--resume: {e}", EXIT_FAILED)
    if record.status == "running" and pid_alive(record.pid):
        fail(f"--resume: run {path.name} is still running (pid {record.pid})")
    if record.merge is not None:  # one stage, minutes: a merge is re-run, not continued
        teachers = " ".join(t.id for t in record.merge.teachers)
        fail(f"--resume: run {path.name} is a merge run; merges are re-run with `cltui merge {teachers}`")
    if record.config.train.get("checkpoints") == "none" and record.acc_matrix:
        fail(f"--resume: run {path.name} kept no checkpoints (train.checkpoints=none); start it again instead")
    try:
        return validate_config(record.config.model_dump(mode="json")), path, lock
    except ConfigError as e:
        fail(f"--resume: the config saved in {path / 'run.json'} is not valid here: {e}")


def finish_run(handle: Any, display: Any, resumed: bool = False, created: list[Path] | None = None) -> int:
    from core.runs.events import RunCancelled, RunFailed, RunFinished
    from core.runs.record import read_run_json

    event = handle.terminal
    if isinstance(event, RunFailed) and event.kind == "input":
        if not resumed:  # nothing ran: leave no empty run behind
            discard(handle.run_dir, created or [])
        fail(event.error)
    if isinstance(event, RunFailed) and event.kind == "resume":  # the run's folder is as it was
        fail(event.error)
    try:
        record = read_run_json(handle.run_dir)
    except StoreError as e:
        fail(str(e), EXIT_FAILED)
    if isinstance(event, RunFailed) and record.get("status") == "running":
        # killed before it could say so, or run.json could not be written (a full disk): the event says why
        record["status"] = "failed"
        record["error"] = {"message": event.error, "kind": event.kind, "traceback": event.traceback}
    print_run(record, handle.run_dir)
    if isinstance(event, RunFinished):
        return 0
    if isinstance(event, RunCancelled):
        return EXIT_CANCELLED
    return EXIT_FAILED


# --- printing runs -------------------------------------------------------------------------------


def run_row(entry: RunEntry) -> list[str]:
    if entry.data is None:
        return [escape(entry.id), "–", "–", "–", "[red]unreadable[/]", "–", "–"]
    d = entry.data
    cfg = d.get("config", {})
    figures = run_figures(d)
    total = (d.get("timing") or {}).get("total_s")
    status = entry.status
    colour = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}.get(status, "magenta")
    return [
        escape(entry.id), escape(str(d.get("preset"))), escape(str(cfg.get("method", {}).get("name"))),
        escape(str(cfg.get("scenario"))),
        f"[{colour}]{fmt_status(status, figures)}[/]", fmt_headline(figures),
        "–" if total is None else f"{total:.1f} s",
    ]


# (name, justify) of `runs list`'s columns, and the order they are left out in when the terminal is too narrow
# for all: the id names the preset, the scenario and the method too; the status and the accuracy stay.
RUN_COLUMNS = (("id", "left"), ("preset", "left"), ("method", "left"), ("scenario", "left"), ("status", "left"),
               ("final acc %", "right"), ("duration", "right"))
DROP_ORDER = ("preset", "scenario", "duration", "method")


# --- cltui runs ----------------------------------------------------------------------------------


# Short column names for `runs list --columns`; any other name is a dotted key into the config (method.lambda,
# train.lr), then into run.json itself (env.torch, timing.eval_s).
COLUMNS: dict[str, Any] = {
    "id": lambda e, d: e.id, "status": lambda e, d: e.status, "preset": lambda e, d: d.get("preset"),
    "method": lambda e, d: dotted(d, "config.method.name")[1],
    "scenario": lambda e, d: dotted(d, "config.scenario")[1],
    "benchmark": lambda e, d: dotted(d, "config.benchmark.name")[1],
    "seed": lambda e, d: dotted(d, "config.train.seed")[1],
    "contexts": lambda e, d: len(d.get("acc_matrix") or []), "trained": lambda e, d: run_figures(d).progress,
    "score": lambda e, d: run_figures(d).score, "device": lambda e, d: dotted(d, "env.device")[1],
    "created": lambda e, d: d.get("created"), "finished": lambda e, d: d.get("finished"),
    "error": lambda e, d: e.error or dotted(d, "error.message")[1],
    "memory_mb": lambda e, d: memory_mb(d),
}
# final_avg_acc: over every context, for a run that trained them all; seen_avg_acc: over the contexts it saw
METRIC_COLUMNS = ("final_avg_acc", "seen_avg_acc", "avg_incremental_acc", "old_acc", "new_acc", "task_acc", "top5_acc",
                  "nme_acc", "cnn_acc", "avg_forgetting", "bwt", "fwt")
TIMING_COLUMNS = ("total_s", "train_s", "eval_s", "samples_per_s")
DEFAULT_COLUMNS = ("id,preset,method,scenario,seed,status,trained,score,final_avg_acc,seen_avg_acc,avg_forgetting,"
                   "total_s")
FORMATS = ("table", "csv", "json", "markdown")


def dotted(data: Any, key: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key in nested dicts."""
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def column_value(entry: RunEntry, key: str) -> tuple[bool, Any]:
    d = entry.data or {}
    if key in COLUMNS:
        return True, COLUMNS[key](entry, d)
    if key in METRIC_COLUMNS:
        return True, (d.get("metrics") or {}).get(key)
    if key in TIMING_COLUMNS:
        return True, (d.get("timing") or {}).get(key)
    found, value = dotted(d.get("config") or {}, key)
    return (found, value) if found else dotted(d, key)


def cell_text(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and fmt in ("markdown", "table"):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return plain(value)  # csv and markdown go out as they are: no control character from a run.json


def print_columns(entries: list[RunEntry], columns: list[str], fmt: str) -> None:
    rows = [[column_value(e, c)[1] for c in columns] for e in entries]
    if fmt == "json":
        print(json_text([dict(zip(columns, row, strict=False)) for row in rows], indent=2))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[cell_text(v, fmt) for v in row] for row in rows])
    elif fmt == "markdown":
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for row in rows:
            print("| " + " | ".join(cell_text(v, fmt).replace("|", "\\|") for v in row) + " |")
    else:
        table = Table(show_edge=False, pad_edge=False)
        for c in columns:
            table.add_column(escape(c), overflow="fold")  # ids fold whole onto two lines, never cut
        for row in rows:
            table.add_row(*(escape(cell_text(v, fmt)) or "–" for v in row))
        print_table(table)


@runs_app.command("list")
def runs_list(
    runs_dir: RunsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="table, csv, json (one array) or markdown, "
                                            "with --columns.", show_default=False)] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", "-c", show_default=False,
        help=f"Comma-separated columns \\[default: {DEFAULT_COLUMNS}]: {', '.join([*COLUMNS, *METRIC_COLUMNS])}, "
             f"{', '.join(TIMING_COLUMNS)}, or any config key (method.lambda, train.lr, benchmark.contexts) or "
             f"run.json key (env.torch).")] = None,
) -> None:
    """Every run in the runs directory, newest first: id, preset, method, scenario, status, final average accuracy
    (for a run that did not train every context, its average over the contexts it saw: `48.5 seen`), duration
    (fitted to the terminal; every column into a pipe);
    with --format csv|json|markdown and --columns, a table for scripts and dataframes."""
    store = store_for(runs_dir)
    if fmt is not None and fmt not in FORMATS:
        fail(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if as_json and (fmt is not None or columns is not None):
        fail("--json prints the fixed JSON lines; for chosen columns use --format json --columns ...")
    chosen = [c.strip() for c in (columns or DEFAULT_COLUMNS).split(",") if c.strip()]
    if columns is not None and not chosen:
        fail("--columns: name at least one column, e.g. --columns id,method,final_avg_acc")
    entries = sorted(store.list(), key=lambda e: e.id, reverse=True)  # newest first, as the TUI lists them
    if fmt is not None or columns is not None:
        for c in chosen:
            if entries and not any(column_value(e, c)[0] for e in entries):
                fail(f"--columns: no run has {c!r}; use {', '.join([*COLUMNS, *METRIC_COLUMNS])}, a config key "
                     f"such as method.lambda or train.lr, or a run.json key such as env.torch")
        print_columns(entries, chosen, fmt or "table")
        return
    if as_json:
        for e in entries:
            d = e.data or {}
            figures = run_figures(d) if e.data is not None else None
            print(json_text({"id": e.id, "status": e.status, "preset": d.get("preset"),
                             "method": d.get("config", {}).get("method", {}).get("name"),
                             "scenario": d.get("config", {}).get("scenario"),
                             "trained": figures.progress if figures else None,
                             "score": figures.score if figures else None,
                             "final_avg_acc": (d.get("metrics") or {}).get("final_avg_acc"),
                             "seen_avg_acc": (d.get("metrics") or {}).get("seen_avg_acc"),
                             "total_s": (d.get("timing") or {}).get("total_s"), "error": e.error}))
        return
    if not entries:
        console.print(f"no runs in {escape(str(store.root))} yet; start one with "
                      f"`cltui run{escape(runs_dir_flag(runs_dir))}`", soft_wrap=True)
        return
    print_fitted(list(RUN_COLUMNS), [run_row(entry) for entry in entries], DROP_ORDER, fold="id")
    for entry in entries:
        if entry.error:
            err_console.print(f"[red]unreadable:[/] {escape(entry.error)}", soft_wrap=True)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or its folder).")],
    runs_dir: RunsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print run.json (floats to 6 significant digits).")] = False,
) -> None:
    """A run's accuracy matrix, metrics, timing, full config and (if it failed) its error."""
    path, record = load_run(store_for(runs_dir), run_id)
    if as_json:
        print(json_text(record, indent=2))
        return
    print_run(record, path, full=True)


@runs_app.command("rm")
def runs_rm(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN...", help="Runs to delete, with all their files.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Delete runs (their whole folders) after a confirmation."""
    store = store_for(runs_dir)
    try:
        paths = [store.resolve(r, allow_link=True) for r in run_ids]
    except StoreError as e:
        fail(str(e))
    if not yes:
        if not sys.stdin.isatty():
            fail("runs rm: refusing to delete without confirmation; pass --yes")
        typer.confirm(f"delete {len(paths)} run(s): {', '.join(p.name for p in paths)}?", abort=True)
    for p in paths:
        link = p.is_symlink()
        try:
            store.remove(p.name)
        except StoreError as e:
            fail(str(e))
        except OSError as e:
            fail(f"{p}: not fully deleted ({e.strerror or e})", EXIT_FAILED)
        console.print(f"deleted {'the link ' if link else ''}{p}")


# --- cltui presets -------------------------------------------------------------------------------


@presets_app.command("list")
def presets_list() -> None:
    """The presets, with what each one runs."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("preset", style="bold")
    table.add_column("from")
    table.add_column("description")
    for name in list_presets():
        try:
            description = escape(str(load_preset(name).get("description", "")))
        except ConfigError as e:  # one damaged preset file is one row, not the end of the listing
            description = f"[red]unreadable:[/] {escape(str(e))}"
        table.add_row(escape(name), "built-in" if is_builtin(name) else "yours", description)
    console.print(table)
    console.print(f"[dim]built-in: {escape(str(builtin_presets_dir()))} · yours: {escape(str(user_presets_dir()))} "
                  f"($CLTUI_PRESETS_DIR) · methods: {', '.join(METHOD_PARAMS)}[/]")


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name or .toml path.")],
    method: Annotated[str | None, typer.Option("--method", "-m", help="Resolve for this method.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", help="Resolve for this scenario.")] = None,
) -> None:
    """The fully resolved config a preset gives (every value a run would record)."""
    try:
        config = build_config(name, method=method, scenario=scenario)
    except ConfigError as e:
        fail(str(e))
    table = load_preset(name)
    description = table.get("description")
    if description:
        console.print(f"[bold]{escape(name)}[/]: {escape(description)}")
    # Every method, with what this preset gives it under this scenario: what --method NAME would start from.
    console.print(f"[bold]methods[/] ({config.scenario}-IL; the preset's values for each, before --set):")
    for each, params in METHOD_PARAMS.items():
        if config.scenario not in params.scenarios:
            console.print(f"  [dim]{each}: {'/'.join(params.scenarios)}-IL only[/]")
            continue
        given = method_defaults(table, each, config.scenario)
        values = ", ".join(f"{k}={toml_text(v)}" for k, v in given.items())
        console.print(f"  {each}{escape(f': {values}') if values else ''} [dim]· {escape(params.summary)}[/]")
    console.print_json(json.dumps(config.to_dict()))  # last, so a script can read it from the first "{" on


# --- the commands of the other modules, after run's so that --help lists them in this order ---------------

app.command(rich_help_panel="Training")(studies.compare)
app.command("dreams")(dreams.dreams)
app.command(rich_help_panel="Results")(export.plot)
app.command("merge", rich_help_panel="Training")(merging.merge)
app.command("sweep", rich_help_panel="Training")(sweeping.sweep_command)
app.command(rich_help_panel="Training")(pretraining.pretrain)
app.add_typer(export.export_app, name="export", rich_help_panel="Results")
app.add_typer(studies.studies_app, name="studies")
app.add_typer(data.data_app, name="data")

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
