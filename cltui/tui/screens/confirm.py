"""Modal questions: `ConfirmScreen` (yes / no) for delete and stop, `ChoiceScreen` (several answers) for quit.

Both are dismissed with the answer, so callers write
`self.app.push_screen(ConfirmScreen("Delete run X?"), on_answer)` or `await self.app.push_screen_wait(...)`
inside a worker. `escape` always means "cancel" and never does anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

MODAL_CSS = """
    align: center middle;
    & > Vertical {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $primary 80%;
        background: $surface;
        padding: 1 2;
    }
    & .question { text-style: bold; margin-bottom: 1; }
    & .detail { color: $text-muted; margin-bottom: 1; }
    & Horizontal { height: auto; align-horizontal: right; }
    & Button { margin-left: 1; min-width: 10; }
"""


class ConfirmScreen(ModalScreen[bool]):
    """`ConfirmScreen(question, detail="", confirm="Yes", cancel="Cancel", danger=False, default=None)` -> True /
    False.

    `y` answers yes, `n` / `escape` no, `enter` presses the focused button; each button names its key. With
    `danger`, the confirm button is red and, unless `default` says otherwise, the cancel button has the focus, so
    a stray `enter` does not delete anything. `default`: the answer `enter` gives at first (the button focused):
    a stop, which keeps what the run completed, is asked with `danger` and `default=True`."""

    DEFAULT_CSS = "ConfirmScreen {" + MODAL_CSS + "}"
    BINDINGS: ClassVar = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        Binding("left", "app.focus_previous", show=False),
        Binding("right", "app.focus_next", show=False),
    ]

    def __init__(self, question: str, detail: str = "", confirm: str = "Yes", cancel: str = "Cancel",
                 danger: bool = False, default: bool | None = None) -> None:
        super().__init__()
        self.question, self.detail, self.danger = question, detail, danger
        self.default = not danger if default is None else default
        self.confirm_label, self.cancel_label = confirm, cancel

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="question", markup=False)
            if self.detail:
                yield Static(self.detail, classes="detail", markup=False)
            with Horizontal():
                yield Button(f"{self.cancel_label} (n)", id="cancel")
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        self.query_one("#confirm" if self.default else "#cancel", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class ChoiceScreen(ModalScreen[str | None]):
    """`ChoiceScreen(question, choices=[(answer, label, key), ...], detail="", default=None)` -> the chosen
    answer, or None on `escape`. Each choice is a button and its key; `default` (or the first) has the focus."""

    DEFAULT_CSS = "ChoiceScreen {" + MODAL_CSS + "}"
    BINDINGS: ClassVar = [Binding("escape", "choose(None)", "Cancel"),
                          Binding("left", "app.focus_previous", show=False),
                          Binding("right", "app.focus_next", show=False)]

    def __init__(self, question: str, choices: Sequence[tuple[str, str, str]], detail: str = "",
                 default: str | None = None) -> None:
        super().__init__()
        self.question, self.choices, self.detail = question, list(choices), detail
        self.default = default if default is not None else self.choices[0][0]
        for answer, label, key in self.choices:
            self._bindings.bind(key, f"choose('{answer}')", label)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="question", markup=False)
            if self.detail:
                yield Static(self.detail, classes="detail", markup=False)
            with Horizontal():
                for answer, label, key in self.choices:
                    yield Button(f"{label} ({key})", id=f"choice-{answer}", name=answer,
                                 variant="error" if answer == "stop" else "default")

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.default}", Button).focus()

    def action_choose(self, answer: str | None) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.name)
