"""Figures for a paper, drawn from run records with matplotlib (Agg, no display needed).

One run: its accuracy matrix as a heat map, and the accuracy on each context after each context. Several runs
or a study: the runs grouped by method (and by any setting besides the seed that tells runs of one method
apart), the average accuracy over the contexts seen after each context, mean ± SEM over the runs of a group as
a band, and the final average accuracy as bars with SEM error bars beside the published number (core/studies/study.py's
PUBLISHED); the layout of van de Ven's compare.py summary.

Typeset for a paper: vector output (PDF, SVG; text kept as text), panels of column width (3.3 in) at 7 pt,
the Okabe-Ito palette (colour-blind safe, with a marker per method for grey-scale print), method names as the
papers write them. A PDF has one panel per page (include a page with \\includegraphics[page=N]); a PNG or SVG
has the panels side by side. Lives in core (not in the faces) because the worker's MLflow tracker logs the run's
figure too. matplotlib is imported only when a figure is drawn: `pip install 'cltui[plot]'`.
"""

from __future__ import annotations

import math
import os
import stat
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.runs.metrics import context_name, mean_sem, record_matrix, run_figures, trains_once
from core.schema.config import flat_config

PLOT_EXTRA = "pip install 'cltui[plot]'"
FORMATS = (".pdf", ".png", ".svg")
COLUMN_WIDTH = 3.3  # inches: one column of a two-column paper
PANEL_HEIGHT = 2.4

# Okabe & Ito (2008), "Color universal design": distinguishable with every common colour-vision deficiency.
# Yellow last: it is faint on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

METHOD_NAMES = {
    "none": "None", "joint": "Joint", "ewc": "EWC", "online-ewc": "Online EWC", "si": "SI", "lwf": "LwF",
    "xdg": "XdG", "separate": "Separate Networks", "er": "ER", "agem": "A-GEM", "derpp": "DER++", "icarl": "iCaRL",
    "dgr": "DGR", "bir": "BI-R", "gen-classifier": "Generative Classifier", "deepinversion": "DeepInversion",
    "abd": "ABD",
}

STYLE = {
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
    "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6, "lines.linewidth": 1.2,
    "lines.markersize": 3.5, "grid.linewidth": 0.4, "grid.alpha": 0.5,
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType in the PDF: text a journal's checker and an editor accept
    "svg.fonttype": "none",  # text stays text in the SVG: smaller, searchable
}


class FigureError(ValueError):
    """A figure that cannot be drawn (no matplotlib, a format it does not write, nothing to draw): one line."""


def method_label(name: str) -> str:
    return METHOD_NAMES.get(name, name)


def check_output(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise FigureError(f"--out {path}: write a .pdf, .png or .svg file (e.g. --out figure.pdf)")


def private_matplotlib_dir() -> None:
    """Point matplotlib's config and font cache (MPLCONFIGDIR) at a folder of this user's in the temporary
    folder, before matplotlib is imported: by default it writes them under ~/.config and ~/.cache, and cltui
    writes nothing outside the runs folder. A folder the user set is kept; one that is not a plain folder of
    this user's (a link, another user's) is never used: a fresh one is made instead."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"cltui-matplotlib-{uid if uid is not None else 'user'}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid):
            raise OSError(f"{folder} is not a folder of this user's")
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="cltui-matplotlib-"))
    os.environ["MPLCONFIGDIR"] = str(folder)


def matplotlib_pyplot() -> Any:
    private_matplotlib_dir()
    try:
        import matplotlib
    except ImportError:
        raise FigureError(f"matplotlib is not installed; {PLOT_EXTRA}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --- what is drawn ---------------------------------------------------------------------------------------


matrix_of = record_matrix  # a record's accuracy matrix (core/runs/metrics.py)


def joint(record: dict[str, Any]) -> bool:
    """Trained once over every context (joint, merge): core/runs/metrics.py decides."""
    return run_figures(record).once


def seen_averages(record: dict[str, Any]) -> list[float]:
    """Average accuracy over the contexts seen, after each context (every context for a run that trains once)."""
    return run_figures(record).averages(matrix_of(record))


IGNORED = ("train.seed", "train.device", "track.", "preset", "benchmark.data_dir", "benchmark.download")


@dataclass
class Group:
    """Runs drawn as one line and one bar: a method, and the settings that set it apart from the method's
    other runs (e.g. EWC λ=1e9 and EWC λ=1e5 in a sweep)."""

    method: str
    label: str
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def joint(self) -> bool:
        return trains_once(self.method)


def group_runs(records: list[dict[str, Any]], order: list[str] | None = None) -> list[Group]:
    """The runs grouped by method, then by the settings (besides the seed) that differ between a method's runs.
    Groups follow `order` (a study's methods) or the order the runs came in."""
    settings = []
    for record in records:
        values = flat_config(record.get("config") or {})
        settings.append({k: v for k, v in values.items() if not k.startswith(IGNORED)})
    methods: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        methods.setdefault(((record.get("config") or {}).get("method") or {}).get("name") or "?", []).append(i)
    groups: dict[tuple[str, str], Group] = {}
    for method, members in methods.items():
        keys = sorted({k for i in members for k in settings[i]})
        varying = [k for k in keys if len({repr(settings[i].get(k)) for i in members}) > 1]
        for i in members:
            detail = ", ".join(f"{k.split('.')[-1].replace('lambda', 'λ')}={short(settings[i].get(k))}"
                               for k in varying)
            label = method_label(method) + (f" ({detail})" if detail else "")
            groups.setdefault((method, label), Group(method, label)).records.append(records[i])
    ranked = order or list(methods)
    return sorted(groups.values(), key=lambda g: (ranked.index(g.method) if g.method in ranked else len(ranked),
                                                  g.label))


def short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(short(v) for v in value) + "]"
    return str(value)


# --- panels ----------------------------------------------------------------------------------------------


Panel = Callable[[Any], None]


def percent_axis(ax: Any) -> None:
    ax.set_ylim(0, 100)
    ax.yaxis.grid(True)
    ax.set_axisbelow(True)


def context_ticks(ax: Any, n: int) -> None:
    """x = the stage after which a figure was measured, drawn at 1..n and named as every face names contexts
    (from 0: core.runs.metrics.context_name)."""
    step = max(1, math.ceil(n / 10))
    ticks = list(range(1, n + 1, step))
    ax.set_xticks(ticks, [str(t - 1) for t in ticks])
    ax.set_xlim(0.6, n + 0.4)


def matrix_panel(record: dict[str, Any]) -> Panel:
    """The accuracy matrix: row i after training context i, column j the accuracy on context j; the contexts
    not trained yet are greyed (their accuracy is forward transfer, not forgetting)."""

    def draw(ax: Any) -> None:
        import numpy as np

        rows = matrix_of(record)
        every = joint(record)
        data = np.ma.masked_array(100 * np.asarray(rows),
                                  mask=[[not every and j > i for j in range(len(row))] for i, row in enumerate(rows)])
        cmap = matplotlib_pyplot().get_cmap("viridis").with_extremes(bad="#eeeeee")
        image = ax.imshow(data, cmap=cmap, vmin=0, vmax=100, aspect="auto")
        n_rows, n_cols = data.shape
        if n_cols <= 10:
            for i in range(n_rows):
                for j in range(n_cols):
                    if data.mask[i, j]:
                        continue
                    value = data[i, j]
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=5.5,
                            color="black" if value > 60 else "white")
        ax.set_xticks(range(n_cols), [str(j) for j in range(n_cols)])
        ax.set_yticks(range(n_rows), ["all"] if every else [str(i) for i in range(n_rows)])
        ax.tick_params(length=0)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel("accuracy on context")
        ax.set_ylabel("after training on context")
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
        bar.set_label("accuracy (%)")
        bar.outline.set_linewidth(0.4)
        bar.ax.tick_params(labelsize=5.5, width=0.4)

    return draw


def context_curves_panel(record: dict[str, Any]) -> Panel:
    """Accuracy on each context (a line from the moment it is trained on) after each context, and the average
    over the contexts seen as a thick dashed line."""

    def draw(ax: Any) -> None:
        rows = matrix_of(record)
        n = len(rows[0])
        if joint(record):  # one stage over every context (joint, merge): its accuracy on each
            ax.bar(range(1, n + 1), [100 * a for a in rows[0]], color=OKABE_ITO[0], width=0.6)
            ax.set_xlabel("context")
        else:
            for j in range(n):
                xs = [i + 1 for i in range(j, len(rows))]
                if not xs:
                    continue
                ax.plot(xs, [100 * rows[i][j] for i in range(j, len(rows))], color=OKABE_ITO[j % len(OKABE_ITO)],
                        marker=MARKERS[j % len(MARKERS)], label=context_name(j), clip_on=False)
            ax.plot(range(1, len(rows) + 1), [100 * a for a in seen_averages(record)], color="black", linestyle="--",
                    linewidth=1.6, label="average (seen)")
            ax.set_xlabel("after training on context")
            ax.legend(ncol=2 if n > 4 else 1, loc="best", handlelength=1.6)
        context_ticks(ax, max(n, len(rows)))
        percent_axis(ax)
        ax.set_ylabel("test accuracy (%)")

    return draw


def average_panel(groups: list[Group]) -> Panel:
    """Average accuracy over the contexts seen after each context, one line per group: mean ± SEM over its runs
    as a band. A joint run trains once: its accuracy is a dashed line across."""

    def draw(ax: Any) -> None:
        n = max((len(matrix_of(r)) for g in groups for r in g.records), default=1)
        for k, group in enumerate(groups):
            colour, marker = OKABE_ITO[k % len(OKABE_ITO)], MARKERS[k % len(MARKERS)]
            curves = [seen_averages(r) for r in group.records if matrix_of(r)]
            if not curves:
                continue
            if group.joint or all(len(c) == 1 for c in curves):
                mean, sem = mean_sem([c[-1] for c in curves])
                if mean is None:
                    continue
                ax.axhline(100 * mean, color=colour, linestyle="--", linewidth=1.0, label=group.label)
                if sem:
                    ax.axhspan(100 * (mean - sem), 100 * (mean + sem), color=colour, alpha=0.15, linewidth=0)
                continue
            length = max(len(c) for c in curves)
            xs = list(range(1, length + 1))
            stats = [(m, s or 0.0) for m, s in (mean_sem([c[i] for c in curves if i < len(c)]) for i in range(length))
                     if m is not None]
            means = [100 * m for m, _ in stats]
            ax.plot(xs, means, color=colour, marker=marker, label=group.label, clip_on=False)
            ax.fill_between(xs, [100 * (m - s) for m, s in stats], [100 * (m + s) for m, s in stats], color=colour,
                            alpha=0.2, linewidth=0)
        context_ticks(ax, n)
        percent_axis(ax)
        ax.set_xlabel("after training on context")
        ax.set_ylabel("average accuracy, contexts seen (%)")
        ax.legend(ncol=2 if len(groups) > 4 else 1, loc="best", handlelength=1.6)

    return draw


def final_bars_panel(groups: list[Group], published: dict[str, float]) -> Panel:
    """Final average accuracy per group: mean bar, SEM error bar, the runs as dots, and the published number
    (docs/reference.md) as a black bar mark where there is one."""

    def draw(ax: Any) -> None:
        xs = list(range(len(groups)))
        marked = False
        for k, group in enumerate(groups):
            finals = [f for r in group.records if (f := run_figures(r).metrics["final_avg_acc"]) is not None]
            mean, sem = mean_sem(finals)
            colour = OKABE_ITO[k % len(OKABE_ITO)]
            if mean is not None:
                ax.bar(k, 100 * mean, width=0.65, color=colour, alpha=0.85, yerr=100 * sem if sem else None,
                       error_kw={"elinewidth": 0.8, "capsize": 2, "capthick": 0.8})
                if len(finals) > 1:
                    spread = [k + 0.18 * (i / (len(finals) - 1) - 0.5) for i in range(len(finals))]
                    ax.scatter(spread, [100 * f for f in finals], s=3, color="black", zorder=3, linewidths=0)
            number = published.get(group.method) if group.label == method_label(group.method) else None
            if number is not None:
                ax.plot([k - 0.4, k + 0.4], [number, number], color="black", linewidth=1.4, solid_capstyle="butt",
                        label=None if marked else "published", zorder=4)
                marked = True
        ax.set_xticks(xs, [g.label for g in groups], rotation=35 if len(groups) > 3 else 0,
                      ha="right" if len(groups) > 3 else "center")
        ax.tick_params(axis="x", length=0)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        percent_axis(ax)
        ax.set_ylabel("final average accuracy (%)")
        if marked:
            ax.legend(loc="upper left", handlelength=1.4)

    return draw


# --- figures ---------------------------------------------------------------------------------------------


def describe(records: list[dict[str, Any]]) -> str:
    """benchmark, protocol and scenario, when the runs share them: e.g. "split digits, class-IL"."""
    seen = set()
    for record in records:
        config = record.get("config") or {}
        bench = config.get("benchmark") or {}
        seen.add((record.get("preset") or config.get("preset"), bench.get("protocol"), bench.get("name"),
                  config.get("scenario")))
    if len(seen) != 1:
        return "runs compared"
    preset, protocol, name, scenario = seen.pop()
    return f"{preset or f'{protocol} {name}'}, {scenario}-IL"


def run_panels(record: dict[str, Any], title: str | None = None) -> tuple[list[Panel], str]:
    method = method_label(((record.get("config") or {}).get("method") or {}).get("name") or "?")
    return [matrix_panel(record), context_curves_panel(record)], title or f"{method} · {describe([record])}"


def group_panels(records: list[dict[str, Any]], published: dict[str, float], order: list[str] | None = None,
                 title: str | None = None) -> tuple[list[Panel], str]:
    groups = group_runs(records, order)
    counts = sorted({len(g.records) for g in groups})
    runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    heading = f"{title or describe(records)} · mean ± SEM, {runs} run{'s' if counts[-1] > 1 else ''} each"
    return [average_panel(groups), final_bars_panel(groups, published)], heading


def mean_matrix_pages(records: list[dict[str, Any]], order: list[str] | None = None) -> list[tuple[Panel, str]]:
    """A page per group: its mean accuracy matrix (over the runs whose matrices have the same shape as the
    first's), for the PDF of a comparison."""
    pages = []
    for group in group_runs(records, order):
        matrices = [matrix_of(r) for r in group.records if matrix_of(r)]
        shape = [len(row) for row in matrices[0]] if matrices else []
        same = [m for m in matrices if [len(row) for row in m] == shape]
        if not same:
            continue
        mean = [[statistics.mean(m[i][j] for m in same) for j in range(len(row))] for i, row in enumerate(same[0])]
        record = {"acc_matrix": mean, "config": group.records[0].get("config")}
        runs = f"mean of {len(same)} runs" if len(same) > 1 else "1 run"
        pages.append((matrix_panel(record), f"{group.label} · {describe(group.records)} · {runs}"))
    return pages


def save_panels(panels: list[Panel], out: Path, title: str, dpi: int = 300,
                pages: list[tuple[Panel, str]] = ()) -> Path:  # type: ignore[assignment]
    """PDF: a page per panel, each of column width under the title, then the `pages` (panel, title). PNG / SVG:
    the panels side by side in one figure under the title."""
    plt = matplotlib_pyplot()
    import matplotlib

    out.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        if out.suffix.lower() == ".pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            with PdfPages(out, metadata={"Creator": "cltui"}) as pdf:
                for draw, heading in [(draw, title) for draw in panels] + list(pages):
                    # exactly column width: a constrained layout, no tight bounding box to change it
                    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, PANEL_HEIGHT), layout="constrained")
                    draw(ax)
                    ax.set_title(heading, loc="left")
                    pdf.savefig(figure)
                    plt.close(figure)
            return out
        figure, axes = plt.subplots(1, len(panels), figsize=(COLUMN_WIDTH * len(panels), PANEL_HEIGHT),
                                    layout="constrained", squeeze=False)
        for draw, ax in zip(panels, axes[0], strict=True):
            draw(ax)
        figure.suptitle(title, x=0.01, ha="left", fontsize=7)
        metadata = {"Software": "cltui"} if out.suffix.lower() == ".png" else {"Creator": "cltui", "Date": None}
        figure.savefig(out, dpi=dpi, metadata=metadata)
        plt.close(figure)
    return out


def write_figure(records: list[dict[str, Any]], out: Path, published: dict[str, float] | None = None,
                 order: list[str] | None = None, title: str | None = None, dpi: int = 300) -> Path:
    """The figure of one run (matrix and per-context curves) or of several (per-method curves and final bars)
    in `out` (.pdf, .png or .svg); FigureError when it cannot be drawn."""
    out = Path(out)
    check_output(out)
    drawable = [r for r in records if matrix_of(r)]
    if not drawable:
        raise FigureError("nothing to draw: no run here has completed a context yet")
    if len(records) == 1:
        panels, heading = run_panels(drawable[0], title)
        return save_panels(panels, out, heading, dpi)
    panels, heading = group_panels(drawable, published or {}, order, title)
    return save_panels(panels, out, heading, dpi, mean_matrix_pages(drawable, order))
