"""The charts against the iterations trained: the accuracy during training (continual evaluation), the
training loss (a log axis when it spans decades) and, for a merge by L0, the active units per layer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    thin_ticks,
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
    """The training loss against the iterations trained: one line per context, never joined across a context
    boundary (a boundary is a vertical line), so the drop of each context reads as one; a log y-axis (decades
    labelled) when the loss spans more than two decades. Given the record's final losses (`set_track`), each
    context's line ends at its recorded final loss, so "last" is the figure the accuracy matrix shows."""

    EMPTY_TITLE: ClassVar[str] = "no training loss reported yet"
    SCALES: ClassVar[bool] = False  # not a percentage: nothing to show from 0 to 100

    def __init__(self, title: str = "training loss", **kwargs: Any) -> None:
        super().__init__(title, **kwargs)
        self.segments: list[list[tuple[int, float]]] = []  # one line per context
        self.points: list[tuple[int, float]] | None = None  # every point, the segments one after the other
        self.marks: list[int] = []
        self.log_scale = False

    def set_points(self, points: Sequence[tuple[int, float]], boundaries: Sequence[int] = ()) -> None:
        """Points against the iterations counted across contexts; the boundaries (each context's last
        iteration but the last context's) split them into one line per context."""
        ends = sorted(boundaries)
        segments: list[list[tuple[int, float]]] = [[] for _ in range(len(ends) + 1)]
        for x, y in points:
            segments[sum(1 for end in ends if x > end)].append((x, y))
        self.set_segments(segments, ends)

    def set_track(self, track: LossTrack, final_losses: Mapping[int, Any] | None = None) -> None:
        """The loss folded from the events; `final_losses` (context -> the final loss run.json records for it)
        puts each context's recorded final loss at its last iteration, in place of the last report there."""
        finals = final_losses or {}
        starts = [0, *track.boundaries()]
        segments = []
        for k in sorted(track.points):
            start = starts[k] if k < len(starts) else starts[-1]
            points = [(start + step, loss) for step, loss in track.points[k]]
            final = finals.get(k)
            if points and isinstance(final, (int, float)) and not isinstance(final, bool) and math.isfinite(final):
                end = start + track.iterations.get(k, points[-1][0] - start)
                points = [p for p in points if p[0] < end] + [(end, float(final))]
            segments.append(points)
        self.set_segments(segments, track.boundaries())

    def set_segments(self, segments: Sequence[Sequence[tuple[int, float]]], boundaries: Sequence[int] = ()) -> None:
        cleaned = [[(int(x), float(y)) for x, y in segment if math.isfinite(y)] for segment in segments]
        cleaned = [segment for segment in cleaned if segment]
        if cleaned == self.segments and list(boundaries) == self.marks:
            return
        self.segments, self.marks = cleaned, list(boundaries)
        self.points = [p for segment in cleaned for p in segment]
        positive = [y for _, y in self.points if y > 0]
        self.log_scale = bool(positive) and len(positive) == len(self.points) and max(positive) / min(positive) > 100
        self.title = "training loss (log scale)" if self.log_scale else "training loss"
        last = self.points[-1][1] if self.points else None
        self.titles(bool(self.points), self.EMPTY_TITLE,
                    Text(f"last {fmt_loss(last)}", style="dim") if self.points else "")
        self.redraw()

    def draw(self) -> bool:
        points = self.points
        if not points:
            return False
        plt = self.plt
        width = max(10, self.size.width - 8)
        for x in self.marks:
            plt.vline(x, "gray")
        shown: list[float] = []
        all_xs: list[int] = []
        for segment in self.segments:  # a line across a boundary would join two contexts' data
            ys = [math.log10(y) for _, y in segment] if self.log_scale else [y for _, y in segment]
            xs, ys = thin([x for x, _ in segment], ys, max(1, width * len(segment) // len(points)))
            plt.plot(xs, ys, color=colour(0), marker="braille")
            shown += ys
            all_xs += xs
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        lo, hi = min(shown), max(shown)
        if hi - lo < 1e-12:
            lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
        margin = 0.06 * (hi - lo)
        lo, hi = lo - margin, hi + margin
        if not self.log_scale and min(shown) >= 0:
            lo = max(lo, 0.0)  # a loss that is never negative: no negative ticks
        plt.ylim(lo, hi)
        count = 4 if self.plot_height >= 12 else 3
        if self.log_scale:
            ticks = list(range(math.ceil(lo), math.floor(hi) + 1))
            step = max(1, math.ceil(len(ticks) / count))
            ticks = thin_ticks(ticks[::step], self.data_rows)
            plt.yticks(ticks, [fmt_loss(10.0 ** t) for t in ticks])
        else:
            ticks = thin_ticks(ticks_for(lo, hi, count), self.data_rows)
            plt.yticks(ticks, [fmt_loss(t) for t in ticks])
        first, last = min(all_xs), max(max(all_xs), min(all_xs) + 1)
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


