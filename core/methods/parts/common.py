"""What several methods share and no method owns: the frozen copy of a network (the previous model, a
teacher, a generator), the dreams a data-free method hands to the trainer, and the per-context gates over
hidden units (XdG's masks, BI-R's decoder).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

M = TypeVar("M", bound=nn.Module)


def frozen_copy(model: M) -> M:
    """A deep copy in eval mode with no parameter requiring grad: what a network was at the end of a context."""
    old = copy.deepcopy(model)
    old.eval()
    old.requires_grad_(False)
    return old


@dataclass
class Dreams:
    """Images dreamed after a context: inputs as the model sees them, the class each was dreamed for,
    and the frozen model (teacher) that dreamed them. The trainer saves and scores them (core/training/dreams.py)."""

    x: Tensor
    y: Tensor  # global labels, all < classes
    teacher: nn.Module
    classes: int  # classes the teacher knew (the old classes from the next context's point of view)


def hidden_widths(model: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """Widths of the model's fully connected hidden layers (`model.hidden_layers()`), in depth order, probed
    with one forward pass of a zero input in eval mode (BatchNorm statistics are not touched)."""
    widths: list[int] = []
    probes = [layer.register_forward_hook(lambda m, i, out: widths.append(out.shape[1]))
              for layer in model.hidden_layers()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for probe in probes:
            probe.remove()
    return widths


def gating_masks(widths: list[int], contexts: int, gating: float, generator: torch.Generator) -> list[Tensor]:
    """Per hidden layer, a (contexts, width) 0/1 float mask with round(gating * width) zeros per row."""
    masks = []
    for width in widths:
        off = round(gating * width)
        rows = [(torch.randperm(width, generator=generator) >= off).float() for _ in range(contexts)]
        masks.append(torch.stack(rows))
    return masks
