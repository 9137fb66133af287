"""Nothing followed out of the runs folder (issue 26: findings 1, 4, 5, 8, 15 and the figures read from disk).

Every path below a run folder, `studies/` and `.cltui/` goes through the store's resolver (core/runs/paths.py
`inside`, `read_bounded`, `open_checked`): a link at any level is refused, so is a FIFO, a device or a socket,
and what is read is bounded. Each test plants the hostile file for real (a link to a file or folder in
tmp_path *outside* the runs folder, os.mkfifo, a link to /dev/zero) and proves the outside is untouched; every
test that could hang on a regression runs the real CLI as a subprocess with a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.runs.events import ContextEvaluated
from core.runs.paths import StoreError
from core.runs.record import read_record
from core.runs.store import RunStore, read_events
from tests.helpers.cli import assert_one_line_error, cli, no_traceback
from tests.helpers.runs import config, snapshot

CLTUI = Path(sys.executable).parent / "cltui"
TIMEOUT = 60  # seconds: far above the second these take; a FIFO that blocks fails the test instead of hanging it


def cancelled_run(runs: Path, *overrides: str) -> Path:
    """A tiny run stopped after its first context (in this process, no worker): a run `--resume` continues,
    with checkpoints/context-0.pt."""
    from core.training import run

    folder = RunStore(runs).new_run_dir("cut")
    seen: list[Any] = []
    record = run(config("train.iterations=5", *overrides), folder, emit=seen.append,
                 should_stop=lambda: any(isinstance(e, ContextEvaluated) for e in seen))
    assert record["status"] == "cancelled" and len(record["acc_matrix"]) == 1, record["status"]
    assert (folder / "checkpoints" / "context-0.pt").is_file()
    return folder


def cltui(*args: str | Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """The installed `cltui` as a real process, time-bounded."""
    return subprocess.run([str(CLTUI), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"}, stdin=subprocess.DEVNULL)


def one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the runs folder, never inside it, holding a file and a checkpoint-looking file."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "v.txt").write_text("precious\n")
    (path / "context-0.pt").write_bytes(b"not yours")
    return path


# --- 1. links inside a run folder, studies/ and .cltui/ ------------------------------------------------------


@pytest.mark.parametrize("name", ["events.jsonl", "worker.log", "checkpoints"])
def test_a_resume_through_a_link_in_the_run_folder_is_refused_and_the_outside_is_untouched(
        runs_dir: Path, outside: Path, name: str):
    run_dir = cancelled_run(runs_dir)
    target = outside if name == "checkpoints" else outside / "v.txt"
    if name == "checkpoints":  # the run's own checkpoint moves out; the link leads to it
        (run_dir / "checkpoints" / "context-0.pt").replace(outside / "context-0.pt")
        (run_dir / "checkpoints").rmdir()
    else:
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / name).symlink_to(target)
    before = snapshot(outside)
    record = (run_dir / "run.json").read_bytes()

    result = cli("run", "--resume", run_dir.name, "--runs-dir", runs_dir, "--quiet")

    line = assert_one_line_error(result, f"{run_dir.name}/{name}", "is a link", "outside the runs folder", code=1)
    assert "refusing to write" in line
    assert snapshot(outside) == before  # nothing appended, written or deleted out there
    assert (run_dir / "run.json").read_bytes() == record


def test_a_link_deeper_down_a_checkpoint_or_dreams_folder_is_refused_too(runs_dir: Path, outside: Path):
    run_dir = cancelled_run(runs_dir)
    (run_dir / "dreams").mkdir()
    (run_dir / "dreams" / "context-0").symlink_to(outside)
    before = snapshot(outside)

    result = cli("run", "--resume", run_dir.name, "--runs-dir", runs_dir, "--quiet")

    assert_one_line_error(result, "dreams/context-0", "is a link", code=1)
    assert snapshot(outside) == before


def test_a_studies_folder_linked_out_is_never_written_and_lists_as_one_unreadable_entry(runs_dir: Path,
                                                                                        outside: Path):
    from core.studies import study
    (runs_dir / "studies").symlink_to(outside)
    before = snapshot(outside)
    record = {"schema": 1, "id": "20250101-000000-s-class", "scenario": "class", "methods": ["none"], "seeds": 1,
              "runs": [{"method": "none", "seed": 0, "run_id": None}]}

    with pytest.raises(StoreError, match="studies is a link; refusing to write outside the runs folder"):
        study.save(RunStore(runs_dir), record)
    (outside / f"{record['id']}.json").write_text(json.dumps(record))  # a study file out there: never read
    found = study.list_studies(RunStore(runs_dir))

    assert [s["id"] for s in found] == ["studies"] and "is a link" in found[0]["error"]
    with pytest.raises(StoreError, match="is a link"):
        study.load(RunStore(runs_dir), record["id"])
    (outside / f"{record['id']}.json").unlink()
    assert snapshot(outside) == before


def test_compare_and_sweep_refuse_a_studies_folder_linked_out_in_one_line(runs_dir: Path, outside: Path):
    (runs_dir / "studies").symlink_to(outside)
    before = snapshot(outside)
    for args in (("compare", "split-digits", "--methods", "none", "--seeds", "1"),
                 ("sweep", "split-digits", "--method", "ewc", "--grid", "method.lambda=1,10")):
        result = cli(*args, "--set", "train.iterations=5", "--quiet", "--runs-dir", runs_dir)
        assert_one_line_error(result, "studies is a link", code=1)
        assert snapshot(outside) == before  # no study file, no lock file out there
    assert not [p for p in runs_dir.iterdir() if p.name != "studies"]  # and no run trained for a study it cannot keep


def test_the_tuis_marks_and_last_choice_are_never_written_through_a_linked_cltui_folder(runs_dir: Path,
                                                                                        outside: Path):
    from cltui.tui.state.choices import last_choice, read_marks, remember_choice, write_marks

    (runs_dir / ".cltui").symlink_to(outside)
    (outside / "marks.json").write_text(json.dumps({"schema": 1, "marks": ["x"]}))
    before = snapshot(outside)

    with pytest.raises(StoreError, match="is a link"):
        write_marks(runs_dir, {"a-run"})
    remember_choice(runs_dir, {"preset": "split-digits"})  # a convenience: quietly not saved

    assert snapshot(outside) == before
    assert read_marks(runs_dir) == set()  # the file out there is not read either
    assert last_choice(runs_dir) == {}


# --- 4. FIFOs and devices: refused at once, never read -----------------------------------------------------


def test_runs_list_with_a_fifo_and_a_dev_zero_run_json_lists_them_unreadable_and_the_good_run(runs_dir: Path):
    good = cancelled_run(runs_dir)
    fifo = runs_dir / "fifo-run"
    fifo.mkdir()
    os.mkfifo(fifo / "run.json")
    zero = runs_dir / "zero-run"
    zero.mkdir()
    (zero / "run.json").symlink_to("/dev/zero")

    result = cltui("runs", "list", "--runs-dir", runs_dir)

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert good.name in rows and "cancelled" in rows[good.name]
    assert "unreadable" in rows["fifo-run"] and "unreadable" in rows["zero-run"]
    one_line(cltui("runs", "show", "fifo-run", "--runs-dir", runs_dir), 2, "FIFO")
    one_line(cltui("runs", "show", "zero-run", "--runs-dir", runs_dir), 2, "is a link")


def test_a_fifo_as_a_checkpoint_is_refused_by_resume_in_one_line_without_blocking(runs_dir: Path):
    run_dir = cancelled_run(runs_dir)
    os.mkfifo(run_dir / "checkpoints" / "context-1.pt")

    line = one_line(cltui("run", "--resume", run_dir.name, "--runs-dir", runs_dir), 1, "context-1.pt", "FIFO")

    assert "refusing" in line
    assert read_record(run_dir).status == "cancelled"


def test_a_fifo_as_the_tuis_marks_or_last_choice_reads_as_none_without_blocking(runs_dir: Path):
    (runs_dir / ".cltui").mkdir()
    os.mkfifo(runs_dir / ".cltui" / "marks.json")
    os.mkfifo(runs_dir / ".cltui" / "compose.json")
    code = ("import sys; from pathlib import Path; from cltui.tui.state.choices import read_marks; "
            "from cltui.tui.state.choices import last_choice; root = Path(sys.argv[1]); "
            "print(read_marks(root), last_choice(root))")

    result = subprocess.run([sys.executable, "-c", code, str(runs_dir)], capture_output=True, text=True,
                            timeout=TIMEOUT)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["set()", "{}"]


def test_event_readers_never_follow_a_link_to_dev_zero(runs_dir: Path):
    run_dir = cancelled_run(runs_dir)
    (run_dir / "events.jsonl").symlink_to("/dev/zero")
    (run_dir / "worker.log").symlink_to("/dev/zero")
    code = ("import sys; from pathlib import Path; from core.runs.store import read_events; "
            "from cltui.tui.screens.detail import read_loss_events, read_tail; d = Path(sys.argv[1]); "
            "print(len(list(read_events(d))), len(read_loss_events(d)), len(read_tail(d / 'worker.log')))")

    result = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True,
                            timeout=TIMEOUT)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", "0"]


# --- 5. a lone surrogate in run.json or a study file ------------------------------------------------------------


def test_a_lone_surrogate_in_run_json_or_a_study_file_is_one_unreadable_entry(runs_dir: Path):
    good = cancelled_run(runs_dir)
    bad = runs_dir / "surrogate-run"
    bad.mkdir()
    text = (good / "run.json").read_text().replace(f'"id": "{good.name}"', '"id": "surrogate-run"')
    (bad / "run.json").write_text(text.replace('"preset": "split-digits"', '"preset": "split-\\ud800"', 1))
    assert "\\ud800" in (bad / "run.json").read_text()
    (runs_dir / "studies").mkdir()
    study = {"schema": 1, "id": "20250101-000000-bad-class", "scenario": "class", "methods": ["none\\ud800"],
             "seeds": 1, "runs": [{"method": "none", "seed": 0, "run_id": good.name}]}
    (runs_dir / "studies" / f"{study['id']}.json").write_text(json.dumps(study).replace("\\\\ud800", "\\ud800"))

    listing = cltui("runs", "list", "--runs-dir", runs_dir)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    assert "unreadable" in rows["surrogate-run"] and "cancelled" in rows[good.name]
    one_line(cltui("runs", "show", "surrogate-run", "--runs-dir", runs_dir), 2, "surrogate")
    studies = cltui("studies", "list", "--runs-dir", runs_dir)
    assert studies.returncode == 0 and "Traceback" not in studies.stderr, studies.stderr
    assert "unreadable" in studies.stdout
    one_line(cltui("studies", "show", study["id"], "--runs-dir", runs_dir), 2, "surrogate")


# --- 8. a half-written last event line, then a resume ----------------------------------------------------------


def test_a_resume_after_a_half_written_event_line_starts_its_events_on_a_line_of_their_own(runs_dir: Path):
    run_dir = cancelled_run(runs_dir)
    cut = '{"event": "Progress", "context": 0, "ph'  # a full disk stopped the write here
    (run_dir / "events.jsonl").write_text(cut)

    result = cli("run", "--resume", run_dir.name, "--runs-dir", runs_dir, "--quiet")

    no_traceback(result)
    assert result.exit_code == 0, result.output
    lines = (run_dir / "events.jsonl").read_text().split("\n")
    assert lines[0] == cut  # healed: the cut line ends where it was cut, and is skipped as damaged
    names = [type(e).__name__ for e in read_events(run_dir)]
    assert names[0] == "RunStarted", names  # the resume's own RunStarted is read, not lost in the cut line
    assert names[-1] == "RunFinished"


# --- 15. a stray checkpoint name ---------------------------------------------------------------------------------


def test_a_stray_checkpoint_name_is_ignored_by_resume_merge_and_tracking(runs_dir: Path):
    from core.reporting.tracking import last_checkpoint
    from core.training import run

    run_dir = cancelled_run(runs_dir)
    for stray in ("context-x.pt", "context-.pt", "context-1.pt.tmp", "notes.txt"):
        (run_dir / "checkpoints" / stray).write_bytes(b"stray")

    assert last_checkpoint(run_dir) == run_dir / "checkpoints" / "context-0.pt"
    record = run(config("train.iterations=5"), run_dir, resume=True)

    assert record["status"] == "finished", record["error"]
    assert len(record["acc_matrix"]) == 5


# --- from 16: figures read from disk ----------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "benchmark", "readable"), [
    ([0.5, float("nan")], "digits", False), ([0.5, float("inf")], "digits", False), ([-5, 0.5], "digits", False),
    ([1.5, 0.5], "digits", False), ([0.0, 1.0], "digits", True),
    ([-5, 0.5], "sine", True), ([float("nan"), 0.5], "sine", False), ([1.5, 0.5], "sine", False),
])
def test_figures_read_from_disk_must_be_finite_and_in_range(runs_dir: Path, row: list[float], benchmark: str,
                                                            readable: bool):
    run_dir = cancelled_run(runs_dir)
    data = json.loads((run_dir / "run.json").read_text())
    data["config"]["benchmark"]["name"] = benchmark
    data["acc_matrix"] = [row + [0.0] * (len(data["acc_matrix"][0]) - 2)]
    (run_dir / "run.json").write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them

    if readable:
        assert read_record(run_dir).acc_matrix[0][:2] == row
        return
    with pytest.raises(StoreError, match=r"acc_matrix.*is not an? (accuracy|R²)"):
        read_record(run_dir)
    shown = cli("runs", "list", "--runs-dir", runs_dir)
    no_traceback(shown)
    assert "unreadable" in shown.output


def test_a_record_without_acc_init_or_rows_yet_is_readable(runs_dir: Path):
    run_dir = cancelled_run(runs_dir)
    data = json.loads((run_dir / "run.json").read_text())
    data.update(acc_init=None, acc_matrix=[], acc_curve=[], contexts=[])
    (run_dir / "run.json").write_text(json.dumps(data))

    assert read_record(run_dir).acc_init is None


@pytest.mark.parametrize("field", ["acc_init", "acc_curve"])
def test_acc_init_and_acc_curve_are_checked_as_the_matrix_is(runs_dir: Path, field: str):
    run_dir = cancelled_run(runs_dir)
    data = json.loads((run_dir / "run.json").read_text())
    data[field] = [0.5, float("nan"), 0.1, 0.1, 0.1] if field == "acc_init" else [[5, 0, [0.5, -5.0]]]
    (run_dir / "run.json").write_text(json.dumps(data))

    with pytest.raises(StoreError, match=field):
        read_record(run_dir)
