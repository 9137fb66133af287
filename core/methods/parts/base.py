"""The method interface: what a continual-learning method may hook into, and nothing more.

A method is one short file with a subclass of `Method`. The training loop calls, per context:
`before_context` (and `training_rows`), then per step `loss` -> backward -> `after_backward` -> optimiser step ->
`after_step`, then `after_context` (consolidation: Fisher, herding, dreaming...), then evaluation
through `predict`. `state_dict` / `load_state_dict` carry the method's state in checkpoints.

A method registers itself by naming its parameters: `class EWC(Method[EWCParams])` is the method "ewc"
(EWCParams' name) and finds `self.params.lambda_` typed. A shared base generic in its parameters
(`class DreamingMethod(Method[DreamingParamsT])`) registers nothing; its subclasses do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, get_args

import torch
from torch import Tensor, nn

from core.engine.data import Benchmark, Context
from core.engine.loop import Cancelled, Phase
from core.engine.models import build_model
from core.engine.scenarios import ScenarioView
from core.methods.parts.common import Dreams
from core.runs.events import Event
from core.schema.config import RunConfig
from core.schema.params import METHOD_PARAMS, MethodParams

P = TypeVar("P", bound=MethodParams)


@dataclass
class Batch:
    x: Tensor
    y: Tensor  # global labels
    context: int  # the context being trained
    context_ids: Tensor | None = None  # per-sample context when a batch mixes contexts (joint, replay)

    def contexts(self) -> Tensor:
        """Each sample's context, also for a batch of one context."""
        return torch.full_like(self.y, self.context) if self.context_ids is None else self.context_ids


@dataclass
class ContextInfo:
    """What a method sees of the context being learned.

    `stage` counts the trainings of the run (0, 1, ...): the row of the accuracy matrix this one fills and the
    `context` field of its events. `context.index` says which context's data and labels are learned. They are
    equal except for joint training, whose single stage 0 learns the union of every context, indexed as the
    last one (so all classes count as seen)."""

    stage: int
    context: Context
    previous_model: nn.Module | None  # frozen copy after the previous context (when the method asks)
    emit: Callable[[Event], None]
    progress_interval: float = 0.25
    should_stop: Callable[[], bool] = lambda: False  # the run's stop flag (Ctrl+C, SIGTERM, the TUI's s)

    def check_stop(self) -> None:
        """Raise Cancelled when a stop was asked for. Cheap: long loops call it every step or so."""
        if self.should_stop():
            raise Cancelled(f"stopped in context {self.stage}")

    def phase(self, name: str, total: int | None = None) -> Phase:
        """A long consolidation phase (core/engine/loop.py's Phase): PhaseStarted, throttled Progress each time it
        is called with the steps done (and the loss, as a float or a device tensor, read only when a report is
        due), PhaseFinished. Each report also checks for a stop (raising Cancelled), so a phase that reports its
        steps is always stoppable."""
        return Phase(self.emit, self.stage, name, total, interval=self.progress_interval, check_stop=self.check_stop)


class Method(Generic[P]):
    name: ClassVar[str]  # its parameters' name, set when it registers
    needs_previous_model: ClassVar[bool] = False  # keep a frozen copy of the model after each context
    trains_jointly: ClassVar[bool] = False  # one training stage over every context's data
    fresh_optimizer: ClassVar[bool] = False  # every context after the first starts with a new optimiser state,
    # whatever train.reset_optimizer says (a method that re-initialises what it trains each context)
    run_kind: ClassVar[str] = "classification"  # the trainer that runs it (core/training/__init__.py's TRAINERS)

    params: P

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register a class whose generic argument is a named parameter class (one in METHOD_PARAMS)."""
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):  # this class's own bases, as written
            for params in get_args(base):
                if isinstance(params, type) and issubclass(params, MethodParams):
                    name = params.model_fields["name"].default
                    if isinstance(name, str) and METHOD_PARAMS.get(name) is params:
                        register(name, cls)

    def __init__(self, params: P, config: RunConfig, model: nn.Module, scenario: ScenarioView,
                 benchmark: Benchmark, device: torch.device):
        self.params, self.config, self.model = params, config, model
        self.scenario, self.benchmark, self.device = scenario, benchmark, device

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        """The network the run trains; a method that needs another shape (separate networks) overrides this."""
        m = config.model
        return build_model(m.kind, input_shape, head_size, hidden=m.hidden, batch_norm=m.batch_norm,
                           fc_hidden=m.fc_hidden)

    def before_context(self, info: ContextInfo) -> None:
        """Prepare for a new context (e.g. snapshot, masks)."""

    def training_rows(self, context: Context) -> Tensor | None:
        """The rows of the context's training set the loop draws its batches from (asked after `before_context`);
        None: all of them. BiC holds some out for its bias layer this way."""
        return None

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        """The per-step loss; the default is cross-entropy (MSE for regression) under the scenario's view of the
        head."""
        return self.scenario.loss(self.model(batch.x), batch.y, batch.context, batch.context_ids)

    def after_backward(self, info: ContextInfo) -> None:
        """Gradients are in `.grad`; change them before the optimiser step (A-GEM projects here)."""

    def after_step(self, info: ContextInfo) -> None:
        """The optimiser has stepped (SI accumulates its path integral here)."""

    def after_context(self, info: ContextInfo) -> None:
        """Consolidate what was learned (Fisher, exemplars, generator...); use `info.phase` for long work."""

    def predict(self, x: Tensor, context: int) -> Tensor | None:
        """Scores over the whole head for test inputs of `context`, or None to use the model's logits
        (iCaRL's nearest-mean rule, XdG's masks and separate networks override this)."""
        return None

    def side_scores(self, x: Tensor, context: int) -> dict[str, Tensor]:
        """Scores by another rule than `predict`'s, evaluated beside it: the nearest mean of exemplars ("nme") for
        a method that keeps exemplars and predicts with its classifier, the network's logits ("cnn") for iCaRL."""
        return {}

    def take_dreams(self) -> Dreams | None:
        """Images dreamed in the last `after_context` (data-free methods), for the trainer to save and score."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def held_bytes(self) -> int:
        """Bytes of the tensors the method keeps between contexts (those of its checkpointed state: stored samples,
        Fisher, anchors, generators...), for comparing methods at equal memory."""
        return tensor_bytes(self.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def tensor_bytes(value: Any) -> int:
    """Bytes of every tensor in a nest of dicts, lists and tuples (a module's or a method's state)."""
    if isinstance(value, Tensor):
        return value.nelement() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


METHOD_CLASSES: dict[str, type[Method[Any]]] = {}  # name -> class, filled as the method modules are imported


def register(name: str, cls: type[Method[Any]]) -> None:
    known = METHOD_CLASSES.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"method {name!r}: both {known.__module__}.{known.__qualname__} and "
                        f"{cls.__module__}.{cls.__qualname__} take its parameters")
    cls.name = name
    METHOD_CLASSES[name] = cls
