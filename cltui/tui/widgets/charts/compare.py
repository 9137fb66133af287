"""The charts that set runs side by side: the average accuracy so far per run, the final average accuracy
as bars, and a sweep's accuracy against the swept value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import RenderResult

from cltui.tui.widgets.charts.base import (
    LEGEND_GAP,
    Chart,
    clean_matrix,
    colour,
    hex_colour,
    legend,
    nice_step,
)
from core.runs.metrics import seen_averages


class AverageByRunChart(Chart):
    """Compare: average accuracy over the contexts seen, after each context, one line per run (or per group
    of runs: the mean of theirs). A baseline line (`set_lines(..., baseline=i)`) comes first in the legend and
    is drawn last, on top of the others. With a context cursor (`move_cursor`, a vertical line) the legend
    reads every line's value at that context."""

    def __init__(self, title: str = "average accuracy so far (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.lines: list[tuple[str, int, list[float]]] | None = None
        self.baseline: int | None = None

    @property
    def runs(self) -> list[tuple[str, list[float]]] | None:
        return None if self.lines is None else [(label, ys) for label, _, ys in self.lines]

    @property
    def contexts(self) -> int:
        return max((len(ys) for _, _, ys in self.lines or []), default=0)

    def set_runs(self, runs: Sequence[tuple[str, Any, bool]]) -> None:
        """One line per (label, acc_matrix, trained once)."""
        lines = []
        for k, (label, m, once) in enumerate(runs):
            lines.append((label, k, [100 * a for a in seen_averages(clean_matrix(m), once)]))
        self.set_lines(lines)

    def set_lines(self, lines: Sequence[tuple[str, int, Sequence[float]]], baseline: int | None = None) -> None:
        """(label, colour index, average accuracy in % after each context) per line; `baseline`: the index of
        the line the others are read against."""
        cleaned = [(label, k, [float(y) for y in ys]) for label, k, ys in lines]
        if (cleaned, baseline) == (self.lines, self.baseline):
            return
        self.lines, self.baseline = cleaned, baseline
        if self.cursor is not None and self.cursor > self.contexts:
            self.cursor = self.contexts or None
        self.relegend()

    def move_cursor(self, step: int) -> int | None:
        """Move the context cursor `step` contexts (the first step back from no cursor lands on the last
        context, the first step on on the first); returns the context it is at, None without lines."""
        contexts = self.contexts
        if not contexts:
            return None
        start = self.cursor if self.cursor is not None else (contexts + 1 if step < 0 else 0)
        self.set_cursor(min(contexts, max(1, start + step)))
        self.relegend()
        return self.cursor

    def values_at(self, context: int) -> list[tuple[str, int, float | None]]:
        """Every line's (label, colour, value in %) after `context` (1-based); None where a line has no value
        there. The baseline first."""
        return [(label, k, ys[context - 1] if 0 < context <= len(ys) else None) for label, k, ys in self.ordered()]

    def ordered(self) -> list[tuple[str, int, list[float]]]:
        lines = list(self.lines or [])
        if self.baseline is not None and 0 <= self.baseline < len(lines):
            lines.insert(0, lines.pop(self.baseline))
        return lines

    def relegend(self) -> None:
        """The legend: the lines' names, or with a cursor their values there (`at 3: ━ er 91.2  ━ lwf 50.3`)."""
        lines = [line for line in self.ordered() if line[2]]
        if self.cursor is None:
            text = legend([(label, k) for label, k, _ in lines])
        else:
            text = Text(f"at {self.cursor}:", style="bold")
            for label, k, value in self.values_at(self.cursor):
                text.append(LEGEND_GAP)
                text.append(f"━ {label} {'–' if value is None else f'{value:.1f}'}", style=hex_colour(k))
        self.titles(bool(lines), "no run has an evaluated context", text)
        self.redraw()

    def draw(self) -> bool:
        drawn = [(k, ys) for _, k, ys in self.ordered()[::-1] if ys]  # the baseline last: on top
        if not drawn:
            return False
        for k, ys in drawn:
            self.plt.plot(list(range(1, len(ys) + 1)), ys, color=colour(k), marker="hd")
        self.axes(max(len(ys) for _, ys in drawn), [y for _, ys in drawn for y in ys])
        return True


@dataclass(frozen=True)
class BarValue:
    """One bar of FinalAccuracyChart: a run's final average accuracy (0..1), or a group's mean with its
    standard error and the number of runs; `baseline`: the bar the others are read against."""

    label: str
    colour: int
    value: float | None
    sem: float | None = None
    n: int = 1
    baseline: bool = False


EIGHTHS = " ▏▎▍▌▋▊▉"  # a bar's last cell, in eighths of a cell


class FinalAccuracyChart(Chart):
    """Compare: final average accuracy per run (per group of runs: the mean with ± SEM), one horizontal bar a
    row, so every name is whole and the bars' lengths read at any height. Bars start at 0 and end at a round
    value over the longest (100 with `y`); a baseline bar comes first, the others say their difference to it
    and a dotted line marks its value. A scale under the bars when there is a row for it."""

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

        cleaned = [BarValue(b.label, b.colour, number(b.value), number(b.sem), b.n, b.baseline) for b in bars]
        cleaned.sort(key=lambda b: not b.baseline)  # the baseline first, the rest in their order
        if cleaned == self.bars:
            return
        self.bars = cleaned
        grouped = any(b.n > 1 for b in cleaned)
        self.title = "final avg accuracy (%), mean ± SEM" if grouped else "final average accuracy (%)"
        self.titles(any(b.value is not None for b in cleaned), "no run has a final accuracy")
        self.redraw()

    @property
    def base(self) -> BarValue | None:
        return next((b for b in self.bars or [] if b.baseline and b.value is not None), None)

    @staticmethod
    def bar_name(bar: BarValue) -> str:
        return f"{bar.label} ×{bar.n}" if bar.n > 1 else bar.label

    @staticmethod
    def figure(bar: BarValue) -> str:
        if bar.value is None:
            return "–"
        return f"{100 * bar.value:.1f}" + (f"±{100 * bar.sem:.1f}" if bar.sem is not None else "")

    def difference(self, bar: BarValue) -> str:
        base = self.base
        if base is None:
            return ""
        if bar.baseline:
            return "base"
        return "" if bar.value is None else f"{100 * (bar.value - base.value):+.1f}"  # type: ignore[operator]

    def scale(self) -> float:
        """The value (in %) at the bars' right end: 100 with `y`, else the first round value over them all."""
        tops = [100 * (b.value + (b.sem or 0.0)) for b in self.bars or [] if b.value is not None]
        if self.full_scale or not tops or max(tops) <= 0:
            return 100.0
        step = nice_step(max(tops), 4)
        return step * math.ceil(max(tops) / step - 1e-9)

    @staticmethod
    def scale_text(width: int, top: float) -> str:
        """The scale under `width` cells of bars: 0 at the left, `top` at the right, the middle between."""
        cells = [" "] * width
        for value, at in ((0.0, 0), (top / 2, width // 2), (top, width)):
            label = f"{value:g}"
            start = max(0, min(width - len(label), at - len(label) // 2))
            cells[start:start + len(label)] = label
        return "".join(cells)

    def render(self) -> RenderResult:
        width, height = self.size
        if not self.drawn or not self.bars or width == 0 or height == 0:
            return Text("")
        bars = self.bars
        names = [self.bar_name(b) for b in bars]
        figures = [self.figure(b) for b in bars]
        deltas = [self.difference(b) for b in bars]
        name_w, figure_w = max(map(len, names)), max(map(len, figures))
        delta_w = max(map(len, deltas))
        bar_w = max(1, width - name_w - figure_w - (delta_w + 1 if delta_w else 0) - 2)
        top = self.scale()
        base = self.base
        mark = None if base is None or base.value is None else min(bar_w - 1, int(100 * base.value / top * bar_w))
        rows = len(bars) if len(bars) <= height else height - 1
        lines = []
        for bar, name, figure, delta in zip(bars[:rows], names, figures, deltas, strict=False):
            line = Text(name.ljust(name_w) + " ", style=f"bold {hex_colour(bar.colour)}" if bar.baseline
                        else hex_colour(bar.colour))
            eighths = 0 if bar.value is None else round(max(0.0, min(1.0, 100 * bar.value / top)) * bar_w * 8)
            full, part = divmod(eighths, 8)
            drawn = "█" * full + (EIGHTHS[part] if part else "")
            line.append(drawn, style=hex_colour(bar.colour))
            if mark is not None and not bar.baseline and mark >= len(drawn):  # the baseline's value, past the bar
                line.append(" " * (mark - len(drawn)) + "┊", style="dim")
                drawn += " " * (mark - len(drawn) + 1)
            line.append(" " * (bar_w - len(drawn) + 1))
            line.append(figure.rjust(figure_w))
            if delta_w:
                style = "dim" if delta in ("base", "") else ("green" if delta.startswith("+") else "red")
                line.append(" " + delta.rjust(delta_w), style=style)
            lines.append(line)
        if rows < len(bars):
            lines.append(Text(f"{len(bars) - rows} more in the table", style="dim"))
        elif len(lines) < height and bar_w >= 9:
            lines.append(Text(" " * (name_w + 1) + self.scale_text(bar_w, top), style="dim"))
        return Text("\n").join(lines)


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
        plt.xticks([float(x) for x in xs[::step]], [r[0] for r in self.rows][::step])
        plt.xlim(0.7, len(xs) + 0.3)
        plt.xlabel(self.key)
        return True


