"""The `?` help screen: every key of the screen it was opened on, what it does, and whether it works now.

The list is read from the screen's active bindings when `?` is pressed, so it cannot drift from the keys:
a key that applies now is bright, one that the screen disables now (a stop on a finished run) is dim with
"not now", one the screen hides where it cannot apply is left out. The keys of Textual's own widgets
(moving in a table, scrolling) are summed up in one line under the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

MOVING = ("↑ ↓ PgUp PgDn Home End move in tables and lists · tab moves between panes · "
          "ctrl+p opens the command palette (themes, screenshots) · ctrl+q quits from any screen")


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    enabled: bool


def keys_of(screen: Screen) -> list[KeyHelp]:
    """The keys `screen` answers now (its own, its widgets' and the app's, as cltui binds them), one line per
    thing they do."""
    app = screen.app
    found: dict[str, KeyHelp] = {}
    for active in screen.active_bindings.values():
        binding, node = active.binding, active.node
        if not binding.description or binding.action not in own_actions(type(node)):
            continue  # Textual's own keys (cursor, scrolling) are summed up in MOVING
        key = app.get_key_display(binding)
        same = found.get(binding.description)  # q and ctrl+q both quit: one line, both keys
        if same is None:
            found[binding.description] = KeyHelp(key, binding.description, active.enabled)
        elif key not in same.key.split(", "):
            found[binding.description] = KeyHelp(f"{same.key}, {key}", same.description, same.enabled)
    return list(found.values())


def own_actions(cls: type) -> set[str]:
    """The actions bound in cltui's own classes (not in the Textual widgets they extend)."""
    actions = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("cltui."):
            for binding in klass.__dict__.get("BINDINGS", []):
                actions.add(binding.action if isinstance(binding, Binding) else binding[1])
    return actions


class HelpScreen(ModalScreen[None]):
    """`HelpScreen(title, keys, notes)`: the keys in a table, then the screen's own notes (the runs screen's
    filter syntax) when it has any; any of escape, q, ? or enter closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 72; max-width: 100%; height: auto; max-height: 100%;
                            border: thick $primary 80%; background: $surface; padding: 0 1; }
    HelpScreen #help-keys { height: auto; max-height: 1fr; }
    HelpScreen #help-moving { color: $text-muted; margin-top: 1; height: auto; }
    """
    BINDINGS: ClassVar = [Binding("escape,q,question_mark,enter", "close", "Close")]

    def __init__(self, title: str, keys: list[KeyHelp], notes: str = "") -> None:
        super().__init__()
        self.title_text, self.keys, self.notes = title, keys, notes

    def compose(self) -> ComposeResult:
        width = max([len(k.key) for k in self.keys] + [6]) + 2
        listing = Text()
        for k in self.keys:
            listing.append(k.key.ljust(width), style="bold" if k.enabled else "dim")
            listing.append(f"{k.description}\n" if k.enabled else f"{k.description} (not now)\n",
                           style="" if k.enabled else "dim")
        if not self.keys:
            listing.append("this screen has no keys of its own\n", style="dim")
        listing.rstrip()
        if self.notes:
            listing.append("\n\n")
            listing.append(self.notes)
        with Vertical():
            yield Static(Text(f"Keys · {self.title_text}", style="bold"))
            with VerticalScroll(id="help-keys"):
                yield Static(listing, id="help-list")
            yield Static(MOVING, id="help-moving")

    def action_close(self) -> None:
        self.dismiss(None)
