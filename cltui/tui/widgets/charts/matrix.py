"""The charts of a run's accuracy matrix (`acc_matrix[i][j]`: the accuracy on context j after training
contexts 0..i): the accuracy on each context, and the average accuracy with the forgetting. Each reads out the
value of its lines after a given context (`readout`), for a screen that moves a cursor over the contexts."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from cltui.tui.widgets.charts.base import (
    LEGEND_GAP,
    Chart,
    Matrix,
    clean_matrix,
    colour,
    hex_colour,
    legend,
    scored,
)
from core.runs.metrics import Weights, avg_forgetting, context_name, seen_average, seen_averages, stage_name


class MatrixChart(Chart):
    """A chart drawn from one run's accuracy matrix; `set_matrix` redraws only when the matrix changed."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.matrix: Matrix | None = None
        self.joint = False  # trained once over every context (core.runs.metrics.trains_once), said by the record
        self.weights: Weights = None  # each context's share of an average (core.runs.metrics.class_weights)
        self.base_title = title

    def set_matrix(self, acc_matrix: Any, once: bool = False, score: str = "accuracy", weights: Weights = None) -> None:
        matrix = clean_matrix(acc_matrix)
        title = scored(self.base_title, score)
        if matrix == self.matrix and once == self.joint and title == self.title and weights == self.weights:
            return
        self.matrix, self.joint, self.title, self.weights = matrix, once, title, weights
        self.titles(bool(matrix), self.EMPTY_TITLE, self.legend_for(matrix))
        self.redraw()

    def legend_for(self, matrix: Matrix) -> Text | str:
        return ""

    def is_joint(self, matrix: Matrix) -> bool:
        return self.joint

    def values_at(self, stage: int) -> list[tuple[str, float, int]]:
        """Each line's value after row `stage` of the matrix, as drawn (x100): (label, value, colour index)."""
        return []

    def readout(self, stage: int) -> Text:
        """One line under the chart: the context and the value of each of its lines there, in the lines'
        colours (`after c2  ━ c0 70.2  ━ c1 75.4  ━ c2 97.2`); empty without a matrix."""
        matrix = self.matrix or []
        if not matrix:
            return Text()
        stage = min(max(stage, 0), len(matrix) - 1)
        text = Text(f"after {stage_name(stage, self.is_joint(matrix))}", style="bold")
        for label, value, index in self.values_at(stage):
            text.append(LEGEND_GAP)
            text.append(f"━ {label} ", style=hex_colour(index))
            text.append(f"{value:.1f}")
        return text


class AccuracyChart(MatrixChart):
    """One line per context j: accuracy on j after training contexts 0..i (from the moment j is trained)."""

    def __init__(self, title: str = "accuracy on each context (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)

    def legend_for(self, matrix: Matrix) -> Text | str:
        contexts = len(matrix[0]) if matrix else 0
        return legend([(context_name(j, short=True), j) for j in range(contexts)
                       if self.is_joint(matrix) or j < len(matrix)])

    def values_at(self, stage: int) -> list[tuple[str, float, int]]:
        """The accuracy on each context trained by then (every context for a run that trains once)."""
        matrix = self.matrix or []
        row = matrix[stage] if 0 <= stage < len(matrix) else []
        joint = self.is_joint(matrix)
        return [(context_name(j, short=True), 100 * a, j) for j, a in enumerate(row) if joint or j <= stage]

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

    def values_at(self, stage: int) -> list[tuple[str, float, int]]:
        """The average over the contexts seen, and the average forgetting (from the second context on)."""
        matrix = self.matrix or []
        if not 0 <= stage < len(matrix):
            return []
        values = []
        average = seen_average(matrix[stage], stage, self.is_joint(matrix), self.weights)
        if average is not None:
            values.append(("avg acc seen", 100 * average, 0))
        forgetting = avg_forgetting(matrix[: stage + 1]) if stage >= 1 else None
        if forgetting is not None:
            values.append(("avg forgetting", 100 * forgetting, 1))
        return values

    def draw(self) -> bool:
        matrix = self.matrix
        if not matrix:
            return False
        plt = self.plt
        xs = list(range(1, len(matrix) + 1))
        averages = [100 * a for a in seen_averages(matrix, self.joint, self.weights)]
        plt.plot(xs, averages, color=colour(0), marker="hd")
        forgetting = [(i + 1, avg_forgetting(matrix[: i + 1])) for i in range(1, len(matrix))]
        points = [(x, 100 * f) for x, f in forgetting if f is not None]
        if points:
            plt.plot([x for x, _ in points], [f for _, f in points], color=colour(1), marker="hd")
        self.axes(1 if self.is_joint(matrix) else max(len(matrix[0]), len(matrix)), averages + [f for _, f in points])
        return True


