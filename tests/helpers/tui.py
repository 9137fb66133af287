"""Driving cltui's TUI under Textual's Pilot: the app of the `tui` fixture (tests/conftest.py), waits on the app's
workers and on a condition, keys and fields of the compose form, and what a screen shows (its text, the live
tree, the runs table, the footer's keys). The snapshot tests' version check lives here too."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from rich.console import Group
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, Select, Static, Tree
from textual.widgets.tree import TreeNode

import cltui.tui.app as app_module
from cltui.tui.app import CltuiApp, create_app
from cltui.tui.screens.compose import ComposeScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.state.system import SystemProbe
from core.files import write_json_atomic
from core.runs.events import RunCancelled
from core.runs.record import read_run_json
from core.runs.store import append_event

# The SVG baselines in tests/tui/__snapshots__/ were drawn by these versions; another version draws other
# (equally right) pixels, so the snapshot tests skip, saying so, until `pytest --snapshot-update` is run.
SNAPSHOT_VERSIONS = {"textual": "8.2.8", "rich": "15.0.0", "plotext": "5.3.2", "textual-plotext": "1.0.1"}
_installed = {name: version(name) for name in SNAPSHOT_VERSIONS}
snapshot_versions = pytest.mark.skipif(
    _installed != SNAPSHOT_VERSIONS,
    reason=f"snapshots were drawn with {SNAPSHOT_VERSIONS}, installed: {_installed}; re-draw them with "
    f"pytest --snapshot-update and look at them",
)


# --- the app under test ---------------------------------------------------------------------------------


class TuiSession:
    """What the `tui` fixture gives a test: `pilot = await tui.start(runs_dir)` runs cltui's app on a runs folder
    under Textual's Pilot and returns once its workers are done (the runs are listed); `tui.notes` holds the
    notifications it has shown. Starting again closes the app before (a new session in the same folder). The
    fixture closes the last app after the test; a notification that starts with "internal error" (a thread
    worker failed) fails the test."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._running: contextlib.AbstractAsyncContextManager[Pilot] | None = None
        self._pilot: Pilot | None = None

    async def start(self, runs_dir: Path | str | None = None, *, app: App | None = None,
                    size: tuple[int, int] = (100, 30), screen: Screen | None = None) -> Pilot:
        """`app` (by default create_app(runs_dir)) at `size` columns x rows, its workers settled; `screen`, if
        given, pushed on top and settled too."""
        await self.close()
        if app is None:
            app = create_app(runs_dir)
        self.notes = notes = []
        shown = app.notify

        def notify(message: Any, **kw: Any) -> Any:
            notes.append(str(message))
            return shown(message, **kw)

        app.notify = notify  # type: ignore[method-assign]
        self._running = app.run_test(size=size)
        self._pilot = pilot = await self._running.__aenter__()
        await settle(pilot)
        if screen is not None:
            app.push_screen(screen)
            await settle(pilot)
        return pilot

    async def close(self) -> None:
        """Close the app, as leaving `async with app.run_test()` does (an error the app raised is raised here),
        and check its notifications. Nothing to do if no app is running."""
        if self._running is None or self._pilot is None:
            return
        running, pilot = self._running, self._pilot
        self._running = self._pilot = None
        await pilot.pause()  # not settle(): a live screen's follower never completes
        await running.__aexit__(None, None, None)
        assert not [n for n in self.notes if n.startswith("internal error")], self.notes  # a thread worker failed


class BareApp(CltuiApp):
    """cltui's app and stylesheet with an empty home screen: the screens under test are pushed onto it."""

    CSS_PATH = str(Path(app_module.__file__).parent / "cltui.tcss")

    def get_default_screen(self) -> Screen:
        return Screen()


# --- waiting ---------------------------------------------------------------------------------------------


async def settle_workers(app) -> None:
    """Wait for the app's workers to finish. A screen's folder poll is an exclusive worker: under load the next
    poll cancels one still scanning, and Textual's wait_for_complete raises WorkerCancelled for it; that poll's
    work is simply done by the next one, so wait again."""
    from textual.worker import WorkerCancelled

    for _ in range(20):
        try:
            await app.workers.wait_for_complete()
            return
        except WorkerCancelled:
            continue


async def settle(pilot: Pilot, delay: float | None = None) -> None:
    """The app's workers finished, then a pause (until the app is idle, or `delay` seconds)."""
    await settle_workers(pilot.app)
    await pilot.pause(delay)


async def until(pilot: Pilot, condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    """Wait until `condition()` holds; fail the test, naming `what`, if it does not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await pilot.pause(0.05)


async def eventually(pilot: Pilot, condition: Callable[[], Any], timeout: float = 6.0) -> bool:
    """Whether `condition()` holds within `timeout` s (for a test that asserts on the answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await pilot.pause(0.05)
    return bool(condition())


def tables_sized(screen: Any) -> bool:
    """Whether every DataTable on `screen` has its rows and a layout that fits them: each column at least as
    wide as its widest cell and each table as tall as its rows allow. A DataTable sizes its columns to new
    cells when it is next idle, so a screenshot taken before that catches the columns at their headers' width.
    """
    from rich.text import Text

    def cell_len(cell: Any) -> int:
        return cell.cell_len if isinstance(cell, Text) else Text.from_markup(str(cell)).cell_len

    for table in screen.query(DataTable):
        if not table.display:
            continue
        for i, column in enumerate(table.ordered_columns):
            widest = max((cell_len(cell) for cell in table.get_column_at(i)), default=0)
            if column.get_render_width(table) - 2 * table.cell_padding < widest:
                return False
        if table.row_count and table.size.height < 2:
            return False
    return True


# --- keys and fields -----------------------------------------------------------------------------------


async def select(pilot: Pilot, run_id: str) -> None:
    """The cursor of the runs table on `run_id`."""
    table = pilot.app.screen.query_one("#runs", DataTable)
    table.move_cursor(row=table.get_row_index(run_id), animate=False)
    await pilot.pause()


def field(screen: ComposeScreen, key: str) -> Input | Select:
    return screen.query_one("#field-" + key.replace(".", "-"))


async def open_compose(app: Any, pilot: Pilot) -> ComposeScreen:
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, ComposeScreen), what="the compose screen")
    await pilot.pause()
    return app.screen


async def choose(pilot: Pilot, screen: ComposeScreen, key: str, value: str) -> None:
    field(screen, key).value = value
    await pilot.pause(0.1)
    await pilot.pause()


class FakeHandle:
    """A launched run's handle that stops the way the real worker does: run.json cancelled, RunCancelled."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.run_id, self.pid = run_dir, run_dir.name, os.getpid()
        self.stopped = 0
        self._alive = True

    def alive(self) -> bool:
        return self._alive

    def stop(self, timeout: float = 30) -> None:
        self.stopped += 1
        record = read_run_json(self.run_dir)
        record.update(status="cancelled", finished="2026-01-01T12:00:10+00:00")
        write_json_atomic(self.run_dir / "run.json", record)
        append_event(self.run_dir, RunCancelled(reason="stopped in context 0 at iteration 130", context=0))
        self._alive = False

    def wait(self, timeout: float | None = None) -> int | None:
        return None if self._alive else 130


# --- what a screen shows -------------------------------------------------------------------------------


def screen_text(app: CltuiApp) -> str:
    """The screen as drawn, one line of text per row."""
    return "\n".join("".join(s.text for s in strip) for strip in app.screen._compositor.render_strips())


def footer_keys(app: CltuiApp) -> set[str]:
    """The actions the footer shows now."""
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show and b.enabled}


def text_of(app: CltuiApp, selector: str) -> str:
    """The text of a Static on the current screen (a group's parts one per line)."""
    content = app.screen.query_one(selector, Static).content
    if isinstance(content, Group):
        return "\n".join(str(getattr(r, "code", r)) for r in content.renderables)
    return str(content)


def static_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def table_rows(app: CltuiApp, selector: str = "#runs") -> dict[str, list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return {str(row.key.value): [str(c) for c in table.get_row(row.key)] for row in table.ordered_rows}


def runs_rows(app: CltuiApp) -> dict[str, dict[str, str]]:
    """run id -> {column: cell} of the runs table (the "run" cell may be shortened to fit the terminal)."""
    table = app.screen.query_one("#runs", DataTable)
    names = [str(c.label).rstrip(" ▲▼") or "mark" for c in table.ordered_columns]  # the sort arrow is not a name
    return {run_id: dict(zip(names, cells, strict=True)) for run_id, cells in table_rows(app).items()}


def walk(node: TreeNode[Any]) -> Iterator[TreeNode[Any]]:
    for child in node.children:
        yield child
        yield from walk(child)


def tree_text(screen: LiveScreen) -> str:
    return "\n".join(node.label.plain for node in walk(screen.query_one(Tree).root))


def process_gone(pid: int) -> bool:
    """The process `pid` has exited (gone, or a zombie not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class FixedProbe(SystemProbe):
    """The system line's figures fixed: a worker at 97% CPU holding 1.2 GB on a 16 GB machine, and the clock
    `now` (a snapshot sets it just after its run's last event)."""

    def __init__(self, now: float) -> None:
        super().__init__()
        self.clock = now

    def worker(self, pid: int | None) -> tuple[float | None, int | None]:
        return 97.0, 1288490189

    def memory(self) -> tuple[int, int] | None:
        return 7 << 30, 16 << 30

    def can_query_gpus(self) -> bool:
        return False

    def now(self) -> float:
        return self.clock


async def draw_live_now(pilot: Pilot, screen: LiveScreen) -> None:
    """Let a live screen's layout settle (the log's lines read), then draw its charts and system line from
    every event applied so far without waiting for their timers: a snapshot under load could otherwise catch
    a chart one batch or one layout behind. (Its follower is a worker that lasts as long as the screen: no
    waiting for the workers here.)"""
    await pilot.pause(0.3)
    screen._charts_dirty = True
    screen.redraw_charts()
    screen.sample_system()
    for chart in screen.query(".chart, Chart"):
        chart.refresh()


def pressing(*keys: str) -> Callable[[Pilot], Any]:
    """A snapshot's run_before: wait for the runs, press `keys` one at a time (each one's work done), clear the
    notifications, and wait until every table's columns fit their cells."""

    async def run_before(pilot: Pilot) -> None:
        await settle_workers(pilot.app)
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await settle_workers(pilot.app)
            await pilot.pause()
        pilot.app.clear_notifications()
        await until(pilot, lambda: tables_sized(pilot.app.screen), what="the tables' columns fitting")
        await pilot.pause()

    return run_before
