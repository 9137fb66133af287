"""What every CLI command shares: the consoles, the one-line error exit, the --runs-dir option."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

from core.runs.paths import StoreError
from core.runs.store import RunStore

# Control characters (C0 but tab and newline, DEL, C1): an escape sequence in a run.json or an argument would
# clear the screen, retitle the window or worse once it reaches a terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: Any) -> str:
    """`text` with its control characters taken out: what a terminal may be shown of a file's or an argument's
    text (`escape` for text inside Rich markup)."""
    return CONTROL.sub("", str(text))


def escape(text: Any) -> str:
    """Text from a file or an argument, ready for Rich markup: no control characters, its brackets escaped.
    The consoles print no emoji codes, so `a:b:log:3` stays as typed."""
    return escape_markup(plain(text))


class SafeConsole(Console):
    """A console that never passes a control character on and reads no `:emoji:` codes: whatever reaches it
    (a table cell, a line of markup), a file's text cannot drive the terminal."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().render_str(plain(text), **kwargs)


console = SafeConsole(highlight=False)
err_console = SafeConsole(stderr=True, highlight=False)

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130

RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="Where runs are saved (default: $CLTUI_RUNS_DIR, else ./runs).", show_default=False
    ),
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def load_run(store: RunStore, run_id: str) -> tuple[Path, dict[str, Any]]:
    """A run's folder and run.json, or the one-line exit that says why not."""
    try:
        return store.resolve(run_id), store.load(run_id)
    except StoreError as e:
        fail(str(e))


def discard(run_dir: Path, created: list[Path]) -> None:
    """Remove the folder of a run that never ran (bad input found once it was made; `run_dir` comes from
    RunStore.new_run_dir, inside the runs folder), and the folders this command created for the runs folder
    (innermost first) while they are empty: bad input leaves nothing behind."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break
