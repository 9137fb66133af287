"""Plotext charts of a run's accuracy matrix, shared by the live, detail and compare screens.

`acc_matrix[i][j]` is the accuracy on context j after training contexts 0..i. Each chart keeps the data it
was given and builds the plotext figure only when that data or its own size changes, so a live screen
can call `set_matrix` on every event batch for nothing. The legend lives in the border subtitle (the
plot area is too small at 80x24 for plotext's own legend to leave the lines visible).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from core.metrics import avg_forgetting

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


def is_joint(matrix: Matrix) -> bool:
    """One training stage over every context (the joint baseline): every context counts as seen."""
    return len(matrix) == 1 and len(matrix[0]) > 1


def seen_average(matrix: Matrix, i: int, joint: bool | None = None) -> float:
    row = matrix[i]
    seen = row if (is_joint(matrix) if joint is None else joint) else row[: i + 1]
    return sum(seen) / len(seen)


def legend(entries: Sequence[tuple[str, int]], marker: str = "━") -> Text:
    text = Text()
    for n, (label, index) in enumerate(entries):
        if n:
            text.append(" ")
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

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.version = 0
        self._built: tuple[Any, RenderResult] | None = None
        self.border_title = self.EMPTY_TITLE

    def redraw(self) -> None:
        self.version += 1
        self.refresh()

    def render(self) -> RenderResult:
        key = (self.version, self.size, self.app.theme)
        if self._built is None or self._built[0] != key:
            self.plt.clear_figure()
            # Nothing to draw: an empty area under the title that says so, not plotext's empty frame.
            self._built = (key, super().render() if self.draw() else Text(""))
        return self._built[1]

    def draw(self) -> bool:
        """Build the figure with `self.plt` from the stored data; False when there is nothing to draw."""
        return False

    def frame(self) -> None:
        """Only the left and bottom axes: the widget's border already frames the chart; fewer y ticks when
        the chart is short, so their labels stay apart."""
        plt = self.plt
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        plt.ylim(0, 100)
        plt.yticks([0, 25, 50, 75, 100] if self.size.height >= 12 else [0, 50, 100])

    def axes(self, contexts: int) -> None:
        """Common frame of the context charts: x = number of contexts trained, y = percent."""
        plt = self.plt
        self.frame()
        ticks = list(range(1, contexts + 1))
        step = max(1, math.ceil(contexts / max(1, self.size.width // 5)))  # keep tick labels apart
        plt.xticks(ticks[::step], [str(t) for t in ticks[::step]])
        plt.xlim(0.8, contexts + 0.2)
        plt.xlabel("contexts trained")

    def titles(self, drawn: bool, title: str, subtitle: Text | str = "") -> None:
        self.border_title = self.title if drawn else title
        self.border_subtitle = subtitle if drawn else ""


class MatrixChart(Chart):
    """A chart drawn from one run's accuracy matrix; `set_matrix` redraws only when the matrix changed."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.matrix: Matrix | None = None
        self.joint: bool | None = None  # said by the run's record; None: guessed from the matrix's shape

    def set_matrix(self, acc_matrix: Any, joint: bool | None = None) -> None:
        matrix = clean_matrix(acc_matrix)
        if matrix == self.matrix and joint == self.joint:
            return
        self.matrix, self.joint = matrix, joint
        self.titles(bool(matrix), self.EMPTY_TITLE, self.legend_for(matrix))
        self.redraw()

    def legend_for(self, matrix: Matrix) -> Text | str:
        return ""

    def is_joint(self, matrix: Matrix) -> bool:
        return is_joint(matrix) if self.joint is None else self.joint


class AccuracyChart(MatrixChart):
    """One line per context j: accuracy on j after training contexts 0..i (from the moment j is trained)."""

    def __init__(self, title: str = "accuracy on each context (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)

    def legend_for(self, matrix: Matrix) -> Text | str:
        contexts = len(matrix[0]) if matrix else 0
        return legend([(f"c{j}", j) for j in range(contexts) if self.is_joint(matrix) or j < len(matrix)])

    def draw(self) -> bool:
        matrix = self.matrix
        if not matrix:
            return False
        plt = self.plt
        joint = self.is_joint(matrix)
        xs = list(range(1, len(matrix) + 1))
        for j in range(len(matrix[0])):
            start = 0 if joint else j
            if start >= len(matrix):
                continue  # not trained yet
            ys = [100 * matrix[i][j] if j < len(matrix[i]) else 0.0 for i in range(start, len(matrix))]
            plt.plot(xs[start:], ys, color=colour(j), marker="hd")
        self.axes(1 if joint else max(len(matrix[0]), len(matrix)))
        return True


class AverageChart(MatrixChart):
    """Average accuracy over the contexts seen so far, and average forgetting so far, after each context."""

    def __init__(self, title: str = "average accuracy / forgetting (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)

    def legend_for(self, matrix: Matrix) -> Text | str:
        return legend([("avg acc (seen)", 0), ("avg forgetting", 1)])

    def draw(self) -> bool:
        matrix = self.matrix
        if not matrix:
            return False
        plt = self.plt
        xs = list(range(1, len(matrix) + 1))
        plt.plot(xs, [100 * seen_average(matrix, i, self.joint) for i in range(len(matrix))], color=colour(0), marker="hd")
        forgetting = [(i + 1, avg_forgetting(matrix[: i + 1])) for i in range(1, len(matrix))]
        points = [(x, 100 * f) for x, f in forgetting if f is not None]
        if points:
            plt.plot([x for x, _ in points], [f for _, f in points], color=colour(1), marker="hd")
        self.axes(1 if self.is_joint(matrix) else max(len(matrix[0]), len(matrix)))
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
                    legend([(f"c{j}", j) for j in range(contexts) if joint or j <= last]))
        self.redraw()

    def draw(self) -> bool:
        curve = self.curve
        if not curve:
            return False
        plt = self.plt
        width = max(10, self.size.width - 8)
        for x in boundaries(curve):
            plt.vline(x, "gray")
        for j in range(len(curve[-1][2])):
            shown = [p for p in curve if (self.joint or p[1] >= j) and j < len(p[2])]
            if shown:
                xs, ys = thin([p[0] for p in shown], [100 * p[2][j] for p in shown], width)
                plt.plot(xs, ys, color=colour(j), marker="braille")
        self.frame()
        plt.xlim(curve[0][0], max(curve[-1][0], curve[0][0] + 1))
        plt.xlabel("iterations")
        return True


class AverageByRunChart(Chart):
    """Compare: average accuracy over the contexts seen, after each context, one line per run."""

    def __init__(self, title: str = "average accuracy so far (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.runs: list[tuple[str, Matrix]] | None = None

    def set_runs(self, runs: Sequence[tuple[str, Any]]) -> None:
        cleaned = [(label, clean_matrix(m)) for label, m in runs]
        if cleaned == self.runs:
            return
        self.runs = cleaned
        self.titles(any(m for _, m in cleaned), "no run has an evaluated context",
                    legend([(label, k) for k, (label, m) in enumerate(cleaned) if m]))
        self.redraw()

    def draw(self) -> bool:
        drawn = [(k, m) for k, (_, m) in enumerate(self.runs or []) if m]
        if not drawn:
            return False
        for k, m in drawn:
            self.plt.plot(list(range(1, len(m) + 1)), [100 * seen_average(m, i) for i in range(len(m))],
                          color=colour(k), marker="hd")
        self.axes(max(len(m) for _, m in drawn))
        return True


class FinalAccuracyChart(Chart):
    """Compare: final average accuracy per run, one bar each."""

    def __init__(self, title: str = "final average accuracy (%)", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.values: list[tuple[str, float | None]] | None = None

    def set_runs(self, values: Sequence[tuple[str, float | None]]) -> None:
        cleaned = [(label, float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
                   for label, v in values]
        if cleaned == self.values:
            return
        self.values = cleaned
        self.titles(any(v is not None for _, v in cleaned), "no run has a final accuracy",
                    legend([(f"{label} {100 * v:.1f}", k) for k, (label, v) in enumerate(cleaned) if v is not None],
                           marker="█"))
        self.redraw()

    def draw(self) -> bool:
        drawn = [(k, label, 100 * v) for k, (label, v) in enumerate(self.values or []) if v is not None]
        if not drawn:
            return False
        plt = self.plt
        for n, (k, _, v) in enumerate(drawn):  # one call per bar: plotext colours a whole call alike
            plt.bar([n + 1], [v], color=colour(k), width=0.6)
        # The numbers of the table and the legend: run names collide under the bars as soon as there are a few.
        plt.xticks(list(range(1, len(drawn) + 1)), [label.split(" ", 1)[0] for _, label, _ in drawn])
        plt.xlim(0.4, len(drawn) + 0.6)
        self.frame()
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
        subtitle = Text("• real  x dreamed ", style="dim")
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
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        plt.xticks([])
        plt.yticks([])
        return True
