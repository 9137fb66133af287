"""Continual-learning metrics from the accuracy matrix.

`acc[i][j]` is the test accuracy on context j after training on context i (every j, future ones too).
Definitions: Lopez-Paz & Ranzato 2017 (BWT, FWT), Chaudhry et al. 2018 (average forgetting).
A metric that needs more rows than a run has (a joint run trains once) is None.

This module is the one home of every figure a face shows of a run: whether a run trains once over every
context (`trains_once`), the average over the contexts seen (`seen_average`), the headline of a record that
may have ended early (`RunFigures`), mean +- SEM over runs (`mean_sem`) and how contexts are named
(`context_name`: numbered from 0 everywhere, `c0` / `context 0`; counts are counts, `3/5 contexts`).

With continual evaluation (`train.eval_every`), `curve` holds points (iteration, stage, accuracy on each
context), the iteration counted from the run's first step and the stage being trained; the last point of a
stage is taken right after its last step. From it, De Lange et al. (ICLR 2023): the stability gap (the
largest drop of an old context's accuracy after a new stage starts, below where it stood at the boundary,
and how many iterations it takes to come back) and min-ACC (each old context's worst accuracy after it was
learned, averaged).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Methods that train one stage over every context's data: their single row is "all", and every context counts
# as seen. The only place this is decided.
ONE_STAGE_METHODS = ("joint", "merge")
# A class-IL run's other figures of the same evaluations, each a matrix beside acc_matrix (`<key>_matrix` in
# run.json) and a final average (`<key>_acc`): task-aware, top-5, nearest mean of exemplars, the network's logits.
SIDE_MATRICES = ("task", "top5", "nme", "cnn")


def trains_once(method: str | None) -> bool:
    """Does a run of this method train once over every context (joint, merge), not context by context?"""
    return method in ONE_STAGE_METHODS


def context_name(index: int, short: bool = False) -> str:
    """A context as every face names it: numbered from 0 (`c2`, `context 2`), as in run.json."""
    return f"c{index}" if short else f"context {index}"


def stage_name(stage: int, once: bool, short: bool = True) -> str:
    """The label of row `stage` of an accuracy matrix: `all` for a run that trains once, else its context."""
    return "all" if once else context_name(stage, short)


Weights = Sequence[float] | None  # each context's share of an average (its classes), None: equal shares


def class_weights(benchmark: Any) -> list[float] | None:
    """How much each context counts in an average: its number of classes when the contexts are uneven
    (`benchmark.first_context_classes`, B50-10: the first context is half the classes, so half of the average,
    as the class-IL papers' accuracy over every test image of the classes seen); None when they are equal, as
    every other benchmark's are (a plain mean). `benchmark`: the config's section, a dict or the object."""
    def get(key: str) -> Any:
        return benchmark.get(key) if isinstance(benchmark, dict) else getattr(benchmark, key, None)

    first, per, contexts = get("first_context_classes"), get("classes_per_context"), get("contexts")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (first, per, contexts)) \
            or first == per:
        return None
    return [float(first)] + [float(per)] * (contexts - 1)


def _mean(values: Sequence[float], weights: Weights, start: int = 0) -> float | None:
    """The mean of `values` (contexts start, start+1, ...), weighted by their contexts' shares when given."""
    if not values:
        return None
    if weights is None or len(weights) < start + len(values):
        return sum(values) / len(values)
    shares = weights[start : start + len(values)]
    return sum(v * w for v, w in zip(values, shares, strict=True)) / sum(shares)


def seen(row: Sequence[float], stage: int, once: bool = False) -> Sequence[float]:
    """The accuracies of row `stage` on the contexts seen by then: all of them for a run that trains once."""
    return row if once else row[: stage + 1]


def seen_average(row: Sequence[float], stage: int, once: bool = False, weights: Weights = None) -> float | None:
    """Average accuracy over the contexts seen after stage `stage` (row `stage` of the matrix), each context
    counting by its share (`class_weights`)."""
    return _mean(seen(row, stage, once), weights)


def seen_averages(acc: Sequence[Sequence[float]], once: bool = False, weights: Weights = None) -> list[float]:
    """`seen_average` after each stage."""
    return [a for i, row in enumerate(acc) if (a := seen_average(row, i, once, weights)) is not None]


def old_new(row: Sequence[float], stage: int, weights: Weights = None) -> tuple[float | None, float | None]:
    """Accuracy on the old classes (contexts before `stage`, weighted as `seen_average`) and on the new ones
    (context `stage`) after stage `stage`: where a class-IL method's bias towards new classes shows."""
    if stage >= len(row):
        return None, None
    return _mean(row[:stage], weights), row[stage]


def final_avg_acc(acc: Sequence[Sequence[float]], weights: Weights = None) -> float | None:
    """Mean of the last row over all contexts."""
    return _mean(acc[-1], weights) if acc else None


def avg_incremental_acc(acc: Sequence[Sequence[float]], once: bool = False, weights: Weights = None) -> float | None:
    """Mean over rows i of row i's mean over the contexts seen so far (0..i; every context for a run that
    trains once)."""
    averages = seen_averages(acc, once, weights)
    return sum(averages) / len(averages) if averages else None


def avg_forgetting(acc: Sequence[Sequence[float]]) -> float | None:
    """Mean over old contexts j < T-1 of (best accuracy on j before the last context) - (final accuracy on j)."""
    t = len(acc)
    if t < 2:
        return None
    drops = [max(acc[i][j] for i in range(j, t - 1)) - acc[t - 1][j] for j in range(t - 1)]
    return sum(drops) / len(drops)


def bwt(acc: Sequence[Sequence[float]]) -> float | None:
    """Backward transfer: mean over j < T-1 of acc[T-1][j] - acc[j][j] (negative = forgetting)."""
    t = len(acc)
    if t < 2:
        return None
    return sum(acc[t - 1][j] - acc[j][j] for j in range(t - 1)) / (t - 1)


def fwt(acc: Sequence[Sequence[float]], acc_init: Sequence[float] | None) -> float | None:
    """Forward transfer: mean over j >= 1 of acc[j-1][j] - acc_init[j], where acc_init is the accuracy of
    the untrained network (Lopez-Paz & Ranzato's b-bar)."""
    t = len(acc)
    if t < 2 or acc_init is None or len(acc_init) < t or any(len(row) < t for row in acc):
        return None  # an untrained accuracy or a column short of the contexts trained: no figure
    return sum(acc[j - 1][j] - acc_init[j] for j in range(1, t)) / (t - 1)


Point = Sequence[Any]  # (iteration, stage, [accuracy on each context])
RECOVERY_SHARE = 0.1  # recovered: back within this share of the drop (at least RECOVERY_FLOOR) of the boundary
RECOVERY_FLOOR = 0.01


def _by_stage(curve: Sequence[Point]) -> dict[int, list[Point]]:
    stages: dict[int, list[Point]] = {}
    for point in sorted(curve, key=lambda p: p[0]):
        stages.setdefault(int(point[1]), []).append(point)
    return stages


def stability_gap(curve: Sequence[Point]) -> dict[str, float | None]:
    """The largest drop of an old context j (< k) below its accuracy at the boundary into stage k, over the
    points of stage k, with where it happened and the iterations from the boundary until j is back within
    max(RECOVERY_FLOOR, RECOVERY_SHARE x drop) of that accuracy (None: not within the stage)."""
    stages = _by_stage(curve)
    best: tuple[float, int, int, float | None] | None = None  # drop, context, stage, recovery
    for k, points in stages.items():
        before = stages.get(k - 1)
        if not before:
            continue
        start, _, at_boundary = before[-1]
        for j in range(min(k, len(at_boundary))):
            accs = [p[2][j] for p in points]
            low = min(range(len(accs)), key=accs.__getitem__)
            drop = at_boundary[j] - accs[low]
            if best is not None and drop <= best[0]:
                continue
            tolerance = max(RECOVERY_FLOOR, RECOVERY_SHARE * drop)
            back = next((p[0] for p in points[low:] if p[2][j] >= at_boundary[j] - tolerance), None)
            best = (drop, j, k, None if back is None else back - start)
    if best is None:
        return {"stability_gap": None, "stability_gap_context": None, "stability_gap_stage": None,
                "stability_gap_recovery": None}
    drop, j, k, recovery = best
    return {"stability_gap": max(drop, 0.0), "stability_gap_context": j, "stability_gap_stage": k,
            "stability_gap_recovery": recovery}


def min_acc(curve: Sequence[Point]) -> float | None:
    """min-ACC: mean over the contexts j learned before the last stage of j's lowest accuracy at any point
    after stage j ended."""
    stages = _by_stage(curve)
    if not stages:
        return None
    last = max(stages)
    lows = []
    for j in range(last):
        after = [p[2][j] for k, points in stages.items() if k > j for p in points if j < len(p[2])]
        if after:
            lows.append(min(after))
    return sum(lows) / len(lows) if lows else None


def summarize(acc: Sequence[Sequence[float]], acc_init: Sequence[float] | None = None,
              curve: Sequence[Point] | None = None, *, once: bool = False,
              contexts: int | None = None, weights: Weights = None,
              side: Mapping[str, Sequence[Sequence[float]]] | None = None) -> dict[str, float | None]:
    """Every metric of a run; the continual-evaluation ones only for a run that has a curve.

    `once`: the run trains one stage over every context (`trains_once`). `contexts`: how many contexts the run
    was to train; a run with fewer rows ended early (or is still going), and its final average over every
    context would count contexts it never trained, so it is None: `seen_avg_acc`, the average over the
    contexts seen, is its figure (for a run that trained every context the two are equal). `weights`: each
    context's share of the averages (`class_weights`; forgetting and the transfers stay means over contexts).
    `old_acc` / `new_acc`: the last row's accuracy on the classes of earlier contexts and of the last one trained.
    `side`: a class-IL run's side matrices (SIDE_MATRICES, rows as acc's): `task_acc`, `top5_acc`, ... are their
    last rows' averages, as `final_avg_acc` (none for a run that ended early, or a matrix short of acc's rows)."""
    complete = once or contexts is None or len(acc) >= contexts
    metrics = {
        "final_avg_acc": final_avg_acc(acc, weights) if complete else None,
        "seen_avg_acc": seen_average(acc[-1], len(acc) - 1, once, weights) if acc else None,
        "avg_incremental_acc": avg_incremental_acc(acc, once, weights),
        "avg_forgetting": None if once else avg_forgetting(acc),
        "bwt": None if once else bwt(acc),
        "fwt": None if once else fwt(acc, acc_init),
    }
    old, new = old_new(acc[-1], len(acc) - 1, weights) if acc and not once else (None, None)
    metrics["old_acc"], metrics["new_acc"] = old, new
    for key, rows in (side or {}).items():
        if rows:
            metrics[f"{key}_acc"] = final_avg_acc(rows, weights) if complete and len(rows) == len(acc) else None
    if curve:
        metrics.update(stability_gap(curve))
        metrics["min_acc"] = min_acc(curve)
    return metrics


def memory_mb(record: dict[str, Any]) -> float | None:
    """What a run held after its last context, in MB (10^6 bytes): the network, the method's own state (stored
    samples, importances, generators) and a frozen previous model; None for a record that does not say."""
    memory = record.get("memory")
    if not isinstance(memory, dict) or not memory:
        return None
    values = [v for v in memory.values() if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    return sum(values) / 1e6 if values else None


def mean_sem(values: Sequence[Any]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean over the finite numbers among `values` (None, NaN and the rest are no
    figure): (None, None) without one, (x, None) for a single run, whose spread is unknown."""
    numbers = [float(v) for v in values
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not numbers:
        return None, None
    if len(numbers) == 1:
        return numbers[0], None
    return statistics.mean(numbers), statistics.stdev(numbers) / math.sqrt(len(numbers))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


@dataclass(frozen=True)
class RunFigures:
    """What every face shows of one run record (a run.json as a dict, running or ended): the headline, the
    per-stage averages and the name of the score. Computed from the accuracy matrix by `summarize`, so a
    record written by any cltui reads the same everywhere."""

    score: str  # "accuracy", or "R²" for a regression benchmark
    once: bool  # trained once over every context (joint, merge)
    stages: int  # rows of the accuracy matrix
    contexts: int  # contexts the run was to train (1 stage for a run that trains once)
    metrics: dict[str, float | None]
    weights: tuple[float, ...] | None = None  # each context's share of an average (`class_weights`)
    scenario: str | None = None  # "class", "task" or "domain", as the record's config says

    @property
    def complete(self) -> bool:
        return self.once or self.stages >= self.contexts

    @property
    def headline(self) -> float | None:
        """The run's one figure: the final average over every context, or for a run that has not trained every
        context (running, cancelled, failed) the average over the contexts it saw."""
        return self.metrics["final_avg_acc"] if self.complete else self.metrics["seen_avg_acc"]

    @property
    def old_new_rows(self) -> bool:
        """Whether the matrix's rows get their old / new classes' accuracy beside them: class-IL, context by
        context, past the first."""
        return self.scenario == "class" and not self.once and self.stages > 1

    @property
    def seen_only(self) -> bool:
        """The headline is an average over the contexts seen, not over every context."""
        return not self.complete and self.headline is not None

    @property
    def progress(self) -> str:
        """`3/5` contexts trained (`1/1` for a run that trains once)."""
        return f"{self.stages}/{1 if self.once else self.contexts}"

    def stage_label(self, stage: int, short: bool = True) -> str:
        return stage_name(stage, self.once, short)

    def averages(self, matrix: Sequence[Sequence[float]]) -> list[float]:
        return seen_averages(matrix, self.once, self.weights)

    def seen_average(self, row: Sequence[float], stage: int) -> float | None:
        return seen_average(row, stage, self.once, self.weights)

    def old_new(self, row: Sequence[float], stage: int) -> tuple[float | None, float | None]:
        """Old and new classes' accuracy after `stage` (None, None for a run that trains once)."""
        return (None, None) if self.once else old_new(row, stage, self.weights)


def record_matrix(record: dict[str, Any], key: str = "acc_matrix") -> list[list[float]]:
    """A record's accuracy matrix (or another of its matrices), the rows that hold figures only."""
    rows = record.get(key)
    if not isinstance(rows, list):
        return []
    out = []
    for row in rows:
        if not isinstance(row, list) or not row:
            continue
        values = [_number(a) for a in row]
        if any(v is None for v in values):
            continue
        out.append([v for v in values if v is not None])
    return out


def run_figures(record: dict[str, Any]) -> RunFigures:
    """The figures of a run record; any field may be missing (a run that has just started)."""
    from core.schema.limits import score_name  # torch-free: the benchmarks' table

    def section(data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        return value if isinstance(value, dict) else {}

    config = section(record, "config")
    method, bench = section(config, "method"), section(config, "benchmark")
    once = trains_once(method.get("name"))
    matrix = record_matrix(record)
    contexts = bench.get("contexts")
    if not isinstance(contexts, int) or isinstance(contexts, bool) or contexts < 1:
        contexts = len(matrix[0]) if matrix else len(matrix)
    curve = record.get("acc_curve") if isinstance(record.get("acc_curve"), list) else None
    init = record.get("acc_init") if isinstance(record.get("acc_init"), list) else None
    weights = class_weights(bench)  # shares that do not cover a row are not used (`_mean`)
    side = {key: record_matrix(record, f"{key}_matrix") for key in SIDE_MATRICES}
    try:
        metrics = summarize(matrix, init, curve, once=once, contexts=contexts, weights=weights, side=side)
    except (TypeError, ValueError, IndexError):  # a damaged curve or acc_init: the matrix's figures still stand
        metrics = summarize(matrix, once=once, contexts=contexts, weights=weights, side=side)
    name = bench.get("name")
    return RunFigures(score_name(name if isinstance(name, str) else None), once, len(matrix),
                      contexts, metrics, None if weights is None else tuple(weights),
                      config.get("scenario") if isinstance(config.get("scenario"), str) else None)
