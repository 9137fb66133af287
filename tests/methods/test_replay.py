"""Replay of stored data: the buffer, herding, A-GEM's projection, no host syncs in the step, and what
ER, A-GEM, DER++ and iCaRL achieve on split-digits (seed 0, the preset's budget of 20 per class)."""

from __future__ import annotations

import copy
import functools
import statistics
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.engine.data import build_benchmark
from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.agem import project
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ReplayBuffer, herding_order, random_order
from core.schema.presets import build_config
from core.training import run
from tests.helpers.syncs import HostSyncs

CPU = torch.device("cpu")


def labelled(classes: list[int], per_class: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tensor([c for c in classes for _ in range(per_class)])
    x = torch.arange(start, start + len(y), dtype=torch.float32).view(-1, 1, 1, 1)  # x encodes the sample
    return x, y


def test_class_balanced_buffer_keeps_exact_budgets_per_class_across_contexts():
    buffer = ReplayBuffer(CPU, per_class=5)
    gen = torch.Generator().manual_seed(0)
    for k in range(3):
        x, y = labelled([2 * k, 2 * k + 1], per_class=12, start=100 * k)
        buffer.add_classes(x, y, torch.full_like(y, k), random_order(y, [2 * k, 2 * k + 1], gen))
        counts = torch.bincount(buffer.y, minlength=6)
        assert len(buffer) == 10 * (k + 1)
        assert counts[: 2 * (k + 1)].tolist() == [5] * 2 * (k + 1) and counts[2 * (k + 1) :].sum() == 0
        assert ((buffer.x.view(-1) // 100) == buffer.context).all()  # each stored sample kept its context


def test_a_total_budget_is_shared_by_the_classes_seen_keeping_each_class_preferred_samples():
    buffer = ReplayBuffer(CPU, total=12)
    first = None
    for k in range(3):
        x, y = labelled([2 * k, 2 * k + 1], per_class=10, start=100 * k)
        order = {c: (y == c).nonzero().squeeze(1) for c in (2 * k, 2 * k + 1)}  # preference = data order
        buffer.add_classes(x, y, torch.full_like(y, k), order)
        counts = torch.bincount(buffer.y, minlength=6)[: 2 * (k + 1)]
        assert counts.tolist() == [12 // (2 * (k + 1))] * (2 * (k + 1))
        class0 = buffer.x[buffer.y == 0].view(-1)
        if first is None:
            first = class0
        assert torch.equal(class0, first[: class0.shape[0]])  # shrinking keeps a prefix of the same order


def test_reservoir_buffer_has_exact_capacity_and_samples_the_stream_uniformly():
    buffer = ReplayBuffer(CPU, total=200, reservoir=True)
    gen = torch.Generator().manual_seed(0)
    for k in range(10):  # 10 "contexts" of 100 samples, labelled by context
        x = torch.full((100, 1, 1, 1), float(k))
        y = torch.full((100,), k)
        buffer.add_reservoir(x, y, y.clone(), torch.randn(100, 3), gen)
        assert len(buffer) == min(100 * (k + 1), 200)
    assert buffer.x.shape[0] == 201  # capacity + the scratch row that takes rejected writes
    counts = torch.bincount(buffer.y[:200], minlength=10)
    assert counts.sum() == 200 and counts.min() >= 8 and counts.max() <= 35  # ~20 each: uniform over the stream
    assert torch.equal(buffer.x[:200].view(-1).long(), buffer.y[:200])  # inputs and labels stay paired


def herding_by_hand(features: torch.Tensor, m: int) -> list[int]:
    f = F.normalize(features, dim=1)
    mu, chosen = f.mean(0), []
    for k in range(1, m + 1):
        best, best_d = None, float("inf")
        for i in range(f.shape[0]):
            if i in chosen:
                continue
            d = float((mu - (f[chosen].sum(0) + f[i]) / k).norm()) if chosen else float((mu - f[i]).norm())
            if d < best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def test_herding_picks_what_a_brute_force_reference_picks():
    torch.manual_seed(0)
    features = torch.randn(40, 6)
    labels = torch.tensor([0] * 13 + [1] * 20 + [2] * 7)
    order = herding_order(features, labels, [0, 1, 2], m=9)
    for c in (0, 1, 2):
        idx = (labels == c).nonzero().squeeze(1)
        expected = idx[herding_by_hand(features[idx], min(9, len(idx)))]
        assert order[c].tolist() == expected.tolist()
    assert len(order[2]) == 7  # a class smaller than the budget gives all it has, once each


def test_agem_projection_never_leaves_an_angle_above_90_degrees_with_the_reference():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        g = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
        r = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
        before = sum((a * b).sum() for a, b in zip(g, r, strict=False))
        after = sum((a * b).sum() for a, b in zip(project(g, r, 1e-7), r, strict=False))
        assert after >= -1e-5
        if before >= 0:  # no conflict: the gradient is left as it was
            assert all(torch.equal(a, b) for a, b in zip(project(g, r, 1e-7), g, strict=False))


@pytest.mark.parametrize("method", ["er", "agem", "derpp", "icarl", "dgr", "bir", "gen-classifier", "fromp"])
def test_replay_steps_never_sync_with_the_host(method):
    """The buffer stays on the device: a training step (loss, backward, gradient hook, optimiser step) makes no
    call that reads tensor data back to the host. (On CPU 'the device' is the host too; what is checked is
    that the code would not wait for a GPU.)"""
    cfg = build_config("split-digits", method=method, scenario="class", device="cpu")
    bench = build_benchmark(cfg.benchmark, CPU)
    view = ScenarioView("class", 2, 5)
    cls = method_class(method)
    torch.manual_seed(0)
    model = cls.build_model(cfg, bench.input_shape, view.head_size)
    m = cls(cfg.method, cfg, model, view, bench, CPU)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    previous = None
    for k in range(2):
        ctx = bench.contexts[k]
        info = ContextInfo(k, ctx, previous, lambda e: None)
        m.before_context(info)
        detector = HostSyncs()
        for i in range(4):
            batch = Batch(ctx.x_train[i * 32 : (i + 1) * 32], ctx.y_train[i * 32 : (i + 1) * 32], k)
            opt.zero_grad(set_to_none=True)
            with detector:  # the method's part of the step (Adam reads its own CPU step counter: not ours)
                loss = m.loss(batch, info)
                loss.backward()
                m.after_backward(info)
            opt.step()
            with detector:
                m.after_step(info)
        assert detector.calls == [], f"context {k}: host syncs in the step: {detector.calls}"
        m.after_context(info)  # consolidation may sync; it runs once per context
        previous = copy.deepcopy(model).eval().requires_grad_(False)
    if hasattr(m, "buffer"):
        assert len(m.buffer) > 0 and m.buffer.x.device == CPU


@pytest.mark.parametrize(("method", "extra"), [("none", ()), ("ewc", ()), ("er", ()), ("agem", ()),
                                               ("none", ("train.compile=true",))])
def test_the_training_loop_reads_the_device_per_report_not_per_step(method, extra, tmp_path):
    """The trainer's loop itself (what a worker, pooled or not, runs): with no progress report due before the
    end, training 10 or 40 steps makes the same host reads (the end's report and final loss), so none is per
    step. The fused Adam step included: its step counters live on the device. With train.compile the loop
    around the compiled model is checked (dynamo re-traces the model under the detector, so this does not
    see inside the compiled graph; a host read there would break the graph and run eagerly, where it is seen)."""
    from core.training.train import Trainer

    syncs = {}
    for steps in (10, 40):
        cfg = build_config("split-digits", method=method, scenario="class", device="cpu",
                           overrides=["train.progress_interval=3600", *extra])
        (tmp_path / str(steps)).mkdir()
        trainer = Trainer(cfg, tmp_path / str(steps), lambda e: None, lambda: False)
        ctx = trainer.benchmark.contexts[1]
        info = ContextInfo(1, ctx, copy.deepcopy(trainer.model).eval().requires_grad_(False), lambda e: None,
                           cfg.train.progress_interval)
        trainer.method.before_context(info)
        trainer.train_context(info, 2)  # warm-up: buffers and optimiser state exist
        detector = HostSyncs()
        with detector:
            trainer.train_context(info, steps)
        syncs[steps] = detector.calls
    assert len(syncs[10]) == len(syncs[40]) <= 4, syncs


@functools.cache
def final(method: str, scenario: str, *overrides: str, seed: int = 0) -> float:
    cfg = build_config("split-digits", method=method, scenario=scenario, device="cpu", seed=seed,
                       overrides=list(overrides))
    record = run(cfg, Path(tempfile.mkdtemp(prefix=f"cltui-{method}-")))
    assert record["status"] == "finished", record["error"]
    return record["metrics"]["final_avg_acc"]


@pytest.mark.parametrize("method", ["er", "derpp", "icarl"])
def test_stored_data_replay_solves_class_il_on_split_digits(method):
    assert final(method, "class") >= 0.8


def test_agem_beats_fine_tuning_in_class_il():
    assert final("agem", "class") > final("none", "class")


@pytest.mark.slow  # an accuracy check of a second scenario (about 1 min); class-IL above runs by default
@pytest.mark.parametrize("method", ["er", "agem", "derpp", "icarl"])
def test_stored_data_replay_in_task_il(method):
    assert final(method, "task") >= 0.95


@pytest.mark.slow  # six runs (about 90 s)
def test_icarl_herding_is_not_worse_than_random_exemplars_over_three_seeds():
    herding = [final("icarl", "class", seed=s) for s in range(3)]
    random_ = [final("icarl", "class", "method.selection=random", seed=s) for s in range(3)]
    assert statistics.mean(herding) >= statistics.mean(random_)
