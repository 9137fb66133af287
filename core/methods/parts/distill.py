"""Distillation: the losses that pull a model towards the outputs of a frozen one (the previous model, a
teacher), for LwF, DGR, BI-R, DeepInversion, ABD and iCaRL.

    KD_T(a, b) = -sum_k softmax(b / T)_k log softmax(a / T)_k * T^2

The T^2 keeps the gradients the same size whatever the temperature (Hinton et al. 2015).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.scenarios import ScenarioView


def distillation(logits: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """KD_T(logits, targets), mean over the batch. `logits` may have more columns than `targets`: the extra
    classes (the current ones, when replay distils the previous classes) take part in the softmax with a
    target of zero."""
    soft_targets = F.softmax(targets / temperature, dim=1)
    log_p = F.log_softmax(logits / temperature, dim=1)[:, : targets.shape[1]]
    return -(soft_targets * log_p).sum(1).mean() * temperature**2


def replay_loss(scenario: ScenarioView, logits: Tensor, old: Tensor, previous: int, distill: bool,
                temperature: float, context_ids: Tensor | None = None) -> Tensor:
    """The classifier's loss on replayed samples whose targets come from the previous model's logits `old`.

    `previous` = number of previous contexts. task-IL: with `context_ids`, each sample through its own
    context's head; without, through every previous context's head (the mean over contexts). Hard targets:
    CE with f_old's argmax; soft: KD_T in float32. In class-IL the logits cover every class seen so far and
    the targets give the current classes zero probability (both the whole head with active_classes "all").
    """
    c = scenario.classes_per_context
    if scenario.kind == "task":
        if context_ids is not None:
            rows = torch.arange(logits.shape[0], device=logits.device)
            logits = logits.view(logits.shape[0], -1, c)[rows, context_ids]  # (N, c): each sample's own head
            old = old.view(old.shape[0], -1, c)[rows, context_ids]
        else:
            logits = logits[:, : previous * c].reshape(-1, c)  # (N * previous, c): every previous head
            old = old[:, : previous * c].reshape(-1, c)
    elif scenario.kind == "class":
        logits, old = logits[:, : scenario.trained_outputs(previous)], old[:, : scenario.old_outputs(previous)]
    if not distill:
        return F.cross_entropy(logits, old.argmax(1))
    return distillation(logits.float(), old.float(), temperature)


def sigmoid_targets(labels: Tensor, old_logits: Tensor, temperature: float) -> Tensor:
    """iCaRL's binary targets: the previous model's sigmoid outputs for the classes it knew (the first
    `old_logits.shape[1]` columns), the one-hot `labels` for the rest."""
    old = torch.sigmoid(old_logits / temperature)
    return torch.cat([old, labels[:, old.shape[1] :]], dim=1)


def feature_distillation(old_head: nn.Module, features: Tensor, old_logits: Tensor) -> Tensor:
    """ABD's importance-weighted feature distillation: the new features through the frozen old head against
    the old logits, squared error summed over the old classes, mean over the batch, divided by their number
    (the old head's weights are the importance of each feature to each old class)."""
    old = old_logits.shape[1]
    return F.mse_loss(old_head(features)[:, :old], old_logits, reduction="none").sum(1).mean() / old
