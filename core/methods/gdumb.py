"""GDumb (Prabhu, Torr & Dokania 2020, "GDumb: a simple approach that questions our progress in continual
learning"): a greedy sampler keeps a memory of k = `memory_total` samples balanced over the classes seen, and
before each evaluation the network is trained from scratch on that memory alone. It never learns from the
stream itself: the run's `train.iterations` steps change nothing.

The sampler, for each sample (x, y) of the stream (the context's training data in a random order): store it while
there is room; when the memory is full and class y holds fewer than k // (classes seen) samples, put it in the
place of a random sample of the largest class.

The retraining, the paper's schedule over `epochs` passes of the memory: the weights back to what they were
before any training, SGD (momentum 0.9, weight decay), the learning rate lr / 10 for the first pass, lr for the
second, then cosine annealing with warm restarts after 1, 2, 4, ... passes down to `lr_min`; gradients clipped
at norm `clip`; CutMix (alpha 1) on a share `cutmix` of the batches; the benchmark's crops and flips when it
augments. The loss covers every class in memory; task-IL restricts the outputs at test (the scenario's view),
as the paper's masking does.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.engine.data import augment
from core.methods.parts.base import Batch, ContextInfo, Method
from core.schema.params import GDumbParams


class GreedyMemory:
    """GDumb's class-balanced greedy memory: `capacity` rows on the device. Which sample goes to which row is
    decided on the host, from one read of the context's labels; the inputs are then copied in one gather."""

    def __init__(self, capacity: int, device: torch.device, seed: int):
        self.capacity, self.device = capacity, device
        self.rng = random.Random(seed)  # the evictions
        self.rows: dict[int, list[int]] = {}  # class -> its rows, every class seen (in the order they came)
        self.size = 0
        self.x: Tensor | None = None
        self.y: Tensor | None = None

    def __len__(self) -> int:
        return self.size

    def counts(self) -> dict[int, int]:
        return {c: len(rows) for c, rows in self.rows.items()}

    def offer(self, x: Tensor, y: Tensor, order: Tensor) -> None:
        """Offer x[order[0]], x[order[1]], ... one at a time (the stream), keeping what the greedy rule keeps."""
        writes: dict[int, int] = {}  # row -> index into x; a row written twice keeps the later sample
        for i, c in zip(order.tolist(), y[order].tolist(), strict=True):
            rows = self.rows.setdefault(c, [])
            if self.size < self.capacity:
                row, self.size = self.size, self.size + 1
            elif len(rows) < self.capacity // len(self.rows):
                largest = max(self.rows.values(), key=len)  # never c's own: it holds less than its share
                row = largest.pop(self.rng.randrange(len(largest)))
            else:
                continue
            rows.append(row)
            writes[row] = i
        if not writes:
            return
        if self.x is None:
            self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=self.device)
            self.y = torch.zeros(self.capacity, dtype=torch.long, device=self.device)
        assert self.y is not None
        rows_t = torch.tensor(list(writes), device=self.device)
        source = torch.tensor(list(writes.values()), device=x.device)
        self.x[rows_t] = x[source].to(self.device)
        self.y[rows_t] = y[source].to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "size": self.size, "rows": {c: list(r) for c, r in self.rows.items()},
                "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x, self.y, self.size = state["x"], state["y"], state["size"]
        self.rows = {int(c): list(r) for c, r in state["rows"].items()}
        self.rng.setstate(state["rng"])


def gdumb_lr(epoch: int, lr: float, lr_min: float) -> float:
    """The learning rate of pass `epoch`: lr / 10, then lr, then SGDR (T_0 = 1, T_mult = 2) from lr to lr_min."""
    if epoch == 0:
        return lr / 10
    t, period = epoch - 1, 1  # passes into SGDR; the first restart comes after one pass
    while t >= period:
        t, period = t - period, period * 2
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t / period)) / 2


def cutmix(x: Tensor, rng: random.Random, generator: torch.Generator) -> tuple[Tensor, Tensor, float]:
    """CutMix with alpha 1: a box of area (1 - lam) of each image replaced by the same box of another image of
    the batch. Returns the mixed images, the partner of each one (indices) and lam recomputed from the box;
    the box is drawn on the host (no sync)."""
    h, w = x.shape[-2:]
    lam = rng.random()  # Beta(1, 1)
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = rng.randrange(h), rng.randrange(w)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    partner = torch.randperm(x.shape[0], generator=generator, device=generator.device).to(x.device)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[partner][..., y0:y1, x0:x1]
    return mixed, partner, 1 - (y1 - y0) * (x1 - x0) / (h * w)


class GDumb(Method[GDumbParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        seed = self.config.train.seed
        assert self.params.memory_total is not None  # resolved by the config
        self.memory = GreedyMemory(self.params.memory_total, self.device, seed + 17320)
        self.generator = torch.Generator(self.device).manual_seed(seed + 22360)
        self.rng = random.Random(seed + 26457)  # the CutMix draws
        self.initial = copy.deepcopy(self.model.state_dict())  # the network before any training

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        """Nothing to learn from the stream: the memory fills at the end of the context."""
        return torch.zeros((), device=self.device, requires_grad=True)

    def after_context(self, info: ContextInfo) -> None:
        context = info.context
        stream = torch.randperm(context.n_train, generator=self.generator, device=self.device)
        self.memory.offer(context.inputs(context.x_train), context.y_train, stream.to(context.y_train.device))
        self.retrain(info)

    def retrain(self, info: ContextInfo) -> None:
        """Train the network from its initial weights on the memory alone (the paper's schedule)."""
        p, n = self.params, len(self.memory)
        if n == 0:
            return
        assert p.epochs is not None and p.cutmix is not None and self.memory.x is not None
        assert self.memory.y is not None
        self.model.load_state_dict(self.initial)
        parameters = [q for q in self.model.parameters() if q.requires_grad]
        optimizer = torch.optim.SGD(parameters, lr=p.lr, momentum=0.9, weight_decay=p.weight_decay)
        outputs = self.scenario.trained_outputs(info.context.index)
        x, y = self.memory.x[:n], self.memory.y[:n]
        self.model.train()
        with info.phase("retrain", total=p.epochs) as progress:
            for epoch in range(p.epochs):
                for group in optimizer.param_groups:
                    group["lr"] = gdumb_lr(epoch, p.lr, p.lr_min)
                order = torch.randperm(n, generator=self.generator, device=self.device)
                for i in range(0, n, p.batch_size):
                    xb, yb = x[order[i : i + p.batch_size]], y[order[i : i + p.batch_size]]
                    if self.config.benchmark.augment:
                        xb = augment(xb, self.generator)
                    if self.rng.random() < p.cutmix:
                        xb, partner, lam = cutmix(xb, self.rng, self.generator)
                        logits = self.model(xb)[:, :outputs]
                        loss = lam * F.cross_entropy(logits, yb) + (1 - lam) * F.cross_entropy(logits, yb[partner])
                    else:
                        loss = F.cross_entropy(self.model(xb)[:, :outputs], yb)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(parameters, p.clip)
                    optimizer.step()
                    progress(epoch)  # throttled: a stop is honoured within a step, not only between passes
                progress(epoch + 1, loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "generator": self.generator.get_state(),
                "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.generator.set_state(state["generator"])
        self.rng.setstate(state["rng"])
