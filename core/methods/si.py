"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017).

loss = CE + c * sum_i Omega_i (theta_i - theta~_i)^2. During a context each parameter accumulates
its contribution to the drop of the *data* loss along the optimisation path: omega += -g * delta_theta
per step, g the gradient of the data loss alone. After the context: Omega += omega / (Delta^2 + xi),
Delta the parameter's total change over the context, theta~ <- theta, omega <- 0.

To keep the penalty out of g without a second backward pass, the loss is backpropagated without the
penalty, g is read from `.grad`, and the penalty's gradient 2c Omega (theta - theta~) is added to
`.grad` by hand before the optimiser step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.schema.params import SIParams


class SI(Method[SIParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.weights = [p for _, p in named]
        self.omega_total = [torch.zeros_like(p) for p in self.weights]  # Omega
        self.anchor = [p.detach().clone() for p in self.weights]  # theta~
        self.path = [torch.zeros_like(p) for p in self.weights]  # omega, this context
        self.start = [p.detach().clone() for p in self.weights]
        self.before_step: list[Tensor] = []
        self.data_grad: list[Tensor] = []
        self.consolidated = False

    def strength(self) -> float:
        """c, the penalty's weight (SIParams.resolve makes sure there is one)."""
        assert self.params.c is not None
        return self.params.c

    def penalty(self) -> Tensor:
        total = torch.zeros((), device=self.device)
        for p, omega, anchor in zip(self.weights, self.omega_total, self.anchor, strict=False):
            total = total + (omega * (p - anchor).square()).sum()
        return self.strength() * total

    def before_context(self, info: ContextInfo) -> None:
        self.start = [p.detach().clone() for p in self.weights]
        for w in self.path:
            w.zero_()

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        data_loss = super().loss(batch, info)
        if not self.consolidated:
            return data_loss
        return data_loss + self.penalty().detach()  # reported; its gradient is added in after_backward

    def after_backward(self, info: ContextInfo) -> None:
        self.data_grad = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self.weights]
        self.before_step = [p.detach().clone() for p in self.weights]
        if self.consolidated:
            c = self.strength()
            with torch.no_grad():
                for p, omega, anchor in zip(self.weights, self.omega_total, self.anchor, strict=False):
                    penalty_grad = 2 * c * omega * (p - anchor)
                    p.grad = penalty_grad if p.grad is None else p.grad.add_(penalty_grad)

    def after_step(self, info: ContextInfo) -> None:
        with torch.no_grad():
            for w, g, p, before in zip(self.path, self.data_grad, self.weights, self.before_step, strict=False):
                w.add_(-g * (p - before))

    def after_context(self, info: ContextInfo) -> None:
        with torch.no_grad():
            for i, p in enumerate(self.weights):
                delta = p - self.start[i]
                self.omega_total[i] += self.path[i] / (delta.square() + self.params.epsilon)
                self.anchor[i] = p.detach().clone()
        self.consolidated = True

    def state_dict(self) -> dict[str, Any]:
        return {"omega_total": dict(zip(self.names, self.omega_total, strict=False)),
                "anchor": dict(zip(self.names, self.anchor, strict=False)),
                "consolidated": self.consolidated}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.omega_total = [state["omega_total"][n] for n in self.names]
        self.anchor = [state["anchor"][n] for n in self.names]
        self.consolidated = state["consolidated"]
