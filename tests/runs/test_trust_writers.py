"""One writer per run and per study, bounds on --jobs, write failures in one line, stops honoured at once
(issue 26: findings 2, 3, 6, 7, 13, 14). Real `cltui` processes, real signals, real mounts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.runs.events import PhaseStarted
from core.runs.record import RunRecord, read_run_json, write_record
from core.runs.store import RunStore, read_events
from core.studies import study as studies
from tests.helpers.runs import config as tiny_config
from tests.helpers.runs import tmpfs

CLTUI = Path(sys.executable).parent / "cltui"
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def cltui(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(CLTUI), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def ended(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def cancelled_run(runs: Path, *overrides: str) -> Path:
    """A run stopped before its first context (no checkpoint), as a resume finds it."""
    config = tiny_config(*overrides)
    folder = RunStore(runs).new_run_dir_for(config)
    record = RunRecord.new(folder.name, config.preset, config.to_dict())
    record.status, record.pid = "cancelled", None
    write_record(folder, record)
    return folder


# --- 2. one writer per run and per study ------------------------------------------------------------


@pytest.mark.timeout(180)
def test_two_resumes_of_one_run_at_once_train_it_once(tmp_path):
    runs = tmp_path / "runs"
    run = cancelled_run(runs, "train.iterations=40")
    first = cltui("run", "--resume", run.name, "--runs-dir", runs, "--quiet")
    second = cltui("run", "--resume", run.name, "--runs-dir", runs, "--quiet")
    results = sorted([ended(first), ended(second)], key=lambda r: r[0])

    (code_a, _, _), (code_b, out_b, err_b) = results
    assert (code_a, code_b) == (0, 1), results
    lines = error_lines(err_b)
    assert len(lines) == 1 and "in use by process" in lines[0] and "Traceback" not in out_b + err_b, lines
    pid = int(lines[0].split("in use by process ")[1].split()[0])
    assert pid in (first.pid, second.pid) or pid > 0
    started = [e for e in read_events(run) if type(e).__name__ == "RunStarted"]
    finished = [e for e in read_events(run) if type(e).__name__ == "RunFinished"]
    assert len(started) == 1 and len(finished) == 1  # trained once
    assert read_run_json(run)["status"] == "finished"
    assert len(read_run_json(run)["resumed"]) == 1


@pytest.mark.timeout(240)
def test_two_compare_resumes_of_one_study_at_once_train_each_run_once(tmp_path):
    runs = tmp_path / "runs"
    store = RunStore(runs)
    study, _ = studies.plan("split-digits", ["none"], "class", 2, ["train.iterations=10", "train.device=cpu"], 1)
    studies.save(store, study)
    first = cltui("compare", "--resume", study["id"], "--runs-dir", runs, "--quiet")
    second = cltui("compare", "--resume", study["id"], "--runs-dir", runs, "--quiet")
    results = sorted([ended(first), ended(second)], key=lambda r: r[0])

    (code_a, _, _), (code_b, out_b, err_b) = results
    assert (code_a, code_b) == (0, 1), results
    lines = error_lines(err_b)
    assert len(lines) == 1 and f"study {study['id']} is in use by process" in lines[0], lines
    assert "Traceback" not in out_b + err_b
    folders = RunStore(runs).folders()
    assert len(folders) == 2, [p.name for p in folders]  # no second copy, no `-1` orphan
    saved = studies.load(store, study["id"])
    assert sorted(e["run_id"] for e in saved["runs"]) == sorted(p.name for p in folders)
    assert all(read_run_json(p)["status"] == "finished" for p in folders)


def test_a_dead_holder_frees_the_lock_and_a_live_one_marks_its_run_running(tmp_path):
    from core.runs.lock import RunLock, RunLocked, held_by, run_alive

    run = cancelled_run(tmp_path / "runs")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from core.runs.lock import RunLock; RunLock.of_run(Path(sys.argv[1])).acquire(); "
                               "print('held', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert held_by(run / ".lock") == holder.pid
        assert run_alive(run, None)  # the lock, not the pid run.json names
        with pytest.raises(RunLocked, match=f"in use by process {holder.pid}"):
            RunLock.of_run(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert not run_alive(run, os.getpid())  # a live pid in run.json is not a writer once the lock is free
    with RunLock.of_run(run):
        assert held_by(run / ".lock") == os.getpid()


# --- 3. --jobs at least 1 ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["compare", "--methods", "none", "--seeds", "1"], ["sweep", "--grid",
                                                                                       "method.lambda=1,10"]])
@pytest.mark.parametrize("jobs", ["-3", "0"])
def test_jobs_below_one_is_one_line_exit_2_and_writes_nothing(tmp_path, command, jobs):
    runs = tmp_path / "runs"
    process = cltui(*command, "--jobs", jobs, "--set", "train.iterations=5", "--runs-dir", runs)
    try:
        code, out, err = ended(process, timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"--jobs {jobs} hung")
    lines = error_lines(err)
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and "--jobs" in lines[0] and "at least 1" in lines[0], lines
    assert not runs.exists()  # no study file, no run folder


# --- 6. a read-only runs folder: one line, exit 1 ---------------------------------------------------


@pytest.mark.timeout(120)
def test_a_read_only_runs_folder_is_one_line_and_exit_1_in_every_writing_command(tmp_path):
    with tmpfs(tmp_path / "disk", 4096) as disk:
        runs = disk / "runs"
        run = cancelled_run(runs)
        store = RunStore(runs)
        study, _ = studies.plan("split-digits", ["none"], "class", 1, ["train.iterations=5"], 1)
        studies.save(store, study)
        before = sorted(str(p) for p in disk.rglob("*"))
        if subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only here")
        cases = {
            "run --resume": ["run", "--resume", run.name],
            "compare": ["compare", "--methods", "none", "--seeds", "1", "--set", "train.iterations=5"],
            "compare --resume": ["compare", "--resume", study["id"]],
            "sweep": ["sweep", "--grid", "method.lambda=1,10", "--seeds", "1", "--set", "train.iterations=5"],
        }
        for name, args in cases.items():
            code, out, err = ended(cltui(*args, "--runs-dir", runs, "--quiet"), timeout=60)
            lines = error_lines(err)
            assert code == 1, (name, code, out, err)
            assert "Traceback" not in out + err, (name, out, err)
            assert len(lines) == 1 and lines[0].startswith("error:"), (name, lines)
            assert "read-only" in lines[0].lower(), (name, lines)
        assert sorted(str(p) for p in disk.rglob("*")) == before
        assert read_run_json(run)["status"] == "cancelled"


# --- 7. SIGTERM / SIGHUP during a merge --------------------------------------------------------------


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_merge_stopped_by_sigterm_or_sighup_ends_cancelled(tmp_path, sig):
    from core.schema.presets import build_config
    from core.training import run as train_run

    runs = tmp_path / "runs"
    teachers = []
    for seed, learn in ((0, "[0,1]"), (1, "[2,3,4]")):
        config = build_config("merge-digits", method="joint", seed=seed, device="cpu",
                              overrides=["model.hidden=[32]", "train.iterations=5",
                                         f"benchmark.learn_contexts={learn}"])
        folder = RunStore(runs).new_run_dir_for(config)
        assert train_run(config, folder)["status"] == "finished"
        teachers.append(folder.name)
    merge = cltui("merge", *teachers, "--set", "iterations=1000000", "--device", "cpu", "--runs-dir", runs)
    deadline = time.monotonic() + 90
    folder = None
    while time.monotonic() < deadline:
        found = [p for p in runs.iterdir() if "-merge-" in p.name and p.name not in teachers]
        if found and any(isinstance(e, PhaseStarted) for e in read_events(found[0])):
            folder = found[0]
            break
        time.sleep(0.1)
    assert folder is not None, "the merge never started a phase"
    merge.send_signal(sig)
    asked = time.monotonic()
    code, out, err = ended(merge, timeout=30)
    assert time.monotonic() - asked < 10  # a step, the record, the exit (on a loaded machine)
    assert "Traceback" not in out + err
    assert code == 130, (code, out, err)
    assert read_run_json(folder)["status"] == "cancelled"


# --- 13. stops at start-up ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig,after", [(signal.SIGINT, 0.4), (signal.SIGINT, 1.5), (signal.SIGTERM, 0.8),
                                       (signal.SIGTERM, 1.5)])
def test_a_stop_at_start_up_ends_cancelled_at_once_without_a_traceback(tmp_path, sig, after):
    runs = tmp_path / "runs"
    process = cltui("run", "--set", "train.iterations=1000000", "--device", "cpu", "--runs-dir", runs, "--quiet")
    time.sleep(after)
    process.send_signal(sig)
    asked = time.monotonic()
    code, out, err = ended(process, timeout=60)
    took = time.monotonic() - asked
    assert "Traceback" not in out + err, (out, err)
    assert "KeyboardInterrupt" not in out + err
    assert took < 3.0, f"the stop took {took:.1f} s"
    assert code in (130, -sig), (code, out, err)
    if code == -sig:  # the signal came before cltui's handler (on a slow start-up): then no run folder exists
        assert not list(runs.rglob("run.json"))
    for path in runs.rglob("run.json"):  # a run made before the stop is recorded cancelled, never "running"
        record = read_run_json(path.parent)
        assert record["status"] == "cancelled", record["status"]
        assert "Traceback" not in json.dumps(record.get("error") or {}).replace("traceback", "")


# --- 14. a stop in the phases after a context's training --------------------------------------------


@pytest.mark.parametrize("method,phase", [("ewc", "eval"), ("ewc", "fisher"), ("icarl", "eval")])
def test_a_stop_after_a_context_trained_says_what_it_dropped(tmp_path, method, phase):
    from core.training import run as train_run

    config = tiny_config("train.iterations=5", "benchmark.contexts=2", method=method)
    asked = []

    def emit(event):
        if isinstance(event, PhaseStarted) and event.phase == phase and event.context == 0:
            asked.append(True)

    folder = tmp_path / "run"
    folder.mkdir()
    record = train_run(config, folder, emit, should_stop=lambda: bool(asked))
    assert asked
    assert record["status"] == "cancelled"
    message = record["error"]["message"]
    assert "before training started" not in message, message
    assert "context 0 is not kept" in message and "0 completed context(s) are kept" in message, message


def test_runs_rm_waits_for_a_worker_that_has_written_cancelled_but_not_yet_ended(tmp_path):
    """A stopped worker writes "cancelled", then takes a moment to end: while it holds the run's lock, rm refuses
    (one line, the folder whole); once the lock is free, rm removes the run."""
    from core.runs.lock import RunLock
    from core.runs.paths import StoreError

    store = RunStore(tmp_path / "runs")
    folder = store.new_run_dir("ending")
    config = tiny_config()
    record = RunRecord.new(folder.name, config.preset, config.to_dict())
    record.status = "cancelled"
    write_record(folder, record)
    lock = RunLock.of_run(folder).acquire()  # the worker, still alive
    with pytest.raises(StoreError) as caught:
        store.remove(folder.name)
    assert "still has its worker" in str(caught.value) and "\n" not in str(caught.value)
    assert (folder / "run.json").is_file()
    lock.release()
    store.remove(folder.name)
    assert not folder.exists()
