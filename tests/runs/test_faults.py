"""Faults a user meets: kills at every point of a context, a damaged checkpoint, a run saved on a GPU machine
resumed on a CPU one, a full disk, damaged and wrong-typed run.json and study files, ids that point outside
the runs folder, and bad command lines. What each test pins is what the project promises:

- no completed context is ever lost: not by a kill, a full disk, a failed resume or a bug in a reader;
- nothing outside the runs folder is created, changed or deleted because of a run id, a study file or a
  preset name;
- bad input is exit code 2 and one line naming the field and the fix, never a traceback; a damaged file is one
  "unreadable" entry, never the end of a listing or of the TUI.

Tiny split-digits runs (20 iterations a context, 5 contexts, seed 0, CPU); kills in-process are a
BaseException (tests/helpers/runs.py: Killed) that no handler of the training loop catches.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.runs.events import ContextEvaluated, ContextStarted
from core.runs.record import read_run_json
from core.runs.store import RunStore
from tests.helpers.cli import assert_one_line_error, cli, no_traceback
from tests.helpers.runs import TINY, Killed, config, dead_pid, edit_record, snapshot, tmp_files, tmpfs, whole, whole_run
from tests.helpers.tui import settle


@pytest.fixture(scope="module")
def whole_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whole")


@pytest.fixture(scope="module")
def good_text(whole_root: Path) -> str:
    """The run.json text of a real finished tiny run."""
    _, folder = whole_run(whole_root)
    return (folder / "run.json").read_text()


def fresh(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir(parents=True)
    return path


def flat(text: str) -> str:
    """`text` with every run of white space (a wrapped line too) as one space."""
    return " ".join(text.split())


def rows_of(run_dir: Path) -> list[list[float]]:
    return read_run_json(run_dir)["acc_matrix"]


# --- 1. kills at each point of a context, in-process --------------------------------------------------------

# Where the kill lands, and how many rows run.json holds right after it (context 2 is the third context).
KILL_POINTS = {
    "in-training-of-context-2": 2,
    "before-checkpoint-of-context-2": 2,
    "checkpoint-of-context-2-half-written": 2,
    "after-checkpoint-before-run-json": 2,  # the third row is safe in the checkpoint
    "after-run-json-of-context-2": 3,
}


def arm(point: str, m: pytest.MonkeyPatch) -> None:
    """Make the run raise Killed at `point` (undone when `m`'s context ends)."""
    import torch

    from core.methods.parts.base import Method
    from core.training.train import Trainer

    if point == "in-training-of-context-2":
        loss, calls = Method.loss, []

        def killing_loss(self, batch, info):
            if info.stage == 2:
                calls.append(1)
                if len(calls) == 2:  # the second step of context 2
                    raise Killed(point)
            return loss(self, batch, info)

        m.setattr(Method, "loss", killing_loss)
    elif point in ("before-checkpoint-of-context-2", "after-checkpoint-before-run-json"):
        checkpoint = Trainer.checkpoint

        def killing_checkpoint(self, stage, row, accuracies):
            if stage == 2 and point.startswith("before"):
                raise Killed(point)
            checkpoint(self, stage, row, accuracies)
            if stage == 2:
                raise Killed(point)

        m.setattr(Trainer, "checkpoint", killing_checkpoint)
    elif point == "checkpoint-of-context-2-half-written":
        save = torch.save

        def killing_save(obj, f, *args, **kwargs):
            save(obj, f, *args, **kwargs)
            path = str(getattr(f, "name", f))  # a path, or the file object the trainer opened
            if path.endswith("context-2.pt.tmp"):  # the kill lands while the file is being written
                if hasattr(f, "flush"):
                    f.flush()
                os.truncate(path, os.path.getsize(path) // 2)
                raise Killed(point)

        m.setattr(torch, "save", killing_save)
    elif point == "after-run-json-of-context-2":
        save_record = Trainer.save

        def killing_save_record(self):
            save_record(self)
            if self.record.status == "running" and len(self.record.acc_matrix) == 3:
                raise Killed(point)

        m.setattr(Trainer, "save", killing_save_record)
    else:  # pragma: no cover
        raise AssertionError(point)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_at_any_point_of_a_context_loses_no_completed_context_and_resume_matches(
        point, whole_root, tmp_path, monkeypatch):
    import core.runs.record
    from core.training import run

    reference = whole(whole_root)
    cfg = config()
    run_dir = fresh(tmp_path, "killed")

    # Every run.json ever written, as the number of rows it held: a reader at any moment sees this sequence.
    written: list[int] = []
    write = core.runs.record.write_json_atomic

    def spying_write(path, data):
        write(path, data)
        if Path(path).name == "run.json":
            written.append(len(data["acc_matrix"]))

    monkeypatch.setattr(core.runs.record, "write_json_atomic", spying_write)

    with monkeypatch.context() as m:
        arm(point, m)
        with pytest.raises(Killed):
            run(cfg, run_dir)

    # Right after the kill: run.json is a whole document holding every context it promised, nothing more.
    killed = read_run_json(run_dir)
    expected = KILL_POINTS[point]
    assert killed["status"] == "running"
    assert killed["acc_matrix"] == reference["acc_matrix"][:expected]
    assert len(killed["contexts"]) == expected
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
    if point == "after-checkpoint-before-run-json":
        assert checkpoints == ["context-2.pt"]  # the completed context is on disk, only there
    else:
        assert checkpoints == [f"context-{expected - 1}.pt"]
    if point == "checkpoint-of-context-2-half-written":
        assert [p.name for p in tmp_files(run_dir)] == ["context-2.pt.tmp"]  # as a SIGKILL leaves it

    resumed = run(cfg, run_dir, resume=True)

    assert resumed["status"] == "finished", resumed["error"]
    assert len(resumed["acc_matrix"]) == 5
    assert resumed["acc_matrix"] == reference["acc_matrix"]  # every digit
    assert resumed["acc_init"] == reference["acc_init"]
    assert [c["final_loss"] for c in resumed["contexts"]] == [c["final_loss"] for c in reference["contexts"]]
    assert read_run_json(run_dir)["acc_matrix"] == reference["acc_matrix"]
    assert tmp_files(run_dir) == []
    # No moment at which a reader of run.json saw fewer completed contexts than before.
    assert written == sorted(written), written
    assert written[-1] == 5


# --- 2. a real SIGKILL, a damaged checkpoint, then the right one back ------------------------------------

def test_a_killed_worker_with_a_damaged_checkpoint_refuses_to_resume_and_keeps_run_json(whole_root, tmp_path):
    from core.launch import worker
    iterations = "train.iterations=60"  # contexts long enough (~0.3 s) to be inside one when the kill lands
    reference = whole(whole_root, iterations)
    cfg = config(iterations)
    runs = tmp_path / "runs"
    handle = worker.start(cfg, RunStore(runs).new_run_dir("killed"))
    killed_at = None
    while not handle.done:
        events = handle.pump(0.05)
        if killed_at is None and any(isinstance(e, ContextStarted) and e.context == 2 for e in events):
            os.kill(handle.process.pid, signal.SIGKILL)
            killed_at = 2
    assert killed_at == 2, "the run ended before context 2 started"
    run_dir = handle.run_dir
    record = read_run_json(run_dir)
    assert record["status"] == "failed"
    assert 2 <= len(record["acc_matrix"]) < 5
    assert record["acc_matrix"] == reference["acc_matrix"][: len(record["acc_matrix"])]
    (checkpoint,) = (run_dir / "checkpoints").glob("*.pt")
    backup = tmp_path / "backup.pt"
    shutil.copy2(checkpoint, backup)
    os.truncate(checkpoint, 1000)
    before = (run_dir / "run.json").read_bytes()

    result = cli("run", "--resume", run_dir.name, "--runs-dir", runs, "--quiet")

    line = assert_one_line_error(result, "damaged", checkpoint.name)
    assert "run.json" in line  # says what happened to the record: nothing
    assert (run_dir / "run.json").read_bytes() == before  # rows, acc_init, metrics: byte for byte
    kept = read_run_json(run_dir)
    assert kept["acc_matrix"] == record["acc_matrix"] and kept["acc_init"] == record["acc_init"]
    assert kept["metrics"] == record["metrics"]

    shutil.copy2(backup, checkpoint)
    result = cli("run", "--resume", run_dir.name, "--runs-dir", runs, "--quiet")

    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert rows_of(run_dir) == reference["acc_matrix"]
    assert tmp_files(run_dir) == []


# --- 3. a run saved on a GPU machine, resumed on this CPU-only one -----------------------------------------

def test_a_cuda_run_resumed_on_a_cpu_machine_asks_for_device_cpu_and_then_finishes(whole_root, runs_dir,
                                                                                    monkeypatch):
    import torch

    from core.training import run
    from core.training.train import Trainer

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the test needs one without")
    reference = whole(whole_root)
    run_dir = fresh(runs_dir, "20260101-000000-split-digits-class-none-s0")
    save = Trainer.save

    def killing_save(self):
        save(self)
        if len(self.record.acc_matrix) == 2 and self.record.status == "running":
            raise Killed("after context 1")

    with monkeypatch.context() as m:
        m.setattr(Trainer, "save", killing_save)
        with pytest.raises(Killed):
            run(config(), run_dir)
    # As the GPU machine left it: its worker gone, the record naming the device it trained on.
    edit_record(run_dir, {"config.train.device": "cuda", "pid": dead_pid()})
    before = (run_dir / "run.json").read_bytes()

    result = cli("run", "--resume", run_dir.name, "--runs-dir", runs_dir, "--quiet")

    assert_one_line_error(result, "--device cpu")
    assert (run_dir / "run.json").read_bytes() == before

    result = cli("run", "--resume", run_dir.name, "--device", "cpu", "--runs-dir", runs_dir, "--quiet")

    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert rows_of(run_dir) == reference["acc_matrix"]


# --- 4. a full disk ---------------------------------------------------------------------------------------

def test_a_disk_too_small_for_one_checkpoint_fails_in_one_line_and_leaves_a_readable_record(tmp_path):
    with tmpfs(tmp_path / "disk", 64) as disk:
        runs = disk / "runs"
        result = cli("run", "--set", "train.iterations=20", "--device", "cpu", "--runs-dir", runs, "--quiet")

        no_traceback(result)
        assert result.exit_code != 0, result.output
        assert "disk is full" in flat(result.output), result.output
        assert tmp_files(disk) == []
        records = list(disk.rglob("run.json"))
        assert len(records) <= 1
        for path in records:
            record = read_run_json(path.parent)  # a whole document, never half of one
            assert record["status"] != "finished"
            assert record["acc_matrix"] == []


@pytest.fixture(scope="module")
def full_disk(whole_root, tmp_path_factory) -> dict[str, Any]:
    """A run on a disk with room for the checkpoints of contexts 0 and 1 only (train.checkpoints=all keeps
    each one) plus a filler file; then the filler is deleted and the run resumed. What was seen at each
    step."""
    keep_all = "train.checkpoints=all"
    reference, folder = whole_run(whole_root, keep_all)
    sizes = [(folder / "checkpoints" / f"context-{k}.pt").stat().st_size for k in range(2)]
    filler_size = 8 << 20  # deleting it makes room for the three checkpoints left (~7 MB)
    size_kib = (filler_size + sum(sizes) + (512 << 10)) // 1024 + 1
    seen: dict[str, Any] = {"reference": reference}
    with tmpfs(tmp_path_factory.mktemp("full") / "disk", size_kib) as disk:
        filler = disk / "filler"
        filler.write_bytes(bytes(filler_size))
        runs = disk / "runs"
        seen["first"] = cli("run", "--set", "train.iterations=20", "--set", keep_all, "--device", "cpu",
                            "--runs-dir", runs, "--quiet")
        seen["folders"] = sorted(p.name for p in runs.iterdir())
        run_dir = runs / seen["folders"][0]
        seen["tmp after failure"] = tmp_files(disk)
        seen["record after failure"] = read_run_json(run_dir)
        filler.unlink()
        seen["second"] = cli("run", "--resume", run_dir.name, "--runs-dir", runs, "--quiet")
        seen["record after resume"] = read_run_json(run_dir)
        seen["tmp after resume"] = tmp_files(disk)
    return seen


def test_a_disk_that_fills_up_mid_run_keeps_the_completed_contexts_and_resume_finishes(full_disk):
    first, reference = full_disk["first"], full_disk["reference"]
    no_traceback(first)
    assert first.exit_code != 0, first.output
    assert "disk is full" in flat(first.output), first.output
    assert len(full_disk["folders"]) == 1
    assert full_disk["tmp after failure"] == []
    record = full_disk["record after failure"]
    assert record["acc_matrix"] == reference["acc_matrix"][:2]
    assert record["status"] != "finished"

    second = full_disk["second"]
    no_traceback(second)
    assert second.exit_code == 0, second.output
    assert full_disk["record after resume"]["status"] == "finished"
    assert full_disk["record after resume"]["acc_matrix"] == reference["acc_matrix"]
    assert full_disk["tmp after resume"] == []


def test_a_disk_that_fills_up_mid_run_is_recorded_as_failed_with_the_reason(full_disk):
    record = full_disk["record after failure"]
    assert record["status"] == "failed"
    assert "disk is full" in (record["error"] or {}).get("message", "")


# --- 5. damaged and wrong-typed run.json -----------------------------------------------------------------

def bad_runs(runs_dir: Path, good_text: str) -> dict[str, Path]:
    """Run folders whose run.json no reader can use, each beside the others: {name: folder}."""
    good = json.loads(good_text)

    def with_(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    contents: dict[str, bytes | None] = {
        "bad-wrong-status": b'{"schema": 1, "id": "x", "status": 5}',
        "bad-null-fields": with_(**{k: None for k in ("status", "config", "contexts", "acc_matrix", "metrics",
                                                       "timing", "env", "created")}),
        "bad-config-list": with_(config=[]),
        "bad-timing-int": with_(timing=5),
        "bad-random-bytes": random.Random(7).randbytes(700),
        "bad-truncated": good_text[: len(good_text) // 2].encode(),
        "bad-empty": b"",
        "bad-a-list": b"[]",
        "bad-a-directory": None,  # run.json is a folder
    }
    out = {}
    for name, content in contents.items():
        folder = fresh(runs_dir, name)
        if content is None:
            (folder / "run.json").mkdir()
        else:
            (folder / "run.json").write_bytes(content)
        out[name] = folder
    return out


def good_runs(runs_dir: Path, good_text: str, names: tuple[str, ...] = ("good-1", "good-2")
              ) -> dict[str, Path]:
    out = {}
    for name in names:
        folder = fresh(runs_dir, name)
        (folder / "run.json").write_text(good_text)
        out[name] = folder
    return out


def table_lines(output: str) -> dict[str, str]:
    """First cell -> the whole line, for each row of a Rich table printed without edges."""
    return {line.split("│")[0].strip(): line for line in output.splitlines() if "│" in line}


def test_runs_list_shows_every_good_run_and_each_damaged_one_as_one_unreadable_row(runs_dir, good_text):
    good = good_runs(runs_dir, good_text)
    bad = bad_runs(runs_dir, good_text)

    result = cli("runs", "list", "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code == 0, result.output
    rows = table_lines(result.stdout)
    assert set(rows) == set(good) | set(bad), result.stdout
    for name in good:
        assert "finished" in rows[name]
    for name in bad:
        assert "unreadable" in rows[name], rows[name]
    complaints = [line for line in result.stderr.splitlines() if line.startswith("unreadable:")]
    assert len(complaints) == len(bad), result.stderr
    for name in bad:
        assert sum(f"/{name}/run.json" in line for line in complaints) == 1, (name, complaints)

    result = cli("runs", "list", "--json", "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code == 0, result.output
    listed = {d["id"]: d for d in map(json.loads, result.stdout.splitlines())}
    assert set(listed) == set(good) | set(bad)
    assert {listed[name]["status"] for name in good} == {"finished"}
    assert {listed[name]["status"] for name in bad} == {"unreadable"}
    assert all(listed[name]["error"] for name in bad)


def test_runs_show_a_damaged_run_is_one_line_and_exit_2(runs_dir, good_text):
    bad = bad_runs(runs_dir, good_text)
    for name in bad:
        result = cli("runs", "show", name, "--runs-dir", runs_dir)
        assert_one_line_error(result, name)


def test_studies_over_damaged_runs_still_show_their_table(runs_dir, good_text):
    good = good_runs(runs_dir, good_text)
    bad = bad_runs(runs_dir, good_text)
    names = [*good, *bad]
    study = {"schema": 1, "id": "20260101-000000-all", "preset": "split-digits", "scenario": "class",
             "methods": ["none"], "seeds": len(names), "overrides": [], "jobs": 1,
             "runs": [{"method": "none", "seed": i, "run_id": name} for i, name in enumerate(names)]}
    fresh(runs_dir, "studies")
    (runs_dir / "studies" / f"{study['id']}.json").write_text(json.dumps(study))

    for args in (["studies", "show", study["id"]], ["studies", "list"]):
        result = cli(*args, "--runs-dir", runs_dir)
        no_traceback(result)
        assert result.exit_code == 0, result.output
        assert f"{len(good)}/{len(names)}" in result.stdout, result.stdout


def runs_table(app: Any) -> dict[str, dict[str, str]]:
    from textual.widgets import DataTable

    table = app.screen.query_one("#runs", DataTable)
    names = [str(c.label) or "mark" for c in table.ordered_columns]
    return {str(row.key.value): dict(zip(names, (str(c) for c in table.get_row(row.key)), strict=True))
            for row in table.ordered_rows}


@pytest.mark.anyio
async def test_the_tui_lists_damaged_runs_as_rows_and_opens_their_detail_without_failing(runs_dir, good_text, tui):
    from textual.widgets import Static

    from cltui.tui.screens.detail import DetailScreen
    from cltui.tui.screens.runs import RunsScreen

    good = good_runs(runs_dir, good_text)
    bad = bad_runs(runs_dir, good_text)

    pilot = await tui.start(runs_dir, size=(160, 40))
    app = pilot.app
    seen: dict[str, Any] = {"home": type(app.screen), "rows": runs_table(app), "details": {}}
    for name, folder in {**good, **bad}.items():
        await app.push_screen(DetailScreen(folder))
        await settle(pilot)
        summary = app.screen.query_one("#summary", Static)
        seen["details"][name] = (type(app.screen), str(summary.content))
        await app.pop_screen()
        await pilot.pause()
    seen["back"] = type(app.screen)
    seen["rows after"] = runs_table(app)


    assert not [n for n in tui.notes if n.startswith("internal error")], tui.notes
    assert seen["home"] is RunsScreen and seen["back"] is RunsScreen
    for rows in (seen["rows"], seen["rows after"]):
        assert set(rows) == set(good) | set(bad)
        assert {rows[name]["status"] for name in good} == {"finished"}
        assert {name: rows[name]["status"] for name in bad} == {name: "unreadable" for name in bad}
    for name in good:
        screen, summary = seen["details"][name]
        assert screen is DetailScreen and "finished" in summary
    for name in bad:
        screen, summary = seen["details"][name]
        assert screen is DetailScreen and str(bad[name] / "run.json") in summary, summary


# Records that are valid run.json (every field of the right type) but odd: the readers must cope with them.
ODD_RECORDS = {
    "odd-markup-preset": {"preset": "[/oops]"},
    "odd-markup-method": {"config.method.name": "[/m]"},
    "odd-markup-id": {"id": "[/i]"},
    "odd-empty-row": {"acc_matrix": [[]]},
    "odd-lone-surrogate": {"extra": {"\ud800": 1}},  # json.dumps writes it as the escape "\ud800"
}


def odd_run(runs_dir: Path, good_text: str, name: str) -> Path:
    folder = fresh(runs_dir, name)
    (folder / "run.json").write_text(good_text)
    edit_record(folder, ODD_RECORDS[name])
    return folder


@pytest.mark.parametrize("name", ["odd-markup-preset", "odd-markup-method", "odd-lone-surrogate"])
def test_runs_list_survives_an_odd_but_valid_record(name, runs_dir, good_text):
    good = good_runs(runs_dir, good_text)
    odd_run(runs_dir, good_text, name)

    result = cli("runs", "list", "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code == 0
    rows = table_lines(result.stdout)
    assert set(good) | {name} <= set(rows)


@pytest.mark.parametrize("name", ["odd-markup-id", "odd-markup-method", "odd-empty-row",
                                  "odd-lone-surrogate"])
def test_runs_show_an_odd_but_valid_record_prints_or_says_why_in_one_line(name, runs_dir, good_text):
    odd_run(runs_dir, good_text, name)

    result = cli("runs", "show", name, "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code in (0, 2)


@pytest.mark.anyio
async def test_the_tui_copes_with_odd_but_valid_records(runs_dir, good_text, tui):
    from textual.widgets import Static

    from cltui.tui.screens.detail import DetailScreen

    good = good_runs(runs_dir, good_text, ("good-1",))
    odd = {name: odd_run(runs_dir, good_text, name) for name in ODD_RECORDS if name != "odd-lone-surrogate"}

    pilot = await tui.start(runs_dir, size=(160, 40))
    app = pilot.app
    seen: dict[str, Any] = {"rows": runs_table(app), "details": {}}
    for name, folder in odd.items():
        await app.push_screen(DetailScreen(folder))
        await settle(pilot)
        seen["details"][name] = (type(app.screen), str(app.screen.query_one("#summary", Static).content))
        await app.pop_screen()
        await pilot.pause()


    assert not [n for n in tui.notes if n.startswith("internal error")], tui.notes
    assert set(seen["rows"]) == set(good) | set(odd)
    assert all(row["status"] == "finished" for row in seen["rows"].values())
    assert seen["rows"]["odd-markup-preset"]["preset"] == "[/oops]"
    assert all(screen is DetailScreen for screen, _ in seen["details"].values())


@pytest.mark.anyio
async def test_the_tui_lists_a_record_with_a_lone_surrogate_key(runs_dir, good_text, tui):
    good = good_runs(runs_dir, good_text, ("good-1",))
    odd_run(runs_dir, good_text, "odd-lone-surrogate")

    pilot = await tui.start(runs_dir, size=(160, 40))
    app = pilot.app
    rows = runs_table(app)

    assert not [n for n in tui.notes if n.startswith("internal error")], tui.notes
    assert set(rows) == set(good) | {"odd-lone-surrogate"}


# --- 6. damaged studies -----------------------------------------------------------------------------------

def write_study(runs_dir: Path, study_id: str, runs: Any = None, raw: bytes | None = None) -> Path:
    folder = runs_dir / "studies"
    folder.mkdir(exist_ok=True)
    path = folder / f"{study_id}.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(json.dumps({"schema": 1, "id": study_id, "preset": "split-digits",
                                    "scenario": "class", "methods": ["none"], "seeds": 1,
                                    "overrides": list(TINY), "jobs": 1, "runs": runs}))
    return path


@pytest.fixture
def damaged_studies(runs_dir: Path, good_text: str, tmp_path: Path) -> dict[str, Any]:
    """Study files of every kind of damage beside a good one, a sibling folder `escape` (with a marker) and a
    folder outside the runs folder that a link in it points to."""
    bad = bad_runs(runs_dir, good_text)
    escape = fresh(tmp_path, "escape")
    (escape / "marker").write_text("not cltui's")
    outside = fresh(tmp_path, "outside")
    (outside / "run.json").write_text(good_text)  # a real run.json, but not in the runs folder
    (runs_dir / "linkout").symlink_to(outside, target_is_directory=True)
    studies = {
        "runs-null-3": write_study(runs_dir, "runs-null-3", [None, 3]),
        "escape": write_study(runs_dir, "escape", [{"method": "none", "seed": 0, "run_id": "../escape"}]),
        "random-bytes": write_study(runs_dir, "random-bytes", raw=random.Random(3).randbytes(500)),
        "wrong-typed-runs": write_study(runs_dir, "wrong-typed-runs",
                                        [{"method": "none", "seed": 0, "run_id": "bad-wrong-status"}]),
        "link-out": write_study(runs_dir, "link-out", [{"method": "none", "seed": 0, "run_id": "linkout"}]),
    }
    return {"studies": studies, "bad": bad, "escape": escape, "outside": outside,
            "unreadable": {"runs-null-3", "escape", "random-bytes"}}


def test_studies_list_shows_each_damaged_study_as_one_unreadable_row(damaged_studies, runs_dir):
    result = cli("studies", "list", "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code == 0, result.output
    rows = table_lines(result.stdout)
    assert set(rows) == set(damaged_studies["studies"]), result.stdout
    for name in damaged_studies["studies"]:
        assert ("unreadable" in rows[name]) == (name in damaged_studies["unreadable"]), rows[name]
    assert "0/1" in rows["wrong-typed-runs"] and "0/1" in rows["link-out"]


def test_studies_show_a_damaged_study_is_one_line_and_a_study_of_damaged_runs_a_table(damaged_studies,
                                                                                      runs_dir):
    for name in damaged_studies["studies"]:
        result = cli("studies", "show", name, "--runs-dir", runs_dir)
        if name in damaged_studies["unreadable"]:
            assert_one_line_error(result, name)
        else:
            no_traceback(result)
            assert result.exit_code == 0, result.output
            assert "0/1" in result.stdout


@pytest.mark.parametrize("name", ["runs-null-3", "escape", "random-bytes", "wrong-typed-runs", "link-out"])
def test_compare_resume_of_a_damaged_study_writes_nothing_outside_the_runs_folder(
        name, damaged_studies, runs_dir, tmp_path):
    outside_before = snapshot(tmp_path, skip=runs_dir)
    bad_before = {p: (p / "run.json").read_bytes() for p in damaged_studies["bad"].values()
                  if (p / "run.json").is_file()}

    result = cli("compare", "--resume", name, "--device", "cpu", "--quiet", "--runs-dir", runs_dir)

    assert snapshot(tmp_path, skip=runs_dir) == outside_before, result.output
    # The damaged records are left as they are.
    assert {p: (p / "run.json").read_bytes() for p in bad_before} == bad_before
    if name in damaged_studies["unreadable"]:
        assert_one_line_error(result, name)
    elif name == "wrong-typed-runs":
        no_traceback(result)
        assert result.exit_code != 0  # its one run cannot be continued: the study is not finished


def test_compare_resume_of_a_study_whose_run_links_out_is_one_line(damaged_studies, runs_dir):
    result = cli("compare", "--resume", "link-out", "--device", "cpu", "--quiet", "--runs-dir", runs_dir)
    no_traceback(result)


def odd_studies(runs_dir: Path, good_text: str) -> None:
    """Valid study files (and runs) that are odd: two finished runs of a method, one with a NaN metric
    (Python's json writes and reads NaN; RunRecord accepts it); a method name that reads as Rich markup."""
    good_runs(runs_dir, good_text, ("g1", "g2"))
    edit_record(runs_dir / "g2", {"metrics.final_avg_acc": float("nan")})
    common = {"schema": 1, "preset": "split-digits", "scenario": "class", "seeds": 2, "overrides": [],
              "jobs": 1}
    fresh(runs_dir, "studies")
    (runs_dir / "studies" / "nan-metric.json").write_text(json.dumps({
        **common, "id": "nan-metric", "methods": ["none"],
        "runs": [{"method": "none", "seed": 0, "run_id": "g1"},
                 {"method": "none", "seed": 1, "run_id": "g2"}]}))
    (runs_dir / "studies" / "markup-method.json").write_text(json.dumps({
        **common, "id": "markup-method", "methods": ["[/x]"],
        "runs": [{"method": "[/x]", "seed": 0, "run_id": None}]}))


@pytest.mark.parametrize("args", [["studies", "show", "nan-metric"],
                                  ["studies", "show", "nan-metric", "--format", "csv"],
                                  ["studies", "list"], ["studies", "show", "markup-method"]],
                         ids=["show-nan", "show-nan-csv", "list-markup", "show-markup"])
def test_studies_survive_an_odd_but_valid_study(args, runs_dir, good_text):
    odd_studies(runs_dir, good_text)

    result = cli(*args, "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code in (0, 2)


# --- 7. ids that point outside the runs folder --------------------------------------------------------------

@pytest.fixture
def victims(tmp_path: Path, runs_dir: Path, good_text: str) -> dict[str, Path]:
    """Folders beside the runs folder: `victim` (a run.json that is not cltui's) and `victim-run` (a copy of
    a real run.json); links in the runs folder to one of them and to a run inside; a folder in the runs
    folder whose run.json is not cltui's."""
    victim = fresh(tmp_path, "victim")
    (victim / "run.json").write_text('{"not": "cltui"}')
    victim_run = fresh(tmp_path, "victim-run")
    (victim_run / "run.json").write_text(good_text)
    (victim_run / "checkpoints").mkdir()
    (victim_run / "checkpoints" / "context-4.pt").write_bytes(b"precious")
    inside = good_runs(runs_dir, good_text, ("inside",))["inside"]
    (runs_dir / "link-out").symlink_to(victim_run, target_is_directory=True)
    (runs_dir / "link-in").symlink_to(inside, target_is_directory=True)
    foreign = fresh(runs_dir, "foreign")
    (foreign / "run.json").write_text('{"not": "cltui"}')
    return {"victim": victim, "victim-run": victim_run, "inside": inside, "foreign": foreign}


ESCAPES = [
    ["runs", "rm", "../victim", "--yes"],
    ["runs", "rm", "../victim-run", "--yes"],
    ["runs", "rm", "{tmp}/victim-run", "--yes"],
    ["runs", "rm", "{tmp}/runs/../victim-run", "--yes"],
    ["runs", "rm", "../victim-run/", "--yes"],
    ["runs", "rm", "..", "--yes"],
    ["runs", "show", "../victim"],
    ["runs", "show", "../victim-run"],
    ["runs", "show", "link-out"],
    ["dreams", "../victim"],
    ["dreams", "../victim-run"],
    ["run", "--resume", "../victim-run"],
    ["run", "--resume", "link-out"],
    ["compare", "--resume", "../x"],
    ["studies", "show", "../x"],
]


@pytest.mark.parametrize("args", ESCAPES, ids=[" ".join(a) for a in ESCAPES])
def test_an_id_that_points_outside_the_runs_folder_is_one_line_and_touches_nothing(args, victims, runs_dir,
                                                                                  tmp_path, monkeypatch):
    monkeypatch.chdir(runs_dir)  # "../victim" is then the folder beside the runs folder
    before = snapshot(tmp_path)

    result = cli(*[a.format(tmp=tmp_path) for a in args], "--runs-dir", runs_dir)

    assert_one_line_error(result)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("link", ["link-out", "link-in"])
def test_runs_rm_of_a_link_removes_the_link_and_never_its_target(link, victims, runs_dir, tmp_path):
    target = (runs_dir / link).resolve()
    before = snapshot(tmp_path)

    result = cli("runs", "rm", link, "--yes", "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert not os.path.lexists(runs_dir / link)
    after = snapshot(tmp_path)
    assert after == {k: v for k, v in before.items() if k != f"runs/{link}"}
    assert (target / "run.json").is_file()


def test_runs_rm_refuses_a_folder_that_is_not_a_cltui_run(victims, runs_dir, tmp_path):
    before = snapshot(tmp_path)

    result = cli("runs", "rm", "foreign", "--yes", "--runs-dir", runs_dir)

    assert_one_line_error(result, "foreign")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [["runs", "show"], ["runs", "rm", "--yes"], ["dreams"],
                                     ["run", "--resume"]],
                         ids=lambda c: " ".join(c))
def test_a_run_id_too_long_for_a_file_name_is_one_line(command, runs_dir, tmp_path):
    before = snapshot(tmp_path)

    result = cli(*command, "a" * 300, "--runs-dir", runs_dir)

    assert_one_line_error(result)
    assert snapshot(tmp_path) == before


# --- 8. what runs show prints; the files' permissions -----------------------------------------------------

def stop_after(context: int) -> tuple[Any, Any]:
    """emit and should_stop for a run cancelled in the context after `context`."""
    done = {"flag": False}

    def emit(event: Any) -> None:
        if isinstance(event, ContextEvaluated) and event.context == context:
            done["flag"] = True

    return emit, lambda: done["flag"]


@pytest.fixture
def one_context_run(runs_dir: Path) -> Path:
    """A run cancelled after exactly one context."""
    from core.training import run

    run_dir = fresh(runs_dir, "20260101-000000-split-digits-class-none-s0")
    emit, should_stop = stop_after(0)
    record = run(config(), run_dir, emit=emit, should_stop=should_stop)
    assert record["status"] == "cancelled" and len(record["acc_matrix"]) == 1
    return run_dir


def test_runs_show_labels_the_one_row_of_a_run_cancelled_after_one_context_c0(one_context_run, runs_dir):
    (row,) = rows_of(one_context_run)

    result = cli("runs", "show", one_context_run.name, "--runs-dir", runs_dir)

    no_traceback(result)
    assert result.exit_code == 0, result.output
    lines = table_lines(result.stdout)
    assert "all" not in lines
    cells = [c.strip() for c in lines["c0"].split("│")]
    assert cells == ["c0", *(f"{100 * a:.1f}" for a in row), f"{100 * row[0]:.1f}"]
    assert row[0] == 1.0 and cells[-1] == "100.0"  # avg seen: context 0 only


@pytest.mark.anyio
async def test_the_tui_detail_labels_the_one_row_of_a_run_cancelled_after_one_context_c0(
        one_context_run, runs_dir, tui):
    from textual.widgets import DataTable

    from cltui.tui.screens.detail import DetailScreen

    (row,) = rows_of(one_context_run)

    pilot = await tui.start(runs_dir, size=(160, 40))
    app = pilot.app
    await app.push_screen(DetailScreen(one_context_run))
    await settle(pilot)
    table = app.screen.query_one("#matrix", DataTable)
    columns = [str(c.label) for c in table.ordered_columns]

    cells = dict(zip(columns, (str(c) for c in table.get_row_at(0)), strict=True))

    assert not [n for n in tui.notes if n.startswith("internal error")], tui.notes
    assert cells["after"] == "c0"
    assert cells["avg seen"] == f"{100 * row[0]:.1f}" == "100.0"


@pytest.mark.anyio
async def test_the_tui_charts_of_a_run_cancelled_after_one_context_show_c0_only(one_context_run, runs_dir, tui):
    from rich.text import Text

    from cltui.tui.screens.detail import DetailScreen
    from cltui.tui.widgets.charts import AccuracyChart

    pilot = await tui.start(runs_dir, size=(160, 40))
    app = pilot.app
    await app.push_screen(DetailScreen(one_context_run))
    await settle(pilot)
    charts = app.screen.query(AccuracyChart)

    legends = [Text.from_markup(str(chart.border_subtitle)).plain for chart in charts]

    assert legends and all(legend == "━ c0" for legend in legends), legends


def test_a_resumed_run_prints_a_total_time_no_shorter_than_its_training(one_context_run, runs_dir):
    from core.training import run

    record = run(config(), one_context_run, resume=True)
    assert record["status"] == "finished"

    result = cli("runs", "show", one_context_run.name, "--runs-dir", runs_dir)

    no_traceback(result)
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("total ")]
    total, train = (float(line.split(word)[1].split()[0]) for word in ("total ", "train "))
    assert total >= train > 0, line


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_run_json_gets_the_permissions_of_the_umask(runs_dir):
    from core.training import run

    run_dir = fresh(runs_dir, "r")
    with umask(0o022):
        run(config("train.iterations=5"), run_dir)
    assert (run_dir / "run.json").stat().st_mode & 0o777 == 0o644


def test_run_json_follows_the_umask_of_the_moment(runs_dir):
    from core.training import run

    run_dir = fresh(runs_dir, "r")
    with umask(0o027):
        run(config("train.iterations=5"), run_dir)
    files = [run_dir / "run.json", *run_dir.glob("checkpoints/*.pt")]
    modes = {p.name: p.stat().st_mode & 0o777 for p in files}
    assert set(modes.values()) == {0o640}, modes


# --- 9. bad command lines leave nothing ---------------------------------------------------------------------

def test_a_device_that_is_not_there_leaves_no_runs_folder(tmp_path):
    runs = tmp_path / "new-runs"
    result = cli("run", "--device", "cuda:7", "--set", "train.iterations=20", "--runs-dir", runs)

    assert_one_line_error(result, "cuda:7")
    assert not runs.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_device_that_is_not_there_leaves_no_parent_folders_either(tmp_path):
    runs = tmp_path / "new" / "deeper" / "runs"
    result = cli("run", "--device", "cuda:7", "--set", "train.iterations=20", "--runs-dir", runs)

    assert_one_line_error(result, "cuda:7")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
