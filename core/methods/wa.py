"""Weight aligning, WA (Zhao et al. 2020, "Maintaining discrimination and fairness in class incremental
learning"). Each step trains on a batch drawn from the union of the context's data and the exemplars with

    L = (1 - lam) * CE(f(x), y) + lam * KD_T(f(x)[:, :old], f_old(x)[:, :old]),   lam = old / seen classes

where KD_T is the cross-entropy between the softmaxes at temperature T over the old classes only (without the
T^2 factor, as the authors' code). After each context from the second on, the new classes' weight vectors in
the head are rescaled so that their mean norm equals the old classes':

    W_new <- gamma * W_new,   gamma = mean_{i old} ||W_i|| / mean_{j new} ||W_j||

As in the authors' code the head's weights are clipped at 0 after every step (`clip_weights`: the features are
ReLU outputs) and its bias is held at 0 (`bias`). The exemplars are chosen by herding into a memory of
`memory_total` shared by the classes seen (core/methods/parts/buffer.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, union_batch
from core.methods.parts.distill import distillation
from core.schema.params import WAParams


@torch.no_grad()
def align_weights(weight: Tensor, old: int, seen: int) -> float:
    """Rescale rows old..seen-1 of the head's `weight` (the new classes) in place so that their mean L2 norm
    equals that of rows 0..old-1 (the old classes); returns gamma."""
    gamma = weight[:old].norm(dim=1).mean() / weight[old:seen].norm(dim=1).mean()
    weight[old:seen] *= gamma
    return float(gamma)


class WA(ExemplarMethod[WAParams]):
    needs_previous_model = True
    seed_offset = 14142

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.head = self.model.head
        if not self.params.bias and self.head.bias is not None:  # held at 0: never trained
            with torch.no_grad():
                self.head.bias.zero_()
            self.head.bias.requires_grad_(False)

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        if len(self.buffer):
            batch = union_batch(self.buffer, batch, info.context.n_train, self.generator)
        logits = self.model(batch.x)
        ce = F.cross_entropy(logits[:, : self.scenario.trained_outputs(batch.context)], batch.y)
        old = self.scenario.labels(batch.context)[0]  # classes of the earlier contexts
        if info.previous_model is None or old == 0:
            return ce
        with torch.no_grad():
            teacher = info.previous_model(batch.x)[:, :old]
        temperature = self.params.temperature
        kd = distillation(logits[:, :old].float(), teacher.float(), temperature) / temperature**2  # no T^2
        lam = old / self.scenario.classes_seen(batch.context)
        return (1 - lam) * ce + lam * kd

    def after_step(self, info: ContextInfo) -> None:
        if self.params.clip_weights:
            with torch.no_grad():
                self.head.weight.clamp_(min=0)

    def after_context(self, info: ContextInfo) -> None:
        context = info.context
        old, seen = self.scenario.labels(context.index)
        if old > 0:
            align_weights(self.head.weight, old, seen)
        self.remember(info)
