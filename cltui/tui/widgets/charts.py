"""Plotext charts of a run's accuracy matrix, shared by the live, detail and compare screens.

`acc_matrix[i][j]` is the accuracy on context j after training contexts 0..i. Each chart keeps the data it
was given and builds the plotext figure only when that data or its own size changes, so a live screen
can call `set_matrix` on every event batch for nothing. The legend lives in the border subtitle when it fits
there, else in lines of its own under the plot, wrapped (plotext's own legend would hide the lines at 80x24).

The y-axis is fitted to the data (with a margin) by default; `y` on a screen of charts (`ScalesCharts`) flips
every chart on it to 0-100 and back. `LossChart` plots the training loss against the iterations (a log axis
when it spans decades), fed from Progress events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual_plotext import PlotextPlot

from cltui.tui.state.formats import fmt_loss
from core.runs.events import ContextStarted, Event, Progress, UnitsActive
from core.runs.metrics import avg_forgetting, context_name, seen_averages

Matrix = list[list[float]]

# Distinct hues that read on dark and light backgrounds; 24-bit here, Textual reduces them to the
# terminal's 256 colours.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (86, 180, 233), (230, 159, 0), (0, 200, 140), (240, 100, 180), (240, 228, 66),
    (213, 94, 0), (150, 130, 255), (160, 160, 160), (0, 158, 115), (204, 121, 167),
)


def colour(i: int) -> tuple[int, int, int]:
    return PALETTE[i % len(PALETTE)]


def hex_colour(i: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour(i))


def clean_matrix(acc_matrix: Any) -> Matrix:
    """The matrix as lists of floats; rows that are not lists of numbers are dropped and NaN becomes 0, so
    a damaged run.json draws what it can instead of raising."""
    rows: Matrix = []
    if not isinstance(acc_matrix, Sequence) or isinstance(acc_matrix, str):
        return rows
    for row in acc_matrix:
        if not isinstance(row, Sequence) or isinstance(row, str) or not row:
            continue
        try:
            rows.append([0.0 if math.isnan(float(a)) else float(a) for a in row])
        except (TypeError, ValueError):
            continue
    return rows


def scored(title: str, score: str) -> str:
    """A chart title for what the matrix holds: `accuracy … (%)`, or for a regression run `R² … (x100)`."""
    return title.replace("accuracy", "R²").replace("(%)", "(x100)") if score == "R²" else title


def nice_step(span: float, ticks: int) -> float:
    """The round step (1, 2, 5 times a power of ten) that puts at most about `ticks` ticks over `span`."""
    raw = max(span, 1e-9) / max(1, ticks)
    power = 10 ** math.floor(math.log10(raw))
    return next((m * power for m in (1, 2, 5, 10) if m * power >= raw), 10 * power)


def fitted_range(values: Sequence[float], full: bool = False, low: float = 0.0, high: float = 100.0,
                 least: float = 4.0) -> tuple[float, float]:
    """The y range of a percent chart: 0-100 when `full` or without data, else the data's range with a margin
    (at least `least` points wide), kept within [low, high]."""
    finite = [v for v in values if math.isfinite(v)]
    if full or not finite:
        return low, high
    lo, hi = min(finite), max(finite)
    span = max(hi - lo, least)
    margin = 0.08 * span
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2) - margin, max(hi, mid + span / 2) + margin
    if lo < low:
        lo, hi = low, min(high, hi + (low - lo))
    if hi > high:
        lo, hi = max(low, lo - (hi - high)), high
    return lo, hi


def ticks_for(lo: float, hi: float, count: int) -> list[float]:
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9:
        ticks.append(round(value, 6))
        value += step
    return ticks


def tick_label(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


LEGEND_GAP = "  "  # between a legend's entries: where a legend too long for one line wraps


def wrap_legend(text: Text, width: int) -> list[Text]:
    """A legend in lines of at most `width` cells, broken between entries only (an entry longer than a line
    is cut with an ellipsis)."""
    lines: list[Text] = []
    line = Text()
    for entry in text.split(LEGEND_GAP):
        if not entry.plain:
            continue
        if line.plain and line.cell_len + len(LEGEND_GAP) + entry.cell_len > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(LEGEND_GAP)
        line.append_text(entry)
    if line.plain:
        lines.append(line)
    for item in lines:
        item.truncate(width, overflow="ellipsis")
    return lines


def legend(entries: Sequence[tuple[str, int]], marker: str = "━") -> Text:
    text = Text()
    for n, (label, index) in enumerate(entries):
        if n:
            text.append(LEGEND_GAP)
        text.append(f"{marker} {label}", style=hex_colour(index))
    return text


class Chart(PlotextPlot):
    """A plotext plot that rebuilds its figure only when its data, size or theme changes: setters store the
    data and call `redraw`; `draw` builds the figure for the current size at the next render."""

    DEFAULT_CSS = """
    Chart {
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-align: left;
        height: 1fr;
        min-height: 7;
        padding: 0;
    }
    """
    EMPTY_TITLE: ClassVar[str] = "no context evaluated yet"
    SCALES: ClassVar[bool] = True  # a percent chart whose y-axis `y` flips between fitted and 0-100

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.version = 0
        self.full_scale = False  # y from 0 to 100 instead of fitted to the data
        self.drawn = False
        self.legend_text: Text = Text()
        self.legend_lines = 0  # rows under the plot that the legend takes (0: it is in the border subtitle)
        self._built: tuple[Any, RenderResult] | None = None
        self.border_title = self.EMPTY_TITLE

    def redraw(self) -> None:
        self.version += 1
        self.refresh()

    @property
    def has_data(self) -> bool:
        """Whether the chart draws something (`y` has nothing to rescale otherwise)."""
        return self.drawn

    def set_full_scale(self, full: bool) -> None:
        if full != self.full_scale:
            self.full_scale = full
            self.redraw()

    def legend_fits(self, width: int) -> bool:
        """Whether the legend fits the border subtitle, which sits between "╰─ " and " ─╯"; a chart not laid
        out yet (hidden in a tab) keeps it there until its width is known."""
        return width == 0 or self.legend_text.cell_len <= max(0, width - 4)

    def sync_legend(self) -> None:
        """The legend in the border subtitle when it fits there; else render puts it in lines of its own."""
        self.border_subtitle = self.legend_text if self.legend_fits(self.size.width) else ""

    def on_resize(self) -> None:
        self.sync_legend()

    def legend_rows(self, width: int) -> list[Text]:
        if not self.drawn or width == 0 or self.legend_fits(width):
            return []
        return wrap_legend(self.legend_text, max(1, width))

    def render(self) -> RenderResult:
        width, height = self.size
        key = (self.version, self.size, self.app.theme, self.full_scale)
        if self._built is None or self._built[0] != key:
            self.plt.clear_figure()
            lines = self.legend_rows(width)
            lines = lines[: max(0, height - 3)]
            self.legend_lines = len(lines)
            plot_height = max(1, height - len(lines))
            # Nothing to draw: an empty area under the title that says so, not plotext's empty frame.
            if self.draw():
                plt = self.plt
                plt.plotsize(width, plot_height)
                plt._set_size(width, plot_height)
                plt.theme(self._get_plotext_theme_name(self.app.theme))
                plot = Text.from_ansi(plt.build().rstrip("\n"))
                self._built = (key, Text("\n").join([plot, *lines]) if lines else plot)
            else:
                self._built = (key, Text(""))
        return self._built[1]

    @property
    def plot_height(self) -> int:
        return max(1, self.size.height - self.legend_lines)

    def draw(self) -> bool:
        """Build the figure with `self.plt` from the stored data; False when there is nothing to draw."""
        return False

    def frame(self, values: Sequence[float] = ()) -> None:
        """Only the left and bottom axes: the widget's border already frames the chart. The y-axis fitted to
        `values` (0-100 when `full_scale`); fewer y ticks when the chart is short, so their labels stay apart."""
        plt = self.plt
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        lo, hi = fitted_range(values, self.full_scale)
        plt.ylim(lo, hi)
        if (lo, hi) == (0.0, 100.0):
            plt.yticks([0, 25, 50, 75, 100] if self.plot_height >= 12 else [0, 50, 100])
        else:
            ticks = ticks_for(lo, hi, 5 if self.plot_height >= 12 else 3)
            plt.yticks(ticks, [tick_label(t) for t in ticks])

    def axes(self, contexts: int, values: Sequence[float] = ()) -> None:
        """Common frame of the context charts: x = number of contexts trained, y = percent."""
        plt = self.plt
        self.frame(values)
        ticks = list(range(1, contexts + 1))
        step = max(1, math.ceil(contexts / max(1, self.size.width // 5)))  # keep tick labels apart
        plt.xticks(ticks[::step], [str(t) for t in ticks[::step]])
        plt.xlim(0.8, contexts + 0.2)
        plt.xlabel("contexts trained")

    def titles(self, drawn: bool, title: str, subtitle: Text | str = "") -> None:
        self.drawn = drawn
        self.border_title = self.title if drawn else title
        self.legend_text = (Text(subtitle) if isinstance(subtitle, str) else subtitle) if drawn else Text()
        self.sync_legend()


class MatrixChart(Chart):
    """A chart drawn from one run's accuracy matrix; `set_matrix` redraws only when the matrix changed."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.matrix: Matrix | None = None
        self.joint = False  # trained once over every context (core.runs.metrics.trains_once), said by the record
        self.base_title = title

    def set_matrix(self, acc_matrix: Any, once: bool = False, score: str = "accuracy") -> None:
        matrix = clean_matrix(acc_matrix)
        title = scored(self.base_title, score)
        if matrix == self.matrix and once == self.joint and title == self.title:
            return
        self.matrix, self.joint, self.title = matrix, once, title
        self.titles(bool(matrix), self.EMPTY_TITLE, self.legend_for(matrix))
        self.redraw()

    def legend_for(self, matrix: Matrix) -> Text | str:
        return ""

    def is_joint(self, matrix: Matrix) -> bool:
        return self.joint


class AccuracyChart(MatrixChart):
    """One line per context j: accuracy on j after training contexts 0..i (from the moment j is trained)."""

    def __init__(self, title: str = "accuracy on each context (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)

    def legend_for(self, matrix: Matrix) -> Text | str:
        contexts = len(matrix[0]) if matrix else 0
        return legend([(context_name(j, short=True), j) for j in range(contexts)
                       if self.is_joint(matrix) or j < len(matrix)])

    def draw(self) -> bool:
        matrix = self.matrix
        if not matrix:
            return False
        plt = self.plt
        joint = self.is_joint(matrix)
        xs = list(range(1, len(matrix) + 1))
        values: list[float] = []
        for j in range(len(matrix[0])):
            start = 0 if joint else j
            if start >= len(matrix):
                continue  # not trained yet
            ys = [100 * matrix[i][j] if j < len(matrix[i]) else 0.0 for i in range(start, len(matrix))]
            values += ys
            plt.plot(xs[start:], ys, color=colour(j), marker="hd")
        self.axes(1 if joint else max(len(matrix[0]), len(matrix)), values)
        return True


class AverageChart(MatrixChart):
    """Average accuracy over the contexts seen so far, and average forgetting so far, after each context."""

    def __init__(self, title: str = "average accuracy / forgetting (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)

    def legend_for(self, matrix: Matrix) -> Text | str:
        return legend([("avg acc seen", 0), ("avg forgetting", 1)])

    def draw(self) -> bool:
        matrix = self.matrix
        if not matrix:
            return False
        plt = self.plt
        xs = list(range(1, len(matrix) + 1))
        averages = [100 * a for a in seen_averages(matrix, self.joint)]
        plt.plot(xs, averages, color=colour(0), marker="hd")
        forgetting = [(i + 1, avg_forgetting(matrix[: i + 1])) for i in range(1, len(matrix))]
        points = [(x, 100 * f) for x, f in forgetting if f is not None]
        if points:
            plt.plot([x for x, _ in points], [f for _, f in points], color=colour(1), marker="hd")
        self.axes(1 if self.is_joint(matrix) else max(len(matrix[0]), len(matrix)), averages + [f for _, f in points])
        return True


Curve = list[tuple[int, int, list[float]]]  # (iteration, stage, accuracy on each context)
CURVE_POINTS_PER_COLUMN = 2  # a long curve is thinned to about this many points per column of the chart


def clean_curve(acc_curve: Any) -> Curve:
    """run.json's acc_curve (or the live points) as (iteration, stage, accuracies), sorted by iteration; points
    that are not [int, int, [numbers]] are dropped, so a damaged record draws what it can."""
    points: Curve = []
    if not isinstance(acc_curve, Sequence) or isinstance(acc_curve, str):
        return points
    for p in acc_curve:
        try:
            it, stage, accs = p
            points.append((int(it), int(stage), [0.0 if math.isnan(float(a)) else float(a) for a in accs]))
        except (TypeError, ValueError):
            continue
    return sorted(points, key=lambda p: p[0])


def boundaries(curve: Curve) -> list[int]:
    """The iterations at which a new stage starts: the last point of the stage before it."""
    return [a[0] for a, b in pairwise(curve) if b[1] != a[1]]


def thin(xs: list[int], ys: list[float], width: int) -> tuple[list[int], list[float]]:
    """At most about `width` x CURVE_POINTS_PER_COLUMN points, keeping each bucket's lowest and highest, so a
    one-iteration dip (the stability gap) survives the thinning."""
    bucket = math.ceil(len(xs) / max(1, width * CURVE_POINTS_PER_COLUMN // 2))
    if bucket <= 1:
        return xs, ys
    out_x, out_y = [], []
    for start in range(0, len(xs), bucket):
        part = range(start, min(start + bucket, len(xs)))
        keep = sorted({min(part, key=ys.__getitem__), max(part, key=ys.__getitem__)})
        out_x += [xs[i] for i in keep]
        out_y += [ys[i] for i in keep]
    return out_x, out_y


class CurveChart(Chart):
    """Continual evaluation (train.eval_every): accuracy on each context against the iterations trained, from
    the stage that learns it on (every context for a joint run), the context boundaries as vertical lines."""

    EMPTY_TITLE: ClassVar[str] = "no continual evaluation yet"

    def __init__(self, title: str = "accuracy during training (%) · | context boundary", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.curve: Curve | None = None
        self.joint: bool | None = None

    def set_curve(self, acc_curve: Any, joint: bool | None = None) -> None:
        curve = clean_curve(acc_curve)
        if curve == self.curve and joint == self.joint:
            return
        self.curve, self.joint = curve, joint
        contexts = len(curve[-1][2]) if curve else 0
        last = max((p[1] for p in curve), default=-1)
        self.titles(bool(curve), self.EMPTY_TITLE,
                    legend([(context_name(j, short=True), j) for j in range(contexts) if joint or j <= last]))
        self.redraw()

    def draw(self) -> bool:
        curve = self.curve
        if not curve:
            return False
        plt = self.plt
        width = max(10, self.size.width - 8)
        for x in boundaries(curve):
            plt.vline(x, "gray")
        values: list[float] = []
        for j in range(len(curve[-1][2])):
            shown = [p for p in curve if (self.joint or p[1] >= j) and j < len(p[2])]
            if shown:
                xs, ys = thin([p[0] for p in shown], [100 * p[2][j] for p in shown], width)
                values += ys
                plt.plot(xs, ys, color=colour(j), marker="braille")
        self.frame(values)
        plt.xlim(curve[0][0], max(curve[-1][0], curve[0][0] + 1))
        plt.xlabel("iterations")
        return True


class AverageByRunChart(Chart):
    """Compare: average accuracy over the contexts seen, after each context, one line per run (or per group
    of runs: the mean of theirs)."""

    def __init__(self, title: str = "average accuracy so far (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.lines: list[tuple[str, int, list[float]]] | None = None

    @property
    def runs(self) -> list[tuple[str, list[float]]] | None:
        return None if self.lines is None else [(label, ys) for label, _, ys in self.lines]

    def set_runs(self, runs: Sequence[tuple[str, Any, bool]]) -> None:
        """One line per (label, acc_matrix, trained once)."""
        lines = []
        for k, (label, m, once) in enumerate(runs):
            lines.append((label, k, [100 * a for a in seen_averages(clean_matrix(m), once)]))
        self.set_lines(lines)

    def set_lines(self, lines: Sequence[tuple[str, int, Sequence[float]]]) -> None:
        """(label, colour index, average accuracy in % after each context) per line."""
        cleaned = [(label, k, [float(y) for y in ys]) for label, k, ys in lines]
        if cleaned == self.lines:
            return
        self.lines = cleaned
        self.titles(any(ys for _, _, ys in cleaned), "no run has an evaluated context",
                    legend([(label, k) for label, k, ys in cleaned if ys]))
        self.redraw()

    def draw(self) -> bool:
        drawn = [(k, ys) for _, k, ys in self.lines or [] if ys]
        if not drawn:
            return False
        for k, ys in drawn:
            self.plt.plot(list(range(1, len(ys) + 1)), ys, color=colour(k), marker="hd")
        self.axes(max(len(ys) for _, ys in drawn), [y for _, ys in drawn for y in ys])
        return True


@dataclass(frozen=True)
class BarValue:
    """One bar of FinalAccuracyChart: a run's final average accuracy (0..1), or a group's mean with its
    standard error and the number of runs."""

    label: str
    colour: int
    value: float | None
    sem: float | None = None
    n: int = 1


class FinalAccuracyChart(Chart):
    """Compare: final average accuracy per run, one bar each; per group of runs, the mean with ± SEM."""

    def __init__(self, title: str = "final average accuracy (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.bars: list[BarValue] | None = None

    @property
    def values(self) -> list[tuple[str, float | None]] | None:
        return None if self.bars is None else [(b.label, b.value) for b in self.bars]

    def set_runs(self, values: Sequence[tuple[str, float | None]]) -> None:
        self.set_bars([BarValue(label, k, v) for k, (label, v) in enumerate(values)])

    def set_bars(self, bars: Sequence[BarValue]) -> None:
        def number(v: Any) -> float | None:
            return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

        cleaned = [BarValue(b.label, b.colour, number(b.value), number(b.sem), b.n) for b in bars]
        if cleaned == self.bars:
            return
        self.bars = cleaned
        grouped = any(b.n > 1 for b in cleaned)
        self.title = "final avg accuracy (%), mean ± SEM" if grouped else "final average accuracy (%)"
        self.titles(any(b.value is not None for b in cleaned), "no run has a final accuracy",
                    legend([(self.legend_label(b), b.colour) for b in cleaned if b.value is not None], marker="█"))
        self.redraw()

    @staticmethod
    def legend_label(bar: BarValue) -> str:
        assert bar.value is not None
        if bar.n > 1:
            sem = f"±{100 * bar.sem:.1f}" if bar.sem is not None else ""
            return f"{bar.label} {100 * bar.value:.1f}{sem} n={bar.n}"
        return f"{bar.label} {100 * bar.value:.1f}"

    def draw(self) -> bool:
        drawn = [b for b in self.bars or [] if b.value is not None]
        if not drawn:
            return False
        plt = self.plt
        values: list[float] = []
        for n, b in enumerate(drawn, start=1):  # one call per bar: plotext colours a whole call alike
            assert b.value is not None
            plt.bar([n], [100 * b.value], color=colour(b.colour), width=0.6)
            values.append(100 * b.value)
            if b.sem:  # the standard error as a whisker over the bar's top
                low, high = 100 * (b.value - b.sem), 100 * (b.value + b.sem)
                plt.plot([n, n], [low, high], color="white", marker="│")
                values += [low, high]
        # Labels under the bars when they fit between them; else the legend names them.
        room = max(1, (self.size.width - 6) // len(drawn))
        labels = [b.label if len(b.label) < room else b.label[: max(1, room - 1)] for b in drawn]
        plt.xticks(list(range(1, len(drawn) + 1)), labels)
        plt.xlim(0.4, len(drawn) + 0.6)
        # Bars compare lengths: the axis starts at 0 unless every bar is far from it (ER's 87-100 %).
        low, high = min(values), max(values)
        self.frame([0.0, *values] if low < 2 * (high - low) else values)
        return True


class LatentMapChart(Chart):
    """Dreams: real and dreamed features of each class in two dimensions (latent.json); colour per class,
    '•' for real and 'x' for dreamed, so a class whose dreams land away from its real features shows."""

    EMPTY_TITLE: ClassVar[str] = "no latent map"

    def __init__(self, title: str = "latent map", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.points: dict[str, list[tuple[float, float, int]]] | None = None
        self.class_ids: list[int] = []

    def set_latent(self, latent: Any) -> None:
        points: dict[str, list[tuple[float, float, int]]] = {}
        latent = latent if isinstance(latent, dict) else {}
        for kind in ("real", "dreamed"):
            part = latent.get(kind) if isinstance(latent.get(kind), dict) else {}
            xs, ys, labels = (part.get(k) if isinstance(part.get(k), list) else [] for k in ("x", "y", "label"))
            points[kind] = [(float(x), float(y), int(c)) for x, y, c in zip(xs, ys, labels, strict=False)
                            if all(isinstance(v, (int, float)) and math.isfinite(v) for v in (x, y, c))]
        if points == self.points:
            return
        self.points = points
        self.class_ids = sorted({c for pts in points.values() for _, _, c in pts})
        ratio = latent.get("explained_variance_ratio")
        method = str(latent.get("method") or "").upper()
        if isinstance(ratio, list) and len(ratio) >= 2 and all(isinstance(r, (int, float)) for r in ratio[:2]):
            method += f" {100 * ratio[0]:.0f}% + {100 * ratio[1]:.0f}% var"
        self.title = f"latent map{' · ' + method if method.strip() else ''}"
        subtitle = Text(f"• real{LEGEND_GAP}x dreamed{LEGEND_GAP}", style="dim")
        subtitle.append_text(legend([(str(c), c) for c in self.class_ids], marker="■"))
        self.titles(bool(self.class_ids), self.EMPTY_TITLE, subtitle)
        self.redraw()

    def draw(self) -> bool:
        if not self.points or not self.class_ids:
            return False
        plt = self.plt
        for kind, marker in (("real", "•"), ("dreamed", "x")):
            for c in self.class_ids:
                pts = [(x, y) for x, y, label in self.points[kind] if label == c]
                if pts:
                    plt.scatter([x for x, _ in pts], [y for _, y in pts], marker=marker, color=colour(c))
        # No axes: the widget's border frames the map (an axis beside it drew "│││"), and a projection's
        # coordinates mean nothing to read.
        plt.frame(False)
        plt.xaxes(False, False)
        plt.yaxes(False, False)
        plt.xticks([])
        plt.yticks([])
        return True


# --- the training loss ------------------------------------------------------------------------------------


class LossTrack:
    """The training loss against the iterations trained, folded from Progress events (the `train` phase):
    each context's steps count on from the iterations of the contexts before it; a context started again (a
    resumed run) drops its old points and those after it."""

    def __init__(self) -> None:
        self.iterations: dict[int, int] = {}  # context -> its iterations
        self.points: dict[int, list[tuple[int, float]]] = {}  # context -> (step, loss)

    def apply(self, event: Event) -> bool:
        """Fold one event in; whether the points changed."""
        if isinstance(event, ContextStarted):
            self.iterations[event.context] = event.iterations
            dropped = [k for k in self.points if k >= event.context]
            for k in dropped:
                del self.points[k]
            return bool(dropped)
        if isinstance(event, Progress) and event.phase == "train" and isinstance(event.loss, (int, float)) \
                and math.isfinite(event.loss):
            self.iterations.setdefault(event.context, event.total)
            self.points.setdefault(event.context, []).append((event.step, float(event.loss)))
            return True
        return False

    def series(self) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        offset = 0
        for k in range(max(self.points, default=-1) + 1):
            out += [(offset + step, loss) for step, loss in self.points.get(k, [])]
            offset += self.iterations.get(k, 0)
        return out

    def boundaries(self) -> list[int]:
        """The iterations at which each context after the first starts."""
        ends, offset = [], 0
        for k in range(max(self.points, default=-1)):
            offset += self.iterations.get(k, 0)
            ends.append(offset)
        return ends


def loss_track(events: Sequence[Event]) -> LossTrack:
    track = LossTrack()
    for event in events:
        track.apply(event)
    return track


class LossChart(Chart):
    """The training loss against the iterations trained, the context boundaries as vertical lines; a log
    y-axis (decades labelled) when the loss spans more than two decades."""

    EMPTY_TITLE: ClassVar[str] = "no training loss reported yet"
    SCALES: ClassVar[bool] = False  # not a percentage: nothing to show from 0 to 100

    def __init__(self, title: str = "training loss", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.points: list[tuple[int, float]] | None = None
        self.marks: list[int] = []
        self.log_scale = False

    def set_points(self, points: Sequence[tuple[int, float]], boundaries: Sequence[int] = ()) -> None:
        cleaned = [(int(x), float(y)) for x, y in points if math.isfinite(y)]
        if cleaned == self.points and list(boundaries) == self.marks:
            return
        self.points, self.marks = cleaned, list(boundaries)
        positive = [y for _, y in cleaned if y > 0]
        self.log_scale = bool(positive) and len(positive) == len(cleaned) and max(positive) / min(positive) > 100
        self.title = "training loss (log scale)" if self.log_scale else "training loss"
        last = cleaned[-1][1] if cleaned else None
        self.titles(bool(cleaned), self.EMPTY_TITLE, Text(f"last {fmt_loss(last)}", style="dim") if cleaned else "")
        self.redraw()

    def set_track(self, track: LossTrack) -> None:
        self.set_points(track.series(), track.boundaries())

    def draw(self) -> bool:
        points = self.points
        if not points:
            return False
        plt = self.plt
        width = max(10, self.size.width - 8)
        for x in self.marks:
            plt.vline(x, "gray")
        ys = [math.log10(y) for _, y in points] if self.log_scale else [y for _, y in points]
        xs, ys = thin([x for x, _ in points], ys, width)
        plt.plot(xs, ys, color=colour(0), marker="braille")
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        lo, hi = min(ys), max(ys)
        if hi - lo < 1e-12:
            lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
        margin = 0.06 * (hi - lo)
        lo, hi = lo - margin, hi + margin
        if not self.log:
            lo = max(lo, 0.0) if min(ys) >= 0 else lo
        plt.ylim(lo, hi)
        count = 4 if self.plot_height >= 12 else 3
        if self.log_scale:
            ticks = list(range(math.ceil(lo), math.floor(hi) + 1))
            step = max(1, math.ceil(len(ticks) / count))
            ticks = ticks[::step]
            plt.yticks(ticks, [fmt_loss(10.0 ** t) for t in ticks])
        else:
            ticks = ticks_for(lo, hi, count)
            plt.yticks(ticks, [fmt_loss(t) for t in ticks])
        first, last = min(xs), max(max(xs), min(xs) + 1)
        plt.xlim(first, last)
        xticks = [t for t in ticks_for(first, last, max(2, self.size.width // 12)) if first <= t <= last]
        plt.xticks(xticks, [tick_label(t) for t in xticks])
        plt.xlabel("iterations · | context boundary")
        return True


class UnitsChart(Chart):
    """Merging by L0 (`cltui merge --approach l0`): the units of each layer whose gate is still open, as a share
    of the joint (double-width) layer, against the joint-training step; the dotted line at each layer's `keep`
    share is where pruning will cut it (half: the teachers' width)."""

    EMPTY_TITLE: ClassVar[str] = "no L0 gates reported (a merge with --approach l0 draws them here)"
    SCALES: ClassVar[bool] = False  # already a share from 0 to 100 %

    def __init__(self, title: str = "active units per layer (% of the joint width)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.events: list[UnitsActive] = []

    def set_units(self, events: Sequence[Event]) -> None:
        units = [e for e in events if isinstance(e, UnitsActive)]
        if units == self.events:
            return
        self.events = units
        legend = Text()
        if units:
            last = units[-1]
            for i, layer in enumerate(last.active):
                legend.append(f"━ {layer} {last.active[layer]}/{last.widths.get(layer, '?')} ", style=hex_colour(i))
            legend.append(f"· keep {'/'.join(str(v) for v in last.keep.values())}", style="dim")
        self.titles(bool(units), self.EMPTY_TITLE, legend)
        self.redraw()

    def draw(self) -> bool:
        if not self.events:
            return False
        plt = self.plt
        last = self.events[-1]
        steps = [e.step for e in self.events]
        for i, layer in enumerate(last.active):
            width = max(1, last.widths.get(layer, 1))
            share = [100 * e.active.get(layer, 0) / width for e in self.events]
            plt.plot(steps, share, color=colour(i), marker="braille")
            keep = 100 * last.keep.get(layer, 0) / width
            plt.plot([steps[0], max(steps[-1], steps[0] + 1)], [keep, keep], color=colour(i), marker="dot")
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        plt.ylim(0, 105)
        plt.yticks([0, 50, 100], ["0", "50", "100"])
        plt.xlim(0, max(last.total, 1))
        xticks = ticks_for(0, max(last.total, 1), max(2, self.size.width // 12))
        plt.xticks(xticks, [tick_label(t) for t in xticks])
        plt.xlabel("joint-training step · dots: kept by pruning")
        return True


class SweepChart(Chart):
    """A sweep's metric against one swept parameter (`cltui sweep`, core/studies/sweep.py's axis table): validation and
    test accuracy (mean over seeds and the other axes) at each value, the values evenly spaced in their order
    (a log grid reads as one), the chosen value marked."""

    EMPTY_TITLE: ClassVar[str] = "no run of the sweep has finished yet"

    def __init__(self, title: str = "accuracy against the swept value (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.key = ""
        self.rows: list[tuple[str, float | None, float | None]] = []  # (value as shown, validation, test)
        self.chosen: str | None = None

    def set_axis(self, key: str, rows: Sequence[tuple[str, float | None, float | None]], chosen: str | None) -> None:
        rows = list(rows)
        if (key, rows, chosen) == (self.key, self.rows, self.chosen):
            return
        self.key, self.rows, self.chosen = key, rows, chosen
        drawn = any(v is not None or t is not None for _, v, t in rows)
        legend = Text.assemble(("━ validation  ", hex_colour(0)), ("━ test", hex_colour(1)),
                               (f"  · chosen {key}={chosen}" if chosen is not None else "", "dim"))
        self.titles(drawn, self.EMPTY_TITLE, legend)
        self.redraw()

    def draw(self) -> bool:
        if not any(v is not None or t is not None for _, v, t in self.rows):
            return False
        plt = self.plt
        xs = list(range(1, len(self.rows) + 1))
        values: list[float] = []
        for i, pick in enumerate((lambda r: r[1], lambda r: r[2])):
            points = [(x, 100 * pick(r)) for x, r in zip(xs, self.rows, strict=False) if pick(r) is not None]
            if points:
                plt.plot([x for x, _ in points], [y for _, y in points], color=colour(i), marker="braille")
                values += [y for _, y in points]
        if self.chosen is not None and self.chosen in [r[0] for r in self.rows]:
            plt.vline([r[0] for r in self.rows].index(self.chosen) + 1, "gray")
        self.frame(values)
        step = max(1, math.ceil(len(xs) / max(1, self.size.width // 8)))  # keep the value labels apart
        plt.xticks(xs[::step], [r[0] for r in self.rows][::step])
        plt.xlim(0.7, len(xs) + 0.3)
        plt.xlabel(self.key)
        return True


# --- the `y` key ----------------------------------------------------------------------------------------

Y_SCALE_BINDING = Binding("y", "toggle_y_scale", "Y-axis")


class ScalesCharts:
    """For a screen of charts: put Y_SCALE_BINDING in its BINDINGS; `y` flips every percent chart on the
    screen between a y-axis fitted to the data and 0-100. Without a chart that draws something it does
    nothing (a notice says so)."""

    y_full_scale: bool = False

    def action_toggle_y_scale(self) -> None:
        charts = [c for c in self.query(Chart) if c.SCALES]  # type: ignore[attr-defined]
        if not any(c.has_data for c in charts):
            self.notify("no chart data to rescale yet", title="y-axis")  # type: ignore[attr-defined]
            return
        self.y_full_scale = not self.y_full_scale
        for chart in charts:
            chart.set_full_scale(self.y_full_scale)
