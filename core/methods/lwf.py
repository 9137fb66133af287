"""Learning without Forgetting (Li & Hoiem 2017), as van de Ven's reference implementation runs it
(`--lwf`: models/classifier.py, loss_fn_kd, `lwf_weighting`; task-free: train/train_stream.py).

The current inputs are replayed through the model of the previous context, f_old, and its outputs are
distilled at temperature T, KD_T(a, b) = -sum softmax(b/T) log softmax(a/T) * T^2 (core/methods/parts/distill.py):

    L = CE(current batch) + w * KD_T(f(x), f_old(x))

What is distilled, and w, follow the scenario (k = previous contexts):
- task-IL: each previous context's head against f_old's, the mean over those k heads; w = k;
- domain-IL: the shared head; w = k;
- class-IL: the student's softmax runs over every class seen so far, f_old's targets cover the k*c old
  classes and give the current classes zero probability, so the distillation also pushes the current
  classes' logits down on current data; w = 1. With `train.active_classes = "all"` both cover the whole
  head (the reference's default).

On a task-free stream (benchmark.stream) there is no previous context: f_old is a snapshot of the model taken
every `update_every` iterations (the trainer calls `after_context` on that schedule), and w = 1 (van de Ven's
rnt = 1/2 halves both terms alike, which Adam does not see). task-IL: the heads of every context the snapshot
had seen (his per-sample draw of one of them, in expectation); domain-IL: the shared head; class-IL: the
student over the classes seen so far against the snapshot's over the classes it had seen, the newer ones at
zero probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.common import frozen_copy
from core.methods.parts.distill import distillation
from core.schema.params import LwFParams


class LwF(Method[LwFParams]):
    needs_previous_model = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_stream = self.config.benchmark.stream != "academic"
        self.teacher: torch.nn.Module | None = None  # on a stream: the last snapshot
        self.teacher_seen = 0  # ... and the last context it could have seen
        self.seen = 0  # the last context the stream could have drawn (a host int: no sync)

    def before_context(self, info: ContextInfo) -> None:
        if self.on_stream and self.teacher is None and info.previous_model is not None:  # a resumed stream
            self.teacher, self.teacher_seen = info.previous_model, max(info.stage - 1, 0)

    def after_context(self, info: ContextInfo) -> None:
        if self.on_stream:  # every update_every iterations
            self.teacher, self.teacher_seen = frozen_copy(self.model), self.seen

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        logits = self.model(batch.x)  # (B, head)
        view, target = self.scenario.train_view(logits, batch.y, batch.context, batch.context_ids)
        current = F.cross_entropy(view, target)
        if self.on_stream:
            self.seen = batch.context
            return current if self.teacher is None else current + self.stream_distillation(logits, batch.x)
        k = batch.context  # previous contexts
        if info.previous_model is None or k == 0:
            return current
        with torch.no_grad():
            old = info.previous_model(batch.x)  # (B, head)
        c, temperature = self.scenario.classes_per_context, self.params.temperature
        if self.scenario.kind == "task":
            kd = k * torch.stack([distillation(logits[:, j * c : (j + 1) * c], old[:, j * c : (j + 1) * c],
                                               temperature) for j in range(k)]).mean()
        elif self.scenario.kind == "domain":
            kd = k * distillation(logits, old, temperature)
        else:  # so-far: (B, (k+1)c) student against (B, kc) targets padded with zeros for the current classes
            view = self.scenario
            kd = distillation(logits[:, : view.trained_outputs(k)], old[:, : view.old_outputs(k)], temperature)
        return current + kd

    def stream_distillation(self, logits: Tensor, x: Tensor) -> Tensor:
        """KD_T against the last snapshot on the current inputs, over what the snapshot had seen."""
        assert self.teacher is not None
        with torch.no_grad():
            old = self.teacher(x)  # (B, head)
        c, temperature, s = self.scenario.classes_per_context, self.params.temperature, self.teacher_seen
        if self.scenario.kind == "task":
            return torch.stack([distillation(logits[:, j * c : (j + 1) * c], old[:, j * c : (j + 1) * c],
                                             temperature) for j in range(s + 1)]).mean()
        if self.scenario.kind == "domain":
            return distillation(logits, old, temperature)
        view = self.scenario  # (B, classes so far) against (B, classes the snapshot had seen)
        return distillation(logits[:, : view.trained_outputs(self.seen)], old[:, : view.trained_outputs(s)],
                            temperature)
