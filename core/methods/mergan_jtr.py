"""MeRGAN joint training with replay (Wu et al. 2018, section 3.2).

Before context t the generator G_{t-1} is frozen; while G_t and D_t learn, it draws samples of every old
class, and they join the new context's data as "real" images with their intended labels:

    S_t = { (x, y) of context t }  U  { (G_{t-1}(z, c), c) : c ~ old classes }
    critic:    D(G_t(z, c)) - D(x) + gp (||grad D(x_hat)|| - 1)^2 + ac CE(D_cls(x), y),   (x, y) ~ S_t
    generator: -D(G_t(z, c)) + ac CE(D_cls(G_t(z, c)), c),                              c ~ labels of S_t

The replayed share of a batch is old / seen classes, so every class seen is drawn as often.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.methods.parts.base import ContextInfo
from core.methods.parts.gan import GANMethod
from core.schema.params import MeRGANJTRParams


class MeRGANJTR(GANMethod[MeRGANJTRParams]):
    needs_previous_model = True  # info.previous_model: the ConditionalGAN after context t-1, frozen

    def real_batch(self, x: Tensor, y: Tensor, info: ContextInfo) -> tuple[Tensor, Tensor]:
        old = self.old_classes(info)
        if old == 0 or info.previous_model is None:
            return x, y
        n = x.shape[0]
        m = round(n * old / (old + self.benchmark.classes_per_context))  # class-balanced over the classes seen
        y_old = torch.randint(old, (m,), device=x.device)
        with torch.no_grad():
            x_old = info.previous_model.sample(y_old)  # G_{t-1}(z, c)
        return torch.cat([x[: n - m], x_old]), torch.cat([y[: n - m], y_old])
