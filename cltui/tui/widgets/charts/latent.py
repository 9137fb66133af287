"""The latent map of a run's dreams: real and dreamed features of each class in two dimensions."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from rich.text import Text

from cltui.tui.widgets.charts.base import (
    LEGEND_GAP,
    Chart,
    colour,
    legend,
)


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


