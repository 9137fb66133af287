"""The replay buffer: stored samples (inputs, global labels, contexts, optionally logits) on the run's
device, shared by every method that replays stored data.

Two policies:
- class-balanced: after each context, up to `per_class` samples of each new class are stored (which
  ones, the method decides: random, or herding for iCaRL). With a total budget instead, every class
  keeps total // classes-seen samples, and older classes shrink to make room (iCaRL's rule).
- reservoir: every sample seen so far has the same chance of being stored (Vitter's algorithm R),
  written per training batch without any host sync: overflow writes go to a scratch row.
The sizes are Python ints known without asking the device.

`ReplayMethod` is the shared base of the methods that replay a class-balanced or reservoir buffer batch by
batch (ER, A-GEM): its buffer, its random stream, and the filling at the end of a context.

The class-IL papers' memory (iCaRL, WA and the bias-correction family) is the class-balanced buffer with a total:
`exemplar_memory` builds it from `method.memory_total` (or a budget per class), and `herding_order` chooses
its exemplars in the model's feature space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import Context
from core.methods.parts.base import Batch, ContextInfo, Method
from core.schema.params import ExemplarParams, ReplayParams


class ReplayBuffer:
    def __init__(self, device: torch.device, per_class: int | None = None, total: int | None = None,
                 reservoir: bool = False):
        if reservoir and total is None:
            raise ValueError("a reservoir buffer needs a total budget")
        if not reservoir and per_class is None and total is None:
            raise ValueError("a class-balanced buffer needs a budget per class or in total")
        self.device, self.per_class, self.total, self.reservoir = device, per_class, total, reservoir
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.context: Tensor | None = None
        self.logits: Tensor | None = None
        self.size = 0  # samples stored
        self.seen = 0  # samples offered (reservoir)
        self.classes: list[int] = []  # classes stored, in the order they came (class-balanced)

    def __len__(self) -> int:
        return self.size

    # --- class-balanced --------------------------------------------------------------------------

    def quota(self, n_classes: int) -> int:
        """Samples each class may keep when `n_classes` classes share the buffer."""
        if self.total is not None:
            return max(1, self.total // n_classes)
        assert self.per_class is not None
        return self.per_class

    def add_classes(self, x: Tensor, y: Tensor, context: Tensor, order: dict[int, Tensor],
                    logits: Tensor | None = None) -> None:
        """Store new classes: `order[c]` lists indices into x of class c, most wanted first (the buffer
        keeps a prefix). Older classes are cut to the new quota, keeping their own prefixes."""
        assert not self.reservoir
        new = [c for c in order if c not in self.classes]
        m = self.quota(len(self.classes) + len(new))
        parts: list[tuple[Tensor, ...]] = []
        if self.size:
            assert self.x is not None and self.y is not None and self.context is not None
            for c in self.classes:  # stored contiguously, class by class, each in its own preference order
                rows = (self.y == c).nonzero().squeeze(1)[:m]  # at consolidation time only, not per step
                parts.append((self.x[rows], self.y[rows], self.context[rows],
                              *(() if self.logits is None else (self.logits[rows],))))
        for c in new:
            rows = order[c][:m]
            parts.append((x[rows], y[rows], context[rows], *(() if logits is None else (logits[rows],))))
        self.classes += new
        self.x = torch.cat([p[0] for p in parts]).to(self.device)
        self.y = torch.cat([p[1] for p in parts]).to(self.device)
        self.context = torch.cat([p[2] for p in parts]).to(self.device)
        self.logits = torch.cat([p[3] for p in parts]).to(self.device) if logits is not None else None
        self.size = self.x.shape[0]

    def class_rows(self, c: int) -> Tensor:
        assert self.y is not None
        return (self.y == c).nonzero().squeeze(1)

    def subset(self, rows: Tensor) -> ReplayBuffer:
        """A class-balanced buffer holding only the given rows (copies): BiC trains on its memory without the
        exemplars it holds out."""
        assert not self.reservoir and self.x is not None and self.y is not None and self.context is not None
        part = ReplayBuffer(self.device, self.per_class, self.total)
        part.x, part.y, part.context = self.x[rows], self.y[rows], self.context[rows]
        part.logits = None if self.logits is None else self.logits[rows]
        part.size, part.classes = int(rows.shape[0]), list(self.classes)
        return part

    # --- reservoir -------------------------------------------------------------------------------

    def add_reservoir(self, x: Tensor, y: Tensor, context: Tensor, logits: Tensor | None,
                      generator: torch.Generator) -> None:
        """Offer a batch: sample i (the seen+i-th ever) goes to slot seen+i while there is room, afterwards
        to a uniform slot in [0, seen+i] if that slot is < capacity, else nowhere."""
        assert self.reservoir and self.total is not None
        cap, n = self.total, x.shape[0]
        if self.x is None:  # one extra scratch row takes the writes that the reservoir rejects
            self.x = torch.zeros((cap + 1, *x.shape[1:]), dtype=x.dtype, device=self.device)
            self.y = torch.zeros(cap + 1, dtype=torch.long, device=self.device)
            self.context = torch.zeros(cap + 1, dtype=torch.long, device=self.device)
            if logits is not None:
                self.logits = torch.zeros((cap + 1, logits.shape[1]), dtype=logits.dtype, device=self.device)
        position = torch.arange(self.seen, self.seen + n, device=self.device)
        draw = (torch.rand(n, generator=generator, device=self.device) * (position + 1)).long()
        slot = torch.where(position < cap, position, torch.where(draw < cap, draw, cap))
        self.x.index_copy_(0, slot, x)
        self.y.index_copy_(0, slot, y)  # type: ignore[union-attr]
        self.context.index_copy_(0, slot, context)  # type: ignore[union-attr]
        if logits is not None and self.logits is not None:
            self.logits.index_copy_(0, slot, logits)
        self.seen += n
        self.size = min(self.seen, cap)

    # --- replay ----------------------------------------------------------------------------------

    def sample(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """n stored samples, uniformly with replacement, as device tensors (no host sync)."""
        assert self.x is not None and self.size > 0
        return self.gather(torch.randint(0, self.size, (n,), generator=generator, device=self.device))

    def gather(self, idx: Tensor) -> dict[str, Tensor]:
        """The stored samples at rows `idx` (a device tensor), as `sample` gives them."""
        assert self.x is not None
        out = {"x": self.x[idx], "y": self.y[idx], "context": self.context[idx]}  # type: ignore[index]
        if self.logits is not None:
            out["logits"] = self.logits[idx]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "context": self.context, "logits": self.logits, "size": self.size,
                "seen": self.seen, "classes": list(self.classes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x, self.y, self.context, self.logits = state["x"], state["y"], state["context"], state["logits"]
        self.size, self.seen, self.classes = state["size"], state["seen"], list(state["classes"])


def buffer_for(params: Any, device: torch.device, total_classes: int, reservoir: bool) -> ReplayBuffer:
    """The buffer a method's parameters ask for. A reservoir's capacity is budget_total, or the per-class
    budget times every class of the run; a class-balanced buffer keeps budget per class, or shares
    budget_total among the classes seen."""
    if reservoir:
        return ReplayBuffer(device, total=params.budget_total or params.budget * total_classes, reservoir=True)
    return ReplayBuffer(device, per_class=params.budget, total=params.budget_total)


def exemplar_memory(params: Any, device: torch.device) -> ReplayBuffer:
    """The class-balanced exemplar memory of `method.memory_total` samples in all, each class keeping
    memory_total // classes seen (m shrinks as classes arrive), or of `method.budget` samples per class."""
    return ReplayBuffer(device, per_class=params.budget, total=params.memory_total)


@torch.no_grad()
def eval_outputs(model: nn.Module, x: Tensor, batch: int = 2048, step: Callable[[], None] = lambda: None,
                 features: bool = False) -> Tensor:
    """The model's logits (or its features) of x in eval mode, `batch` inputs at a time; `step()` after each batch."""
    was_training = model.training
    model.eval()
    forward = model.features if features else model
    try:
        parts = []
        for i in range(0, x.shape[0], batch):
            parts.append(forward(x[i : i + batch]))
            step()
        return torch.cat(parts)
    finally:
        model.train(was_training)


def eval_features(model: nn.Module, x: Tensor, batch: int = 2048, step: Callable[[], None] = lambda: None) -> Tensor:
    """The model's features of x in eval mode, `batch` inputs at a time; `step()` after each batch."""
    return eval_outputs(model, x, batch, step, features=True)


def herding_order(features: Tensor, labels: Tensor, classes: list[int], m: int,
                  step: Callable[[], None] = lambda: None) -> dict[int, Tensor]:
    """For each class, the indices (into features) of its first min(m, n_c) herding picks, in order: each pick is
    the sample that brings the mean of the L2-normalised features chosen so far closest to the class mean,
    vectorised over every candidate and class at once. `step()` after every pick (a stop check; no host sync)."""
    features = F.normalize(features, dim=1)
    members = [(labels == c).nonzero().squeeze(1) for c in classes]  # once per consolidation
    counts = [int(idx.shape[0]) for idx in members]
    n_max, steps = max(counts), min(m, max(counts))
    padded = torch.zeros(len(classes), n_max, features.shape[1], device=features.device)
    valid = torch.zeros(len(classes), n_max, dtype=torch.bool, device=features.device)
    for i, idx in enumerate(members):
        padded[i, : counts[i]] = features[idx]
        valid[i, : counts[i]] = True
    mean = padded.sum(1) / torch.tensor(counts, device=features.device).unsqueeze(1)
    chosen_sum = torch.zeros_like(mean)
    rows = torch.arange(len(classes), device=features.device)
    picks = []
    for k in range(1, steps + 1):
        candidate_means = (chosen_sum.unsqueeze(1) + padded) / k
        distance = (mean.unsqueeze(1) - candidate_means).norm(dim=2).masked_fill(~valid, float("inf"))
        pick = distance.argmin(1)
        picks.append(pick)
        chosen_sum += padded[rows, pick]
        valid[rows, pick] = False
        step()
    order = torch.stack(picks, 1)
    return {c: members[i][order[i, : min(m, counts[i])]] for i, c in enumerate(classes)}


@torch.no_grad()
def exemplar_means(model: nn.Module, buffer: ReplayBuffer, head: int,
                   step: Callable[[], None] = lambda: None) -> Tensor:
    """Mean of each class's L2-normalised exemplar features, normalised again (iCaRL's class prototypes), (head,
    features); the rows of classes without exemplars are NaN."""
    assert buffer.x is not None and buffer.y is not None
    feats = F.normalize(eval_features(model, buffer.x, step=step), dim=1)
    sums = torch.zeros(head, feats.shape[1], device=feats.device).index_add_(0, buffer.y, feats)
    ones = torch.ones_like(buffer.y, dtype=feats.dtype)
    counts = torch.zeros(head, device=feats.device).index_add_(0, buffer.y, ones)
    means = F.normalize(sums / counts.clamp_min(1).unsqueeze(1), dim=1)
    return means.masked_fill((counts == 0).unsqueeze(1), float("nan"))


def nearest_mean_scores(features: Tensor, means: Tensor) -> Tensor:
    """The nearest-mean-of-exemplars rule as scores over the head: minus the squared distance of the normalised
    features to each class mean, -inf for the classes without exemplars."""
    distance = torch.cdist(F.normalize(features, dim=1), means.nan_to_num(0.0)).square()
    return (-distance).masked_fill(torch.isnan(means[:, 0]).unsqueeze(0), float("-inf"))


def union_batch(buffer: ReplayBuffer, batch: Batch, n_train: int, generator: torch.Generator) -> Batch:
    """The batch as if drawn from the union of the context's `n_train` samples and the stored ones: each sample
    is swapped for a stored one with probability M / (N + M) (sizes known on the host: no sync)."""
    share = len(buffer) / (len(buffer) + n_train)
    stored = buffer.sample(batch.x.shape[0], generator)
    swap = torch.rand(batch.x.shape[0], generator=generator, device=batch.x.device) < share  # (B,)
    x = torch.where(swap.view(-1, *[1] * (batch.x.dim() - 1)), stored["x"], batch.x)
    return Batch(x, torch.where(swap, stored["y"], batch.y), batch.context,
                 torch.where(swap, stored["context"], batch.contexts()))


def random_order(y: Tensor, classes: list[int], generator: torch.Generator) -> dict[int, Tensor]:
    """For each class, its sample indices in random order (random exemplar selection)."""
    perm = torch.randperm(y.shape[0], generator=generator, device=generator.device).to(y.device)
    shuffled = y[perm]
    return {c: perm[shuffled == c] for c in classes}


def classes_of(context: Context) -> list[int]:
    """The global labels a context brings."""
    lo, hi = context.labels
    return list(range(lo, hi))


def store_context(buffer: ReplayBuffer, context: Context, order: dict[int, Tensor]) -> None:
    """Store the context's samples (inputs as the network sees them) in the given per-class order."""
    ids = torch.full_like(context.y_train, context.index)
    buffer.add_classes(context.inputs(context.x_train), context.y_train, ids, order)


def exemplar_order(buffer: ReplayBuffer, model: nn.Module, context: Context, selection: str,
                   generator: torch.Generator, step: Callable[[], None] = lambda: None) -> dict[int, Tensor]:
    """The order in which the context's classes would give exemplars to a class-balanced memory: the picks of
    herding in the model's feature space (as many as each class may keep once they join), or a random order;
    `step()` as herding goes (a stop check)."""
    classes = classes_of(context)
    if selection == "herding":
        features = eval_features(model, context.inputs(context.x_train), step=step)
        return herding_order(features, context.y_train, classes, buffer.quota(len(buffer.classes) + len(classes)),
                             step)
    return random_order(context.y_train, classes, generator)


def store_exemplars(buffer: ReplayBuffer, model: nn.Module, context: Context, selection: str,
                    generator: torch.Generator, step: Callable[[], None] = lambda: None) -> None:
    """The exemplars of the context's classes into a class-balanced memory, in `exemplar_order`."""
    store_context(buffer, context, exemplar_order(buffer, model, context, selection, generator, step))


ExemplarParamsT = TypeVar("ExemplarParamsT", bound=ExemplarParams)


class ExemplarMethod(Method[ExemplarParamsT]):
    """The shared base of the class-IL papers' methods that keep exemplars of every class seen (WA, BiC, LUCIR,
    PODNet, DER): the class-balanced memory of `memory_total` (`exemplar_memory`), a random stream seeded from the run's
    seed plus the method's `seed_offset`, the exemplars of each context herded into the memory after it
    (`remember`), both in checkpoints, and the nearest mean of exemplars as their side figure (`side_scores`)."""

    seed_offset: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.buffer = exemplar_memory(self.params, self.device)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + self.seed_offset)
        self.class_means: Tensor | None = None  # for the nearest-mean figure, made at the first evaluation after

    def remember(self, info: ContextInfo) -> None:
        """Herd the context's exemplars into the memory (a phase that reports, and so stops, as it goes)."""
        classes = classes_of(info.context)
        with info.phase("herding", total=len(classes)) as progress:
            store_exemplars(self.buffer, self.model, info.context, self.params.selection, self.generator,
                            lambda: progress(0))
            progress(len(classes))
        self.class_means = None  # the memory and the network changed: made again at the next evaluation

    def side_scores(self, x: Tensor, context: int) -> dict[str, Tensor]:
        """The nearest mean of exemplars beside the method's own classifier, as iCaRL predicts."""
        if self.class_means is None:
            self.class_means = exemplar_means(self.model, self.buffer, self.scenario.head_size)
        return {"nme": nearest_mean_scores(self.model.features(x), self.class_means)}

    def after_context(self, info: ContextInfo) -> None:
        self.remember(info)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])


ReplayParamsT = TypeVar("ReplayParamsT", bound=ReplayParams)


class ReplayMethod(Method[ReplayParamsT]):
    """A buffer filled as batches stream by (reservoir, when `budget_total` is set) or with random samples of
    each class at the end of its context (class-balanced), and replay batches drawn from it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # a task-free stream (benchmark.stream) has no end of a context to fill a class-balanced buffer at
        self.reservoir = self.params.budget_total is not None or self.config.benchmark.stream != "academic"
        self.buffer = buffer_for(self.params, self.device, self.scenario.total_classes, self.reservoir)
        self.generator = torch.Generator(self.device).manual_seed(self.config.train.seed + 31337)

    def replayed(self, n: int, context: int) -> Batch:
        """n stored samples as a batch of mixed contexts, trained while learning `context`."""
        stored = self.buffer.sample(n, self.generator)
        return Batch(stored["x"], stored["y"], context, stored["context"])

    def remember(self, batch: Batch) -> None:
        """A reservoir buffer sees every training batch; a class-balanced one fills at the end of a context."""
        if self.reservoir:
            self.buffer.add_reservoir(batch.x, batch.y, batch.contexts(), None, self.generator)

    def after_context(self, info: ContextInfo) -> None:
        if not self.reservoir:
            context = info.context
            store_context(self.buffer, context, random_order(context.y_train, classes_of(context), self.generator))

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
