"""The bias-correction and expansion families of class-IL: BiC's bias layer, LUCIR's cosine classifier and its
losses, DER's frozen and growing representation (their formulas on tiny tensors, then a short run of each on
digits in the B5-1 shape)."""

from __future__ import annotations

import copy

import pytest
import torch

from core.methods.bic import corrected, fit_bias
from core.methods.lucir import CosineLinear, margin_ranking
from core.methods.parts.base import Batch, ContextInfo
from core.methods.podnet import LocalSimilarity, kmeans, nca_loss, pod_spatial
from core.schema.config import ConfigError
from core.schema.presets import build_config
from core.training import run
from tests.helpers.class_il import b5_run, context, learn, tiny
from tests.helpers.data import make_cifar100, vouch
from tests.helpers.syncs import HostSyncs

# --- BiC ------------------------------------------------------------------------------------------------------


def test_the_bias_layer_moves_only_the_new_classes_logits():
    logits = torch.randn(6, 5)
    alpha, beta = torch.ones(5), torch.zeros(5)
    y = torch.tensor([0, 1, 2, 3, 3, 3])  # the held-out set leans to the new class 3: the fit must move it
    fit_bias(logits.clone() + torch.tensor([0, 0, 0, 4.0, 0]), y, old=3, seen=4, alpha=alpha, beta=beta)
    out = corrected(logits, alpha, beta)
    assert torch.equal(out[:, :3], logits[:, :3])  # the old classes untouched
    assert torch.equal(out[:, 4:], logits[:, 4:])  # and the classes not seen yet
    assert not torch.equal(out[:, 3], logits[:, 3])
    assert alpha[:3].tolist() == [1.0] * 3 and beta[:3].tolist() == [0.0] * 3


def test_the_bias_layer_fit_undoes_a_known_bias_towards_the_new_classes():
    """Logits whose new class was inflated by +3 are fit back: after the fit the held-out samples' accuracy is that
    of the logits without the bias."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(50)
    clean = torch.randn(200, 4, generator=gen) + 3 * torch.nn.functional.one_hot(y, 4)
    biased = clean + torch.tensor([0, 0, 0, 3.0])
    alpha, beta = torch.ones(4), torch.zeros(4)
    fit_bias(biased, y, old=3, seen=4, alpha=alpha, beta=beta)
    accuracy = (corrected(biased, alpha, beta).argmax(1) == y).float().mean()
    assert accuracy >= (clean.argmax(1) == y).float().mean() - 0.02
    assert (biased.argmax(1) == y).float().mean() < accuracy - 0.1


def test_the_bias_fit_stays_near_the_identity_on_a_separable_held_out_set():
    """Four samples per class, perfectly separated: the loss has no minimum, and a fit run to convergence sent
    alpha to hundreds (new classes then never won); the paper's schedule stops at a finite, sensible layer."""
    y = torch.arange(6).repeat_interleave(4)
    logits = 5 * torch.nn.functional.one_hot(y, 6).float() + torch.tensor([0, 0, 0, 0, 0, -1.0])
    alpha, beta = torch.ones(6), torch.zeros(6)
    a, b = fit_bias(logits, y, old=5, seen=6, alpha=alpha, beta=beta)
    assert 0.5 < a < 3 and abs(b) < 3
    assert (corrected(logits, alpha, beta).argmax(1) == y).all()


def test_bic_trains_on_the_rest_and_fits_its_bias_layer_on_the_held_out_share_only():
    bic, model = tiny("bic", "method.memory_total=20")
    learn(bic, model, 0, context(0, [0, 1, 2, 3, 4]))
    assert bic.training_rows(context(0, [0])) is None  # nothing held out before there is anything to correct
    ctx = context(1, [5], per_class=40, seed=1)
    info = ContextInfo(1, ctx, copy.deepcopy(model).eval(), lambda e: None)
    bic.before_context(info)
    rows, held = bic.training_rows(ctx), bic.held_new
    assert rows is not None and held is not None
    assert set(rows.tolist()).isdisjoint(held.tolist()) and len(rows) + len(held) == 40
    # 20 // 5 = 4 exemplars per old class, 10% of it (at least one) held out per class
    assert len(held) == 1 and torch.bincount(bic.held_old.y).tolist() == [1] * 5
    assert len(bic.memory) + len(bic.held_old) == len(bic.buffer)
    x, y = bic.held_out(ctx)
    assert len(y) == 6 and y.tolist() == [0, 1, 2, 3, 4, 5]  # exactly the held-out samples, balanced
    before = {n: p.clone() for n, p in model.named_parameters()}
    bic.after_context(info)  # the bias stage: the network does not move
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert bic.alpha[:5].tolist() == [1.0] * 5 and bic.beta[:5].tolist() == [0.0] * 5


def test_bic_holds_out_no_class_whole_however_few_samples_it_has():
    # 200 in memory over 5 classes: 4 held out per class; a new class of 3 samples keeps one to train on (a class held
    # out whole left an empty training set, and the first step's loss was NaN: a tiny CIFAR-100 of 4 images a class)
    bic, model = tiny("bic", "method.memory_total=200")
    learn(bic, model, 0, context(0, [0, 1, 2, 3, 4], per_class=40))
    ctx = context(1, [5], per_class=3, seed=1)
    info = ContextInfo(1, ctx, copy.deepcopy(model).eval(), lambda e: None)
    bic.before_context(info)
    rows = bic.training_rows(ctx)
    assert rows is not None and rows.numel() == 1 and bic.held_new.numel() == 2
    assert torch.isfinite(bic.loss(Batch(ctx.x_train[rows], ctx.y_train[rows], 1), info))


# --- LUCIR ----------------------------------------------------------------------------------------------------


def test_cosine_logits_lie_within_plus_minus_sigma():
    head = CosineLinear(7, 5, sigma=None)
    with torch.no_grad():
        head.sigma.fill_(4.0)
    logits = head(100 * torch.randn(64, 7))
    assert logits.abs().max() <= 4.0 + 1e-5 and logits.abs().max() > 2.0
    assert head.sigma.requires_grad and not CosineLinear(7, 5, sigma=10.0).sigma.requires_grad


def test_the_margin_ranking_loss_counts_old_samples_whose_hardest_new_classes_come_within_the_margin():
    cos = torch.tensor([[0.9, 0.1, 0.5, 0.2],   # old class 0 at 0.9; new 2 at 0.5 is within the margin: 0.1
                        [0.1, 0.3, 0.6, 0.0],   # old class 1 at 0.3; new 2 above it (0.8), new 3 within (0.2)
                        [0.0, 0.0, 0.9, 0.9]])  # a new sample (class 2): not ranked
    y = torch.tensor([0, 1, 2])
    loss = margin_ranking(cos, y, old=2, margin=0.5, k=2)
    assert loss.item() == pytest.approx((0.1 + 0.0 + 0.8 + 0.2) / 4)  # over 2 old samples x 2 new classes
    assert margin_ranking(cos[2:], y[2:], old=2, margin=0.5, k=2).item() == 0.0


def test_lucir_imprints_the_new_classes_and_holds_the_features_to_the_old_model():
    lucir, model = tiny("lucir", "method.memory_total=20")
    previous = learn(lucir, model, 0, context(0, [0, 1, 2, 3, 4]))
    ctx = context(1, [5], seed=1)
    lucir.before_context(ContextInfo(1, ctx, previous, lambda e: None))
    features = torch.nn.functional.normalize(model.features(ctx.x_train), dim=1).mean(0)
    assert torch.allclose(model.head.weight[5], torch.nn.functional.normalize(features, dim=0), atol=1e-6)
    # with the model equal to the previous one, the less-forget term is 0: the loss is CE + ranking
    info = ContextInfo(1, ctx, copy.deepcopy(model).eval(), lambda e: None)
    detector = HostSyncs()
    with detector:
        lucir.loss(Batch(ctx.x_train, ctx.y_train, 1), info).backward()
    assert detector.calls == []


# --- DER ------------------------------------------------------------------------------------------------------


def test_der_freezes_the_old_extractors_and_grows_its_features():
    der, model = tiny("der-expand", "method.memory_total=20")
    assert model.features(torch.rand(2, 1, 8, 8)).shape == (2, 32)
    learn(der, model, 0, context(0, [0, 1, 2, 3, 4]))
    first = copy.deepcopy(model.extractors[0].state_dict())
    learn(der, model, 1, context(1, [5], seed=1))
    assert model.features(torch.rand(2, 1, 8, 8)).shape == (2, 64)  # one extractor more
    assert all(torch.equal(v, model.extractors[0].state_dict()[k]) for k, v in first.items())  # frozen
    assert not any(p.requires_grad for p in model.extractors[0].parameters())
    assert any(not torch.equal(v, model.extractors[1].state_dict()[k]) for k, v in first.items())  # the new one learned
    learn(der, model, 2, context(2, [6], seed=2))
    assert model.features(torch.rand(2, 1, 8, 8)).shape == (2, 96)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_der_aux_classifier_sees_the_old_classes_as_one():
    der, model = tiny("der-expand", "method.memory_total=20")
    previous = learn(der, model, 0, context(0, [0, 1, 2, 3, 4]))
    ctx = context(1, [5], seed=1)
    info = ContextInfo(1, ctx, previous, lambda e: None)
    der.before_context(info)
    model.aux.weight.grad = None
    der.loss(Batch(ctx.x_train, ctx.y_train, 1), info).backward()
    assert model.aux.weight.grad[:2].abs().sum() > 0 and model.aux.weight.grad[2:].abs().sum() == 0  # old, new


# --- short runs on digits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bic", "lucir", "der-expand"])
def test_each_family_trains_end_to_end_on_b5_1_and_keeps_more_than_fine_tuning(method):
    record = b5_run(method)
    assert len(record["acc_matrix"]) == 6
    assert record["metrics"]["final_avg_acc"] > b5_run("none")["metrics"]["final_avg_acc"] + 0.2


def test_each_run_says_what_it_holds_so_methods_compare_at_equal_memory():
    none, bic, der = b5_run("none"), b5_run("bic"), b5_run("der-expand")
    network = none["memory"]["network"]  # 64-400-400-10 in float32, with no buffers
    assert network == 4 * (64 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10)
    assert none["memory"]["method"] == 0 and none["memory"]["teacher"] == 0
    assert bic["memory"]["teacher"] == bic["memory"]["network"]  # the frozen previous model it distils from
    assert 200 * 64 * 4 <= bic["memory"]["method"] < 2 * 200 * 64 * 4  # 200 exemplars of 8x8, and their labels
    assert der["memory"]["network"] > 6 * (network - 4 * 4010)  # six extractors by the end, and their classifiers


# --- the side figures of one class-IL run ---------------------------------------------------------------------


def test_a_class_il_run_also_scores_each_context_on_its_own_classes():
    """Restricting the outputs to a context's own classes can only help: where class-IL is right, task-IL is; and
    for fine-tuning, which predicts only its last classes, the restriction is worth far more."""
    for method in ("none", "bic"):
        record = b5_run(method)
        acc, task = record["acc_matrix"], record["task_matrix"]
        assert len(task) == len(acc) == 6 and "top5_matrix" not in record or record["top5_matrix"] == []
        assert all(t >= a - 1e-9 for row_a, row_t in zip(acc, task, strict=True)
                   for a, t in zip(row_a, row_t, strict=True))
        assert record["metrics"]["task_acc"] >= record["metrics"]["final_avg_acc"]
    assert b5_run("none")["metrics"]["task_acc"] > b5_run("none")["metrics"]["final_avg_acc"] + 0.3


def test_top5_is_scored_where_there_are_more_than_ten_classes(tmp_path, monkeypatch):
    make_cifar100(tmp_path, per_class_train=2, per_class_test=2)
    vouch(monkeypatch, tmp_path)
    cfg = build_config("cifar100-b50-10", method="wa", device="cpu", overrides=[
        f"benchmark.data_dir={tmp_path}", "benchmark.contexts=2", "model.kind=mlp", "model.hidden=[16]",
        "train.iterations=3", "benchmark.augment=false"])
    (tmp_path / "run").mkdir()
    record = run(cfg, tmp_path / "run")
    assert record["status"] == "finished", record["error"]
    acc, top5 = record["acc_matrix"], record["top5_matrix"]
    assert len(top5) == 2 and all(t >= a for row_a, row_t in zip(acc, top5, strict=True)
                                  for a, t in zip(row_a, row_t, strict=True))
    assert record["metrics"]["top5_acc"] is not None and record["metrics"]["task_acc"] is not None


# --- PODNet ---------------------------------------------------------------------------------------------------


def test_the_local_similarity_classifier_scores_within_plus_minus_eta():
    head = LocalSimilarity(7, classes=4, proxies=3, eta=5.0)
    assert not head.eta.requires_grad and LocalSimilarity(7, 4, 3).eta.requires_grad  # fixed, or learned
    logits = head(50 * torch.randn(32, 7))
    assert logits.shape == (32, 4) and logits.abs().max() <= 5.0 + 1e-5
    # one proxy aligned with the input: its class scores near the top of the range whatever the other proxies say
    x = torch.randn(1, 7)
    with torch.no_grad():
        head.weight[0] = x[0]
    assert head.similarity(x)[0, 0] > 0.3


def test_the_nca_loss_is_zero_once_the_true_class_leads_by_more_than_the_margin():
    eta = torch.tensor(10.0)
    y = torch.tensor([0])
    assert nca_loss(torch.tensor([[0.9, -1.0, -1.0]]), y, eta, margin=0.6).item() == 0.0  # far ahead: no loss
    near = nca_loss(torch.tensor([[0.5, 0.2, -1.0]]), y, eta, margin=0.6).item()  # ahead, within the margin
    assert near > 0
    assert nca_loss(torch.tensor([[0.5, 0.2, -1.0]]), y, eta, margin=0.0).item() < near


def test_pod_spatial_is_zero_for_the_same_features_and_sees_where_activations_move():
    h = torch.rand(2, 3, 4, 4)
    assert pod_spatial([h], [h.clone()]).item() == 0.0
    moved = h.clone()
    moved[:, :, 0, :] += 1.0  # more activation in the top row: the pooling over the width sees it
    assert pod_spatial([h], [moved]).item() > 0.05
    assert pod_spatial([h], [2 * h]).item() < 1e-6  # a uniform rescaling is normalised away


def test_kmeans_finds_the_centres_of_separated_clusters():
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    x = (means.repeat_interleave(40, 0) + 0.3 * torch.randn(120, 2, generator=gen))[torch.randperm(120, generator=gen)]
    centres = kmeans(x, 3, torch.Generator().manual_seed(1))
    assert torch.cdist(means, centres).min(1).values.max() < 0.3  # each cluster has a centre at its mean
    few = kmeans(x[:2], 5, torch.Generator().manual_seed(1))  # fewer rows than centres: rows again, no NaN
    assert few.shape == (5, 2) and torch.isfinite(few).all()


def test_podnet_imprints_each_new_classes_proxies_from_its_embeddings():
    podnet, model = tiny("podnet", "model.kind=resnet20", "method.memory_total=20", "method.proxies=3")
    learn(podnet, model, 0, context(0, [0, 1, 2, 3, 4]))
    head = model.head
    old_norm, later = head.weight[:15].norm(dim=1).mean(), head.weight[18:].clone()
    ctx = context(1, [5], per_class=12, seed=1)
    podnet.before_context(ContextInfo(1, ctx, None, lambda e: None))
    new = head.weight[15:18]
    assert torch.allclose(new.norm(dim=1), old_norm.expand(3), rtol=1e-5)  # at the old proxies' norm
    with torch.no_grad():
        embeddings = torch.nn.functional.normalize(model.eval().features(ctx.x_train), dim=1)
    cosines = torch.nn.functional.normalize(new, dim=1) @ embeddings.T  # (3 proxies, 12 samples)
    assert cosines.max(0).values.min() > 0.9  # every sample of the new class lies near one of its proxies
    assert torch.equal(head.weight[18:], later)  # the classes still to come keep theirs


def test_podnet_asks_for_a_resnet_in_one_line():
    with pytest.raises(ConfigError) as caught:
        build_config("split-digits-b5-1", method="podnet")
    assert caught.value.field == "model.kind" and "resnet32" in str(caught.value)


def test_podnet_trains_end_to_end_on_a_resnet_and_keeps_more_than_fine_tuning():
    record = b5_run("podnet", "model.kind=resnet20", "method.memory_total=200", "train.iterations=20")
    assert len(record["acc_matrix"]) == 6
    assert record["metrics"]["final_avg_acc"] > b5_run("none")["metrics"]["final_avg_acc"] + 0.1


def test_the_methods_that_keep_exemplars_are_also_scored_by_the_other_rule():
    """WA predicts with its classifier: the nearest mean of its exemplars is scored beside it; iCaRL predicts by the
    nearest mean: its network's logits are scored beside it. Fine-tuning keeps no exemplars: neither."""
    wa, icarl, none = b5_run("wa"), b5_run("icarl"), b5_run("none")
    assert len(wa["nme_matrix"]) == 6 and wa["cnn_matrix"] == [] and wa["metrics"]["nme_acc"] > 0.5
    assert len(icarl["cnn_matrix"]) == 6 and icarl["nme_matrix"] == [] and icarl["metrics"]["cnn_acc"] > 0.3
    assert none["nme_matrix"] == none["cnn_matrix"] == [] and "nme_acc" not in none["metrics"]
    assert wa["nme_matrix"] != wa["acc_matrix"] and icarl["cnn_matrix"] != icarl["acc_matrix"]  # another rule
