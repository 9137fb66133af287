"""LUCIR (Hou et al. 2019, "Learning a unified classifier incrementally via rebalancing"). The head is a cosine
classifier: with f(x) the features and W the head's rows, both normalised to unit length,

    cos_k(x) = <W_k / |W_k|, f(x) / |f(x)|>,   logits = sigma * cos   (in [-sigma, sigma]; sigma learned)

Each step trains on a batch drawn from the context's data and the exemplars together, with

    L = CE(sigma * cos(x), y)                                                  over the classes seen
      + lam * (1 - <f(x) / |f(x)|, f_old(x) / |f_old(x)|>)                     less-forget constraint
      + mean over old-class samples and their K hardest new classes k of max(0, m - cos_y(x) + cos_k(x))

with lam = lambda_base * sqrt(old classes / new classes): the features may not turn away from the previous
model's, and an old class's sample must score above the new classes that respond to it most by the margin m.
Before each context from the second on, the new classes' rows are imprinted: set to the normalised mean of
their samples' normalised features. The exemplars are chosen by herding into a memory of `memory_total`
shared by the classes seen. Not here: the paper's class-balanced finetuning (an option of its code), and its
ResNet without a ReLU after the last block (cltui's models end their features with one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, classes_of, eval_features, union_batch
from core.schema.config import RunConfig
from core.schema.params import LUCIRParams


class CosineLinear(nn.Module):
    """A head of `outputs` rows scoring sigma * cos(row, input); sigma learned from 1, or fixed."""

    def __init__(self, features: int, outputs: int, sigma: float | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(outputs, features))
        nn.init.uniform_(self.weight, -1 / math.sqrt(features), 1 / math.sqrt(features))
        self.sigma = nn.Parameter(torch.tensor(1.0 if sigma is None else sigma), requires_grad=sigma is None)
        self.bias = None  # methods that touch a head's bias (none here) find there is none

    def cosine(self, x: Tensor) -> Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.sigma * self.cosine(x)


def margin_ranking(cos: Tensor, y: Tensor, old: int, margin: float, k: int) -> Tensor:
    """Mean of max(0, margin - cos_y + cos_j) over the samples of old classes (y < old) and, for each, the k new
    classes j (outputs old..) with the highest cosine; 0 without an old sample. `cos`: (N, seen). No host sync."""
    is_old = (y < old).to(cos.dtype)  # (N,)
    true = cos.gather(1, y.unsqueeze(1))  # (N, 1)
    hardest = cos[:, old:].topk(min(k, cos.shape[1] - old), dim=1).values  # (N, k)
    terms = F.relu(margin - true + hardest) * is_old.unsqueeze(1)
    return terms.sum() / (is_old.sum() * hardest.shape[1]).clamp_min(1)


class LUCIR(ExemplarMethod[LUCIRParams]):
    needs_previous_model = True
    seed_offset = 17320

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        model = super().build_model(config, input_shape, head_size)
        sigma = config.method.sigma  # type: ignore[attr-defined]
        model.head = CosineLinear(model.head.in_features, model.head.out_features, sigma)
        return model

    @torch.no_grad()
    def before_context(self, info: ContextInfo) -> None:
        """Imprint the new classes' rows: each the normalised mean of its samples' normalised features."""
        context = info.context
        if not len(self.buffer):
            return
        features = F.normalize(eval_features(self.model, context.inputs(context.x_train), step=info.check_stop), dim=1)
        for c in classes_of(context):
            self.model.head.weight[c] = F.normalize(features[context.y_train == c].mean(0), dim=0)

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        if len(self.buffer):
            batch = union_batch(self.buffer, batch, info.context.n_train, self.generator)
        old, seen = self.scenario.labels(batch.context)
        features = self.model.features(batch.x)
        head = self.model.head
        cos = head.cosine(features)[:, :seen]
        loss = F.cross_entropy(head.sigma * cos, batch.y)
        if info.previous_model is None or old == 0:
            return loss
        with torch.no_grad():
            old_features = info.previous_model.features(batch.x)
        lam = self.params.lambda_base * math.sqrt(old / (seen - old))
        less_forget = (1 - F.cosine_similarity(features, old_features, dim=1)).mean()
        ranking = margin_ranking(cos, batch.y, old, self.params.margin, self.params.hard_negatives)
        return loss + lam * less_forget + ranking
