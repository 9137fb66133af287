"""CPU threads chosen from the cores a run may really use (core/runs/threads.py): the user's count wins, else the
process's CPU affinity shared among the runs in flight; and what a real worker chose is in its run.json."""

from __future__ import annotations

import os
import time

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app
from core.launch import worker
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.runs.threads import WAIT_POLICY, ThreadChoice, choose, for_step, openmp_environment, step_mflop, usable_cores
from core.schema.presets import build_config

SHORT = ["--set", "train.iterations=5"]  # the thread count is chosen before the first step: a few steps do


def test_without_a_user_setting_the_cores_are_shared_among_the_runs_in_flight():
    assert choose(environ={}, cores=8) == ThreadChoice(8, "8 cores / 1 run")
    assert choose(runs=2, environ={}, cores=8) == ThreadChoice(4, "8 cores / 2 runs")
    assert choose(runs=3, environ={}, cores=8).threads == 2
    assert choose(runs=4, environ={}, cores=2) == ThreadChoice(1, "2 cores / 4 runs")  # never fewer than one
    assert choose(environ={}, cores=1) == ThreadChoice(1, "1 core / 1 run")


def test_the_cores_are_this_process_affinity_not_the_machine():
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert choose(environ={}).threads == len(os.sched_getaffinity(0))


def test_the_user_count_wins_over_the_cores():
    assert choose(environ={"OMP_NUM_THREADS": "3"}, cores=8, runs=4) == ThreadChoice(3, "OMP_NUM_THREADS")
    assert choose(environ={"OMP_NUM_THREADS": "6,2"}, cores=8).threads == 6  # a nested list: the outer count
    assert choose(5, environ={"OMP_NUM_THREADS": "3"}, cores=8) == ThreadChoice(5, "--threads")
    for bad in ("", "0", "-2", "many"):  # not a count: ignored, as OpenMP ignores it
        assert choose(environ={"OMP_NUM_THREADS": bad}, cores=4) == ThreadChoice(4, "4 cores / 1 run")


def test_openmp_waits_passively_unless_the_user_said_otherwise():
    assert openmp_environment(ThreadChoice(2, "x"), {}) == {**WAIT_POLICY, "OMP_NUM_THREADS": "2"}
    mine = openmp_environment(ThreadChoice(1, "x"), {"OMP_WAIT_POLICY": "ACTIVE"})
    assert "OMP_WAIT_POLICY" not in mine and mine["KMP_BLOCKTIME"] == "0"


@pytest.fixture
def one_core():
    """This thread (and so every worker it starts) on one core, as `taskset -c 0` would run it."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


def test_a_run_records_the_threads_of_its_cpu_affinity(runs_dir, monkeypatch, one_core):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = CliRunner().invoke(app, ["run", "split-digits", "--quiet", "--runs-dir", str(runs_dir),
                                   *SHORT])
    assert out.exit_code == 0, out.output
    [entry] = RunStore(runs_dir).list()
    env = read_run_json(entry.path)["env"]
    assert (env["threads"], env["threads_from"]) == ("1", "1 core / 1 run")


def test_a_study_shares_the_cores_among_its_jobs(runs_dir, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = CliRunner().invoke(app, ["compare", "split-digits", "--methods", "none,lwf", "--seeds", "1", "--jobs", "2",
                                   "--device", "cpu", "--quiet", "--runs-dir", str(runs_dir),
                                   *SHORT, "--set", "model.hidden=[2000,2000]"])  # a step too big for one thread
    assert out.exit_code == 0, out.output
    cores = len(os.sched_getaffinity(0))
    for entry in RunStore(runs_dir).list():
        env = read_run_json(entry.path)["env"]
        assert (env["threads"], env["threads_from"]) == (str(max(1, cores // 2)), f"{cores} cores / 2 runs")


def test_a_detached_run_keeps_the_users_omp_num_threads(runs_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = build_config("split-digits", overrides=SHORT[1:])
    run = worker.start_detached(config, RunStore(runs_dir).new_run_dir("detached"))
    assert run.wait(90) == 0
    env = read_run_json(run.run_dir)["env"]
    assert (env["threads"], env["threads_from"]) == ("1", "OMP_NUM_THREADS")
    assert "1 CPU threads (OMP_NUM_THREADS)" in (run.run_dir / "worker.log").read_text()


def test_runs_started_while_others_run_get_a_share(runs_dir, monkeypatch):
    """Runs started one after another from one process (the TUI's way) divide the cores among those in flight."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    store = RunStore(runs_dir)
    first = worker.start(build_config("split-digits", overrides=["train.iterations=100000"]), store.new_run_dir("a"))
    try:
        assert worker.runs_in_flight() == 1
        cores = len(os.sched_getaffinity(0))
        assert worker.thread_choice(None) == ThreadChoice(max(1, cores // 2), f"{cores} cores / 2 runs")
    finally:
        first.kill()
        first.process.join(30)
    time.sleep(0.1)
    assert worker.runs_in_flight() == 0


def test_a_small_mlp_step_trains_on_one_thread_unless_the_user_chose_a_count():
    """benchmarks/threads.py: with passive waits the split-digits and split-MNIST MLPs step about twice as fast
    on one thread as on two; the perm-MNIST MLP and the conv nets are faster on two."""
    two = ThreadChoice(2, "2 cores / 1 run")
    digits = build_config("split-digits").to_dict()
    assert round(step_mflop(digits)) == 146  # 6 x (65x400 + 401x400 + 401x10 weights) x 128
    small = for_step(two, digits)
    assert small.threads == 1 and small.source == "1 thread: a 146 MFLOP step runs faster on one (2 cores / 1 run)"
    assert for_step(two, build_config("split-mnist").to_dict()).threads == 1  # 367 MFLOP
    assert for_step(two, build_config("perm-mnist").to_dict()) == two  # 1024-1000-1000: 1,560 MFLOP
    assert for_step(two, build_config("split-cifar10").to_dict()) == two  # a conv net
    for mine in (ThreadChoice(2, "--threads"), ThreadChoice(2, "OMP_NUM_THREADS")):
        assert for_step(mine, digits) == mine
    assert for_step(two, {"model": {"kind": 3}}) == two  # a config that does not validate: no guess


def test_a_worker_trains_a_small_step_on_one_thread_and_says_why(runs_dir, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = build_config("split-digits", overrides=SHORT[1:])
    run = worker.start(config, RunStore(runs_dir).new_run_dir("small"), threads=ThreadChoice(2, "2 cores / 1 run"))
    deadline = time.monotonic() + 90
    while not run.done and time.monotonic() < deadline:
        run.pump(0.5)
    assert run.done
    env = read_run_json(run.run_dir)["env"]
    assert (env["threads"], env["threads_from"]) == ("1", "1 thread: a 146 MFLOP step runs faster on one "
                                                          "(2 cores / 1 run)")
