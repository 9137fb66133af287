"""Elastic weight consolidation (Kirkpatrick et al. 2017) and online EWC (Schwarz et al. 2018).

loss = CE + lambda/2 * sum_contexts sum_i F_i (theta_i - theta*_i)^2, with F the diagonal Fisher
information on the context's training data (core/methods/parts/fisher.py).

Offline EWC keeps one (F, theta*) pair per context. Their sum is a single quadratic:
sum_t F_t (theta - a_t)^2 = A (theta - m)^2 + const with A = sum_t F_t and m = sum_t F_t a_t / A,
so the per-step cost does not grow with the number of contexts. Online EWC keeps one pair:
F <- gamma F + F_new, theta* <- theta.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.fisher import fisher_diagonal, fisher_samples
from core.schema.params import EWCParams, OnlineEWCParams

EWCParamsT = TypeVar("EWCParamsT", bound=EWCParams)


class FisherPenalty(Method[EWCParamsT]):
    """What offline and online EWC share: the penalty lambda/2 * (sum_i A_i (theta_i - m_i)^2 + const) and a
    Fisher after every context; they differ only in how the new Fisher joins the old ones (`consolidate`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.importance: dict[str, Tensor] = {}  # A: summed (or decayed) Fisher
        self.anchor: dict[str, Tensor] = {}  # m: Fisher-weighted mean of the anchors
        self.offset = torch.zeros((), dtype=torch.float64, device=self.device)  # the const, for the loss value
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 7919)

    def penalty(self) -> Tensor:
        lambda_ = self.params.lambda_
        assert lambda_ is not None  # EWCParams.resolve asks for one
        total = torch.zeros((), device=self.device)
        for n, p in self.model.named_parameters():
            if n in self.importance:
                total = total + (self.importance[n] * (p - self.anchor[n]).square()).sum()
        return 0.5 * lambda_ * (total + self.offset.float())

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        loss = super().loss(batch, info)
        return loss + self.penalty() if self.importance else loss

    def after_context(self, info: ContextInfo) -> None:
        x, y = fisher_samples(info.context, self.params.fisher_n, self.generator)
        with info.phase("fisher", total=x.shape[0]) as progress:
            fisher = fisher_diagonal(self.model, x, y, self.scenario, info.context.index,
                                     self.params.fisher_labels, self.generator, progress)
        theta = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in fisher}
        for n, f in fisher.items():
            self.consolidate(n, f, theta[n])

    def consolidate(self, n: str, f: Tensor, theta: Tensor) -> None:
        """Join parameter `n`'s new Fisher `f`, taken at `theta`, to its importance and anchor."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"importance": self.importance, "anchor": self.anchor, "offset": self.offset,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.importance, self.anchor, self.offset = state["importance"], state["anchor"], state["offset"]
        self.generator.set_state(state["generator"])


class EWC(FisherPenalty[EWCParams]):
    """Offline EWC: one (F, theta*) pair per context, kept as their sum A (theta - m)^2 + const."""

    def consolidate(self, n: str, f: Tensor, theta: Tensor) -> None:
        if n not in self.importance:
            self.importance[n], self.anchor[n] = f, theta
            return
        # A (theta - m)^2 + const with A = A_old + F, m = (A_old m_old + F theta) / A
        a_old, m_old = self.importance[n].double(), self.anchor[n].double()
        f64, t64 = f.double(), theta.double()
        total = a_old + f64
        mean = torch.where(total > 0, (a_old * m_old + f64 * t64) / total.clamp_min(1e-300), t64)
        self.offset += (a_old * m_old.square() + f64 * t64.square() - total * mean.square()).sum()
        self.anchor[n], self.importance[n] = mean.float(), total.float()


class OnlineEWC(FisherPenalty[OnlineEWCParams]):
    """Online EWC: one running Fisher F <- gamma F + F_new, and one anchor theta* <- theta."""

    def consolidate(self, n: str, f: Tensor, theta: Tensor) -> None:
        old = self.importance.get(n)
        self.importance[n] = f if old is None else self.params.gamma * old + f
        self.anchor[n] = theta
