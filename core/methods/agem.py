"""A-GEM (Chaudhry et al. 2019): the gradient of the current batch is projected whenever it points against
the gradient of a replay batch, g <- g - (g . g_ref) / (|g_ref|^2 + eps) g_ref if g . g_ref < 0, so the loss
on stored samples does not rise (to first order). Written branch-free: the coefficient is clamped at 0.
"""

from __future__ import annotations

import torch

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ReplayMethod
from core.schema.params import AGEMParams


def project(grads: list[torch.Tensor], reference: list[torch.Tensor], epsilon: float) -> list[torch.Tensor]:
    dot = torch.stack([(g * r).sum() for g, r in zip(grads, reference, strict=False)]).sum()
    norm = torch.stack([r.square().sum() for r in reference]).sum()
    coefficient = dot.clamp(max=0) / (norm + epsilon)
    return [g - coefficient * r for g, r in zip(grads, reference, strict=False)]


class AGEM(ReplayMethod[AGEMParams]):
    def loss(self, batch: Batch, info: ContextInfo) -> torch.Tensor:
        self.remember(batch)
        return super().loss(batch, info)  # the plain loss: replay only steers the gradient

    def after_backward(self, info: ContextInfo) -> None:
        if info.context.index == 0 or len(self.buffer) == 0:
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        replay = self.replayed(self.config.train.batch_size, info.context.index)
        replay_grads = torch.autograd.grad(super().loss(replay, info), params, allow_unused=True)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        reference = [torch.zeros_like(p) if r is None else r for p, r in zip(params, replay_grads, strict=False)]
        for p, g in zip(params, project(grads, reference, self.params.epsilon), strict=False):
            p.grad = g
