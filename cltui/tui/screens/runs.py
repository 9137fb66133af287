"""The Runs screen (home): every run in the runs directory, kept up to date while runs go.

A thread worker looks at the runs directory every second; it re-reads only the run.json files whose
size or modification time changed (and checks that running runs' workers are still alive), builds their
table rows (cltui.tui.state.runquery: short id, preset, method, scenario, seed, iterations, overrides, status,
accuracy, duration) and posts one message that the screen applies. A run.json that cannot be read is one
"unreadable" row.

The table: newest first; `o` cycles the sort column and `O` reverses it (or click a column's header: again
reverses), the header marks it ▲ / ▼. `g` groups the runs by setup (preset, scenario, method, overrides,
iterations: runs that differ only by seed) and back; `G` chooses the grouping keys from the columns. One row
per group with its keys' values, n, mean ± SEM of the final score over its finished runs and the mean
duration; enter or right opens a group, left closes it. The columns follow what differs among the runs shown
(cltui.tui.state.runs_table); `C` picks them by hand for the session. `acc %` is the final average accuracy
over all contexts; a run still going shows the average over the contexts seen so far, marked `seen` (`62.1
seen`). `/` filters
with fields (`method:er seed:1 acc>90 status:failed iterations:50`, see runquery). Space marks the run under
the cursor (marks are kept in `<runs>/.cltui/marks.json`); `d` deletes the marked runs shown (else the one
under the cursor), `c` compares the marked runs shown. Which columns fit a narrow terminal, the cells and the
preview are drawn without Textual (cltui.tui.state.runs_table); the folder is read through `RunStore`
(cltui.tui.state.runs_folder) and the marks kept through the store's resolver (cltui.tui.state.choices).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import ColumnKey

from cltui.tui.screens.base import ReachesCltui
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.pick import DEFAULT, PickScreen
from cltui.tui.state.choices import read_marks, write_marks
from cltui.tui.state.formats import shown_path
from cltui.tui.state.runquery import (
    FILTER_HELP,
    GROUP_KEYS,
    GROUPABLE,
    SORT_COLUMNS,
    Filter,
    Group,
    PresetConfigs,
    Row,
    config_keys,
    group_rows,
    parse_filter,
    row_of,
    sort_rows,
)
from cltui.tui.state.runs_folder import Stamp, scan
from cltui.tui.state.runs_table import (
    HEADERS,
    PICKABLE,
    RIGHT,
    Plan,
    differing,
    group_cells,
    group_summary,
    natural_widths,
    plan_columns,
    run_cells,
    summary,
)
from cltui.tui.widgets.header import Header
from cltui.tui.widgets.tables import HomeTable
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.lock import pid_alive
from core.runs.paths import StoreError
from core.runs.store import RunEntry

# --- the screen ---------------------------------------------------------------------------------------


class RunsScreen(ReachesCltui, ReportsWorkerErrors, Screen[None]):
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
        Binding("G", "group_keys", "Group by…", show=False),
        Binding("C", "columns", "Columns…", show=False),
        Binding("S", "studies", "Studies"),
        Binding("r", "reload", "Reload", show=False),
    ]
    DEFAULT_CSS = "RunsScreen #runs { scrollbar-size-vertical: 1; }"  # a cell more for the columns at 80
    HELP_NOTES = FILTER_HELP  # the `?` screen shows the filter syntax under the keys
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
        self.group_by: tuple[str, ...] | None = None
        self.group_keys: tuple[str, ...] = GROUP_KEYS  # what `g` groups by (`G` changes it)
        self.columns_choice: tuple[str, ...] | None = None  # the columns picked with `C`; None: chosen to fit
        self.expanded: set[str] = set()  # group keys
        self.groups: dict[str, Group] = {}
        self.plan: Plan | None = None
        self.header_state: tuple[str, bool] | None = None
        self.shown: list[str] = []  # row keys (run ids, group keys) in table order
        self.row_cells: dict[str, tuple[Any, ...]] = {}  # what the table holds
        self.cell_cache: dict[str, tuple[Any, ...]] = {}
        self.widths_key: tuple[Any, ...] | None = None
        self.widths: tuple[dict[str, int], set[str]] = ({}, set())
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
        self.marked = read_marks(self.cltui.runs_dir)
        self.poll(force=True)
        self.set_interval(self.POLL_S, self.poll)

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.poll(force=True)  # back from compose, live, detail: a run may have started or ended

    # --- polling ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-poll")
    def poll(self, force: bool = False) -> None:
        before, rows_before = dict(self.runs), dict(self.rows)
        runs = scan(self.cltui.store, before, force)
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
        self.visible_rows = visible
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
        table = self.query_one("#runs", HomeTable)
        layout = self.layout_rows()
        plan = plan_columns(table.size.width or self.app.size.width, *self.measure(layout),
                            keep=self.group_by or (), only=self.columns_choice)
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
                column = table.columns[ColumnKey(key)]
                column.label = self.header_label(key)
                column.width = max(plan.width(key), column.label.cell_len)  # the old arrow's room goes back
            table.refresh()
        cells = {key: self.cells_of(key, item, plan, indent, marks) for key, item, indent in layout}
        keys = [key for key, _, _ in layout]
        if keys != self.shown:
            table.show_rows(keys, cells)
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

    def measure(self, layout: list[tuple[str, Row | Group, bool]]) -> tuple[dict[str, int], set[str]]:
        """The widest cell of each column among the rows shown, and the columns whose value differs among the
        runs that pass the filter; measured again only when the runs, the filter, the grouping or the open
        groups changed."""
        key = (self.rows, self.filter, self.group_by, frozenset(self.expanded))
        if key != self.widths_key:
            runs = [item for _, item, _ in layout if isinstance(item, Row)]
            groups = [item for _, item, _ in layout if isinstance(item, Group)]
            indented = [k for k, item, indent in layout if indent]
            self.widths_key = key
            self.widths = natural_widths(runs, groups, indented), differing(self.visible_rows)
        return self.widths

    def header_label(self, key: str) -> Text:
        label = HEADERS[key] + ((" ▼" if self.descending else " ▲") if key == self.sort else "")
        return Text(label, justify="right" if key in RIGHT else "left")

    def cells_of(self, key: str, item: Row | Group, plan: Plan, indent: bool, marks: set[str]) -> tuple[Any, ...]:
        """A row's cells, made again only when the run, its mark, the group or the columns changed."""
        state = (item, plan, indent, key in marks, key in self.expanded)
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
            parts.append("by setup" if self.group_by == GROUP_KEYS else "by " + "+".join(
                HEADERS[k] for k in self.group_by))
        marks = self.marks()
        if marks:
            parts.append(f"{len(marks)} marked")
        if self.filter_errors:  # a count would pass for the whole filter's: say it is not read whole
            n = len(self.filter_errors)
            parts.append(f"filter: {n} term{'s' if n != 1 else ''} not understood (in red below)")
        elif self.filter:
            parts.append(f"{len(self.visible_ids)} match “{self.filter}”")
        self.sub_title = " · ".join(parts)

    def runs_dir_shown(self) -> str:
        return shown_path(self.cltui.runs_dir)

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
        if action in ("sort", "reverse", "group", "group_keys", "columns"):
            return bool(self.rows)  # nothing to sort, group or show in an empty folder: hidden
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
        self.app.push_screen(ComposeScreen(self.cltui.runs_dir))

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
        """Group by the grouping keys (by default a setup: runs that differ only by seed), or stop grouping."""
        if not self.rows:
            return
        self.set_grouping(None if self.group_by else self.group_keys)

    def set_grouping(self, keys: tuple[str, ...] | None) -> None:
        self.group_by = keys or None
        self.expanded = set()
        self.refresh_table()
        if self.group_by:
            named = ", ".join(HEADERS[k] for k in self.group_by)
            what = f"setup ({named}: runs that differ only by seed)" if self.group_by == GROUP_KEYS else named
            self.notify(f"grouped by {what}; enter opens a group, G picks the keys", timeout=4)

    def action_group_keys(self) -> None:
        """`G`: choose the grouping keys from the columns; applying them groups by them."""
        if not self.rows:
            return
        chosen = self.group_by or self.group_keys
        options = [(k, HEADERS[k], k in chosen, False) for k in GROUPABLE]

        def picked(answer: tuple[str, ...] | None) -> None:
            if answer is None:
                return
            keys = tuple(k for k in GROUPABLE if k in (GROUP_KEYS if answer == DEFAULT else answer))
            if keys:
                self.group_keys = keys
            self.set_grouping(keys or None)

        self.app.push_screen(PickScreen("Group the runs by", options, "one group per combination of these "
                                        "columns' values; d: the default, a setup (runs that differ only by "
                                        "seed); none ticked: no groups"), picked)

    def action_columns(self) -> None:
        """`C`: pick the columns shown (for the session); the default chooses them by what differs."""
        if not self.rows or self.plan is None:
            return
        shown = set(self.plan.keys)
        keys = set(self.group_by or ())
        options = [(k, HEADERS[k] + (" (a grouping key)" if k in keys else ""), k in shown, k in keys)
                   for k in PICKABLE]

        def picked(answer: tuple[str, ...] | None) -> None:
            if answer is None:
                return
            self.columns_choice = None if answer == DEFAULT else answer
            self.refresh_table()

        self.app.push_screen(PickScreen("Columns", options, "d: the default, the columns that tell the runs "
                                        "shown apart, as many as fit"), picked)

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
                write_marks(self.cltui.runs_dir, self.marked & self.rows.keys())
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
                self.cltui.store.remove(entry.id)
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
        self.query_filter, self.filter_errors = parse_filter(self.filter, config_keys(self.rows.values()))
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
