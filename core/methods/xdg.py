"""Context-dependent gating, XdG (Masse, Grant & Freedman 2018); task-IL only.

Each context gets a fixed random mask over every fully connected hidden layer that switches off a
fraction `gating` of its units: gated units output exactly 0, so contexts train (and are tested on)
largely separate sub-networks. The masks are drawn once, from the run's seed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from core.methods.parts.base import ContextInfo, Method
from core.methods.parts.common import gating_masks, hidden_widths
from core.schema.params import XdGParams


class XdG(Method[XdGParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        layers = self.model.hidden_layers()
        if not layers:
            raise ValueError(f"method xdg: model.kind {self.config.model.kind} has no fully connected hidden "
                             f"layers to gate; use mlp, lenet5 or vdv-conv")
        widths = hidden_widths(self.model, self.benchmark.input_shape)
        generator = torch.Generator().manual_seed(self.config.train.seed + 104729)
        self.masks = [m.to(self.device) for m in gating_masks(widths, self.scenario.contexts,
                                                              self.params.gating, generator)]
        self.current = 0
        for i, layer in enumerate(layers):
            layer.register_forward_hook(lambda module, inputs, out, i=i: out * self.masks[i][self.current])

    def before_context(self, info: ContextInfo) -> None:
        self.current = info.context.index

    def predict(self, x: Tensor, context: int) -> Tensor:
        self.current = context
        return self.model(x)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = state["masks"]
