"""MLflow, for real: runs tracked live by their worker into a SQLite store on disk, a study as nested runs, a
tracker that cannot be reached, and runs pushed later with `cltui export mlflow`; all read back with MLflow's own
client. One store for the module (MLflow's import and its first database take seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app
from core.reporting.tracking import context_metrics, parse_track
from core.runs.record import read_run_json
from core.runs.store import read_events
from tests.helpers.cli import assert_bad_input

ENV = {"COLUMNS": "200", "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
TINY = ["--set", "train.iterations=20"]
DOWN = "http://127.0.0.1:9"  # the discard port: nothing listens there


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tracking") / "runs"


@pytest.fixture(scope="module")
def study(root):
    """`cltui compare --track mlflow --track-checkpoints` of two split-digits methods: the default store in the
    runs folder, a study run with the two runs nested under it."""
    result = cli("compare", "split-digits", "--methods", "none,er", "--seeds", "1", "--jobs", "2", *TINY,
                 "--track", "mlflow", "--track-checkpoints", "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    [study_file] = (root / "studies").glob("*.json")
    return result, json.loads(study_file.read_text())


@pytest.fixture(scope="module")
def client(study, root):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{root / 'mlflow.db'}")


def mlflow_run(client, run_id: str):
    [experiment] = [e for e in client.search_experiments() if e.name == "split-digits"]
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`cltui.run_id` = '{run_id}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def artifacts(client, run_id: str, folder: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, folder):
        out |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_a_tracked_run_has_its_params_metrics_per_context_tags_and_artifacts(study, client, root):
    result, plan = study
    folder = root / next(e["run_id"] for e in plan["runs"] if e["method"] == "er")
    record = read_run_json(folder)
    assert "tracking in MLflow: sqlite:///" in result.output and "warning" not in result.output
    assert (root / "mlflow.db").is_file() and (root / "mlartifacts").is_dir()  # the store lives in the runs folder
    track = record["config"]["track"]
    assert (track["tracker"], track["uri"], track["checkpoints"]) == ("mlflow", None, True)
    run = mlflow_run(client, folder.name)
    assert run.info.status == "FINISHED" and run.info.run_name == folder.name

    # params: the flattened config, as a preset writes its values; not where the run was tracked
    params = run.data.params
    assert params["method.name"] == "er" and params["method.budget"] == "20"
    assert params["train.iterations"] == "20" and params["model.hidden"] == "[400, 400]"
    assert params["benchmark.class_order_seed"] == "none" and not any(k.startswith("track.") for k in params)

    tags = run.data.tags
    assert (tags["preset"], tags["method"], tags["scenario"], tags["status"]) == ("split-digits", "er", "class",
                                                                                  "finished")
    # per context k (step k): accuracy on every context, average over those seen, forgetting so far
    matrix = record["acc_matrix"]
    for j in range(5):
        history = client.get_metric_history(run.info.run_id, f"acc.c{j}")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
            [(k, pytest.approx(matrix[k][j])) for k in range(5)]
    average = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "avg_acc")}
    assert average == {k: pytest.approx(sum(matrix[k][: k + 1]) / (k + 1)) for k in range(5)}
    forgetting = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "forgetting")}
    assert sorted(forgetting) == [1, 2, 3, 4]  # none after the first context
    assert forgetting[4] == pytest.approx(record["metrics"]["avg_forgetting"])
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert len(losses) >= 5 and max(m.step for m in losses) <= 5 * 20  # the loss curve, step = iteration
    assert run.data.metrics["final_avg_acc"] == pytest.approx(record["metrics"]["final_avg_acc"])
    assert run.data.metrics["bwt"] == pytest.approx(record["metrics"]["bwt"])

    files = artifacts(client, run.info.run_id)
    assert {"run.json", "figures/accuracy.png", "figures/accuracy.pdf", "checkpoints/context-4.pt"} <= files
    (root.parent / "download").mkdir()
    local = Path(client.download_artifacts(run.info.run_id, "run.json", str(root.parent / "download")))
    assert json.loads(local.read_text())["id"] == folder.name


def test_a_study_is_a_run_with_its_runs_nested_and_its_table(study, client, root):
    _, plan = study
    [experiment] = [e for e in client.search_experiments() if e.name == "split-digits"]
    [parent] = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`cltui.study_id` = '{plan['id']}'")
    assert parent.info.status == "FINISHED" and parent.info.run_name == plan["id"]
    children = [mlflow_run(client, entry["run_id"]) for entry in plan["runs"]]
    assert {c.data.tags["method"] for c in children} == {"none", "er"}
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["final_avg_acc.er"] > parent.data.metrics["final_avg_acc.none"]
    files = artifacts(client, parent.info.run_id)
    assert {"table/study.md", "table/study.csv", "table/study.json", "figures/study.pdf", "figures/study.png"} <= files
    for entry in plan["runs"]:  # each run records the study's MLflow run it is nested under
        assert read_run_json(root / entry["run_id"])["config"]["track"]["parent"] == parent.info.run_id


@pytest.fixture(scope="module")
def untracked(tmp_path_factory):
    """A dreaming run (its dreams are artifacts too) whose tracker cannot be reached."""
    root = tmp_path_factory.mktemp("down") / "runs"
    result = cli("run", "split-digits-dfcil", "--method", "deepinversion", *TINY, "--set", "benchmark.contexts=2",
                 "--set", "method.steps=10", "--set", "method.verifier_iterations=10", "--track", f"mlflow:{DOWN}",
                 "--runs-dir", str(root))
    [folder] = [p for p in root.iterdir() if (p / "run.json").exists()]
    return result, root, folder


def test_a_tracker_that_cannot_be_reached_leaves_the_run_finished_with_one_warning_line(untracked):
    result, _, folder = untracked
    assert result.exit_code == 0, result.output
    assert read_run_json(folder)["status"] == "finished"
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.output
    assert DOWN in warnings[0] and "cltui export mlflow" in result.output
    logged = [line for line in (folder / "worker.log").read_text().splitlines() if "warning" in line]
    assert len(logged) == 1 and DOWN in logged[0] and "Traceback" not in (folder / "worker.log").read_text()
    assert sum(type(e).__name__ == "Warned" for e in read_events(folder)) == 1
    assert not (folder.parent / "mlflow.db").exists()


def test_export_pushes_an_old_run_later_with_its_loss_curve_and_dreams_once(untracked, client, tmp_path):
    _, root, folder = untracked
    target = f"sqlite:///{tmp_path / 'later.db'}"
    # Without --uri the run's own (unreachable) tracking URI is used: one line saying so, exit 1.
    refused = cli("export", "mlflow", folder.name, "--runs-dir", str(root))
    assert refused.exit_code == 1 and DOWN in refused.stderr and "--uri" in refused.stderr
    pushed = cli("export", "mlflow", folder.name, "--uri", target, "--runs-dir", str(root))
    assert pushed.exit_code == 0, pushed.output
    assert f"pushed: {folder.name}" in pushed.output
    again = cli("export", "mlflow", folder.name[:20], "--uri", target, "--runs-dir", str(root))
    assert again.exit_code == 0 and f"already there: {folder.name}" in again.output

    from mlflow.tracking import MlflowClient

    later = MlflowClient(target)
    [experiment] = [e for e in later.search_experiments() if e.name == "split-digits-dfcil"]
    [run] = later.search_runs([experiment.experiment_id])
    record = read_run_json(folder)
    assert run.info.status == "FINISHED" and run.data.tags["method"] == "deepinversion"
    assert run.data.params["method.steps"] == "10"
    assert run.data.metrics["final_avg_acc"] == pytest.approx(record["metrics"]["final_avg_acc"])
    assert len(later.get_metric_history(run.info.run_id, "loss")) >= 2
    for k in range(2):
        assert run.data.metrics[f"acc.c{k}"] == pytest.approx(record["acc_matrix"][-1][k])
    files = artifacts(later, run.info.run_id)
    assert {"run.json", "figures/accuracy.png", "dreams/context-0/grid.png"} <= files
    assert not any(f.startswith("checkpoints/") for f in files)  # only with --track-checkpoints


def test_export_pushes_a_study_with_its_runs_nested(study, root, tmp_path):
    study_id = study[1]["id"]
    target = f"sqlite:///{tmp_path / 'study.db'}"
    result = cli("export", "mlflow", study_id, "--uri", target, "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    from mlflow.tracking import MlflowClient

    later = MlflowClient(target)
    [experiment] = [e for e in later.search_experiments() if e.name == "split-digits"]
    runs = later.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("cltui.study_id") == study_id]
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(nested) == 2 and parent.info.status == "FINISHED"


@pytest.mark.parametrize("args, words", [
    (["run", "--track", "foo"], ["--track", "'foo'", "mlflow:URI"]),
    (["run", "--track", "mlflow:"], ["--track", "URI"]),
    (["run", "--track-checkpoints"], ["--track-checkpoints", "--track mlflow"]),
    (["compare", "--methods", "none", "--track", "wandb"], ["--track", "'wandb'"]),
    (["export", "mlflow", "no-such-run"], ["no run 'no-such-run'"]),
    (["export", "mlflow", "x", "--uri", " "], ["--uri"]),
], ids=["unknown-tracker", "empty-uri", "checkpoints-without-tracker", "compare", "unknown-run", "blank-uri"])
def test_bad_tracking_input_is_one_line_and_exit_code_2(args, words, runs_env, runs_dir):
    assert_bad_input(cli(*args, env=runs_env), *words)
    assert not any(runs_dir.iterdir())


def test_a_bad_cltui_track_names_the_variable(runs_env, runs_dir):
    assert_bad_input(cli("run", env={**runs_env, "CLTUI_TRACK": "mlfow"}), "CLTUI_TRACK", "'mlfow'")
    assert not any(runs_dir.iterdir())


def test_without_mlflow_installed_the_command_names_the_extra(runs_dir):
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "from cltui.cli.main import app\n"
            f"app(['run', '--track', 'mlflow', '--runs-dir', {str(runs_dir)!r}])")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, **ENV})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'cltui[mlflow]'" in lines[0]


def test_the_track_spec_and_the_numbers_per_context():
    assert parse_track("mlflow") == {"tracker": "mlflow", "uri": None}
    assert parse_track("mlflow:http://host:5000") == {"tracker": "mlflow", "uri": "http://host:5000"}
    assert parse_track("MLflow:sqlite:///x.db")["uri"] == "sqlite:///x.db"
    assert parse_track("none") == {"tracker": "none", "uri": None}
    rows = [[0.9, 0.1], [0.5, 0.8]]
    er = {"method": {"name": "er"}}
    assert context_metrics(rows, 1, er) == {"acc.c0": 0.5, "acc.c1": 0.8, "avg_acc": pytest.approx(0.65),
                                            "old_acc": 0.5, "new_acc": 0.8, "forgetting": pytest.approx(0.4)}
    assert context_metrics(rows, 0, er)["avg_acc"] == 0.9 and context_metrics(rows, 0, er)["forgetting"] is None
    assert context_metrics([[0.9, 0.7]], 0, {"method": {"name": "joint"}})["avg_acc"] == pytest.approx(0.8)
    # B3-1: the first context holds 3 of the 4 classes, so 3/4 of the average (MLflow's figure is every face's)
    b3 = {"method": {"name": "er"}, "benchmark": {"first_context_classes": 3, "classes_per_context": 1,
                                                  "contexts": 2}}
    assert context_metrics(rows, 1, b3)["avg_acc"] == pytest.approx(0.75 * 0.5 + 0.25 * 0.8)
