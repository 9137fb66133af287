"""The worker pool of a study (core/launch/pool.py), with real spawned processes: a pooled worker trains many runs,
each in its own folder, with the results a process per run gives; a stop reaches only its own run, quickly; a
worker killed mid-run fails that run alone and the pool goes on with a fresh process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from core.launch import worker
from core.launch.pool import WorkerPool
from core.runs.events import RunCancelled, RunFailed, RunFinished
from core.runs.record import read_run_json
from core.runs.store import RunStore, read_events
from core.schema.presets import build_config
from tests.helpers.workers import drain, wait_for
from tests.helpers.workers import is_training as training

LONG = ["train.iterations=100000", "train.progress_interval=0.05"]  # never finishes by itself
TINY = ["train.iterations=30"]


def config(method: str = "none", seed: int = 0, overrides: list[str] = TINY):
    return build_config("split-digits", method=method, seed=seed, device="cpu", overrides=list(overrides))


def test_a_pooled_worker_trains_many_runs_with_the_results_of_a_process_per_run(runs_dir):
    store = RunStore(runs_dir)
    plan = [("er", 0), ("none", 1)]
    alone = {}
    for method, seed in plan:  # the reference: a fresh process per run
        handle = worker.start(config(method, seed), store.new_run_dir(f"alone-{method}-{seed}"))
        assert isinstance(drain(handle)[-1], RunFinished)
        alone[method, seed] = read_run_json(handle.run_dir)["acc_matrix"]
    with WorkerPool(1) as pool:
        pooled = []
        for method, seed in plan:
            handle = pool.start(config(method, seed), store.new_run_dir(f"pooled-{method}-{seed}"))
            events = drain(handle)
            assert isinstance(events[-1], RunFinished), events[-1]
            pooled.append((method, seed, handle, events))
    pids = set()
    for method, seed, handle, events in pooled:
        record = read_run_json(handle.run_dir)
        assert record["status"] == "finished"
        assert record["acc_matrix"] == alone[method, seed], f"{method} seed {seed} differs in the pool"
        assert list(read_events(handle.run_dir)) == events  # its own events, all of them, no other run's
        log = (handle.run_dir / "worker.log").read_text()
        assert handle.run_id in log and "run finished" in log
        assert sum(other.run_id in log for _, _, other, _ in pooled) == 1  # no other run's output in its log
        pids.add(record["pid"])
    assert len(pids) == 1  # one process trained both


def test_a_pooled_worker_killed_mid_run_fails_that_run_and_the_pool_goes_on(runs_dir):
    store = RunStore(runs_dir)
    with WorkerPool(1) as pool:
        doomed = pool.start(config(overrides=LONG), store.new_run_dir("doomed"))
        wait_for(doomed, training)
        victim = doomed.process.pid
        os.kill(victim, signal.SIGKILL)  # from outside: the OOM killer, a user's kill -9
        events = drain(doomed, timeout=30)
        assert isinstance(events[-1], RunFailed) and "killed by signal 9" in events[-1].error
        record = read_run_json(doomed.run_dir)
        assert record["status"] == "failed" and "killed by signal 9" in record["error"]["message"]

        after = pool.start(config(), store.new_run_dir("after"))
        assert isinstance(drain(after)[-1], RunFinished)
        assert read_run_json(after.run_dir)["pid"] not in (victim, None)  # a fresh worker took its place


def test_a_stop_reaches_its_pooled_run_quickly_and_no_later_one(runs_dir):
    store = RunStore(runs_dir)
    with WorkerPool(1) as pool:
        warm = pool.start(config(), store.new_run_dir("warm"))
        assert isinstance(drain(warm)[-1], RunFinished)
        warm.stop()  # a stop of a run that has ended must not reach the next run of its worker

        long = pool.start(config(overrides=LONG), store.new_run_dir("long"))
        wait_for(long, training)
        asked = time.monotonic()
        long.stop()
        events = drain(long, timeout=30)
        assert isinstance(events[-1], RunCancelled)
        assert time.monotonic() - asked < 5  # "a second or two"; slack for a machine shared with other jobs
        record = read_run_json(long.run_dir)
        assert record["status"] == "cancelled" and record["pid"] == read_run_json(warm.run_dir)["pid"]

        # SIGTERM to the pooled worker (`cltui runs stop` from another terminal): its run cancelled, cleanly
        sigterm = pool.start(config(overrides=LONG), store.new_run_dir("sigterm"))
        wait_for(sigterm, training)
        os.kill(sigterm.process.pid, signal.SIGTERM)
        assert isinstance(drain(sigterm, timeout=30)[-1], RunCancelled)
        assert read_run_json(sigterm.run_dir)["status"] == "cancelled"

        last = pool.start(config(), store.new_run_dir("last"))  # the worker ended on SIGTERM: a new one
        assert isinstance(drain(last)[-1], RunFinished)


def test_closing_the_pool_cancels_a_run_still_going_and_ends_its_workers(runs_dir):
    store = RunStore(runs_dir)
    pool = WorkerPool(2)
    running = pool.start(config(overrides=LONG), store.new_run_dir("running"))
    wait_for(running, training)
    process = running.process
    pool.close(grace=30)
    assert not process.is_alive()
    assert read_run_json(Path(running.run_dir))["status"] == "cancelled"
