"""What a screen reaches through the app, typed: the runs folder, its store and the runs this TUI started.

`self.app` is typed as any Textual app; a screen that needs cltui's own attributes mixes in `ReachesCltui` and
reads them from `self.cltui`. `CltuiServices` names what the app (cltui.tui.app.CltuiApp) holds for them, so
no screen module imports the app, even for typing: the app imports the screens, never the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from textual.message_pump import MessagePump

from core.runs.store import RunStore

if TYPE_CHECKING:
    from core.launch.worker import DetachedRun


class CltuiServices(Protocol):
    """The attributes of the cltui app that screens use."""

    runs_dir: Path
    store: RunStore
    launched: dict[str, DetachedRun]  # run id -> handle of the runs started from this TUI


class ReachesCltui(MessagePump):
    """A mixin (before the Screen base) for the screens that use the runs folder, its store or the runs started
    here; a message pump, not a DOM node, so the screen's CSS bases stay those of Screen."""

    @property
    def cltui(self) -> CltuiServices:
        return cast("CltuiServices", self.app)
