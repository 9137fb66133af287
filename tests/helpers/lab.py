"""A lab's runs folder: the thirty runs and study of tests/helpers/daily.py plus the studies a lab runs beside
them, written by hand in the real on-disk format (run.json schema 1, events.jsonl, worker.log; copied from
tiny real runs of each kind) with fixed ids, times and figures, so that screenshots of them never change.

`write_lab_runs(root)` writes them all and returns a `Lab` with their ids. Besides the thirty runs
(split-digits class-IL, 5 methods x 3 seeds x 300 and 50 iterations, 2026-01-02 and -03):

- `task`: split-digits task-IL `none`, seeds 0-2, the preset's 300 iterations (2026-01-04): 97-98 %, where
  the same method class-IL scores 19 %, so pooling scenarios shows at once.
- `sweep`: an EWC λ sweep as `cltui sweep --grid method.lambda=1e6,1e7,1e8,1e10 --set train.iterations=30`
  writes it (2026-01-05): split-digits class-IL, 4 values of method.lambda x seeds 0 and 1, each run with
  `benchmark.validation=0.1` (the share the sweep holds out), a `val_matrix` and the validation metrics, and
  the sweep's study file under studies/. {λ: [run ids, seed 0 first]}; none of the values is the preset's
  1e9 (the run at the preset's value would have no λ override to show).
- `sine`: a sine-regression run, merge-sine task-IL `none`, seed 0 (2026-01-06 09:00): its score is R², one
  output per wave, fine-tuning wave after wave leaves the old waves far below 0 (final R² -0.221).
- `teachers`, `merge`: a merge of two sine teachers as the docs' demo makes it (2026-01-06 09:10-09:20):
  teacher A `joint` seed 0 on waves 0-1 (`benchmark.learn_contexts=[0,1]`), teacher B `joint` seed 1 on waves
  2-4, each one stage of 2000 steps; then `cltui merge A B` (l0, data union, seed 0): method `merge` with the
  teachers' ids, train.iterations 2000 (merge + fine-tune steps), a one-row matrix labelled `all`, run.json's
  `merge` section (both teachers with their scores, settings, phases, active units) and the UnitsActive events
  its chart draws. R²: A 0.060, B 0.288, student 0.994. No preset builds a `merge` method, so its overrides are
  unknown (–).
- `gap`: a stability-gap run (preset stability-gap: rotated digits 0/80/160°, domain-IL, `cumulative`,
  `train.eval_every=1`) with `train.iterations=100` (2026-01-07): `acc_curve` holds every context's accuracy
  after every iteration (301 points), context 0 dipping from 0.96 to about 0.80 right after each boundary and
  back within about 15 iterations; events.jsonl holds the same curve as CurveEvaluated events and the training
  loss every 10 iterations (Progress), which the detail screen's curve and loss charts draw.

All of them finished. The sweep, task, sine and gap runs' ids are the store's (`<time>-<preset>-<scenario>-
<method>-s<seed>`), the merge's `<time>-merge-sine-merge-l0-s0` as `cltui merge` names it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    CurveEvaluated,
    Event,
    PhaseFinished,
    PhaseStarted,
    Progress,
    RunFinished,
    RunStarted,
    UnitsActive,
)
from core.runs.metrics import summarize
from core.schema.presets import build_config
from tests.helpers.daily import write_thirty_runs
from tests.helpers.fixed_runs import write_run

LAMBDAS = (1e6, 1e7, 1e8, 1e10)
SWEEP_STUDY = "20260105-100000-sweep-split-digits-ewc-class"
ENV = {"cltui": "0.1.0", "torch": "2.5.1", "python": "3.11.7", "device": "cpu", "host": "lab", "threads": "1",
       "threads_from": "OMP_NUM_THREADS"}


@dataclass
class Lab:
    """The ids `write_lab_runs` wrote (see the module's docstring)."""

    thirty: list[str]
    study: str
    task: list[str] = field(default_factory=list)
    sweep: dict[float, list[str]] = field(default_factory=dict)
    sine: str = ""
    teachers: tuple[str, str] = ("", "")
    merge: str = ""
    gap: str = ""

    @property
    def added(self) -> list[str]:
        """The runs this module adds to the thirty, oldest first."""
        return [*self.task, *(i for ids in self.sweep.values() for i in ids), self.sine, *self.teachers, self.merge,
                self.gap]

    @property
    def ids(self) -> list[str]:
        """Every run id, newest first."""
        return sorted([*self.thirty, *self.added], reverse=True)


def stamp(day: int, hour: int, minute: int) -> tuple[str, str]:
    """The id's time stamp and the ISO time of 2026-01-<day> <hour>:<minute>."""
    return (f"202601{day:02d}-{hour:02d}{minute:02d}00", f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:00+00:00")


def epoch(day: int, hour: int, minute: int) -> float:
    return 1767225600.0 + (day - 1) * 86400 + hour * 3600 + minute * 60  # 2026-01-01T00:00:00Z + ...


def record(run_id: str, cfg: dict[str, Any], acc: list[list[float]], contexts: list[dict[str, Any]], *,
           created: str, total_s: float, acc_init: list[float] | None, once: bool = False,
           curve: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A finished run's run.json as cltui writes it today."""
    n = cfg["benchmark"]["contexts"]
    metrics = {k: (round(v, 6) if v is not None else None)
               for k, v in summarize(acc, acc_init, curve, once=once, contexts=n).items()}
    train_s = round(sum(c["train_s"] for c in contexts), 3)
    hh, mm = int(created[11:13]), int(created[14:16])
    seconds = round(total_s)
    finished = f"{created[:11]}{hh + (mm + seconds // 60) // 60:02d}:{(mm + seconds // 60) % 60:02d}:" \
               f"{seconds % 60:02d}+00:00"
    data = {
        "schema": 1, "id": run_id, "status": "finished", "pid": 4242, "created": created, "finished": finished,
        "preset": cfg["preset"], "config": cfg, "env": ENV, "contexts": contexts, "acc_init": acc_init,
        "acc_matrix": acc, "acc_curve": curve or [], "metrics": metrics,
        "timing": {"total_s": total_s, "train_s": train_s, "eval_s": round(0.01 * len(acc), 3),
                   "samples_per_s": 31250.0},
        "dreams": [], "error": None, "resumed": [], "merge": None,
    }
    data.update(extra)
    return data


def events_of(run_id: str, cfg: dict[str, Any], data: dict[str, Any], start: float,
              losses: dict[int, list[tuple[int, float]]] | None = None,
              curves: dict[int, tuple[list[int], list[list[float]]]] | None = None) -> list[Event]:
    """The events of a finished run: per stage its start, training progress (`losses`: stage -> [(step,
    loss)]; by default three), the continual-evaluation curve when it has one, evaluation; then the end."""
    t = start
    stages = data["contexts"]
    events: list[Event] = [RunStarted(run_id=run_id, contexts=len(stages), device="cpu", config=cfg, t=t)]
    for k, (context, row) in enumerate(zip(stages, data["acc_matrix"], strict=True)):
        total = context["iterations"]
        t += 0.5
        events += [ContextStarted(context=k, classes=context["classes"], iterations=total, t=t),
                   PhaseStarted(context=k, phase="train", total=total, t=t)]
        if curves and k in curves:
            steps, accs = curves[k]
            events.append(CurveEvaluated(context=k, iterations=steps, accuracies=accs, t=t + 0.2))
        points = (losses or {}).get(k) or [(total // 3, 0.6), (2 * total // 3, 0.3), (total, 0.1)]
        for step, loss in points:
            t += 0.1
            events.append(Progress(context=k, phase="train", step=step, total=total, loss=loss,
                                   samples_per_s=31250.0, t=t))
        t += 0.1
        events += [PhaseFinished(context=k, phase="train", seconds=context["train_s"], t=t),
                   PhaseStarted(context=k, phase="eval", total=len(row), t=t),
                   PhaseFinished(context=k, phase="eval", seconds=0.01, t=t + 0.01),
                   ContextEvaluated(context=k, accuracies=row, train_s=context["train_s"],
                                    final_loss=context["final_loss"], t=t + 0.02)]
    events.append(RunFinished(metrics=data["metrics"], total_s=data["timing"]["total_s"], t=t + 0.1))
    return events


def contexts_of(n: int, classes: list[list[int]], iterations: int, train_s: float,
                loss0: float) -> list[dict[str, Any]]:
    """run.json's "contexts": each stage's classes, steps, time and last loss."""
    return [{"index": k, "classes": classes[k], "train_s": round(train_s + 0.01 * k, 4), "iterations": iterations,
             "final_loss": round(loss0 * (1 + 0.2 * k), 4), "elapsed_s": round((k + 1) * (train_s + 0.05), 3)}
            for k in range(n)]


def forgetting(final: list[float], peak: float) -> list[list[float]]:
    """A lower-triangular matrix: each context learnt to `peak` when trained, then sliding linearly to its
    value in the last row, `final`."""
    n = len(final)
    rows = []
    for i in range(n):
        row = [0.0] * n
        for j in range(i + 1):
            row[j] = peak if j == i else round(peak + (final[j] - peak) * (i - j) / max(1, n - 1 - j), 6)
        rows.append(row)
    rows[-1] = list(final)
    return rows


# --- the studies of the lab -----------------------------------------------------------------------------


def write_task(root: Path) -> list[str]:
    ids = []
    for seed in range(3):
        run_id, created = stamp(4, 9, 10 * seed)
        run_id += f"-split-digits-task-none-s{seed}"
        cfg = build_config("split-digits", method="none", scenario="task", seed=seed).to_dict()
        final = [round(0.962 + 0.004 * j + 0.002 * seed, 3) for j in range(5)]  # 97-98 %
        acc = forgetting(final, 0.996)
        for i, row in enumerate(acc):  # task-IL: a context not yet trained is a coin toss between its two classes
            for j in range(i + 1, 5):
                row[j] = 0.5
        data = record(run_id, cfg, acc, contexts_of(5, [[2 * k, 2 * k + 1] for k in range(5)], 300, 1.1, 0.02),
                      created=created, total_s=round(4.2 + 0.1 * seed, 1), acc_init=[0.5] * 5)
        write_run(root, data, events_of(run_id, cfg, data, epoch(4, 9, 10 * seed)))
        ids.append(run_id)
    return ids


def write_sweep(root: Path) -> dict[float, list[str]]:
    out: dict[float, list[str]] = {}
    runs = []
    minute = 0
    for trial, lam in enumerate(LAMBDAS):
        out[lam] = []
        for seed in (0, 1):
            run_id, created = stamp(5, 10, minute + 1)
            run_id += f"-split-digits-class-ewc-s{seed}"
            cfg = build_config("split-digits", method="ewc", scenario="class", seed=seed,
                               overrides=["train.iterations=30", f"method.lambda={lam:g}",
                                          "benchmark.validation=0.1"]).to_dict()
            mean = {1e6: 0.198, 1e7: 0.211, 1e8: 0.234, 1e10: 0.220}[lam] + 0.006 * (2 * seed - 1)
            final = [round(mean - 0.03 + 0.0125 * j, 4) for j in range(4)] + [0.0]
            final[-1] = round(5 * mean - sum(final[:4]), 4)
            acc = forgetting(final, 0.97)
            val = [[round(min(1.0, v + 0.01), 4) for v in row] for row in acc]
            data = record(run_id, cfg, acc, contexts_of(5, [[2 * k, 2 * k + 1] for k in range(5)], 30, 0.3, 0.2),
                          created=created, total_s=round(1.4 + 0.1 * trial + 0.05 * seed, 2),
                          acc_init=[0.5, 0.069, 0.027, 0.222, 0.0], val_matrix=val)
            data["metrics"]["final_avg_val_acc"] = round(sum(val[-1]) / 5, 6)
            data["metrics"]["avg_incremental_val_acc"] = round(
                sum(sum(r[: i + 1]) / (i + 1) for i, r in enumerate(val)) / 5, 6)
            write_run(root, data, events_of(run_id, cfg, data, epoch(5, 10, minute + 1)))
            out[lam].append(run_id)
            runs.append({"method": "ewc", "seed": seed, "run_id": run_id, "params": {"method.lambda": lam},
                         "trial": trial, "label": f"lambda={lam:g}".replace("e+0", "e")})
            minute += 2
    study = {"schema": 1, "id": SWEEP_STUDY, "kind": "sweep", "created": "2026-01-05T10:00:00+00:00",
             "finished": "2026-01-05T10:17:00+00:00", "preset": "split-digits", "scenario": "class",
             "methods": ["ewc"], "seeds": 2, "overrides": ["train.iterations=30"],
             "added": ["benchmark.validation=0.1"], "jobs": 1,
             "grid": ["method.lambda=" + ",".join(f"{lam:g}".replace("e+0", "e") for lam in LAMBDAS)],
             "select": "validation", "search": "grid", "trials": None, "signature": "5e1ab0c0ffee0001",
             "runs": runs, "wall_s": [16.4]}
    (root / "studies").mkdir(parents=True, exist_ok=True)
    (root / "studies" / f"{SWEEP_STUDY}.json").write_text(json.dumps(study, indent=2) + "\n")
    return out


SINE_INIT = [0.009572, -0.672747, -0.377611, -0.144888, 0.016926]


def write_sine(root: Path) -> str:
    run_id, created = stamp(6, 9, 0)
    run_id += "-merge-sine-task-none-s0"
    cfg = build_config("merge-sine", method="none", scenario="task", seed=0).to_dict()
    acc = forgetting([-1.912, -0.547, -0.214, 0.61, 0.958], 0.97)  # final R² -0.221
    data = record(run_id, cfg, acc, contexts_of(5, [[k] for k in range(5)], 400, 0.21, 0.012), created=created,
                  total_s=2.6, acc_init=SINE_INIT)
    write_run(root, data, events_of(run_id, cfg, data, epoch(6, 9, 0)))
    return run_id


TEACHER_SCORES = ([0.962, 0.941, -0.874, -0.488, -0.241], [-0.316, -0.425, 0.957, 0.861, 0.363])


def write_teachers(root: Path) -> tuple[str, str]:
    ids = []
    for seed, (learned, scores) in enumerate(zip(([0, 1], [2, 3, 4]), TEACHER_SCORES, strict=True)):
        run_id, created = stamp(6, 9, 10 + 2 * seed)
        run_id += f"-merge-sine-task-joint-s{seed}"
        cfg = build_config("merge-sine", method="joint", scenario="task", seed=seed,
                           overrides=[f"benchmark.learn_contexts=[{','.join(map(str, learned))}]"]).to_dict()
        contexts = [{"index": 0, "classes": learned, "train_s": 0.74, "iterations": 2000, "final_loss": 0.0105,
                     "elapsed_s": 1.39}]
        data = record(run_id, cfg, [scores], contexts, created=created, total_s=1.9, acc_init=SINE_INIT, once=True)
        write_run(root, data, events_of(run_id, cfg, data, epoch(6, 9, 10 + 2 * seed),
                                        {0: [(500, 0.21), (1000, 0.05), (1500, 0.02), (2000, 0.0105)]}))
        ids.append(run_id)
    return ids[0], ids[1]


def write_merge(root: Path, teachers: tuple[str, str]) -> str:
    run_id, created = stamp(6, 9, 20)
    run_id += "-merge-sine-merge-l0-s0"
    cfg = build_config("merge-sine", seed=0).to_dict()
    cfg["train"]["iterations"] = 2000  # the merge's steps and the fine-tune's
    cfg["method"] = {"name": "merge", "approach": "l0", "data": "union", "teachers": list(teachers)}
    scores = [0.995, 0.993, 0.996, 0.994, 0.992]
    contexts = [{"index": 0, "classes": [0, 1, 2, 3, 4], "train_s": 2.41, "iterations": 2000, "final_loss": 0.0061,
                 "elapsed_s": 2.47}]
    merge = {
        "approach": "l0", "data": "union",
        "teachers": [{"id": tid, "accuracies": s, "final_avg_acc": round(sum(s) / 5, 6), "learned": learned}
                     for tid, s, learned in zip(teachers, TEACHER_SCORES, ([0, 1], [2, 3, 4]), strict=True)],
        "settings": {"approach": "l0", "data": "union", "iterations": 1000, "finetune_iterations": 1000,
                     "importance_batches": 8, "batch_size": None, "lr": None, "temperature": 2.0, "kd": 1.0,
                     "features": 1.0, "l0_lambda": 20.0, "l0_warmup": 0.5, "gate_lr": 0.05, "gate_init": 3.0,
                     "seed": 0, "device": "auto", "eval_batch_size": 2048, "progress_interval": 0.25},
        "phases": {"joint-l0": 1.52, "pruning": 0.01, "fine-tune": 0.88, "eval": 0.01},
        "active_units": [{"step": s, "active": {"fc.fc1": a, "fc.fc2": b}}
                         for s, a, b in ((0, 32, 32), (250, 29, 30), (500, 22, 24), (750, 17, 18), (1000, 16, 16))],
        "widths": {"fc.fc1": 16, "fc.fc2": 16},
        "accuracy_before_finetune": [0.912, 0.874, 0.903, 0.881, 0.842],
        "kept_from_first": {"fc.fc1": 7, "fc.fc2": 8},
        "open_gates_pruned": {"fc.fc1": 0, "fc.fc2": 0},
    }
    data = record(run_id, cfg, [scores], contexts, created=created, total_s=2.5, acc_init=None, once=True,
                  merge=merge)
    t = epoch(6, 9, 20)
    widths, keep = {"fc.fc1": 32, "fc.fc2": 32}, {"fc.fc1": 16, "fc.fc2": 16}
    events: list[Event] = [RunStarted(run_id=run_id, contexts=5, device="cpu", config=cfg, t=t),
                           ContextStarted(context=0, classes=[0, 1, 2, 3, 4], iterations=2000, t=t + 0.01),
                           PhaseStarted(context=0, phase="joint-l0", total=1000, t=t + 0.02)]
    for i, point in enumerate(merge["active_units"]):
        step, active = point["step"], point["active"]
        events.append(UnitsActive(context=0, step=step, total=1000, active=active, widths=widths, keep=keep,
                                  t=t + 0.03 + 0.3 * i))
        if step:
            events.append(Progress(context=0, phase="joint-l0", step=step, total=1000,
                                   loss=round(29.5 * math.exp(-step / 300) + 0.4, 4), samples_per_s=23355.0,
                                   t=t + 0.04 + 0.3 * i))
    t += 1.6
    events += [PhaseFinished(context=0, phase="joint-l0", seconds=1.52, t=t),
               PhaseStarted(context=0, phase="pruning", total=2, t=t),
               Progress(context=0, phase="pruning", step=2, total=2, t=t + 0.01),
               PhaseFinished(context=0, phase="pruning", seconds=0.01, t=t + 0.01),
               PhaseStarted(context=0, phase="fine-tune", total=1000, t=t + 0.02)]
    for i, step in enumerate((250, 500, 750, 1000)):
        events.append(Progress(context=0, phase="fine-tune", step=step, total=1000,
                               loss=round(0.05 / (i + 1), 4), samples_per_s=50270.0, t=t + 0.2 * (i + 1)))
    t += 0.9
    events += [PhaseFinished(context=0, phase="fine-tune", seconds=0.88, t=t),
               PhaseStarted(context=0, phase="eval", total=5, t=t),
               PhaseFinished(context=0, phase="eval", seconds=0.01, t=t + 0.01),
               ContextEvaluated(context=0, accuracies=scores, train_s=2.41, final_loss=0.0061, t=t + 0.02),
               RunFinished(metrics=data["metrics"], total_s=2.5, t=t + 0.03)]
    write_run(root, data, events)
    return run_id


GAP_STEPS = 100  # per context


def gap_curve() -> list[list[Any]]:
    """[iteration, stage, [accuracy on each of the 3 contexts]] after every iteration of the 3 stages: the
    context being trained rises towards 0.96; context 0 (and 1) dips right after each later boundary to about
    0.80 and is back within ~15 iterations; a context not yet trained sits near chance for its rotation."""
    points: list[list[Any]] = []
    start = [0.155, 0.069, 0.094]
    for it in range(3 * GAP_STEPS + 1):
        stage = 0 if it == 0 else (it - 1) // GAP_STEPS
        accs = []
        for k in range(3):
            if k > stage:  # not trained yet: rotated digits, a little above chance as the model learns
                value = start[k] + 0.12 * (1 - math.exp(-it / 80))
            else:
                since = it - k * GAP_STEPS  # iterations since context k's own stage began
                learnt = 0.96 - (0.96 - start[k]) * math.exp(-since / 18)
                value = learnt
                if stage > k:
                    after = it - stage * GAP_STEPS  # iterations into the current, later stage
                    value -= 0.17 * (after / 3) * math.exp(1 - after / 3) if after > 0 else 0.0
            accs.append(round(value, 4))
        points.append([it, stage, accs])
    return points


def write_gap(root: Path) -> str:
    run_id, created = stamp(7, 9, 0)
    run_id += "-stability-gap-domain-cumulative-s0"
    cfg = build_config("stability-gap", seed=0, overrides=[f"train.iterations={GAP_STEPS}"]).to_dict()
    curve = gap_curve()
    ends = [curve[(k + 1) * GAP_STEPS][2] for k in range(3)]  # the matrix: each stage's last curve point
    init = curve[0][2]
    contexts = contexts_of(3, [list(range(10))] * 3, GAP_STEPS, 1.6, 0.09)
    data = record(run_id, cfg, ends, contexts, created=created, total_s=7.3, acc_init=init, curve=curve)
    curves = {}
    losses = {}
    for k in range(3):
        part = [p for p in curve if p[1] == k and (p[0] > 0 or k == 0)]
        curves[k] = ([p[0] for p in part], [p[2] for p in part])
        losses[k] = [(s, round(0.09 + 2.2 * math.exp(-s / 25) * (0.6 if k else 1.0), 4))
                     for s in range(10, GAP_STEPS + 1, 10)]  # the loss jumps at each boundary, then falls
    write_run(root, data, events_of(run_id, cfg, data, epoch(7, 9, 0), losses, curves))
    return run_id


def write_lab_runs(root: Path) -> Lab:
    """The lab's folder in `root` (see the module's docstring); returns the ids."""
    root.mkdir(parents=True, exist_ok=True)
    thirty, study = write_thirty_runs(root)
    lab = Lab(thirty, study)
    lab.task = write_task(root)
    lab.sweep = write_sweep(root)
    lab.sine = write_sine(root)
    lab.teachers = write_teachers(root)
    lab.merge = write_merge(root, lab.teachers)
    lab.gap = write_gap(root)
    return lab
