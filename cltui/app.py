"""The Textual TUI. For now the runs browser: every run in the runs directory, refreshed live.

The UI process never imports torch; the TUI issue grows this into compose / live / detail / compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from core.store import RunStore

COLUMNS = ("id", "preset", "method", "scenario", "status", "final acc %", "duration")


def run_cells(entry) -> tuple[str, ...]:
    if entry.data is None:
        return (entry.id, "–", "–", "–", "unreadable", "–", "–")
    d = entry.data
    cfg = d.get("config", {})
    acc = (d.get("metrics") or {}).get("final_avg_acc")
    total = (d.get("timing") or {}).get("total_s")
    return (entry.id, str(d.get("preset")), str(cfg.get("method", {}).get("name")), str(cfg.get("scenario")),
            entry.status, "–" if acc is None else f"{100 * acc:.1f}", "–" if total is None else f"{total:.1f} s")


class CltuiApp(App):
    TITLE = "cltui"
    SUB_TITLE = "continual-learning workbench"
    BINDINGS: ClassVar = [Binding("r", "reload", "Reload"), Binding("q", "quit", "Quit")]

    def __init__(self, runs_dir: Path):
        super().__init__()
        self.store = RunStore(runs_dir)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="where")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.action_reload()
        self.set_interval(2.0, self.action_reload)

    def action_reload(self) -> None:
        table = self.query_one(DataTable)
        entries = self.store.list()
        table.clear()
        for entry in entries:
            table.add_row(*run_cells(entry), key=entry.id)
        self.query_one("#where", Static).update(
            f" {len(entries)} runs in {self.store.root.resolve()} · start one with `cltui run` in another terminal"
        )


def create_app(runs_dir: Path) -> CltuiApp:
    return CltuiApp(runs_dir)
