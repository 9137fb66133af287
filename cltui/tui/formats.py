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
