"""DeepInversion replay (Yin et al. 2020), data-free class-incremental learning.

At the end of each context (but the last) the frozen model dreams `dreams_per_class` images of every
class it knows: pixels x^ start as uniform noise inside the data's pixel box and follow Adam on

    CE(f(x^), y) + a_f * sum_l w_l (||mu_l(x^) - mu_l||_2 + ||var_l(x^) - var_l||_2) + a_tv TV(x^) + a_l2 ||x^||^2

under random jitter and flips, where mu_l, var_l are the running statistics of BatchNorm layer l (the
first layer weighted more). The next context trains on real data plus a replay batch of dreams, weighted
1/t and 1 - 1/t: cross-entropy on the real batch, and distillation of the teacher's logits on the dreams
over every class seen (the current ones get zero target, so replay also teaches old against new).
The newest teacher dreams every old class again, so the dream set is replaced, not grown.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.common import Dreams
from core.methods.parts.distill import replay_loss
from core.methods.parts.dreaming import (
    BatchNormStatistics,
    DreamingMethod,
    balanced_labels,
    pixel_box,
    total_variation,
)
from core.schema.params import DeepInversionParams


class DeepInversion(DreamingMethod[DeepInversionParams]):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        seed = self.config.train.seed
        self.rng = torch.Generator(self.device).manual_seed(seed + 7919)  # noise, labels, replay batches
        self.jitter_rng = torch.Generator().manual_seed(seed + 104729)  # on the CPU: shifts and flips, no sync
        self.lo, self.hi = pixel_box(self.benchmark)
        self.dream_x: Tensor | None = None
        self.dream_logits: Tensor | None = None  # the teacher's, computed once when dreamed

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        k, n = batch.context, batch.x.shape[0]
        if k == 0 or self.dream_x is None or self.dream_logits is None:
            logits, target = self.scenario.train_view(self.model(batch.x), batch.y, k, batch.context_ids)
            return F.cross_entropy(logits, target)
        idx = torch.randint(self.dream_x.shape[0], (n,), generator=self.rng, device=self.device)
        logits = self.model(torch.cat([batch.x, self.dream_x[idx]]))  # (2n, head): n real rows, then n dreams
        view, target = self.scenario.train_view(logits[:n], batch.y, k, batch.context_ids)
        current = F.cross_entropy(view, target)
        replay = replay_loss(self.scenario, logits[n:], self.dream_logits[idx], k, True, self.params.temperature)
        t = k + 1
        return current / t + (1 - 1 / t) * replay

    def dream(self, info: ContextInfo, teacher: torch.nn.Module, classes: int) -> Dreams:
        p = self.params
        n = p.dreams_per_class * classes
        labels = balanced_labels(classes, n, self.rng, self.device)
        batches = list(labels.split(p.batch_size))
        xs = []
        with info.phase("dreaming", total=len(batches) * p.steps) as progress:
            for b, y in enumerate(batches):
                xs.append(self.invert(teacher, y, classes, lambda s, loss, b=b: progress(b * p.steps + s, loss)))
        x = torch.cat(xs)
        with torch.no_grad():
            self.dream_logits = teacher(x)
        self.dream_x = x
        return Dreams(x=x, y=labels, teacher=teacher, classes=classes)

    def invert(self, teacher: torch.nn.Module, y: Tensor, classes: int, progress) -> Tensor:
        """One batch of dreams for labels `y`: Adam on the pixels, kept inside the pixel box."""
        p = self.params
        shape = (y.shape[0], *self.benchmark.input_shape)
        x = self.lo + (self.hi - self.lo) * torch.rand(shape, generator=self.rng, device=self.device)
        x.requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=p.lr, betas=(0.5, 0.9), eps=1e-8)
        with BatchNormStatistics(teacher, "l2", p.first_bn_weight) as bn:
            for step in range(1, p.steps + 1):
                shift = torch.randint(-p.jitter, p.jitter + 1, (2,), generator=self.jitter_rng).tolist()
                flip = p.flip and bool(torch.rand((), generator=self.jitter_rng) < 0.5)
                seen = torch.roll(x, shifts=shift, dims=(2, 3))
                if flip:
                    seen = seen.flip(3)
                out = teacher(seen)[:, :classes]
                loss = (F.cross_entropy(out, y) + p.bn_weight * bn.loss() + p.tv_weight * total_variation(seen)
                        + p.l2_weight * torch.linalg.vector_norm(seen))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    x.copy_(torch.maximum(torch.minimum(x, self.hi), self.lo))
                progress(step, loss.detach())
        return x.detach()

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"rng": self.rng.get_state(), "jitter_rng": self.jitter_rng.get_state()}
        if self.dream_x is not None:
            state.update(dream_x=self.dream_x, dream_logits=self.dream_logits)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        self.jitter_rng.set_state(state["jitter_rng"])
        self.dream_x, self.dream_logits = state.get("dream_x"), state.get("dream_logits")
