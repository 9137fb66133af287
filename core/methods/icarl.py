"""iCaRL (Rebuffi et al. 2017): exemplars of every class chosen by herding, a binary cross-entropy whose
targets for old classes are the previous model's sigmoid outputs (distillation), on batches drawn from the
union of the current data and the exemplars, and prediction by the nearest mean of exemplars in the
L2-normalised feature space. `replay = extra-batch` trains on the batch plus as many exemplars instead (about
twice the work per step; cltui's protocol before the reference one became the default).

Herding picks, one at a time, the sample that brings the mean of the chosen exemplars closest to the class
mean, vectorised over all candidates and all new classes at once. `selection = random` stores random
samples instead, the classic ablation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.buffer import buffer_for, classes_of, random_order, store_context
from core.methods.parts.distill import sigmoid_targets
from core.schema.params import ICaRLParams


def herding_order(features: Tensor, labels: Tensor, classes: list[int], m: int,
                  step: Callable[[], None] = lambda: None) -> dict[int, Tensor]:
    """For each class, the indices (into features) of its first min(m, n_c) herding picks, in order.
    `step()` is called after every pick (a stop check: no host sync, no random numbers)."""
    features = F.normalize(features, dim=1)
    members = [(labels == c).nonzero().squeeze(1) for c in classes]  # once per consolidation
    counts = [int(idx.shape[0]) for idx in members]
    n_max, steps = max(counts), min(m, max(counts))
    padded = torch.zeros(len(classes), n_max, features.shape[1], device=features.device)
    valid = torch.zeros(len(classes), n_max, dtype=torch.bool, device=features.device)
    for i, idx in enumerate(members):
        padded[i, : counts[i]] = features[idx]
        valid[i, : counts[i]] = True
    mean = padded.sum(1) / torch.tensor(counts, device=features.device).unsqueeze(1)
    chosen_sum = torch.zeros_like(mean)
    rows = torch.arange(len(classes), device=features.device)
    picks = []
    for k in range(1, steps + 1):
        candidate_means = (chosen_sum.unsqueeze(1) + padded) / k
        distance = (mean.unsqueeze(1) - candidate_means).norm(dim=2).masked_fill(~valid, float("inf"))
        pick = distance.argmin(1)
        picks.append(pick)
        chosen_sum += padded[rows, pick]
        valid[rows, pick] = False
        step()
    order = torch.stack(picks, 1)
    return {c: members[i][order[i, : min(m, counts[i])]] for i, c in enumerate(classes)}


class ICaRL(Method[ICaRLParams]):
    needs_previous_model = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        total_classes = self.scenario.classes_per_context * self.scenario.contexts
        self.buffer = buffer_for(self.params, self.device, total_classes, reservoir=False)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 16180)
        self.class_means: Tensor | None = None  # (head, features); rows of classes without exemplars are NaN

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        k, c = batch.context, self.scenario.classes_per_context
        x, y = batch.x, batch.y
        ids = batch.contexts()
        if len(self.buffer) and self.params.replay == "union":
            # a batch from the union of the context's data and the exemplars: each of its samples is an exemplar
            # with probability M / (N + M) (sizes known on the host: no sync)
            share = len(self.buffer) / (len(self.buffer) + info.context.n_train)
            stored = self.buffer.sample(x.shape[0], self.generator)
            swap = torch.rand(x.shape[0], generator=self.generator, device=x.device) < share  # (B,)
            x = torch.where(swap.view(-1, *[1] * (x.dim() - 1)), stored["x"], x)
            y, ids = torch.where(swap, stored["y"], y), torch.where(swap, stored["context"], ids)
        elif len(self.buffer):  # extra-batch: the batch and as many exemplars
            stored = self.buffer.sample(x.shape[0], self.generator)
            x, y, ids = torch.cat([x, stored["x"]]), torch.cat([y, stored["y"]]), torch.cat([ids, stored["context"]])
        logits = self.model(x)
        if self.scenario.kind == "class":  # every class seen so far: the first (k + 1) c outputs
            logits = logits[:, : (k + 1) * c]
        target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        if info.previous_model is not None and k > 0:
            with torch.no_grad():  # old classes: distil; new classes: labels
                target = sigmoid_targets(target, info.previous_model(x)[:, : k * c], self.params.temperature)
        if self.scenario.kind == "class":  # BCE summed over the classes, mean over the batch
            return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / x.shape[0]
        classes = torch.arange(logits.shape[1], device=x.device)  # task-IL: each sample's own context's classes
        active = (classes.unsqueeze(0) // c) == ids.unsqueeze(1)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (bce * active).sum(1).mean()

    def after_context(self, info: ContextInfo) -> None:
        context = info.context
        classes = classes_of(context)
        with info.phase("herding", total=len(classes)) as progress:

            def working() -> None:  # reports (and checks for a stop); all classes are herded at once
                progress(0)

            if self.params.selection == "herding":
                order = herding_order(self.features(context.inputs(context.x_train), step=working),
                                      context.y_train, classes,
                                      self.buffer.quota(len(self.buffer.classes) + len(classes)), working)
            else:
                order = random_order(context.y_train, classes, self.generator)
            store_context(self.buffer, context, order)
            self.class_means = self.exemplar_means(step=working)
            progress(len(classes))

    @torch.no_grad()
    def features(self, x: Tensor, batch: int = 2048, step: Callable[[], None] = lambda: None) -> Tensor:
        """The model's features of x in eval mode, `batch` inputs at a time; `step()` after each batch."""
        was_training = self.model.training
        self.model.eval()
        try:
            parts = []
            for i in range(0, x.shape[0], batch):
                parts.append(self.model.features(x[i : i + batch]))
                step()
            out = torch.cat(parts)
        finally:
            self.model.train(was_training)
        return out

    def exemplar_means(self, step: Callable[[], None] = lambda: None) -> Tensor:
        """Mean of each class's L2-normalised exemplar features, normalised again (iCaRL's class prototypes)."""
        assert self.buffer.x is not None and self.buffer.y is not None
        feats = F.normalize(self.features(self.buffer.x, step=step), dim=1)
        head = self.scenario.head_size
        sums = torch.zeros(head, feats.shape[1], device=feats.device).index_add_(0, self.buffer.y, feats)
        counts = torch.zeros(head, device=feats.device).index_add_(0, self.buffer.y, torch.ones_like(self.buffer.y,
                                                                                              dtype=feats.dtype))
        means = F.normalize(sums / counts.clamp_min(1).unsqueeze(1), dim=1)
        return means.masked_fill((counts == 0).unsqueeze(1), float("nan"))

    def predict(self, x: Tensor, context: int) -> Tensor | None:
        if self.class_means is None:
            return None  # untrained: fall back to the logits
        feats = F.normalize(self.model.features(x), dim=1)
        distance = torch.cdist(feats, self.class_means.nan_to_num(0.0)).square()
        missing = torch.isnan(self.class_means[:, 0])
        return (-distance).masked_fill(missing.unsqueeze(0), float("-inf"))

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state(),
                "class_means": self.class_means}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        self.class_means = state["class_means"]
