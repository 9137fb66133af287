"""Class-IL as the CIFAR-100 papers run it: an uneven first context (B50-10), the seed-1993 class order, a total
memory shared by the classes seen, and the methods WA, ER-ACE and GDumb (their formulas on tiny tensors, then a
short run of each on digits)."""

from __future__ import annotations

import copy

import pytest
import torch

from core.engine.data import build_benchmark
from core.engine.scenarios import ScenarioView
from core.methods.er_ace import ace_mask
from core.methods.gdumb import GreedyMemory, gdumb_lr
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import exemplar_memory, random_order
from core.methods.wa import align_weights
from core.schema.config import ConfigError, validate_config
from core.schema.presets import build_config
from tests.helpers.class_il import B5_1, CPU, F0, C, T, b5_run, context, tiny
from tests.helpers.data import make_cifar100, vouch
from tests.helpers.syncs import HostSyncs

PAPERS_CIFAR100_ORDER = [68, 56, 78, 8, 23, 84, 90, 65, 74, 76]  # numpy, seed 1993: PyCIL's logs print it


# --- the protocol ------------------------------------------------------------------------------------------


def test_b50_10_puts_half_the_classes_in_the_first_context_and_counts_every_context():
    b = build_config("cifar100-b50-10").benchmark
    assert (b.contexts, b.first_context_classes, b.classes_per_context, b.total_classes) == (6, 50, 10, 100)
    b = build_config(B5_1).benchmark
    assert (b.contexts, b.first_context_classes, b.classes_per_context, b.total_classes) == (6, 5, 1, 10)
    # without classes_per_context, the other contexts share what the first one leaves
    b = validate_config({"benchmark": {"contexts": 4, "first_context_classes": 4}}).benchmark
    assert (b.classes_per_context, b.total_classes) == (2, 10)


@pytest.mark.parametrize(("benchmark", "field", "fix"), [
    ({"contexts": 7, "classes_per_context": 1}, "benchmark.first_context_classes", "set benchmark.contexts to 6"),
    ({"contexts": 12}, "benchmark.contexts", "set benchmark.contexts to at most 6"),
    ({"contexts": 2, "first_context_classes": 10}, "benchmark.first_context_classes", "give fewer"),
    ({"protocol": "permuted"}, "benchmark.first_context_classes", "leave it unset"),
])
def test_an_uneven_first_context_that_does_not_add_up_is_refused_in_one_line(benchmark, field, fix):
    with pytest.raises(ConfigError) as caught:
        validate_config({"benchmark": {"name": "digits", "first_context_classes": 5, **benchmark}})
    assert caught.value.field == field and fix in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_method_that_counts_equal_contexts_is_refused_an_uneven_first_one():
    with pytest.raises(ConfigError) as caught:
        build_config(B5_1, method="lwf")
    assert caught.value.field == "benchmark.first_context_classes"
    assert "lwf assumes contexts of equal size" in str(caught.value) and "wa" in str(caught.value)
    assert build_config(B5_1, method="icarl").benchmark.first_context_classes == 5  # reads them from the scenario


def test_the_seed_1993_numpy_shuffle_gives_the_papers_cifar100_order(tmp_path, monkeypatch):
    make_cifar100(tmp_path, per_class_train=1, per_class_test=1)
    vouch(monkeypatch, tmp_path)
    cfg = build_config("cifar100-b50-10", overrides=[f"benchmark.data_dir={tmp_path}"])
    bench = build_benchmark(cfg.benchmark)
    assert [len(c.classes) for c in bench.contexts] == [50, 10, 10, 10, 10, 10]
    assert bench.contexts[0].classes[:10] == PAPERS_CIFAR100_ORDER
    assert [c.labels for c in bench.contexts] == [(0, 50), (50, 60), (60, 70), (70, 80), (80, 90), (90, 100)]
    assert bench.total_classes == 100


# --- the scenarios over an uneven first context ---------------------------------------------------------------


def test_each_context_owns_its_labels_after_an_uneven_first_one():
    view = ScenarioView("class", C, T, first_context_classes=F0)
    assert [view.labels(k) for k in range(T)] == [(0, 5), (5, 6), (6, 7), (7, 8), (8, 9), (9, 10)]
    assert [view.classes_seen(k) for k in range(T)] == [5, 6, 7, 8, 9, 10]
    assert view.context_of(torch.arange(10)).tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]
    wide = ScenarioView("class", 10, 6, first_context_classes=50)
    assert wide.head_size == 100 and wide.labels(1) == (50, 60)
    assert wide.context_of(torch.tensor([49, 50, 99])).tolist() == [0, 1, 5]


def test_task_il_masks_and_evaluates_each_context_on_its_own_outputs():
    view = ScenarioView("task", C, T, first_context_classes=F0)
    logits = torch.randn(3, view.head_size)
    out, target = view.train_view(logits, torch.tensor([0, 3, 4]), 0)
    assert torch.equal(out, logits[:, :5]) and target.tolist() == [0, 3, 4]
    out, target = view.eval_view(logits, torch.tensor([7, 7, 7]), 3, trained=5)
    assert torch.equal(out, logits[:, 7:8]) and target.tolist() == [0, 0, 0]
    mixed, _ = view.train_view(logits, torch.tensor([2, 5, 9]), 5, context_ids=torch.tensor([0, 1, 5]))
    assert torch.isfinite(mixed).tolist() == [[True] * 5 + [False] * 5,  # a replayed sample of the first context
                                              [False] * 5 + [True] + [False] * 4,
                                              [False] * 9 + [True]]


def test_class_il_lets_the_classes_seen_compete_and_distils_the_old_ones():
    view = ScenarioView("class", C, T, first_context_classes=F0)
    logits = torch.randn(2, view.head_size)
    assert view.train_view(logits, torch.tensor([0, 4]), 0)[0].shape[1] == 5
    assert view.eval_view(logits, torch.tensor([1, 2]), 0, trained=3)[0].shape[1] == 8  # every context evaluated
    assert [view.trained_outputs(k) for k in range(T)] == [5, 6, 7, 8, 9, 10]
    assert [view.old_outputs(k) for k in range(T)] == [0, 5, 6, 7, 8, 9]
    every = ScenarioView("class", C, T, active_classes="all", first_context_classes=F0)
    assert every.trained_outputs(0) == every.old_outputs(1) == 10


def test_domain_il_folds_the_first_context_onto_the_shared_head():
    view = ScenarioView("domain", 2, 3, first_context_classes=4)  # labels [0, 4), [4, 6), [6, 8)
    assert view.head_size == 2
    assert view.train_view(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]), 0)[1].tolist() == [0, 1, 0, 1]


# --- the memory ---------------------------------------------------------------------------------------------


def test_a_total_memory_is_shared_by_the_classes_seen_and_shrinks_as_classes_arrive():
    memory = exemplar_memory(build_config(B5_1, method="wa").method, CPU)
    gen = torch.Generator().manual_seed(0)
    for classes in ([0, 1, 2, 3, 4], [5], [6]):
        y = torch.tensor([c for c in classes for _ in range(60)])
        memory.add_classes(torch.randn(len(y), 1, 8, 8), y, torch.zeros_like(y), random_order(y, classes, gen))
        seen = classes[-1] + 1
        assert torch.bincount(memory.y).tolist() == [200 // seen] * seen  # 40 each, then 33, then 28
        assert len(memory) <= 200


# --- WA -------------------------------------------------------------------------------------------------------


def test_weight_aligning_gives_the_new_classes_the_old_classes_mean_norm():
    weight = torch.cat([torch.full((3, 4), 0.5), torch.tensor([[2.0, 0, 0, 0], [0, 6.0, 0, 0]])])  # norms 1; 2, 6
    old_rows = weight[:3].clone()
    gamma = align_weights(weight, old=3, seen=5)
    assert gamma == pytest.approx(0.25)
    assert weight[3:].norm(dim=1).mean() == pytest.approx(weight[:3].norm(dim=1).mean())
    assert torch.equal(weight[:3], old_rows)  # the old classes are untouched


def test_wa_keeps_the_head_non_negative_without_bias_and_aligns_after_the_second_context():
    wa, model = tiny("wa")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    previous = None
    for k, labels in enumerate([[0, 1, 2, 3, 4], [5]]):
        ctx = context(k, labels, seed=k)
        info = ContextInfo(k, ctx, previous, lambda e: None)
        for _ in range(5):
            optimizer.zero_grad()
            wa.loss(Batch(ctx.x_train, ctx.y_train, k), info).backward()
            optimizer.step()
            wa.after_step(info)
            assert (model.head.weight >= 0).all() and (model.head.bias == 0).all()
        wa.after_context(info)
        previous = copy.deepcopy(model).eval().requires_grad_(False)
    norms = model.head.weight.detach().norm(dim=1)
    assert norms[5].item() == pytest.approx(norms[:5].mean().item(), rel=1e-5)  # the new class aligned to the old ones
    assert torch.bincount(wa.buffer.y).tolist() == [8] * 6  # every class's exemplars (fewer than its share)


# --- ER-ACE ---------------------------------------------------------------------------------------------------


def test_the_ace_mask_keeps_the_classes_of_the_batch_and_those_not_seen_yet():
    keep = ace_mask(torch.tensor([5, 7, 7]), seen=8, outputs=10)
    assert keep.tolist() == [False] * 5 + [True, False, True, True, True]


@pytest.mark.parametrize(("method", "old_moved"), [("er-ace", False), ("er", True)])
def test_er_ace_leaves_the_old_classes_logits_alone_on_incoming_data(method, old_moved):
    """On a batch of the new class only (buffer still empty), ER's cross-entropy pushes the old classes' head rows
    down; ER-ACE's does not touch them."""
    m, model = tiny(method, "method.budget=4", preset="split-digits")  # per class: filled after the context
    ctx = context(1, [5], seed=1)
    m.loss(Batch(ctx.x_train, ctx.y_train, 1), ContextInfo(1, ctx, None, lambda e: None)).backward()
    assert (model.head.weight.grad[:5].abs().sum() > 0).item() is old_moved


@pytest.mark.parametrize("method", ["wa", "er-ace"])
def test_a_step_of_wa_and_er_ace_never_waits_for_the_device(method):
    """With exemplars stored and a previous model, a step (loss, backward, the hooks around the optimiser step)
    reads nothing back to the host: on a GPU it would not wait."""
    m, model = tiny(method)
    first, second = context(0, [0, 1, 2, 3, 4]), context(1, [5], seed=1)
    info = ContextInfo(0, first, None, lambda e: None)
    m.loss(Batch(first.x_train, first.y_train, 0), info)
    m.after_context(info)
    info = ContextInfo(1, second, copy.deepcopy(model).eval().requires_grad_(False), lambda e: None)
    detector = HostSyncs()
    with detector:
        loss = m.loss(Batch(second.x_train, second.y_train, 1), info)
        loss.backward()
        m.after_backward(info)
        m.after_step(info)
    assert detector.calls == []
    assert len(m.buffer) > 0


# --- GDumb ----------------------------------------------------------------------------------------------------


def test_the_greedy_memory_stays_balanced_over_the_classes_seen():
    memory = GreedyMemory(10, CPU, seed=0)
    y = torch.tensor([0] * 20 + [1] * 20 + [2] * 3)
    x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1)
    memory.offer(x, y, torch.arange(len(y)))
    counts = memory.counts()
    assert sum(counts.values()) == len(memory) == 10
    assert max(counts.values()) - min(counts.values()) <= 1 and counts[2] == 3  # the late class got its share
    assert torch.equal(y[memory.x.view(-1).long()], memory.y)  # inputs and labels stay paired
    assert torch.bincount(memory.y).tolist() == [counts[c] for c in range(3)]


def test_gdumb_learning_rate_warms_up_then_restarts_after_one_two_four_passes():
    rates = [gdumb_lr(e, 0.05, 0.0005) for e in range(8)]
    assert rates[0] == pytest.approx(0.005) and rates[1] == rates[2] == rates[4] == pytest.approx(0.05)
    assert rates[3] == pytest.approx((0.05 + 0.0005) / 2) and rates[5] > rates[6] > rates[7] > 0.0005


def test_gdumb_retrains_from_scratch_not_from_what_it_learned_before():
    """Whatever the network holds before the retraining (here: weights scrambled), the retrained network is the
    same: the one trained on the memory from the initial weights."""
    ctx = context(0, [0, 1, 2, 3, 4], seed=3)
    retrained = []
    for scramble in (False, True):
        gdumb, model = tiny("gdumb", "method.epochs=3", "method.memory_total=20")
        if scramble:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p))
        gdumb.after_context(ContextInfo(0, ctx, None, lambda e: None))
        retrained.append(copy.deepcopy(model.state_dict()))
        assert sorted(gdumb.memory.counts().values()) == [4] * 5
    for name, value in retrained[0].items():
        assert torch.equal(value, retrained[1][name]), name
    assert not torch.equal(retrained[0]["head.weight"], gdumb.initial["head.weight"])  # it did train


# --- short runs on digits -----------------------------------------------------------------------------------


def test_a_b5_1_run_trains_half_the_classes_first_and_evaluates_every_context():
    record = b5_run("none")
    assert [c["classes"] for c in record["contexts"]] == [[4, 2, 7, 6, 0], [3], [5], [8], [9], [1]]
    matrix = record["acc_matrix"]
    assert len(matrix) == 6 and all(len(row) == 6 for row in matrix)
    assert matrix[0][0] > 0.5  # the first context's five classes learned
    assert matrix[-1][0] < matrix[0][0]  # and forgotten by fine-tuning


@pytest.mark.parametrize(("method", "overrides"), [("wa", ()), ("er-ace", ()), ("gdumb", ("method.epochs=8",))])
def test_each_method_trains_end_to_end_on_b5_1_and_keeps_more_than_fine_tuning(method, overrides):
    record = b5_run(method, *overrides)
    assert len(record["acc_matrix"]) == 6
    assert record["metrics"]["final_avg_acc"] > b5_run("none")["metrics"]["final_avg_acc"]
