"""What every CLI command shares: the consoles, the one-line error exit, the --runs-dir option."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

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
