"""The Compare screen: the runs marked on the Runs screen side by side, explained.

First the config fields that differ between the compared runs (`method.name er | lwf · train.iterations 300 |
50`), then the metrics in a table (the best value of each column in bold), the final average accuracy as bars
and the average accuracy after each context as lines. Runs are labelled by what tells them apart: method and
seed (`er s0`), plus any other differing field when that is still ambiguous (`er s0 it50`), in the table, the
bars and the lines alike, in the same colour. When several runs share a method (and every other differing field
but the seed), they form a group: the table shows a row per group (mean ± SEM, n) above its runs, the bars are
the groups' means with their standard error, the lines the groups' means. `enter` opens the run under the
cursor; `p` writes the runs' figure for a paper (`cltui plot`'s) into <runs-dir>/figures/; `y` flips the charts'
y-axis between fitted and 0-100.
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
from textual.widgets import DataTable, Footer, Static

from cltui.tui.screens.detail import WritesFigure
from cltui.tui.state.formats import fmt_duration, fmt_pct, fmt_signed, fmt_value, section
from cltui.tui.state.runquery import short_id
from cltui.tui.widgets.charts import (
    Y_SCALE_BINDING,
    AverageByRunChart,
    BarValue,
    FinalAccuracyChart,
    ScalesCharts,
    clean_matrix,
    hex_colour,
)
from cltui.tui.widgets.header import Header
from cltui.tui.widgets.tables import RunsTable
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.metrics import mean_sem, run_figures
from core.runs.paths import StoreError
from core.runs.record import read_run_json
from core.schema.config import flat_config

# (column, metric key, higher is better); BWT and FWT are signed percentage points.
METRICS = (("final acc %", "final_avg_acc", True), ("avg inc %", "avg_incremental_acc", True),
           ("forget %", "avg_forgetting", False), ("BWT", "bwt", True), ("FWT", "fwt", True))
PERCENT = ("final_avg_acc", "avg_incremental_acc", "avg_forgetting")
NARROW_DROPS = ("avg_incremental_acc", "fwt")  # left out under 100 columns

# How a differing field reads in a label: `train.iterations` 50 -> "it50".
SHORT = {"train.iterations": "it", "train.lr": "lr", "train.batch_size": "bs", "train.optimizer": "",
         "scenario": "", "benchmark.contexts": "ctx", "preset": "", "benchmark.name": "", "model.kind": "",
         "train.epochs": "ep"}
SEED = "train.seed"
METHOD = "method.name"
MISSING = object()


def shown(value: Any) -> str:
    return "–" if value is MISSING else fmt_value(value)


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """The flattened config fields whose values differ between the runs: method.name first, then the seed,
    then the rest by name. A method's own parameters count only when they differ between runs of that method
    (that er has a buffer and lwf a temperature is said by the method's name)."""
    keys = sorted({k for c in configs for k in c})
    methods = [c.get(METHOD, MISSING) for c in configs]
    out = []
    for key in keys:
        values = [c.get(key, MISSING) for c in configs]
        if key.startswith("method.") and key != METHOD:
            by_method: dict[str, set[str]] = {}
            for m, v in zip(methods, values, strict=True):
                by_method.setdefault(shown(m), set()).add(repr(v))
            if all(len(vs) < 2 for vs in by_method.values()):
                continue
        elif len({repr(v) for v in values}) < 2:
            continue
        out.append(key)
    return sorted(out, key=lambda k: (k != METHOD, k != SEED, k))


def short_field(key: str, value: Any) -> str:
    prefix = SHORT.get(key, key.rsplit(".", 1)[-1][:6] + "=")
    return f"{prefix}{shown(value)}"


@dataclass
class Compared:
    """One readable run of the comparison."""

    path: Path
    record: dict[str, Any]
    config: dict[str, Any]  # flattened
    label: str = ""
    group: str = ""
    colour: int = 0

    @property
    def metrics(self) -> dict[str, Any]:
        return section(self.record, "metrics")


def label_runs(runs: list[Compared]) -> list[str]:
    """The fields that differ; each run's label (method, seed, and the other differing fields if the label
    would otherwise be ambiguous) and group (the label without its seed)."""
    keys = differing([r.config for r in runs])
    others = [k for k in keys if k not in (METHOD, SEED)]
    for r in runs:
        method = shown(r.config.get(METHOD, "?"))
        seed = r.config.get(SEED, MISSING)
        r.label = f"{method} s{shown(seed)}" if seed is not MISSING else method
        r.group = method
    if len({r.label for r in runs}) < len(runs) or any(r.config.get(SEED, MISSING) is MISSING for r in runs):
        for r in runs:
            extra = " ".join(short_field(k, r.config.get(k, MISSING)) for k in others)
            r.label = f"{r.label} {extra}".strip()
    if others:
        for r in runs:
            r.group = f"{r.group} " + " ".join(short_field(k, r.config.get(k, MISSING)) for k in others)
    return keys


def best(values: list[Any], higher: bool) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(set(numbers)) < 2:  # a tie between all is no news
        return None
    return max(numbers) if higher else min(numbers)


def metric_text(key: str, value: Any) -> str:
    return fmt_pct(value) if key in PERCENT else fmt_signed(value)


class CompareScreen(ScalesCharts, WritesFigure, ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar = [Binding("escape", "app.pop_screen", "Back"), Binding("p", "figure", "Figure"),
                          Y_SCALE_BINDING]
    DEFAULT_CSS = """
    CompareScreen #differs { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    """

    @dataclass
    class Loaded(Message):
        records: list[tuple[Path, dict[str, Any] | None, str | None]] = field(default_factory=list)

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.records: list[dict[str, Any]] = []
        self.compared: list[Compared] = []
        self.differs: list[str] = []
        self.groups: dict[str, list[Compared]] = {}
        self.narrow = False
        self.metrics_shown = list(METRICS)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="differs")
        yield RunsTable(id="table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="charts"):
            yield FinalAccuracyChart(id="final")
            yield AverageByRunChart(id="average")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.run_dirs)} runs"
        self.query_one("#differs", Static).update(Text("reading the runs…", style="dim"))
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

    @property
    def grouped(self) -> bool:
        return any(len(runs) > 1 for runs in self.groups.values())

    def differs_text(self) -> Text:
        runs = self.compared
        text = Text()
        if len(runs) < 2:
            text.append("one readable run: nothing to tell apart", style="dim")
            return text
        if not self.differs:
            text.append("the runs' configs are identical", style="dim")
            return text
        text.append("differs: ", style="bold")
        for n, key in enumerate(self.differs):
            if n:
                text.append(" · ", style="dim")
            raw = [r.config.get(key, MISSING) for r in runs]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
                raw = sorted(raw, key=lambda v: -v if key == "train.iterations" else v)
            values: list[str] = []
            for value in map(shown, raw):
                if value not in values:
                    values.append(value)
            text.append(f"{key} ", style="dim")
            text.append(" | ".join(values))
        return text

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        readable = [(path, record) for path, record, _ in message.records if record is not None]
        self.records = [record for _, record in readable]
        for path, _, error in message.records:
            if error:
                self.notify(error, title=f"{path.name} left out", severity="warning")
        runs = [Compared(path, record, flat_config(section(record, "config"))) for path, record in readable]
        self.differs = label_runs(runs) if runs else []
        self.compared = runs
        self.groups = {}
        for r in runs:
            self.groups.setdefault(r.group, []).append(r)
        grouped = self.grouped
        for n, members in enumerate(self.groups.values()):
            for r in members:
                r.colour = n if grouped else runs.index(r)
        self.query_one("#differs", Static).update(self.differs_text())
        self.fill_table()
        self.fill_charts()
        self.query_one("#table", DataTable).focus()

    def fill_table(self) -> None:
        table = self.query_one("#table", DataTable)
        table.clear(columns=True)
        grouped = self.grouped
        # Grouped, the run column says how many runs a group has (`er ×3`), and a run's row its status only
        # when it did not finish.
        # Under 100 columns the two least read metrics make room for the id.
        self.narrow = self.app.size.width < 100
        metrics_shown = [m for m in METRICS if not (self.narrow and m[1] in NARROW_DROPS)]
        names = ("run", "" if grouped else "status", *(m[0] for m in metrics_shown), "duration", "id")
        right = {m[0] for m in METRICS} | {"duration", ""}
        for name in names:
            table.add_column(Text(name, justify="right" if name in right else "left"), key=name)
        metrics = [r.metrics for r in self.compared]
        bests = {key: best([m.get(key) for m in metrics], higher) for _, key, higher in METRICS}
        self.metrics_shown = metrics_shown
        for name, members in self.groups.items():
            if grouped:
                row: list[Any] = [Text(f"{name} ×{len(members)}" if len(members) > 1 else members[0].label,
                                       style=f"bold {hex_colour(members[0].colour)}"), Text("")]
                if len(members) > 1:
                    for _, key, _ in metrics_shown:
                        mean, sem = mean_sem([r.metrics.get(key) for r in members])
                        cell = metric_text(key, mean) + (f"±{100 * sem:.1f}" if sem is not None else "")
                        row.append(Text(cell, style="bold", justify="right"))
                    mean_s, _ = mean_sem([section(r.record, "timing").get("total_s") for r in members])
                    row += [Text(fmt_duration(mean_s), justify="right"), Text("mean ± SEM", style="dim")]
                    table.add_row(*row, key=f"group:{name}")
                    for r in members:
                        table.add_row(*self.run_row(r, bests, indent=True), key=str(r.path))
                    continue
            for r in members:
                table.add_row(*self.run_row(r, bests), key=str(r.path))

    def run_row(self, r: Compared, bests: dict[str, float | None], indent: bool = False) -> list[Any]:
        status = str(r.record.get("status", "?"))
        row: list[Any] = [Text(("  " if indent else "") + r.label, style=hex_colour(r.colour) if indent
                               else f"bold {hex_colour(r.colour)}")]
        row.append(Text(("" if status == "finished" else status[:4]) if self.grouped else status,
                        style="dim" if self.grouped else "", justify="right" if self.grouped else "left"))
        for _, key, _ in self.metrics_shown:
            value = r.metrics.get(key)
            top = value is not None and value == bests[key] and not indent
            row.append(Text(metric_text(key, value), style="bold green" if top else "", justify="right"))
        row += [Text(fmt_duration(section(r.record, "timing").get("total_s")), justify="right"),
                Text(short_id(r.path.name, r.record.get("preset"), r.config.get("scenario"),
                              r.config.get("method.name"), r.config.get("train.seed")), style="dim")]
        return row

    def on_resize(self) -> None:
        if self.compared and (self.app.size.width < 100) != self.narrow:
            self.fill_table()

    def fill_charts(self) -> None:
        final = self.query_one("#final", FinalAccuracyChart)
        average = self.query_one("#average", AverageByRunChart)
        if not self.grouped:
            final.set_bars([BarValue(r.label, r.colour, r.metrics.get("final_avg_acc")) for r in self.compared])
            average.set_lines([(r.label, r.colour, self.average_line(r)) for r in self.compared])
            return
        bars, lines = [], []
        for name, members in self.groups.items():
            label = name if len(members) > 1 else members[0].label
            mean, sem = mean_sem([r.metrics.get("final_avg_acc") for r in members])
            n = sum(isinstance(r.metrics.get("final_avg_acc"), (int, float)) for r in members)
            bars.append(BarValue(label, members[0].colour, mean, sem, max(n, len(members) if mean is None else n)))
            curves = [self.average_line(r) for r in members]
            length = min((len(c) for c in curves if c), default=0)
            mean_line = [sum(c[i] for c in curves if c) / sum(1 for c in curves if c) for i in range(length)]
            lines.append((f"{label} (mean)" if len(members) > 1 else label, members[0].colour, mean_line))
        final.set_bars(bars)
        average.set_lines(lines)

    @staticmethod
    def average_line(r: Compared) -> list[float]:
        return [100 * a for a in run_figures(r.record).averages(clean_matrix(r.record.get("acc_matrix")))]

    def action_figure(self) -> None:
        if not self.records:
            self.notify("no readable run to draw", title="figure")
            return
        import time

        folder = self.run_dirs[0].parent / "figures"
        self.write_figure(self.records, folder / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.pdf")

    @on(DataTable.RowSelected, "#table")
    def open_run(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key.startswith("group:"):
            return  # a group's row: its runs are the rows under it
        from cltui.tui.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(Path(key)))
