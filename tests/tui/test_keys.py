"""Keys that work on every screen: `?` lists the keys of the screen it was pressed on (and typed into a field it
is text), ctrl+q is in every footer."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Static

from cltui.tui.screens.compose import ComposeScreen
from cltui.tui.screens.help import HelpScreen
from tests.helpers.tui import field, open_compose, until

pytestmark = pytest.mark.anyio

SIZE = (100, 30)


def help_text(app: Any) -> str:
    return "\n".join(str(s.render()) for s in app.screen.query(Static))


async def test_question_mark_lists_the_keys_of_the_screen_it_was_pressed_on(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
    text = help_text(app)
    assert "Keys · Runs" in text
    for key, what in (("n", "New"), ("c", "Compare"), ("d", "Delete"), ("/", "Filter"), ("^q", "Quit")):
        assert key in text and what in text, (key, what, text)
    await pilot.press("question_mark")  # ? again closes it, as escape does
    await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")
    await open_compose(app, pilot)
    await pilot.press("question_mark")  # the preset select has the focus: ? is a key, not text
    await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the compose help")
    text = help_text(app)
    assert "Keys · Compose" in text and "Start" in text and "Save preset" in text
    assert "Compare" not in text  # only the keys of the screen it was opened on
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, ComposeScreen), what="back on compose")


async def test_question_mark_typed_into_a_field_is_text_not_help(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    screen = await open_compose(app, pilot)
    field(screen, "train.lr").focus()
    await pilot.press("end", "question_mark")
    await pilot.pause()
    assert not isinstance(app.screen, HelpScreen)
    assert field(screen, "train.lr").value.endswith("?")


async def test_ctrl_q_is_in_the_footer_of_every_screen(runs_dir, tui):
    pilot = await tui.start(runs_dir, size=SIZE)
    app = pilot.app
    for _ in range(2):
        keys = {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}
        assert keys & {"quit", "app.quit"}, keys
        await open_compose(app, pilot)
