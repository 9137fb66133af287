"""A run printed as `cltui run` and `cltui merge` end and `cltui runs show` shows it: its accuracy matrix, its
figures, its timing and where it is saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from cltui.cli.common import console, escape
from cltui.cli.output import print_table, runs_dir_flag
from cltui.tui.state.formats import acc_style, figure_parts, fmt_duration, fmt_pct, stability_text
from core.runs.metrics import context_name, memory_mb, record_matrix, run_figures


def acc_matrix_table(record: dict[str, Any], whole: bool = False) -> Table:
    """The accuracy matrix with each row's average and (class-IL) old / new figures; `whole`: in whole points and
    without padding, for a terminal too narrow for one decimal (ten contexts at 80 columns)."""
    matrix = record_matrix(record)
    figures = run_figures(record)
    n = len(matrix[0]) if matrix else 0
    table = Table(title=f"{'R² (x100)' if figures.score == 'R²' else 'accuracy (%)'} on each context (columns) "
                  "after training each context (rows)" + (", in whole points to fit" if whole else ""),
                  title_justify="left", show_edge=False, pad_edge=False, padding=(0, 0) if whole else (0, 1))
    table.add_column("after", justify="right", style="bold")
    for j in range(n):
        table.add_column(context_name(j, short=True), justify="right")
    table.add_column("avg" if whole else "avg seen", justify="right", style="bold")
    # class-IL: each row's accuracy on the classes of earlier contexts and on the new context's
    old_new = figures.old_new_rows
    if old_new:
        table.add_column("old", justify="right")
        table.add_column("new", justify="right")
    joint = figures.once  # one row over every context
    digits = 0 if whole else 1

    def pct(value: Any) -> str:
        return fmt_pct(value, digits)

    for i, row in enumerate(matrix):
        cells = [f"[{acc_style(a)}]{pct(a)}[/]" if (joint or j <= i) else f"[dim]{pct(a)}[/]"
                 for j, a in enumerate(row)]
        cells.append(pct(figures.seen_average(row, i)))
        if old_new:
            cells += map(pct, figures.old_new(row, i))
        table.add_row(figures.stage_label(i), *cells)
    return table


def matrix_for_console(record: dict[str, Any]) -> Table:
    """The matrix as it fits: one decimal where it does (always into a pipe or a file, printed at full width),
    whole points in a terminal too narrow for it, never a figure cut to `…`."""
    from rich.measure import Measurement

    table = acc_matrix_table(record)
    wide = Measurement.get(console, console.options.update_width(100_000), table).maximum
    if console.is_terminal and wide > console.width:
        return acc_matrix_table(record, whole=True)
    return table


def print_run(record: dict[str, Any], run_dir: Path | None = None, full: bool = False) -> None:
    cfg = record.get("config", {})
    status = record.get("status", "?")
    colour = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}.get(status, "white")
    console.print(f"[bold]{escape(str(record.get('id')))}[/]  [{colour}]{status}[/]  "
                  + escape(f"{cfg.get('benchmark', {}).get('name')} {cfg.get('benchmark', {}).get('protocol')} · "
                           f"{cfg.get('scenario')}-IL · method {cfg.get('method', {}).get('name')} · "
                           f"seed {cfg.get('train', {}).get('seed')} · {record.get('env', {}).get('device', '')}"))
    if record.get("acc_matrix"):
        print_table(matrix_for_console(record))
    m = record.get("metrics") or {}
    t = record.get("timing") or {}
    figures = run_figures(record)
    if figures.headline is not None:
        (head, value), *rest = figure_parts(figures)
        console.print(" · ".join([f"{head} [bold]{value}[/]", *(f"{label} {v}" for label, v in rest)]))
        side = [f"{label} {fmt_pct(value)}%" for label, value in (
            ("task-IL accuracy of the same network (each context on its own classes)", figures.metrics.get("task_acc")),
            ("top-5", figures.metrics.get("top5_acc")), ("nearest mean of exemplars", figures.metrics.get("nme_acc")),
            ("the network's logits (CNN)", figures.metrics.get("cnn_acc"))) if value is not None]
        if side:
            console.print(" · ".join(side))
        stability = stability_text(m, record.get("acc_curve"))
        if stability:
            console.print(stability)
    if t:
        rate = t.get("samples_per_s")
        console.print(f"[dim]total {fmt_duration(t.get('total_s'))} · train {fmt_duration(t.get('train_s'))} · "
                      f"eval {fmt_duration(t.get('eval_s'))}"
                      + (f" · {rate:,.0f} samples/s" if isinstance(rate, (int, float)) else "") + "[/]")
    memory = record.get("memory") or {}
    if memory_mb(record) is not None:
        parts = [f"{label} {memory[key] / 1e6:.2f}" for key, label in (("network", "network"), ("method", "kept by "
                 "the method"), ("teacher", "previous model")) if isinstance(memory.get(key), int) and memory[key]]
        console.print(f"[dim]memory held {memory_mb(record):.2f} MB: {', '.join(parts)}[/]")
    dreams = record.get("dreams") or []
    if dreams:
        flag = runs_dir_flag(run_dir.parent) if run_dir is not None else ""
        console.print(f"dreams after contexts {', '.join(str(d.get('context')) for d in dreams)}: "
                      f"cltui dreams {escape(str(record.get('id')))}{escape(flag)}", soft_wrap=True)
    error = record.get("error")
    if error and status != "finished":
        console.print(f"[{colour}]{escape(str(error.get('message')))}[/]")
        if full and error.get("traceback"):
            console.print(escape(error["traceback"]), style="dim")
    if full:
        console.print_json(json.dumps(cfg))
    if run_dir is not None:
        console.print(f"[dim]saved in {run_dir}[/]")
