"""The runs table without Textual: which columns fit the terminal (each column's widest cell, the order in
which columns give way when it is narrow, a long preset shortened in the middle), each run's and each group's
cells, and the two-line preview under the table.

When the terminal is narrow, columns go in this order: a column with one value in every run (it tells no run
apart), then overrides, time, scenario, preset, iterations, seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from cltui.tui.state.formats import (
    STATUS_STYLE,
    acc_style,
    figure_parts,
    fmt_duration,
    fmt_pct,
    fmt_score,
    fmt_status,
    fmt_value,
    section,
)
from cltui.tui.state.runquery import SORT_COLUMNS, Group, Row, common
from core.runs.metrics import run_figures
from core.runs.store import RunEntry


def status_text(entry: RunEntry) -> Text:
    status = entry.status
    label = fmt_status(status, run_figures(entry.data)) if entry.data else status
    return Text(label, style=STATUS_STYLE.get(status, "magenta"))


def ellipsize(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def middle(text: str, width: int) -> str:
    """`split-digits-dfcil` in 14 cells: `split-…-dfcil`, both ends kept (presets differ at the end)."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail:]


# --- columns ----------------------------------------------------------------------------------------

COLUMNS = ("mark", "run", "preset", "method", "scenario", "seed", "iterations", "overrides", "status", "acc",
           "duration")
HEADERS = {"mark": "", **SORT_COLUMNS}
DROP_ORDER = ("overrides", "duration", "scenario", "preset", "iterations", "seed")  # the first goes first
UNIFORM_FIRST = ("scenario", "preset", "iterations", "seed", "duration")  # go before overrides if one value
RIGHT = ("seed", "iterations", "acc", "duration")
PRESET_MAX = 14
RUN_MAX = 24  # an id without a time stamp (or with a name of the user's) is shortened to this
OVERRIDES_MIN, OVERRIDES_WANT = 16, 40


@dataclass(frozen=True)
class Plan:
    """The columns shown and the widths of the ones that are shortened to fit."""

    keys: tuple[str, ...]
    widths: tuple[tuple[str, int], ...]

    def width(self, key: str) -> int:
        return dict(self.widths).get(key, 999)


def plan_columns(width: int, natural: dict[str, int], uniform: set[str]) -> Plan:
    """Which columns fit `width` cells: each takes its widest cell (or header) plus 2 of padding; 2 more are
    kept for the sort mark (▲ ▼) of the sorted column."""
    need = {k: max(natural.get(k, 1), len(HEADERS[k])) + 2 for k in COLUMNS}
    need["preset"] = min(need["preset"], PRESET_MAX + 2)
    need["run"] = min(need["run"], RUN_MAX + 2)
    room = width - 5  # the scroll bar, a margin and the sort mark
    keys = list(COLUMNS)
    if natural.get("overrides", 1) <= 1:
        keys.remove("overrides")

    def total() -> int:
        return sum(need[k] for k in keys if k != "overrides")

    want = min(need.get("overrides", 0), OVERRIDES_WANT + 2)
    for key in UNIFORM_FIRST:  # a column with one value tells no run apart: it goes before the others
        if key in keys and key in uniform and ("overrides" in keys and room - total() < want or total() > room):
            keys.remove(key)
    if "overrides" in keys and room - total() < OVERRIDES_MIN + 2:
        keys.remove("overrides")
    for key in DROP_ORDER:
        if total() + (OVERRIDES_MIN + 2 if "overrides" in keys else 0) <= room:
            break
        if key in keys:
            keys.remove(key)
    widths = {k: need[k] - 2 for k in keys}
    if "overrides" in keys:
        widths["overrides"] = min(need["overrides"], room - total()) - 2
    return Plan(tuple(keys), tuple(widths.items()))


def overrides_shown(row: Row, keys: tuple[str, ...] = ()) -> str:
    """The overrides cell: the fields with a column of their own (iterations) are left out while it shows."""
    if row.overrides is None:
        return "–"
    own = {"train.iterations"} if "iterations" in keys else set()
    return " ".join(text for key, text in row.override_items if key not in own)


def acc_cell(row: Row) -> Text:
    if row.acc is None:
        return Text("–", justify="right")
    text = Text(fmt_score(row.acc, row.score), style=acc_style(row.acc), justify="right")
    if row.acc_seen:
        text.append(" seen", style="dim")
    return text


def run_cells(row: Row, plan: Plan, marked: bool, indent: bool = False) -> tuple[Text, ...]:
    # Text, not str: the table would read a str as markup, and a "[" in a name would break it.
    values: dict[str, Text] = {
        "mark": Text("●" if marked else " ", style="bold orange1"),
        "run": Text(ellipsize(("  " if indent else "") + row.short, plan.width("run"))),
        "preset": Text(middle(row.preset or "–", plan.width("preset"))),
        "method": Text(row.method or "–"),
        "scenario": Text(row.scenario or "–"),
        "seed": Text("–" if row.seed is None else str(row.seed), justify="right"),
        "iterations": Text("–" if row.iterations is None else str(row.iterations), justify="right"),
        "overrides": Text(ellipsize(overrides_shown(row, plan.keys), plan.width("overrides")),
                          style="dim" if row.overrides is None else ""),
        "status": Text(row.status_label, style=STATUS_STYLE.get(row.status, "magenta")),
        "acc": acc_cell(row),
        "duration": Text(fmt_duration(row.duration), justify="right"),
    }
    return tuple(values[k] for k in plan.keys)


def group_cells(group: Group, plan: Plan, open_: bool) -> tuple[Text, ...]:
    rows = group.rows
    n = len(rows)
    statuses = {r.status for r in rows}
    finished = sum(r.status == "finished" for r in rows)
    acc = Text("–", justify="right")
    if group.acc is not None:
        acc = Text(fmt_pct(group.acc) + (f" ± {100 * group.acc_sem:.1f}" if group.acc_sem is not None else ""),
                   style=acc_style(group.acc), justify="right")
    values: dict[str, Text] = {
        "mark": Text("▾" if open_ else "▸", style="bold"),
        "run": Text(f"{n} run{'s' if n != 1 else ''}", style="bold"),
        "preset": Text(middle(common(r.preset for r in rows), plan.width("preset"))),
        "method": Text(common(r.method for r in rows)),
        "scenario": Text(common(r.scenario for r in rows)),
        "seed": Text(common(r.seed for r in rows), justify="right"),
        "iterations": Text(common(r.iterations for r in rows), justify="right"),
        "overrides": Text(ellipsize(common((overrides_shown(r, plan.keys) for r in rows), plan.width("overrides"))
                                    .replace("values", "setups"), plan.width("overrides"))),
        "status": Text(rows[0].status if len(statuses) == 1 else f"{finished}/{n} finished",
                       style=STATUS_STYLE.get(rows[0].status, "") if len(statuses) == 1 else ""),
        "acc": acc,
        "duration": Text(fmt_duration(group.duration), justify="right"),
    }
    grouped = "iterations" if group.by == "iterations" else group.by
    values[grouped].stylize("bold")
    return tuple(values[k] for k in plan.keys)


def natural_widths(rows: list[Row], groups: list[Group]) -> tuple[dict[str, int], set[str]]:
    """The widest cell of each column over every run (not only the shown ones: columns keep still while
    filtering) and the columns whose value is the same in every run."""
    def width(values: list[str]) -> int:
        return max(map(len, values), default=1)

    out = {
        # An unreadable run's id keeps its whole name: it is cut to the column rather than widening it.
        "mark": 1, "run": width([r.short for r in rows if r.status != "unreadable"] or [r.short for r in rows]),
        "preset": width([r.preset or "–" for r in rows]), "method": width([r.method or "–" for r in rows]),
        "scenario": width([r.scenario or "–" for r in rows]), "seed": width([str(r.seed) for r in rows]),
        "iterations": width([str(r.iterations) for r in rows]),
        "overrides": width([o for r in rows if (o := overrides_shown(r, ("iterations",))) and o != "–"]),
        "status": width([r.status_label for r in rows]),
        "acc": width([fmt_score(r.acc, r.score) + (" seen" if r.acc_seen else "") for r in rows]),
        "duration": width([fmt_duration(r.duration) for r in rows]),
    }
    for g in groups:
        cells = group_cells(g, Plan(COLUMNS, ()), False)
        for key, cell in zip(COLUMNS, cells, strict=False):
            if key != "overrides":
                out[key] = max(out[key], len(cell.plain))
    uniform = {k for k in ("preset", "scenario", "seed", "iterations") if len({getattr(r, k) for r in rows}) <= 1}
    return out, uniform


# --- the preview ------------------------------------------------------------------------------------


def summary(entry: RunEntry, row: Row | None = None) -> Text:
    """Two lines about a run for the preview under the table."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(entry.id, style="bold")
    text.append("  ")
    text.append_text(status_text(entry))
    if entry.data is None:
        text.append("\n")
        text.append(entry.error or "run.json cannot be read", style="red")
        return text
    d = entry.data
    cfg = section(d, "config")
    bench = section(cfg, "benchmark")
    method = section(cfg, "method")
    params = " ".join(f"{k}={fmt_value(v)}" for k, v in method.items() if k != "name" and v is not None)
    text.append(f"  {bench.get('name', '?')} {bench.get('protocol', '')} · {cfg.get('scenario', '?')}-IL · "
                f"{method.get('name', '?')}{' (' + params + ')' if params else ''} · "
                f"seed {section(cfg, 'train').get('seed', '?')}", style="dim")
    if row is not None and row.overrides:
        text.append(f" · set {row.overrides}", style="dim")
    text.append("\n")
    error = section(d, "error")
    figures = run_figures(d)
    line = " · ".join(f"{label} {value}" for label, value in figure_parts(figures))
    if entry.status == "running":
        text.append(f"training: {figures.progress} contexts evaluated · enter follows it live", style="cyan")
        if figures.headline is not None:
            text.append(f" · {line}")
    elif entry.status == "stale":
        text.append("its worker is gone without finishing (killed, or the machine went down)", style="magenta")
    elif entry.status == "failed" and error:
        text.append(f"error: {error.get('message', '')}", style="red")
        if figures.headline is not None:
            text.append(f" · {line}")
    elif figures.headline is not None:
        text.append(line)
        if entry.status == "cancelled":
            text.append(f" · cancelled: {error.get('message', '')}", style="yellow")
    return text


def group_summary(group: Group) -> Text:
    n = len(group.rows)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{group.by} {group.value if group.value is not None else '–'}", style="bold")
    text.append(f"  {n} run{'s' if n != 1 else ''}\n")
    if group.acc is None:
        text.append("no finished run with a final accuracy", style="dim")
    else:
        sem = f" ± {100 * group.acc_sem:.1f}" if group.acc_sem is not None else ""
        text.append(f"final acc {fmt_pct(group.acc)}{sem}% (mean ± SEM over {group.acc_n} finished) · "
                    f"mean time {fmt_duration(group.duration)}")
    text.append(" · enter opens the group", style="dim")
    return text
