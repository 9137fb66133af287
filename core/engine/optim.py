"""The optimiser a run's `train` section asks for, over the parameters given: the trainer's, and a method's own
training stage that follows the run's settings (FOSTER's compression)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from core.schema.sections import TrainConfig


def build_optimizer(parameters: Iterable[nn.Parameter], train: TrainConfig, device: torch.device,
                    weight_decay: float | None = None) -> torch.optim.Optimizer:
    """Adam or SGD (with `train.momentum`) at `train.lr`, over the parameters that require a gradient; weight decay
    `train.weight_decay` unless given."""
    params = [p for p in parameters if p.requires_grad]
    decay = train.weight_decay if weight_decay is None else weight_decay
    if train.optimizer == "adam":
        # fused: one kernel for every parameter instead of a loop of small ops per tensor; the same update
        # (benchmarks/loop_overhead.py: the default loop cost the step 1.21x the fused one on CPU)
        fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
        return torch.optim.Adam(params, lr=train.lr, betas=(0.9, 0.999), weight_decay=decay, fused=fused or None)
    return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=decay)
