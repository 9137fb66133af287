"""X-DER, eXtended dark experience replay (Boschini et al. 2022, "Class-incremental continual learning into the
eXtended DER-verse"). DER++ stores a sample's logits once and replays them for ever, so its stored logits of the
classes that came later are whatever the network said before it had learnt them. X-DER keeps them up to date
and keeps the heads (each context's classes) in their places. While learning context t (classes old..seen-1):

    L = CE(f(x)[old:seen], y - old)                                   the present head only
      + alpha * MSE(f(x_1), z_1)                                      stored logits, every head
      + beta * CE(f(x_2)[:old], y_2)                                  stored labels, the past heads
      + lambd * SupCon over the future heads (seen..) of augmented views of incoming and stored samples
      + eta * mean(max(0, max p_past + m - max p_present))            softmax over the seen heads, incoming batch
      + eta * mean(max(0, max f_future + m - max f_own))              raw logits, incoming and stored samples

Stored logits are updated in two places. While a stored sample (of a past class) is replayed, with chance 1 / the
times it was replayed this context, its logits of the present and future heads are overwritten with the network's
own; after each context every stored sample gets them once more. Writing them, X-DER caps them (`transplant`):
where their largest value exceeds the sample's true-class logit, they are scaled to gamma times it. A context's
new exemplars are stored with their logits, the past heads capped the same way.

The memory is the class-IL papers' class-balanced one of `memory_total` (core/methods/parts/buffer.py), with the
logits of every head beside each exemplar; the paper's (and Mammoth's) random choice of exemplars is the default.
Not here: the optional RPC classifier of the paper (X-DER-RPC), and the batch-norm alignment of Mammoth's configs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import augment
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.buffer import ExemplarMethod, eval_outputs, exemplar_order
from core.schema.params import XDERParams


def transplant(stored: Tensor, fresh: Tensor, y: Tensor, lo: int, hi: int, gamma: float) -> Tensor:
    """`stored` logits with columns lo..hi-1 replaced by `fresh`'s, scaled by gamma * (true-class logit) / (their
    largest) in the rows where their largest exceeds the sample's true-class logit in `stored`."""
    if hi <= lo:
        return stored
    part = fresh[:, lo:hi]
    truth = stored.gather(1, y.unsqueeze(1)).squeeze(1)
    top = part.max(1).values
    scale = torch.where(top > truth, gamma * truth / top, torch.ones_like(top))
    out = stored.clone()
    out[:, lo:hi] = part * scale.unsqueeze(1)
    return out


def supervised_contrastive(views: Tensor, y: Tensor, temperature: float) -> Tensor:
    """Khosla et al.'s supervised contrastive loss, summed over the anchors: `views` (N, V, D) L2-normalised, every
    view of a sample an anchor whose positives are the other views of its class."""
    n, v, _ = views.shape
    z = views.transpose(0, 1).reshape(v * n, -1)
    labels = y.repeat(v)
    similarity = z @ z.T / temperature
    similarity = similarity - similarity.max(1, keepdim=True).values.detach()
    self_mask = torch.eye(v * n, dtype=torch.bool, device=z.device)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    log_prob = similarity - similarity.masked_fill(self_mask, float("-inf")).logsumexp(1, keepdim=True)
    return -((log_prob * positives).sum(1) / positives.sum(1)).sum()


def hinge_mean(gap: Tensor) -> Tensor:
    """Mean of the positive entries of `gap` (0 when none is), without asking the device whether any is."""
    positive = gap > 0
    return (gap * positive).sum() / positive.sum().clamp_min(1)


@contextmanager
def still_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norm normalises with the batch's statistics but leaves its running ones as they are (momentum 0)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


class XDER(ExemplarMethod[XDERParams]):
    seed_offset = 31415

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        head = self.scenario.head_size  # the context that owns each output, for "a sample's own head"
        self.owner = self.scenario.context_of(torch.arange(head, device=self.device))
        self.replays: Tensor | None = None  # times each stored sample was replayed in this context (a checkpoint is
        # taken between contexts, where it starts again from 0)

    def before_context(self, info: ContextInfo) -> None:
        self.replays = torch.zeros(len(self.buffer), device=self.device)

    def replayed(self, n: int) -> tuple[Tensor, dict[str, Tensor]]:
        rows = torch.randint(0, len(self.buffer), (n,), generator=self.generator, device=self.device)
        stored = self.buffer.gather(rows)
        if self.config.benchmark.augment:
            stored["x"] = augment(stored["x"], self.generator)
        return rows, stored

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        p, scenario = self.params, self.scenario
        old, seen = scenario.labels(batch.context)
        head = scenario.head_size
        outputs = self.model(batch.x).float()
        loss = F.cross_entropy(outputs[:, old:seen], batch.y - old)
        good, bad = [outputs[:, old:seen].max(1).values], [outputs[:, seen:]]
        if len(self.buffer):
            n = batch.x.shape[0]
            rows1, first = self.replayed(n)
            out1 = self.model(first["x"]).float()
            loss = loss + p.alpha * F.mse_loss(out1, first["logits"].float())
            rows2, second = self.replayed(n)
            out2 = self.model(second["x"]).float()
            loss = loss + p.beta * F.cross_entropy(out2[:, :old], second["y"])
            rows, y, out = torch.cat([rows1, rows2]), torch.cat([first["y"], second["y"]]), torch.cat([out1, out2])
            self.refresh(rows, y, out.detach(), old, head)
            own = self.owner.unsqueeze(0) == scenario.context_of(y).unsqueeze(1)
            good.append(out.masked_fill(~own, float("-inf")).max(1).values)
            bad.append(out[:, seen:])
        if seen < head:
            loss = loss + p.lambd * self.consistency(batch, seen)
            gap = torch.cat(bad).max(1).values + p.margin - torch.cat(good)
            loss = loss + p.eta * hinge_mean(gap)
        if old > 0:
            probs = F.softmax(outputs[:, :seen], dim=1)
            gap = probs[:, :old].max(1).values.detach() + p.margin - probs[:, old:].max(1).values
            loss = loss + p.eta * hinge_mean(gap)
        return loss

    @torch.no_grad()
    def refresh(self, rows: Tensor, y: Tensor, outputs: Tensor, old: int, head: int) -> None:
        """Overwrite the replayed samples' stored logits of the present and future heads, each with chance
        1 / the times it was replayed in this context (all of them are of past classes)."""
        assert self.replays is not None and self.buffer.logits is not None
        self.replays.index_add_(0, rows, torch.ones_like(rows, dtype=self.replays.dtype))
        chosen = torch.rand(rows.shape[0], generator=self.generator, device=rows.device) * self.replays[rows] < 1
        fresh = transplant(self.buffer.logits[rows].float(), outputs, y, old, head, self.params.gamma)
        kept = torch.where(chosen.unsqueeze(1), fresh, self.buffer.logits[rows].float())
        self.buffer.logits.index_copy_(0, rows, kept.to(self.buffer.logits.dtype))

    def consistency(self, batch: Batch, seen: int) -> Tensor:
        """The supervised contrastive loss on each future head's outputs of `views` augmented copies of the first
        incoming samples and as many stored ones, per head and per sample."""
        p = self.params
        x, y = batch.x[: p.consistency_batch], batch.y[: p.consistency_batch]
        if len(self.buffer):
            _, stored = self.replayed(x.shape[0])
            x, y = torch.cat([stored["x"], x]), torch.cat([stored["y"], y])
        pad = max(1, x.shape[-1] // 8)
        views = augment(x.repeat_interleave(p.views, 0), self.generator, pad)
        with still_norm_statistics(self.model):
            outputs = self.model(views).float().view(x.shape[0], p.views, -1)[:, :, seen:]
        per = self.scenario.classes_per_context  # every context after the first has this many classes
        heads = outputs.split(per, dim=2)
        losses = [supervised_contrastive(F.normalize(h, dim=2), y, p.consistency_temperature) for h in heads]
        return torch.stack(losses).sum() / (len(heads) * x.shape[0])

    @torch.no_grad()
    def after_context(self, info: ContextInfo) -> None:
        """Store the context's exemplars with their logits (the past heads capped), then write every older
        exemplar's logits of this and the later heads from the network once more."""
        context, p = info.context, self.params
        old, _ = self.scenario.labels(context.index)
        head = self.scenario.head_size
        with info.phase("storing exemplars", total=2) as progress:
            order = exemplar_order(self.buffer, self.model, context, p.selection, self.generator, lambda: progress(0))
            x = context.inputs(context.x_train)
            logits = eval_outputs(self.model, x, step=lambda: progress(0)).float()
            logits = transplant(logits, logits, context.y_train, 0, old, p.gamma)
            stored = len(self.buffer)
            self.buffer.add_classes(x, context.y_train, torch.full_like(context.y_train, context.index), order, logits)
            progress(1)
            buffer = self.buffer
            assert buffer.x is not None and buffer.y is not None and buffer.logits is not None
            if stored:
                past = (buffer.y < old).nonzero().squeeze(1)  # once per context
                fresh = eval_outputs(self.model, buffer.x[past], step=lambda: progress(1)).float()
                buffer.logits[past] = transplant(buffer.logits[past], fresh, buffer.y[past], old, head, p.gamma)
            progress(2)
        self.class_means = None
