"""Tests for core/runs/metrics.py on accuracy matrices computed by hand.

acc[i][j] = accuracy on context j after training context i (future contexts j > i included).
"""

from __future__ import annotations

import pytest

from core.runs.metrics import (
    avg_forgetting,
    avg_incremental_acc,
    bwt,
    class_weights,
    final_avg_acc,
    fwt,
    mean_sem,
    memory_mb,
    old_new,
    run_figures,
    seen_average,
    summarize,
    trains_once,
)

# Rows: after context 0, 1, 2. Entries above the diagonal are future contexts (used by FWT only).
# acc[1][0] > acc[0][0]: context 1 first helped context 0, so its best accuracy is not on the diagonal,
# which tells Chaudhry's forgetting (best earlier - final) apart from -BWT (diagonal - final).
ACC = [
    [0.90, 0.10, 0.20],
    [0.95, 0.80, 0.30],
    [0.50, 0.70, 0.95],
]
ACC_INIT = [0.10, 0.15, 0.05]


def test_final_avg_acc_by_hand():
    # mean of the last row: (0.50 + 0.70 + 0.95) / 3 = 2.15 / 3
    assert final_avg_acc(ACC) == pytest.approx(2.15 / 3)


def test_avg_incremental_acc_by_hand():
    # row 0 over context 0:        0.90
    # row 1 over contexts 0..1:    (0.95 + 0.80) / 2 = 0.875
    # row 2 over contexts 0..2:    2.15 / 3 = 0.716667
    # mean: (0.90 + 0.875 + 0.716667) / 3 = 0.830556 (future entries 0.10, 0.20, 0.30 not counted)
    assert avg_incremental_acc(ACC) == pytest.approx((0.90 + 0.875 + 2.15 / 3) / 3)


def test_avg_forgetting_by_hand():
    # context 0: best before the last context max(0.90, 0.95) = 0.95, final 0.50 -> 0.45
    # context 1: best before the last context max(0.80) = 0.80,       final 0.70 -> 0.10
    # the last context is not counted; mean (0.45 + 0.10) / 2 = 0.275
    assert avg_forgetting(ACC) == pytest.approx(0.275)


def test_bwt_by_hand():
    # context 0: final 0.50 - just learned 0.90 = -0.40
    # context 1: final 0.70 - just learned 0.80 = -0.10
    # mean: -0.25
    assert bwt(ACC) == pytest.approx(-0.25)


def test_forgetting_is_not_minus_bwt_when_the_best_is_off_the_diagonal():
    assert avg_forgetting(ACC) != pytest.approx(-bwt(ACC))


def test_fwt_by_hand():
    # context 1: before training it (row 0) 0.10 - untrained 0.15 = -0.05
    # context 2: before training it (row 1) 0.30 - untrained 0.05 =  0.25
    # mean: (-0.05 + 0.25) / 2 = 0.10
    assert fwt(ACC, ACC_INIT) == pytest.approx(0.10)


def test_fwt_needs_the_untrained_accuracies():
    assert fwt(ACC, None) is None


def test_summarize_by_hand():
    assert summarize(ACC, ACC_INIT) == pytest.approx({
        "final_avg_acc": 2.15 / 3,
        "seen_avg_acc": 2.15 / 3,
        "avg_incremental_acc": (0.90 + 0.875 + 2.15 / 3) / 3,
        "avg_forgetting": 0.275,
        "bwt": -0.25,
        "fwt": 0.10,
        "old_acc": (0.50 + 0.70) / 2,  # the last row on contexts 0-1
        "new_acc": 0.95,
    })
    assert summarize(ACC)["fwt"] is None


def test_perfect_memory_has_no_forgetting():
    # every context keeps the accuracy it had when it was learned
    acc = [
        [0.90, 0.00, 0.00],
        [0.90, 0.80, 0.00],
        [0.90, 0.80, 0.70],
    ]
    assert avg_forgetting(acc) == pytest.approx(0.0)
    assert bwt(acc) == pytest.approx(0.0)
    assert final_avg_acc(acc) == pytest.approx(0.8)
    # rows: 0.9, 0.85, 0.8 -> 0.85
    assert avg_incremental_acc(acc) == pytest.approx(0.85)


def test_complete_forgetting():
    acc = [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
    ]
    assert avg_forgetting(acc) == pytest.approx(1.0)
    assert bwt(acc) == pytest.approx(-1.0)
    assert final_avg_acc(acc) == pytest.approx(1 / 3)
    # rows: 1, 1/2, 1/3
    assert avg_incremental_acc(acc) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert fwt(acc, [0.0, 0.0, 0.0]) == pytest.approx(0.0)


def test_improving_old_contexts_gives_negative_forgetting_and_positive_bwt():
    acc = [
        [0.6, 0.0],
        [0.9, 0.8],
    ]
    assert avg_forgetting(acc) == pytest.approx(-0.3)
    assert bwt(acc) == pytest.approx(0.3)


def test_single_row_of_a_run_that_trains_once():
    acc = [[0.9, 0.5, 0.7]]  # a joint or merge run: one stage over every context
    metrics = summarize(acc, [0.1, 0.1, 0.1], once=True, contexts=3)
    assert metrics["avg_forgetting"] is None and metrics["bwt"] is None and metrics["fwt"] is None
    # every figure of the one row is the average over every context, never c0's 0.9
    assert metrics["final_avg_acc"] == metrics["seen_avg_acc"] == metrics["avg_incremental_acc"] \
        == pytest.approx(0.7)


def test_a_run_that_ended_early_has_no_final_average_over_contexts_it_never_trained():
    # cancelled after one of five contexts, c0 at 100%: not 20.0 (averaged over four untrained contexts)
    metrics = summarize([[1.0, 0.0, 0.0, 0.0, 0.0]], contexts=5)
    assert metrics["final_avg_acc"] is None
    assert metrics["seen_avg_acc"] == pytest.approx(1.0)
    assert metrics["avg_incremental_acc"] == pytest.approx(1.0)
    after_three = summarize(ACC, contexts=5)
    assert after_three["final_avg_acc"] is None
    assert after_three["seen_avg_acc"] == pytest.approx(2.15 / 3)
    assert after_three["avg_forgetting"] == pytest.approx(0.275)


def test_one_row_of_a_run_that_trains_context_by_context_is_context_0():
    # the same row as a joint run's, from a run cancelled after context 0: its average is over c0 only
    assert summarize([[0.9, 0.5, 0.7]], contexts=3)["seen_avg_acc"] == pytest.approx(0.9)
    assert trains_once("joint") and trains_once("merge") and not trains_once("cumulative")


def test_run_figures_headline_and_label():
    base = {"config": {"benchmark": {"name": "digits", "contexts": 5}, "method": {"name": "lwf"}}}
    cancelled = run_figures({**base, "acc_matrix": [[1.0, 0, 0, 0, 0], [0.5, 0.9, 0, 0, 0]]})
    assert cancelled.headline == pytest.approx(0.7) and cancelled.seen_only and cancelled.progress == "2/5"
    assert cancelled.stage_label(1) == "c1" and cancelled.score == "accuracy"
    merged = run_figures({"config": {"benchmark": {"name": "sine", "contexts": 3}, "method": {"name": "merge"}},
                          "acc_matrix": [[0.9, 0.5, 0.7]]})
    assert merged.headline == pytest.approx(0.7) and not merged.seen_only and merged.stage_label(0) == "all"
    assert merged.score == "R²" and merged.progress == "1/1"


def test_mean_sem_one_convention():
    assert mean_sem([]) == (None, None)
    assert mean_sem([0.5, None, float("nan"), True]) == (0.5, None)  # one figure: no spread
    mean, sem = mean_sem([0.2, 0.4])
    assert mean == pytest.approx(0.3) and sem == pytest.approx(0.1)


def test_empty_matrix_gives_no_metrics():
    assert summarize([]) == {"final_avg_acc": None, "seen_avg_acc": None, "avg_incremental_acc": None,
                             "avg_forgetting": None, "bwt": None, "fwt": None, "old_acc": None, "new_acc": None}


def test_metrics_keys_match_run_json():
    assert set(summarize(ACC, ACC_INIT)) == {"final_avg_acc", "seen_avg_acc", "avg_incremental_acc",
                                              "avg_forgetting", "bwt", "fwt", "old_acc", "new_acc"}


def test_uneven_contexts_count_by_their_classes():
    """B3-1 over 3 contexts (3, 1, 1 classes): averages over the classes seen, as the class-IL papers' accuracy
    over every test image of those classes; equal contexts keep the plain mean."""
    weights = class_weights({"first_context_classes": 3, "classes_per_context": 1, "contexts": 3})
    assert weights == [3.0, 1.0, 1.0]
    assert class_weights({"first_context_classes": 2, "classes_per_context": 2, "contexts": 5}) is None
    assert class_weights({"classes_per_context": 2, "contexts": 5}) is None
    acc = [[0.9, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.4, 1.0]]
    assert final_avg_acc(acc, weights) == pytest.approx((3 * 0.5 + 0.4 + 1.0) / 5)
    assert seen_average(acc[1], 1, weights=weights) == pytest.approx((3 * 0.6 + 0.8) / 4)
    assert avg_incremental_acc(acc, weights=weights) == pytest.approx((0.9 + 2.6 / 4 + 2.9 / 5) / 3)
    assert old_new(acc[2], 2, weights) == (pytest.approx((3 * 0.5 + 0.4) / 4), 1.0)
    assert old_new(acc[0], 0) == (None, 0.9)  # no old classes after the first context
    metrics = summarize(acc, weights=weights)
    assert metrics["old_acc"] == pytest.approx(1.9 / 4) and metrics["new_acc"] == 1.0
    assert metrics["avg_forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.4)) / 2)  # per context, unweighted
    assert summarize(acc, once=True)["old_acc"] is None


def test_the_memory_a_run_held_is_its_parts_added_in_megabytes():
    assert memory_mb({"memory": {"network": 1_500_000, "method": 500_000, "teacher": 1_500_000}}) == 3.5
    assert memory_mb({}) is None and memory_mb({"memory": {}}) is None  # a run of an older cltui
    assert memory_mb({"memory": {"network": "x", "method": -5, "teacher": True}}) is None  # a damaged record
