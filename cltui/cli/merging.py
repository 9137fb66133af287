"""`cltui merge RUN_A RUN_B`: two trained runs of one architecture merged into one network of that architecture
(core/merge/merger.py), saved as an ordinary run folder. Torch is imported only when the command runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cltui.cli.common import EXIT_CANCELLED, EXIT_FAILED, RunsDir, console, discard, escape, fail
from cltui.cli.show import print_run
from cltui.tui.state.formats import fmt_score
from core.runs.events import Event, PhaseFinished, PhaseStarted, RunFailed, RunStarted
from core.runs.metrics import run_figures
from core.runs.paths import StoreError
from core.runs.store import RunStore, append_event
from core.schema.config import ConfigError
from core.schema.presets import load_preset, parse_override


def merge_table(preset: str | None) -> dict[str, Any]:
    """The [merge] table of the teachers' preset, if that preset is still there and has one."""
    if not preset:
        return {}
    try:
        table = load_preset(preset)
    except ConfigError:
        return {}
    merge = table.get("merge", {})
    if not isinstance(merge, dict):
        fail(f"preset {preset}: merge must be a table ([merge] followed by its settings)")
    return dict(merge)


class MergeDisplay:
    """Plain lines: one per phase, the L0 gates' active units a few times, the teachers beside the student."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.last_units = -1

    def update(self, event: Event) -> None:
        from core.runs.events import UnitsActive

        if self.quiet:
            return
        if isinstance(event, RunStarted):
            console.print(f"merge {escape(event.run_id)} on {escape(event.device)}")
        elif isinstance(event, PhaseStarted):
            console.print(f"  {event.phase}…" + (f" ({event.total} steps)" if event.total else ""))
        elif isinstance(event, PhaseFinished):
            console.print(f"  [dim]{event.phase} done in {event.seconds:.1f} s[/]")
        elif isinstance(event, UnitsActive) and (event.step == event.total or event.step * 4 // event.total
                                                 > self.last_units):  # at every quarter of the training
            self.last_units = event.step * 4 // event.total
            units = " · ".join(f"{k} {v}/{event.widths[k]} (keep {event.keep[k]})" for k, v in event.active.items())
            console.print(f"  [dim]step {event.step}/{event.total}: active units {escape(units)}[/]")
        elif isinstance(event, RunFailed):
            console.print(f"[red]{escape(event.error)}[/]")


def merge(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="First teacher: a finished run (id, prefix or "
                                         "folder).")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="Second teacher, same model and benchmark; with "
                                         "--data same, its data is the one the merge trains on.")],
    approach: Annotated[str | None, typer.Option(help="greedy (important units + imitation) or l0 (joint "
                                                 "double-width network, hard-concrete gates, pruned to half) "
                                                 "\\[default: l0].", show_default=False)] = None,
    data: Annotated[str | None, typer.Option(help="union: both teachers' training data; same: RUN_B's data "
                                             "only, the first teacher's classes through distillation alone "
                                             "\\[default: union].", show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="A merge setting: KEY=VALUE, e.g. "
                                                   "iterations=500, finetune_iterations=300, lr=1e-3, l0_lambda=20 "
                                                   "(repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the merge.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
) -> None:
    """Merge two trained runs of one architecture into one network of that architecture (the student), saved
    as a run whose row is its accuracy on every context, beside the teachers' accuracies."""
    from core.merge import merger as engine
    store = RunStore(runs_dir)
    try:
        a, b = engine.check_teachers(store, run_a, run_b)
    except (engine.MergeError, StoreError) as e:
        fail(str(e))
    table = merge_table(a.record.preset)
    for key, value in (("approach", approach), ("data", data), ("seed", seed), ("device", device)):
        if value is not None:
            table[key] = value
    for item in set_ or []:
        try:
            path, value = parse_override(item)
        except ConfigError as e:
            fail(str(e))
        if path[0] == "merge":
            path = path[1:]
        if len(path) != 1:
            fail(f"--set {item}: merge settings are plain keys, e.g. --set iterations=500")
        table[path[0]] = value
    try:
        settings = engine.settings_from(table)
    except engine.MergeError as e:
        fail(str(e))
    created = [p for p in (store.root, *store.root.parents) if not p.exists()]
    try:
        run_dir = store.new_run_dir(f"{a.record.preset or 'run'}-merge-{settings.approach}-s{settings.seed}")
    except (OSError, StoreError) as e:
        fail(f"--runs-dir: cannot create a run folder in {store.root} ({e}); pick a writable folder")
    display = MergeDisplay(quiet)

    def emit(event: Event) -> None:
        append_event(run_dir, event)
        display.update(event)

    from core.launch.worker import stop_requests

    # The merge trains in this process: SIGTERM and SIGHUP (a closed terminal, `kill`) ask it to stop at its
    # next step, as they stop a run's worker, so it ends recorded cancelled; Ctrl+C interrupts it at once.
    with stop_requests() as asked_to_stop:
        try:
            record = engine.merge(a, b, settings, run_dir, emit, should_stop=asked_to_stop.is_set)
        except engine.MergeError as e:  # found before anything ran (a device that is not there): leave nothing
            discard(run_dir, created)
            fail(str(e))
        except KeyboardInterrupt:
            console.print(f"cancelled; what was saved is in {run_dir}")
            raise typer.Exit(EXIT_CANCELLED) from None
    print_run(record, run_dir)
    info = record.get("merge") or {}
    if record.get("acc_matrix"):
        figures = run_figures(record)

        def show(value: float | None) -> str:
            return fmt_score(value, figures.score) + ("" if figures.score == "R²" or value is None else "%")

        student = figures.headline
        parts = [f"{t['id']} {show(t.get('final_avg_acc'))}" for t in info.get("teachers", [])]
        console.print(f"teachers: {escape(' · '.join(parts))} → student {show(student)} "
                      f"({info.get('approach')}, data {info.get('data')})")
    status = record.get("status")
    raise typer.Exit(0 if status == "finished" else EXIT_CANCELLED if status == "cancelled" else EXIT_FAILED)

