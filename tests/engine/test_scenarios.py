"""Tests for core/engine/scenarios.py: how task-, domain- and class-IL slice logits and map labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.engine.scenarios import ScenarioView

C, T = 2, 5  # classes per context, contexts: context k owns global labels [2k, 2k+2)


def logits_for(n: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


def labels_of(context: int, n: int = 6, c: int = C) -> torch.Tensor:
    return context * c + torch.arange(n) % c


@pytest.mark.parametrize("kind, head", [("task", 10), ("domain", 2), ("class", 10)])
def test_head_size(kind, head):
    assert ScenarioView(kind, C, T).head_size == head


def test_head_size_other_shape():
    assert ScenarioView("class", 10, 10).head_size == 100
    assert ScenarioView("domain", 10, 10).head_size == 10


def test_unknown_scenario():
    with pytest.raises(ValueError, match="sideways"):
        ScenarioView("sideways", C, T)


@pytest.mark.parametrize("k", range(T))
def test_task_il_train_view_slices_the_context_outputs(k):
    view = ScenarioView("task", C, T)
    logits, y = logits_for(6, view.head_size), labels_of(k)
    out, target = view.train_view(logits, y, k)
    assert torch.equal(out, logits[:, k * C:(k + 1) * C])
    assert torch.equal(target, y - k * C)
    assert target.min() >= 0 and target.max() < C


@pytest.mark.parametrize("k", range(T))
def test_domain_il_train_view_keeps_c_outputs(k):
    view = ScenarioView("domain", C, T)
    logits, y = logits_for(6, view.head_size), labels_of(k)
    out, target = view.train_view(logits, y, k)
    assert torch.equal(out, logits)
    assert out.shape == (6, C)
    assert torch.equal(target, y % C)
    assert torch.equal(target, torch.tensor([0, 1, 0, 1, 0, 1]))


@pytest.mark.parametrize("k", range(T))
def test_class_il_train_view_sees_classes_so_far(k):
    view = ScenarioView("class", C, T)
    logits, y = logits_for(6, view.head_size), labels_of(k)
    out, target = view.train_view(logits, y, k)
    assert torch.equal(out, logits[:, :(k + 1) * C])
    assert torch.equal(target, y)  # global labels
    assert target.max() < out.shape[1]


@pytest.mark.parametrize("trained", range(T))
@pytest.mark.parametrize("j", range(T))
def test_class_il_eval_view(j, trained):
    view = ScenarioView("class", C, T)
    logits, y = logits_for(4, view.head_size), labels_of(j, 4)
    out, target = view.eval_view(logits, y, j, trained)
    assert out.shape[1] == (max(trained, j) + 1) * C
    assert torch.equal(out, logits[:, :(max(trained, j) + 1) * C])
    assert torch.equal(target, y)


@pytest.mark.parametrize("trained", [0, 2, 4])
@pytest.mark.parametrize("j", [0, 3])
def test_task_and_domain_eval_views_ignore_training_progress(j, trained):
    y = labels_of(j, 4)
    task = ScenarioView("task", C, T)
    logits = logits_for(4, task.head_size)
    out, target = task.eval_view(logits, y, j, trained)
    assert torch.equal(out, logits[:, j * C:(j + 1) * C]) and torch.equal(target, y - j * C)
    domain = ScenarioView("domain", C, T)
    logits = logits_for(4, domain.head_size)
    out, target = domain.eval_view(logits, y, j, trained)
    assert torch.equal(out, logits) and torch.equal(target, y % C)


def test_eval_and_train_views_agree_on_the_current_context():
    for kind in ("task", "domain", "class"):
        view = ScenarioView(kind, C, T)
        logits, y = logits_for(6, view.head_size), labels_of(2)
        a, ya = view.train_view(logits, y, 2)
        b, yb = view.eval_view(logits, y, 2, 2)
        assert torch.equal(a, b) and torch.equal(ya, yb)


def _mixed_batch(seed: int = 1, n: int = 40, c: int = C, t: int = T):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, t, (n,), generator=g)
    y = ids * c + torch.randint(0, c, (n,), generator=g)
    return ids, y


def test_task_il_mixed_batch_masks_other_contexts():
    view = ScenarioView("task", C, T)
    ids, y = _mixed_batch()
    logits = logits_for(len(y), view.head_size, seed=2)
    out, target = view.train_view(logits, y, context=T - 1, context_ids=ids)
    for i, k in enumerate(ids.tolist()):
        own = slice(k * C, (k + 1) * C)
        assert torch.equal(out[i, own], logits[i, own])
        others = torch.ones(view.head_size, dtype=torch.bool)
        others[own] = False
        assert torch.isneginf(out[i, others]).all()
    assert torch.equal(target, y)


@pytest.mark.parametrize("c, t", [(2, 5), (10, 3)])
def test_task_il_mixed_batch_loss_equals_per_context_loss(c, t):
    view = ScenarioView("task", c, t)
    ids, y = _mixed_batch(seed=3, n=64, c=c, t=t)
    logits = logits_for(len(y), view.head_size, seed=4).requires_grad_(True)
    out, target = view.train_view(logits, y, context=t - 1, context_ids=ids)
    loss = F.cross_entropy(out, target)
    (grad,) = torch.autograd.grad(loss, logits)

    # Reference: each sample on its own context's slice, with its label within the context.
    ref_logits = logits.detach().clone().requires_grad_(True)
    per_sample = [
        F.cross_entropy(ref_logits[i:i + 1, k * c:(k + 1) * c], y[i:i + 1] - k * c)
        for i, k in enumerate(ids.tolist())
    ]
    ref = torch.stack(per_sample).mean()
    (ref_grad,) = torch.autograd.grad(ref, ref_logits)

    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-6)  # no gradient into other contexts' outputs


def test_task_il_mixed_batch_of_one_context_matches_single_context_view():
    view = ScenarioView("task", C, T)
    y = labels_of(3)
    logits = logits_for(len(y), view.head_size)
    mixed, mt = view.train_view(logits, y, 3, context_ids=torch.full((len(y),), 3))
    single, st = view.train_view(logits, y, 3)
    assert F.cross_entropy(mixed, mt).item() == pytest.approx(F.cross_entropy(single, st).item(), rel=1e-6)


def test_domain_il_mixed_batch_maps_labels_within_context():
    view = ScenarioView("domain", C, T)
    ids, y = _mixed_batch()
    logits = logits_for(len(y), view.head_size)
    out, target = view.train_view(logits, y, context=T - 1, context_ids=ids)
    assert torch.equal(out, logits)
    assert torch.equal(target, y - ids * C)
    assert torch.equal(target, y % C)


def test_class_il_mixed_batch_uses_global_labels_over_all_seen_classes():
    view = ScenarioView("class", C, T)
    ids, y = _mixed_batch()
    logits = logits_for(len(y), view.head_size)
    out, target = view.train_view(logits, y, context=T - 1, context_ids=ids)
    assert torch.equal(out, logits) and torch.equal(target, y)


@pytest.mark.parametrize("k", range(T))
def test_class_il_with_every_class_active_trains_the_whole_head(k):
    """van de Ven's default `--active-classes all`: classes still to come are negatives from the start."""
    view = ScenarioView("class", C, T, active_classes="all")
    logits, y = logits_for(6, view.head_size), labels_of(k)
    out, target = view.train_view(logits, y, k)
    assert torch.equal(out, logits) and torch.equal(target, y)
    assert view.trained_outputs(k) == view.old_outputs(k) == C * T
    assert ScenarioView("class", C, T).trained_outputs(k) == (k + 1) * C
    assert ScenarioView("class", C, T).old_outputs(k) == k * C
    # testing is unchanged: after training context k, the classes seen so far compete
    assert view.eval_view(logits, y, k, k)[0].shape == (6, (k + 1) * C)


def test_active_classes_leaves_task_and_domain_alone():
    for kind in ("task", "domain"):
        view, plain = ScenarioView(kind, C, T, active_classes="all"), ScenarioView(kind, C, T)
        logits, y = logits_for(6, view.head_size), labels_of(2)
        pairs = zip(view.train_view(logits, y, 2), plain.train_view(logits, y, 2), strict=False)
        assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match="sometimes"):
        ScenarioView("class", C, T, active_classes="sometimes")
