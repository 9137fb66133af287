"""`cltui export tensorboard` read back with TensorBoard's own event reader, and `cltui runs list --format
csv|json|markdown --columns ...` parsed back as a script would."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app
from core.runs.record import read_run_json
from tests.helpers.fixed_runs import IDS, write_fixture_runs
from tests.helpers.studies import train_study

WIDE = {"COLUMNS": "200"}


def cli(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def assert_bad_input(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and all(w in line for w in words), line


def accumulate(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """An ewc run and an er run of split-digits, trained for real, as a study."""
    root = tmp_path_factory.mktemp("export") / "runs"
    return root, train_study(root, ["ewc", "er"], 1)


def test_export_tensorboard_writes_scalars_images_and_the_config(study, tmp_path):
    root, plan = study
    logdir = tmp_path / "tb"
    result = cli("export", "tensorboard", plan["id"], "--logdir", str(logdir), "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    assert f"tensorboard --logdir {logdir}" in result.output
    for entry in plan["runs"]:
        folder = logdir / plan["id"] / entry["run_id"]  # a study's runs under the study
        record = read_run_json(root / entry["run_id"])
        events = accumulate(folder)
        tags = events.Tags()
        assert {f"acc/c{j}" for j in range(5)} | {"avg_acc", "forgetting", "context_loss", "loss",
                                                   "final/final_avg_acc", "final/bwt"} <= set(tags["scalars"])
        matrix = record["acc_matrix"]
        assert [(s.step, s.value) for s in events.Scalars("acc/c0")] == \
            [(k, pytest.approx(matrix[k][0])) for k in range(5)]
        assert [s.step for s in events.Scalars("avg_acc")] == list(range(5))
        assert events.Scalars("final/final_avg_acc")[-1].value == pytest.approx(record["metrics"]["final_avg_acc"])
        loss = events.Scalars("loss")
        assert len(loss) >= 5 and loss == sorted(loss, key=lambda s: s.step)  # per iteration of the whole run
        [image] = events.Images("acc_matrix")
        assert image.width > 100 and image.height > 50 and image.encoded_image_string.startswith(b"\x89PNG")
        assert "config/text_summary" in tags["tensors"]
        text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
        assert json.loads(text.strip().strip("`").removeprefix("json"))["method"]["name"] == entry["method"]


def test_dreams_are_images_and_an_export_again_replaces_the_first(tmp_path):
    root = tmp_path / "runs"
    write_fixture_runs(root)  # a data-free run with dream grids on disk (and run.json naming them)
    logdir = tmp_path / "tb"
    for _ in range(2):
        result = cli("export", "tensorboard", IDS["dreams"], "--logdir", str(logdir), "--runs-dir", str(root))
        assert result.exit_code == 0, result.output
    folder = logdir / IDS["dreams"]
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    dreams = accumulate(folder).Images("dreams")
    record = read_run_json(root / IDS["dreams"])
    assert [d.step for d in dreams] == [d["context"] for d in record["dreams"]]
    assert all(d.encoded_image_string.startswith(b"\x89PNG") for d in dreams)


def test_export_input_is_checked_first(study, tmp_path):
    root, plan = study
    (tmp_path / "file").write_text("")
    assert_bad_input(cli("export", "tensorboard", plan["id"], "--logdir", str(tmp_path / "file"),
                         "--runs-dir", str(root)), "--logdir", "a file is there")
    assert_bad_input(cli("export", "tensorboard", "nope", "--logdir", str(tmp_path), "--runs-dir", str(root)),
                     "no run 'nope'")
    code = ("import sys; sys.modules['tensorboard'] = None\n"
            "from cltui.cli.main import app\n"
            f"app(['export', 'tensorboard', {plan['id']!r}, '--logdir', {str(tmp_path / 'tb')!r}, "
            f"'--runs-dir', {str(root)!r}])")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, **WIDE})
    assert result.returncode == 2 and "pip install 'cltui[tensorboard]'" in result.stderr, result.stderr
    assert not (tmp_path / "tb").exists()


# --- runs list for scripts ---------------------------------------------------------------------------------


def in_list_order(plan):
    """`runs list` orders runs newest first by id (time of creation, then name): the study's two runs may share
    a second."""
    return sorted(plan["runs"], key=lambda e: e["run_id"], reverse=True)


def test_runs_list_as_csv_with_config_columns(study):
    root, plan = study
    result = cli("runs", "list", "--format", "csv", "--columns", "method,seed,method.lambda,final_avg_acc",
                 "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["method"] for r in rows] == [e["method"] for e in in_list_order(plan)]
    by_method = {r["method"]: r for r in rows}
    assert float(by_method["ewc"]["method.lambda"]) == 1e9 and by_method["er"]["method.lambda"] == ""
    for entry in plan["runs"]:
        record = read_run_json(root / entry["run_id"])
        row = by_method[entry["method"]]
        assert int(row["seed"]) == 0 and float(row["final_avg_acc"]) == record["metrics"]["final_avg_acc"]


def test_runs_list_as_json_and_markdown(study):
    root, plan = study
    result = cli("runs", "list", "--format", "json", "--columns", "id,train.iterations,metrics.bwt,env.python",
                 "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["id"] for d in data] == [e["run_id"] for e in in_list_order(plan)]
    assert all(d["train.iterations"] == 20 and isinstance(d["metrics.bwt"], float) and d["env.python"] for d in data)
    default = json.loads(cli("runs", "list", "--format", "json", "--runs-dir", str(root)).stdout)
    assert set(default[0]) == {"id", "preset", "method", "scenario", "seed", "status", "trained", "score",
                               "final_avg_acc", "seen_avg_acc", "avg_forgetting", "total_s"}
    lines = cli("runs", "list", "--format", "markdown", "--columns", "method,final_avg_acc",
                "--runs-dir", str(root)).stdout.strip().splitlines()
    assert lines[0] == "| method | final_avg_acc |" and lines[1] == "|---|---|" and len(lines) == 4
    table = cli("runs", "list", "--columns", "method,method.lambda", "--runs-dir", str(root))
    assert table.exit_code == 0 and "method.lambda" in table.stdout and "1e+09" in table.stdout
    lines = cli("runs", "list", "--json", "--runs-dir", str(root)).stdout.strip().splitlines()  # unchanged
    assert [json.loads(line)["method"] for line in lines] == [e["method"] for e in in_list_order(plan)]


@pytest.mark.parametrize("args, words", [
    (["--format", "xml"], ["--format", "'xml'", "csv"]),
    (["--columns", "method,method.lamda"], ["--columns", "'method.lamda'"]),
    (["--columns", ","], ["--columns"]),
    (["--json", "--format", "csv"], ["--json", "--format json"]),
], ids=["format", "unknown-column", "no-column", "json-and-format"])
def test_runs_list_bad_input_is_one_line(study, args, words):
    root, _ = study
    assert_bad_input(cli("runs", "list", *args, "--runs-dir", str(root)), *words)
