"""Continual-learning metrics from the accuracy matrix.

`acc[i][j]` is the test accuracy on context j after training on context i (every j, future ones too).
Definitions: Lopez-Paz & Ranzato 2017 (BWT, FWT), Chaudhry et al. 2018 (average forgetting).
A metric that needs more rows than a run has (a joint run trains once) is None.

With continual evaluation (`train.eval_every`), `curve` holds points (iteration, stage, accuracy on each
context), the iteration counted from the run's first step and the stage being trained; the last point of a
stage is taken right after its last step. From it, De Lange et al. (ICLR 2023): the stability gap (the
largest drop of an old context's accuracy after a new stage starts, below where it stood at the boundary,
and how many iterations it takes to come back) and min-ACC (each old context's worst accuracy after it was
learned, averaged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def final_avg_acc(acc: Sequence[Sequence[float]]) -> float | None:
    """Mean of the last row over all contexts."""
    return sum(acc[-1]) / len(acc[-1]) if acc else None


def avg_incremental_acc(acc: Sequence[Sequence[float]]) -> float | None:
    """Mean over rows i of row i's mean over the contexts seen so far (0..i)."""
    if not acc:
        return None
    if len(acc) == 1:  # one training stage over every context (joint)
        return final_avg_acc(acc)
    return sum(sum(row[: i + 1]) / (i + 1) for i, row in enumerate(acc)) / len(acc)


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
    if t < 2 or acc_init is None:
        return None
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
              curve: Sequence[Point] | None = None) -> dict[str, float | None]:
    """Every metric of a run; the continual-evaluation ones only for a run that has a curve."""
    metrics = {
        "final_avg_acc": final_avg_acc(acc),
        "avg_incremental_acc": avg_incremental_acc(acc),
        "avg_forgetting": avg_forgetting(acc),
        "bwt": bwt(acc),
        "fwt": fwt(acc, acc_init),
    }
    if curve:
        metrics.update(stability_gap(curve))
        metrics["min_acc"] = min_acc(curve)
    return metrics
