"""The detached worker the TUI starts (core.launch.worker.start_detached): it outlives the process that launched it,
which never imports torch; stop() ends it as cancelled; a worker killed from outside is recorded as failed.
Each test starts one real worker (~2-4 s: it imports torch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.launch import worker
from core.runs.events import Progress, RunCancelled, RunFailed, RunFinished
from core.runs.record import read_run_json
from core.runs.store import RunStore, read_events
from core.schema.presets import build_config

LONG = ["train.iterations=100000", "train.progress_interval=0.05"]  # never finishes by itself
ROOT = Path(__file__).resolve().parents[2]


def process_gone(pid: int) -> bool:
    """No such process, or a zombie (ended; the init process here may not reap orphans at once)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def training(run_dir: Path) -> bool:
    return any(isinstance(e, Progress) and e.phase == "train" for e in read_events(run_dir))


LAUNCHER = """
import sys
from pathlib import Path
from core.launch import worker
from core.schema.presets import build_config

run = worker.start_detached(build_config("split-digits", overrides=sys.argv[2:]), Path(sys.argv[1]))
print(run.pid, "torch" in sys.modules, flush=True)
"""


def test_a_detached_run_outlives_its_launcher_which_never_imports_torch(runs_dir, tiny):
    run_dir = RunStore(runs_dir).new_run_dir("detached")
    launcher = subprocess.run([sys.executable, "-c", LAUNCHER, str(run_dir), *tiny], capture_output=True,
                              text=True, cwd=ROOT, timeout=30, check=True)
    pid_text, torch_imported = launcher.stdout.split()
    assert torch_imported == "False"  # the launcher (the TUI) never pays for torch
    pid = int(pid_text)
    # The launcher has exited; the worker goes on and finishes the run on its own.
    wait_until(lambda: read_run_json(run_dir)["status"] != "running", 90, "the run to end")
    record = read_run_json(run_dir)
    assert record["status"] == "finished", record.get("error")
    assert record["pid"] == pid  # run.json names the worker, not the launcher
    assert len(record["acc_matrix"]) == 5
    events = list(read_events(run_dir))
    assert isinstance(events[-1], RunFinished)
    assert "run finished" in (run_dir / "worker.log").read_text()
    wait_until(lambda: process_gone(pid), 10, "the worker to exit")


def test_stop_cancels_a_detached_run_cleanly(runs_dir):
    run = worker.start_detached(build_config("split-digits", overrides=LONG), RunStore(runs_dir).new_run_dir("stop"))
    try:
        assert run.alive() and run.run_id.endswith("stop")
        wait_until(lambda: training(run.run_dir), 60, "training to start")
        asked = time.monotonic()
        run.stop()
        assert time.monotonic() - asked < 10
    finally:
        run.kill()
    assert not run.alive()
    assert run.wait(0) == 130  # the worker ended itself, saying cancelled
    record = read_run_json(run.run_dir)
    assert record["status"] == "cancelled" and record["finished"] is not None
    assert isinstance(list(read_events(run.run_dir))[-1], RunCancelled)
    assert process_gone(run.pid)


def test_a_detached_worker_killed_from_outside_is_recorded_as_failed(runs_dir):
    run = worker.start_detached(build_config("split-digits", overrides=LONG), RunStore(runs_dir).new_run_dir("sigkill"))
    try:
        wait_until(lambda: training(run.run_dir), 60, "training to start")
        os.kill(run.pid, signal.SIGKILL)
        assert run.wait(10) == -signal.SIGKILL
    finally:
        run.kill()
    record = read_run_json(run.run_dir)
    assert record["status"] == "failed"
    assert f"signal {int(signal.SIGKILL)}" in record["error"]["message"]
    last = list(read_events(run.run_dir))[-1]
    assert isinstance(last, RunFailed) and "worker.log" in last.error
