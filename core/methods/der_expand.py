"""DER, dynamically expandable representation (Yan et al. 2021, "DER: dynamically expandable representation for
class incremental learning"); `derpp` is Buzzega et al.'s dark experience replay, another method. Each context t
adds a feature extractor F_t, started from a copy of F_{t-1}; the older ones are frozen (weights and batch-norm
statistics). The classifier H reads all of them at once,

    u(x) = [F_0(x), ..., F_t(x)],   logits = H(u(x)),

its rows and columns of earlier contexts kept and the new extractor's columns freshly initialised, and an
auxiliary classifier H_a on F_t(x) alone tells the new classes apart and from the old ones, taken as one class:

    L = CE(H(u(x)), y) + aux_weight * CE(H_a(F_t(x)), y_a),   y_a = 0 for an old class, 1 + its rank if new,

on batches drawn from the context's data and the exemplars together. The exemplars are chosen by herding (in
u's space) into a memory of `memory_total` shared by the classes seen. Every extractor the run will need is
built at the start (one per context), so a checkpoint always has the same shape; only the first t + 1 work.
Not here: the paper's channel-level pruning of each new extractor (its optional mask and sparsity loss).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.models import build_model
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, union_batch
from core.schema.config import RunConfig
from core.schema.params import DERExpandParams


class ExpandingNet(nn.Module):
    """`contexts` feature extractors of `dim` features each; the first `active` work, the last of them learns."""

    def __init__(self, extractors: list[nn.Module], dim: int, outputs: int, aux_outputs: int):
        super().__init__()
        self.extractors = nn.ModuleList(extractors)
        self.dim, self.active = dim, 1
        self.head = nn.Linear(dim * len(extractors), outputs)
        self.aux = nn.Linear(dim, aux_outputs)

    def features(self, x: Tensor) -> Tensor:
        """u(x): every working extractor's features side by side, (N, active * dim)."""
        return torch.cat([self.extractors[k](x) for k in range(self.active)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        width = self.active * self.dim
        return F.linear(self.features(x), self.head.weight[:, :width], self.head.bias)

    def train(self, mode: bool = True) -> ExpandingNet:
        super().train(mode)
        for k in range(self.active - 1):  # the frozen extractors keep their batch-norm statistics
            self.extractors[k].eval()
        return self

    @torch.no_grad()
    def expand(self, active: int) -> None:
        """Start extractor `active - 1` from a copy of the one before it, freeze the older ones, initialise its
        columns of the classifier and the auxiliary classifier afresh."""
        self.active = active
        new = self.extractors[active - 1]
        new.load_state_dict(self.extractors[active - 2].state_dict())
        for k in range(active - 1):
            self.extractors[k].requires_grad_(False)
        bound = 1 / math.sqrt(self.head.in_features)
        self.head.weight[:, (active - 1) * self.dim : active * self.dim].uniform_(-bound, bound)
        self.aux.reset_parameters()
        self.train(self.training)


class DERExpand(ExemplarMethod[DERExpandParams]):
    seed_offset = 22360

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        m, contexts = config.model, config.benchmark.contexts
        nets = [build_model(m.kind, input_shape, 1, hidden=m.hidden, batch_norm=m.batch_norm, fc_hidden=m.fc_hidden)
                for _ in range(contexts)]
        per = config.benchmark.classes_per_context
        return ExpandingNet([n.features for n in nets], nets[0].feature_dim, head_size, per + 1)

    def before_context(self, info: ContextInfo) -> None:
        if info.context.index > 0:
            self.model.expand(info.context.index + 1)

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        if len(self.buffer):
            batch = union_batch(self.buffer, batch, info.context.n_train, self.generator)
        old, seen = self.scenario.labels(batch.context)
        net = self.model
        features = net.features(batch.x)
        logits = F.linear(features, net.head.weight[:, : features.shape[1]], net.head.bias)
        loss = F.cross_entropy(logits[:, :seen], batch.y)
        if old == 0:
            return loss
        newest = features[:, -net.dim :]
        aux_target = torch.where(batch.y >= old, batch.y - old + 1, 0)
        aux = F.cross_entropy(net.aux(newest)[:, : seen - old + 1], aux_target)
        return loss + self.params.aux_weight * aux

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "active": self.model.active}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.active = state["active"]
        for k in range(self.model.active - 1):
            self.model.extractors[k].requires_grad_(False)
