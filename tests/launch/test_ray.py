"""`cltui compare --executor ray` on a local Ray instance: runs as Ray tasks, results in the shared runs dir."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from cltui.cli.main import app  # the modules that import ray come after importorskip
from core.launch.ray_executor import RayExecutor
from core.runs.events import Progress, RunCancelled
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.schema.presets import build_config


def test_a_study_runs_as_ray_tasks_and_lands_in_the_runs_dir(tmp_path):
    runs = tmp_path / "runs"
    out = CliRunner().invoke(app, ["compare", "split-digits", "--methods", "none,er", "--seeds", "1",
                                   "--set", "train.iterations=40", "--executor", "ray", "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    entries = RunStore(runs).list()
    assert len(entries) == 2 and all(e.status == "finished" for e in entries)
    [study_file] = (runs / "studies").glob("*.json")
    assert {r["run_id"] for r in json.loads(study_file.read_text())["runs"]} == {e.id for e in entries}
    assert all("ray task on" in (e.path / "worker.log").read_text() for e in entries)
    assert not ray.is_initialized()  # the local instance is shut down afterwards


def test_a_ray_run_stops_cleanly_when_asked(tmp_path):
    executor = RayExecutor()
    try:
        cfg = build_config("split-digits", device="cpu", overrides=["train.iterations=100000",
                                                                    "train.progress_interval=0.05"])
        handle = executor.start(cfg, RunStore(tmp_path).new_run_dir("long"), threads=1)
        # Waits on the run's own events, however long a loaded machine takes to start Ray: the stop goes out on
        # the first Progress, and the loop ends on the terminal event (pytest-timeout guards against a hang).
        asked = False
        while not handle.done:
            if any(isinstance(e, Progress) for e in handle.pump(0.1)) and not asked:
                handle.stop()
                asked = True
        assert isinstance(handle.terminal, RunCancelled)
        assert read_run_json(handle.run_dir)["status"] == "cancelled"
    finally:
        executor.shutdown()
