"""What the data-free methods (DeepInversion, ABD) share: the base that dreams after every context, hooks
that read the BatchNorm statistics of the frozen model, the image priors, the box real pixels live in, and
ABD's generator. The dreams go to the trainer as `Dreams` (core/methods/parts/common.py) to be saved and scored.

Inverting a model works because BatchNorm remembers the data: every BN layer keeps the running mean and
variance of its inputs over the real training set. Images whose batch statistics match them, layer by
layer, and that the model assigns to a chosen class with confidence, look to the model like its old data.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any, Self, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from core.engine.data import Benchmark
from core.methods.parts.base import ContextInfo, Method
from core.methods.parts.common import Dreams, frozen_copy
from core.schema.params import DreamingParams

DreamingParamsT = TypeVar("DreamingParamsT", bound=DreamingParams)


class DreamingMethod(Method[DreamingParamsT]):
    """A data-free method: after every context but the last (nothing follows it to replay to), `dream`
    inverts a frozen copy of the model over the classes it knows; the trainer takes the dreams once."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.latest: Dreams | None = None

    def after_context(self, info: ContextInfo) -> None:
        if info.stage < len(self.benchmark.contexts) - 1:
            known = self.scenario.classes_seen(info.stage)
            self.latest = self.dream(info, frozen_copy(self.model), known)

    def dream(self, info: ContextInfo, teacher: nn.Module, classes: int) -> Dreams:
        raise NotImplementedError

    def take_dreams(self) -> Dreams | None:
        dreams, self.latest = self.latest, None
        return dreams


class BatchNormStatistics:
    """Forward hooks on every BatchNorm layer of a frozen model. After a forward pass, `loss()` is the
    weighted sum over layers of how far the batch statistics of the layer's inputs are from its running
    statistics:
    - "l2" (DeepInversion): ||mu_batch - mu_run||_2 + ||var_batch - var_run||_2;
    - "kl" (ABD): KL(N(mu_run, var_run) || N(mu_batch, var_batch)), averaged over channels.
    The first layer's term is multiplied by `first_weight`: it sees the pixels, where statistics matter most.
    """

    def __init__(self, model: nn.Module, kind: str = "l2", first_weight: float = 1.0):
        self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        if not self.layers:
            raise ValueError("the model has no BatchNorm layer to invert")
        self.kind, self.first_weight = kind, first_weight
        self.terms: list[Tensor] = []
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> Self:
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for h in self.handles:
            h.remove()
        self.handles, self.terms = [], []

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x = inputs[0].float()
        dims = [0, *range(2, x.dim())]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        run_mean, run_var = module.running_mean.float(), module.running_var.float()  # type: ignore[union-attr]
        if self.kind == "l2":
            term = torch.linalg.vector_norm(mean - run_mean) + torch.linalg.vector_norm(var - run_var)
        else:
            eps = 1e-8
            term = (0.5 * torch.log((var + eps) / (run_var + eps))
                    + (run_var + (run_mean - mean) ** 2) / (2 * (var + eps)) - 0.5).mean()
        self.terms.append(term * (self.first_weight if not self.terms else 1.0))

    def loss(self) -> Tensor:
        """The terms of the forward pass since the last call (then forgotten)."""
        total = torch.stack(self.terms).sum()
        self.terms = []
        return total


def total_variation(x: Tensor) -> Tensor:
    """DeepInversion's l2 image prior: norms of the differences to the right, below and both diagonals."""
    return (torch.linalg.vector_norm(x[..., :, :-1] - x[..., :, 1:])
            + torch.linalg.vector_norm(x[..., :-1, :] - x[..., 1:, :])
            + torch.linalg.vector_norm(x[..., 1:, :-1] - x[..., :-1, 1:])
            + torch.linalg.vector_norm(x[..., :-1, :-1] - x[..., 1:, 1:]))


def smoothness(x: Tensor, sigma: float = 1.0, size: int = 5) -> Tensor:
    """ABD's smoothness prior: mean squared distance between the images and their Gaussian blur."""
    c = x.shape[1]
    size = min(size, 2 * (min(x.shape[-2:]) // 2) - 1)  # odd, and no larger than the image
    r = torch.arange(size, device=x.device, dtype=x.dtype) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size)
    blurred = F.conv2d(F.pad(x, [size // 2] * 4, mode="reflect"), kernel, groups=c)
    return F.mse_loss(x, blurred)


def pixel_box(benchmark: Benchmark) -> tuple[Tensor, Tensor]:
    """Per-channel lowest and highest input value of the real training data, shaped (1, C, 1, 1): dreamed
    pixels are kept inside it (raw [0, 1] for MNIST-like data, the standardised range for CIFAR)."""
    x = torch.cat([c.x_train for c in benchmark.contexts]).transpose(0, 1).flatten(1)
    return x.amin(1).view(1, -1, 1, 1), x.amax(1).view(1, -1, 1, 1)


def balanced_labels(classes: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """n labels over range(classes), each class ceil/floor(n / classes) times, in random order."""
    labels = torch.arange(n, device=device) % classes
    return labels[torch.randperm(n, generator=generator, device=device)]


class Generator(nn.Module):
    """ABD's image generator (the CIFAR generator of Smith et al.'s code), any side divisible by 4:
    z -> linear -> (width, H/4, W/4) -> BN -> 2x up -> conv -> BN -> LeakyReLU -> 2x up -> conv -> BN ->
    LeakyReLU -> conv -> image. Images for standardised data end in tanh and a BatchNorm without affine
    parameters (as in the paper); images for [0, 1] data end in a sigmoid scaled into the pixel box."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int, box: tuple[Tensor, Tensor],
                 standardised: bool):
        super().__init__()
        c, h, w = shape
        self.z_dim, self.shape, self.standardised = z_dim, shape, standardised
        self.h0, self.w0, self.width = h // 4, w // 4, width
        self.linear = nn.Linear(z_dim, width * self.h0 * self.w0)
        self.bn0 = nn.BatchNorm2d(width)
        self.block1 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2))
        half = max(width // 2, 1)
        self.block2 = nn.Sequential(nn.Conv2d(width, half, 3, 1, 1), nn.BatchNorm2d(half), nn.LeakyReLU(0.2),
                                    nn.Conv2d(half, c, 3, 1, 1))
        self.out_bn = nn.BatchNorm2d(c, affine=False) if standardised else None
        self.register_buffer("lo", box[0].reshape(1, c, 1, 1).clone())
        self.register_buffer("hi", box[1].reshape(1, c, 1, 1).clone())

    def forward(self, z: Tensor) -> Tensor:
        x = self.bn0(self.linear(z).view(-1, self.width, self.h0, self.w0))
        x = self.block1(F.interpolate(x, scale_factor=2))
        x = self.block2(F.interpolate(x, scale_factor=2))
        if self.out_bn is not None:
            return self.out_bn(torch.tanh(x))
        return self.lo + (self.hi - self.lo) * torch.sigmoid(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.z_dim, generator=generator, device=self.linear.weight.device)
        return self(z)


def generator_width(width: int | None, shape: tuple[int, int, int]) -> int:
    return width or (128 if min(shape[1:]) >= 16 else 32)


def diversity(logits: Tensor) -> Tensor:
    """ABD's information-entropy term, 1 + sum p log p / log K over the batch-mean prediction p: 0 when the
    batch covers the K classes evenly, 1 when it collapses onto one class."""
    p = F.softmax(logits, dim=1).mean(0)
    return 1 + (p * torch.log(p.clamp_min(1e-12))).sum() / math.log(logits.shape[1])
