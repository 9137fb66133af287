"""The minimal TUI (cltui.app), driven by Textual's Pilot: the runs table, reload, quit; and no torch."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable

from cltui.app import create_app
from core.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny) -> Path:
    """A real finished run (tiny, in-process), to copy into each test's runs dir."""
    from core import train
    from core.config import build_config

    folder = RunStore(tmp_path_factory.mktemp("app")).new_run_dir("split-digits-class-none-s0")
    record = train.run(build_config("split-digits", overrides=list(tiny)), folder)
    assert record["status"] == "finished"
    return folder


@pytest.fixture
def two_runs(finished_run, runs_dir, write_truncated_run) -> tuple[Path, Path]:
    """The runs dir of a test: one finished run, one whose run.json is cut in half."""
    good = Path(shutil.copytree(finished_run, runs_dir / finished_run.name))
    broken = write_truncated_run(runs_dir, "20200101-000000-broken", (good / "run.json").read_text())
    return good, broken


def rows(table: DataTable) -> dict[str, list[str]]:
    return {str(cells[0]): [str(c) for c in cells] for cells in (table.get_row_at(i) for i in range(table.row_count))}


def test_the_runs_table_shows_every_run_reloads_and_quits(two_runs, runs_dir):
    good, broken = two_runs
    record = json.loads((good / "run.json").read_text())

    async def drive() -> dict[str, object]:
        seen: dict[str, object] = {}
        app = create_app(runs_dir)
        async with app.run_test() as pilot:
            table = app.query_one("#runs", DataTable)
            seen["first"] = rows(table)
            # A run that another terminal starts appears on `r`.
            newer = runs_dir / "20300101-000000-split-digits-class-none-s1"
            shutil.copytree(good, newer)
            await pilot.press("r")
            await pilot.pause()
            seen["after_reload"] = rows(table)
            seen["running_before_q"] = app.is_running
            await pilot.press("q")
            await pilot.pause()
            seen["running_after_q"] = app.is_running
        return seen

    seen = asyncio.run(drive())
    first = seen["first"]
    assert set(first) == {good.name, broken.name}
    assert first[good.name][1:5] == ["split-digits", "none", "class", "finished"]
    assert first[good.name][5] == f"{100 * record['metrics']['final_avg_acc']:.1f}"
    assert first[broken.name][4] == "unreadable"
    assert len(seen["after_reload"]) == 3
    assert "20300101-000000-split-digits-class-none-s1" in seen["after_reload"]
    assert seen["running_before_q"] is True
    assert seen["running_after_q"] is False


def test_the_app_never_imports_torch(two_runs, runs_dir):
    # The test process has torch loaded already; a fresh interpreter shows what the app itself imports.
    code = f"""
import asyncio, sys
from cltui.app import create_app

async def main():
    app = create_app({str(runs_dir)!r})
    async with app.run_test() as pilot:
        print("rows", app.query_one("#runs").row_count)
        await pilot.press("r")
        await pilot.press("q")

asyncio.run(main())
print("torch", "torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "rows 2" in result.stdout
    assert "torch False" in result.stdout
