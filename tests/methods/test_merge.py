"""`cltui merge`: two real teacher runs (trained in this process by the engine, as `cltui run` trains them)
merged through the CLI into a student that is an ordinary run: far above each teacher when they learned
disjoint halves of split digits, of exactly the teachers' architecture, listed and shown like any run; and
bad input (other architectures, an unfinished run, no checkpoint) is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cltui.cli.main import app
from core.engine.models import ContinualModel, _resnet_features, build_model, count_parameters
from core.merge.anatomy import Residual
from core.runs.record import read_record, write_record
from core.runs.store import RunStore, read_events
from core.schema.presets import build_config
from core.training import run
from tests.helpers import data as fakedata

WIDE = {"COLUMNS": "200"}
MLP = ("model.hidden=[64,64]", "train.iterations=40")  # joint: 40 x 5 = 200 steps, about a second


def cli(runs: Path, *args: str):
    return CliRunner().invoke(app, [*args, "--runs-dir", str(runs)], env=WIDE)


def assert_bad_input(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def teacher(runs: Path, seed: int, *overrides: str, method: str = "joint") -> str:
    config = build_config("merge-digits", method=method, seed=seed, device="cpu", overrides=[*MLP, *overrides])
    folder = RunStore(runs).new_run_dir_for(config)
    assert run(config, folder)["status"] == "finished"
    return folder.name


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("merge-runs")


@pytest.fixture(scope="module")
def halves(runs) -> tuple[str, str, float]:
    """Teachers on disjoint halves of split digits (contexts 0-1, 2-4), and joint training on all of it."""
    a = teacher(runs, 0, "benchmark.learn_contexts=[0,1]")
    b = teacher(runs, 1, "benchmark.learn_contexts=[2,3,4]")
    joint = read_record(runs / teacher(runs, 2)).metrics["final_avg_acc"]
    return a, b, joint


def merged(runs: Path, result) -> dict:
    assert result.exit_code == 0, result.output
    newest = max((p for p in runs.iterdir() if "-merge-" in p.name), key=lambda p: p.stat().st_mtime)
    return read_record(newest).to_dict() | {"path": newest}


@pytest.mark.parametrize("approach", ["greedy", "l0"])
def test_teachers_of_disjoint_halves_merge_into_a_student_that_knows_both(runs, halves, approach):
    a, b, joint = halves
    result = cli(runs, "merge", a, b, "--approach", approach, "--seed", "0",
                 "--set", "iterations=150", "--set", "finetune_iterations=100")
    record = merged(runs, result)
    assert record["status"] == "finished" and record["config"]["method"]["name"] == "merge"
    teachers = record["merge"]["teachers"]
    assert [t["id"] for t in teachers] == [a, b] and [t["learned"] for t in teachers] == [[0, 1], [2, 3, 4]]
    assert len(record["acc_matrix"]) == 1 and len(record["acc_matrix"][0]) == 5  # one row: every context
    student = record["metrics"]["final_avg_acc"]
    # each teacher knows 2 or 3 of 5 contexts (<= 60%); the student all of them, near joint training
    assert all(t["final_avg_acc"] < 0.62 for t in teachers)
    assert student > max(t["final_avg_acc"] for t in teachers) + 0.25, student
    assert student > 0.85 and student > joint - 0.08, (student, joint)
    assert "teachers:" in result.output and "student" in result.output


def test_l0_student_has_exactly_the_teachers_architecture_and_reports_its_phases(runs, halves):
    a, b, _ = halves
    record = merged(runs, cli(runs, "merge", a, b, "--approach", "l0", "--set", "iterations=120",
                              "--set", "finetune_iterations=0"))
    state = torch.load(record["path"] / "checkpoints" / "context-0.pt", weights_only=True)["model"]
    fresh = build_model("mlp", (1, 8, 8), 10, hidden=[64, 64])
    fresh.load_state_dict(state)  # strict: every tensor of the teachers' architecture, nothing more
    assert sum(t.numel() for t in state.values()) == count_parameters(fresh)
    phases = {e.phase for e in read_events(record["path"]) if type(e).__name__ == "PhaseStarted"}
    assert {"joint-l0", "pruning", "eval"} <= phases  # no fine-tune steps asked: no fine-tune phase
    units = [e for e in read_events(record["path"]) if type(e).__name__ == "UnitsActive"]
    assert units[0].active == {"fc.fc1": 128, "fc.fc2": 128} and units[0].keep == {"fc.fc1": 64, "fc.fc2": 64}
    assert sum(units[-1].active.values()) < 0.75 * 256  # the gates close toward half of the joint network
    # pruned without fine-tuning, the student already knows both halves
    assert sum(record["merge"]["accuracy_before_finetune"]) / 5 > 0.6


def test_merge_run_is_an_ordinary_run_in_list_and_show(runs, halves):
    a, b, _ = halves
    record = merged(runs, cli(runs, "merge", a, b, "--approach", "greedy", "--data", "same",
                              "--set", "iterations=60", "--set", "finetune_iterations=20"))
    assert record["merge"]["data"] == "same" and record["config"]["benchmark"]["learn_contexts"] == [2, 3, 4]
    listing = cli(runs, "runs", "list")
    assert listing.exit_code == 0 and record["id"] in listing.output and "merge" in listing.output
    shown = cli(runs, "runs", "show", record["id"])
    assert shown.exit_code == 0 and "all" in shown.output and "method merge" in shown.output


def test_lenet5_teachers_merge_by_both_approaches(runs):
    over = ("model.kind=lenet5", "benchmark.pad_to=16", "train.iterations=30")
    a, b = teacher(runs, 0, *over), teacher(runs, 1, *over)
    for approach in ("greedy", "l0"):
        record = merged(runs, cli(runs, "merge", a, b, "--approach", approach, "--set", "iterations=40",
                                  "--set", "finetune_iterations=20"))
        state = torch.load(record["path"] / "checkpoints" / "context-0.pt", weights_only=True)["model"]
        build_model("lenet5", (1, 16, 16), 10).load_state_dict(state)
        assert record["metrics"]["final_avg_acc"] > 0.5


def test_bad_input_is_one_line_and_exit_2(runs, halves):
    a, b, _ = halves
    other = teacher(runs, 3, "model.hidden=[32,32]")
    assert_bad_input(cli(runs, "merge", a, other), "model.hidden", "[64, 64]", "[32, 32]")
    none = teacher(runs, 4, "train.checkpoints=none")
    assert_bad_input(cli(runs, "merge", a, none), none, "no checkpoint")
    # an unfinished run: a copy of a teacher whose record says it was cancelled
    store = RunStore(runs)
    folder = store.new_run_dir("unfinished")
    record = read_record(runs / b)
    record.id, record.status = folder.name, "cancelled"
    write_record(folder, record)
    assert_bad_input(cli(runs, "merge", a, folder.name), folder.name, "cancelled")
    assert_bad_input(cli(runs, "merge", a, a), "same run")
    assert_bad_input(cli(runs, "merge", a, b, "--set", "iterations=-1"), "iterations")
    assert_bad_input(cli(runs, "merge", a, b, "--set", "nonsense=1"), "nonsense", "valid keys")
    assert_bad_input(cli(runs, "merge", a, b, "--approach", "magic"), "approach")
    before = {p.name for p in runs.iterdir()}
    assert_bad_input(cli(runs, "merge", a, b, "--device", "cuda:99"), "cuda:99")
    assert {p.name for p in runs.iterdir()} == before  # nothing left behind


def test_learn_contexts_is_for_joint_teachers_only(runs):
    result = CliRunner().invoke(app, ["run", "merge-digits", "--method", "none", "--set",
                                      "benchmark.learn_contexts=[0,1]", "--runs-dir", str(runs)], env=WIDE)
    assert_bad_input(result, "learn_contexts", "joint")
    result = CliRunner().invoke(app, ["run", "merge-digits", "--set", "benchmark.learn_contexts=[7]",
                                      "--runs-dir", str(runs)], env=WIDE)
    assert_bad_input(result, "learn_contexts", "7")


def tiny_resnet(seed: int) -> ContinualModel:
    """A CIFAR-style ResNet (stem, 3 stages of 2 BasicBlocks, projection shortcuts) of 4/8/16 channels, its
    BatchNorms' statistics random so that folding a gate into the wrong tensor shows."""
    torch.manual_seed(seed)
    model = ContinualModel(_resnet_features(3, (4, 8, 16), (1, 2, 2), 2), 16, 5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return model.eval()


def test_residual_teachers_join_stage_by_stage_and_prune_back_to_their_architecture():
    ta, tb = tiny_resnet(0), tiny_resnet(1)
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        za, zb = ta(x), tb(x)
    half = torch.full((5,), 0.5)
    anatomy = Residual([ta, tb], (half, half), lambda: tiny_resnet(2))
    # one group per stage (stem + blocks + shortcut share it) and one per block's inner channels
    assert anatomy.names == ["stage1", "layer1.0", "layer1.1", "stage2", "layer2.0", "layer2.1", "stage3",
                             "layer3.0", "layer3.1"]
    assert anatomy.widths == [4, 4, 4, 8, 8, 8, 16, 16, 16]
    with torch.no_grad():
        torch.testing.assert_close(anatomy.joint().eval()(x)[0], 0.5 * za + 0.5 * zb)  # the teachers side by side
        # A's half of every group and a head that reads A only: teacher A again, in a fresh model of its kind
        only_a = Residual([ta, tb], (torch.ones(5), torch.zeros(5)), lambda: tiny_resnet(2))
        student = tiny_resnet(3)
        student.load_state_dict(only_a.pruned_state(only_a.joint().eval(), [torch.arange(w) for w in only_a.widths]))
        torch.testing.assert_close(student(x), za)
        # L0: the closed gates' channels pruned, the open (fractional) gates folded into the BatchNorms that write
        # each kept channel: the pruned student computes what the gated joint network computes
        gated = anatomy.joint(gate_init=0.0).eval()
        keep = []
        for la, w in zip(gated.log_alpha, anatomy.widths, strict=True):
            idx = torch.randperm(2 * w)[:w].sort().values
            la.fill_(-10.0)
            la[idx] = torch.rand(w) * 2 - 0.5
            keep.append(idx)
        state = anatomy.pruned_state(gated, keep)
        student.load_state_dict(state)  # strict
        assert sum(v.numel() for v in state.values()) == sum(v.numel() for v in tiny_resnet(3).state_dict().values())
        torch.testing.assert_close(student(x), gated(x)[0])


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    fakedata.make_cifar100(root)
    return root


@pytest.mark.slow  # about 80 s on 2 busy cores: the double-width ResNet-20 at 32x32 (the tiny one above is fast)
def test_resnet20_teachers_on_cifar_files_merge_into_a_resnet20(runs, cifar, monkeypatch):
    fakedata.vouch(monkeypatch, cifar)
    over = (f"benchmark.data_dir={cifar}", "benchmark.contexts=2", "benchmark.classes_per_context=5",
            "train.iterations=2", "train.batch_size=8")
    ids = []
    for seed, learn in ((0, "[0]"), (1, "[1]")):
        config = build_config("merge-cifar100", seed=seed, device="cpu", overrides=[*over,
                                                                                    f"benchmark.learn_contexts={learn}"])
        folder = RunStore(runs).new_run_dir_for(config)
        assert run(config, folder)["status"] == "finished"
        ids.append(folder.name)
    for approach in ("greedy", "l0"):
        record = merged(runs, cli(runs, "merge", *ids, "--approach", approach, "--set", "iterations=2",
                                  "--set", "finetune_iterations=1", "--set", "importance_batches=1",
                                  "--set", "batch_size=8"))
        assert record["status"] == "finished" and len(record["acc_matrix"][0]) == 2
        state = torch.load(record["path"] / "checkpoints" / "context-0.pt", weights_only=True)["model"]
        fresh = build_model("resnet20", (3, 32, 32), 10)
        fresh.load_state_dict(state)  # strict
        assert sum(v.numel() for v in state.values()) == sum(v.numel() for v in fresh.state_dict().values())
        assert record["merge"]["widths"]["stage3"] == 64 and len(record["merge"]["widths"]) == 12


def test_merge_runs_resume_with_one_line_and_sit_in_a_study_like_any_run(runs, halves):
    a, b, _ = halves
    record = merged(runs, cli(runs, "merge", a, b, "--approach", "greedy", "--set", "iterations=20",
                              "--set", "finetune_iterations=0"))
    assert_bad_input(cli(runs, "run", "--resume", record["id"]), record["id"], "finished")
    # an interrupted merge: not continued, re-run, and the line says with what
    folder = RunStore(runs).new_run_dir("interrupted-merge")
    saved = read_record(record["path"])
    saved.id, saved.status = folder.name, "cancelled"
    write_record(folder, saved)
    before = sorted(p.name for p in runs.iterdir())
    assert_bad_input(cli(runs, "run", "--resume", folder.name), folder.name, "merge run", f"cltui merge {a} {b}")
    assert sorted(p.name for p in runs.iterdir()) == before
    # a study naming teachers and a merge is an ordinary study: its table has a row per method
    from core.studies import study
    store = RunStore(runs)
    study.save(store, {"schema": study.SCHEMA, "id": "merge-study", "preset": "merge-digits", "scenario": "class",
                       "methods": ["joint", "merge"], "seeds": 1,
                       "runs": [{"method": "joint", "seed": 0, "run_id": a}, {"method": "merge", "seed": 0,
                                                                              "run_id": record["id"]}]})
    shown = cli(runs, "studies", "show", "merge-study", "--format", "markdown")
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.output.splitlines() if x.startswith("| merge "))
    assert "1/1" in line and f"{100 * record['metrics']['final_avg_acc']:.2f}" in line
    listing = cli(runs, "studies", "list")
    assert listing.exit_code == 0 and "merge-study" in listing.output and "joint, merge" in listing.output


@pytest.mark.anyio
async def test_the_tui_charts_an_l0_merge_s_active_units_falling_toward_half(runs, halves, tui):
    """The detail screen of a real L0 merge draws its gates' active units per layer, and so does the live screen
    following the same folder; a run without gates shows no such chart."""
    from cltui.tui.screens.detail import DetailScreen
    from cltui.tui.screens.live import LiveScreen
    from cltui.tui.widgets.charts import LossChart, UnitsChart

    a, b, _ = halves
    record = merged(runs, cli(runs, "merge", a, b, "--approach", "l0", "--set", "iterations=120",
                              "--set", "finetune_iterations=0"))
    seen: dict = {}

    async def wait(pilot, condition) -> None:
        for _ in range(200):
            if condition():
                return
            await pilot.pause(0.05)
        raise AssertionError("timed out")

    pilot = await tui.start(runs)
    app = pilot.app
    for run_dir in (record["path"], runs / a):
        screen = DetailScreen(run_dir)
        app.push_screen(screen)
        await wait(pilot, lambda s=screen: s.record is not None)
        await pilot.press("2")
        await pilot.pause()
        chart = screen.query_one(UnitsChart)
        seen[run_dir.name] = (chart.display, list(chart.events), str(chart.border_title))
        app.pop_screen()
        await pilot.pause()
    live = LiveScreen(record["path"])
    app.push_screen(live)
    await wait(pilot, lambda: live.is_mounted and live.query(UnitsChart) and live.query_one(UnitsChart).display)
    seen["live"] = (len(live.query_one(UnitsChart).events), live.query_one(LossChart).display)
    shown, units, title = seen[record["path"].name]
    assert shown and title.startswith("active units per layer")
    assert units[0].step < units[-1].step and sum(units[-1].active.values()) < sum(units[0].active.values())
    assert seen[a][0] is False  # a teacher (no gates): no units chart
    assert seen["live"][0] == len(units) and seen["live"][1] is False  # live: in place of the loss chart
