"""Separate networks: one network per context, trained only on its context (task-IL only).

Nothing is shared, so nothing is forgotten; the price is capacity. For a fair comparison the networks
together get about the parameter budget of the shared network: the hidden widths (mlp) or fc widths
(vdv-conv) are scaled down until contexts x per-network parameters fits. Models without a width to
scale (lenet5, ResNets) get full-size copies, and the worker log says so.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.models import build_model, count_parameters
from core.methods.parts.base import ContextInfo, Method
from core.schema.config import RunConfig
from core.schema.params import SeparateParams


class PerContextNetworks(nn.Module):
    """One network per context; `active` picks the one a forward pass uses, its outputs placed in that
    context's slot of the full head (zeros elsewhere, which task-IL never reads)."""

    def __init__(self, nets: list[nn.Module], classes_per_context: int):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.c = classes_per_context
        self.active = 0

    def forward(self, x: Tensor) -> Tensor:
        k, total = self.active, self.c * len(self.nets)
        return F.pad(self.nets[k](x), (k * self.c, total - (k + 1) * self.c))

    def hidden_layers(self) -> list[nn.Module]:
        return []


def budget_widths(config: RunConfig, input_shape: tuple[int, int, int], contexts: int, c: int) -> list[int] | None:
    """The largest scaled widths with contexts x parameters(one network) <= parameters(shared network)."""
    m = config.model
    key = {"mlp": "hidden", "vdv-conv": "fc_hidden"}.get(m.kind)
    if key is None:
        return None
    base = m.hidden if key == "hidden" else (m.fc_hidden or [2000, 2000])
    shared = count_parameters(build_model(m.kind, input_shape, contexts * c, hidden=m.hidden,
                                          batch_norm=m.batch_norm, fc_hidden=m.fc_hidden))

    def size(scale: float) -> int:
        widths = [max(1, round(w * scale)) for w in base]
        return contexts * count_parameters(build_model(m.kind, input_shape, c, batch_norm=m.batch_norm,
                                                       **{key: widths}))

    lo, hi = 0.0, 1.0
    for _ in range(20):  # bisection on the width scale
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if size(mid) <= shared else (lo, mid)
    return [max(1, round(w * lo)) for w in base]


class SeparateNetworks(Method[SeparateParams]):
    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        m, p = config.model, config.method
        c = config.benchmark.classes_per_context
        assert isinstance(p, SeparateParams) and c is not None
        contexts = head_size // c
        widths = p.hidden or budget_widths(config, input_shape, contexts, c)
        if widths is None:
            print(f"separate: model.kind {m.kind} has no width to scale; {contexts} full-size networks "
                  f"({contexts}x the shared parameter budget)", flush=True)
        key = "fc_hidden" if m.kind == "vdv-conv" else "hidden"
        options: dict[str, Any] = {"hidden": m.hidden, "fc_hidden": m.fc_hidden}
        if widths is not None:
            options[key] = widths
        nets = [build_model(m.kind, input_shape, c, batch_norm=m.batch_norm, **options) for _ in range(contexts)]
        print(f"separate: {contexts} networks with {key} {options[key]}, "
              f"{sum(count_parameters(n) for n in nets)} parameters in all", flush=True)
        return PerContextNetworks(nets, c)

    def before_context(self, info: ContextInfo) -> None:
        self.model.active = info.context.index

    def predict(self, x: Tensor, context: int) -> Tensor:
        self.model.active = context
        return self.model(x)
