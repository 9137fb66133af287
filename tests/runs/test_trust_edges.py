"""The smaller trust findings of issue 26: booleans never taken as numbers, tracked runs on a fresh store,
nothing written under $HOME, `export mlflow`'s errors, Rich markup and control characters from files and
arguments, a preset name a built-in has, a damaged merge teacher, the README's options."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.schema.limits import ConfigError
from tests.helpers.cli import assert_one_line_error, cli
from tests.helpers.runs import merge_teachers

# --- 12: booleans are never numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("item, field", [("train.iterations=true", "train.iterations"),
                                          ("model.hidden=[400, true]", "model.hidden"),
                                          ("train.seed=true", "train.seed"),
                                          ("train.lr=false", "train.lr"),
                                          ("method.lambda=true", "method.lambda")])
def test_a_boolean_is_never_a_number(item, field):
    from core.schema.presets import build_config

    with pytest.raises(ConfigError) as caught:
        build_config("split-digits", method="ewc", overrides=[item])
    assert caught.value.field == field and "true or false" in str(caught.value), str(caught.value)


def test_a_boolean_for_a_number_in_a_preset_file_is_one_line_exit_2(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('benchmark = { name = "digits" }\n[train]\niterations = true\n')
    result = cli("run", str(preset), "--runs-dir", tmp_path / "runs")
    assert_one_line_error(result, "train.iterations", "true or false")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- 17: a preset under a built-in's name ---------------------------------------------------------------------


def test_sweep_refuses_to_write_a_preset_a_built_in_would_hide(tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    monkeypatch.setenv("CLTUI_PRESETS_DIR", str(presets))
    result = cli("sweep", "--grid", "method.lambda=1,10", "--seeds", "1", "--set", "train.iterations=5",
                 "--write-preset", "split-digits", "--runs-dir", tmp_path / "runs",
                 env={"CLTUI_PRESETS_DIR": str(presets)})
    assert_one_line_error(result, "--write-preset split-digits", "built-in")
    assert not presets.exists() or not any(presets.iterdir())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("run.json"))


# --- 18: a merge teacher whose checkpoint is cut short -----------------------------------------------------------


def test_merge_with_a_truncated_teacher_checkpoint_says_damaged(tmp_path):
    runs = tmp_path / "runs"
    names = merge_teachers(runs)
    checkpoint = max((runs / names[1] / "checkpoints").glob("context-*.pt"))
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    result = cli("merge", *names, "--set", "iterations=5", "--runs-dir", runs)
    line = assert_one_line_error(result, names[1], "damaged", code=result.exit_code)
    assert "does not hold" not in line and result.exit_code in (1, 2)


# --- 16: Rich markup and control characters from files and arguments ---------------------------------------------

HOSTILE = "\x1b[2J\x1b]0;pwned\x07[bold]x[/bold]:b:"


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """A study of one real run whose run.json and study file carry escape sequences, Rich markup and an emoji
    code in their preset, overrides and method texts."""
    import json

    from core.runs.store import RunStore
    from core.studies import study as studies
    from tests.helpers.studies import train_study

    root = tmp_path_factory.mktemp("hostile") / "runs"
    study = train_study(root, ["none"], 1, ("train.iterations=5",))
    run_json = root / study["runs"][0]["run_id"] / "run.json"
    record = json.loads(run_json.read_text())
    record["preset"] = record["config"]["preset"] = HOSTILE
    record["error"] = {"message": HOSTILE, "traceback": HOSTILE}
    run_json.write_text(json.dumps(record))
    path = studies.studies_dir(RunStore(root)) / f"{study['id']}.json"
    data = json.loads(path.read_text())
    data["preset"], data["overrides"] = HOSTILE, [HOSTILE]
    path.write_text(json.dumps(data))
    return root, study["runs"][0]["run_id"], study["id"]


def assert_clean(output: str) -> None:
    assert not any(ord(c) < 32 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in output), repr(output)
    assert "🅱" not in output, output


@pytest.mark.parametrize("args", [("runs", "list"), ("runs", "show", "RUN"), ("runs", "show", "RUN", "--json"),
                                  ("studies", "list"), ("studies", "show", "STUDY"),
                                  ("studies", "show", "STUDY", "--format", "markdown"),
                                  ("studies", "show", "STUDY", "--format", "csv"),
                                  ("runs", "list", "--columns", "id,preset,error", "--format", "csv"),
                                  ("runs", "list", "--columns", "id,preset", "--format", "markdown"),
                                  ("runs", "list", "--columns", "id,preset", "--format", "table")])
def test_text_from_run_and_study_files_reaches_the_terminal_inert(hostile_runs, args):
    root, run_id, study_id = hostile_runs
    args = [{"RUN": run_id, "STUDY": study_id}.get(a, a) for a in args]
    result = cli(*args, "--runs-dir", root)
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    if "--json" not in args and "--format" not in args:
        assert "pwned" in result.output or "list" in args


def test_an_argument_echoed_in_an_error_keeps_its_colons_and_brackets(tmp_path):
    result = cli("sweep", "--grid", "method.lambda=a:b:log:3", "--grid", "method.c=[red]x[/red]",
                 "--runs-dir", tmp_path / "runs")
    line = assert_one_line_error(result, "method.lambda=a:b:log:3")
    assert_clean(line)


def test_a_user_preset_with_escape_sequences_lists_inert(tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "mine.toml").write_text('description = "\\u001b[2J\\u001b]0;pwned\\u0007 :b: [bold]x"\n'
                                       'benchmark = { name = "digits" }\n')
    for args in (("presets", "list"), ("presets", "show", "mine")):
        result = cli(*args, env={"CLTUI_PRESETS_DIR": str(presets)})
        assert result.exit_code == 0, result.output
        assert_clean(result.output)
        assert "[bold]x" in result.output


# --- 10: nothing written under $HOME ---------------------------------------------------------------------------

CLTUI = Path(sys.executable).parent / "cltui"
# MLflow sends no telemetry when it sees one of these (a test, a CI): a user's shell has none of them.
CI_VARIABLES = ("PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS",
                "TF_BUILD", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION",
                "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME", "RUNBOT_WORKER_ID",
                "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MPLCONFIGDIR")


def user_env(home: Path, runs: Path) -> dict[str, str]:
    """The environment of a user's shell with a fresh, empty home folder and no XDG folders set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_") and k not in CI_VARIABLES}
    return {**env, "HOME": str(home), "CLTUI_RUNS_DIR": str(runs), "COLUMNS": "200"}


def test_tracking_plot_and_export_write_nothing_under_home(tmp_path):
    home, runs = tmp_path / "home", tmp_path / "runs"
    home.mkdir()
    env = user_env(home, runs)

    def cltui(*args: str | Path) -> subprocess.CompletedProcess:
        done = subprocess.run([str(CLTUI), *map(str, args)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    cltui("run", "split-digits", "--set", "train.iterations=5", "--track", "mlflow", "-q")
    run_id = next(p.name for p in runs.iterdir() if (p / "run.json").is_file())
    cltui("plot", run_id, "--out", runs / "figure.png")
    cltui("export", "mlflow", run_id, "--uri", f"sqlite:///{runs / 'other.db'}")
    cltui("export", "tensorboard", run_id, "--logdir", runs / "tensorboard")
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


# --- 9: two tracked runs starting at once on a fresh store ----------------------------------------------------

OPEN_STORE = """
import sys, time
from pathlib import Path
from core.reporting.mlflow_store import MlflowStore, quiet_mlflow
quiet_mlflow()
from mlflow.tracking import MlflowClient  # loaded before the start: both processes begin together
ready, go = Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
store = MlflowStore(sys.argv[1], "split-digits")
store.create(ready.name, {"cltui.run_id": ready.name})
print("tracked")
"""


def test_two_processes_open_a_fresh_tracking_store_at_once(tmp_path):
    runs, go = tmp_path / "runs", tmp_path / "go"
    runs.mkdir()
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    ready = [tmp_path / f"run-{i}" for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, uri, str(r), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env) for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline \
            and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()  # both start on the fresh store at the same moment
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 and "tracked" in out for p, out in zip(procs, outputs, strict=False)), outputs


# --- 11: `export mlflow`'s errors ---------------------------------------------------------------------------------


def test_export_mlflow_to_a_uri_of_no_tracking_store_is_bad_input(hostile_runs):
    root, run_id, _ = hostile_runs
    result = cli("export", "mlflow", run_id, "--uri", "bogus://x", "--runs-dir", root)
    assert_one_line_error(result, "--uri", "bogus://x", "sqlite:///")


def test_export_mlflow_to_a_store_it_cannot_write_is_one_line_at_once(hostile_runs, tmp_path):
    root, run_id, _ = hostile_runs
    folder = tmp_path / "a-folder"  # a folder where the store's file should be: not even root can write it
    folder.mkdir()
    done = subprocess.run([str(CLTUI), "export", "mlflow", run_id, "--uri", f"sqlite:///{folder}",
                           "--runs-dir", str(root)], capture_output=True, text=True, timeout=90, check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert str(folder) in lines[0] and "Traceback" not in done.stdout + done.stderr


# --- 19: the README's options are the commands' options ----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
OTHER_PROGRAMS = {"--active-classes", "--lwf", "--fromp"}  # van de Ven's main.py, quoted where the docs cite it


def command_options(command: object) -> set[str]:
    return {o for p in getattr(command, "params", []) for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}


def test_every_option_the_readme_documents_is_an_option_of_its_command():
    import re

    import typer

    from cltui.cli.main import app

    root = typer.main.get_command(app)
    every, stack = set(), [root]
    while stack:
        command = stack.pop()
        every |= command_options(command)
        stack += list(getattr(command, "commands", {}).values())
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    scripts = "".join(p.read_text() for p in (ROOT / "benchmarks").glob("*.py"))
    wrong = []
    for line in text.splitlines():  # `cltui CMD [SUB] ... --option`: an option of that very command
        for match in re.finditer(r"\bcltui((?: +[^`|\n]+?)?)(?=`|$| *\||  +#)", line):
            command, path = root, ["cltui"]
            for token in match.group(1).split():
                if token in getattr(command, "commands", {}):
                    command = command.commands[token]
                    path.append(token)
                elif token.startswith("--") and token.split("=")[0] not in command_options(command) | \
                        command_options(root):
                    wrong.append(f"{' '.join(path)} {token}")
    for match in re.finditer(r"`(--[a-z][a-z0-9-]*)[ =`]", text):  # one in prose: of some command, or a script's
        option = match.group(1)
        if option not in every and f'"{option}"' not in scripts and option not in OTHER_PROGRAMS:
            wrong.append(option)
    assert not wrong, wrong
