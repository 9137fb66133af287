"""FOSTER: the class weights from effective numbers, the balanced distillation, the boosting stage's frozen
extractor beside a new one, the compression back to one extractor, and a short run on digits in the B5-1 shape."""

from __future__ import annotations

import pytest
import torch

from core.methods.foster import balanced_distillation, class_balance
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.distill import distillation
from tests.helpers.class_il import b5_run, context, learn, tiny


def test_classes_with_fewer_samples_weigh_more_and_the_weights_average_one():
    w = class_balance([20, 20, 500, 500], beta=0.96)
    assert w.sum().item() == pytest.approx(4.0)
    assert w[0] == w[1] > w[2] == w[3]
    assert class_balance([7, 7, 7], beta=0.96).tolist() == pytest.approx([1.0] * 3)
    assert class_balance([5, 500], beta=0.0).tolist() == pytest.approx([1.0, 1.0])


def test_the_balanced_distillation_with_equal_weights_is_plain_distillation():
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    plain = distillation(student, teacher, 2.0) / 4.0
    assert balanced_distillation(student, teacher, torch.ones(5), 2.0).item() == pytest.approx(plain.item())
    # weighing up a class the teacher favours little moves the target towards it: the student that agrees costs less
    leaning = torch.tensor([1.0, 1, 1, 1, 50])
    agree = teacher.clone()
    agree[:, 4] += 5
    assert balanced_distillation(agree, teacher, leaning, 2.0) < balanced_distillation(teacher, teacher, leaning, 2.0)


def test_boosting_trains_a_new_extractor_beside_the_frozen_one_then_compresses_back_to_one():
    foster, model = tiny("foster", "method.memory_total=20", "method.compression_iterations=300", "train.batch_size=32")
    learn(foster, model, 0, context(0, [0, 1, 2, 3, 4]), steps=20)
    kept = {k: v.clone() for k, v in model.extractor.state_dict().items()}
    ctx = context(1, [5], seed=1)
    info = ContextInfo(1, ctx, None, lambda e: None)
    foster.before_context(info)
    assert model.boosting and torch.equal(model.boost_head.weight[:5, : model.dim], model.head.weight[:5])
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(10):
        optimiser.zero_grad()
        foster.loss(Batch(ctx.x_train, ctx.y_train, 1), info).backward()
        optimiser.step()
    assert all(torch.equal(v, kept[k]) for k, v in model.extractor.state_dict().items())  # F frozen
    assert any(not torch.equal(v, kept[k]) for k, v in model.booster.state_dict().items())  # F_new learns
    x = torch.cat([ctx.x_train, foster.buffer.x])
    model.eval()
    with torch.no_grad():  # the compression's targets: the pair's softmax at T, reweighted towards the rare classes
        weights = class_balance(foster.counts(info), foster.params.beta2)
        target = (torch.softmax(model(x)[:, :6] / foster.params.temperature, 1) * weights).argmax(1)
    before = (model.head(model.extractor(x))[:, :6].argmax(1) == target).float().mean().item()
    foster.after_context(info)
    assert not model.boosting  # one extractor again, the student
    assert model(x).shape == (len(x), model.head.out_features)
    agreement = (model(x)[:, :6].argmax(1) == target).float().mean().item()
    assert agreement > 0.9 and agreement > before, (before, agreement)  # the student learnt the pair's decisions
    assert foster.buffer.classes == [0, 1, 2, 3, 4, 5]


def test_foster_trains_end_to_end_on_b5_1_and_keeps_more_than_fine_tuning():
    foster, none = b5_run("foster"), b5_run("none")
    assert [len(c["classes"]) for c in foster["contexts"]] == [5, 1, 1, 1, 1, 1]
    assert foster["metrics"]["final_avg_acc"] > none["metrics"]["final_avg_acc"] + 0.3
    assert len(foster["nme_matrix"]) == 6 and foster["memory"]["method"] > 0


def test_each_boosting_stage_starts_with_a_fresh_optimiser_state():
    # The booster and its heads start anew each context; Adam's moments of the last context would push them. The run
    # must read as one with train.reset_optimizer set, whatever the config says.
    kept = b5_run("foster", "train.iterations=15", "method.compression_iterations=10")
    fresh = b5_run("foster", "train.iterations=15", "method.compression_iterations=10", "train.reset_optimizer=true")
    assert kept["config"]["train"]["optimizer"] == "adam" and not kept["config"]["train"]["reset_optimizer"]
    assert kept["acc_matrix"] == fresh["acc_matrix"]
