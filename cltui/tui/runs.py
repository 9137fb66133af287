"""The Runs screen (home): every run in the runs directory, newest first, kept up to date while runs go.

A thread worker looks at the runs directory every second; it re-reads only the run.json files whose
size or modification time changed (and checks that running runs' workers are still alive), then posts
one message that the screen applies. A run.json that cannot be read is one "unreadable" row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from cltui.tui.confirm import ConfirmScreen
from cltui.tui.formats import STATUS_STYLE, fmt_duration, fmt_pct, fmt_signed, fmt_value, section, shown_path
from cltui.tui.header import Header
from cltui.tui.tables import RunsTable
from cltui.tui.workers import ReportsWorkerErrors
from core.store import RUN_JSON, RunEntry, StoreError, pid_alive, read_run_json

Stamp = tuple[int, int] | None  # (mtime_ns, size) of a run.json


def contexts_done(data: dict[str, Any]) -> str:
    matrix = data.get("acc_matrix") if isinstance(data.get("acc_matrix"), list) else []
    total = section(section(data, "config"), "benchmark").get("contexts")
    return f"{len(matrix)}/{total}" if isinstance(total, int) else str(len(matrix))


def status_text(entry: RunEntry) -> Text:
    status = entry.status
    label = f"running {contexts_done(entry.data)}" if status == "running" and entry.data else status
    return Text(label, style=STATUS_STYLE.get(status, "magenta"))


def ellipsize(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


@dataclass
class Columns:
    """Which columns fit the terminal: the preset column goes first (the id names the preset too), then
    the id is shortened."""

    preset: bool
    id_width: int


def plan_columns(width: int, entries: list[RunEntry]) -> Columns:
    def longest(values: list[str], header: str) -> int:
        return max([len(header), *map(len, values)]) + 2  # + the cells' padding

    rows = [cells(e, Columns(True, 999)) for e in entries]
    fixed = 3 + sum(longest([str(r[k]) for r in rows], name) for k, name in enumerate(COLUMN_NAMES) if k > 2)
    preset_width = longest([str(r[2]) for r in rows], "preset")
    id_natural = max([len(e.id) for e in entries] + [3])
    room = width - fixed - 4  # the scroll bar and a margin
    if room - preset_width >= min(id_natural, 28) + 2:
        return Columns(True, max(12, room - preset_width - 2))
    return Columns(False, max(12, room - 2))


COLUMN_NAMES = ("", "run", "preset", "method", "scenario", "status", "acc %", "duration")


def cells(entry: RunEntry, columns: Columns, marked: bool = False) -> tuple[Any, ...]:
    # Text, not str: the table would read a str as markup, and a "[" in a name would break it.
    mark = Text("●" if marked else " ", style="bold orange1")
    run = Text(ellipsize(entry.id, columns.id_width))
    dash = Text("–")
    if entry.data is None:
        row: tuple[Any, ...] = (mark, run, dash, dash, dash, status_text(entry), dash, dash)
    else:
        d = entry.data
        cfg = section(d, "config")
        row = (mark, run, Text(str(d.get("preset") or "–")), Text(str(section(cfg, "method").get("name") or "–")),
               Text(str(cfg.get("scenario") or "–")), status_text(entry),
               Text(fmt_pct(section(d, "metrics").get("final_avg_acc")), justify="right"),
               Text(fmt_duration(section(d, "timing").get("total_s")), justify="right"))
    return row if columns.preset else row[:2] + row[3:]


def summary(entry: RunEntry) -> Text:
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
    text.append("\n")
    error = section(d, "error")
    metrics = section(d, "metrics")
    if entry.status == "running":
        text.append(f"training: {contexts_done(d)} contexts evaluated · enter follows it live", style="cyan")
    elif entry.status == "stale":
        text.append("its worker is gone without finishing (killed, or the machine went down)", style="magenta")
    elif entry.status == "failed" and error:
        text.append(f"error: {error.get('message', '')}", style="red")
    elif metrics:
        text.append(f"final acc {fmt_pct(metrics.get('final_avg_acc'))}% · incremental "
                    f"{fmt_pct(metrics.get('avg_incremental_acc'))}% · forgetting "
                    f"{fmt_pct(metrics.get('avg_forgetting'))}% · BWT {fmt_signed(metrics.get('bwt'))} · "
                    f"FWT {fmt_signed(metrics.get('fwt'))}")
        if entry.status == "cancelled":
            text.append(f" · cancelled: {error.get('message', '')}", style="yellow")
    return text


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


class RunsScreen(ReportsWorkerErrors, Screen[None]):
    """Home: the table of runs; the keys in the footer open, compose, mark, compare, delete, filter."""

    BINDINGS: ClassVar = [
        Binding("n", "compose", "New"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("q", "app.quit", "Quit"),
    ]
    POLL_S = 1.0

    @dataclass
    class Scanned(Message):
        """The runs directory as the poller found it."""

        runs: dict[str, tuple[Stamp, RunEntry]] = field(default_factory=dict)
        alive: dict[str, bool] = field(default_factory=dict)  # running runs: is the worker still there

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, tuple[Stamp, RunEntry]] = {}
        self.alive: dict[str, bool] = {}
        self.marked: set[str] = set()
        self.filter = ""
        self.columns: Columns | None = None
        self.shown: list[str] = []  # ids in table order
        self.row_cells: dict[str, tuple[Any, ...]] = {}
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Input(id="filter", placeholder="/ filter: part of an id, preset, method, scenario or status",
                    compact=True)
        yield Static(id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "loading runs…"
        self.query_one("#filter", Input).display = False
        self.query_one(DataTable).focus()
        self.poll(force=True)
        self.set_interval(self.POLL_S, self.poll)

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.poll(force=True)  # back from compose, live, detail: a run may have started or ended

    # --- polling ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-poll")
    def poll(self, force: bool = False) -> None:
        runs = scan(self.app.store.root, dict(self.runs), force)  # type: ignore[attr-defined]
        alive = {run_id: pid_alive(e.data.get("pid")) for run_id, (_, e) in runs.items()
                 if e.data is not None and e.data.get("status") == "running"}
        self.post_message(self.Scanned(runs, alive))

    @on(Scanned)
    def scanned(self, message: Scanned) -> None:
        changed = (not self.loaded or message.runs.keys() != self.runs.keys() or message.alive != self.alive
                   or any(message.runs[k][1] is not self.runs[k][1] for k in message.runs))
        self.runs, self.alive, self.loaded = message.runs, message.alive, True
        self.marked &= set(self.runs)
        if changed:
            self.refresh_table()

    # --- the table ----------------------------------------------------------------------------------

    def entries(self) -> list[RunEntry]:
        return [entry for _, entry in sorted((e for e in self.runs.values()), key=lambda s: s[1].id, reverse=True)]

    def visible(self, entries: list[RunEntry]) -> list[RunEntry]:
        if not self.filter:
            return entries
        needle = self.filter.lower()
        return [e for e in entries if any(needle in str(c).lower() for c in cells(e, Columns(True, 999))[1:])]

    def refresh_table(self, rebuild: bool = False) -> None:
        """Bring the table in line with `self.runs`: rows whose cells changed are updated in place; a new
        column plan or a different set of rows rebuilds it, keeping the cursor on the same run."""
        table = self.query_one("#runs", DataTable)
        entries = self.entries()
        shown = self.visible(entries)
        columns = plan_columns(table.size.width or self.app.size.width, entries)
        if columns != self.columns or rebuild:
            self.columns = columns
            table.clear(columns=True)
            for name in COLUMN_NAMES:
                if name != "preset" or columns.preset:
                    label = Text(name, justify="right" if name in ("acc %", "duration") else "left")
                    table.add_column(label, key=name or "mark")
            self.shown = []
        ids = [e.id for e in shown]
        if ids != self.shown:
            current = self.current_id()
            table.clear()
            self.row_cells = {}
            for e in shown:
                self.row_cells[e.id] = cells(e, columns, e.id in self.marked)
                table.add_row(*self.row_cells[e.id], key=e.id)
            self.shown = ids
            if current in ids:
                table.move_cursor(row=ids.index(current), animate=False)
        else:
            keys = [c.key for c in table.ordered_columns]
            for e in shown:
                new = cells(e, columns, e.id in self.marked)
                old = self.row_cells.get(e.id)
                if new != old:
                    for k, value in enumerate(new):
                        if old is None or old[k] != value:
                            table.update_cell(e.id, keys[k], value)
                    self.row_cells[e.id] = new
        self.update_titles(entries)
        self.update_preview()

    def update_titles(self, entries: list[RunEntry]) -> None:
        running = sum(e.status == "running" for e in entries)
        parts = [f"{len(entries)} run{'s' if len(entries) != 1 else ''} in {self.runs_dir_shown()}"]
        if running:
            parts.append(f"{running} running")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if self.filter:
            parts.append(f"{len(self.shown)} match “{self.filter}”")
        self.sub_title = " · ".join(parts)

    def runs_dir_shown(self) -> str:
        return shown_path(self.app.runs_dir)  # type: ignore[attr-defined]

    def current_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def current(self) -> RunEntry | None:
        run_id = self.current_id()
        return self.runs[run_id][1] if run_id in self.runs else None

    def update_preview(self) -> None:
        entry = self.current()
        preview = self.query_one("#preview", Static)
        if entry is not None:
            preview.update(summary(entry))
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
        if action == "clear_filter":
            return bool(self.filter) or self.query_one("#filter", Input).display
        return True

    @on(DataTable.RowSelected)
    def selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        entry = self.current()
        if entry is None:
            return
        if entry.data is None:
            self.notify(entry.error or "run.json cannot be read", title="unreadable run", severity="error",
                        timeout=8)
            return
        if entry.status == "running":
            try:
                from cltui.tui.live import LiveScreen
            except ImportError:
                pass
            else:
                self.app.push_screen(LiveScreen(entry.path))
                return
        from cltui.tui.detail import DetailScreen

        self.app.push_screen(DetailScreen(entry.path))

    def action_compose(self) -> None:
        try:
            from cltui.tui.compose import ComposeScreen
        except ImportError:
            self.notify("composing runs is not available in this build", severity="warning")
            return
        self.app.push_screen(ComposeScreen(self.app.runs_dir))  # type: ignore[attr-defined]

    def action_mark(self) -> None:
        run_id = self.current_id()
        if run_id is None:
            return
        self.marked ^= {run_id}
        self.refresh_table()
        table = self.query_one("#runs", DataTable)
        table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_compare(self) -> None:
        marked = [self.runs[i][1] for i in sorted(self.marked) if i in self.runs]
        readable = [e for e in marked if e.data is not None]
        if len(readable) < 2:
            self.notify("mark two runs or more with space, then press c", title="compare", severity="warning")
            return
        if len(readable) < len(marked):
            self.notify(f"{len(marked) - len(readable)} unreadable run(s) left out", severity="warning")
        from cltui.tui.compare import CompareScreen

        self.app.push_screen(CompareScreen([e.path for e in readable]))

    def action_delete(self) -> None:
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
                             lambda yes: self.delete(entry) if yes else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-delete")
    def delete(self, entry: RunEntry) -> None:
        try:
            self.app.store.remove(entry.id)  # type: ignore[attr-defined]
        except (StoreError, OSError) as e:
            self.app.call_from_thread(self.notify, str(e), title="not deleted", severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify, f"deleted {entry.id}")
        self.poll(force=True)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        self.refresh_table()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(self.filter)
        self.query_one("#runs", DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter = ""
        self.refresh_table()
        self.query_one("#runs", DataTable).focus()

    def action_reload(self) -> None:
        self.poll(force=True)
