"""The Runs screen (home): every run in the runs directory, kept up to date while runs go.

A thread worker looks at the runs directory every second; it re-reads only the run.json files whose
size or modification time changed (and checks that running runs' workers are still alive), builds their
table rows (cltui.tui.state.runquery: short id, preset, method, scenario, seed, iterations, overrides, status,
accuracy, duration) and posts one message that the screen applies. A run.json that cannot be read is one
"unreadable" row.

The table: newest first; `o` cycles the sort column and `O` reverses it (or click a column's header: again
reverses), the header marks it ▲ / ▼. `g` groups by method, then preset, scenario, iterations, then not:
one row per group with n, mean ± SEM of the final accuracy over its finished runs and the mean duration;
enter or right opens a group, left closes it. `acc %` is the final average accuracy over all contexts; a
run still going shows the average over the contexts seen so far, marked `seen` (`62.1 seen`). `/` filters
with fields (`method:er seed:1 acc>90 status:failed iterations:50`, see runquery). Space marks the run under
the cursor (marks are kept in `<runs>/.cltui/marks.json`); `d` deletes the marked runs shown (else the one
under the cursor), `c` compares the marked runs shown. When the terminal is narrow, columns go in this
order: a column with one value in every run (it tells no run apart), then overrides, time, scenario, preset,
iterations, seed; a long preset name is shortened in the middle rather than losing the column.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from cltui.tui.screens.confirm import ConfirmScreen
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
    shown_path,
)
from cltui.tui.state.runquery import (
    GROUP_BY,
    SORT_COLUMNS,
    Filter,
    Group,
    PresetConfigs,
    Row,
    common,
    group_rows,
    parse_filter,
    row_of,
    sort_rows,
)
from cltui.tui.widgets.header import Header
from cltui.tui.widgets.tables import HomeTable
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.metrics import run_figures
from core.runs.store import (
    RUN_JSON,
    RunEntry,
    StoreError,
    inside,
    pid_alive,
    read_bounded,
    read_run_json,
    write_json_atomic,
)

Stamp = tuple[int, int] | None  # (mtime_ns, size) of a run.json
MARKS = Path(".cltui") / "marks.json"  # inside the runs folder


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


# --- the runs folder ----------------------------------------------------------------------------------


def scan(root: Path, known: dict[str, tuple[Stamp, RunEntry]], force: bool) -> dict[str, tuple[Stamp, RunEntry]]:
    """The runs under `root`: entries whose run.json is unchanged are reused, the others read again."""
    found: dict[str, tuple[Stamp, RunEntry]] = {}
    try:
        folders = [p for p in os.scandir(root) if p.is_dir() and not p.name.startswith(".")
                   and not (p.is_symlink() and Path(p.path).resolve().parent != root.resolve())]  # no link out
    except OSError:
        return found
    for folder in folders:
        try:
            st = os.stat(Path(folder.path) / RUN_JSON)
        except OSError:
            continue  # studies/ and other folders that are not runs
        stamp = (st.st_mtime_ns, st.st_size)
        old = known.get(folder.name)
        if old is not None and old[0] == stamp and not force:
            found[folder.name] = old
            continue
        path = Path(folder.path)
        try:
            found[folder.name] = (stamp, RunEntry(folder.name, path, read_run_json(path)))
        except StoreError as e:
            found[folder.name] = (stamp, RunEntry(folder.name, path, None, str(e)))
    return found


def read_marks(root: Path) -> set[str]:
    """The marked run ids kept in the runs folder; a missing or damaged file is no marks."""
    try:
        data = json.loads(read_bounded(inside(root, *MARKS.parts, action="read")))
    except (OSError, ValueError, RecursionError):  # StoreError too: a link, a FIFO, a huge file
        return set()
    marks = data.get("marks") if isinstance(data, dict) else None
    return {m for m in marks if isinstance(m, str)} if isinstance(marks, list) else set()


def write_marks(root: Path, marks: set[str]) -> None:
    folder = root / MARKS.parent
    if not root.is_dir():
        return  # nothing to mark in a folder that is not there; never create it for the marks
    inside(root, *MARKS.parts)  # never through a link out of the runs folder (UnsafePathError)
    folder.mkdir(exist_ok=True)
    write_json_atomic(inside(root, *MARKS.parts), {"schema": 1, "marks": sorted(marks)})


# --- the screen ---------------------------------------------------------------------------------------


class RunsScreen(ReportsWorkerErrors, Screen[None]):
    """Home: the table of runs; the keys in the footer open, compose, mark, compare, delete, filter, sort,
    group."""

    # Footer order: quit and the keys list first, so that no other key (esc Clear, shown while a filter is on)
    # pushes them off an 80-column footer; enter (open) and O (reverse the sort) work without taking footer
    # room, and ctrl+q (the app's quit, in every other footer) quits here too without showing twice.
    BINDINGS: ClassVar = [
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+q", "app.quit", "Quit", show=False, priority=True),
        Binding("question_mark", "app.help", "Keys", key_display="?"),
        Binding("n", "compose", "New"),
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("c", "compare", "Compare"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear"),
        Binding("o", "sort", "Sort"),
        Binding("O", "reverse", "Reverse sort", show=False),
        Binding("g", "group", "Group"),
        Binding("S", "studies", "Studies"),
        Binding("r", "reload", "Reload", show=False),
    ]
    POLL_S = 1.0

    @dataclass
    class Scanned(Message):
        """The runs directory as the poller found it."""

        runs: dict[str, tuple[Stamp, RunEntry]] = field(default_factory=dict)
        alive: dict[str, bool] = field(default_factory=dict)  # running runs: is the worker still there
        rows: dict[str, Row] = field(default_factory=dict)

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, tuple[Stamp, RunEntry]] = {}
        self.alive: dict[str, bool] = {}
        self.rows: dict[str, Row] = {}
        self.marked: set[str] = set()
        self.filter = ""
        self.query_filter = Filter()
        self.filter_errors: list[str] = []
        self.sort = "run"
        self.descending = True
        self.group_by: str | None = None
        self.expanded: set[str] = set()  # group keys
        self.groups: dict[str, Group] = {}
        self.plan: Plan | None = None
        self.header_state: tuple[str, bool] | None = None
        self.shown: list[str] = []  # row keys (run ids, group keys) in table order
        self.row_cells: dict[str, tuple[Any, ...]] = {}  # what the table holds
        self.cell_cache: dict[str, tuple[Any, ...]] = {}
        self.widths_of: dict[str, Row] | None = None
        self.run_widths: tuple[dict[str, int], set[str]] = ({}, set())
        self.marks_lock = threading.Lock()
        self.visible_ids: list[str] = []  # the runs that pass the filter, whether shown or inside a closed group
        self.loaded = False
        self.presets = PresetConfigs()

    def compose(self) -> ComposeResult:
        yield Header()
        yield HomeTable(id="runs", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="filter-line"):
            yield Input(id="filter", placeholder="/ filter: method:er seed:1 acc>90 status:failed, or part of an id",
                        compact=True)
            yield Static(id="filter-error")
        yield Static(id="preview")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "loading runs…"
        self.query_one("#filter-line").display = False
        self.query_one(DataTable).focus()
        self.marked = read_marks(self.app.runs_dir)  # type: ignore[attr-defined]
        self.poll(force=True)
        self.set_interval(self.POLL_S, self.poll)

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.poll(force=True)  # back from compose, live, detail: a run may have started or ended

    # --- polling ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-poll")
    def poll(self, force: bool = False) -> None:
        before, rows_before = dict(self.runs), dict(self.rows)
        runs = scan(self.app.store.root, before, force)  # type: ignore[attr-defined]
        alive = {run_id: pid_alive(e.data.get("pid")) for run_id, (_, e) in runs.items()
                 if e.data is not None and e.data.get("status") == "running"}
        rows: dict[str, Row] = {}
        for run_id, (_, entry) in runs.items():
            status = entry.status
            old = rows_before.get(run_id)
            if old is not None and before.get(run_id, (None, None))[1] is entry and old.status == status:
                rows[run_id] = old
            else:
                rows[run_id] = row_of(run_id, entry.data, status, self.presets)
        self.post_message(self.Scanned(runs, alive, rows))

    @on(Scanned)
    def scanned(self, message: Scanned) -> None:
        changed = (not self.loaded or message.runs.keys() != self.runs.keys() or message.alive != self.alive
                   or any(message.rows[k] is not self.rows.get(k) for k in message.rows))
        self.runs, self.alive, self.rows, self.loaded = message.runs, message.alive, message.rows, True
        if changed:
            self.refresh_table()
            self.refresh_bindings()

    # --- the table ----------------------------------------------------------------------------------

    def entries(self) -> list[RunEntry]:
        return [entry for _, entry in sorted(self.runs.values(), key=lambda s: s[1].id, reverse=True)]

    def marks(self) -> set[str]:
        """The marks on runs that are here (a mark on a run deleted elsewhere is kept, but counts nowhere)."""
        return self.marked & self.rows.keys()

    def layout_rows(self) -> list[tuple[str, Row | Group, bool]]:
        """(key, run or group, indented) in table order, under the filter, sort and grouping."""
        visible = [r for r in self.rows.values() if self.query_filter.matches(r)]
        self.visible_ids = [r.id for r in visible]
        if self.group_by is None:
            self.groups = {}
            return [(r.id, r, False) for r in sort_rows(visible, self.sort, self.descending)]
        out: list[tuple[str, Row | Group, bool]] = []
        groups = group_rows(visible, self.group_by, self.sort, self.descending)
        self.groups = {g.key: g for g in groups}
        for g in groups:
            out.append((g.key, g, False))
            if g.key in self.expanded:
                out.extend((r.id, r, True) for r in g.rows)
        return out

    def refresh_table(self, rebuild: bool = False) -> None:
        """Bring the table in line with the runs, filter, sort and grouping: rows whose cells changed are
        updated in place; new columns or another set or order of rows rebuilds it, keeping the cursor on
        the same row (or on the group a run went into)."""
        table = self.query_one("#runs", DataTable)
        layout = self.layout_rows()
        if self.widths_of is not self.rows:  # the runs changed: measure them again
            self.widths_of, self.run_widths = self.rows, natural_widths(list(self.rows.values()), [])
        natural, uniform = self.run_widths
        if self.groups:
            natural = {**natural, "run": natural["run"] + 2}  # the runs of an open group are indented
            for key, value in natural_widths([], list(self.groups.values()))[0].items():
                natural[key] = max(natural[key], value)
        plan = plan_columns(table.size.width or self.app.size.width, natural, uniform)
        marks = self.marks()
        current = self.current_key()
        index = table.cursor_row
        if plan != self.plan or rebuild:
            self.plan, self.header_state = plan, (self.sort, self.descending)
            table.clear(columns=True)
            self.row_cells = {}
            for key in plan.keys:
                label = self.header_label(key)
                table.add_column(label, key=key, width=max(plan.width(key), label.cell_len))
            self.shown = []
        elif self.header_state != (self.sort, self.descending):
            # another sort: only the headers' arrows change (rebuilding 500 rows for them cost a sort key
            # twice the time); the rows are moved into the new order below
            self.header_state = (self.sort, self.descending)
            for key in plan.keys:
                column = table.columns[key]  # type: ignore[index]
                column.label = self.header_label(key)
                column.width = max(column.width, column.label.cell_len)
            table.refresh()
        cells = {key: self.cells_of(key, item, plan, indent, marks) for key, item, indent in layout}
        keys = [key for key, _, _ in layout]
        if keys != self.shown:
            table.show_rows(keys, cells)  # type: ignore[attr-defined]
            self.shown = keys
            target = self.cursor_target(current, index)
            if target is not None:
                table.move_cursor(row=target, animate=False)
        column_keys = list(plan.keys)
        for k in keys:
            new, old = cells[k], self.row_cells.get(k)
            if old is not None and new is not old and new != old:
                for i, value in enumerate(new):
                    if old[i] != value:
                        table.update_cell(k, column_keys[i], value)
        self.row_cells = cells
        self.update_titles()
        self.update_preview()

    def header_label(self, key: str) -> Text:
        label = HEADERS[key] + ((" ▼" if self.descending else " ▲") if key == self.sort else "")
        return Text(label, justify="right" if key in RIGHT else "left")

    def cells_of(self, key: str, item: Row | Group, plan: Plan, indent: bool, marks: set[str]) -> tuple[Any, ...]:
        """A row's cells, made again only when the run, its mark, the group or the columns changed."""
        state = (item, plan.keys, plan.width("run"), plan.width("preset"), plan.width("overrides"), indent,
                 key in marks, key in self.expanded)
        cached = self.cell_cache.get(key)
        if cached is not None and cached[0] is item and cached[1:-1] == state[1:]:
            return cached[-1]
        cells = (group_cells(item, plan, key in self.expanded) if isinstance(item, Group)
                 else run_cells(item, plan, key in marks, indent))
        self.cell_cache[key] = (*state, cells)
        return cells

    def cursor_target(self, current: str | None, index: int) -> int | None:
        if not self.shown:
            return None
        if current in self.shown:
            return self.shown.index(current)
        for g in self.groups.values():  # the run went into a closed group: the cursor goes to the group
            if any(r.id == current for r in g.rows) and g.key in self.shown:
                return self.shown.index(g.key)
        return max(0, min(index, len(self.shown) - 1))

    def update_titles(self) -> None:
        runs = len(self.rows)
        running = sum(r.status == "running" for r in self.rows.values())
        parts = [f"{runs} run{'s' if runs != 1 else ''} in {self.runs_dir_shown()}"]
        if running:
            parts.append(f"{running} running")
        if self.group_by:
            parts.append(f"by {self.group_by}")
        marks = self.marks()
        if marks:
            parts.append(f"{len(marks)} marked")
        if self.filter:
            parts.append(f"{len(self.visible_ids)} match “{self.filter}”")
        self.sub_title = " · ".join(parts)

    def runs_dir_shown(self) -> str:
        return shown_path(self.app.runs_dir)  # type: ignore[attr-defined]

    def current_key(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def current_id(self) -> str | None:
        """The run under the cursor (None on a group row)."""
        key = self.current_key()
        return key if key in self.rows else None

    def current_group(self) -> Group | None:
        key = self.current_key()
        return self.groups.get(key) if key is not None else None

    def current(self) -> RunEntry | None:
        run_id = self.current_id()
        return self.runs[run_id][1] if run_id in self.runs else None

    def update_preview(self) -> None:
        entry = self.current()
        group = self.current_group()
        preview = self.query_one("#preview", Static)
        if entry is not None:
            preview.update(summary(entry, self.rows.get(entry.id)))
        elif group is not None:
            preview.update(group_summary(group))
        elif not self.runs:
            preview.update(Text.from_markup(f"no runs in {self.runs_dir_shown()} yet: press [b]n[/] to compose one, "
                                            "or start one with `cltui run` in another terminal"))
        else:
            preview.update(Text(f"no run matches “{self.filter}”; escape clears the filter", style="dim"))

    @on(DataTable.RowHighlighted)
    def highlighted(self) -> None:
        self.update_preview()

    def on_resize(self) -> None:
        if self.loaded:
            self.call_after_refresh(self.refresh_table)

    # --- actions ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # only shown (and only active) while there is a filter to clear
            return bool(self.filter) or self.query_one("#filter-line").display
        if action in ("sort", "reverse", "group"):
            return bool(self.rows)  # nothing to sort or group in an empty folder: hidden
        return True

    @on(DataTable.RowSelected)
    def selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key not in SORT_COLUMNS:
            return
        if key == self.sort:
            self.descending = not self.descending
        else:
            self.sort, self.descending = key, key in ("run", "acc")
        self.refresh_table()

    def action_open(self) -> None:
        if self.current_group() is not None:
            self.toggle_group()
            return
        entry = self.current()
        if entry is None:
            return
        if entry.data is None:
            self.notify(entry.error or "run.json cannot be read", title="unreadable run", severity="error",
                        timeout=8)
            return
        if entry.status == "running":
            try:
                from cltui.tui.screens.live import LiveScreen
            except ImportError:
                pass
            else:
                self.app.push_screen(LiveScreen(entry.path))
                return
        from cltui.tui.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(entry.path))

    def toggle_group(self, open_: bool | None = None) -> bool:
        """Open or close the group under the cursor (or the group of the run under it, to close it);
        False when there is no group there."""
        group = self.current_group()
        if group is None:
            run_id = self.current_id()
            group = next((g for g in self.groups.values() if g.key in self.expanded
                          and any(r.id == run_id for r in g.rows)), None)
            if group is None or open_ is not False:
                return False
        opening = group.key not in self.expanded if open_ is None else open_
        if opening == (group.key in self.expanded):
            return True
        self.expanded ^= {group.key}
        self.refresh_table()
        table = self.query_one("#runs", DataTable)
        table.move_cursor(row=self.shown.index(group.key), animate=False)
        return True

    def action_expand_row(self) -> bool:
        return self.toggle_group(True)

    def action_collapse_row(self) -> bool:
        return self.toggle_group(False)

    def action_compose(self) -> None:
        try:
            from cltui.tui.screens.compose import ComposeScreen
        except ImportError:
            self.notify("composing runs is not available in this build", severity="warning")
            return
        self.app.push_screen(ComposeScreen(self.app.runs_dir))  # type: ignore[attr-defined]

    def action_studies(self) -> None:
        from cltui.tui.screens.studies import StudiesScreen

        self.app.push_screen(StudiesScreen())

    def action_sort(self) -> None:
        if not self.rows or self.plan is None:
            return
        cycle = [k for k in self.plan.keys if k in SORT_COLUMNS]
        nxt = cycle[(cycle.index(self.sort) + 1) % len(cycle)] if self.sort in cycle else cycle[0]
        self.sort, self.descending = nxt, nxt in ("run", "acc")  # newest and best first; the rest A-Z, 0-9
        self.refresh_table()

    def action_reverse(self) -> None:
        if not self.rows:
            return
        self.descending = not self.descending
        self.refresh_table()

    def action_group(self) -> None:
        if not self.rows:
            return
        order = [*GROUP_BY, None]
        self.group_by = order[(order.index(self.group_by) + 1) % len(order)]
        self.expanded = set()
        self.refresh_table()
        if self.group_by:
            self.notify(f"grouped by {self.group_by}: enter opens a group", timeout=3)

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor; the cursor stays where it is."""
        run_id = self.current_id()
        if run_id is None:
            if self.current_group() is not None:
                self.notify("open the group (enter) to mark its runs", severity="information", timeout=3)
            return
        self.marked ^= {run_id}
        self.save_marks()
        self.refresh_table()

    @work(thread=True, exit_on_error=False, group="marks")
    def save_marks(self) -> None:
        """Write the marks (off the UI thread: the write waits for the disk); the newest set is written last."""
        with self.marks_lock:
            try:
                write_marks(self.app.runs_dir, self.marked & self.rows.keys())  # type: ignore[attr-defined]
            except (OSError, StoreError) as e:
                why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                self.app.call_from_thread(self.notify, f"marks not saved: {why}", severity="warning",
                                          timeout=6)

    def marked_shown(self) -> tuple[list[RunEntry], int]:
        """The marked runs that pass the filter (oldest first) and how many marked ones it hides."""
        marks = self.marks()
        visible = set(self.visible_ids)
        shown = [self.runs[i][1] for i in sorted(marks & visible)]
        return shown, len(marks - visible)

    def action_compare(self) -> None:
        marked, hidden = self.marked_shown()
        readable = [e for e in marked if e.data is not None]
        if len(readable) < 2:
            extra = f" ({hidden} marked run{'s are' if hidden != 1 else ' is'} hidden by the filter)" if hidden else ""
            self.notify(f"mark two runs or more with space, then press c{extra}", title="compare",
                        severity="warning")
            return
        if hidden:
            self.notify(f"comparing the {len(readable)} marked runs shown; {hidden} marked "
                        f"run{'s' if hidden != 1 else ''} hidden by the filter left out", severity="warning")
        if len(readable) < len(marked):
            self.notify(f"{len(marked) - len(readable)} unreadable run(s) left out", severity="warning")
        from cltui.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen([e.path for e in readable]))

    def action_delete(self) -> None:
        marked, hidden = self.marked_shown()
        if marked:
            self.delete_marked(marked, hidden)
            return
        entry = self.current()
        if entry is None:
            return
        if entry.status == "running":
            self.notify(f"{entry.id} is still running: open it (enter) and stop it (s) before deleting it",
                        title="not deleted", severity="warning", timeout=8)
            return
        detail = (f"This removes the folder {entry.path.name} from {self.runs_dir_shown()} with everything in it "
                  "(run.json, events, log, checkpoints, dreams). It cannot be undone.")
        self.app.push_screen(ConfirmScreen(f"Delete run {entry.id}?", detail, confirm="Delete", danger=True),
                             lambda yes: self.delete([entry]) if yes else None)

    def delete_marked(self, marked: list[RunEntry], hidden: int) -> None:
        running = [e for e in marked if e.status == "running"]
        doomed = [e for e in marked if e.status != "running"]
        notes = []
        if running:
            notes.append(f"{len(running)} running run{'s are' if len(running) != 1 else ' is'} kept: stop "
                         f"{'them' if len(running) != 1 else 'it'} first")
        if hidden:
            notes.append(f"{hidden} marked run{'s' if hidden != 1 else ''} hidden by the filter "
                         f"{'are' if hidden != 1 else 'is'} kept")
        if not doomed:
            self.notify("; ".join(notes) or "nothing to delete", title="not deleted", severity="warning", timeout=8)
            return
        names = "\n".join(e.id for e in doomed[:8]) + (f"\n… and {len(doomed) - 8} more" if len(doomed) > 8 else "")
        n = len(doomed)
        detail = (f"{names}\n\nThis removes {'their folders' if n != 1 else 'its folder'} from {self.runs_dir_shown()} "
                  f"with everything in {'them' if n != 1 else 'it'}. It cannot be undone."
                  + "".join(f"\n{note}." for note in notes))
        self.app.push_screen(ConfirmScreen(f"Delete {n} marked run{'s' if n != 1 else ''}?", detail,
                                           confirm="Delete", danger=True),
                             lambda yes: self.delete(doomed) if yes else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-delete")
    def delete(self, entries: list[RunEntry]) -> None:
        done, failed = [], []
        for entry in entries:
            try:
                self.app.store.remove(entry.id)  # type: ignore[attr-defined]
            except (StoreError, OSError) as e:
                failed.append(str(e))
            else:
                done.append(entry.id)
        self.app.call_from_thread(self.deleted, done, failed)
        self.poll(force=True)

    def deleted(self, done: list[str], failed: list[str]) -> None:
        if done and self.marked & set(done):
            self.marked -= set(done)
            self.save_marks()
        for message in failed:
            self.notify(message, title="not deleted", severity="error", timeout=8)
        if done:
            self.notify(f"deleted {done[0]}" if len(done) == 1 else f"deleted {len(done)} runs")

    # --- the filter -----------------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#filter-line").display = True
        self.query_one("#filter", Input).focus()
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        self.query_filter, self.filter_errors = parse_filter(self.filter)
        error = self.query_one("#filter-error", Static)
        error.update(Text("; ".join(self.filter_errors), style="red"))
        error.display = bool(self.filter_errors)
        self.refresh_table()
        self.refresh_bindings()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        self.query_one("#filter-line").display = bool(self.filter)
        self.query_one("#runs", DataTable).focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        self.query_one("#filter-line").display = False
        self.filter, self.query_filter, self.filter_errors = "", Filter(), []
        self.query_one("#filter-error", Static).display = False
        self.refresh_table()
        self.query_one("#runs", DataTable).focus()
        self.refresh_bindings()

    def action_reload(self) -> None:
        self.poll(force=True)
