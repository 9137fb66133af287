"""The generative classifier (van de Ven, Li & Tolias 2021): its VAEs learn, its likelihood estimate is a
proper importance-sampled bound, old classes are never touched, and it solves split-digits in class-IL."""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import pytest
import torch

from core.engine.data import build_benchmark
from core.engine.scenarios import ScenarioView
from core.methods.gen_classifier import GenerativeClassifier, VAEBank
from core.methods.parts.base import Batch
from core.schema.config import ConfigError
from core.schema.presets import build_config
from core.training import run

CLASS_IL_FLOOR, TASK_IL_FLOOR = 0.8, 0.95


@functools.cache
def result(scenario: str) -> dict:
    """The acceptance run (split-digits, seed 0, preset settings); every checkpoint is kept for inspection."""
    cfg = build_config("split-digits", method="gen-classifier", scenario=scenario, device="cpu",
                       overrides=["train.checkpoints=all"])
    run_dir = Path(tempfile.mkdtemp(prefix=f"cltui-gen-classifier-{scenario}-"))
    record = run(cfg, run_dir)
    assert record["status"] == "finished", record["error"]
    record["_dir"] = run_dir
    return record


def checkpoint(scenario: str, context: int) -> dict:
    return torch.load(result(scenario)["_dir"] / f"checkpoints/context-{context}.pt", weights_only=True)


def toy_data(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of binary 4x4 images, each drawn through a fixed map of a 2-d latent factor (so a VAE's
    posterior is informative, not the prior): x ~ Bernoulli(sigmoid(W_y z + b_y)), z ~ N(0, I)."""
    maps = torch.Generator().manual_seed(0)
    w, b = 3 * torch.randn(2, 16, 2, generator=maps), 2 * torch.randn(2, 16, generator=maps)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    z = torch.randn(n, 2, generator=g)
    x = torch.bernoulli(torch.sigmoid(torch.einsum("npz,nz->np", w[y], z) + b[y]), generator=g)
    return x.view(n, 1, 4, 4), y


def toy_method(steps: int) -> tuple[GenerativeClassifier, list[float]]:
    """A bank of 2 contexts x 2 classes on the toy images; context 0 trained through the method's own loss."""
    torch.manual_seed(0)
    cfg = build_config("split-digits", method="gen-classifier", device="cpu",
                       overrides=["benchmark.contexts=2", "method.hidden=32", "method.z_dim=2"])
    bank = VAEBank(2, 2, 16, 32, 2, "bernoulli")
    method = GenerativeClassifier(cfg.method, cfg, bank, ScenarioView("class", 2, 2), None, torch.device("cpu"))
    x, y = toy_data()
    optimizer = torch.optim.Adam(bank.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = method.loss(Batch(x, y, 0), None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    bank.trained[:2] = True
    return method, losses


@functools.cache
def trained_toy() -> GenerativeClassifier:
    return toy_method(200)[0]


def test_the_negative_elbo_falls_within_a_few_dozen_steps():
    _, losses = toy_method(40)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)


def test_each_class_vae_learns_from_its_own_samples_only():
    method, _ = toy_method(0)
    x, y = toy_data()
    only_class_1 = y == 1
    method.loss(Batch(x[only_class_1], y[only_class_1], 0), None).backward()
    bank = method.model
    first_layer = bank.encoder[0].weight[0].grad  # (classes of context 0, in, hidden)
    assert first_layer[0].abs().max() == 0 and first_layer[1].abs().max() > 0
    assert bank.encoder[0].weight[1].grad is None  # context 1's VAEs are not part of the graph at all


def test_the_importance_sampled_likelihood_is_a_log_mean_exp_above_the_elbo():
    bank = trained_toy().model
    x, _ = toy_data(64, seed=1)
    x = x.flatten(1)
    samples, both = 50, slice(0, 1)
    with torch.no_grad():
        ll = bank.log_likelihood(x, both, samples, torch.Generator().manual_seed(3))
        eps = torch.randn(x.shape[0], samples, bank.z_dim, generator=torch.Generator().manual_seed(3))
        log_w = bank.log_weights(x, both, eps)
    assert ll.shape == (2, 64)
    torch.testing.assert_close(ll, log_w.logsumexp(-1) - math.log(samples))
    # Jensen, for every input and class: log mean exp >= mean log, strictly unless the weights are all equal.
    assert (ll > log_w.mean(-1)).all()


def test_the_importance_weights_average_to_the_training_elbo_and_the_bound_tightens_with_samples():
    bank = trained_toy().model
    x, _ = toy_data(64, seed=1)
    x = x.flatten(1)
    both = slice(0, 1)
    torch.manual_seed(4)
    with torch.no_grad():
        elbo = torch.stack([bank.elbo(x, both) for _ in range(400)]).mean(0)  # analytic KL, as in training
        log_w = bank.log_weights(x, both, torch.randn(x.shape[0], 400, bank.z_dim))  # sampled log p(z) - log q
        means = [bank.log_likelihood(x, both, s, torch.Generator().manual_seed(5)).mean().item() for s in (1, 10, 100)]
    # Two unbiased estimates of the same ELBO: they agree up to Monte Carlo error.
    assert (log_w.mean(-1) - elbo).abs().mean() < 0.02 * elbo.abs().mean()
    assert abs(means[0] - elbo.mean().item()) < 0.5
    assert means[0] < means[1] < means[2]  # E log p_S(x) rises towards log p(x) as S grows


def test_chunked_scoring_matches_one_chunk():
    bank = trained_toy().model
    x, _ = toy_data(64, seed=1)
    x = x.flatten(1)
    with torch.no_grad():
        whole = bank.log_likelihood(x, slice(0, 1), 40, torch.Generator().manual_seed(6))
        chunked = bank.log_likelihood(x, slice(0, 1), 40, torch.Generator().manual_seed(6), chunk_elements=1000)
    # Different noise, same estimate: far closer than the spread between inputs.
    assert (whole - chunked).abs().mean() < 0.1 * whole.std()


def test_an_old_class_vae_is_bit_identical_after_training_later_contexts():
    def of_context(state: dict, k: int) -> dict:
        return {n: t for n, t in state["model"].items() if n.endswith((f"weight.{k}", f"bias.{k}"))}

    after = [checkpoint("class", i) for i in range(5)]
    for name, value in of_context(after[0], 0).items():
        assert torch.equal(value, of_context(after[4], 0)[name]), name
    # ... while the context being trained did move (the comparison can fail).
    assert any(not torch.equal(v, of_context(after[1], 1)[n]) for n, v in of_context(after[0], 1).items())


def test_untrained_classes_score_minus_infinity_and_each_class_likes_its_own_images_best():
    cfg = build_config("split-digits", method="gen-classifier", scenario="class", device="cpu")
    benchmark = build_benchmark(cfg.benchmark, "cpu")
    bank = GenerativeClassifier.build_model(cfg, benchmark.input_shape, cfg.head_size)
    bank.load_state_dict(checkpoint("class", 1)["model"])  # contexts 0 and 1 learned: classes 0-3
    method = GenerativeClassifier(cfg.method, cfg, bank, ScenarioView("class", 2, 5), benchmark,
                                  torch.device("cpu"))
    with torch.inference_mode():
        for context in benchmark.contexts[:2]:
            scores = method.predict(context.x_train, context.index)
            assert scores.shape == (context.n_train, 10)
            assert torch.isinf(scores[:, 4:]).all() and (scores[:, 4:] < 0).all()
            assert torch.isfinite(scores[:, :4]).all()
            for label in range(*context.labels):
                mean_score = scores[context.y_train == label].mean(0)
                assert mean_score.argmax() == label, (label, mean_score)


def test_class_il_split_digits_is_solved_without_replay():
    record = result("class")
    assert record["metrics"]["final_avg_acc"] >= CLASS_IL_FLOOR


def test_task_il_split_digits_and_nothing_is_forgotten():
    record = result("task")
    assert record["metrics"]["final_avg_acc"] >= TASK_IL_FLOOR
    # Frozen VAEs and seeded scoring noise: a learned context's task-IL accuracy never changes afterwards.
    matrix = record["acc_matrix"]
    for j in range(len(matrix)):
        assert {row[j] for row in matrix[j:]} == {matrix[j][j]}


def test_latent_size_and_likelihood_follow_the_data_set():
    digits = build_config("split-digits", method="gen-classifier").method
    cifar = build_config("split-cifar100", method="gen-classifier").method
    assert (digits.z_dim, digits.likelihood) == (5, "bernoulli")
    assert (cifar.z_dim, cifar.likelihood) == (20, "gaussian")
    with pytest.raises(ConfigError, match=r"method\.likelihood.*cifar100.*gaussian"):
        build_config("split-cifar100", method="gen-classifier", overrides=["method.likelihood=bernoulli"])
