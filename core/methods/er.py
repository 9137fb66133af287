"""Experience replay (as in van de Ven et al. 2022): a replay batch drawn from stored samples of earlier
contexts beside every batch; the current and replayed cross-entropies are weighted 1/t and 1 - 1/t
(t = contexts so far, this one included). The buffer is class-balanced (random samples of each class,
stored at the end of its context), or a reservoir when `budget_total` is set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from core.methods.base import Batch, ContextInfo, Method
from core.methods.buffer import buffer_for, random_order


class ExperienceReplay(Method):
    name = "er"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reservoir = self.params.budget_total is not None
        self.buffer = buffer_for(self.params, self.device, self.scenario.c * self.scenario.contexts, self.reservoir)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 31337)

    def replayed(self, n: int, context: int) -> Batch:
        stored = self.buffer.sample(n, self.generator)
        return Batch(stored["x"], stored["y"], context, stored["context"])

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        current = super().loss(batch, info)
        self.remember(batch)
        if batch.context == 0 or len(self.buffer) == 0:
            return current
        t = batch.context + 1
        return current / t + (1 - 1 / t) * super().loss(self.replayed(batch.x.shape[0], batch.context), info)

    def remember(self, batch: Batch) -> None:
        """A reservoir buffer sees every training batch; a class-balanced one fills at the end of a context."""
        if self.reservoir:
            self.buffer.add_reservoir(batch.x, batch.y, batch.contexts(), None, self.generator)

    def after_context(self, info: ContextInfo) -> None:
        if not self.reservoir:
            store_context(self.buffer, info, random_order(info.context.y_train, classes_of(info), self.generator))

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])


def classes_of(info: ContextInfo) -> list[int]:
    lo, hi = info.context.labels
    return list(range(lo, hi))


def store_context(buffer, info: ContextInfo, order: dict[int, Tensor]) -> None:
    """Store the context's samples (inputs as the network sees them) in the given per-class order."""
    context = info.context
    ids = torch.full_like(context.y_train, context.index)
    buffer.add_classes(context.inputs(context.x_train), context.y_train, ids, order)
