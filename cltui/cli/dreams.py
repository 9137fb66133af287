"""`cltui dreams RUN`: the images a data-free run dreamed, with their quality figures; `--context K` draws
a context's grid in the terminal with half blocks (plain SSH is enough); `--export DIR` copies them out.

Reads only the run folder (run.json's `dreams` list and the PNGs): no torch, no Textual.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cltui.cli.common import RunsDir, console, escape, fail, load_run
from cltui.cli.output import runs_dir_flag
from core.runs.store import RunStore

QUALITY_COLUMNS = (  # run.json key, column title, format
    ("teacher_agreement", "teacher", "{:.0%}"),
    ("verifier_accuracy", "verifier", "{:.0%}"),
    ("verifier_real_accuracy", "real", "{:.0%}"),
    ("feature_distance", "dist", "{:.2f}"),
    ("frechet_distance", "Frechet", "{:.1f}"),
    ("class_coverage", "coverage", "{:.0%}"),
    ("reverse_accuracy", "reverse", "{:.0%}"),  # generation runs only
)
LEGEND = ("teacher: the dreaming model sees the intended class · verifier: a classifier trained apart on real "
          "data does (real: the same on real test images) · dist: class-mean distance to real images in "
          "within-class spreads · Frechet: distance of feature Gaussians · coverage: classes the teacher sees · "
          "reverse (a generator's samples): a classifier trained on them alone, tested on real images")


def fmt(value: Any, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def dreams_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"dreams of {record['id']}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("ctx", justify="right")
    table.add_column("classes", justify="right")
    table.add_column("images", justify="right")
    for _, title, _ in QUALITY_COLUMNS:
        table.add_column(title, justify="right", min_width=len(title))
    for entry in record.get("dreams", []):
        quality = entry.get("quality") or {}
        table.add_row(str(entry.get("context")), str(len(entry.get("classes", []))), str(entry.get("count", "–")),
                      *(fmt(quality.get(key), pattern) for key, _, pattern in QUALITY_COLUMNS))
    return table


def dreams(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or its folder).")],
    context: Annotated[int | None, typer.Option("--context", "-k", help="Draw this context's grid in the "
                                                "terminal.")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Copy the dreams (all, or --context's) "
                                                "into this folder.")] = None,
    width: Annotated[int | None, typer.Option(help="Columns for the drawn grid (default: the terminal's).")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """List a run's dreamed images with their quality figures; draw or export them."""
    path, record = load_run(RunStore(runs_dir), run_id)
    entries = record.get("dreams") or []
    if not entries:
        method = (record.get("config") or {}).get("method", {}).get("name")
        fail(f"run {record['id']} has no dreams (method {method} does not dream); data-free methods do: "
             f"cltui run split-digits-dfcil --method abd")
    by_context = {e.get("context"): e for e in entries}
    if context is not None and context not in by_context:
        fail(f"--context: run {record['id']} dreamed after contexts {', '.join(map(str, by_context))}, "
             f"not {context}")
    chosen = [by_context[context]] if context is not None else entries
    if export is not None:
        export_dreams(path, chosen, export)
        return
    flag = runs_dir_flag(runs_dir)
    if context is None:
        console.print(dreams_table(record))
        console.print(f"[dim]{LEGEND}[/]")
        console.print(f"draw one: cltui dreams {escape(record['id'])} --context K{escape(flag)}", soft_wrap=True)
        return
    if not console.is_terminal:  # half blocks without their colours are a wall of █ in a file
        fail(f"--context {context}: stdout is not a terminal, and a drawn grid needs one; copy the images out "
             f"with `cltui dreams {record['id']} --context {context} --export DIR{flag}` (or set "
             f"TTY_COMPATIBLE=1 to draw anyway)")
    show_grid(path, by_context[context], width)


def show_grid(run_dir: Path, entry: dict[str, Any], width: int | None) -> None:
    from cltui.halfblock import HalfBlockImage

    grid = entry.get("path")
    if not grid or not (run_dir / grid).is_file():
        fail(f"context {entry.get('context')}: its grid {grid} is missing from {run_dir}")
    quality = entry.get("quality") or {}
    figures = " · ".join(f"{title} {fmt(quality.get(key), pattern)}" for key, title, pattern in QUALITY_COLUMNS)
    console.print(f"[bold]context {entry.get('context')}[/] · {entry.get('count')} images · {escape(figures)}")
    console.print(HalfBlockImage(run_dir / grid, max_width=width))


def export_dreams(run_dir: Path, entries: list[dict[str, Any]], dest: Path) -> None:
    """Copy each context's folder to DEST/context-K; never overwrite: a folder already there is an error."""
    if dest.exists() and not dest.is_dir():
        fail(f"--export: {dest} is a file; give a folder (it is created if missing)")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--export: cannot create {dest} ({e.strerror or e}); choose a folder you can write to")
    if not os.access(dest, os.W_OK | os.X_OK):
        fail(f"--export: {dest} is not writable; choose a folder you can write to")
    targets = [(run_dir / "dreams" / f"context-{e['context']}", dest / f"context-{e['context']}") for e in entries]
    for source, target in targets:
        if not source.is_dir():
            fail(f"{source}: missing; the run's dreams of context {source.name.removeprefix('context-')} are gone")
        if target.exists():
            fail(f"--export: {target} already exists; choose an empty folder (nothing was copied)")
    for source, target in targets:
        try:
            shutil.copytree(source, target)
        except OSError as e:  # a full disk, a folder that turned read-only meanwhile
            fail(f"--export: copying {source} to {target} failed ({e.strerror or e}); what was copied before is "
                 f"kept", 1)
        console.print(f"copied {source} -> {target}")
