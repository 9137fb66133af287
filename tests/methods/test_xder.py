"""X-DER: the capping rule that writes a stored sample's logits of later heads, the present-head loss, the stored
logits brought up to date at the end of a context, the supervised contrastive term, and short runs on digits."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.xder import hinge_mean, supervised_contrastive, transplant
from core.schema.config import ConfigError
from core.schema.presets import build_config
from core.training import run
from tests.helpers.class_il import context, learn

CPU = torch.device("cpu")


def tiny_xder(*overrides: str):
    """X-DER on a 64-32 MLP over 8x8 inputs: 3 contexts of 2 classes, class-IL, 8 exemplars in all."""
    cfg = build_config("split-digits", method="xder", scenario="class", device="cpu",
                       overrides=["model.hidden=[32]", "method.memory_total=8", *overrides])
    view = ScenarioView("class", 2, 3)
    torch.manual_seed(0)
    model = method_class("xder").build_model(cfg, (1, 8, 8), view.head_size)
    return method_class("xder")(cfg.method, cfg, model, view, None, CPU), model


def test_later_heads_are_written_capped_at_gamma_times_the_true_class_logit():
    stored = torch.tensor([[4.0, 1.0, 0.0, 0.0], [2.0, 3.0, 0.0, 0.0]])
    fresh = torch.tensor([[9.0, 9.0, 8.0, 2.0], [9.0, 9.0, 1.0, 2.0]])
    out = transplant(stored, fresh, torch.tensor([0, 1]), 2, 4, gamma=0.5)
    assert out[0, 2:].tolist() == [2.0, 0.5]  # their largest (8) exceeded the truth (4): scaled to 0.5 * 4
    assert out[1, 2:].tolist() == [1.0, 2.0]  # below the truth (3): written as they are
    assert torch.equal(out[:, :2], stored[:, :2])  # the other heads untouched
    assert torch.equal(transplant(stored, fresh, torch.tensor([0, 1]), 0, 0, gamma=0.5), stored)  # no head at all


def test_the_incoming_batch_trains_the_present_head_only():
    """With the replay, consistency and constraint terms off, learning context 1 moves no head row but its own."""
    xder, model = tiny_xder("method.alpha=0", "method.beta=0", "method.lambd=0", "method.eta=0")
    learn(xder, model, 0, context(0, [0, 1]))
    before = model.head.weight.detach().clone()
    learn(xder, model, 1, context(1, [2, 3], seed=1))
    moved = (model.head.weight.detach() - before).abs().sum(1) > 0
    assert moved.tolist() == [False, False, True, True, False, False]


def test_every_stored_sample_keeps_its_past_logits_and_gets_the_later_heads_written_after_each_context():
    xder, model = tiny_xder()
    learn(xder, model, 0, context(0, [0, 1]))
    first = xder.buffer.logits.clone()
    assert xder.buffer.y.tolist() == [0] * 4 + [1] * 4 and first.shape == (8, 6)
    net = learn(xder, model, 1, context(1, [2, 3], seed=1), steps=5)
    buffer = xder.buffer
    old = (buffer.y < 2).nonzero().squeeze(1)
    assert len(old) == 4 and (buffer.y >= 2).sum() == 4  # 2 per class once 4 classes share 8
    kept = buffer.logits[old]
    # the past head as stored at the end of context 0 (rows are the first picks of each class)
    assert torch.allclose(kept[:, :2], first[[0, 1, 4, 5], :2])
    expected = transplant(kept, net(buffer.x[old]), buffer.y[old], 2, 6, xder.params.gamma)
    assert torch.allclose(kept, expected, atol=1e-5)
    truth = kept.gather(1, buffer.y[old].unsqueeze(1)).squeeze(1)
    assert (kept[:, 2:].max(1).values <= torch.maximum(truth, xder.params.gamma * truth) + 1e-5).all()


def test_the_supervised_contrastive_loss_is_lowest_when_each_class_sits_apart():
    y = torch.tensor([0, 0, 1, 1])
    apart = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]]), dim=1)
    mixed = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]]), dim=1)
    views = lambda z: torch.stack([z, z], 1)  # noqa: E731
    assert supervised_contrastive(views(apart), y, 0.5) < supervised_contrastive(views(mixed), y, 0.5)
    assert hinge_mean(torch.tensor([-1.0, 2.0, 4.0])) == 3.0 and hinge_mean(torch.tensor([-1.0])) == 0.0


def test_one_class_per_context_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"benchmark\.classes_per_context: xder"):
        build_config("split-digits-b5-1", method="xder")


def test_xder_trains_end_to_end_and_keeps_more_than_fine_tuning():
    def final(method: str, *overrides: str) -> dict:
        cfg = build_config("split-digits", method=method, scenario="class", device="cpu",
                           overrides=["train.iterations=60", *overrides])
        record = run(cfg, Path(tempfile.mkdtemp(prefix=f"cltui-{method}-")))
        assert record["status"] == "finished", record["error"]
        return record

    xder, none = final("xder", "method.memory_total=100"), final("none")
    assert xder["metrics"]["final_avg_acc"] > none["metrics"]["final_avg_acc"] + 0.3
    assert len(xder["nme_matrix"]) == 5 and xder["memory"]["method"] > 0
