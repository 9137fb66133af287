"""The headless faces: the Typer CLI (main.py), one module per command group."""
