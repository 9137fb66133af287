"""cltui's faces: the Typer CLI (cli.py) and the Textual TUI (app.py). Torch is imported only by the worker."""
