"""Learning without Forgetting (Li & Hoiem 2017), as in van de Ven et al. (2022).

The current inputs are replayed through the model of the previous context, f_old, and its outputs
are distilled at temperature T: KD_T(a, b) = -sum softmax(b/T) log softmax(a/T), scaled by T^2 so
the gradients keep their size. What is distilled follows the scenario:
- task-IL: each previous context's head, averaged over those contexts;
- domain-IL: the shared head;
- class-IL: the classes of the previous contexts.
The current context's cross-entropy and the distillation are weighted 1/t and 1 - 1/t (t = contexts
seen, counting this one), as for every replay-style method.
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
        logits = self.model(batch.x)
        view, target = self.scenario.train_view(logits, batch.y, batch.context, batch.context_ids)
        current = F.cross_entropy(view, target)
        k = batch.context
        if info.previous_model is None or k == 0:
            return current
        with torch.no_grad():
            old = info.previous_model(batch.x)
        c, temperature = self.scenario.classes_per_context, self.params.temperature
        if self.scenario.kind == "task":
            kd = torch.stack([distillation(logits[:, j * c : (j + 1) * c], old[:, j * c : (j + 1) * c], temperature)
                              for j in range(k)]).mean()
        elif self.scenario.kind == "domain":
            kd = distillation(logits, old, temperature)
        else:
            kd = distillation(logits[:, : k * c], old[:, : k * c], temperature)
        t = k + 1
        return current / t + (1 - 1 / t) * kd
