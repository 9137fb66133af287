"""A class-conditional WGAN-GP whose critic also classifies (AC-GAN), as in MeRGAN's code: the networks and
their losses, shared by the generation runs (core/training/generation.py) and DGR's GAN generator
(core/methods/dgr.py); and `GANMethod`, what a generation method may change.

- critic:    D(fake) - D(real) + gp (||grad D(x_hat)||_2 - 1)^2 + ac CE(D_cls(real), y)
- generator: -D(G(z, c)) + ac CE(D_cls(G(z, c)), c)

An MLP pair for 8x8 digits, a small conv pair for 28x28 and up. Conditioning: the one-hot class joins the
noise. WGAN-GP because its critic stays informative on the few hundred images of a digits context where a
plain GAN's saturates.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.methods.parts.base import ContextInfo, Method
from core.schema.config import RunConfig
from core.schema.params import GANParams

P = TypeVar("P", bound=GANParams)

GAN_BETAS = (0.0, 0.9)  # Adam's betas for both networks (WGAN-GP, MeRGAN's code)


class Generator(nn.Module):
    """G(z, c): noise and one-hot class -> an image in [0, 1]. An MLP for small images, else linear -> (2w, h/4,
    w/4) -> two upsampling convs."""

    def __init__(self, shape: tuple[int, int, int], classes: int, z_dim: int, width: int | None):
        super().__init__()
        self.shape, self.classes, self.z_dim = shape, classes, z_dim
        c, h, w = shape
        self.conv = min(h, w) >= 16
        if self.conv:
            k = width or 64
            self.net = nn.Sequential(
                nn.Linear(z_dim + classes, 2 * k * (h // 4) * (w // 4)), nn.ReLU(),
                nn.Unflatten(1, (2 * k, h // 4, w // 4)),
                nn.Upsample(scale_factor=2), nn.Conv2d(2 * k, k, 3, padding=1), nn.ReLU(),
                nn.Upsample(scale_factor=2), nn.Conv2d(k, c, 3, padding=1), nn.Sigmoid())
        else:
            k = width or 256
            self.net = nn.Sequential(nn.Linear(z_dim + classes, k), nn.ReLU(), nn.Linear(k, k), nn.ReLU(),
                                     nn.Linear(k, c * h * w), nn.Sigmoid(), nn.Unflatten(1, shape))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, F.one_hot(y, self.classes).to(z.dtype)], 1))


class Critic(nn.Module):
    """D(x) -> (Wasserstein score (B,), class logits (B, classes)). No normalisation: the gradient penalty is
    per sample."""

    def __init__(self, shape: tuple[int, int, int], classes: int, width: int | None):
        super().__init__()
        c, h, w = shape
        if min(h, w) >= 16:
            k = width or 64
            self.body = nn.Sequential(nn.Conv2d(c, k, 4, 2, 1), nn.LeakyReLU(0.2),
                                      nn.Conv2d(k, 2 * k, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
            features = 2 * k * (h // 4) * (w // 4)
        else:
            k = width or 256
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k), nn.LeakyReLU(0.2),
                                      nn.Linear(k, k), nn.LeakyReLU(0.2))
            features = k
        self.score, self.classify = nn.Linear(features, 1), nn.Linear(features, classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.body(x)
        return self.score(f).squeeze(1), self.classify(f)


class ConditionalGAN(nn.Module):
    """The run's model: checkpoints and the previous model hold both networks."""

    def __init__(self, shape: tuple[int, int, int], classes: int, z_dim: int, width: int | None):
        super().__init__()
        self.generator = Generator(shape, classes, z_dim, width)
        self.critic = Critic(shape, classes, width)

    def sample(self, y: Tensor, noise: torch.Generator | None = None) -> Tensor:
        z = torch.randn(y.shape[0], self.generator.z_dim, generator=noise, device=y.device)
        return self.generator(z, y)


def critic_loss(critic: Critic, real: Tensor, y: Tensor, fake: Tensor, classes: int, gp_weight: float,
                ac_weight: float) -> Tensor:
    """WGAN-GP with AC-GAN: D(fake) - D(real) + gp (||grad D(x_hat)||_2 - 1)^2 + ac CE(D_cls(real), y)."""
    score_real, logits_real = critic(real)
    score_fake, _ = critic(fake)
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(x_hat)[0].sum(), x_hat, create_graph=True)[0]
    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    wasserstein = score_fake.mean() - score_real.mean()
    return wasserstein + gp_weight * penalty + ac_weight * F.cross_entropy(logits_real[:, :classes], y)


def generator_loss(critic: Critic, fake: Tensor, y: Tensor, classes: int, ac_weight: float) -> Tensor:
    """-D(G(z, c)) + ac CE(D_cls(G(z, c)), c), per sample: (B,)."""
    score, logits = critic(fake)
    return -score + ac_weight * F.cross_entropy(logits[:, :classes], y, reduction="none")


# --- what a generation method may change ------------------------------------------------------------------


class GANMethod(Method[P]):
    """A continual-learning method for a conditional GAN. Registers nothing itself; its subclasses do."""

    run_kind: ClassVar[str] = "generation"

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        p = config.method
        return ConditionalGAN(tuple(input_shape), head_size, p.z_dim, p.width)  # type: ignore[union-attr]

    def real_batch(self, x: Tensor, y: Tensor, info: ContextInfo) -> tuple[Tensor, Tensor]:
        """What the critic takes as real, and the labels the generator draws next (default: the context's data)."""
        return x, y

    def generator_penalty(self, info: ContextInfo) -> Tensor | None:
        """Added to the generator's loss at every step (default: none)."""
        return None

    def old_classes(self, info: ContextInfo) -> int:
        """Classes of the contexts before this one (labels 0 .. old-1)."""
        return info.context.index * self.benchmark.classes_per_context
