"""The Compare screen: the runs marked on the Runs screen side by side, explained.

First the config fields that differ between the compared runs (`method.name er | lwf · train.iterations 300 |
50`), then the metrics in a table (the best value of each column in bold), the final average accuracy as
horizontal bars (one row each, names whole, at any height) and the average accuracy after each context as
lines. Runs are labelled by what tells them apart: method and seed (`er s0`), plus any other differing field when
that is still ambiguous (`er s0 it50`), in the table, the bars and the lines alike, in the same colour. When
several runs share a method (and every other differing field but the seed), they form a group: the table shows
a row per group (mean ± SEM, n) above its runs, the bars are the groups' means with their standard error, the
lines the groups' means. `enter` opens the run under the cursor, or on a group's row folds its runs away (or
back; `left` / `right` fold and unfold); groups start folded when their runs would not fit the table (six
methods at 80x24). `b` pins the run or group under the cursor as the baseline: it comes first in the table, the
bars and the legend, its line is drawn on top, and the table says every other row's difference to it (`Δ final
+12.3`). `[` / `]` move a cursor over the contexts of the lines chart, whose legend then reads every line's
value there. `p` writes the runs' figure for a paper (`cltui plot`'s) into <runs-dir>/figures/; `y` flips the
charts' y-axis between fitted and 0-100.
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
           ("forget %", "avg_forgetting", False), ("BWT", "bwt", True), ("FWT", "fwt", True),
           ("old %", "old_acc", True), ("new %", "new_acc", True),  # the last row on the old / newest classes
           ("task %", "task_acc", True))  # class-IL: the same network's task-IL accuracy
PERCENT = ("final_avg_acc", "avg_incremental_acc", "avg_forgetting", "old_acc", "new_acc", "task_acc")
NARROW_DROPS = ("avg_incremental_acc", "fwt")  # left out under 100 columns
WIDE_ONLY = ("old_acc", "new_acc", "task_acc")  # shown from 120 columns (the detail's matrix has them per context)
NARROW_BASELINE_DROPS = ("bwt",)  # and with a baseline, for its differences (and the duration)
DELTAS = {"final_avg_acc": "Δ final", "avg_forgetting": "Δ forget"}  # the columns of differences to a baseline
TABLE_SHARE = 0.45  # of the screen's height that the table may take (cltui.tcss: CompareScreen #table)

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


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def delta_cell(value: Any, base: Any, higher: bool) -> Text:
    """A row's difference to the baseline in percentage points (`+12.3`), green where it is better."""
    v, b = number(value), number(base)
    if v is None or b is None:
        return Text("–", justify="right")
    diff = v - b
    better = diff > 0 if higher else diff < 0
    style = "dim" if round(100 * diff, 1) == 0 else ("green" if better else "red")
    return Text(fmt_signed(diff), style=style, justify="right")


class CompareScreen(ScalesCharts, WritesFigure, ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "baseline", "Baseline"),
        Binding("left_square_bracket", "context(-1)", "Prev context", key_display="[",
                group=Binding.Group("Context", compact=True)),
        Binding("right_square_bracket", "context(1)", "Next context", key_display="]",
                group=Binding.Group("Context", compact=True)),
        Binding("p", "figure", "Figure"),
        Y_SCALE_BINDING,
    ]
    HELP_NOTES = ("A group's row (▸/▾) folds its runs away or back with enter (← folds, → unfolds). The "
                  "baseline (b, again to unpin) comes first everywhere; Δ columns give each row's difference to "
                  "it in points, green where better. [ and ] read the lines chart at a context, in its legend.")
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
        self.stats: dict[str, dict[str, tuple[float | None, float | None]]] = {}  # group -> key -> mean, SEM
        self.baseline: str | None = None  # the group (a run of its own when ungrouped) pinned as the baseline
        self.folded: set[str] = set()  # the groups whose runs the table leaves out
        self.narrow = False
        self.wide = False  # from 120 columns: the old and new classes' accuracy too
        self.metrics_shown = list(METRICS)
        self.columns: list[str] = []

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
        self.stats = {name: {key: mean_sem([self.value(r, key) for r in members])
                             for key in (*(m[1] for m in METRICS), "total_s")}
                      for name, members in self.groups.items()}
        # Groups start folded when their runs would not fit the table's share of the screen.
        rows = sum(len(members) + (len(members) > 1) for members in self.groups.values())
        if grouped and rows > int(TABLE_SHARE * self.app.size.height) - 1:
            self.folded = {name for name, members in self.groups.items() if len(members) > 1}
        self.query_one("#differs", Static).update(self.differs_text())
        self.fill_table()
        self.fill_charts()
        self.query_one("#table", DataTable).focus()

    @staticmethod
    def value(r: Compared, key: str) -> Any:
        return section(r.record, "timing").get(key) if key == "total_s" else r.metrics.get(key)

    def ordered(self) -> list[tuple[str, list[Compared]]]:
        """The groups (runs, ungrouped), the baseline's first."""
        items = list(self.groups.items())
        return sorted(items, key=lambda item: item[0] != self.baseline)

    def fill_table(self) -> None:
        table = self.query_one("#table", DataTable)
        at = self.row_key()
        table.clear(columns=True)
        grouped = self.grouped
        pinned = self.baseline is not None
        # Grouped, the run column says how many runs a group has (`er ×3`), and a run's row its status only
        # when it did not finish.
        # Under 100 columns (120 with a baseline's differences) the two least read metrics make room for the id,
        # and with a baseline BWT and the duration make room for its differences.
        self.narrow = self.is_narrow()
        drops = (NARROW_DROPS + (NARROW_BASELINE_DROPS if pinned else ())) if self.narrow else ()
        self.wide = self.app.size.width >= 120
        drops += () if self.wide else WIDE_ONLY
        self.metrics_shown = [m for m in METRICS if m[1] not in drops]
        names: list[str] = ["run", "" if grouped else "status"]
        for name, key, _ in self.metrics_shown:
            names += [name, DELTAS[key]] if pinned and key in DELTAS else [name]
        names += [] if self.narrow and pinned else ["duration"]
        names.append("id")
        self.columns = names
        left = {"run", "status", "id"}
        for name in names:
            table.add_column(Text(name, justify="left" if name in left else "right"), key=name)
        bests = {key: best([r.metrics.get(key) for r in self.compared], higher) for _, key, higher in METRICS}
        for name, members in self.ordered():
            if grouped and len(members) > 1:
                table.add_row(*self.group_row(name, members), key=f"group:{name}")
                if name in self.folded:
                    continue
                for r in members:
                    table.add_row(*self.run_row(r, bests, indent=True), key=str(r.path))
                continue
            for r in members:
                table.add_row(*self.run_row(r, bests), key=str(r.path))
        if at is not None and at in table.rows:
            table.move_cursor(row=table.get_row_index(at), animate=False)

    def row_key(self) -> str | None:
        """The key of the table's row under the cursor (`group:<name>` or a run's folder), None without rows."""
        table = self.query_one("#table", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def base_value(self, key: str) -> float | None:
        return None if self.baseline is None else self.stats[self.baseline][key][0]

    def group_row(self, name: str, members: list[Compared]) -> list[Any]:
        fold = "▸" if name in self.folded else "▾"
        row: list[Any] = [Text(f"{fold} {name} ×{len(members)}", style=f"bold {hex_colour(members[0].colour)}"),
                          Text("")]
        for _, key, higher in self.metrics_shown:
            mean, sem = self.stats[name][key]
            cell = metric_text(key, mean) + (f"±{100 * sem:.1f}" if sem is not None else "")
            row.append(Text(cell, style="bold", justify="right"))
            if self.baseline is not None and key in DELTAS:
                row.append(Text("baseline", style="bold", justify="right") if name == self.baseline
                           else delta_cell(mean, self.base_value(key), higher))
        if "duration" in self.columns:
            row.append(Text(fmt_duration(self.stats[name]["total_s"][0]), justify="right"))
        row.append(Text("mean ± SEM", style="dim"))
        return row

    def run_row(self, r: Compared, bests: dict[str, float | None], indent: bool = False) -> list[Any]:
        status = str(r.record.get("status", "?"))
        row: list[Any] = [Text(("  " if indent else "") + r.label, style=hex_colour(r.colour) if indent
                               else f"bold {hex_colour(r.colour)}")]
        row.append(Text(("" if status == "finished" else status[:4]) if self.grouped else status,
                        style="dim" if self.grouped else "", justify="right" if self.grouped else "left"))
        pinned = not indent and r.group == self.baseline
        for _, key, higher in self.metrics_shown:
            value = r.metrics.get(key)
            top = value is not None and value == bests[key] and not indent
            row.append(Text(metric_text(key, value), style="bold green" if top else "", justify="right"))
            if self.baseline is not None and key in DELTAS:
                row.append(Text("baseline", style="bold", justify="right") if pinned
                           else delta_cell(value, self.base_value(key), higher))
        if "duration" in self.columns:
            row.append(Text(fmt_duration(section(r.record, "timing").get("total_s")), justify="right"))
        row.append(Text(short_id(r.path.name, r.record.get("preset"), r.config.get("scenario"),
                                 r.config.get("method.name"), r.config.get("train.seed")), style="dim"))
        return row

    def is_narrow(self) -> bool:
        return self.app.size.width < (120 if self.baseline is not None else 100)

    def on_resize(self) -> None:
        if self.compared and (self.is_narrow() != self.narrow or (self.app.size.width >= 120) != self.wide):
            self.fill_table()

    def fill_charts(self) -> None:
        final = self.query_one("#final", FinalAccuracyChart)
        average = self.query_one("#average", AverageByRunChart)
        names = list(self.groups)
        baseline = names.index(self.baseline) if self.baseline in names else None
        if not self.grouped:
            final.set_bars([BarValue(r.label, r.colour, r.metrics.get("final_avg_acc"),
                                     baseline=r.group == self.baseline) for r in self.compared])
            average.set_lines([(r.label, r.colour, self.average_line(r)) for r in self.compared], baseline)
            return
        bars, lines = [], []
        for name, members in self.groups.items():
            label = name if len(members) > 1 else members[0].label
            mean, sem = self.stats[name]["final_avg_acc"]
            n = sum(isinstance(r.metrics.get("final_avg_acc"), (int, float)) for r in members)
            bars.append(BarValue(label, members[0].colour, mean, sem, max(n, len(members) if mean is None else n),
                                 baseline=name == self.baseline))
            curves = [c for c in (self.average_line(r) for r in members) if c]
            length = min((len(c) for c in curves), default=0)
            mean_line = [mean_sem([c[i] for c in curves])[0] or 0.0 for i in range(length)]
            lines.append((label, members[0].colour, mean_line))
        final.set_bars(bars)
        average.title = "avg accuracy so far (%), means"
        average.set_lines(lines, baseline)

    @staticmethod
    def average_line(r: Compared) -> list[float]:
        return [100 * a for a in run_figures(r.record).averages(clean_matrix(r.record.get("acc_matrix")))]

    def action_baseline(self) -> None:
        """Pin the group (ungrouped, the run) under the cursor as the baseline; on the baseline, unpin it."""
        key = self.row_key()
        if key is None:
            return
        name = key.removeprefix("group:") if key.startswith("group:") else \
            next(r.group for r in self.compared if str(r.path) == key)
        self.baseline = None if name == self.baseline else name  # the Δ columns say which it is
        self.fill_table()
        self.fill_charts()

    def action_context(self, step: int) -> None:
        """Move the lines chart's context cursor; its legend reads every line there."""
        if self.query_one("#average", AverageByRunChart).move_cursor(step) is None:
            self.notify("no run has an evaluated context", title="context")

    def action_figure(self) -> None:
        if not self.records:
            self.notify("no readable run to draw", title="figure")
            return
        import time

        folder = self.run_dirs[0].parent / "figures"
        self.write_figure(self.records, folder / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.pdf")

    def fold(self, folded: bool | None = None) -> bool:
        """Fold (True), unfold (False) or flip (None) the group under the cursor, or to fold it, the group of
        the run under it; the cursor ends on the group's row. False where there is no group to do it to."""
        key = self.row_key() or ""
        name = key.removeprefix("group:") if key.startswith("group:") else None
        if name is None and folded is True:
            name = next((r.group for r in self.compared if str(r.path) == key), None)
        if name is None or len(self.groups.get(name, [])) < 2 or not self.grouped:
            return False
        if folded is None:
            folded = name not in self.folded
        self.folded = self.folded | {name} if folded else self.folded - {name}
        table = self.query_one("#table", DataTable)
        table.move_cursor(row=table.get_row_index(f"group:{name}"), animate=False)
        self.fill_table()
        return True

    def action_expand_row(self) -> bool:
        """`right` on a folded group's row (RunsTable asks): its runs under it."""
        return self.fold(False)

    def action_collapse_row(self) -> bool:
        """`left` on a group's row or one of its runs (RunsTable asks): the group folded."""
        return self.fold(True)

    @on(DataTable.RowSelected, "#table")
    def open_run(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key.startswith("group:"):  # a group's row: fold its runs away, or back
            self.fold()
            return
        from cltui.tui.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(Path(key)))
