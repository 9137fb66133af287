"""Plotext charts, shared by the live, detail, compare, dreams and studies screens: the `Chart` base and the
`y` key (base), the accuracy matrix's charts (matrix), the charts against the iterations trained (curves), the
charts that set runs side by side (compare) and the latent map of dreams (latent). Import them from here."""

from cltui.tui.widgets.charts.base import (
    Y_SCALE_BINDING,
    Chart,
    ScalesCharts,
    clean_matrix,
    fitted_range,
    hex_colour,
    legend,
)
from cltui.tui.widgets.charts.compare import AverageByRunChart, BarValue, FinalAccuracyChart, SweepChart
from cltui.tui.widgets.charts.curves import CurveChart, LossChart, UnitsChart, boundaries, clean_curve
from cltui.tui.widgets.charts.latent import LatentMapChart
from cltui.tui.widgets.charts.matrix import AccuracyChart, AverageChart, MatrixChart

__all__ = [
    "Y_SCALE_BINDING",
    "AccuracyChart",
    "AverageByRunChart",
    "AverageChart",
    "BarValue",
    "Chart",
    "CurveChart",
    "FinalAccuracyChart",
    "LatentMapChart",
    "LossChart",
    "MatrixChart",
    "ScalesCharts",
    "SweepChart",
    "UnitsChart",
    "boundaries",
    "clean_curve",
    "clean_matrix",
    "fitted_range",
    "hex_colour",
    "legend",
]
