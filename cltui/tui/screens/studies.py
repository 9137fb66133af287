"""The Studies screen: every study in <runs-dir>/studies (what `cltui compare` and `cltui sweep` make), its
settings with the overrides, its progress while it runs, and its table of mean ± SEM per method over seeds
beside the published figure where there is one. `enter` or `c` opens the compare view of its finished runs;
`d` deletes the highlighted study after a confirmation (its runs stay).

A thread worker looks every second; it re-reads only the study files and run.json files whose size or
modification time changed (and checks that running runs' workers are still alive), then posts one message that
the screen applies. A study file that cannot be read is one "unreadable" row.
"""

from __future__ import annotations

import json
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
from textual.widgets import DataTable, Footer, Static

from cltui.tui.screens.base import ReachesCltui
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.state.formats import STATUS_STYLE, fmt_duration, fmt_pct, shown_path
from cltui.tui.widgets.charts import SweepChart
from cltui.tui.widgets.header import Header
from cltui.tui.widgets.tables import EndsTable
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.lock import pid_alive
from core.runs.paths import RUN_JSON, StoreError, read_bounded
from core.runs.record import read_run_json
from core.runs.store import RunStore, default_runs_dir
from core.studies import study as studies

Stamp = tuple[int, int] | None  # (mtime_ns, size) of a file


@dataclass
class StudyFile:
    """A study file as the poller last read it: the study (None when unreadable, with `error` saying why)."""

    id: str
    stamp: Stamp
    study: dict[str, Any] | None
    error: str | None = None


@dataclass
class Progress:
    finished: int
    running: int
    total: int

    @property
    def status(self) -> str:
        if self.running:
            return "running"
        return "finished" if self.finished == self.total else "unfinished"

    def text(self) -> str:
        return f"{self.finished}/{self.total} finished" + (f" · {self.running} running" if self.running else "")


def stamp_of(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def read_study(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return studies.parse_study(json.loads(read_bounded(path)), path), None
    except StoreError as e:
        return None, str(e)
    except (OSError, ValueError, RecursionError) as e:
        return None, f"{path}: unreadable ({str(e)[:120]})"


def scan(store: RunStore, files: dict[str, StudyFile], runs: dict[str, tuple[Stamp, dict[str, Any] | None]],
         force: bool) -> tuple[dict[str, StudyFile], dict[str, tuple[Stamp, dict[str, Any] | None]]]:
    """The study files and the run.json of every run they name; what did not change is reused."""
    new_files: dict[str, StudyFile] = {}
    new_runs: dict[str, tuple[Stamp, dict[str, Any] | None]] = {}
    try:
        paths = studies.study_files(store)  # regular files of a real studies folder (core/runs/paths.py `inside`)
    except (OSError, StoreError):
        paths = []
    for path in paths:
        stamp = stamp_of(path)
        old = files.get(path.stem)
        if old is not None and old.stamp == stamp and not force:
            new_files[path.stem] = old
        else:
            study, error = read_study(path)
            new_files[path.stem] = StudyFile(path.stem, stamp, study, error)
    for entry in new_files.values():
        for run in (entry.study or {}).get("runs", []):
            run_id = run.get("run_id")
            if not run_id or run_id in new_runs:
                continue
            try:
                run_dir = store.run_dir(run_id)
            except StoreError:
                new_runs[run_id] = (None, None)
                continue
            stamp = stamp_of(run_dir / RUN_JSON)
            old_run = runs.get(run_id)
            if old_run is not None and old_run[0] == stamp and not force:
                new_runs[run_id] = old_run
                continue
            try:
                new_runs[run_id] = (stamp, read_run_json(run_dir) if stamp is not None else None)
            except StoreError:
                new_runs[run_id] = (stamp, None)
    return new_files, new_runs


# The studies table's columns (key, title, right-aligned), and the order they are left out in when the screen
# is narrow: the id names the preset and the scenario, and the line under the table names them all. Still too
# wide, the overrides and then the study ids are shortened (…), never the runs and the status.
COLUMNS = (("study", "study", False), ("preset", "preset", False), ("scenario", "scenario", False),
           ("methods", "methods", False), ("seeds", "seeds", True), ("overrides", "overrides", False),
           ("runs", "runs", True), ("status", "status", False))
DROP = ("scenario", "preset", "seeds", "methods")
SHORTEN = ("overrides", "study")
# The study's table: (title, row key, signed).
METRICS = (("final acc %", "final_avg_acc", False), ("forgetting %", "avg_forgetting", False),
           ("BWT", "bwt", True))


def mean_sem_text(mean: Any, sem: Any, signed: bool = False) -> str:
    if not isinstance(mean, (int, float)):
        return "–"
    text = f"{100 * mean:+.1f}" if signed else fmt_pct(mean)
    return text + (f" ± {100 * sem:.1f}" if isinstance(sem, (int, float)) else "")


def overrides_text(study: dict[str, Any]) -> str:
    return " ".join(map(str, study.get("overrides") or [])) or "–"


class StudiesTable(EndsTable):
    """The studies; `enter` compares the finished runs of the one under the cursor (as `c` does); Home / End go
    to the first / last study, as on the runs table."""

    BINDINGS: ClassVar = [Binding("enter", "select_cursor", "Compare", show=False)]


class StudiesScreen(ReachesCltui, ReportsWorkerErrors, Screen[None]):
    """Every study; the highlighted one's settings and table; `enter`/`c` compares its finished runs."""

    DEFAULT_CSS = """
    StudiesScreen #studies {
        height: auto;
        max-height: 40%;
        border: none;
    }
    StudiesScreen #settings {
        height: auto;
        max-height: 4;
        padding: 0 1;
        border-top: solid $panel-lighten-2;
        background: $boost;
    }
    StudiesScreen #table {
        height: auto;
        max-height: 1fr;
    }
    StudiesScreen #empty {
        padding: 1 2;
        height: auto;
    }
    """
    BINDINGS: ClassVar = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "compare", "Compare runs"),
        Binding("d", "delete", "Delete"),
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+q", "app.quit", "Quit", show=False, priority=True),  # the app's, not shown twice
    ]
    POLL_S = 1.0

    @dataclass
    class Scanned(Message):
        files: dict[str, StudyFile] = field(default_factory=dict)
        runs: dict[str, tuple[Stamp, dict[str, Any] | None]] = field(default_factory=dict)
        alive: dict[str, bool] = field(default_factory=dict)

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, StudyFile] = {}
        self.runs: dict[str, tuple[Stamp, dict[str, Any] | None]] = {}
        self.alive: dict[str, bool] = {}
        self.shown: list[str] = []  # study ids in table order, newest first
        self.widths: dict[str, int] = {}  # the columns shown and the width of their text
        self.row_cells: dict[str, tuple[Any, ...]] = {}
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield StudiesTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Static(id="settings")
        yield DataTable(id="table", cursor_type="none", zebra_stripes=True)
        yield SweepChart(id="sweep-chart")
        yield Static(id="empty")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "loading studies…"
        self.query_one("#table", DataTable).can_focus = False
        self.query_one("#empty", Static).display = False
        self.query_one(SweepChart).display = False
        self.query_one("#studies", DataTable).focus()
        self.poll(force=True)
        self.set_interval(self.POLL_S, self.poll)

    # --- polling ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="studies-poll")
    def poll(self, force: bool = False) -> None:
        store = self.cltui.store
        files, runs = scan(store, dict(self.files), dict(self.runs), force)
        alive = {run_id: pid_alive(record.get("pid")) for run_id, (_, record) in runs.items()
                 if record is not None and record.get("status") == "running"}
        self.post_message(self.Scanned(files, runs, alive))

    @on(Scanned)
    def scanned(self, message: Scanned) -> None:
        changed = (not self.loaded or message.files.keys() != self.files.keys() or message.alive != self.alive
                   or any(message.files[k] is not self.files[k] for k in message.files)
                   or message.runs.keys() != self.runs.keys()
                   or any(message.runs[k] is not self.runs[k] for k in message.runs))
        self.files, self.runs, self.alive, self.loaded = message.files, message.runs, message.alive, True
        if changed:
            self.refresh_all()

    # --- what a study shows -------------------------------------------------------------------------

    def records(self, study: dict[str, Any]) -> list[dict[str, Any] | None]:
        return [self.runs.get(run.get("run_id") or "", (None, None))[1] for run in study["runs"]]

    def progress(self, study: dict[str, Any]) -> Progress:
        finished = running = 0
        for run, record in zip(study["runs"], self.records(study), strict=True):
            status = (record or {}).get("status")
            finished += status == "finished"
            running += status == "running" and self.alive.get(run.get("run_id") or "", False)  # else stale
        return Progress(finished, running, len(study["runs"]))

    def cells(self, entry: StudyFile) -> dict[str, Text]:
        if entry.study is None:
            return {"study": Text(entry.id), "status": Text("unreadable", style=STATUS_STYLE["unreadable"])}
        s = entry.study
        progress = self.progress(s)
        return {"study": Text(entry.id), "preset": Text(str(s.get("preset") or "–")),
                "scenario": Text(str(s.get("scenario") or "–")), "methods": Text(",".join(s["methods"])),
                "seeds": Text(str(s.get("seeds")), justify="right"), "overrides": Text(overrides_text(s)),
                "runs": Text(f"{progress.finished}/{progress.total}", justify="right"),
                "status": Text(progress.status, style=STATUS_STYLE.get(progress.status, "yellow"))}

    def plan_columns(self, width: int, rows: list[dict[str, Text]]) -> dict[str, int]:
        """The columns that fit in `width`, in order, each with the width of its text (shortened or not)."""
        natural = {key: max([len(title), *(r[key].cell_len for r in rows if key in r)]) + 2  # + cell padding
                   for key, title, _ in COLUMNS}
        room = width - 2  # the scroll bar
        kept = [key for key, _, _ in COLUMNS]
        for key in DROP:
            if sum(natural[k] for k in kept) <= room:
                break
            kept.remove(key)
        for key in SHORTEN:
            over = sum(natural[k] for k in kept) - room
            if over <= 0:
                break
            title = next(t for k, t, _ in COLUMNS if k == key)
            natural[key] = max(natural[key] - over, len(title) + 2)
        return {key: natural[key] - 2 for key in kept}

    # --- the tables ---------------------------------------------------------------------------------

    def current_id(self) -> str | None:
        table = self.query_one("#studies", DataTable)
        if not self.shown or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def current(self) -> StudyFile | None:
        study_id = self.current_id()
        return self.files.get(study_id) if study_id is not None else None

    def refresh_all(self) -> None:
        table = self.query_one("#studies", DataTable)
        entries = sorted(self.files.values(), key=lambda e: e.id, reverse=True)
        rows = {e.id: self.cells(e) for e in entries}
        widths = self.plan_columns(table.size.width or self.app.size.width, list(rows.values()))
        columns = tuple(widths)
        for cells in rows.values():
            for key, text in cells.items():
                if key in widths and text.cell_len > widths[key]:  # shortened to fit: the line below has it all
                    cells[key] = text.copy()
                    cells[key].truncate(widths[key], overflow="ellipsis")
        ids = [e.id for e in entries]
        if widths != self.widths or ids != self.shown:
            current = self.current_id()
            table.clear(columns=True)
            for key, title, right in COLUMNS:
                if key in columns:
                    table.add_column(Text(title, justify="right" if right else "left"), key=key)
            self.row_cells = {}
            for study_id, cells in rows.items():
                self.row_cells[study_id] = tuple(cells.get(k, Text("")) for k in columns)
                table.add_row(*self.row_cells[study_id], key=study_id)
            self.widths, self.shown = widths, ids
            # Its height from its rows (the header and one line each), capped by max-height: a DataTable measures
            # itself when idle, and under load that came after the screen's layout, which kept height 0.
            table.styles.height = len(ids) + 1
            if current in ids:
                table.move_cursor(row=ids.index(current), animate=False)
        else:
            for study_id, cells in rows.items():
                new = tuple(cells.get(k, Text("")) for k in columns)
                old = self.row_cells.get(study_id)
                if new != old:
                    for k, key in enumerate(columns):
                        if old is None or old[k] != new[k]:
                            table.update_cell(study_id, key, new[k])
                    self.row_cells[study_id] = new
        running = sum(e.study is not None and self.progress(e.study).running > 0 for e in entries)
        where = shown_path(self.cltui.runs_dir)
        self.sub_title = (f"{len(entries)} stud{'y' if len(entries) == 1 else 'ies'} in {where}"
                          + (f" · {running} running" if running else ""))
        empty = not entries
        for selector in ("#studies", "#settings", "#table"):
            self.query_one(selector).display = not empty
        self.query_one("#empty", Static).display = empty
        if empty:
            self.query_one("#empty", Static).update(self.empty_text())
        self.update_study()

    def empty_text(self) -> Text:
        runs_dir = self.cltui.runs_dir
        try:
            default = Path(runs_dir).resolve() == default_runs_dir().resolve()
        except OSError:
            default = False
        flag = "" if default else f" --runs-dir {shown_path(Path(runs_dir))}"
        text = Text(f"no studies in {shown_path(Path(runs_dir))} yet.\n\n", style="bold")
        text.append("A study runs every method × seed of a preset and makes their table (mean ± SEM per method):\n\n",
                    style="")
        text.append(f"  cltui compare split-digits --methods none,ewc,er --seeds 3{flag}\n\n", style="cyan")
        text.append("It shows here as it runs; escape goes back to the runs.", style="dim")
        return text

    def update_study(self) -> None:
        entry = self.current()
        settings = self.query_one("#settings", Static)
        table = self.query_one("#table", DataTable)
        table.clear(columns=True)
        if entry is None:
            settings.update("")
            table.display = False
            return
        if entry.study is None:
            settings.update(Text(entry.error or "the study file cannot be read", style="red"))
            table.display = False
            return
        s = entry.study
        table.display = True
        chart = self.query_one(SweepChart)
        chart.display = s.get("kind") == "sweep"
        if chart.display:
            self.show_sweep(s, settings, table, chart)
            return
        progress = self.progress(s)
        line = Text(no_wrap=False)
        line.append(f"{s.get('preset')} · {s.get('scenario')}-IL · {s.get('seeds')} "
                    f"seed{'s' if s.get('seeds') != 1 else ''} · {', '.join(s['methods'])}\n")
        line.append(f"overrides {overrides_text(s)}" if s.get("overrides") else "no overrides", style="bold")
        line.append(" · ")
        line.append(progress.text(), style=STATUS_STYLE.get(progress.status, "yellow"))
        rows = studies.table_of(s, self.records(s))
        with_published = any(r["published"] is not None for r in rows)
        line.append("\nmean ± SEM over finished runs · " + ("paper %: the published final accuracy" if with_published
                    else "no published figure for this protocol"), style="dim")
        settings.update(line)
        for title, right in (("method", False), ("n", True), *((m[0], True) for m in METRICS), ("s/run", True),
                             *((("paper %", True),) if with_published else ())):
            table.add_column(Text(title, justify="right" if right else "left"), key=title)
        for r in rows:
            cells: list[Text] = [Text(r["method"], style="bold"), Text(f"{r['runs']}/{r['of']}", justify="right")]
            cells += [Text(mean_sem_text(r[key], r[f"{key}_sem"], signed), justify="right")
                      for _, key, signed in METRICS]
            cells.append(Text(fmt_duration(r["time_s"]).removesuffix(" s"), justify="right"))
            if with_published:
                cells.append(Text("–" if r["published"] is None else f"{r['published']:g}", justify="right"))
            table.add_row(*cells, key=r["method"])
        table.styles.height = len(rows) + 1  # as the studies table's, see refresh_all

    def show_sweep(self, s: dict[str, Any], settings: Static, table: DataTable, chart: SweepChart) -> None:
        """A sweep (`cltui sweep`): per swept key, validation and test accuracy (mean ± SEM) at each value, the
        chosen point bold, and the first key's curve; what it was chosen on and the pruned trials."""
        from core.studies import sweep
        records = self.records(s)
        progress = self.progress(s)
        chosen = sweep.best(self.cltui.store, s, records)
        line = Text(no_wrap=False)
        line.append(f"sweep ({s.get('search', 'grid')}) of {', '.join(s['methods'])} · {s.get('preset')} · "
                    f"{s.get('scenario')}-IL · {s.get('seeds')} seed{'s' if s.get('seeds') != 1 else ''}\n")
        line.append(f"overrides {overrides_text(s)}" if s.get("overrides") else "no overrides", style="bold")
        line.append(" · ")
        line.append(progress.text(), style=STATUS_STYLE.get(progress.status, "yellow"))
        pruned = s.get("pruned") or {}
        line.append(f"\n{sweep.choice_line(chosen)}" + (f" · {len(pruned)} trials pruned" if pruned else ""),
                    style="dim")
        settings.update(line)
        for title, right in (("value", False), ("validation %", True), ("test %", True), ("n", True)):
            table.add_column(Text(title, justify="right" if right else "left"), key=title)
        for i, grid in enumerate(s.get("grid") or []):
            key = grid.partition("=")[0]
            rows = sweep.axis_table(self.cltui.store, s, key, records)
            for r in rows:
                bold = chosen is not None and chosen["params"].get(key) == r["value"]
                style = "bold" if bold else ""
                table.add_row(Text(f"{key}={sweep.short(r['value'])}", style=style),
                              Text(mean_sem_text(r["val"], r["val_sem"]), justify="right", style=style),
                              Text(mean_sem_text(r["test"], r["test_sem"]), justify="right", style=style),
                              Text(f"{r['n']}/{r['of']}", justify="right"), key=f"{key}={json.dumps(r['value'])}")
            if i == 0:
                picked = sweep.short(chosen["params"][key]) if chosen is not None and key in chosen["params"] else None
                chart.set_axis(key, [(sweep.short(r["value"]), r["val"], r["test"]) for r in rows], picked)
        table.styles.height = table.row_count + 1  # as the studies table's, see refresh_all

    @on(DataTable.RowHighlighted, "#studies")
    def highlighted(self) -> None:
        self.update_study()

    def on_resize(self) -> None:
        if self.loaded:
            self.call_after_refresh(self.refresh_all)

    # --- actions ------------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#studies")
    def selected(self) -> None:
        self.action_compare()

    def action_compare(self) -> None:
        entry = self.current()
        if entry is None:
            return
        if entry.study is None:
            self.notify(entry.error or "the study file cannot be read", title="unreadable study",
                        severity="warning", timeout=8)
            return
        store = self.cltui.store
        dirs = []
        for run, record in zip(entry.study["runs"], self.records(entry.study), strict=True):
            if record is not None and record.get("status") == "finished" and run.get("run_id"):
                try:
                    dirs.append(store.run_dir(run["run_id"]))
                except StoreError:
                    continue
        if not dirs:
            self.notify(f"{entry.id} has no finished run yet", title="compare", severity="warning")
            return
        from cltui.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(dirs))

    def action_delete(self) -> None:
        """Delete the highlighted study's file after a confirmation; its runs stay (they are runs of their own)."""
        entry = self.current()
        if entry is None:
            return
        try:
            path, _ = studies.removal(self.cltui.store, entry.id)
        except StoreError as e:
            self.notify(str(e), title="not deleted", severity="warning", timeout=8)
            return
        n = len(entry.study["runs"]) if entry.study is not None else 0
        kept = (f" Its {n} run{'s stay' if n != 1 else ' stays'} in the runs folder (delete runs on the runs "
                f"screen, or with `cltui studies rm {entry.id} --runs`)." if n else "")
        detail = (f"This removes the study file {path.name} from {shown_path(path.parent)}.{kept} It cannot be "
                  "undone.")
        self.app.push_screen(ConfirmScreen(f"Delete study {entry.id}?", detail, confirm="Delete", danger=True),
                             lambda yes: self.delete(entry.id) if yes else None)

    def delete(self, study_id: str) -> None:
        store = self.cltui.store
        try:  # checked again: a run may have started since the question was asked
            path, folders = studies.removal(store, study_id)
            studies.remove(store, path, folders)
        except (StoreError, OSError) as e:
            self.notify(str(e), title="not deleted", severity="error", timeout=8)
            return
        self.notify(f"deleted study {study_id}")
        self.poll(force=True)
