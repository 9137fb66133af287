"""Learning without Forgetting (Li & Hoiem 2017), as van de Ven's reference implementation runs it
(`--lwf`: models/classifier.py, loss_fn_kd, `lwf_weighting`).

The current inputs are replayed through the model of the previous context, f_old, and its outputs are
distilled at temperature T, KD_T(a, b) = -sum softmax(b/T) log softmax(a/T) * T^2 (core/methods/distill.py):

    L = CE(current batch) + w * KD_T(f(x), f_old(x))

What is distilled, and w, follow the scenario (k = previous contexts):
- task-IL: each previous context's head against f_old's, the mean over those k heads; w = k;
- domain-IL: the shared head; w = k;
- class-IL: the student's softmax runs over every class seen so far, f_old's targets cover the k*c old
  classes and give the current classes zero probability, so the distillation also pushes the current
  classes' logits down on current data; w = 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.base import Batch, ContextInfo, Method
from core.methods.distill import distillation
from core.methods.params import LwFParams


class LwF(Method[LwFParams]):
    needs_previous_model = True

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        logits = self.model(batch.x)  # (B, head)
        view, target = self.scenario.train_view(logits, batch.y, batch.context, batch.context_ids)
        current = F.cross_entropy(view, target)
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
        else:  # (B, (k+1)c) student against (B, kc) targets padded with zeros for the current classes
            kd = distillation(logits[:, : (k + 1) * c], old[:, : k * c], temperature)
        return current + kd
