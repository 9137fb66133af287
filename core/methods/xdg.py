"""Context-dependent gating, XdG (Masse, Grant & Freedman 2018); task-IL only.

Each context gets a fixed random mask over every fully connected hidden layer that switches off a
fraction `gating` of its units: gated units output exactly 0, so contexts train (and are tested on)
largely separate sub-networks. The masks are drawn once, from the run's seed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from core.methods.base import Method


def gating_masks(widths: list[int], contexts: int, gating: float, generator: torch.Generator) -> list[Tensor]:
    """Per hidden layer, a (contexts, width) 0/1 float mask with round(gating * width) zeros per row."""
    masks = []
    for width in widths:
        off = round(gating * width)
        rows = [(torch.randperm(width, generator=generator) >= off).float() for _ in range(contexts)]
        masks.append(torch.stack(rows))
    return masks


class XdG(Method):
    name = "xdg"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        layers = self.model.hidden_layers()
        if not layers:
            raise ValueError(f"method xdg: model.kind {self.config.model.kind} has no fully connected hidden "
                             f"layers to gate; use mlp, lenet5 or vdv-conv")
        widths: list[int] = []
        probes = [layer.register_forward_hook(lambda m, i, out: widths.append(out.shape[1])) for layer in layers]
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            self.model(torch.zeros(1, *self.benchmark.input_shape, device=self.device))
        self.model.train(was_training)
        for probe in probes:
            probe.remove()
        generator = torch.Generator().manual_seed(self.config.train.seed + 104729)
        self.masks = [m.to(self.device) for m in gating_masks(widths, self.scenario.contexts,
                                                              self.params.gating, generator)]
        self.current = 0
        for i, layer in enumerate(layers):
            layer.register_forward_hook(lambda module, inputs, out, i=i: out * self.masks[i][self.current])

    def before_context(self, info) -> None:
        self.current = info.context.index

    def predict(self, x: Tensor, context: int) -> Tensor:
        self.current = context
        return self.model(x)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = state["masks"]
