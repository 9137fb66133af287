"""BiC, bias correction (Wu et al. 2019, "Large scale incremental learning"). Stage 1 trains on batches drawn from
the union of the context's data and the exemplars, less a held-out share of both, with

    L = (1 - lam) * CE(q(x), y) + lam * KD_T(q(x)[:, :old], q_old(x)[:, :old]),   lam = old / seen classes

where q are the bias-corrected logits (below) of the model and of the model after the previous context, and KD_T
the cross-entropy between their softmaxes at temperature T over the old classes (no T^2 factor, as WA). Stage 2,
after each context from the second on, freezes the network and fits a bias layer on the new classes' logits only,

    q_k = alpha * o_k + beta   for the new classes k,   q_k = o_k for the old ones,

by CE over the classes seen on the held-out samples: `val_share` of the exemplars each old class kept and as many
of each new class's samples (the paper's balanced 9:1 split; PyCIL's count; every class keeps one sample to train
on, however few it has), with SGD for `bias_epochs` passes (PyCIL's schedule: on a held-out set this small the loss
often has no minimum, and a fit run to convergence sends alpha to hundreds). Every context's layer stays in place
after it (the first context has none). The exemplars are chosen by herding into a memory of `memory_total` shared
by the classes seen (core/methods/parts/buffer.py's ExemplarMethod).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.engine.data import Context
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, ReplayBuffer, classes_of, union_batch
from core.methods.parts.distill import distillation
from core.schema.params import BiCParams


def corrected(logits: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """The bias layers applied: q = alpha * o + beta per output (alpha 1 and beta 0 outside the corrected ranges)."""
    return logits * alpha + beta


def fit_bias(logits: Tensor, y: Tensor, old: int, seen: int, alpha: Tensor, beta: Tensor, epochs: int = 250,
             lr: float = 0.1, generator: torch.Generator | None = None, step: Callable[[], None] = lambda: None
             ) -> tuple[float, float]:
    """Fit the bias layer of the new classes (outputs old..seen-1) on held-out `logits` (N, >= seen) with labels
    `y`, by CE over the `seen` classes; the earlier layers (alpha, beta elsewhere) stay as they are. Writes the
    fitted pair into alpha[old:seen], beta[old:seen] and returns it.

    `epochs` passes in batches of 128, SGD with momentum 0.9, weight decay 2e-4 and the rate divided by 10 at
    40%, 60% and 80% of them (PyCIL's schedule). The held-out set is small (a few samples per class) and often
    separable, where the loss has no minimum: a fit run to convergence sends alpha to hundreds; this schedule, as
    the paper's, stops near the identity. `step()` after each epoch (a stop check)."""
    logits = logits[:, :seen].detach().float()
    a0, b0 = alpha[:seen].clone(), beta[:seen].clone()
    new = torch.zeros(seen, dtype=torch.bool, device=logits.device)
    new[old:] = True
    pair = torch.tensor([1.0, 0.0], device=logits.device, requires_grad=True)  # (alpha, beta), the identity first
    optimiser = torch.optim.SGD([pair], lr=lr, momentum=0.9, weight_decay=2e-4)
    milestones = {round(f * epochs) for f in (0.4, 0.6, 0.8)}
    for epoch in range(epochs):
        if epoch in milestones:
            optimiser.param_groups[0]["lr"] *= 0.1
        order = torch.randperm(len(y), generator=generator, device=generator.device if generator else None)
        for i in range(0, len(y), 128):
            rows = order[i : i + 128].to(logits.device)
            optimiser.zero_grad()
            a, b = torch.where(new, pair[0], a0), torch.where(new, pair[1], b0)
            F.cross_entropy(corrected(logits[rows], a, b), y[rows]).backward()
            optimiser.step()
        step()
    fitted = pair.detach()
    alpha[old:seen], beta[old:seen] = fitted[0], fitted[1]
    return float(fitted[0]), float(fitted[1])


class BiC(ExemplarMethod[BiCParams]):
    needs_previous_model = True
    seed_offset = 31415

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        head = self.scenario.head_size
        self.alpha = torch.ones(head, device=self.device)  # every context's bias layer, per output
        self.beta = torch.zeros(head, device=self.device)
        self.rows: Tensor | None = None  # the context's training rows stage 1 learns from (the rest held out)
        self.held_new: Tensor | None = None  # rows of the context's training set held out
        self.memory = self.buffer  # the exemplars stage 1 learns from (the rest held out)
        self.held_old: ReplayBuffer | None = None

    def before_context(self, info: ContextInfo) -> None:
        context = info.context
        self.rows, self.held_new, self.memory, self.held_old = None, None, self.buffer, None
        if not len(self.buffer):
            return  # the first context: nothing to correct, every sample trains
        classes = classes_of(context)
        held = max(1, int(self.params.val_share * self.buffer.quota(len(self.buffer.classes))))  # per class
        keep_old, hold_old = [], []
        for c in self.buffer.classes:  # the last of each class's exemplars (herding's least wanted) are held out
            rows = self.buffer.class_rows(c)
            n = min(held, rows.shape[0] - 1)
            keep_old.append(rows[: rows.shape[0] - n])
            hold_old.append(rows[rows.shape[0] - n :])
        self.memory, self.held_old = self.buffer.subset(torch.cat(keep_old)), self.buffer.subset(torch.cat(hold_old))
        perm = torch.randperm(context.n_train, generator=self.generator, device=self.generator.device)
        perm = perm.to(context.y_train.device)
        shuffled = context.y_train[perm]
        members = [perm[shuffled == c] for c in classes]  # a new class keeps one sample at least, as an old one
        hold_new = torch.cat([m[: min(held, m.shape[0] - 1)] for m in members])
        keep = torch.ones(context.n_train, dtype=torch.bool, device=context.y_train.device)
        keep[hold_new] = False
        self.rows, self.held_new = keep.nonzero().squeeze(1), hold_new

    def training_rows(self, context: Context) -> Tensor | None:
        return self.rows

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        n_train = info.context.n_train if self.rows is None else self.rows.shape[0]
        if len(self.memory):
            batch = union_batch(self.memory, batch, n_train, self.generator)
        logits = corrected(self.model(batch.x), self.alpha, self.beta)
        ce = F.cross_entropy(logits[:, : self.scenario.trained_outputs(batch.context)], batch.y)
        old = self.scenario.labels(batch.context)[0]  # classes of the earlier contexts
        if info.previous_model is None or old == 0:
            return ce
        with torch.no_grad():  # the previous model with the bias layers it had (the new classes' is the identity)
            teacher = corrected(info.previous_model(batch.x), self.alpha, self.beta)[:, :old]
        temperature = self.params.temperature
        kd = distillation(logits[:, :old].float(), teacher.float(), temperature) / temperature**2  # no T^2
        lam = old / self.scenario.classes_seen(batch.context)
        return (1 - lam) * ce + lam * kd

    def held_out(self, context: Context) -> tuple[Tensor, Tensor]:
        """The held-out samples (inputs as the network sees them, labels): the exemplars and the new data."""
        assert self.held_new is not None and self.held_old is not None and self.held_old.x is not None
        assert self.held_old.y is not None
        x = torch.cat([self.held_old.x, context.inputs(context.x_train[self.held_new])])
        return x, torch.cat([self.held_old.y, context.y_train[self.held_new]])

    def after_context(self, info: ContextInfo) -> None:
        context = info.context
        old, seen = self.scenario.labels(context.index)
        if self.held_new is not None:
            with info.phase("bias", total=self.params.bias_epochs) as progress:
                x, y = self.held_out(context)
                was_training = self.model.training
                self.model.eval()
                with torch.no_grad():
                    logits = torch.cat([self.model(x[i : i + 1024]) for i in range(0, x.shape[0], 1024)])
                self.model.train(was_training)
                done = iter(range(1, self.params.bias_epochs + 1))
                fit_bias(logits, y, old, seen, self.alpha, self.beta, self.params.bias_epochs, self.params.bias_lr,
                         self.generator, lambda: progress(next(done)))
        self.rows, self.held_new, self.memory, self.held_old = None, None, self.buffer, None
        self.remember(info)

    def predict(self, x: Tensor, context: int) -> Tensor | None:
        return corrected(self.model(x), self.alpha, self.beta)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "alpha": self.alpha, "beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.alpha, self.beta = state["alpha"], state["beta"]
