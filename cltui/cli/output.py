"""What the commands print, wherever it goes: JSON with its floats rounded, tables fitted to the terminal (or
at full width into a file or a pipe), and the `--runs-dir` a printed hint must carry to work when pasted."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from rich.table import Table

from cltui.cli.common import SafeConsole, console


def rounded(value: Any, digits: int = 6) -> Any:
    """`value` with every float to `digits` significant digits (0.9502272000000002 -> 0.950227): what every
    --json and --format json prints, so figures read as figures. NaN and infinities are left as they are."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    """JSON of `value` with its floats rounded (`rounded`)."""
    return json.dumps(rounded(value), indent=indent)


def print_table(renderable: Any) -> None:
    """Print a table: fitted to the terminal on a terminal; into a file or a pipe at its full width, so that
    no line is wrapped at 80 columns (a script reads one row per line)."""
    if console.is_terminal:
        console.print(renderable)
        return
    from rich.measure import Measurement

    width = Measurement.get(console, console.options.update_width(100_000), renderable).maximum
    SafeConsole(highlight=False, width=max(width, 20), no_color=console.no_color).print(renderable)


def fitted_table(columns: list[tuple[str, str]], rows: list[list[str]], width: int | None,
                 drop_order: tuple[str, ...], fold: str, wrap: tuple[str, ...] = ()) -> tuple[Table, list[str]]:
    """A table of `columns` ((name, justify)) and `rows` (Rich markup) for `width` columns (None: any width),
    and the names of the columns it left out: they go in `drop_order` until the rest fits. The `fold` column
    (an id, copied from here) then folds onto further lines, whole, if it must; the `wrap` columns (lists)
    wrap between their words. No cell is cut to `…`."""
    from rich.text import Text

    names = [name for name, _ in columns]
    def need(name: str, cell: str) -> int:
        text = Text.from_markup(cell).plain
        return max(map(len, text.split() or [""])) if name in wrap else len(text)

    natural = {name: max(need(name, r[k]) for r in [names, *rows]) for k, name in enumerate(names)}
    kept = list(names)
    for name in drop_order:
        if width is None or sum(natural[n] for n in kept) + 3 * (len(kept) - 1) <= width:  # 3: padding, rule
            break
        kept.remove(name)
    room = None if width is None else width - sum(natural[n] for n in kept) - 3 * (len(kept) - 1)
    widths: dict[str, int] = {}
    if room is not None and room >= 0:  # it fits: the lists get what is left, wrapped; the id stays whole
        widths[fold] = natural[fold]
        for name in (n for n in wrap if n in kept):
            full = max(Text.from_markup(r[names.index(name)]).cell_len for r in [names, *rows])
            widths[name] = natural[name] + min(room, full - natural[name])
            room -= widths[name] - natural[name]
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in columns:
        if name in widths and name in kept:
            table.add_column(name, justify=justify, width=widths[name], overflow="fold")  # type: ignore[arg-type]
        elif name in kept:
            table.add_column(name, justify=justify, no_wrap=name not in (fold, *wrap),  # type: ignore[arg-type]
                             overflow="fold" if name in (fold, *wrap) else "ellipsis")
    for row in rows:
        table.add_row(*(cell for name, cell in zip(names, row, strict=True) if name in kept))
    return table, [n for n in names if n not in kept]


def print_fitted(columns: list[tuple[str, str]], rows: list[list[str]], drop_order: tuple[str, ...],
                 fold: str, wrap: tuple[str, ...] = ()) -> None:
    """`fitted_table` on the terminal (with a line naming what it left out), every column into a pipe."""
    if not console.is_terminal:
        print_table(fitted_table(columns, rows, None, drop_order, fold, wrap)[0])
        return
    table, left_out = fitted_table(columns, rows, console.width, drop_order, fold, wrap)
    console.print(table)
    if left_out:
        console.print(f"[dim]left out at {console.width} columns: {', '.join(left_out)}[/]")


def runs_dir_flag(root: Path | None) -> str:
    """` --runs-dir ROOT` for a hint that prints another command, when ROOT is not where cltui looks anyway
    ($CLTUI_RUNS_DIR, else ./runs), so that the command printed works when pasted."""
    if root is None:
        return ""
    from core.runs.store import default_runs_dir

    try:
        if Path(root).resolve() == default_runs_dir().resolve():
            return ""
    except OSError:
        pass
    return f" --runs-dir {shlex.quote(str(root))}"
