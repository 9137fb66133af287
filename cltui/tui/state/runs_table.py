"""The runs table without Textual: which columns the runs shown need and which fit the terminal, each run's
and each group's cells, and the two-line preview under the table.

Columns follow what differs among the runs shown (after the filter; the runs inside a closed group count
too): each is as wide as the cells shown need (ids included: no room is kept for an id that is not shown).
When the terminal is too narrow for all of them, they give way in this order: a column with one value in
every run shown (it tells no run apart), then decoration (the duration, then the status's width: `cancelled
3/5` -> `cancelled`; an id's name of the user's), then the overrides narrow (their method's fields first, so
a swept λ stays), then the columns that tell runs apart: seed, preset (shortened in the middle, then
dropped), iterations (then named in the overrides), status, scenario. While grouped, the grouping keys'
columns are never dropped (only shortened, once every other column has gone), so every group's row shows
all its keys' values. Columns the user picked (`C`) are shown as picked, shortened to fit but never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from cltui.tui.state.runquery import SORT_COLUMNS, Group, Row, common, group_value
from core.runs.metrics import run_figures
from core.runs.store import RunEntry


def status_text(entry: RunEntry) -> Text:
    status = entry.status
    label = fmt_status(status, run_figures(entry.data)) if entry.data else status
    return Text(label, style=STATUS_STYLE.get(status, "magenta"))


def ellipsize(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def whole_items(text: str, width: int) -> str:
    """Overrides in `width` cells: as many whole `key=value` items as fit, then "…" (`lambda=1e8…`, not
    `lambda=1e8 valida…`); the first item is cut only when it alone does not fit."""
    if len(text) <= width:
        return text
    kept = ""
    for item in text.split(" "):
        longer = f"{kept} {item}" if kept else item
        if len(longer) + 1 > width:
            break
        kept = longer
    return kept + "…" if kept else ellipsize(text, width)


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
PICKABLE = COLUMNS[1:]  # what `C` offers (the mark column is always there)
# Each step is taken only while the columns do not fit: first a column of one value among the runs shown,
UNIFORM_FIRST = ("duration", "scenario", "preset", "iterations", "seed", "method", "status", "overrides")
# then decoration (the duration; the status is narrowed to its word), then the columns that tell runs apart.
DISTINGUISHING = ("seed", "preset", "iterations", "status", "scenario", "overrides", "method")
RIGHT = ("seed", "iterations", "acc", "duration")
PRESET_MIN = 8  # a preset is shortened in the middle to no less than this before its column goes
RUN_MAX, RUN_MIN = 24, 12  # an id with a name of the user's: cut to 24, and to its time stamp and "…" for room
OVERRIDES_MIN, OVERRIDES_WANT, OVERRIDES_FLOOR = 16, 40, 6
SECTIONS = ("method", "train", "model", "benchmark")  # the overrides cell's order: what is swept most, first


@dataclass(frozen=True)
class Plan:
    """The columns shown and the widths of the ones that are shortened to fit."""

    keys: tuple[str, ...]
    widths: tuple[tuple[str, int], ...]

    def width(self, key: str) -> int:
        return dict(self.widths).get(key, 999)


def plan_columns(width: int, natural: dict[str, int], differ: Iterable[str] = (), keep: Iterable[str] = (),
                 only: Iterable[str] | None = None) -> Plan:
    """Which columns fit `width` cells, and how wide. `natural`: each column's widest cell among the rows
    shown (`status_word`: the widest status without its progress); `differ`: the columns whose value differs
    among the runs shown; `keep`: columns never dropped (the grouping keys); `only`: the columns the user
    picked (None: chosen here). Each column takes its widest cell (or header) plus 2 of padding; 4 cells are
    kept for the scroll bar (one cell: the runs screen's CSS), a margin and the sort mark (▲ ▼) of the sorted
    column."""
    differ, keep = set(differ), set(keep)
    need = {k: max(natural.get(k, 1), len(HEADERS[k])) + 2 for k in COLUMNS}
    room = width - 4
    if only is not None:
        keys = [k for k in COLUMNS if k == "mark" or k in set(only) | keep]
    else:
        keys = [k for k in COLUMNS if k != "overrides" or natural.get("overrides", 1) > 1]  # none: nothing to show
    widths = dict(need)
    widths["overrides"] = min(need["overrides"], OVERRIDES_WANT + 2)
    widths["run"] = min(need["run"], RUN_MAX + 2)
    floor = {"status": max(natural.get("status_word", 1), len(HEADERS["status"])) + 2,
             "overrides": min(need["overrides"], OVERRIDES_MIN + 2),
             "preset": min(need["preset"], PRESET_MIN + 2), "run": min(need["run"], RUN_MIN + 2)}

    def over() -> bool:
        return sum(widths[k] for k in keys) > room

    def drop(key: str) -> None:
        if over() and key in keys and key not in keep and only is None:
            keys.remove(key)

    def narrow(key: str) -> None:
        if over() and key in keys:
            widths[key] = max(floor[key], widths[key] - (sum(widths[k] for k in keys) - room))

    for key in UNIFORM_FIRST:
        if key not in differ:
            drop(key)
    drop("duration")
    narrow("status")
    narrow("run")
    if keep:  # grouped: every other column goes before a key's is shortened
        for key in DISTINGUISHING:
            drop(key)
    narrow("overrides")
    drop("seed")
    narrow("preset")
    for key in DISTINGUISHING[1:]:
        drop(key)
    if over() and "overrides" in keys:  # what is left is kept: the overrides take what room remains
        widths["overrides"] = max(OVERRIDES_FLOOR + 2, room - sum(widths[k] for k in keys if k != "overrides"))
    elif "overrides" in keys:  # room to spare: the overrides take it, up to their widest cell
        widths["overrides"] = min(need["overrides"], room - sum(widths[k] for k in keys if k != "overrides"))
    return Plan(tuple(keys), tuple((k, widths[k] - 2) for k in keys))


def overrides_shown(row: Row, keys: Iterable[str] = ()) -> str:
    """The overrides cell: the method's fields first (what a sweep changes), then training, model, benchmark;
    the fields with a column of their own among `keys` (iterations) are left out while it shows."""
    if row.overrides is None:
        return "–"
    own = {"train.iterations"} if "iterations" in keys else set()
    items = [(key, text) for key, text in row.override_items if key not in own]
    rank = {name: i for i, name in enumerate(SECTIONS)}
    items.sort(key=lambda item: rank.get(item[0].partition(".")[0], len(SECTIONS)))
    return " ".join(text for _, text in items)


def status_cell(label: str, status: str, width: int) -> str:
    """A status in `width` cells: whole, else its word (`cancelled 3/5` -> `cancelled`), else cut."""
    if len(label) <= width:
        return label
    return status if len(status) <= width else ellipsize(label, width)


def acc_cell(row: Row) -> Text:
    if row.acc is None:
        return Text("–", justify="right")
    text = Text(fmt_score(row.acc, row.score), style=acc_style(row.acc), justify="right")
    if row.acc_seen:
        text.append(" seen", style="dim")
    return text


def group_score(group: Group) -> str:
    """A group's mean ± SEM as the table writes it: `41.3 ± 1.2`, `R² 0.991 ± 0.004`."""
    if group.acc is None:
        return "mixed" if group.score is None else "–"
    if group.score == "R²":
        return fmt_score(group.acc, "R²") + (f" ± {group.acc_sem:.3f}" if group.acc_sem is not None else "")
    return fmt_pct(group.acc) + (f" ± {100 * group.acc_sem:.1f}" if group.acc_sem is not None else "")


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
        "overrides": Text(whole_items(overrides_shown(row, plan.keys), plan.width("overrides")),
                          style="dim" if row.overrides is None else ""),
        "status": Text(status_cell(row.status_label, row.status, plan.width("status")),
                       style=STATUS_STYLE.get(row.status, "magenta")),
        "acc": acc_cell(row),
        "duration": Text(fmt_duration(row.duration), justify="right"),
    }
    return tuple(values[k] for k in plan.keys)


def group_cells(group: Group, plan: Plan, open_: bool) -> tuple[Text, ...]:
    """A group's row: n, each column's shared value (or the values), its status, mean ± SEM and mean time;
    its keys' cells bold."""
    rows = group.rows
    n = len(rows)
    statuses = {r.status for r in rows}
    finished = sum(r.status == "finished" for r in rows)
    acc = Text(group_score(group), justify="right",
               style=acc_style(group.acc) if group.acc is not None else "dim")
    status = rows[0].status if len(statuses) == 1 else f"{finished}/{n} finished"
    values: dict[str, Text] = {
        "mark": Text("▾" if open_ else "▸", style="bold"),
        "run": Text(f"{n} run{'s' if n != 1 else ''}", style="bold"),
        "preset": Text(middle(common(r.preset for r in rows), plan.width("preset"))),
        "method": Text(common(r.method for r in rows)),
        "scenario": Text(common(r.scenario for r in rows)),
        "seed": Text(common(r.seed for r in rows), justify="right"),
        "iterations": Text(common(r.iterations for r in rows), justify="right"),
        "overrides": Text(whole_items(common((overrides_shown(r, plan.keys) for r in rows),
                                             plan.width("overrides")).replace("values", "setups"),
                                      plan.width("overrides"))),
        "status": Text(status_cell(status, status.partition(" ")[0], plan.width("status")),
                       style=STATUS_STYLE.get(rows[0].status, "") if len(statuses) == 1 else ""),
        "acc": acc,
        "duration": Text(fmt_duration(group.duration), justify="right"),
    }
    for key in group.by:
        if key in values:
            values[key].stylize("bold")
    return tuple(values[k] for k in plan.keys)


def natural_widths(rows: list[Row], groups: list[Group], indented: Iterable[str] = ()) -> dict[str, int]:
    """The widest cell of each column over the runs shown (`indented`: the ids of those shown inside an open
    group) and the groups' rows; `status_word`: the widest status without its progress."""
    indented = set(indented)

    def width(values: Iterable[str]) -> int:
        return max(map(len, values), default=1)

    readable = [r for r in rows if r.status != "unreadable"] or rows
    out = {
        # An unreadable run's id keeps its whole name: it is cut to the column rather than widening it.
        "mark": 1, "run": width(("  " if r.id in indented else "") + r.short for r in readable),
        "preset": width(r.preset or "–" for r in rows), "method": width(r.method or "–" for r in rows),
        "scenario": width(r.scenario or "–" for r in rows), "seed": width(str(r.seed) for r in rows),
        "iterations": width(str(r.iterations) for r in rows),
        "overrides": width(o for r in rows if (o := overrides_shown(r, ("iterations",))) and o != "–"),
        "status": width(r.status_label for r in rows), "status_word": width(r.status for r in rows),
        "acc": width(fmt_score(r.acc, r.score) + (" seen" if r.acc_seen else "") for r in rows),
        "duration": width(fmt_duration(r.duration) for r in rows),
    }
    for g in groups:
        cells = group_cells(g, Plan(COLUMNS, ()), False)
        for key, cell in zip(COLUMNS, cells, strict=False):
            out[key] = max(out[key], len(cell.plain))
        out["status_word"] = max(out["status_word"], len(cells[COLUMNS.index("status")].plain.partition(" ")[0]))
    return out


def differing(rows: Iterable[Row]) -> set[str]:
    """The columns whose value is not the same in every run of `rows` (an unreadable run, which has none of
    them, is left out)."""
    seen: dict[str, set[object]] = {k: set() for k in COLUMNS[2:]}
    for r in rows:
        if r.status == "unreadable":
            continue
        for key, values in seen.items():
            if len(values) < 2:
                values.add(group_value(r, key, ("iterations",)) if key != "status" else r.status_label)
    return {k for k, values in seen.items() if len(values) > 1}


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


def key_text(key: str, value: object) -> str:
    """One grouping key's value as the preview names it: `class-IL`, `30 iterations`, `seed 1`."""
    if value is None:
        return f"{key} –"
    if key == "scenario":
        return f"{value}-IL"
    if key == "iterations":
        return f"{value} iterations"
    if key == "seed":
        return f"seed {value}"
    return str(value)


def group_summary(group: Group) -> Text:
    """Two lines about a group for the preview: every key's value, n; the mean ± SEM and over how many."""
    n = len(group.rows)
    text = Text(no_wrap=True, overflow="ellipsis")
    keys = [key_text(k, v) for k, v in zip(group.by, group.values, strict=True)]
    text.append(" · ".join(k for k in keys if k), style="bold")  # no overrides: nothing to name
    text.append(f"  {n} run{'s' if n != 1 else ''}\n")
    if group.acc is None:
        text.append("runs scored by accuracy and by R² are not averaged together" if group.score is None
                    else "no finished run with a final score", style="dim")
    else:
        score = group_score(group) + ("%" if group.score != "R²" else "")
        name = "R²" if group.score == "R²" else "acc"
        text.append(f"final {name} {score.removeprefix('R² ')} (mean ± SEM over {group.acc_n} finished) · "
                    f"mean time {fmt_duration(group.duration)}")
    text.append(" · enter opens the group", style="dim")
    return text
