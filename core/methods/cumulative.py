"""Incremental joint training ("full replay", Hess et al. 2023; van de Ven's StabilityGap example): while
learning context t, every batch also holds samples of every earlier context, all stored:

    L = CE over [x_t ; x_1 ; ... ; x_{t-1}]   (one mean over the whole batch)

With `scale_batch` each context brings batch_size samples (the batch grows with t, as in the example, which
keeps the share of each context's gradient equal); otherwise the batch_size samples are split evenly. Old
samples are drawn with replacement on the device (no host sync). It has no consolidation step at all, so
any drop of an old context right after a boundary is the stability gap, not forgetting.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.engine.data import augment
from core.methods.parts.base import Batch, ContextInfo, Method
from core.schema.params import CumulativeParams

SEED_OFFSET = 7919  # its own stream of old-sample draws, apart from the trainer's batches


class Cumulative(Method[CumulativeParams]):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + SEED_OFFSET)

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        if batch.context == 0:
            return super().loss(batch, info)
        n = batch.x.shape[0] if self.params.scale_batch else max(1, batch.x.shape[0] // (batch.context + 1))
        xs, ys, ids = [batch.x[:n]], [batch.y[:n]], [batch.contexts()[:n]]
        for old in self.benchmark.contexts[: batch.context]:
            idx = torch.randint(old.n_train, (n,), generator=self.generator, device=self.device)
            x = old.inputs(old.x_train[idx])
            if self.config.benchmark.augment:
                x = augment(x, self.generator)
            xs.append(x)
            ys.append(old.y_train[idx])
            ids.append(torch.full((n,), old.index, dtype=torch.long, device=self.device))
        return self.scenario.loss(self.model(torch.cat(xs)), torch.cat(ys), batch.context, torch.cat(ids))
