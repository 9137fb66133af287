"""Deep generative replay, DGR (Shin et al. 2017), as in van de Ven, Tuytelaars & Tolias (2022).

A separate VAE generator G (core/methods/parts/vae.py) learns the inputs alongside the classifier. From the
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

`generator = "gan"` (class-IL): Shin et al.'s generator was a GAN. Here it is the class-conditional WGAN-GP of
core/methods/parts/gan.py (MeRGAN's): x' ~ G_old(z, c') with c' drawn uniformly over the previous classes, still
labelled by f_old as above; the GAN learns current and replayed images together, as MeRGAN's joint training
with replay does: its critic takes `n_critic` steps on [x; x'] (labels [y; c']) per generator step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.common import frozen_copy
from core.methods.parts.distill import replay_loss
from core.methods.parts.gan import GAN_BETAS, ConditionalGAN, critic_loss, generator_loss
from core.methods.parts.vae import VAE, inputs_in_unit_range
from core.schema.params import DGRParams

GP_WEIGHT, AC_WEIGHT = 10.0, 1.0  # the GAN's gradient penalty and auxiliary-classifier weights (MeRGAN's)


class DGR(Method[DGRParams]):
    needs_previous_model = True  # f_old, the loop's frozen copy of the classifier

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        p, m = self.params, self.config.model
        hidden = p.generator_hidden or (m.hidden if m.kind == "mlp" else [400, 400])
        self.input_shape = tuple(self.benchmark.input_shape)
        input_dim = int(torch.Size(self.input_shape).numel())
        recon = "bce" if inputs_in_unit_range(self.benchmark) else "mse"
        classes = len(self.benchmark.contexts) * self.benchmark.classes_per_context
        # Initialised on the CPU from the run's seed (like the classifier), then moved.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed + 15485863)
            if p.generator == "gan":
                width = p.generator_hidden[0] if p.generator_hidden else None
                self.generator: VAE | ConditionalGAN = ConditionalGAN(self.input_shape, classes, p.z_dim, width)
            else:
                self.generator = VAE(input_dim, hidden, p.z_dim, recon=recon)
            self.generator.to(self.device)
        self.optimizer = self.make_optimizer()
        self.previous_generator: VAE | ConditionalGAN | None = None
        self.rng = torch.Generator(self.device).manual_seed(self.config.train.seed + 32452843)
        # what the generator trains on next: current x, y, replayed x', the classes c' it was drawn for, context
        self.pending: tuple[Tensor, Tensor, Tensor | None, Tensor | None, int] | None = None
        self.generator_loss = torch.zeros((), device=self.device)  # last step's, on the device (no sync)
        self.seen_classes = self.benchmark.classes_per_context  # what a conditional generator has learnt to draw

    def make_optimizer(self) -> torch.optim.Optimizer:
        fused = self.device.type in ("cpu", "cuda")  # one kernel per step instead of one per tensor and op
        if isinstance(self.generator, ConditionalGAN):  # a group per network: a step moves the one with gradients
            return torch.optim.Adam([{"params": self.generator.generator.parameters()},
                                     {"params": self.generator.critic.parameters()}],
                                    lr=self.params.generator_lr or 1e-3, betas=GAN_BETAS, fused=fused)
        lr = self.params.generator_lr or self.config.train.lr
        return torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.9, 0.999), fused=fused)

    def old_classes(self, k: int) -> int:
        return k * self.benchmark.classes_per_context

    def replay_batch(self, n: int, k: int) -> tuple[Tensor, Tensor | None]:
        """n samples of the previous generator, and the classes a conditional one drew them for."""
        assert self.previous_generator is not None
        if isinstance(self.previous_generator, ConditionalGAN):
            c = torch.randint(self.old_classes(k), (n,), generator=self.rng, device=self.device)
            return self.previous_generator.sample(c, noise=self.rng), c
        return self.previous_generator.sample(n, generator=self.rng).view(n, *self.input_shape), None

    def before_context(self, info: ContextInfo) -> None:
        self.seen_classes = self.old_classes(info.context.index) + self.benchmark.classes_per_context
        if self.config.train.reset_optimizer and info.stage > 0:
            self.optimizer = self.make_optimizer()

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        k, n = batch.context, batch.x.shape[0]
        if k == 0 or self.previous_generator is None or info.previous_model is None:
            logits, target = self.scenario.train_view(self.model(batch.x), batch.y, k, batch.context_ids)
            self.pending = (batch.x, batch.y, None, None, k)
            return F.cross_entropy(logits, target)
        with torch.no_grad():
            x_replay, c_replay = self.replay_batch(n, k)
            old = info.previous_model(x_replay)
        logits = self.model(torch.cat([batch.x, x_replay]))  # (2n, head): n current rows, then n replayed
        view, target = self.scenario.train_view(logits[:n], batch.y, k, batch.context_ids)
        current = F.cross_entropy(view, target)
        replay = replay_loss(self.scenario, logits[n:], old, k, self.params.distill, self.params.temperature)
        self.pending = (batch.x, batch.y, x_replay, c_replay, k)
        t = k + 1
        return current / t + (1 - 1 / t) * replay

    def after_step(self, info: ContextInfo) -> None:
        """The generator's own step, on the batch the classifier just trained on (and its replay)."""
        if self.pending is None:
            return
        x, y, x_replay, c_replay, k = self.pending
        self.pending = None
        self.generator.train()
        if isinstance(self.generator, ConditionalGAN):
            self.gan_step(x, y, x_replay, c_replay, k)
            return
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

    def gan_step(self, x: Tensor, y: Tensor, x_replay: Tensor | None, c_replay: Tensor | None, k: int) -> None:
        """n_critic critic steps on the current and replayed images against fresh samples, then one generator
        step on the same labels (core/methods/parts/gan.py's losses over the classes seen so far)."""
        gan, p = self.generator, self.params
        assert isinstance(gan, ConditionalGAN)
        real = x if x_replay is None else torch.cat([x, x_replay])
        labels = y if c_replay is None else torch.cat([y, c_replay])
        seen = self.old_classes(k) + self.benchmark.classes_per_context
        for _ in range(p.n_critic):
            with torch.no_grad():
                fake = gan.sample(labels, noise=self.rng)
            loss_d = critic_loss(gan.critic, real, labels, fake, seen, GP_WEIGHT, AC_WEIGHT)
            self.optimizer.zero_grad(set_to_none=True)
            loss_d.backward()
            self.optimizer.step()
        loss_g = generator_loss(gan.critic, gan.sample(labels, noise=self.rng), labels, seen, AC_WEIGHT).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss_g.backward()
        gan.critic.zero_grad(set_to_none=True)  # the critic is not moved by the generator's loss
        self.optimizer.step()
        self.generator_loss = loss_g.detach()

    def after_context(self, info: ContextInfo) -> None:
        self.previous_generator = frozen_copy(self.generator)

    def sample(self, n: int, context: int | None = None) -> Tensor:
        """n samples of the current generator (for previews), shaped like the inputs: a VAE's of anything it
        learnt (`context` is ignored), a GAN's of the classes of `context` (default: every class seen)."""
        if isinstance(self.generator, ConditionalGAN):
            k = self.benchmark.classes_per_context
            low, high = (context * k, (context + 1) * k) if context is not None else (0, self.seen_classes)
            c = torch.randint(low, max(high, low + 1), (n,), generator=self.rng, device=self.device)
            with torch.no_grad():
                return self.generator.sample(c, noise=self.rng)
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
