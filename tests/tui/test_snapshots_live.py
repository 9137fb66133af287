"""SVG snapshots of the live screen, fed from fixed run folders (fixed ids, event times and worker.log; the
running run's pid is this process, so it counts as alive): one run mid-training, one that failed. The system
line's figures come from `FixedProbe` (a real machine's change from one drawing to the next).

Update the baselines with `pytest --snapshot-update tests/tui/test_snapshots_live.py` and look at them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from cltui.tui.app import create_app
from cltui.tui.screens.live import LiveScreen
from cltui.tui.widgets.charts import AccuracyChart
from core.runs.events import ContextStarted, PhaseFinished, PhaseStarted, Progress, RunFailed
from tests.helpers.fixed_runs import ACC_EWC, T0, config, context_events, record, write_run
from tests.helpers.tui import FixedProbe, draw_live_now, settle_workers, snapshot_versions

SIZE = (100, 30)
RUNNING = "20260102-090000-split-digits-class-ewc-s0"
FAILED = "20260102-100000-split-digits-class-si-s0"
LOG = """2026-01-02T09:00:00+00:00 worker pid 4242 started for 20260102-090000-split-digits-class-ewc-s0
2026-01-02T09:00:02+00:00 context 0: 300 it in 1.2 s, loss 0.0500
2026-01-02T09:00:04+00:00 context 1: 300 it in 1.2 s, loss 0.0500
2026-01-02T09:00:06+00:00 context 2: 300 it in 1.2 s, loss 0.0500
"""

pytestmark = snapshot_versions


def running_run(root: Path) -> Path:
    """ewc, three contexts evaluated (each with its Fisher phase), the fourth training."""
    cfg = config({"name": "ewc", "lambda": 1e9, "fisher_labels": "all", "fisher_n": None})
    start = T0 + 86400
    events = context_events(cfg, RUNNING, ACC_EWC[:3], start)
    for k in range(3):  # a consolidation phase before each evaluation
        at = next(i for i, e in enumerate(events) if isinstance(e, PhaseStarted) and e.context == k
                  and e.phase == "eval")
        t = events[at].t
        events[at:at] = [PhaseFinished(context=k, phase="train", seconds=1.2, t=t),
                         PhaseStarted(context=k, phase="fisher", total=1000, t=t),
                         Progress(context=k, phase="fisher", step=1000, total=1000, t=t),
                         PhaseFinished(context=k, phase="fisher", seconds=0.31, t=t)]
    t = start + 12
    events += [ContextStarted(context=3, classes=[6, 7], iterations=300, t=t),
               PhaseStarted(context=3, phase="train", total=300, t=t),
               Progress(context=3, phase="train", step=180, total=300, loss=0.1834, samples_per_s=30125.0,
                        t=t + 0.7)]
    data = record(RUNNING, cfg, "running", ACC_EWC[:3], total_s=None, created="2026-01-02T09:00:00+00:00",
                  finished=None, pid=os.getpid())
    return write_run(root, data, events, LOG)


def failed_run(root: Path) -> Path:
    cfg = config({"name": "si", "c": 5000.0, "epsilon": 0.1})
    start = T0 + 86400 + 3600
    events = context_events(cfg, FAILED, ACC_EWC[:2], start)
    t = start + 8
    events += [ContextStarted(context=2, classes=[4, 5], iterations=300, t=t),
               PhaseStarted(context=2, phase="train", total=300, t=t),
               Progress(context=2, phase="train", step=100, total=300, loss=2.5e3, samples_per_s=29800.0, t=t + 0.4),
               RunFailed(error="loss is nan in context 2 at iteration 117; lower train.lr or method.c",
                         traceback="Traceback (most recent call last):\ncore.train.NonFiniteLoss: loss is nan",
                         context=2, iteration=117, t=t + 0.5)]
    error = {"message": "loss is nan in context 2 at iteration 117; lower train.lr or method.c", "kind": "error"}
    data = record(FAILED, cfg, "failed", ACC_EWC[:2], total_s=8.6, created="2026-01-02T10:00:00+00:00",
                  finished="2026-01-02T10:00:09+00:00", error=error)
    return write_run(root, data, events, "2026-01-02T10:00:00+00:00 worker pid 4242 started\n"
                     "Traceback (most recent call last):\ncore.train.NonFiniteLoss: loss is nan\n")


def nodes(node: TreeNode[Any]) -> Iterator[TreeNode[Any]]:
    for child in node.children:
        yield child
        yield from nodes(child)


def open_live(run_dir: Path, done: str) -> Callable[[Pilot], Awaitable[None]]:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        screen = LiveScreen(run_dir, probe=FixedProbe(now=T0 + 86400 + 12 + 1.7))
        app.push_screen(screen)
        for _ in range(200):  # the follower's first batch, then a chart tick
            await pilot.pause(0.05)
            if not screen.is_mounted:
                continue
            labels = [node.label.plain for node in nodes(screen.query_one(Tree).root)]
            if any(done in line for line in labels) and screen.query_one(AccuracyChart).matrix:
                break
        await draw_live_now(pilot, screen)
        await pilot.pause(0.3)

    return run_before


def test_live_screen_of_a_run_in_training(snap_compare, tmp_path):
    run_dir = running_run(tmp_path / "runs")
    assert snap_compare(create_app(tmp_path / "runs"), terminal_size=SIZE, run_before=open_live(run_dir, "180/300"))


def test_live_screen_of_a_failed_run(snap_compare, tmp_path):
    run_dir = failed_run(tmp_path / "runs")
    assert snap_compare(create_app(tmp_path / "runs"), terminal_size=SIZE, run_before=open_live(run_dir, "✗"))


CURVED = "20260102-110000-split-digits-class-cumulative-s0"


def curved_run(root: Path) -> Path:
    """A finished run with continual evaluation (train.eval_every=20): every context's accuracy against the
    iterations, with a stability-gap-like dip of the old contexts just after each boundary."""
    cfg = config({"name": "cumulative", "scale_batch": True})
    cfg["train"]["eval_every"] = 20
    curve = []
    for it in range(0, 1501, 20):
        stage = max(0, (it - 1) // 300)
        accs = []
        for j in range(5):
            if j > stage:
                accs.append(0.0)
                continue
            since = it - 300 * j  # iterations since context j started
            learned = min(1.0, 0.5 + since / 100)
            dip = 0.35 if stage > j and 0 < it - 300 * stage <= 40 else 0.0  # just after a later boundary
            accs.append(round(max(0.0, learned - dip) * 0.98, 3))
        curve.append([it, stage, accs])
    data = record(CURVED, cfg, "finished", ACC_EWC, total_s=9.4, created="2026-01-02T11:00:00+00:00",
                  finished="2026-01-02T11:00:10+00:00")
    data["acc_curve"] = curve
    return write_run(root, data, context_events(cfg, CURVED, ACC_EWC, T0 + 86400 + 7200))


def test_run_detail_draws_accuracy_against_iterations(snap_compare, tmp_path, monkeypatch):
    from textual.widgets import DataTable

    from cltui.tui.widgets.charts import CurveChart

    monkeypatch.chdir(tmp_path)
    curved_run(tmp_path / "runs")

    async def run_before(pilot: Pilot) -> None:
        await settle_workers(pilot.app)
        await pilot.pause()
        table = pilot.app.screen.query_one("#runs", DataTable)
        table.move_cursor(row=table.get_row_index(CURVED), animate=False)
        for key in ("enter", "2"):  # the run's detail, its Charts tab
            await pilot.press(key)
            await settle_workers(pilot.app)
            await pilot.pause()
        assert pilot.app.screen.query_one("#detail-curve", CurveChart).curve

    assert snap_compare(create_app(Path("runs")), terminal_size=(100, 40), run_before=run_before)
