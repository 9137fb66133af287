"""The Run detail screen: what a run did and how it ended.

Overview: status, config in one line, metrics, timing, the accuracy matrix as a coloured table and the two
charts; a merge's teachers and their scores, one line each. Config: the full resolved config, as TOML. Log:
the error and its traceback for a failed run, and the tail of worker.log. Charts: the accuracy charts, the
accuracy during training (continual evaluation) and the training loss against the iterations (from
events.jsonl, one line per context), in a pane that scrolls (PageDown / PageUp: the next or previous chart);
`[` / `]` move a cursor over the contexts and the line under the accuracy charts reads each line's value
there. `i` opens the run's dreams; `p` writes the run's figure for a paper (`cltui plot`'s) into its
folder; `e` clones the run into the compose form (its config filled in); `R` resumes a cancelled, failed or
stale run from its last checkpoint, after a confirmation, and follows it live; `y` flips the charts' y-axis
between fitted and 0-100. `e` and `R` show in the footer only when they apply. The run folder is read by a
thread worker, again whenever run.json changes (a stale or running run may still move).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from cltui.tui.screens.base import ReachesCltui
from cltui.tui.state.formats import (
    STATUS_STYLE,
    figure_parts,
    fmt_duration,
    fmt_loss,
    fmt_pct,
    fmt_score,
    fmt_value,
    section,
    stability_text,
)
from cltui.tui.state.live import loss_track
from cltui.tui.widgets.charts import (
    Y_SCALE_BINDING,
    AccuracyChart,
    AverageChart,
    CurveChart,
    LossChart,
    MatrixChart,
    ScalesCharts,
    UnitsChart,
    clean_curve,
    clean_matrix,
)
from cltui.tui.widgets.charts.base import wrap_legend
from cltui.tui.widgets.header import Header
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.events import Event, Progress, from_json
from core.runs.lock import pid_alive
from core.runs.metrics import context_name, memory_mb, run_figures
from core.runs.paths import EVENTS, RUN_JSON, WORKER_LOG, StoreError, inside, open_checked
from core.runs.record import read_run_json

LOG_TAIL_BYTES = 64 * 1024
EVENTS_MAX_BYTES = 64 << 20  # a longer events.jsonl is read from its end for the loss chart
RESUMABLE = ("cancelled", "failed", "stale")
READOUT_HINTS = {  # under the Charts tab's accuracy charts while no context is read out: the tab's keys
    "#charts-accuracy": "[ ] read each line at a context",
    "#charts-average": "PgDn PgUp: next, previous chart",
}


def acc_colour(a: float) -> str:
    """Red at 0 through yellow at 50% to green at 100%."""
    a = min(1.0, max(0.0, a))
    if a < 0.5:
        r, g = 230, int(60 + 2 * a * 170)
    else:
        r, g = int(230 - (a - 0.5) * 2 * 170), 210
    return f"#{r:02x}{g:02x}50"


def when(stamp: Any) -> str:
    return str(stamp)[:19].replace("T", " ") if stamp else "–"


def status_of(record: dict[str, Any]) -> str:
    status = str(record.get("status", "?"))
    if status == "running" and not pid_alive(record.get("pid")):
        return "stale"
    return status


def config_line(cfg: dict[str, Any]) -> str:
    bench, method, train = section(cfg, "benchmark"), section(cfg, "method"), section(cfg, "train")
    model = section(cfg, "model")
    params = " ".join(f"{k}={fmt_value(v)}" for k, v in method.items()
                      if k not in ("name", "teachers") and v is not None)  # a merge's teachers: lines of their own
    return (f"{bench.get('name', '?')} {bench.get('protocol', '')} · {bench.get('contexts', '?')} contexts · "
            f"{cfg.get('scenario', '?')}-IL · {model.get('kind', '?')} · {method.get('name', '?')}"
            f"{' (' + params + ')' if params else ''} · seed {train.get('seed', '?')} · "
            f"{train.get('iterations', '?')} it × {train.get('batch_size', '?')}, lr {fmt_value(train.get('lr', '?'))}")


def summary(record: dict[str, Any]) -> Text:
    status = status_of(record)
    cfg, metrics, timing = section(record, "config"), section(record, "metrics"), section(record, "timing")
    text = Text(no_wrap=True, overflow="ellipsis")  # one line each; the Config tab has everything
    text.append(f" {status} ", style=f"reverse {STATUS_STYLE.get(status, 'magenta')}")
    text.append(f" {record.get('id', '?')}", style="bold")
    text.append(f"  preset {record.get('preset') or '–'}\n", style="dim")
    text.append(config_line(cfg) + "\n")
    figures = run_figures(record)
    for line in teacher_lines(record, figures.score):
        text.append_text(line)
        text.append("\n")
    if figures.headline is not None:
        for label, value in figure_parts(figures):
            text.append(f"{label} ", style="dim")
            text.append(value, style="bold")
            text.append("  ")
        text.append("\n")
        stability = stability_text(metrics, record.get("acc_curve"))
        if stability:
            text.append(stability + "\n")
    elif status == "running":
        text.append("running: metrics come when it ends\n", style="cyan")
    env = section(record, "env")
    samples = timing.get("samples_per_s")
    text.append(f"{fmt_duration(timing.get('total_s'))} ({fmt_duration(timing.get('train_s'))} training, "
                f"{fmt_duration(timing.get('eval_s'))} eval)"
                f"{f' · {samples:,.0f} samples/s' if isinstance(samples, (int, float)) else ''} · "
                f"{'' if (held := memory_mb(record)) is None else f'{held:.2f} MB held · '}"
                f"{env.get('device', '?')} · started {when(record.get('created'))}", style="dim")
    error = section(record, "error")
    if error and status != "finished":
        where, message = "", str(error.get("message", ""))
        if error.get("context") is not None and f"context {error['context']}" not in message:
            where = f" in context {error['context']}"
            if error.get("iteration") is not None:
                where += f" at iteration {error['iteration']}"
        colour = "yellow" if status == "cancelled" else "red"
        text.append(f"\n{status}{where}: {message}", style=f"bold {colour}")
        if error.get("traceback"):
            text.append("  (traceback: press 4)", style="dim")
    return text


def contexts_text(contexts: list[int]) -> str:
    """Context indices as few characters as they take: `c0-c4`, `c0,c2`."""
    if len(contexts) > 2 and contexts == list(range(contexts[0], contexts[-1] + 1)):
        return f"{context_name(contexts[0], short=True)}-{context_name(contexts[-1], short=True)}"
    return ",".join(context_name(c, short=True) for c in contexts)


def teacher_lines(record: dict[str, Any], score: str) -> list[Text]:
    """A merge's teachers, one line each: the run id and its score as the merge recorded it (and the contexts it
    learned, when not all of them); no line for a run that is not a merge."""
    teachers = section(record, "merge").get("teachers")
    if not isinstance(teachers, list):
        return []
    contexts = section(section(record, "config"), "benchmark").get("contexts")
    lines = []
    for n, teacher in enumerate(t for t in teachers if isinstance(t, dict)):
        value = teacher.get("final_avg_acc")
        shown = fmt_score(value, score)
        line = Text(f"teacher {chr(ord('A') + n)}  ", style="dim")
        line.append(str(teacher.get("id", "?")), style="bold")
        line.append(f"  {shown}{'%' if score != 'R²' and shown != '–' else ''}")
        learned = teacher.get("learned")
        if isinstance(learned, list) and all(isinstance(c, int) for c in learned) \
                and learned != list(range(contexts if isinstance(contexts, int) else len(learned))):
            line.append(f"  learned {contexts_text(learned)}", style="dim")
        lines.append(line)
    return lines


def toml_text(cfg: dict[str, Any]) -> str:
    """The config as TOML, the format of the presets (a value that is not set becomes a comment)."""

    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, float) else repr(v)

    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, v in cfg.items():
        if isinstance(v, dict):
            tables.append((key, v))
        elif v is None:
            lines.append(f"# {key}: not set")
        else:
            lines.append(f"{key} = {value(v)}")
    for name, table in tables:
        lines += ["", f"[{name}]"]
        for key, v in table.items():
            lines.append(f"# {key}: not set" if v is None else f"{key} = {value(v)}")
    return "\n".join(lines)


def matrix_rows(record: dict[str, Any]) -> tuple[list[Text], list[list[Any]]]:
    """The columns and rows of the coloured accuracy table; future contexts dim."""
    matrix = clean_matrix(record.get("acc_matrix"))
    if not matrix:
        return [], []
    n = max(len(row) for row in matrix)
    contexts = record.get("contexts") if isinstance(record.get("contexts"), list) else []
    # The record says whether it trained once; a run cancelled after one context also has one row.
    figures = run_figures(record)
    joint = figures.once
    # class-IL: each row's accuracy on the classes of earlier contexts and on the new context's
    old_new = figures.old_new_rows
    columns = ["after", "classes", *[context_name(j, short=True) for j in range(n)], "avg seen",
               *(["old", "new"] if old_new else []), "loss", "train"]
    numeric = set(columns[2:])
    rows = []
    for i, row in enumerate(matrix):
        info = contexts[i] if i < len(contexts) and isinstance(contexts[i], dict) else {}
        cells: list[Any] = [Text(figures.stage_label(i), style="bold"),
                            Text(",".join(map(str, info.get("classes") or [])) or "–", style="dim")]
        for j in range(n):
            if j >= len(row):
                cells.append(Text("", justify="right"))
            elif joint or j <= i:
                cells.append(Text(f"{100 * row[j]:.1f}", style=acc_colour(row[j]), justify="right"))
            else:
                cells.append(Text(f"{100 * row[j]:.1f}", style="dim", justify="right"))
        avg = figures.seen_average(row, i) or 0.0
        loss = info.get("final_loss")
        cells.append(Text(f"{100 * avg:.1f}", style=f"bold {acc_colour(avg)}", justify="right"))
        if old_new:
            cells += [Text(fmt_pct(v), justify="right") for v in figures.old_new(row, i)]
        cells += [Text(fmt_loss(loss), justify="right"),
                  Text(fmt_duration(info.get("train_s")), justify="right")]
        rows.append(cells)
    return [Text(c, justify="right" if c in numeric else "left") for c in columns], rows


def final_losses(record: dict[str, Any] | None) -> dict[int, Any]:
    """Each context's final loss as run.json records it (the matrix's loss column): context -> loss."""
    contexts = (record or {}).get("contexts")
    if not isinstance(contexts, list):
        return {}
    return {c["index"]: c.get("final_loss") for c in contexts
            if isinstance(c, dict) and isinstance(c.get("index"), int)}


def read_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        with open_checked(path) as f:  # never a link out of the run folder, a FIFO or a device
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except (OSError, StoreError):
        return ""
    text = data.decode(errors="replace")
    return text if size <= limit else text.split("\n", 1)[-1]  # drop the line cut in half


def read_loss_events(run_dir: Path) -> list[Event]:
    """The events the loss and units charts need (contexts started, training progress, an L0 merge's active
    units) from events.jsonl; [] when it is missing or unreadable. Only lines that can hold them are parsed."""
    try:
        with open_checked(inside(run_dir, EVENTS, action="read")) as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - EVENTS_MAX_BYTES))
            data = f.read()
    except (OSError, StoreError):  # missing, or a link, FIFO or device cltui never reads
        return []
    events: list[Event] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        if '"Progress"' not in line and '"ContextStarted"' not in line and '"UnitsActive"' not in line:
            continue
        try:
            event = from_json(line)
        except (ValueError, TypeError):
            continue
        if not isinstance(event, Progress) or event.loss is not None:
            events.append(event)
    return events


def resume_problem(record: dict[str, Any] | None, run_dir: Path) -> str | None:
    """Why this run cannot be resumed (as `cltui run --resume` would refuse it), or None when it can: a
    cancelled, failed or stale run that kept a checkpoint of its last completed context (or completed none)."""
    if record is None:
        return "its run.json is unreadable"
    status = status_of(record)
    if status == "finished":
        return "it is finished: nothing to resume"
    if status == "running":
        return "it is still running"
    if status not in RESUMABLE:
        return f"it is {status}"
    if record.get("merge"):
        return "it is a merge run: merges are re-run, not resumed"
    if clean_matrix(record.get("acc_matrix")):
        if section(section(record, "config"), "train").get("checkpoints") == "none":
            return "it kept no checkpoints (train.checkpoints=none)"
        if not any((run_dir / "checkpoints").glob("context-*.pt")):
            return "it has no checkpoint to continue from"
    return None


class Readout(Widget):
    """A line under a chart: its values at the cursor's context, wrapped between entries (never inside one)."""

    DEFAULT_CSS = "Readout { height: auto; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = Text()

    def update(self, text: Text) -> None:
        if text != self.text:
            self.text = text
            self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(wrap_legend(self.text, width)))

    def render(self) -> RenderResult:
        return Text("\n").join(wrap_legend(self.text, self.content_region.width))


class WritesFigure(MessagePump):
    """`p` on a screen of runs: `cltui plot`'s figure written by a thread worker (matplotlib takes a second),
    and a notification saying where, or why not."""

    @dataclass
    class FigureWritten(Message):
        path: Path | None
        error: str | None

    @work(thread=True, exclusive=True, exit_on_error=False, group="figure")
    def write_figure(self, records: list[dict[str, Any]], out: Path) -> None:
        from core.reporting.figures import FigureError, write_figure

        try:
            self.post_message(self.FigureWritten(write_figure(records, out, dpi=200), None))
        except (FigureError, OSError) as e:
            self.post_message(self.FigureWritten(None, str(e)))

    @on(FigureWritten)
    def figure_written(self, message: FigureWritten) -> None:
        if message.path is None:
            self.app.notify(message.error or "", title="figure", severity="error", timeout=10)
        else:
            self.app.notify(str(message.path), title="figure written", timeout=10)


class DetailScreen(ReachesCltui, ScalesCharts, WritesFigure, ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("i", "dreams", "Dreams"),
        Binding("p", "figure", "Figure"),
        Binding("e", "clone", "Clone"),
        Binding("R", "resume", "Resume"),
        Binding("R", "resume_refused", "Resume", show=False),  # where R does not apply: a notice says why
        Y_SCALE_BINDING,
        # The tabs name these keys; the footer keeps its room for the keys above.
        Binding("1", "tab('overview')", "Overview", show=False),
        Binding("2", "tab('charts')", "Charts", show=False),
        Binding("3", "tab('config')", "Config", show=False),
        Binding("4", "tab('log')", "Log", show=False),
        # On the Charts tab (shown by `?` and under the charts: the footer has no room left at 80 columns).
        Binding("pagedown", "chart(1)", "Next chart (Charts tab)", show=False),
        Binding("pageup", "chart(-1)", "Previous chart (Charts tab)", show=False),
        Binding("left_square_bracket", "context_cursor(-1)", "Read the charts at the previous context",
                key_display="[", show=False),
        Binding("right_square_bracket", "context_cursor(1)", "Read the charts at the next context",
                key_display="]", show=False),
    ]
    # The Charts tab scrolls: each chart shares the pane's height but keeps a height it reads at, so at 80x24
    # the charts stack below one another and PageDown / PageUp go from one to the next.
    DEFAULT_CSS = """
    DetailScreen #charts-pane { height: 1fr; }
    DetailScreen #context-charts { height: 1fr; min-height: 14; }
    DetailScreen #charts-pane > Chart { height: 1fr; min-height: 11; }
    DetailScreen #readouts { height: auto; }
    DetailScreen .readout { width: 1fr; height: auto; padding: 0 1; }
    """
    TALL = 28  # rows from which the overview has room for the charts under the matrix

    @dataclass
    class Loaded(Message):
        record: dict[str, Any] | None
        error: str | None
        log: str
        stamp: tuple[int, int] | None
        loss: list[Event] = field(default_factory=list)
        resumable: str | None = "not read yet"  # why R does not apply; None when it does

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.record: dict[str, Any] | None = None
        self.stamp: tuple[int, int] | None = None
        self.resume_refusal: str | None = "not read yet"
        self.context_cursor: int | None = None  # the row of the matrix the charts read out (`[` / `]`)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            with TabPane("Overview", id="overview"), Vertical():
                yield Static(id="summary")
                yield DataTable(id="matrix", cursor_type="none", zebra_stripes=True, show_cursor=False)
                with Horizontal(id="overview-charts", classes="charts"):
                    yield AccuracyChart()
                    yield AverageChart()
            with TabPane("Charts", id="charts"), VerticalScroll(id="charts-pane"):
                with Vertical(id="context-charts"):
                    with Horizontal(classes="charts"):
                        yield AccuracyChart(id="charts-accuracy")
                        yield AverageChart(id="charts-average")
                    with Horizontal(id="readouts"):
                        yield Readout(id="readout-accuracy", classes="readout")
                        yield Readout(id="readout-average", classes="readout")
                curve = CurveChart(id="detail-curve")
                curve.display = False  # shown for a run with continual evaluation (train.eval_every)
                yield curve
                loss = LossChart(id="detail-loss")
                loss.EMPTY_TITLE = "no training loss to plot (events.jsonl has none)"
                yield loss
                units = UnitsChart(id="detail-units")
                units.display = False  # shown for a merge by L0: its gates' active units during joint training
                yield units
            with TabPane("Config", id="config"), VerticalScroll(classes="pane"):
                yield Static(id="config-text")
            with TabPane("Log", id="log"), VerticalScroll(classes="pane"):
                yield Static(id="error")
                yield Static(id="log-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_dir.name
        self.load()
        self.set_interval(2.0, self.load)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-load")
    def load(self) -> None:
        try:
            st = os.stat(self.run_dir / RUN_JSON)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self.stamp:
            return  # nothing new
        try:
            record, error = read_run_json(self.run_dir), None
        except StoreError as e:
            record, error = None, str(e)
        self.post_message(self.Loaded(record, error, read_tail(self.run_dir / WORKER_LOG), stamp,
                                      read_loss_events(self.run_dir), resume_problem(record, self.run_dir)))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        self.stamp, self.record = message.stamp, message.record
        refusal = message.resumable
        with self.app.batch_update():
            self.show(message)
            self.query_one("#detail-loss", LossChart).set_track(loss_track(message.loss),
                                                                final_losses(message.record))
            units = self.query_one("#detail-units", UnitsChart)
            units.set_units(message.loss)
            units.display = bool(units.events)
        self.resume_refusal = refusal
        self.refresh_bindings()  # e and R show when they apply

    def show(self, message: Loaded) -> None:
        record = message.record
        log = self.query_one("#log-text", Static)
        log.update(Text(message.log.rstrip() or "worker.log is empty", style="" if message.log else "dim"))
        if record is None:
            self.query_one("#summary", Static).update(Text(message.error or "unreadable run.json", style="red"))
            return
        self.query_one("#summary", Static).update(summary(record))
        columns, rows = matrix_rows(record)
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        table.display = bool(rows)
        if rows:
            for k, name in enumerate(columns):
                table.add_column(name, key=str(k))
            for row in rows:
                table.add_row(*row)
        figures = run_figures(record)
        for chart in self.query(".charts > Chart").results(MatrixChart):  # only the ones on screen draw
            chart.set_matrix(record.get("acc_matrix"), figures.once, figures.score, figures.weights)
        self.show_cursor()
        curve = self.query_one("#detail-curve", CurveChart)
        points = clean_curve(record.get("acc_curve"))
        curve.display = bool(points)
        if points:
            curve.set_curve(points, figures.once)
        self.query_one("#config-text", Static).update(
            Syntax(toml_text(section(record, "config")), "toml", theme="ansi_dark", background_color="default"))
        error = section(record, "error")
        parts: list[RenderableType] = []
        if error and record.get("status") != "finished":
            parts.append(Text(f"{record.get('status')}: {error.get('message', '')}", style="bold red"))
            if error.get("traceback"):
                parts.append(Syntax(str(error["traceback"]).rstrip(), "pytb", theme="ansi_dark",
                                    background_color="default"))
            parts.append(Text(""))
        parts.append(Text(f"── {WORKER_LOG} (last lines) ──", style="dim"))
        self.query_one("#error", Static).update(Group(*parts))

    def on_resize(self) -> None:
        self.query_one("#overview-charts").display = self.size.height >= self.TALL

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    # --- the Charts tab: PageDown / PageUp, and the cursor over the contexts ------------------------------

    def action_chart(self, step: int) -> None:
        """On the Charts tab, scroll to the top of the next (or previous) chart; on Config and Log, a page."""
        tabs = self.query_one(TabbedContent)
        if tabs.active != "charts":
            for pane in self.query(f"#{tabs.active} VerticalScroll").results(VerticalScroll):
                (pane.scroll_page_down if step > 0 else pane.scroll_page_up)(animate=False)
            return
        pane = self.query_one("#charts-pane", VerticalScroll)
        tops = [child.virtual_region.y for child in pane.children if child.display]
        y = round(pane.scroll_y)
        if step > 0:
            target = next((top for top in tops if top > y), None)
            pane.scroll_to(y=target, animate=False) if target is not None else pane.scroll_end(animate=False)
        else:
            pane.scroll_to(y=max((top for top in tops if top < y), default=0), animate=False)

    def action_context_cursor(self, step: int) -> None:
        """Move the cursor a context back or on (the first press: onto the last context with `[`, the first with
        `]`): a vertical line on the accuracy charts, the value of each of their lines there under them."""
        matrix = clean_matrix((self.record or {}).get("acc_matrix"))
        if not matrix:
            self.notify("no context evaluated yet: nothing to read", title="charts")
            return
        last = len(matrix) - 1
        if self.context_cursor is None:
            self.context_cursor = last if step < 0 else 0
        else:
            self.context_cursor = min(last, max(0, self.context_cursor + step))
        tabs = self.query_one(TabbedContent)
        if tabs.active != "charts":
            tabs.active = "charts"
        self.show_cursor()
        self.query_one("#charts-pane", VerticalScroll).scroll_home(animate=False)  # the accuracy charts in view

    def show_cursor(self) -> None:
        """The Charts tab's accuracy charts and the lines under them, for the cursor (a hint without one)."""
        readouts = {"#charts-accuracy": "#readout-accuracy", "#charts-average": "#readout-average"}
        for chart_id, readout_id in readouts.items():
            chart, readout = self.query_one(chart_id, MatrixChart), self.query_one(readout_id, Readout)
            rows = len(chart.matrix or [])
            if self.context_cursor is None or not rows:
                chart.set_cursor(None)
                readout.update(Text(READOUT_HINTS[chart_id] if rows else "", style="dim"))
                continue
            stage = min(self.context_cursor, rows - 1)
            chart.set_cursor(stage + 1)  # x: the contexts trained
            readout.update(chart.readout(stage))

    def action_figure(self) -> None:
        if not clean_matrix((self.record or {}).get("acc_matrix")):
            self.notify("nothing to draw yet: the run has not completed a context", title="figure")
            return
        self.write_figure([self.record], self.run_dir / "figures" / "accuracy.pdf")

    # --- e: clone into compose; R: resume -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clone":
            return isinstance(section(self.record or {}, "config").get("method"), dict)
        if action == "resume":
            return self.resume_refusal is None
        if action == "resume_refused":
            return self.resume_refusal is not None
        return True

    def action_clone(self) -> None:
        """The compose form filled with this run's config: change what you want, ctrl+s starts the copy."""
        from cltui.tui.screens.compose import ComposeScreen

        runs_dir = getattr(self.app, "runs_dir", self.run_dir.parent)
        screen = ComposeScreen(runs_dir, clone={"id": self.run_dir.name, **(self.record or {})})
        screen.sub_title = f"clone of {self.run_dir.name}"
        self.app.push_screen(screen)

    def action_resume_refused(self) -> None:
        if self.resume_refusal != "not read yet":
            self.notify(f"cannot resume {self.run_dir.name}: {self.resume_refusal}", title="resume")

    def action_resume(self) -> None:
        from cltui.tui.screens.confirm import ConfirmScreen

        done = len(clean_matrix((self.record or {}).get("acc_matrix")))
        self.app.push_screen(
            ConfirmScreen(f"Resume run {self.run_dir.name}?",
                          detail=f"It continues in the same folder after the {done} context"
                          f"{'' if done == 1 else 's'} it completed, in the background; the live screen follows it.",
                          confirm="Resume"),
            self.resume_answered)

    def resume_answered(self, yes: bool | None) -> None:
        if not yes or self.resume_refusal is not None:
            return
        self.resume_refusal = "it is being resumed"
        self.refresh_bindings()
        self.start_resume()

    @dataclass
    class Resumed(Message):
        problem: str | None = None
        handle: Any = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="resume")
    def start_resume(self) -> None:
        try:
            handle = launch_resume(self.run_dir)
        except Exception as e:  # noqa: BLE001 - any reason the worker could not start is said, not raised
            self.post_message(self.Resumed(str(e) or type(e).__name__))
            return
        self.post_message(self.Resumed(None, handle))

    @on(Resumed)
    def resumed(self, message: Resumed) -> None:
        if message.problem is not None:
            self.resume_refusal = None
            self.refresh_bindings()
            self.notify(f"could not resume {self.run_dir.name}: {message.problem}", severity="error")
            return
        if message.handle is not None and hasattr(self.app, "launched"):
            self.cltui.launched[self.run_dir.name] = message.handle
        from cltui.tui.screens.live import LiveScreen

        self.app.switch_screen(LiveScreen(self.run_dir))

    def action_dreams(self) -> None:
        dreams = (self.record or {}).get("dreams")
        if not isinstance(dreams, list) or not dreams:
            self.notify("this run has no dreams (only the dreaming methods save them)", title="dreams")
            return
        from cltui.tui.screens.dreams import DreamsScreen

        self.app.push_screen(DreamsScreen(self.run_dir))


def launch_resume(run_dir: Path) -> Any:
    """Continue the run in `run_dir` from its last checkpoint in a detached worker, as `cltui run --resume`
    does; its handle, for app.launched (quitting the TUI asks about it like any run started here)."""
    from core.launch import worker
    from core.runs.record import read_record
    from core.schema.config import validate_config

    record = read_record(run_dir)
    config = validate_config(record.config.model_dump(mode="json"))
    return worker.start_detached(config, run_dir, resume=True)
