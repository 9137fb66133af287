"""The runs folders the TUI tests browse, written by hand in the real on-disk format: the fixed runs
(tests/helpers/fixed_runs.py) and the thirty runs of a researcher's week (tests/helpers/daily.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.daily import write_thirty_runs
from tests.helpers.fixed_runs import write_fixture_runs


@pytest.fixture
def fixed(runs_dir: Path) -> dict[str, Path]:
    """The fixed runs in `runs_dir`: {name: run folder}."""
    return write_fixture_runs(runs_dir)


@pytest.fixture
def thirty(runs_dir: Path) -> list[str]:
    """The thirty runs and their study in `runs_dir`: the run ids, newest first."""
    ids, _ = write_thirty_runs(runs_dir)
    return ids
