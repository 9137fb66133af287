"""The Compare screen: the runs marked on the Runs screen side by side.

The metrics in a table (the best value of each column in bold), the final average accuracy per run as
bars and the average accuracy after each context as one line per run. Runs are labelled `1 ewc`, `2 er`...
in the table, the bars and the lines alike, in the same colour. `enter` opens the run under the cursor; `p`
writes the runs' figure for a paper (`cltui plot`'s) into <runs-dir>/figures/.
"""

from __future__ import annotations

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
from textual.widgets import DataTable, Footer

from cltui.tui.charts import AverageByRunChart, FinalAccuracyChart, hex_colour
from cltui.tui.detail import WritesFigure
from cltui.tui.formats import fmt_duration, fmt_pct, fmt_signed, section
from cltui.tui.header import Header
from cltui.tui.tables import RunsTable
from cltui.tui.workers import ReportsWorkerErrors
from core.store import StoreError, read_run_json

# (column, metric key, higher is better); BWT and FWT are signed percentage points.
METRICS = (("final acc %", "final_avg_acc", True), ("avg inc %", "avg_incremental_acc", True),
           ("forget %", "avg_forgetting", False), ("BWT", "bwt", True), ("FWT", "fwt", True))


def label(k: int, record: dict[str, Any]) -> str:
    return f"{k + 1} {section(section(record, 'config'), 'method').get('name') or '?'}"


def best(values: list[Any], higher: bool) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(set(numbers)) < 2:  # a tie between all is no news
        return None
    return max(numbers) if higher else min(numbers)


class CompareScreen(WritesFigure, ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar = [Binding("escape", "app.pop_screen", "Back"), Binding("p", "figure", "Figure")]

    @dataclass
    class Loaded(Message):
        records: list[tuple[Path, dict[str, Any] | None, str | None]] = field(default_factory=list)

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.records: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunsTable(id="table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="charts"):
            yield FinalAccuracyChart(id="final")
            yield AverageByRunChart(id="average")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.run_dirs)} runs"
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-load")
    def load(self) -> None:
        records: list[tuple[Path, dict[str, Any] | None, str | None]] = []
        for path in self.run_dirs:
            try:
                records.append((path, read_run_json(path), None))
            except StoreError as e:
                records.append((path, None, str(e)))
        self.post_message(self.Loaded(records))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        readable = [(path, record) for path, record, _ in message.records if record is not None]
        self.records = [record for _, record in readable]
        for path, _, error in message.records:
            if error:
                self.notify(error, title=f"{path.name} left out", severity="warning")
        table = self.query_one("#table", DataTable)
        table.clear(columns=True)
        for name in ("run", "scenario", "seed", "status", *(m[0] for m in METRICS), "duration", "id"):
            right = name in {m[0] for m in METRICS} | {"seed", "duration"}
            table.add_column(Text(name, justify="right" if right else "left"), key=name)
        metrics = [section(record, "metrics") for _, record in readable]
        bests = {key: best([m.get(key) for m in metrics], higher) for _, key, higher in METRICS}
        for k, (path, record) in enumerate(readable):
            cfg = section(record, "config")
            row: list[Any] = [Text(label(k, record), style=f"bold {hex_colour(k)}"), Text(str(cfg.get("scenario", "–"))),
                              Text(str(section(cfg, "train").get("seed", "–")), justify="right"),
                              Text(str(record.get("status", "?")))]
            for _, key, _ in METRICS:
                value = metrics[k].get(key)
                shown = fmt_pct(value) if key in ("final_avg_acc", "avg_incremental_acc", "avg_forgetting") \
                    else fmt_signed(value)
                top = value is not None and value == bests[key]
                row.append(Text(shown, style="bold green" if top else "", justify="right"))
            row += [Text(fmt_duration(section(record, "timing").get("total_s")), justify="right"),
                    Text(path.name, style="dim")]
            table.add_row(*row, key=str(path))
        labels = [label(k, record) for k, (_, record) in enumerate(readable)]
        self.query_one("#final", FinalAccuracyChart).set_runs(
            [(name, m.get("final_avg_acc")) for name, m in zip(labels, metrics, strict=True)])
        self.query_one("#average", AverageByRunChart).set_runs(
            [(name, record.get("acc_matrix")) for name, (_, record) in zip(labels, readable, strict=True)])
        table.focus()

    def action_figure(self) -> None:
        if not self.records:
            self.notify("no readable run to draw", title="figure")
            return
        import time

        folder = self.run_dirs[0].parent / "figures"
        self.write_figure(self.records, folder / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.pdf")

    @on(DataTable.RowSelected, "#table")
    def open_run(self, event: DataTable.RowSelected) -> None:
        from cltui.tui.detail import DetailScreen

        self.app.push_screen(DetailScreen(Path(str(event.row_key.value))))
