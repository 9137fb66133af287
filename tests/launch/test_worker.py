"""The real spawned worker (core.launch.worker.start): events over the queue and on disk, clean stop, kill on
request, death from outside, and failures inside the run. Each test spawns one worker (~2-3 s: the
worker imports torch)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from core.launch import worker
from core.runs.events import ContextEvaluated, RunCancelled, RunFailed, RunFinished
from core.runs.record import read_run_json
from core.runs.store import RunStore, read_events
from core.schema.presets import build_config
from tests.helpers.workers import drain, is_training, wait_for

LONG = ["train.iterations=100000", "train.progress_interval=0.05"]  # never finishes by itself


def start(root: Path, name: str, preset: str = "split-digits", overrides: list[str] = (),
          **options) -> worker.RunHandle:
    config = build_config(preset, overrides=list(overrides), **options)
    return worker.start(config, RunStore(root).new_run_dir(name))


def test_a_tiny_run_finishes_and_leaves_its_files(runs_dir, tiny):
    handle = start(runs_dir, "tiny", overrides=tiny)
    events = drain(handle)
    run_dir = handle.run_dir

    assert isinstance(events[-1], RunFinished) and handle.terminal is events[-1]
    assert [e.context for e in events if isinstance(e, ContextEvaluated)] == [0, 1, 2, 3, 4]
    assert handle.process.exitcode == 0
    record = read_run_json(run_dir)
    assert record["status"] == "finished"
    assert record["metrics"] == events[-1].metrics
    assert len(record["acc_matrix"]) == 5
    # The worker wrote every event it sent to events.jsonl, in the same order, unchanged.
    on_disk = list(read_events(run_dir))
    assert [type(e).__name__ for e in on_disk] == [type(e).__name__ for e in events]
    assert on_disk == events
    log = (run_dir / "worker.log").read_text()
    assert log.strip() and "finished" in log
    assert RunStore(runs_dir).list()[0].status == "finished"


def test_stop_cancels_the_run_cleanly(runs_dir):
    handle = start(runs_dir, "stop", overrides=LONG)
    wait_for(handle, is_training)
    handle.stop()
    asked = time.monotonic()
    events = drain(handle, timeout=30)
    assert time.monotonic() - asked < 10
    assert isinstance(events[-1], RunCancelled)
    assert handle.process.exitcode == 130  # the worker ended itself, saying cancelled
    record = read_run_json(handle.run_dir)
    assert record["status"] == "cancelled" and record["finished"] is not None
    assert isinstance(list(read_events(handle.run_dir))[-1], RunCancelled)


def test_kill_on_request_records_the_run_as_cancelled(runs_dir, capfd):
    handle = start(runs_dir, "kill", overrides=LONG)
    wait_for(handle, is_training)
    handle.kill()
    events = drain(handle, timeout=30)
    assert isinstance(events[-1], RunCancelled)
    assert "killed on request" in events[-1].reason
    record = read_run_json(handle.run_dir)
    assert record["status"] == "cancelled"
    assert "killed on request" in record["error"]["message"]
    assert isinstance(list(read_events(handle.run_dir))[-1], RunCancelled)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_a_worker_killed_from_outside_is_recorded_as_failed(runs_dir):
    handle = start(runs_dir, "sigkill", overrides=LONG)
    wait_for(handle, is_training)
    os.kill(handle.process.pid, signal.SIGKILL)
    events = drain(handle, timeout=30)
    assert isinstance(events[-1], RunFailed)
    assert f"signal {int(signal.SIGKILL)}" in events[-1].error
    record = read_run_json(handle.run_dir)
    assert record["status"] == "failed"
    assert f"signal {int(signal.SIGKILL)}" in record["error"]["message"]
    assert isinstance(list(read_events(handle.run_dir))[-1], RunFailed)
    assert RunStore(runs_dir).list()[0].status == "failed"


def test_a_device_that_is_not_there_is_an_input_error(runs_dir, tiny):
    # cuda:99 exists on no machine: on a CPU-only one there is no CUDA at all, on a GPU server not 100 GPUs.
    handle = start(runs_dir, "no-such-device", overrides=tiny, device="cuda:99")
    events = drain(handle)
    assert isinstance(events[-1], RunFailed)
    assert events[-1].kind == "input"
    assert "train.device" in events[-1].error
    record = read_run_json(handle.run_dir)
    assert record["status"] == "failed"
    assert record["error"]["kind"] == "input" and "train.device" in record["error"]["message"]
    assert handle.process.exitcode == 1


def idx_images(n: int) -> bytes:
    return struct.pack(">IIII", 0x803, n, 28, 28) + bytes(n * 28 * 28)


def idx_labels(labels: list[int]) -> bytes:
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def test_a_crash_inside_the_run_lands_in_run_json(runs_dir, tmp_path):
    # MNIST files that pass every file check and parse, but whose training labels are fewer than its
    # images: the run crashes while cutting the data into contexts, inside the worker.
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_images(100))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_labels([i % 10 for i in range(50)]))
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx_images(20))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_labels([i % 10 for i in range(20)]))

    handle = start(runs_dir, "crash", preset="split-mnist", overrides=["train.iterations=5"],
                   data_dir=str(tmp_path / "data"))
    events = drain(handle)
    assert isinstance(events[-1], RunFailed)
    assert events[-1].error and events[-1].traceback
    record = read_run_json(handle.run_dir)
    assert record["status"] == "failed" and record["finished"] is not None
    assert record["error"]["message"] == events[-1].error
    assert "Traceback" in record["error"]["traceback"]
    assert handle.process.exitcode == 1
    assert not any(isinstance(e, RunFinished) for e in events)


PARENT = """
import sys
from pathlib import Path
from core.launch import worker
from core.schema.presets import build_config

handle = worker.start(build_config("split-digits", overrides=sys.argv[2:]), Path(sys.argv[1]))
while not handle.done:
    for event in handle.pump(0.1):
        if type(event).__name__ == "Progress":
            print("training", handle.process.pid, flush=True)
"""


def test_a_worker_whose_parent_dies_saves_the_run_as_cancelled(runs_dir):
    # A terminal closed under a running `cltui run`: the parent is gone, the worker must not train on
    # into the void, nor leave a run that says "running" for ever.
    run_dir = RunStore(runs_dir).new_run_dir("orphan")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(run_dir), *LONG], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        line = parent.stdout.readline()
        assert line.startswith("training"), line
        worker_pid = int(line.split()[1])
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while read_run_json(run_dir)["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
    record = read_run_json(run_dir)
    if record["status"] == "running":
        os.kill(worker_pid, signal.SIGKILL)
    assert record["status"] == "cancelled"
    assert isinstance(list(read_events(run_dir))[-1], RunCancelled)
    assert "parent process" in (run_dir / "worker.log").read_text()
