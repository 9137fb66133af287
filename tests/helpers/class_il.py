"""The class-IL method tests' fixtures: a method on a tiny MLP in the B5-1 shape (5 classes, then 1 per context),
synthetic contexts of 8x8 inputs, one context as the trainer runs it, and a short cached run on digits."""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path

import torch

from core.engine.data import Context
from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.parts.base import Batch, ContextInfo
from core.schema.presets import build_config
from core.training import run

CPU = torch.device("cpu")
B5_1 = "split-digits-b5-1"  # digits in the B50-10 shape: 5 classes, then 1 per context, 6 contexts
F0, C, T = 5, 1, 6  # the B5-1 shape: context 0 owns labels [0, 5), context k >= 1 owns [4 + k, 5 + k)


def tiny(method: str, *overrides: str, preset: str = B5_1):
    """A method on a 64-32 MLP over 8x8 inputs, class-IL in the B5-1 shape (no data set loaded)."""
    cfg = build_config(preset, method=method, scenario="class", device="cpu",
                       overrides=["model.hidden=[32]", *overrides])
    view = ScenarioView("class", C, T, first_context_classes=F0)
    torch.manual_seed(0)
    model = method_class(method).build_model(cfg, (1, 8, 8), view.head_size)
    return method_class(method)(cfg.method, cfg, model, view, None, CPU), model


def context(index: int, labels: list[int], per_class: int = 8, seed: int = 0) -> Context:
    """`per_class` random 8x8 inputs of each label, shifted by the label so that the classes can be told apart."""
    y = torch.tensor([c for c in labels for _ in range(per_class)])
    x = torch.rand(len(y), 1, 8, 8, generator=torch.Generator().manual_seed(seed)) + y.view(-1, 1, 1, 1) / 10
    lo, hi = min(labels), max(labels) + 1
    return Context(index, labels, (lo, hi), x, y, x[:0], y[:0])


def learn(method, model, k: int, ctx, previous=None, steps: int = 3):
    """Context k as the trainer runs it: before_context, a few steps on the rows it trains on, after_context."""
    info = ContextInfo(k, ctx, previous, lambda e: None)
    method.before_context(info)
    rows = method.training_rows(ctx)
    x, y = (ctx.x_train, ctx.y_train) if rows is None else (ctx.x_train[rows], ctx.y_train[rows])
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(steps):
        optimiser.zero_grad()
        method.loss(Batch(x, y, k), info).backward()
        optimiser.step()
    method.after_context(info)
    return copy.deepcopy(model).eval().requires_grad_(False)


@functools.cache
def b5_run(method: str, *overrides: str) -> dict:
    """A finished run of `method` on split-digits-b5-1 at 40 iterations per context (once per test process)."""
    cfg = build_config(B5_1, method=method, device="cpu", overrides=["train.iterations=40", *overrides])
    record = run(cfg, Path(tempfile.mkdtemp(prefix=f"cltui-{method}-")))
    assert record["status"] == "finished", record["error"]
    return record
