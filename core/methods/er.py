"""Experience replay (as in van de Ven et al. 2022): a replay batch drawn from stored samples of earlier
contexts beside every batch; the current and replayed cross-entropies are weighted 1/t and 1 - 1/t
(t = contexts so far, this one included). The buffer is class-balanced (random samples of each class,
stored at the end of its context), or a reservoir when `budget_total` is set (core/methods/parts/buffer.py).
"""

from __future__ import annotations

from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ReplayMethod
from core.schema.params import ERParams


class ExperienceReplay(ReplayMethod[ERParams]):
    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        current = super().loss(batch, info)
        self.remember(batch)
        if batch.context == 0 or len(self.buffer) == 0:
            return current
        t = batch.context + 1
        return current / t + (1 - 1 / t) * super().loss(self.replayed(batch.x.shape[0], batch.context), info)
