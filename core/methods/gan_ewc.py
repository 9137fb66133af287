"""EWC on a conditional GAN's generator (Seff et al. 2017), the regularisation baseline of Memory Replay GANs.

generator: -D(G(z, c)) + ac CE(D_cls(G(z, c)), c)  +  lambda/2 * sum_i F_i (theta_i - theta*_i)^2

A generator has no likelihood, so F is the empirical Fisher of its own loss: after context t, for samples
(z, c) with c over the classes seen, F_i += mean of (d [-D(G(z, c)) + ac CE(D_cls(G(z, c)), c)] / d theta_i)^2
against the critic of that moment, and theta* <- theta (one running Fisher and one anchor, as online EWC
with gamma = 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from core.methods.parts.base import ContextInfo
from core.methods.parts.gan import GANMethod, generator_loss
from core.schema.params import GANEWCParams


class GANEWC(GANMethod[GANEWCParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fisher: dict[str, Tensor] = {}  # F, summed over contexts
        self.anchor: dict[str, Tensor] = {}  # theta* after the last context

    def generator_penalty(self, info: ContextInfo) -> Tensor | None:
        if not self.fisher:
            return None
        total = sum((self.fisher[n] * (p - self.anchor[n]).square()).sum()
                    for n, p in self.model.generator.named_parameters())
        return 0.5 * self.params.lambda_ * total

    def after_context(self, info: ContextInfo) -> None:
        generator, critic = self.model.generator, self.model.critic
        seen = self.old_classes(info) + self.benchmark.classes_per_context
        n = self.params.fisher_n
        fisher = {name: torch.zeros_like(p) for name, p in generator.named_parameters()}
        c = torch.randint(seen, (n,), device=self.device)
        with info.phase("fisher", total=n) as progress:
            for i in range(n):  # one sample at a time: the squared gradient of each sample's loss
                loss = generator_loss(critic, self.model.sample(c[i : i + 1]), c[i : i + 1], seen,
                                      self.params.ac_weight).sum()
                grads = torch.autograd.grad(loss, list(generator.parameters()))
                for (name, _), g in zip(generator.named_parameters(), grads, strict=True):
                    fisher[name] += g.square() / n
                progress(i + 1)
        for name, p in generator.named_parameters():
            self.fisher[name] = self.fisher.get(name, 0) + fisher[name]
            self.anchor[name] = p.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fisher, self.anchor = state["fisher"], state["anchor"]
