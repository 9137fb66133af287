"""A small modal to tick some of a list of options (the runs screen's grouping keys and columns): space ticks
the option under the cursor, enter applies, `d` answers "the default", escape cancels; a fixed option is
shown ticked and cannot be changed."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, SelectionList, Static
from textual.widgets.selection_list import Selection

from cltui.tui.screens.confirm import MODAL_CSS

DEFAULT = ("\0default",)  # what PickScreen answers for "the default"


class PickScreen(ModalScreen[tuple[str, ...] | None]):
    """`PickScreen(title, [(value, label, ticked, fixed), ...], note)` -> the ticked values in their order,
    `DEFAULT` for the default (d), or None (escape). Space ticks the option under the cursor, enter applies; a
    fixed option cannot be changed (a grouping key's column)."""

    DEFAULT_CSS = "PickScreen {" + MODAL_CSS + """}
    PickScreen > Vertical { width: 52; max-height: 100%; padding: 0 1; }
    PickScreen SelectionList { height: auto; max-height: 12; border: none; padding: 0; }
    PickScreen .detail { margin: 0; }
    PickScreen Button { min-width: 8; }
    """
    BINDINGS: ClassVar = [
        Binding("enter", "apply", "Apply", priority=True),
        Binding("d", "default", "Default"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, options: list[tuple[str, str, bool, bool]], note: str = "") -> None:
        super().__init__()
        self.title_text, self.options, self.note = title, options, note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="question", markup=False)
            yield SelectionList[str](*(Selection(label, value, ticked or fixed, disabled=fixed)
                                       for value, label, ticked, fixed in self.options), id="pick")
            yield Static(f"space ticks, enter applies, escape cancels; {self.note}", classes="detail", markup=False)
            with Horizontal():
                yield Button("Default (d)", id="default")
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Apply (enter)", id="apply", variant="primary")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_apply(self) -> None:
        ticked = set(self.query_one(SelectionList).selected)
        self.dismiss(tuple(value for value, _, _, fixed in self.options if value in ticked or fixed))

    def action_default(self) -> None:
        self.dismiss(DEFAULT)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        {"apply": self.action_apply, "default": self.action_default, "cancel": self.action_cancel}[
            str(event.button.id)]()
