"""The charts' common ground: the `Chart` base (a plotext plot rebuilt only when its data or size changes),
colours, fitted axes and ticks, legends that wrap, and the `y` key that flips a screen's charts to 0-100.

Each chart keeps the data it was given and builds the plotext figure only when that data or its own size
changes, so a live screen can call `set_matrix` on every event batch for nothing. The legend lives in the
border subtitle when it fits there, else in lines of its own under the plot, wrapped (plotext's own legend
would hide the lines at 80x24).

The y-axis is fitted to the data (with a margin) by default; `y` on a screen of charts (`ScalesCharts`) flips
every chart on it to 0-100 and back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual.widget import Widget
from textual_plotext import PlotextPlot

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


def thin_ticks(ticks: list[float], rows: int) -> list[float]:
    """At most one tick every other row of a chart's `rows` data rows: two labels on one row would show
    whichever plotext wrote last, and labels on adjacent rows run together."""
    most = max(2, (rows + 1) // 2)
    return ticks[:: math.ceil(len(ticks) / most)] if len(ticks) > most else ticks


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
        self.cursor: int | None = None  # the context a vertical line marks (`set_cursor`), None without one
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

    def set_cursor(self, x: int | None) -> None:
        """Mark context `x` with a vertical line on a context chart (`axes`), or no context (None): where a
        screen reads every line's value."""
        if x != self.cursor:
            self.cursor = x
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

    @property
    def data_rows(self) -> int:
        """The plot's rows for data: below them the x axis, its tick labels and its title."""
        return max(1, self.plot_height - 3)

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
            ticks = thin_ticks([0, 25, 50, 75, 100] if self.plot_height >= 12 else [0, 50, 100], self.data_rows)
            plt.yticks(ticks)
        else:
            ticks = thin_ticks(ticks_for(lo, hi, 5 if self.plot_height >= 12 else 3), self.data_rows)
            plt.yticks(ticks, [tick_label(t) for t in ticks])

    def axes(self, contexts: int, values: Sequence[float] = ()) -> None:
        """Common frame of the context charts: x = number of contexts trained, y = percent."""
        plt = self.plt
        self.frame(values)
        ticks = list(range(1, contexts + 1))
        step = max(1, math.ceil(contexts / max(1, self.size.width // 5)))  # keep tick labels apart
        plt.xticks([float(t) for t in ticks[::step]], [str(t) for t in ticks[::step]])
        plt.xlim(0.8, contexts + 0.2)
        plt.xlabel("contexts trained")
        if self.cursor is not None:
            plt.vline(self.cursor, "gray")

    def titles(self, drawn: bool, title: str, subtitle: Text | str = "") -> None:
        self.drawn = drawn
        self.border_title = self.title if drawn else title
        self.legend_text = (Text(subtitle) if isinstance(subtitle, str) else subtitle) if drawn else Text()
        self.sync_legend()


# --- the `y` key ----------------------------------------------------------------------------------------

Y_SCALE_BINDING = Binding("y", "toggle_y_scale", "Y-axis")


class ScalesCharts:
    """For a screen of charts: put Y_SCALE_BINDING in its BINDINGS; `y` flips every percent chart on the
    screen between a y-axis fitted to the data and 0-100. Without a chart that draws something it does
    nothing (a notice says so)."""

    y_full_scale: bool = False

    def action_toggle_y_scale(self) -> None:
        screen = cast(Widget, self)  # mixed into a Screen (a DOM base here would take the place of Screen's CSS)
        charts = [c for c in screen.query(Chart) if c.SCALES]
        if not any(c.has_data for c in charts):
            screen.notify("no chart data to rescale yet", title="y-axis")
            return
        self.y_full_scale = not self.y_full_scale
        for chart in charts:
            chart.set_full_scale(self.y_full_scale)
