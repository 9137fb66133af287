"""DER++ (Buzzega et al. 2020): a reservoir buffer of (x, y, logits) filled as batches stream by; the loss is
CE(current) + alpha * MSE(f(x_buf), stored logits) + beta * CE(f(x'_buf), y'_buf), with two independent
replay batches. A per-class budget sets the reservoir's capacity to budget x all classes of the run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.buffer import buffer_for
from core.schema.params import DERPPParams


class DERPP(Method[DERPPParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        total_classes = self.scenario.total_classes
        self.buffer = buffer_for(self.params, self.device, total_classes, reservoir=True)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 27183)

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        logits = self.model(batch.x)
        view, target = self.scenario.train_view(logits, batch.y, batch.context, batch.context_ids)
        loss = F.cross_entropy(view, target)
        n = batch.x.shape[0]
        if len(self.buffer) > 0:
            first = self.buffer.sample(n, self.generator)
            loss = loss + self.params.alpha * F.mse_loss(self.model(first["x"]), first["logits"])
            second = self.buffer.sample(n, self.generator)
            view, target = self.scenario.train_view(self.model(second["x"]), second["y"], batch.context,
                                                    second["context"])
            loss = loss + self.params.beta * F.cross_entropy(view, target)
        self.buffer.add_reservoir(batch.x, batch.y, batch.contexts(), logits.detach().float(), self.generator)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
