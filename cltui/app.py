"""The Textual TUI's entry point, kept here so `cltui.app.create_app` stays the one factory the CLI and tests
use; the app itself lives in cltui/tui/."""

from cltui.tui.app import CltuiApp, create_app

__all__ = ["CltuiApp", "create_app"]
