"""What every CLI command shares: the consoles, the one-line error exit, the --runs-dir option."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from core.store import RunStore, StoreError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130

RunsDir = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where runs are saved (default: $CLTUI_RUNS_DIR, else ./runs).", show_default=False),
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
