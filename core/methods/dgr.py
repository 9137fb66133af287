"""Deep generative replay, DGR (Shin et al. 2017), as in van de Ven, Tuytelaars & Tolias (2022).

A separate VAE generator G (core/methods/vae.py) learns the inputs alongside the classifier. From the
second context on, every step replays a batch x' ~ G_old (the generator frozen at the end of the previous
context) labelled by the previous classifier f_old (argmax, or soft targets at temperature T with
`distill`), and both networks train on current and replayed data weighted 1/t and 1 - 1/t:

    classifier: (1/t) CE(f(x), y) + (1 - 1/t) CE(f(x'), argmax f_old(x'))
    generator:  (1/t) -ELBO(x)    + (1 - 1/t) -ELBO(x')

What the replayed samples are trained on follows the scenario:
- task-IL: each replayed sample through every previous context's head, labelled by f_old's same head;
- domain-IL: the shared head;
- class-IL: all classes seen so far (the current ones included, so replay teaches old vs new), labelled
  by f_old over the previous classes.

The generator has its own Adam optimiser and takes its step in `after_step`, on the same current batch
and replayed batch the classifier just used.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.base import Batch, ContextInfo, Method
from core.methods.common import frozen_copy
from core.methods.distill import replay_loss
from core.methods.params import DGRParams
from core.methods.vae import VAE, inputs_in_unit_range


class DGR(Method[DGRParams]):
    needs_previous_model = True  # f_old, the loop's frozen copy of the classifier

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        p, m = self.params, self.config.model
        hidden = p.generator_hidden or (m.hidden if m.kind == "mlp" else [400, 400])
        self.input_shape = tuple(self.benchmark.input_shape)
        input_dim = int(torch.Size(self.input_shape).numel())
        recon = "bce" if inputs_in_unit_range(self.benchmark) else "mse"
        # Initialised on the CPU from the run's seed (like the classifier), then moved.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed + 15485863)
            self.generator = VAE(input_dim, hidden, p.z_dim, recon=recon).to(self.device)
        self.optimizer = self.make_optimizer()
        self.previous_generator: VAE | None = None
        self.rng = torch.Generator(self.device).manual_seed(self.config.train.seed + 32452843)
        self.pending: tuple[Tensor, Tensor | None, int] | None = None  # what the generator trains on next
        self.generator_loss = torch.zeros((), device=self.device)  # last step's, on the device (no sync)

    def make_optimizer(self) -> torch.optim.Optimizer:
        lr = self.params.generator_lr or self.config.train.lr
        fused = self.device.type in ("cpu", "cuda")  # one kernel per step instead of one per tensor and op
        return torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.9, 0.999), fused=fused)

    def before_context(self, info: ContextInfo) -> None:
        if self.config.train.reset_optimizer and info.stage > 0:
            self.optimizer = self.make_optimizer()

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        k, n = batch.context, batch.x.shape[0]
        if k == 0 or self.previous_generator is None or info.previous_model is None:
            logits, target = self.scenario.train_view(self.model(batch.x), batch.y, k, batch.context_ids)
            self.pending = (batch.x, None, k)
            return F.cross_entropy(logits, target)
        with torch.no_grad():
            x_replay = self.previous_generator.sample(n, generator=self.rng).view(n, *self.input_shape)
            old = info.previous_model(x_replay)
        logits = self.model(torch.cat([batch.x, x_replay]))  # (2n, head): n current rows, then n replayed
        view, target = self.scenario.train_view(logits[:n], batch.y, k, batch.context_ids)
        current = F.cross_entropy(view, target)
        replay = replay_loss(self.scenario, logits[n:], old, k, self.params.distill, self.params.temperature)
        self.pending = (batch.x, x_replay, k)
        t = k + 1
        return current / t + (1 - 1 / t) * replay

    def after_step(self, info: ContextInfo) -> None:
        """The generator's own step, on the batch the classifier just trained on (and its replay)."""
        if self.pending is None:
            return
        x, x_replay, k = self.pending
        self.pending = None
        self.generator.train()
        if x_replay is None:
            loss = self.generator.loss(x, generator=self.rng).mean()
        else:
            t = k + 1
            per_sample = self.generator.loss(torch.cat([x, x_replay]), generator=self.rng)
            n = x.shape[0]
            loss = per_sample[:n].mean() / t + (1 - 1 / t) * per_sample[n:].mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.generator_loss = loss.detach()

    def after_context(self, info: ContextInfo) -> None:
        self.previous_generator = frozen_copy(self.generator)

    def sample(self, n: int, context: int | None = None) -> Tensor:
        """n samples of the current generator (for previews), shaped like the inputs. The generator is not
        conditional, so `context` is ignored."""
        return self.generator.sample(n, generator=self.rng).view(n, *self.input_shape)

    def state_dict(self) -> dict[str, Any]:
        state = {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "rng": self.rng.get_state()}
        if self.previous_generator is not None:
            state["previous_generator"] = self.previous_generator.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])
        self.previous_generator = None
        if "previous_generator" in state:
            self.previous_generator = frozen_copy(self.generator)
            self.previous_generator.load_state_dict(state["previous_generator"])
