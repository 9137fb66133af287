"""The charts that set runs side by side: the average accuracy so far per run, the final average accuracy
as bars, and a sweep's accuracy against the swept value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text

from cltui.tui.widgets.charts.base import (
    Chart,
    clean_matrix,
    colour,
    hex_colour,
    legend,
)
from core.runs.metrics import seen_averages


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


