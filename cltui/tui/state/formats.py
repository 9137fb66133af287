"""How run.json's figures read on screen, in the TUI and the CLI alike: percentages, signed percentage points,
durations, config values, the colour of an accuracy and of each run status. Every field may be missing or
damaged; each helper then shows "–". Plain Python (no Textual), so the headless commands use it too."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.runs.metrics import RunFigures

STATUS_STYLE = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "bold cyan",
                "stale": "magenta", "unreadable": "red"}


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A fraction (0..1) as a percentage with one decimal (or `digits`)."""
    return f"{100 * value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def fmt_score(value: Any, score: str = "accuracy") -> str:
    """A run's score as every face writes it: an accuracy as a percentage without its sign (48.5), an R² as
    itself with its name (R² 0.991), never as a percentage."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    return f"R² {value:.3f}" if score == "R²" else f"{100 * value:.1f}"


def fmt_headline(figures: RunFigures) -> str:
    """A run's one figure (core.runs.metrics.RunFigures.headline): `48.5`, or `48.5 seen` for a run that has not
    trained every context (its average over the contexts it saw)."""
    text = fmt_score(figures.headline, figures.score)
    return f"{text} seen" if figures.seen_only else text


def figure_parts(figures: RunFigures) -> list[tuple[str, str]]:
    """A run's figures as (label, value) pairs, in the order every face writes them: the headline first (final
    average over every context, or the average over the contexts seen for a run that did not train them all),
    then the incremental average, forgetting, BWT and FWT. An R² is written as itself, never as %."""
    m = figures.metrics
    if figures.score == "R²":
        parts = [("final avg R²" if not figures.seen_only else f"avg R² seen ({figures.progress})",
                  fmt_score(figures.headline, "R²").removeprefix("R² "))]
        return parts + [(label, fmt_score(m.get(key), "R²").removeprefix("R² "))
                        for label, key in (("avg forgetting", "avg_forgetting"), ("BWT", "bwt"))]
    def percent(value: Any) -> str:
        return f"{fmt_pct(value)}%" if isinstance(value, (int, float)) else "–"

    head = "final avg acc" if not figures.seen_only else f"avg acc seen ({figures.progress})"
    return [(head, percent(figures.headline)), ("avg incremental acc", percent(m.get("avg_incremental_acc"))),
            ("avg forgetting", percent(m.get("avg_forgetting"))),
            ("BWT", fmt_signed(m.get("bwt"))), ("FWT", fmt_signed(m.get("fwt")))]


def fmt_status(status: str, figures: RunFigures | None) -> str:
    """A status with what an unfinished run trained: `cancelled 3/5`, `running 2/5`."""
    if figures is None or status == "finished" or status == "unreadable" or figures.complete:
        return status
    return f"{status} {figures.progress}"


def acc_style(value: float) -> str:
    """The colour of an accuracy (0..1): green from 90%, yellow from 60%, red from 30%, bright red below."""
    return "green" if value >= 0.9 else "yellow" if value >= 0.6 else "red" if value >= 0.3 else "bright_red"


def fmt_signed(value: Any) -> str:
    """A difference of fractions (BWT, FWT) in signed percentage points."""
    return f"{100 * value:+.1f}" if isinstance(value, (int, float)) else "–"


def fmt_value(v: Any) -> str:
    """Config values as they are written in presets: 1e9, not 1e+09; true, not True; [400,400]."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")
    if isinstance(v, list):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    return str(v)


def fmt_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def section(data: dict[str, Any], key: str) -> dict[str, Any]:
    """A dict-valued field of run.json, or {} when it is missing or damaged."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def shown_path(path: Path) -> str:
    """A folder as the user would type it: relative paths stay relative, the home folder becomes ~."""
    if not path.is_absolute():
        return str(path)
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def stability_text(metrics: Any, curve: Any = None) -> str | None:
    """The continual-evaluation figures of run.json's metrics in one line (None for a run without a curve):
    the stability gap (depth, where, iterations to recover) and min-ACC."""
    m = metrics if isinstance(metrics, dict) else {}
    gap, low = m.get("stability_gap"), m.get("min_acc")
    if not isinstance(gap, (int, float)) and not isinstance(low, (int, float)):
        return None
    parts = []
    if isinstance(gap, (int, float)):
        where, stage = m.get("stability_gap_context"), m.get("stability_gap_stage")
        back = m.get("stability_gap_recovery")
        text = f"stability gap {fmt_pct(gap)} points"
        if isinstance(where, (int, float)) and isinstance(stage, (int, float)):
            text += f" (c{int(where)} as c{int(stage)} starts"
            text += f"; back in {int(back)} it)" if isinstance(back, (int, float)) else "; not recovered in it)"
        parts.append(text)
    if isinstance(low, (int, float)):
        parts.append(f"min-ACC {fmt_pct(low)}%")
    if isinstance(curve, list) and curve:
        parts.append(f"{len(curve)} curve points")
    return " · ".join(parts)


def fmt_loss(value: Any) -> str:
    """A loss with three significant digits, the same everywhere it is printed: 1.78e-05, 0.000304, 0.05, 156."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    return f"{value:.3g}".replace("e+0", "e").replace("e+", "e")
