"""How run.json's figures read on screen, in the TUI and the CLI alike: percentages, signed percentage points,
durations, config values, the colour of an accuracy and of each run status. Every field may be missing or
damaged; each helper then shows "–". Plain Python (no Textual), so the headless commands use it too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATUS_STYLE = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "bold cyan",
                "stale": "magenta", "unreadable": "red"}


def fmt_pct(value: Any) -> str:
    """A fraction (0..1) as a percentage with one decimal."""
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) else "–"


def acc_style(value: float) -> str:
    """The colour of an accuracy (0..1): green from 90%, yellow from 60%, red from 30%, bright red below."""
    return "green" if value >= 0.9 else "yellow" if value >= 0.6 else "red" if value >= 0.3 else "bright_red"


def fmt_signed(value: Any) -> str:
    """A difference of fractions (BWT, FWT) in signed percentage points."""
    return f"{100 * value:+.1f}" if isinstance(value, (int, float)) else "–"


def fmt_value(v: Any) -> str:
    """Config values as they are written in presets: 1e9, not 1e+09."""
    if not isinstance(v, float):
        return str(v)
    return f"{v:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


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
        where, stage, back = m.get("stability_gap_context"), m.get("stability_gap_stage"), m.get("stability_gap_recovery")
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
