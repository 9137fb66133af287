"""FOSTER, feature boosting and compression (Wang et al. 2022, "FOSTER: feature boosting and compression for
class-incremental learning"). The first context trains one extractor F and its head H by cross-entropy. Each
later context has two stages.

Boosting: a new extractor F_new, started from a copy of F, learns beside F (frozen, batch-norm statistics
included); a head over both, H_b, starts with H's weights for the old classes on F's features. On batches drawn
from the context's data and the exemplars together,

    L_boost = CE(H_b([F(x), F_new(x)]) / w_1, y) + CE(H_a(F_new(x)), y) + lambda_okd * KD_T(H_b(...)[:old], H(F(x)))

where w_1 weighs each class by its effective number of samples (Cui et al. 2019), w_k = (1 - beta_1) /
(1 - beta_1^{n_k}) scaled to average 1: the old classes, with only their exemplars, get the larger weights, so
the division asks the network for larger old logits. H_a is an auxiliary head on the new extractor alone.

Compression: a student of one extractor, started from F (and H's rows of the old classes), learns from the
boosted pair by a balanced distillation over the classes seen,

    L_comp = -sum_k q_k log softmax(s / T)_k,   q = softmax(t / T) * w_2, normalised again,

with w_2 from beta_2, for `compression_iterations` steps of the run's optimiser (the rate annealed by a cosine),
on the same mix of data and exemplars. The student becomes F and H, and is what the run evaluates: after every
context the network has one extractor, as the paper reports. Exemplars by herding into `memory_total`.
Each boosting stage starts with a fresh state of the run's optimiser, as PyCIL builds a new optimiser per stage:
the last context's moments would otherwise push the booster and heads that were just started anew.
As PyCIL's defaults: neither network's weights are aligned after training (its `is_teacher_wa`,
`is_student_wa` off) and the old classes' columns of H_b train with the rest (its `oofc = ft`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import augment
from core.engine.models import build_model
from core.engine.optim import build_optimizer
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, union_batch
from core.methods.parts.distill import distillation
from core.schema.config import RunConfig
from core.schema.params import FOSTERParams


def class_balance(counts: list[int], beta: float) -> Tensor:
    """Weights from the effective number of samples of each class: (1 - beta) / (1 - beta^n), scaled to sum to the
    number of classes (all 1 when the counts are equal, or beta is 0)."""
    n = torch.tensor(counts, dtype=torch.float64)
    w = (1 - beta) / (1 - beta**n)
    return (w / w.sum() * len(counts)).float()


def balanced_distillation(student: Tensor, teacher: Tensor, weights: Tensor, temperature: float) -> Tensor:
    """Cross-entropy of the student's softmax at T against the teacher's, reweighted by class and renormalised."""
    soft = F.softmax(teacher / temperature, dim=1) * weights
    soft = soft / soft.sum(1, keepdim=True)
    return -(soft * F.log_softmax(student / temperature, dim=1)).sum(1).mean()


class BoostedNet(nn.Module):
    """F and its head H (what the run evaluates), and the boosting stage's F_new, H_b over [F, F_new] and H_a."""

    def __init__(self, extractor: nn.Module, booster: nn.Module, dim: int, outputs: int):
        super().__init__()
        self.extractor, self.booster, self.dim = extractor, booster, dim
        self.head = nn.Linear(dim, outputs)
        self.boost_head = nn.Linear(2 * dim, outputs)
        self.aux = nn.Linear(dim, outputs)
        self.boosting = False

    def features(self, x: Tensor) -> Tensor:
        if self.boosting:
            return torch.cat([self.extractor(x), self.booster(x)], dim=1)
        return self.extractor(x)

    def forward(self, x: Tensor) -> Tensor:
        return (self.boost_head if self.boosting else self.head)(self.features(x))

    def train(self, mode: bool = True) -> BoostedNet:
        super().train(mode)
        if self.boosting:  # the frozen extractor keeps its batch-norm statistics
            self.extractor.eval()
        return self


@torch.no_grad()
def fresh_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """nn.Linear's own initialisation, drawn from `generator` (a resume draws the same)."""
    bound = 1 / math.sqrt(layer.in_features)
    layer.weight.uniform_(-bound, bound, generator=generator)
    layer.bias.uniform_(-bound, bound, generator=generator)


class FOSTER(ExemplarMethod[FOSTERParams]):
    seed_offset = 27182
    fresh_optimizer = True  # the booster, H_b and H_a start anew each context, so must their optimiser's moments

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        m = config.model
        nets = [build_model(m.kind, input_shape, 1, hidden=m.hidden, batch_norm=m.batch_norm, fc_hidden=m.fc_hidden)
                for _ in range(2)]
        return BoostedNet(nets[0].features, nets[1].features, nets[0].feature_dim, head_size)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.weights: Tensor | None = None  # w_1 of the context being boosted

    def counts(self, info: ContextInfo) -> list[int]:
        """Samples each class seen has to learn from: an old class its exemplars, a new class its data."""
        old, seen = self.scenario.labels(info.context.index)
        new = torch.bincount(info.context.y_train - old, minlength=seen - old).tolist()  # once per context
        return [self.buffer.quota(len(self.buffer.classes))] * old + new

    @torch.no_grad()
    def before_context(self, info: ContextInfo) -> None:
        old, _ = self.scenario.labels(info.context.index)
        if old == 0:
            return
        net, d = self.model, self.model.dim
        net.booster.load_state_dict(net.extractor.state_dict())
        net.extractor.requires_grad_(False)
        net.head.requires_grad_(False)
        fresh_linear(net.boost_head, self.generator)
        net.boost_head.weight[:old, :d] = net.head.weight[:old]
        net.boost_head.bias[:old] = net.head.bias[:old]
        fresh_linear(net.aux, self.generator)
        net.boosting = True
        net.train(net.training)
        self.weights = class_balance(self.counts(info), self.params.beta1).to(self.device)

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        if len(self.buffer):
            batch = union_batch(self.buffer, batch, info.context.n_train, self.generator)
        old, seen = self.scenario.labels(batch.context)
        net = self.model
        if old == 0:
            return F.cross_entropy(net(batch.x)[:, :seen], batch.y)
        assert self.weights is not None
        kept, new = net.extractor(batch.x), net.booster(batch.x)
        logits = net.boost_head(torch.cat([kept, new], dim=1))[:, :seen]
        boost = F.cross_entropy(logits / self.weights, batch.y)
        aux = F.cross_entropy(net.aux(new)[:, :seen], batch.y)
        temperature = self.params.temperature
        teacher = net.head(kept)[:, :old].detach()
        kd = distillation(logits[:, :old], teacher, temperature) / temperature**2  # PyCIL's KD: no T^2 factor
        return boost + aux + self.params.lambda_okd * kd

    def after_context(self, info: ContextInfo) -> None:
        if self.model.boosting:
            self.compress(info)
        self.remember(info)

    def compress(self, info: ContextInfo) -> None:
        """Distil the boosted pair into a student of one extractor, which then becomes F and H."""
        p, net, context = self.params, self.model, info.context
        old, seen = self.scenario.labels(context.index)
        weights = class_balance(self.counts(info), p.beta2).to(self.device)
        student = copy.deepcopy(net.extractor).requires_grad_(True)
        head = nn.Linear(net.dim, net.head.out_features).to(self.device)
        fresh_linear(head, self.generator)
        with torch.no_grad():
            head.weight[:old], head.bias[:old] = net.head.weight[:old], net.head.bias[:old]
        train = self.config.train
        steps = p.compression_iterations or max(1, round(train.iterations * 130 / 170))
        optimiser = build_optimizer([*student.parameters(), *head.parameters()], train, self.device, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
        net.eval()
        student.train()
        with info.phase("compressing", total=steps) as progress:
            for step in range(steps):
                rows = torch.randint(0, context.n_train, (train.batch_size,), generator=self.generator,
                                     device=context.y_train.device)
                batch = Batch(context.inputs(context.x_train[rows]), context.y_train[rows], context.index)
                if len(self.buffer):
                    batch = union_batch(self.buffer, batch, context.n_train, self.generator)
                x = augment(batch.x, self.generator) if self.config.benchmark.augment else batch.x
                with torch.no_grad():
                    teacher = net(x)[:, :seen].float()
                loss = balanced_distillation(head(student(x))[:, :seen].float(), teacher, weights, p.temperature)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                progress(step + 1, loss.detach())
        with torch.no_grad():
            net.extractor.load_state_dict(student.state_dict())
            net.head.load_state_dict(head.state_dict())
        net.boosting = False
        net.train()
