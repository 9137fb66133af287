"""Always Be Dreaming, ABD (Smith et al. 2021), data-free class-incremental learning.

After each context (but the last) a generator G learns to invert the frozen model f_old, over the classes
it knows (logits o = f_old(G(z))):

    CE(o / T_c, argmax o) + diversity(o) + w_bn * sum_l KL(N(mu_l, var_l) || N(mu_l(G(z)), var_l(G(z))))
    + w_s * smoothness(G(z))

(content at a high temperature T_c = 1000, the information-entropy term that spreads the batch over the
classes, BatchNorm statistics as a KL between Gaussians, a smoothness prior). G and its Adam state persist
from context to context. The next context trains the model on a real batch x, y and a batch of dreams
x^ = G(z) labelled y^ = argmax f_old(x^) with

    L_local  CE over the new classes only, on the real data;
    L_ft     CE over every class seen, on real and dreamed data, through detached features (the head only),
             class-balanced: old-class samples weigh old/seen, new-class samples 1 - old/seen;
    mu * L_kd  importance-weighted feature distillation: the new features through the old head against the
             old features through the old head, MSE over the old classes.

L_local keeps new classes from overwriting old logits, L_ft fixes the old-versus-new bias in the head, and
L_kd keeps the features that mattered to the old classes, weighted by the old head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import CIFAR_STATS
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.common import Dreams, frozen_copy
from core.methods.parts.distill import feature_distillation
from core.methods.parts.dreaming import (
    BatchNormStatistics,
    DreamingMethod,
    Generator,
    diversity,
    generator_width,
    pixel_box,
    smoothness,
)
from core.schema.params import ABDParams


class ABD(DreamingMethod[ABDParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # f_old, the frozen model the generator inverted: it labels the dreams and gives the old features and
        # head. The one copy of the previous model (the trainer makes none for ABD).
        self.teacher: nn.Module | None = None
        p, seed = self.params, self.config.train.seed
        shape = tuple(self.benchmark.input_shape)
        standardised = self.benchmark.name in CIFAR_STATS
        with torch.random.fork_rng(devices=[]):  # initialised on the CPU from the run's seed, then moved
            torch.manual_seed(seed + 49979687)
            self.generator = Generator(p.z_dim, shape, generator_width(p.generator_width, shape),
                                       pixel_box(self.benchmark), standardised).to(self.device)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=p.generator_lr, fused=fused)
        self.rng = torch.Generator(self.device).manual_seed(seed + 86028121)

    # --- the model's training -----------------------------------------------------------------------

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        k, n = batch.context, batch.x.shape[0]
        c = self.scenario.classes_per_context
        seen, old = (k + 1) * c, k * c
        teacher = self.teacher
        if k == 0 or teacher is None:
            logits, target = self.scenario.train_view(self.model(batch.x), batch.y, k, batch.context_ids)
            return F.cross_entropy(logits, target)
        # Rows 0..n-1 are the real batch, rows n..2n-1 the dreams.
        with torch.no_grad():  # one pass of the old model: it labels the dreams and gives the KD targets
            self.generator.eval()
            x = torch.cat([batch.x, self.generator.sample(n, generator=self.rng)])  # (2n, C, H, W)
            target = teacher.head(teacher.features(x))[:, :old]  # (2n, old): f_old's logits over the old classes
        y = torch.cat([batch.y, target[n:].argmax(1)])  # (2n,): the real labels, then the dreams' y^
        features = self.model.features(x)  # (2n, feature_dim)
        logits = self.model.head(features)  # (2n, head)
        ratio = old / seen
        weight = torch.where(y < old, ratio, 1 - ratio)  # (2n,): class balance, old/seen or 1 - old/seen
        local = (F.cross_entropy(logits[:n, old:seen], batch.y - old, reduction="none") * weight[:n]).mean()
        head_only = self.model.head(features.detach())[:, :seen]  # (2n, seen): gradients reach the head only
        fine_tune = (F.cross_entropy(head_only, y, reduction="none") * weight).mean()
        kd = feature_distillation(teacher.head, features, target)
        return local + fine_tune + self.params.mu * kd

    # --- dreaming -------------------------------------------------------------------------------------

    def dream(self, info: ContextInfo, teacher: torch.nn.Module, classes: int) -> Dreams:
        """Train the generator against the teacher, then sample the dreams to save and score."""
        p = self.params
        self.generator.train()
        batch_size = self.config.train.batch_size
        with info.phase("generator", total=p.generator_iterations) as progress, \
                BatchNormStatistics(teacher, "kl", p.first_bn_weight) as bn:
            for step in range(1, p.generator_iterations + 1):
                x = self.generator.sample(batch_size, generator=self.rng)
                out = teacher(x)[:, :classes]
                loss = (F.cross_entropy(out / p.content_temperature, out.argmax(1))
                        + p.diversity_weight * diversity(out) + p.bn_weight * bn.loss()
                        + p.smoothness_weight * smoothness(x))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                progress(step, loss.detach())
        with torch.no_grad():  # each labelled with the class the teacher sees in it
            self.generator.eval()
            x = self.generator.sample(p.dreams_per_class * classes, generator=self.rng)
            self.teacher = teacher
            return Dreams(x=x, y=teacher(x)[:, :classes].argmax(1), teacher=teacher, classes=classes)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint follows a completed context and the trainer loads the model first: the teacher for the
        next context is a frozen copy of the loaded model, as `after_context` made it."""
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])
        self.teacher = frozen_copy(self.model)
