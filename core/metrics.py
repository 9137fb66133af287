"""Continual-learning metrics from the accuracy matrix.

`acc[i][j]` is the test accuracy on context j after training on context i (every j, future ones too).
Definitions: Lopez-Paz & Ranzato 2017 (BWT, FWT), Chaudhry et al. 2018 (average forgetting).
A metric that needs more rows than a run has (a joint run trains once) is None.
"""

from __future__ import annotations

from collections.abc import Sequence


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


def summarize(acc: Sequence[Sequence[float]], acc_init: Sequence[float] | None = None) -> dict[str, float | None]:
    return {
        "final_avg_acc": final_avg_acc(acc),
        "avg_incremental_acc": avg_incremental_acc(acc),
        "avg_forgetting": avg_forgetting(acc),
        "bwt": bwt(acc),
        "fwt": fwt(acc, acc_init),
    }
