"""Functional regularisation of memorable past, FROMP (Pan et al., NeurIPS 2020), as van de Ven's reference
runs it (`--fromp`: models/cl/fromp_optimizer.py, the 'fromp' selection of models/cl/memory_buffer.py,
train_fromp in train/train_task_based.py).

After context t, each of its classes keeps as memorable points X_t the `budget` training samples with the largest

    Lambda(x) = sum_c p_c(x) (1 - p_c(x))          (the trace of the softmax's GGN Hessian),

and the GGN diagonal is summed over the context's data: F += sum_x diag(J_x^T (diag p - p p^T) J_x), J_x the
Jacobian of the logits (EWC's exact Fisher, core/methods/parts/fisher.py, times the number of samples).
When context k begins, at theta_old (the parameters then), for each earlier context t and output c:

    m_t,c = softmax(f(X_t; theta_old))_c,    K_t,c = J_t,c Sigma J_t,c^T + eps I,
    J_t,c = d m_t,c / d theta at theta_old,  Sigma = diag(1 / (F + delta)),

and each step of context k minimises

    L = CE + tau/2 * sum_{t<k} sum_c (m_t,c(theta) - m_t,c)^T K_t,c^-1 (m_t,c(theta) - m_t,c)

on ceil(B / k) memorable points drawn per earlier context (with the matching block of K_t,c^-1); the step's
gradient is clipped to norm 1. The softmax runs over the outputs the scenario lets compete while context k is
learned (core/engine/scenarios.py): context t's own in task-IL, the shared head in domain-IL, every class trained so far
in class-IL.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.buffer import ReplayBuffer, classes_of, store_context
from core.methods.parts.fisher import fisher_diagonal, fisher_samples
from core.schema.params import FROMPParams


def softmax_kernels(model: nn.Module, x: Tensor, outputs: tuple[int, int], covariance: Tensor
                    ) -> tuple[Tensor, Tensor]:
    """m = softmax(f(x)[lo:hi]) (n, L), and per output c the kernel J_c diag(covariance) J_c^T (L, n, n), J_c the
    (n, P) Jacobian of m_c over every trainable parameter (flattened in `named_parameters` order)."""
    lo, hi = outputs
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def prob(p: dict[str, Tensor], xi: Tensor, c: int) -> Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0, lo:hi]
        return logits.float().softmax(0)[c]

    with torch.no_grad():
        m = model(x)[:, lo:hi].float().softmax(1)
    scale = covariance.sqrt()
    kernels = []
    for c in range(hi - lo):  # one output at a time: J_c is n x P, the whole J would be L times that
        g = vmap(grad(partial(prob, c=c)), in_dims=(None, 0))(params, x)
        j = torch.cat([g[n].flatten(1) for n in params], 1) * scale  # (n, P)
        kernels.append(j @ j.T)
    return m, torch.stack(kernels)


class FROMP(Method[FROMPParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.buffer = ReplayBuffer(self.device, per_class=self.params.budget)  # the memorable points X_t
        self.fisher: dict[str, Tensor] = {}  # F, summed over every context's data
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 4243)
        self.points: list[Tensor] = []  # X_t for each earlier context t, while a context is learned
        self.targets: list[Tensor] = []  # m_t: (n_t, L) softmax outputs at theta_old
        self.kernel_inv: list[Tensor] = []  # K_t^-1: (L, n_t, n_t), one per output

    def outputs(self, t: int, k: int) -> tuple[int, int]:
        """The head outputs whose softmax is read at context t's points while context k is learned."""
        return (0, self.scenario.trained_outputs(k)) if self.scenario.kind == "class" else self.scenario.active(t)

    def before_context(self, info: ContextInfo) -> None:
        k = info.context.index
        self.points, self.targets, self.kernel_inv = [], [], []
        if k == 0 or len(self.buffer) == 0:
            return
        assert self.buffer.x is not None and self.buffer.context is not None
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        covariance = torch.cat([(1 / (self.fisher[n] + self.params.prior_prec)).flatten() for n in names])
        was_training = self.model.training
        self.model.eval()
        try:
            with info.phase("kernel", total=k) as progress:
                for t in range(k):
                    x = self.buffer.x[self.buffer.context == t]  # once per context, not per step
                    m, kernel = softmax_kernels(self.model, x, self.outputs(t, k), covariance)
                    kernel = kernel.double() + self.params.jitter * torch.eye(x.shape[0], device=self.device,
                                                                              dtype=torch.float64)
                    self.points.append(x)
                    self.targets.append(m)
                    self.kernel_inv.append(torch.cholesky_inverse(torch.linalg.cholesky(kernel)).float())
                    progress(t + 1)
        finally:
            self.model.train(was_training)

    def penalty(self, batch_size: int, k: int) -> Tensor:
        """sum_t sum_c (m_t,c(theta) - m_t,c)^T K_t,c^-1 (m_t,c(theta) - m_t,c) on ceil(B / k) points per context."""
        per_context = math.ceil(batch_size / k)
        picks = [torch.randperm(x.shape[0], generator=self.generator, device=self.device)[:per_context]
                 for x in self.points]
        was_training = self.model.training
        self.model.eval()  # as the reference: memorable points see the network in eval mode
        logits = self.model(torch.cat([x[idx] for x, idx in zip(self.points, picks, strict=False)]))
        self.model.train(was_training)
        total, start = torch.zeros((), device=self.device), 0
        for t, idx in enumerate(picks):
            n = idx.shape[0]
            lo, hi = self.outputs(t, k)
            delta = logits[start : start + n, lo:hi].float().softmax(1) - self.targets[t][idx]  # (n, L)
            kernel_inv = self.kernel_inv[t][:, idx][:, :, idx]  # (L, n, n)
            total = total + torch.einsum("ic,cij,jc->", delta, kernel_inv, delta)
            start += n
        return total

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        current = super().loss(batch, info)
        if not self.points:
            return current
        return current + self.params.tau / 2 * self.penalty(batch.x.shape[0], batch.context)

    def after_backward(self, info: ContextInfo) -> None:
        if self.params.grad_clip_norm is not None:  # no host sync: the scale is computed on the device
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.params.grad_clip_norm)

    def after_context(self, info: ContextInfo) -> None:
        context, k = info.context, info.context.index
        x = context.inputs(context.x_train)
        lo, hi = self.outputs(k, k)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            chunks = x.split(self.config.train.eval_batch_size)
            p = torch.cat([self.model(chunk)[:, lo:hi].float().softmax(1) for chunk in chunks])
        self.model.train(was_training)
        score = (p * (1 - p)).sum(1)  # Lambda(x)
        order = {}
        for c in classes_of(context):
            members = (context.y_train == c).nonzero().squeeze(1)
            order[c] = members[score[members].argsort(descending=True)]
        store_context(self.buffer, context, order)
        if k == self.scenario.contexts - 1:
            return  # no context follows: the Fisher would not be used (as the reference)
        xs, ys = fisher_samples(context, None, self.generator)
        with info.phase("fisher", total=xs.shape[0]) as progress:
            fisher = fisher_diagonal(self.model, xs, ys, self.scenario, k, "all", self.generator, progress)
        for n, f in fisher.items():  # the mean over samples, summed as the reference sums it
            self.fisher[n] = self.fisher.get(n, torch.zeros_like(f)) + f * xs.shape[0]

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "fisher": self.fisher, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.fisher = state["fisher"]
        self.generator.set_state(state["generator"])
