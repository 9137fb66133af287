"""The headless face through typer.testing.CliRunner on cltui.cli.main.app (real worker processes for
`cltui run`), plus the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app
from core.runs.paths import StoreError
from core.runs.record import read_run_json
from core.runs.store import read_events
from core.schema.presets import list_presets
from tests.helpers.cli import assert_bad_input

CLTUI = Path(sys.executable).parent / "cltui"
WIDE = {"COLUMNS": "200"}


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={**WIDE, **(env or {})})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny run through `cltui run`: (result, runs dir, run folder)."""
    root = tmp_path_factory.mktemp("cli") / "runs"
    result = cli("run", "split-digits", "--scenario", "class", "--method", "none",
                 "--set", "train.iterations=30", "--runs-dir", str(root))
    folders = sorted(root.iterdir()) if root.is_dir() else []
    return result, root, folders[0] if len(folders) == 1 else None


@pytest.fixture
def copied_run(finished, runs_dir) -> Path:
    """A copy of the finished run in this test's own runs dir (so tests may damage or delete it)."""
    source = finished[2]
    assert source is not None, finished[0].output
    return Path(shutil.copytree(source, runs_dir / source.name))


# --- cltui run -----------------------------------------------------------------------------------


def test_run_prints_the_matrix_and_saves_a_finished_run(finished):
    result, _, folder = finished
    assert result.exit_code == 0, result.output
    assert folder is not None and folder.name.endswith("split-digits-class-none-s0")
    out = result.stdout
    assert "accuracy (%)" in out and "final avg acc" in out
    for k in range(5):  # a row after each context
        assert f"c{k} │" in out
    record = read_run_json(folder)
    assert record["status"] == "finished"
    assert record["config"]["train"]["iterations"] == 30
    assert f"{100 * record['metrics']['final_avg_acc']:.1f}%" in out
    assert str(folder) in out


@pytest.mark.parametrize("args, words", [
    (["run", "nope"], ["unknown preset 'nope'", "split-digits"]),
    (["run", "--method", "nope"], ["method", "'nope'", "none"]),
    (["run", "--set", "train.lr=abc"], ["train.lr", "abc"]),
    (["run", "--set", "nope=1"], ["nope", "unknown setting"]),
    (["run", "--set", "train.iterations=0"], ["train.iterations"]),
    (["run", "--set", "lr"], ["KEY=VALUE"]),
], ids=["preset", "method", "lr-not-a-number", "unknown-key", "out-of-range", "no-equals"])
def test_bad_input_is_one_line_and_exit_code_2(args, words, runs_env, runs_dir):
    result = cli(*args, env=runs_env)
    assert_bad_input(result, *words)
    assert list(runs_dir.iterdir()) == []  # no run folder for a run that never started


def test_missing_data_set_names_download(runs_env, runs_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("run", "split-mnist", "--data-dir", str(empty), env=runs_env)
    assert_bad_input(result, "--download", str(empty))
    assert list(runs_dir.iterdir()) == []


def test_a_device_that_is_not_there_is_bad_input_and_leaves_no_run(runs_env, runs_dir):
    # Found only by the worker (the CLI never imports torch); still exit 2, one line, no empty run left.
    result = cli("run", "--device", "cuda:99", "--set", "train.iterations=30", env=runs_env)
    assert_bad_input(result, "train.device", "cuda:99")
    assert list(runs_dir.iterdir()) == []


def test_damaged_data_set_files_are_bad_input_that_names_the_fix(runs_env, runs_dir, tmp_path):
    # All four MNIST files are there (the CLI's file check passes), but the training images are cut off
    # half-way: the worker cannot read them. The user must learn which setting and what to do about it.
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = struct.pack(">IIII", 0x803, 100, 28, 28) + bytes(100 * 28 * 28)
    labels = struct.pack(">II", 0x801, 100) + bytes(i % 10 for i in range(100))
    (raw / "train-images-idx3-ubyte").write_bytes(images[: len(images) // 2])
    (raw / "train-labels-idx1-ubyte").write_bytes(labels)
    (raw / "t10k-images-idx3-ubyte").write_bytes(images)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(labels)
    before = {p: p.read_bytes() for p in raw.iterdir()}

    result = cli("run", "split-mnist", "--data-dir", str(tmp_path / "data"), "--set", "train.iterations=5",
                 env=runs_env)
    assert_bad_input(result, "benchmark.data_dir", str(tmp_path / "data"), "--download")
    assert list(runs_dir.iterdir()) == []
    assert {p: p.read_bytes() for p in raw.iterdir()} == before  # nothing on disk is touched


def test_a_failed_run_exits_1_says_why_and_is_kept(runs_env, runs_dir):
    # lr is bounded (<= 10); the generative classifier's VAEs still diverge at the bound, at iteration 1.
    result = cli("run", "--method", "gen-classifier", "--set", "train.lr=10", "--set", "train.iterations=30",
                 env=runs_env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (folder,) = runs_dir.iterdir()
    record = read_run_json(folder)
    assert record["status"] == "failed"
    assert "context 0" in result.stdout and f"iteration {record['error']['iteration']}" in result.stdout
    assert "failed" in result.stdout and str(folder) in result.stdout


def test_ctrl_c_stops_the_run_and_exits_130(runs_env, runs_dir):
    """One SIGINT to the CLI process while its worker trains: a clean stop, run cancelled, exit code 130."""
    sent = threading.Event()
    worker_pids: list[int] = []

    def interrupt_when_training() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for folder in runs_dir.iterdir():
                if any(type(e).__name__ == "Progress" for e in read_events(folder)):
                    record = read_run_json(folder)
                    if record["status"] == "running":  # the CLI is in its loop, its SIGINT handler set
                        worker_pids.append(record["pid"])
                        sent.set()
                        os.kill(os.getpid(), signal.SIGINT)
                        # Safety net: never leave the CLI waiting forever on a worker that ignores the stop
                        # (killing it ends the CLI with exit code 1, and the test fails instead of hanging).
                        time.sleep(30)
                        try:
                            still_running = read_run_json(folder)["status"] == "running"
                        except StoreError:
                            still_running = False
                        if still_running and record["pid"] != os.getpid():
                            os.kill(record["pid"], signal.SIGKILL)
                        return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_when_training, daemon=True)
    watcher.start()
    result = cli("run", "--set", "train.iterations=100000", "--set", "train.progress_interval=0.05",
                 env=runs_env)
    assert sent.is_set(), result.output
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    assert "stopping after the current step" in result.output
    (folder,) = runs_dir.iterdir()
    record = read_run_json(folder)
    assert record["status"] == "cancelled"
    assert worker_pids and worker_pids[0] != os.getpid()


# --- cltui runs ----------------------------------------------------------------------------------


def test_runs_list_shows_good_runs_and_marks_a_damaged_one(copied_run, runs_dir, runs_env, write_truncated_run):
    broken = write_truncated_run(runs_dir, "20200101-000000-broken", (copied_run / "run.json").read_text())
    result = cli("runs", "list", env=runs_env)
    assert result.exit_code == 0, result.output
    good_line = next(line for line in result.stdout.splitlines() if copied_run.name in line)
    assert "finished" in good_line and "split-digits" in good_line
    broken_line = next(line for line in result.stdout.splitlines() if broken.name in line)
    assert "unreadable" in broken_line
    assert "Traceback" not in result.output
    assert str(broken / "run.json") in result.stderr  # which file, so the user can look at it
    assert (broken / "run.json").read_text()  # listing never rewrites anything

    result = cli("runs", "list", "--json", env=runs_env)
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in map(json.loads, result.stdout.strip().splitlines())}
    assert set(rows) == {copied_run.name, broken.name}
    assert rows[copied_run.name]["status"] == "finished" and rows[copied_run.name]["error"] is None
    saved = read_run_json(copied_run)["metrics"]["final_avg_acc"]
    assert rows[copied_run.name]["final_avg_acc"] == float(f"{saved:.6g}")  # --json rounds to 6 digits
    assert rows[broken.name]["status"] == "unreadable" and rows[broken.name]["error"]


def test_runs_list_takes_runs_dir_option(copied_run, runs_dir, tmp_path):
    result = cli("runs", "list", "--runs-dir", str(runs_dir), env={"CLTUI_RUNS_DIR": str(tmp_path / "elsewhere")})
    assert result.exit_code == 0, result.output
    assert copied_run.name in result.stdout


def test_runs_list_marks_a_run_whose_worker_vanished_as_stale(copied_run, runs_env):
    # run.json still says running, but the process that wrote it is gone (machine rebooted, kill -9).
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    record = read_run_json(copied_run)
    record.update(status="running", pid=child.pid)
    (copied_run / "run.json").write_text(json.dumps(record))
    result = cli("runs", "list", "--json", env=runs_env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "stale"


@pytest.mark.parametrize("how", ["id", "prefix", "folder"])
def test_runs_show_prints_the_matrix(how, copied_run, runs_env):
    key = {"id": copied_run.name, "prefix": copied_run.name[:-5], "folder": str(copied_run)}[how]
    result = cli("runs", "show", key, env=runs_env)
    assert result.exit_code == 0, result.output
    assert copied_run.name in result.stdout
    assert "accuracy (%)" in result.stdout and "c4 │" in result.stdout
    assert "final avg acc" in result.stdout


def test_runs_show_unknown_run_is_bad_input(copied_run, runs_env):
    assert_bad_input(cli("runs", "show", "nope", env=runs_env), "'nope'")


def test_runs_show_a_damaged_run_is_bad_input(copied_run, runs_dir, runs_env, write_truncated_run):
    broken = write_truncated_run(runs_dir, "20200101-000000-broken", (copied_run / "run.json").read_text())
    before = (broken / "run.json").read_bytes()
    assert_bad_input(cli("runs", "show", broken.name, env=runs_env), str(broken / "run.json"))
    assert (broken / "run.json").read_bytes() == before


def test_runs_rm_deletes_with_yes(copied_run, runs_env):
    result = cli("runs", "rm", copied_run.name, "--yes", env=runs_env)
    assert result.exit_code == 0, result.output
    assert not copied_run.exists()


def test_runs_rm_without_yes_refuses_on_a_non_tty(copied_run, runs_env):
    result = cli("runs", "rm", copied_run.name, env=runs_env)
    assert_bad_input(result, "--yes")
    assert (copied_run / "run.json").exists()


# --- cltui presets -------------------------------------------------------------------------------


def test_presets_list_names_every_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("CLTUI_PRESETS_DIR", str(tmp_path))  # no user presets another test may have saved
    result = cli("presets", "list")
    assert result.exit_code == 0, result.output
    names = ["cifar100-b0-10", "cifar100-b50-10", "cifar100-dfcil-10", "cifar100-dfcil-20", "cifar100-dfcil-5",
             "merge-cifar100", "merge-digits", "merge-sine", "perm-mnist", "split-cifar10", "split-cifar100",
             "split-digits", "split-digits-b5-1", "split-digits-dfcil", "split-digits-gen", "split-fashion-mnist",
             "split-mnist", "split-mnist-gen", "stability-gap"]
    assert list_presets() == names
    for name in names:
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines()), name


def test_presets_show_prints_the_resolved_config():
    result = cli("presets", "show", "split-digits")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout[result.stdout.index("\n{") + 1:])
    assert config["preset"] == "split-digits"
    assert config["benchmark"]["name"] == "digits" and config["benchmark"]["contexts"] == 5
    assert config["train"]["iterations"] == 300 and config["method"]["name"] == "none"


def test_presets_show_unknown_is_bad_input():
    assert_bad_input(cli("presets", "show", "nope"), "unknown preset 'nope'")


# --- the installed command and its imports -------------------------------------------------------


def test_the_console_script_answers_help():
    result = subprocess.run([str(CLTUI), "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("run", "runs", "presets"):
        assert command in result.stdout


LIGHT_MODULES = ["cltui.cli.main", "core.schema.config", "core.runs.store", "core.runs.events", "core.launch.worker",
                 "cltui.cli.progress", "cltui.app", "cltui.halfblock", "cltui.tui.app", "cltui.tui.screens.runs",
                 "cltui.tui.screens.detail", "cltui.tui.screens.dreams", "cltui.tui.screens.compare",
                 "cltui.tui.widgets.charts", "cltui.tui.screens.confirm", "cltui.tui.workers",
                 "cltui.tui.state.formats", "cltui.tui.screens.compose", "cltui.tui.screens.live",
                 "cltui.tui.state.follow", "cltui.cli.dreams", "cltui.cli.studies", "core.studies.study",
                 "cltui.cli.export", "core.reporting.tracking", "core.reporting.figures", "core.reporting.mlflow_store",
                 "core.reporting.live", "core.reporting.tensorboard", "core.runs.record", "core.runs.paths",
                 "core.runs.lock", "cltui.tui.state.live", "cltui.tui.state.runs_table", "cltui.tui.state.runs_folder",
                 "cltui.tui.state.choices", "cltui.tui.state.form", "cltui.tui.screens.base"]
HEADLESS_MODULES = ["cltui.cli.main", "cltui.cli.studies", "cltui.cli.progress", "cltui.halfblock", "cltui.cli.dreams",
                    "cltui.cli.export", "core.reporting.tracking", "core.reporting.figures"]


def modules_that_load(package: str, modules: list[str]) -> list[str]:
    """Import `modules` in turn in a fresh interpreter; the ones after which `package` is loaded (the first
    of them is the one that pulled it in)."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"    print(json.dumps([name, {package!r} in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    seen = dict(json.loads(line) for line in result.stdout.splitlines())
    assert list(seen) == modules
    return [name for name, loaded in seen.items() if loaded]


def test_the_faces_do_not_import_torch():
    assert modules_that_load("torch", LIGHT_MODULES) == []


def test_the_headless_commands_do_not_import_textual():
    assert modules_that_load("textual", HEADLESS_MODULES) == []


@pytest.mark.parametrize("package", ["mlflow", "matplotlib", "tensorboard"])
def test_the_result_libraries_load_only_in_the_commands_that_use_them(package):
    # `cltui --help` and every other command stay fast: plot, export and --track import them when they run.
    assert modules_that_load(package, LIGHT_MODULES) == []
