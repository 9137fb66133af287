"""PODNet (Douillard et al. 2020, "PODNet: pooled outputs distillation for small-tasks incremental learning"), on
the CIFAR ResNets. The head is a local similarity classifier: each class c has K proxies theta_{c,k}, and with
f(x) the embedding, all normalised,

    s_{c,k} = <theta_{c,k}, f(x)>,   s_c = sum_k softmax_k(s_{c,k}) * s_{c,k},   logits = eta * s

trained by NCA with a margin: L_nca = max(0, -log(exp(eta (s_y - delta)) / sum_{c != y} exp(eta s_c))). Against the
model after the previous context, every stage's output h (N, C, H, W) is pooled over the width and over the height
of its squared activations, and the pooled vectors are held where they were,

    POD-spatial = mean_stages || Phi(h) - Phi(h_old) ||_2,   Phi(h) = normalise([sum_w h^2, sum_h h^2])
    POD-flat    = || f(x) / |f(x)| - f_old(x) / |f_old(x)| ||_2

each weighted (lambda_spatial, lambda_flat) and scaled by sqrt(seen / new classes), on batches drawn from the
context's data and the exemplars together (herding, `memory_total` shared by the classes seen). After each
context from the second on, the classifier alone is finetuned on the exemplars, as many of every class
(`finetune_epochs` passes in batches of 128, SGD). Before each context from the second on, every new class's K
proxies are imprinted, as the paper's code does: the k-means centres of the class's normalised embeddings under
the network trained so far, scaled to the old proxies' mean norm (the first context's proxies start random).
Not here: the paper's learned eta: learned from 1 (`eta = none`), the NCA hinge drove it below 0 on digits, where
every class was then lost; `eta` fixes it (10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, classes_of, eval_features, union_batch
from core.schema.config import RunConfig
from core.schema.params import PODNetParams


class LocalSimilarity(nn.Module):
    """`classes` x `proxies` unit vectors; a class scores the softmax-weighted mean of its proxies' cosines,
    times eta (fixed, or learned from 1 when None)."""

    def __init__(self, features: int, classes: int, proxies: int, eta: float | None = None):
        super().__init__()
        self.classes, self.proxies = classes, proxies
        self.weight = nn.Parameter(torch.randn(classes * proxies, features) / math.sqrt(features))
        self.eta = nn.Parameter(torch.tensor(1.0 if eta is None else eta), requires_grad=eta is None)
        self.bias = None

    def similarity(self, x: Tensor) -> Tensor:
        """s_c in [-1, 1], (N, classes)."""
        cos = F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1)).view(-1, self.classes, self.proxies)
        return (F.softmax(cos, dim=2) * cos).sum(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.eta * self.similarity(x)


def nca_loss(similarity: Tensor, y: Tensor, eta: Tensor, margin: float) -> Tensor:
    """max(0, -log(exp(eta (s_y - margin)) / sum_{c != y} exp(eta s_c))), mean over the batch."""
    scores = eta * (similarity - margin * F.one_hot(y, similarity.shape[1]))
    true = scores.gather(1, y.unsqueeze(1)).squeeze(1)
    others = scores.masked_fill(F.one_hot(y, similarity.shape[1]).bool(), float("-inf"))
    return F.relu(torch.logsumexp(others, dim=1) - true).mean()


def pod_spatial(stages: list[Tensor], old_stages: list[Tensor]) -> Tensor:
    """Mean over stages of || Phi(h) - Phi(h_old) ||_2 (mean over the batch), Phi pooling the squared activations of
    (N, C, H, W) over the width and over the height, side by side, normalised."""
    losses = []
    for h, old in zip(stages, old_stages, strict=True):
        def pooled(a: Tensor) -> Tensor:
            a = a.pow(2)
            return F.normalize(torch.cat([a.sum(3).flatten(1), a.sum(2).flatten(1)], dim=1), dim=1)

        losses.append((pooled(h) - pooled(old)).norm(dim=1).mean())
    return torch.stack(losses).mean()


def stage_outputs(model: nn.Module, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """The outputs of the ResNet's stages (`layer1`, `layer2`, ...) and the embedding, in one pass."""
    stages = []
    for name, module in model.features.named_children():
        x = module(x)
        if name.startswith("layer"):
            stages.append(x)
    return stages, x


@torch.no_grad()
def kmeans(x: Tensor, k: int, generator: torch.Generator, iterations: int = 20) -> Tensor:
    """k centres of x's rows (N, D) by Lloyd's algorithm, started from k rows drawn at random (with fewer than k
    rows, some drawn twice); a centre left without rows keeps its place. (k, D)."""
    rows = torch.randperm(x.shape[0], generator=generator, device=generator.device).to(x.device)
    centres = x[rows.repeat(math.ceil(k / x.shape[0]))[:k]].clone()
    for _ in range(iterations):
        nearest = torch.cdist(x, centres).argmin(1)  # (N,)
        sums = torch.zeros_like(centres).index_add_(0, nearest, x)
        counts = torch.bincount(nearest, minlength=k).unsqueeze(1)  # (k, 1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return centres


class PODNet(ExemplarMethod[PODNetParams]):
    needs_previous_model = True
    seed_offset = 26457

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        model = super().build_model(config, input_shape, head_size)
        method = config.method
        model.head = LocalSimilarity(model.head.in_features, head_size, method.proxies, method.eta)  # type: ignore[attr-defined]
        return model

    @torch.no_grad()
    def before_context(self, info: ContextInfo) -> None:
        """Imprint each new class's proxies: k-means of its normalised embeddings, at the old proxies' mean norm."""
        context, head = info.context, self.model.head
        old = self.scenario.labels(context.index)[0]
        if old == 0:
            return
        k = head.proxies
        embeddings = F.normalize(eval_features(self.model, context.inputs(context.x_train), step=info.check_stop),
                                 dim=1)
        norm = head.weight[: old * k].norm(dim=1).mean()
        for c in classes_of(context):
            centres = kmeans(embeddings[context.y_train == c], k, self.generator)
            head.weight[c * k : (c + 1) * k] = F.normalize(centres, dim=1) * norm

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        if len(self.buffer):
            batch = union_batch(self.buffer, batch, info.context.n_train, self.generator)
        old, seen = self.scenario.labels(batch.context)
        stages, embedding = stage_outputs(self.model, batch.x)
        head = self.model.head
        loss = nca_loss(head.similarity(embedding)[:, :seen], batch.y, head.eta, self.params.margin)
        if info.previous_model is None or old == 0:
            return loss
        with torch.no_grad():
            old_stages, old_embedding = stage_outputs(info.previous_model, batch.x)
        factor = math.sqrt(seen / (seen - old))
        flat = (F.normalize(embedding, dim=1) - F.normalize(old_embedding, dim=1)).norm(dim=1).mean()
        spatial = pod_spatial(stages, old_stages)
        return loss + factor * (self.params.lambda_spatial * spatial + self.params.lambda_flat * flat)

    def after_context(self, info: ContextInfo) -> None:
        self.remember(info)
        if info.context.index == 0 or not self.params.finetune_epochs:
            return
        memory, head = self.buffer, self.model.head
        assert memory.x is not None and memory.y is not None
        seen = self.scenario.classes_seen(info.context.index)
        with torch.no_grad():  # the embeddings do not move: computed once, in eval mode
            embeddings = eval_features(self.model, memory.x)
        optimiser = torch.optim.SGD(head.parameters(), lr=self.params.finetune_lr, momentum=0.9)
        with info.phase("finetune", total=self.params.finetune_epochs) as progress:
            for epoch in range(self.params.finetune_epochs):
                order = torch.randperm(len(memory), generator=self.generator, device=self.generator.device)
                for i in range(0, len(memory), 128):
                    rows = order[i : i + 128].to(embeddings.device)
                    optimiser.zero_grad()
                    nca_loss(head.similarity(embeddings[rows])[:, :seen], memory.y[rows], head.eta,
                             self.params.margin).backward()
                    optimiser.step()
                progress(epoch + 1)
