"""Shared fixtures: a runs directory under tmp_path, the overrides of a tiny run, the environment that
points cltui at that runs directory, a helper that leaves a damaged run folder behind, and cltui's app under
Textual's Pilot for the async tests (`tui`; tests/helpers/tui.py).

The tests run on 2 CPU cores that other processes share: one intra-op thread per process (this test
process and every worker it spawns, which inherit the environment) keeps a tiny run at ~1 s instead of
tens of seconds of thread contention. Set before anything imports torch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
if "PYTEST_XDIST_WORKER" in os.environ:
    # xdist's workers get COLUMNS=80 and LINES=24, which fix the width of cltui's consoles when they are
    # created; a test that cares passes its own COLUMNS (as a terminal would), the others see no terminal.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
# Presets a test saves go to a folder of this session, never the user's config folder (and the user's own
# presets there never change what a test lists).
os.environ["CLTUI_PRESETS_DIR"] = tempfile.mkdtemp(prefix="cltui-test-presets-")


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def tiny() -> tuple[str, ...]:
    """--set overrides that make a split-digits run take about a second (5 contexts x 30 iterations)."""
    return ("train.iterations=30",)


@pytest.fixture
def runs_env(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """CLTUI_RUNS_DIR set to `runs_dir` (in os.environ, and as a dict for CliRunner's env=), and a wide
    console so that Rich tables are not squeezed."""
    env = {"CLTUI_RUNS_DIR": str(runs_dir), "COLUMNS": "200"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def write_truncated_run() -> Callable[[Path, str, str], Path]:
    """`write_truncated_run(runs_dir, name, good_run_json_text)`: a run folder whose run.json is the first
    half of a real one, as a crash in the middle of a non-atomic write would leave it."""

    def write(root: Path, name: str, text: str) -> Path:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(text[: len(text) // 2])
        return folder

    return write


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (marked anyio: anyio's pytest plugin runs them) run on asyncio, as Textual does."""
    return "asyncio"


@pytest.fixture
async def tui() -> AsyncIterator[Any]:
    """cltui's app under Textual's Pilot, for an async test marked anyio: `pilot = await tui.start(runs_dir)`,
    the notifications shown in `tui.notes` (a TuiSession, tests/helpers/tui.py). The app is closed after the test,
    which fails if a thread worker of the app failed."""
    from tests.helpers.tui import TuiSession

    session = TuiSession()
    yield session
    await session.close()
