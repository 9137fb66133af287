"""The cltui Textual app: the runs screen as home, the runs this TUI launched, `?` for the keys, and quitting
with care (ctrl+q, shown on every screen).

`create_app(runs_dir)` is the one factory the CLI (`cltui`, `cltui tui`) and the tests share. Quitting while
a run this TUI launched is still going asks whether to stop it (it ends as cancelled) or leave it running
(it keeps writing its run folder, and the next `cltui` shows it live).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from cltui.tui.screens.confirm import ChoiceScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.store import RunStore

if TYPE_CHECKING:  # core.launch.worker (and the config it validates) loads when the first run is started or stopped
    from core.launch.worker import DetachedRun


def is_alive(handle: DetachedRun) -> bool:
    try:
        return bool(handle.alive())
    except Exception:  # noqa: BLE001 - a broken handle must not keep the user from quitting
        return False


class CltuiApp(ReportsWorkerErrors, App[None]):
    TITLE = "cltui"
    SUB_TITLE = "continual-learning workbench"
    CSS_PATH = "cltui.tcss"
    BINDINGS: ClassVar = [
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", priority=True),  # in every footer, whatever the screen
    ]

    launched: dict[str, DetachedRun]  # run id -> handle of the runs started here (core.launch.worker.start_detached)

    def __init__(self, runs_dir: Path | str):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.store = RunStore(self.runs_dir)
        self.launched = {}

    def get_default_screen(self) -> Screen:
        return RunsScreen()

    def action_help(self) -> None:
        from cltui.tui.screens.help import HelpScreen, keys_of

        if isinstance(self.screen, HelpScreen):
            return
        name = type(self.screen).__name__.removesuffix("Screen") or "this screen"
        self.push_screen(HelpScreen(name, keys_of(self.screen), getattr(self.screen, "HELP_NOTES", "")))

    def running_launched(self) -> list[DetachedRun]:
        return [handle for handle in self.launched.values() if is_alive(handle)]

    async def action_quit(self) -> None:
        running = self.running_launched()
        if not running:
            self.exit()
            return
        names = ", ".join(h.run_id for h in running[:3]) + (" …" if len(running) > 3 else "")
        one = len(running) == 1
        self.push_screen(
            ChoiceScreen(
                f"{len(running)} run{'' if one else 's'} started here {'is' if one else 'are'} still going.",
                [("stop", "Stop and quit", "s"), ("leave", "Leave running", "l"), ("cancel", "Cancel", "c")],
                detail=f"{names}\nA run left running keeps writing its folder; the next cltui shows it live.",
                default="leave",  # enter quits without cancelling anyone's training
            ),
            self.quit_answered,
        )

    def quit_answered(self, answer: str | None) -> None:
        if answer == "leave":
            self.exit()
        elif answer == "stop":
            running = self.running_launched()
            self.notify(f"stopping {len(running)} run{'s' if len(running) != 1 else ''}…", timeout=30)
            self.stop_and_exit(running)

    @work(thread=True, exclusive=True, exit_on_error=False, group="quit")
    def stop_and_exit(self, handles: list[DetachedRun]) -> None:
        from core.launch.worker import stop_and_wait

        with contextlib.suppress(Exception):  # best effort: quitting must not hang on a broken handle
            stop_and_wait(handles, grace=30)  # all asked at once, so they wind down together
        self.call_from_thread(self.exit)


def create_app(runs_dir: Path | str) -> CltuiApp:
    return CltuiApp(runs_dir)
