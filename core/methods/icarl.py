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

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.buffer import (
    buffer_for,
    classes_of,
    exemplar_means,
    nearest_mean_scores,
    store_exemplars,
    union_batch,
)
from core.methods.parts.distill import sigmoid_targets
from core.schema.params import ICaRLParams


class ICaRL(Method[ICaRLParams]):
    needs_previous_model = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        total_classes = self.scenario.total_classes
        self.buffer = buffer_for(self.params, self.device, total_classes, reservoir=False)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 16180)
        self.class_means: Tensor | None = None  # (head, features); rows of classes without exemplars are NaN

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        k = batch.context
        old, seen = self.scenario.labels(k)  # the earlier contexts' classes: [0, old); with k's: [0, seen)
        if len(self.buffer) and self.params.replay == "union":
            batch = union_batch(self.buffer, batch, info.context.n_train, self.generator)
        x, y, ids = batch.x, batch.y, batch.contexts()
        if len(self.buffer) and self.params.replay != "union":  # extra-batch: the batch and as many exemplars
            stored = self.buffer.sample(x.shape[0], self.generator)
            x, y, ids = torch.cat([x, stored["x"]]), torch.cat([y, stored["y"]]), torch.cat([ids, stored["context"]])
        logits = self.model(x)
        if self.scenario.kind == "class":  # every class seen so far
            logits = logits[:, :seen]
        target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        if info.previous_model is not None and k > 0:
            with torch.no_grad():  # old classes: distil; new classes: labels
                target = sigmoid_targets(target, info.previous_model(x)[:, :old], self.params.temperature)
        if self.scenario.kind == "class":  # BCE summed over the classes, mean over the batch
            return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / x.shape[0]
        classes = torch.arange(logits.shape[1], device=x.device)  # task-IL: each sample's own context's classes
        active = self.scenario.context_of(classes).unsqueeze(0) == ids.unsqueeze(1)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (bce * active).sum(1).mean()

    def after_context(self, info: ContextInfo) -> None:
        context = info.context
        classes = classes_of(context)
        with info.phase("herding", total=len(classes)) as progress:

            def working() -> None:  # reports (and checks for a stop); all classes are herded at once
                progress(0)

            store_exemplars(self.buffer, self.model, context, self.params.selection, self.generator, working)
            self.class_means = exemplar_means(self.model, self.buffer, self.scenario.head_size, step=working)
            progress(len(classes))

    def predict(self, x: Tensor, context: int) -> Tensor | None:
        if self.class_means is None:
            return None  # untrained: fall back to the logits
        return nearest_mean_scores(self.model.features(x), self.class_means)

    def side_scores(self, x: Tensor, context: int) -> dict[str, Tensor]:
        return {"cnn": self.model(x)}  # its own rule is the nearest mean: the network's logits are the other

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state(),
                "class_means": self.class_means}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        self.class_means = state["class_means"]
