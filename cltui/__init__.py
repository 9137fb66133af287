"""cltui's faces: the Typer CLI (cli.py) and the Textual TUI (app.py). Torch is imported only by the worker."""

import sys as _sys

_excepthook = _sys.excepthook


def _interrupted_quietly(kind, value, traceback):  # type: ignore[no-untyped-def]
    """Ctrl+C while cltui is still starting (importing, before a command handles it): one line, no traceback."""
    if issubclass(kind, KeyboardInterrupt):
        _sys.stderr.write("cancelled: interrupted while cltui was starting; nothing was started\n")
        return
    _excepthook(kind, value, traceback)


_sys.excepthook = _interrupted_quietly
