"""Resuming a run from its last completed context gives the accuracy matrix of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app
from core.launch import worker
from core.runs.events import ContextEvaluated
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.schema.presets import build_config
from core.training import run
from tests.helpers.runs import stop_after

TINY = ["train.iterations=30"]
METHODS = [("none", "class"), ("ewc", "class"), ("online-ewc", "domain"), ("si", "class"), ("lwf", "class"),
           ("xdg", "task"), ("separate", "task"), ("er", "class"), ("agem", "class"), ("derpp", "class"),
           ("icarl", "class"), ("dgr", "class"), ("bir", "class"), ("gen-classifier", "class")]


def fresh(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir()
    return path


@pytest.mark.parametrize("method,scenario", METHODS)
def test_a_run_stopped_after_context_2_and_resumed_matches_the_uninterrupted_run(method, scenario, tmp_path):
    cfg = build_config("split-digits", method=method, scenario=scenario, device="cpu", overrides=TINY)
    whole = run(cfg, fresh(tmp_path, "whole"))
    emit, should_stop = stop_after(2)
    stopped_dir = fresh(tmp_path, "stopped")
    stopped = run(cfg, stopped_dir, emit=emit, should_stop=should_stop)
    assert stopped["status"] == "cancelled" and len(stopped["acc_matrix"]) == 3
    resumed = run(cfg, stopped_dir, resume=True)
    assert resumed["status"] == "finished", resumed["error"]
    assert resumed["acc_matrix"] == whole["acc_matrix"]
    assert resumed["task_matrix"] == whole["task_matrix"]  # class-IL's side figures, [] elsewhere
    assert [c["final_loss"] for c in resumed["contexts"]] == [c["final_loss"] for c in whole["contexts"]]
    assert resumed["resumed"][0]["status"] == "cancelled" and resumed["created"] == stopped["created"]


def test_a_worker_killed_mid_context_loses_at_most_that_context_and_resumes_through_the_cli(tmp_path):
    runs = tmp_path / "runs"
    cfg = build_config("split-digits", device="cpu", overrides=["train.iterations=400"])
    whole = run(cfg, fresh(tmp_path, "whole"))
    handle = worker.start(cfg, RunStore(runs).new_run_dir("killed"))
    while not handle.done:
        events = handle.pump(0.1)
        if any(isinstance(e, ContextEvaluated) and e.context == 1 for e in events):
            os.kill(handle.process.pid, signal.SIGKILL)
    killed = read_run_json(handle.run_dir)  # a complete JSON document: never half-written
    assert killed["status"] == "failed" and 2 <= len(killed["acc_matrix"]) <= 5
    assert killed["acc_matrix"] == whole["acc_matrix"][: len(killed["acc_matrix"])]
    out = CliRunner().invoke(app, ["run", "--resume", handle.run_dir.name, "--runs-dir", str(runs), "--quiet"])
    assert out.exit_code == 0, out.output
    assert read_run_json(handle.run_dir)["acc_matrix"] == whole["acc_matrix"]
    assert len(list((handle.run_dir / "checkpoints").glob("*.pt"))) == 1  # only the last is kept


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    runs = tmp_path / "runs"
    cfg = build_config("split-digits", device="cpu", overrides=TINY)
    finished = RunStore(runs).new_run_dir("finished")
    run(cfg, finished)
    cli = CliRunner()
    for args, expect in [
        (["--resume", finished.name], "finished"),
        (["--resume", "nope"], "no run"),
        (["--resume", finished.name, "--method", "ewc"], "--method"),
        (["split-mnist", "--resume", finished.name], "PRESET"),
    ]:
        out = cli.invoke(app, ["run", *args, "--runs-dir", str(runs)])
        assert out.exit_code == 2 and expect in out.output and "Traceback" not in out.output, (args, out.output)
    assert json.loads((finished / "run.json").read_text())["status"] == "finished"  # untouched


@pytest.mark.parametrize(("method", "overrides"), [("bic", []), ("lucir", []), ("der-expand", []),
                                                  ("podnet", ["model.kind=resnet20", "method.memory_total=200",
                                                              "train.iterations=10"]),
                                                  ("xder", ["method.memory_total=100"]), ("foster", []),
                                                  ("der-expand", ["train.reset_optimizer=true"])])
def test_the_class_il_families_resume_exactly_after_context_2(method, overrides, tmp_path):
    """BiC's bias layers, LUCIR's cosine head, DER's extractors in use, PODNet's classifier and X-DER's stored logits
    come back from the checkpoint (X-DER on contexts of two classes: its loss needs them). FOSTER, and DER with
    reset_optimizer, save an optimiser made after part of the network was frozen: the resume rebuilds that one."""
    preset = "split-digits" if method == "xder" else "split-digits-b5-1"
    cfg = build_config(preset, method=method, scenario="class", device="cpu", overrides=[*TINY, *overrides])
    whole = run(cfg, fresh(tmp_path, "whole"))
    emit, should_stop = stop_after(2)
    stopped_dir = fresh(tmp_path, "stopped")
    assert run(cfg, stopped_dir, emit=emit, should_stop=should_stop)["status"] == "cancelled"
    resumed = run(cfg, stopped_dir, resume=True)
    assert resumed["status"] == "finished", resumed["error"]
    assert resumed["acc_matrix"] == whole["acc_matrix"] and resumed["task_matrix"] == whole["task_matrix"]
