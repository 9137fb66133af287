"""What the CLI prints, read as a user reads it (issue 17): `runs list` fitted to 80 and 100 columns without
a mangled cell and at full width into a pipe, newest first; hints that carry --runs-dir; --json with rounded
floats; `studies list` / `studies show` naming a study's overrides; `cltui dreams --context` refusing to draw
into a pipe. On the runs folder of tests/helpers/daily.py (30 runs and a study), no training."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app
from cltui.cli.output import rounded, runs_dir_flag
from tests.helpers.daily import STUDY_ID, write_thirty_runs
from tests.helpers.fixed_runs import IDS, write_fixture_runs

TTY = {"TTY_COMPATIBLE": "1", "NO_COLOR": "1"}  # Rich writes as to a terminal (fitted to COLUMNS), no escapes


def cli(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env or {})


@pytest.fixture(scope="module")
def daily(tmp_path_factory) -> tuple[Path, list[str], str]:
    root = tmp_path_factory.mktemp("daily") / "runs"
    ids, study = write_thirty_runs(root)
    return root, ids, study


def table_rows(output: str) -> list[list[str]]:
    """The cells of each line of a Rich table printed without edges (the header's rules are heavy)."""
    lines = [line.replace("┃", "│") for line in output.splitlines()]
    return [[cell.strip() for cell in line.split("│")] for line in lines if "│" in line]


# --- runs list -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_runs_list_fits_the_terminal_without_a_cut_cell(daily, columns):
    root, ids, _ = daily
    result = cli("runs", "list", "--runs-dir", root, env={**TTY, "COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), "\n".join(lines)
    assert "…" not in result.stdout  # no cell cut to an ellipsis
    rows = table_rows(result.stdout)
    header, body = rows[0], rows[1:]
    assert header[0] == "id" and "status" in header and "final acc %" in header
    assert [r[0] for r in body] == ids  # every id whole, on one line, newest first
    assert all(r[header.index("status")] == "finished" for r in body)
    assert all(re.fullmatch(r"\d+\.\d", r[header.index("final acc %")]) for r in body)
    if columns < 120:  # something was left out, and the output says so
        assert "left out at" in result.stdout
    else:
        assert header == ["id", "preset", "method", "scenario", "status", "final acc %", "duration"]


def test_runs_list_folds_the_id_rather_than_cutting_it_when_even_that_is_too_wide(daily):
    root, ids, _ = daily
    result = cli("runs", "list", "--runs-dir", root, env={**TTY, "COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 40 for line in result.stdout.splitlines())
    assert "…" not in result.stdout
    joined = "".join(line.split("│")[0].strip() for line in result.stdout.splitlines() if "│" in line)
    assert all(i in joined for i in ids)  # each id whole, over two lines


def test_runs_list_into_a_pipe_is_one_line_per_run_at_full_width(daily):
    root, ids, _ = daily
    result = cli("runs", "list", "--runs-dir", root, env={"COLUMNS": "80"})  # CliRunner's stdout is no terminal
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert rows[0] == ["id", "preset", "method", "scenario", "status", "final acc %", "duration"]
    assert [r[0] for r in rows[1:]] == ids
    assert max(len(line) for line in result.stdout.splitlines()) > 80  # not wrapped at 80


def test_runs_list_into_a_real_pipe(daily):
    root, ids, _ = daily
    out = subprocess.run([sys.executable, "-m", "cltui.cli.main", "runs", "list", "--runs-dir", str(root)],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
                         check=True, timeout=60).stdout
    assert [r[0] for r in table_rows(out)[1:]] == ids and "…" not in out


def test_runs_list_orders_every_format_newest_first(daily):
    root, ids, _ = daily
    lines = cli("runs", "list", "--json", "--runs-dir", root).stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids
    as_json = json.loads(cli("runs", "list", "--format", "json", "--runs-dir", root).stdout)
    assert [row["id"] for row in as_json] == ids


# --- --json rounds its floats --------------------------------------------------------------------------------


def test_rounded_keeps_six_significant_digits():
    assert rounded(0.9502272000000002) == 0.950227
    assert rounded({"a": [1.23456789e-05, 2, "x", None, True]}) == {"a": [1.23457e-05, 2, "x", None, True]}
    assert rounded(float("nan")) != rounded(float("nan"))  # left as it is


def long_floats(text: str) -> list[str]:
    """The numbers in JSON text (one document, or one per line) with more than 6 significant digits."""
    found: list[str] = []

    def check(number: str) -> float:
        digits = number.lower().split("e")[0].replace("-", "").replace(".", "").lstrip("0")
        if len(digits) > 6:
            found.append(number)
        return float(number)

    try:
        json.loads(text, parse_float=check)
    except json.JSONDecodeError:
        for line in text.splitlines():
            json.loads(line, parse_float=check)
    return found


def test_every_json_output_rounds_its_floats(daily):
    root, ids, study = daily
    original = (root / ids[0] / "run.json").read_text()
    record = json.loads(original)
    # the figures are computed from the matrix on reading (never trusted from disk): a long float there
    record["acc_matrix"] = [[0.9502272000000002] * len(record["acc_matrix"][-1])] * len(record["acc_matrix"])
    (root / ids[0] / "run.json").write_text(json.dumps(record))
    try:
        outputs = {
            "runs list --json": cli("runs", "list", "--json", "--runs-dir", root).stdout,
            "runs list --format json": cli("runs", "list", "--format", "json", "--runs-dir", root).stdout,
            "runs show --json": cli("runs", "show", ids[0], "--json", "--runs-dir", root).stdout,
            "studies show --format json": cli("studies", "show", study, "--format", "json", "--runs-dir", root).stdout,
        }
    finally:
        (root / ids[0] / "run.json").write_text(original)  # as it was (the other tests share the folder)
    for name, text in outputs.items():
        assert not long_floats(text), (name, long_floats(text)[:3])
    assert '"final_avg_acc": 0.950227' in outputs["runs list --json"]
    assert "0.950227" in outputs["runs show --json"]


# --- hints carry --runs-dir ----------------------------------------------------------------------------------


def test_runs_dir_flag_is_left_out_for_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CLTUI_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs_dir_flag(None) == "" and runs_dir_flag(Path("runs")) == ""
    assert runs_dir_flag(Path("my runs")) == " --runs-dir 'my runs'"
    monkeypatch.setenv("CLTUI_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs_dir_flag(tmp_path / "elsewhere") == ""  # $CLTUI_RUNS_DIR still says it


def test_hints_carry_the_runs_dir_the_user_passed(tmp_path):
    root = tmp_path / "my runs"
    folders = write_fixture_runs(root)
    flag = f"--runs-dir '{root}'"
    shown = cli("runs", "show", IDS["dreams"], "--runs-dir", root, env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert f"cltui dreams {IDS['dreams']} {flag}" in shown.stdout
    listed = cli("dreams", IDS["dreams"], "--runs-dir", root, env={"COLUMNS": "300"})
    assert listed.exit_code == 0, listed.output
    assert f"cltui dreams {IDS['dreams']} --context K {flag}" in listed.stdout
    empty = tmp_path / "empty"
    assert f"cltui run --runs-dir {empty}" in cli("runs", "list", "--runs-dir", empty).stdout
    assert f"--runs-dir {empty}" in cli("studies", "list", "--runs-dir", empty).stdout
    assert folders  # the fixture wrote its runs


def test_hints_name_no_runs_dir_when_none_was_passed(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_fixture_runs(root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLTUI_RUNS_DIR", raising=False)
    shown = cli("runs", "show", IDS["dreams"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert f"cltui dreams {IDS['dreams']}\n" in shown.stdout and "--runs-dir" not in shown.stdout


# --- studies -------------------------------------------------------------------------------------------------


def test_studies_list_has_an_overrides_column(daily):
    root, _, study = daily
    result = cli("studies", "list", "--runs-dir", root)
    assert result.exit_code == 0, result.output
    header, row = table_rows(result.stdout)
    assert header == ["study", "preset", "scenario", "methods", "seeds", "overrides", "finished", "status"]
    assert row == [study, "split-digits", "class", "none, ewc, si, lwf, er", "3", "train.iterations=50", "15/15",
                   "finished"]
    for columns in (80, 100):  # fitted: the id and the overrides whole
        fitted = cli("studies", "list", "--runs-dir", root, env={**TTY, "COLUMNS": str(columns)}).stdout
        assert all(len(line) <= columns for line in fitted.splitlines()) and "…" not in fitted
        assert study in fitted and "train.iterations=50" in fitted and "15/15" in fitted


def test_studies_show_names_the_overrides_in_its_header(daily):
    root, _, study = daily
    for env in ({"COLUMNS": "100", **TTY}, {"COLUMNS": "80", **TTY}, {}):
        result = cli("studies", "show", study, "--runs-dir", root, env=env)
        assert result.exit_code == 0, result.output
        header = " ".join(result.stdout.split())
        assert f"study {STUDY_ID} (split-digits, class-IL, 3 seeds, train.iterations=50)" in header, result.stdout


# --- cltui dreams into a pipe --------------------------------------------------------------------------------


def test_dreams_refuses_to_draw_into_a_pipe_and_names_export(tmp_path):
    root = tmp_path / "runs"
    write_fixture_runs(root)
    result = cli("dreams", IDS["dreams"], "--context", "1", "--runs-dir", root)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a terminal" in lines[0] and "--export DIR" in lines[0], result.stderr
    assert f"--runs-dir {root}" in lines[0]
    assert "▀" not in result.stdout
    drawn = cli("dreams", IDS["dreams"], "--context", "1", "--width", "40", "--runs-dir", root, env=TTY)
    assert drawn.exit_code == 0 and "▀" in drawn.stdout  # a terminal still gets the grid
    dest = tmp_path / "out"
    exported = cli("dreams", IDS["dreams"], "--context", "1", "--export", dest, "--runs-dir", root)
    assert exported.exit_code == 0 and (dest / "context-1").is_dir()
    shutil.rmtree(dest)


def test_studies_list_is_newest_first_and_counts_only_live_runs_as_running(tmp_path):
    from tests.helpers.studies import RUNNING_ID, add_running_study

    root = tmp_path / "runs"
    ids, study = write_thirty_runs(root)
    add_running_study(root, ids)
    rows = table_rows(cli("studies", "list", "--runs-dir", root).stdout)[1:]
    assert [r[0] for r in rows] == [RUNNING_ID, study]
    assert rows[0][-2:] == ["7/15", "running"] and rows[0][5] == "–"
    for run_id in sorted(ids)[7:9]:  # their worker is gone
        path = root / run_id / "run.json"
        path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    rows = table_rows(cli("studies", "list", "--runs-dir", root).stdout)[1:]
    assert rows[0][-2:] == ["7/15", "unfinished"]
