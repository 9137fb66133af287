"""The three scenarios of van de Ven, Tuytelaars & Tolias (2022) as views on logits and labels.

Context k owns a contiguous range of global labels (core/engine/data.py cuts the data with `context_labels`):
[k*c, (k+1)*c) with c classes per context, or, after an uneven first context of f classes
(`benchmark.first_context_classes`, the B50-10 protocol of the class-IL papers), [0, f) and then
[f + (k-1)*c, f + k*c). So each view is a slice of the head:
- task-IL: the context is given; only its own outputs compete (a multi-headed output layer).
- domain-IL: one shared head of c outputs; the label is its position modulo c (an uneven first context folds
  its f classes onto the c outputs the same way).
- class-IL: one head over every class seen so far; the label is the global label.

Evaluating context j after training context i in class-IL lets the classes of contexts up to
max(i, j) compete: the model must tell the tested classes apart from everything it was shown.

Which class-IL outputs take part in training (`train.active_classes`, van de Ven's `--active-classes`):
`so-far` trains the outputs of the classes seen so far; `all` trains every output from the first context
on, so the classes still to come are pushed down as negatives and distillation targets cover the whole
head (the reference's default).

A regression benchmark (sine: one wave per context, one output per wave) keeps the task- and domain-IL views
with a numeric target: task-IL reads the output of the sample's own context, domain-IL the one shared output;
the criterion is the mean squared error and the score R^2 = 1 - SSE / SST (1: the wave exactly; 0: its mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def context_labels(context: int, classes_per_context: int, first_context_classes: int | None = None
                   ) -> tuple[int, int]:
    """The global labels [lo, hi) of `context`: c per context, or f for the first one and c for each after it
    (f = `first_context_classes`; none: c)."""
    c = classes_per_context
    f = c if first_context_classes is None else first_context_classes
    return (0 if context == 0 else f + (context - 1) * c), f + context * c


class ScenarioView:
    """The scenario `kind` over `contexts` contexts of `classes_per_context` classes each (c above), the first
    one of `first_context_classes` instead when given (f above)."""

    def __init__(self, kind: str, classes_per_context: int, contexts: int, active_classes: str = "so-far",
                 regression: bool = False, first_context_classes: int | None = None):
        if kind not in ("task", "domain", "class"):
            raise ValueError(f"unknown scenario {kind!r}")
        if active_classes not in ("so-far", "all"):
            raise ValueError(f"unknown active_classes {active_classes!r}")
        if regression and (kind == "class" or classes_per_context != 1 or first_context_classes not in (None, 1)):
            raise ValueError("regression: task- or domain-IL with one output per context")
        self.kind, self.classes_per_context, self.contexts = kind, classes_per_context, contexts
        self.first_context_classes = classes_per_context if first_context_classes is None else first_context_classes
        self.all_active = kind == "class" and active_classes == "all"
        self.regression = regression

    def labels(self, context: int) -> tuple[int, int]:
        """The global labels [lo, hi) that `context` owns."""
        return context_labels(context, self.classes_per_context, self.first_context_classes)

    def classes_seen(self, context: int) -> int:
        """Classes of contexts 0..`context` together: the labels below the end of `context`'s range."""
        return self.labels(context)[1]

    def context_of(self, labels: Tensor) -> Tensor:
        """The context that owns each global label (same shape as `labels`)."""
        c, f = self.classes_per_context, self.first_context_classes
        return ((labels - f).div(c, rounding_mode="floor") + 1).clamp_min(0)

    @property
    def total_classes(self) -> int:
        """Classes over every context (task- and class-IL's head)."""
        return self.classes_seen(self.contexts - 1)

    @property
    def head_size(self) -> int:
        return self.classes_per_context if self.kind == "domain" else self.total_classes

    def active(self, context: int, seen: int | None = None) -> tuple[int, int]:
        """The head outputs that compete for a sample of `context` once contexts 0..`seen` were trained."""
        if self.kind == "task":
            return self.labels(context)
        if self.kind == "domain":
            return 0, self.classes_per_context
        return 0, self.classes_seen(max(context, seen if seen is not None else context))

    def trained_outputs(self, context: int) -> int:
        """class-IL: how many head outputs (from the first) a loss while learning `context` covers."""
        return self.head_size if self.all_active else self.classes_seen(context)

    def old_outputs(self, previous: int) -> int:
        """class-IL: how many of the previous model's outputs are distillation targets while `previous`
        contexts lie behind; with `so-far`, the current classes are left out (they get zero probability)."""
        return self.head_size if self.all_active else self.labels(previous)[0]

    def target(self, y: Tensor, context: int) -> Tensor:
        if self.kind == "class":
            return y
        return y - self.labels(context)[0] if self.kind == "task" else y.remainder(self.classes_per_context)

    def train_view(self, logits: Tensor, y: Tensor, context: int, context_ids: Tensor | None = None
                   ) -> tuple[Tensor, Tensor]:
        """Logits and targets for the loss on a batch of `context` (or of mixed contexts, given their ids)."""
        if self.regression:
            return self.own_output(logits, context, context_ids), y
        if context_ids is not None and self.kind == "task":
            owner = self.context_of(torch.arange(logits.shape[1], device=logits.device))
            return logits.masked_fill(owner[None, :] != context_ids[:, None], float("-inf")), y
        if context_ids is not None and self.kind == "domain":
            return logits, y.remainder(self.classes_per_context)
        lo, hi = self.active(context)
        if self.all_active:
            hi = self.head_size
        return logits[:, lo:hi], self.target(y, context)

    def eval_view(self, logits: Tensor, y: Tensor, context: int, trained: int) -> tuple[Tensor, Tensor]:
        """Logits and targets for testing `context` after contexts 0..`trained` were learned."""
        if self.regression:
            return self.own_output(logits, context), y
        lo, hi = self.active(context, trained)
        return logits[:, lo:hi], self.target(y, context)

    def own_output(self, outputs: Tensor, context: int, context_ids: Tensor | None = None) -> Tensor:
        """Regression: each sample's prediction, (B,): its context's output (task-IL) or the shared one."""
        if self.kind == "domain":
            return outputs[:, 0]
        if context_ids is None:
            return outputs[:, context]
        return outputs.gather(1, context_ids[:, None]).squeeze(1)

    def criterion(self, view: Tensor, target: Tensor) -> Tensor:
        """The task loss on a view: cross-entropy, or the mean squared error for regression."""
        return F.mse_loss(view, target) if self.regression else F.cross_entropy(view, target)

    def loss(self, logits: Tensor, y: Tensor, context: int, context_ids: Tensor | None = None) -> Tensor:
        """The task loss of a batch of `context` (or of mixed contexts): the criterion on the training view."""
        return self.criterion(*self.train_view(logits, y, context, context_ids))

    def tally(self, view: Tensor, target: Tensor) -> Tensor:
        """Device sums for `score` (no host read): [hits, 0, 0], or [SSE, sum y, sum y^2] for regression."""
        if self.regression:
            y = target.float()
            return torch.stack([(view.float() - y).square().sum(), y.sum(), y.square().sum()])
        hits = (view.argmax(1) == target).sum().float()
        return torch.stack([hits, torch.zeros_like(hits), torch.zeros_like(hits)])

    def score(self, sums: list[float], n: int) -> float:
        """A context's test score from its summed tallies over `n` samples: the accuracy, or R^2."""
        if not self.regression:
            return sums[0] / max(n, 1)
        sse, total, squares = sums
        sst = squares - total * total / max(n, 1)
        return 1.0 - sse / sst if sst > 1e-12 else 0.0
