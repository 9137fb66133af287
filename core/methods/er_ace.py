"""ER-ACE (Caccia et al. 2022, "New insights on reducing abrupt representation change in online continual
learning"): experience replay with an asymmetric cross-entropy. The incoming batch's loss lets only the classes
present in that batch compete (and those not seen yet), so learning new classes does not push the logits of the
old ones down; the replayed batch's loss runs over every class seen:

    L = CE(f(x_in) with the seen classes absent from the batch masked, y_in) + CE(f(x_buf), y_buf)

The buffer is ER's (core/methods/parts/buffer.py): a reservoir of `budget_total` samples, as the paper, or
`budget` samples per class stored at the end of each context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ReplayMethod
from core.schema.params import ERACEParams


def ace_mask(y: Tensor, seen: int, outputs: int) -> Tensor:
    """Which of `outputs` logits the incoming batch's loss keeps (bool, (outputs,)): the classes present in y, and
    those not seen yet (from `seen` on). Built on the device, without a host sync."""
    keep = torch.zeros(outputs, dtype=torch.bool, device=y.device).index_fill_(0, y, True)
    keep[seen:] = True
    return keep


class ERACE(ReplayMethod[ERACEParams]):
    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        view, target = self.scenario.train_view(self.model(batch.x), batch.y, batch.context, batch.context_ids)
        keep = ace_mask(target, self.scenario.classes_seen(batch.context), view.shape[1])
        incoming = F.cross_entropy(view.masked_fill(~keep, float("-inf")), target)
        self.remember(batch)
        if len(self.buffer) == 0:
            return incoming
        return incoming + super().loss(self.replayed(batch.x.shape[0], batch.context), info)
