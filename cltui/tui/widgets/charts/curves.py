"""The charts against the iterations trained: the accuracy during training (continual evaluation), the
training loss (a log axis when it spans decades) and, for a merge by L0, the active units per layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

from rich.text import Text

from cltui.tui.state.formats import fmt_loss
from cltui.tui.state.live import LossTrack
from cltui.tui.widgets.charts.base import (
    Chart,
    colour,
    hex_colour,
    legend,
    tick_label,
    ticks_for,
)
from core.runs.events import Event, UnitsActive
from core.runs.metrics import context_name

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


