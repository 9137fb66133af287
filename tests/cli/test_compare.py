"""`cltui compare` and `cltui studies`: parallel runs, the study file, the table, resuming a study."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from cltui.cli.main import app
from core.runs.events import ContextEvaluated
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.studies import study as studies
from core.training import run

TINY = "train.iterations=40"


def test_compare_runs_every_method_and_seed_and_prints_the_table(tmp_path):
    runs = tmp_path / "runs"
    cli = CliRunner()
    out = cli.invoke(app, ["compare", "split-digits", "--methods", "none,er", "--scenario", "class", "--seeds", "2",
                           "--jobs", "2", "--set", TINY, "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    # into a pipe the closing table keeps its full width: a row per method, named, with old/new (class-IL)
    header = next(line for line in out.output.splitlines() if "final acc %" in line)
    assert header.split()[0] == "method" and "old/new %" in header, out.output
    assert {line.split()[0] for line in out.output.splitlines() if "│" in line} == {"none", "er"}, out.output
    entries = RunStore(runs).list()
    assert len(entries) == 4 and all(e.status == "finished" for e in entries)
    [study_file] = (runs / "studies").glob("*.json")
    study = json.loads(study_file.read_text())
    assert sorted(r["run_id"] for r in study["runs"]) == sorted(e.id for e in entries)
    rows = {r["method"]: r for r in studies.table(RunStore(runs), study)}
    assert rows["er"]["final_avg_acc"] > rows["none"]["final_avg_acc"]
    assert rows["none"]["runs"] == 2 and rows["none"]["final_avg_acc_sem"] is not None

    shown = cli.invoke(app, ["studies", "show", study["id"], "--runs-dir", str(runs)])
    assert shown.exit_code == 0 and "er" in shown.output and "±" in shown.output
    markdown = cli.invoke(app, ["studies", "show", study["id"][:12], "--format", "markdown", "--runs-dir", str(runs)])
    lines = markdown.output.strip().splitlines()
    assert lines[0].startswith("| method |") and set(lines[1]) <= {"|", "-"} and len(lines) == 4
    parsed = list(csv.DictReader(io.StringIO(
        cli.invoke(app, ["studies", "show", study["id"], "--format", "csv", "--runs-dir", str(runs)]).output)))
    assert [r["method"] for r in parsed] == ["none", "er"] and float(parsed[1]["final_avg_acc"]) > 0.5
    as_json = json.loads(cli.invoke(app, ["studies", "show", study["id"], "--format", "json",
                                          "--runs-dir", str(runs)]).output)
    assert as_json[1]["method"] == "er"
    listed = cli.invoke(app, ["studies", "list", "--runs-dir", str(runs)])
    assert study["id"] in listed.output and "4/4" in listed.output


def test_an_interrupted_study_resumes_without_duplicating_runs(tmp_path):
    store = RunStore(tmp_path / "runs")
    study, configs = studies.plan("split-digits", ["none", "er"], "class", 2, [TINY], 2)
    finished_dir = store.new_run_dir("a")
    run(configs[0], finished_dir)  # finished before the interruption
    stopped_dir = store.new_run_dir("b")
    seen = {"done": False}
    run(configs[1], stopped_dir, emit=lambda e: seen.update(done=seen["done"] or isinstance(e, ContextEvaluated)),
        should_stop=lambda: seen["done"])  # cancelled after its first context
    study["runs"][0]["run_id"], study["runs"][1]["run_id"] = finished_dir.name, stopped_dir.name
    studies.save(store, study)
    before = read_run_json(finished_dir)

    out = CliRunner().invoke(app, ["compare", "--resume", study["id"], "--runs-dir", str(store.root), "--quiet"])
    assert out.exit_code == 0, out.output
    entries = store.list()
    assert len(entries) == 4 and all(e.status == "finished" for e in entries)
    resumed = studies.load(store, study["id"])
    assert [r["run_id"] for r in resumed["runs"][:2]] == [finished_dir.name, stopped_dir.name]
    assert read_run_json(finished_dir) == before  # a finished run is kept as it was
    assert read_run_json(stopped_dir)["resumed"][0]["status"] == "cancelled"
    assert resumed["finished"] is not None


def test_compare_and_studies_refuse_bad_input_with_one_line(tmp_path):
    cli = CliRunner()
    for args, expect in [
        (["compare", "split-digits", "--methods", "none,nope"], "nope"),
        (["compare", "split-digits", "--methods", "xdg", "--scenario", "class"], "task"),
        (["studies", "show", "missing"], "not found"),
        (["compare", "--resume", "missing"], "not found"),
    ]:
        out = cli.invoke(app, [*args, "--runs-dir", str(tmp_path)])
        assert out.exit_code == 2 and expect in out.output and "Traceback" not in out.output, (args, out.output)
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())
