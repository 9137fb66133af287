"""Every command of the README's commands table as a user meets it: the installed `cltui` in a real subprocess,
once through a pseudo-terminal (80x24, xterm-256color: Rich draws its live displays) and once into a pipe. Each
asserts the exit code, no traceback, and the figure it prints against what is on disk.

The training commands of each face run in one pipeline (run, a run stopped by Ctrl+C and resumed, compare and
--resume, sweep and --resume, merge, pretrain), the two faces' pipelines side by side, each in its own runs
folder; the other commands read what they left."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.data import manifest_path
from tests.helpers.runs import merge_teachers

CLTUI = str(Path(sys.executable).parent / "cltui")
TINY = ("--set", "train.iterations=5")
FACES = ("tty", "pipe")
# A session of its own whose controlling terminal is the pseudo-terminal on fd 0, as a login shell gives its
# commands: the ^C typed there signals the foreground group. (Popen's preexec_fn is not safe beside threads.)
SESSION = ("import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
           "os.execv(sys.argv[1], sys.argv[1:])")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>]")


@dataclass
class Result:
    code: int
    raw: str

    @property
    def text(self) -> str:
        """What the user sees, escape sequences left out."""
        return ANSI.sub("", self.raw).replace("\r", "")

    def ok(self, code: int = 0) -> str:
        assert "Traceback" not in self.text, self.text[-3000:]
        assert self.code == code, (self.code, self.text[-3000:])
        return self.text


def env_for(face: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TTY_COMPATIBLE", "FORCE_COLOR",
                                                              "NO_COLOR", "TERM")}
    env.update(OMP_NUM_THREADS="1", CLTUI_WORKER_POOL="1")
    if face == "tty":
        env.update(COLUMNS="80", LINES="24", TERM="xterm-256color")
    return {**env, **(extra or {})}


def cltui(face: str, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 120,
          interrupt: Callable[[], bool] | None = None) -> Result:
    """`cltui ARGS` through a pseudo-terminal (face "tty") or into a pipe (face "pipe"). `interrupt`: once it
    holds, Ctrl+C: the ^C character typed at the terminal (its driver signals the foreground group), or SIGINT
    to its process group when it writes into a pipe (as a shell's Ctrl+C does)."""
    argv = [CLTUI, *map(str, args)]
    deadline = time.monotonic() + timeout
    if face == "pipe":
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env_for(face, env), start_new_session=True)
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        while proc.poll() is None and time.monotonic() < deadline:
            if interrupt is not None and interrupt():
                os.killpg(proc.pid, signal.SIGINT)  # the whole job, as a shell's Ctrl+C
                interrupt = None
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(10)
        return Result(proc.returncode, b"".join(chunks).decode(errors="replace"))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", SESSION, *argv], stdin=slave, stdout=slave, stderr=slave,
                            env=env_for(face, env))
    os.close(slave)
    out = bytearray()
    try:
        while time.monotonic() < deadline:
            if interrupt is not None and interrupt():
                os.write(master, b"\x03")
                interrupt = None
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError as e:  # EIO: every writer of the terminal has closed it
                    if e.errno != errno.EIO:
                        raise
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return Result(proc.returncode, out.decode(errors="replace"))


def new_run(root: Path, before: set[str]) -> str:
    """The one run folder made since `before` (the names then)."""
    [name] = [p.name for p in root.iterdir() if p.name not in before and (p / "run.json").is_file()]
    return name


def names(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def study_runs(root: Path, study_id: str) -> dict[str, str]:
    """{method: run id} of a study of one seed, from its study file."""
    study = json.loads((root / "studies" / f"{study_id}.json").read_text())
    return {e["method"]: e["run_id"] for e in study["runs"]}


def record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "run.json").read_text())


def trained_rows(root: Path, part: str) -> Callable[[], bool]:
    """Does the run whose folder name holds `part` have a context evaluated on disk?"""

    def check() -> bool:
        for folder in root.glob(f"*{part}*"):
            try:
                if record(folder).get("acc_matrix"):
                    return True
            except (OSError, ValueError):
                continue
        return False

    return check


def flat(text: str) -> str:
    """Text with every run of white space (a wrapped line) one space."""
    return " ".join(text.split())


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}"


# --- the training commands, each face in its own runs folder ---------------------------------------------


def teachers(root: Path) -> tuple[str, str]:
    """Two finished joint runs of merge-digits on disjoint halves, trained in this process."""
    return merge_teachers(root, hidden=32, iterations=10)


def pipeline(face: str, root: Path, made: tuple[Path, str, str], data: Path, out: dict[str, Any]) -> None:
    """Every training command of the README through one face, in order; each result under its name."""
    dirs = ("--runs-dir", root)
    teacher_root, a, b = made
    for name in (a, b):
        shutil.copytree(teacher_root / name, root / name)
    before = names(root)
    out["run"] = cltui(face, "run", "split-digits", "--seed", "0", *TINY, *dirs)
    out["run_id"] = new_run(root, before)
    before = names(root)
    out["stopped"] = cltui(face, "run", "split-digits", "--seed", "1", "--set", "train.iterations=150", *dirs,
                           interrupt=trained_rows(root, "-none-s1"))
    out["stopped_id"] = new_run(root, before)
    out["resumed"] = cltui(face, "run", "--resume", out["stopped_id"], *dirs)
    out["compare"] = cltui(face, "compare", "split-digits", "--methods", "none,er", "--seeds", "1", "--device", "cpu",
                           *TINY, *dirs)
    [study] = (root / "studies").glob("*.json")
    out["study"] = json.loads(study.read_text())["id"]
    er = study_runs(root, out["study"])["er"]
    out["rm_for_resume"] = cltui(face, "runs", "rm", er, "--yes", *dirs)
    out["compare_resume"] = cltui(face, "compare", "--resume", out["study"], *dirs)
    sweep = ("sweep", "split-digits", "--method", "ewc", "--grid", "method.lambda=1,100", "--seeds", "1",
             "--device", "cpu", *TINY)
    out["sweep"] = cltui(face, *sweep, *dirs)
    out["sweep_resume"] = cltui(face, *sweep, "--resume", *dirs)
    out["merge"] = cltui(face, "merge", a, b, "--approach", "greedy", "--data", "same", "--set", "iterations=10",
                         "--set", "finetune_iterations=5", *dirs)
    out["pretrain"] = cltui(face, "pretrain", "cifar10", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
                            "--data-dir", data, "--out", root.parent / f"{face}.pt",
                            env={"CLTUI_DATA_CHECKSUMS": str(manifest_path(data))})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """Both faces' pipelines, side by side; {face: {command: Result, ...}, face + "_root": runs folder}."""
    from tests.helpers.data import make_cifar10

    base = tmp_path_factory.mktemp("terminal")
    data = base / "data"
    make_cifar10(data, per_batch=10, n_test=20)  # vouched for in manifest_path(data)
    teacher_root = base / "teachers"
    a, b = teachers(teacher_root)
    found: dict[str, Any] = {}
    errors: list[str] = []

    def one(face: str) -> None:
        root = base / face / "runs"
        root.mkdir(parents=True)
        found[face], found[f"{face}_root"] = {}, root
        try:
            pipeline(face, root, (teacher_root, a, b), data, found[face])
        except BaseException as e:  # noqa: BLE001 - reported by the test that needs it
            import traceback

            errors.append(f"{face} after {list(found[face])}: {''.join(traceback.format_exception(e))}\n"
                          f"{[r.text[-1500:] for r in found[face].values() if isinstance(r, Result)][-1:]}")

    threads = [threading.Thread(target=one, args=(face,)) for face in FACES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found["errors"] = errors
    return found


@pytest.fixture(params=FACES)
def face(request) -> str:
    return request.param


def results(world: dict[str, Any], face: str) -> tuple[dict[str, Any], Path]:
    assert not world["errors"], "\n".join(world["errors"])
    return world[face], world[f"{face}_root"]


def test_run_prints_the_final_accuracy_of_its_run_json(world, face):
    got, root = results(world, face)
    text = got["run"].ok()
    final = record(root / got["run_id"])["metrics"]["final_avg_acc"]
    assert re.search(rf"final avg acc\D*{re.escape(pct(final))}%", text), text[-2000:]


def test_ctrl_c_stops_a_run_and_resume_finishes_it_with_the_final_accuracy(world, face):
    got, root = results(world, face)
    got["stopped"].ok(130)
    text = got["resumed"].ok()
    data = record(root / got["stopped_id"])
    assert data["status"] == "finished" and data.get("resumed")
    assert re.search(rf"final avg acc\D*{re.escape(pct(data['metrics']['final_avg_acc']))}%", text), text[-2000:]


def test_compare_and_its_resume_print_the_study_table(world, face):
    """The study command that crashed in a terminal (StudyDisplay read `started` before setting it)."""
    got, root = results(world, face)
    for name in ("compare", "compare_resume"):
        text = got[name].ok()
        for method, run_id in study_runs(root, got["study"]).items():
            final = record(root / run_id)["metrics"]["final_avg_acc"]
            assert re.search(rf"^{method}\s.*1/1\s.*{re.escape(pct(final, 2))}", text, re.M), (name, text[-2000:])
    assert "deleted" in got["rm_for_resume"].ok()
    study = json.loads((root / "studies" / f"{got['study']}.json").read_text())
    assert study["finished"] and len(study["wall_s"]) == 2


def test_sweep_and_its_resume_print_the_chosen_value(world, face):
    got, root = results(world, face)
    for name in ("sweep", "sweep_resume"):
        text = got[name].ok()
        assert "best: method.lambda=" in text and "1/1" in text, text[-2000:]
        assert "ewc, class-IL, 1 seed)" in flat(text), text[-2000:]


def test_merge_prints_the_students_accuracy(world, face):
    got, root = results(world, face)
    text = got["merge"].ok()
    [student] = [p for p in root.iterdir() if (p / "run.json").is_file() and record(p)["config"]["method"]["name"]
                 == "merge"]
    final = record(student)["metrics"]["final_avg_acc"]
    assert pct(final) in text, text[-2000:]


def test_pretrain_prints_the_checkpoints_sha256(world, face):
    got, root = results(world, face)
    text = got["pretrain"].ok()
    checkpoint = root.parent / f"{face}.pt"
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() in text.replace("\n", ""), text[-2000:]


# --- the commands that read what the pipelines left ---------------------------------------------------------


def test_runs_list_and_show_print_the_figures_of_run_json(world, face):
    got, root = results(world, face)
    folder = root / got["run_id"]
    final = record(folder)["metrics"]["final_avg_acc"]
    listed = cltui(face, "runs", "list", "--runs-dir", root).ok()
    assert pct(final) in listed and folder.name[:15] in listed
    shown = cltui(face, "runs", "show", folder.name, "--runs-dir", root).ok()
    assert re.search(rf"final avg acc\D*{re.escape(pct(final))}%", shown), shown[-2000:]


def test_runs_rm_deletes_a_run_and_refuses_a_path_outside(world, face, tmp_path):
    got, root = results(world, face)
    outside = tmp_path / "keep"
    outside.mkdir()
    refused = cltui(face, "runs", "rm", str(outside), "--yes", "--runs-dir", root)
    assert refused.code == 2 and "Traceback" not in refused.text and outside.is_dir()
    victim = root / "20990101-000000-copy"
    shutil.copytree(root / got["run_id"], victim)
    text = cltui(face, "runs", "rm", victim.name, "--yes", "--runs-dir", root).ok()
    assert "deleted" in text and not victim.exists()


def test_studies_list_and_show(world, face):
    got, root = results(world, face)
    listed = cltui(face, "studies", "list", "--runs-dir", root).ok()
    assert got["study"][:15] in listed
    shown = cltui(face, "studies", "show", got["study"], "--runs-dir", root).ok()
    assert "1 seed," in flat(shown) and "1 seeds" not in flat(shown)
    none = record(root / study_runs(root, got["study"])["none"])["metrics"]["final_avg_acc"]
    assert re.search(rf"^none\s.*{re.escape(pct(none, 2))}", shown, re.M), shown


def test_studies_rm_keeps_the_runs_unless_asked_and_refuses_hostile_ids(world, face, tmp_path):
    got, root = results(world, face)
    copy = tmp_path / "runs"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.pt"))
    runs = [e["run_id"] for e in json.loads((copy / "studies" / f"{got['study']}.json").read_text())["runs"]]
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (copy / "studies" / "link.json").symlink_to(outside)
    for hostile in ("../outside", str(outside), "link", "", "."):
        refused = cltui(face, "studies", "rm", hostile, "--yes", "--runs-dir", copy)
        lines = [line for line in refused.text.splitlines() if line.strip()]
        assert refused.code == 2 and len(lines) == 1 and lines[0].startswith("error:"), refused.text
    assert outside.read_text() == "{}" and (copy / "studies" / "link.json").is_symlink()
    kept = cltui(face, "studies", "rm", got["study"], "--yes", "--runs-dir", copy).ok()
    assert "deleted study" in kept and not (copy / "studies" / f"{got['study']}.json").exists()
    assert all((copy / r).is_dir() for r in runs)


def test_studies_rm_with_runs_deletes_them_and_refuses_a_running_one(world, face, tmp_path):
    got, root = results(world, face)
    copy = tmp_path / "runs"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.pt"))
    path = copy / "studies" / f"{got['study']}.json"
    runs = [e["run_id"] for e in json.loads(path.read_text())["runs"]]
    data = record(copy / runs[0])
    (copy / runs[0] / "run.json").write_text(json.dumps({**data, "status": "running", "pid": os.getpid()}))
    refused = cltui(face, "studies", "rm", got["study"], "--runs", "--yes", "--runs-dir", copy)
    assert refused.code == 2 and "still running" in refused.text and path.exists()
    assert all((copy / r).is_dir() for r in runs)  # nothing deleted
    (copy / runs[0] / "run.json").write_text(json.dumps(data))
    text = cltui(face, "studies", "rm", got["study"][:16], "--runs", "--yes", "--runs-dir", copy).ok()
    assert not path.exists() and not any((copy / r).exists() for r in runs), text
    assert (copy / got["run_id"]).is_dir()  # a run of no study stays


def test_presets_list_and_show(face):
    listed = cltui(face, "presets", "list").ok()
    assert "split-digits" in listed and "merge-digits" in listed
    shown = cltui(face, "presets", "show", "split-digits", "--scenario", "domain").ok()
    assert "domain" in shown and "iterations" in shown


def test_plot_writes_the_figure(world, face):
    got, root = results(world, face)
    out = root.parent / "study.png"
    text = cltui(face, "plot", got["study"], "--out", out, "--runs-dir", root).ok()
    assert out.is_file() and out.read_bytes().startswith(b"\x89PNG") and out.name in text.replace("\n", "")


def test_export_to_mlflow_and_tensorboard(world, face):
    got, root = results(world, face)
    import sqlite3

    store = root.parent / "mlflow.db"  # MLflow's file store is frozen: its SQLite store, in tmp
    run_id = got["run_id"]
    cltui(face, "export", "mlflow", run_id, "--uri", f"sqlite:///{store}", "--runs-dir", root).ok()
    final = record(root / run_id)["metrics"]["final_avg_acc"]
    with sqlite3.connect(store) as db:
        logged = [v for (v,) in db.execute("select value from metrics where key = 'final_avg_acc'")]
    assert logged and logged[-1] == pytest.approx(final)
    logdir = root.parent / "tb"
    text = cltui(face, "export", "tensorboard", run_id, "--logdir", logdir, "--runs-dir", root).ok()
    assert list(logdir.rglob("events.out.tfevents.*")) and str(logdir) in text.replace("\n", "")


def test_dreams_lists_the_quality_figures_and_draws_only_on_a_terminal(face, tmp_path):
    from tests.helpers.fixed_runs import IDS, write_fixture_runs

    root = tmp_path / "runs"
    write_fixture_runs(root)
    run_id = IDS["dreams"]
    text = cltui(face, "dreams", run_id, "--runs-dir", root).ok()
    quality = record(root / run_id)["dreams"][-1]["quality"]
    assert "Frechet" in text and f"{quality['frechet_distance']:.1f}" in text, (quality, text)
    context = str(record(root / run_id)["dreams"][0]["context"])
    drawn = cltui(face, "dreams", run_id, "--context", context, "--width", "40", "--runs-dir", root)
    if face == "tty":
        assert "▀" in drawn.ok() or "▄" in drawn.text
    else:
        assert drawn.code == 2 and "--export" in drawn.text and "Traceback" not in drawn.text


def test_no_help_text_loses_brackets_to_rich_markup():
    """`[mlflow]` in a help text is Rich markup unless escaped: `pip install 'cltui'` was all `run --help` said."""
    import typer

    from cltui.cli.main import app

    def walk(command: Any, path: list[str]):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path, command in walk(typer.main.get_command(app), ["cltui"]):
        texts = [command.help or "", command.epilog or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            assert not re.search(r"(?<!\\)\[[^\]]*\]", text), (path, text)
    shown = cltui("tty", "run", "--help").ok().replace("\n", " ")
    assert "cltui[mlflow]" in re.sub(r"[│ ]+", "", shown)


def test_runs_show_never_cuts_a_figure_of_a_ten_context_matrix(face, tmp_path):
    """Ten contexts with avg / old / new do not fit 80 columns at one decimal: into a pipe the table is printed
    whole; on a terminal in whole points. Either way no cell is cut to `…`, and the last row is the record's."""
    from core.runs.store import RunStore
    from core.schema.presets import build_config
    from core.training import run

    cfg = build_config("split-digits", scenario="class", device="cpu",
                       overrides=["benchmark.contexts=10", "benchmark.classes_per_context=1", "train.iterations=3"])
    folder = RunStore(tmp_path / "runs").new_run_dir("ten")
    last = run(cfg, folder)["acc_matrix"][-1]
    shown = cltui(face, "runs", "show", folder.name, "--runs-dir", tmp_path / "runs").ok()
    assert "…" not in shown, shown
    row = next(line for line in shown.splitlines() if line.strip().startswith("c9") and "│" in line)
    cells = [c.strip() for c in row.split("│")[1:11]]
    digits = 0 if face == "tty" else 1
    assert cells == [f"{100 * a:.{digits}f}" for a in last], (cells, last)
    assert ("in whole points" in shown) == (face == "tty")
