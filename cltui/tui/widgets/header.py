"""The screens' Header: Textual's, minus a race that put a traceback on the screen.

Textual's Header updates its title from watchers it sets on mount. When a screen is switched or the app
closes right after a title changed (compose's ctrl+s switches to the live screen, whose mount sets its
sub-title), the queued update can run after the Header's children were removed, and `query_one` raises
NoMatches out of the app (seen in CI: test_ctrl_s_launches_the_run_and_opens_it_live). A Header whose title
is gone has nothing to update, so that update is skipped.
"""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widgets import Header as TextualHeader

try:
    from textual.widgets._header import HeaderTitle
except ImportError:  # pragma: no cover - another Textual: its own Header, race and all
    HeaderTitle = None  # type: ignore[assignment,misc]


class Header(TextualHeader):
    def _on_mount(self, event: Mount) -> None:
        if HeaderTitle is None:
            return  # Textual's own handler runs
        event.prevent_default()  # replaces Textual's handler, which catches NoScreen only

        async def set_title() -> None:
            try:
                self.query_one(HeaderTitle).update(self.format_title())
            except (NoMatches, NoScreen):  # removed, with its title, before this update ran
                pass

        self.watch(self.app, "title", set_title)
        self.watch(self.app, "sub_title", set_title)
        self.watch(self.screen, "title", set_title)
        self.watch(self.screen, "sub_title", set_title)
