"""Run configuration: presets (TOML) + overrides -> one validated, fully resolved `RunConfig`.

Everything a run uses is in the config, so `run.json` records every value (per-scenario method
defaults included). Imports neither torch nor any UI library: the CLI and the TUI validate configs
without paying for torch.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

Scenario = Literal["task", "domain", "class"]
SCENARIOS: tuple[str, ...] = ("task", "domain", "class")


class ConfigError(ValueError):
    """A user-facing configuration problem, phrased as one line that names the field and the fix."""

    def __init__(self, message: object = "") -> None:
        # One line even when a value quoted in it holds a line break (a file name, a --set item).
        super().__init__(" ".join(str(message).splitlines()))


# --- Limits ----------------------------------------------------------------------------------------
# Far beyond any experiment this workbench runs, yet tight enough that a typo (1e12 for 1e2, an extra
# 000) is refused here in one line instead of asking the worker for terabytes or for years.

SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63: torch takes 64 bits, and methods add offsets (< 2**31) to the seed
MAX_LR = 10.0  # the presets use 1e-4 .. 0.1; Adam is used at <= 1e-2 and SGD at <= 1; above 10 only diverges
MAX_WEIGHT_DECAY = 1.0  # typical values are 1e-5 .. 5e-4
MAX_ITERATIONS = 10_000_000  # steps per context or phase: 1,000x the presets'; the worker keeps a float per step
MAX_BATCH = 1_000_000  # samples per step / evaluation batch: more than any training set here (60,000)
MAX_WIDTH = 65_536  # units (or channels, or latent size) of one layer: 2**16, ~30x the widest published nets here
MAX_LAYERS = 100  # entries of a width list (hidden layers)
# Parameters of one network (or a method's set of networks): 5e8 x 16 bytes (weights, gradients and Adam's
# two moments) = 8 GB; the presets' networks have 2e5 .. 7e6.
MAX_PARAMETERS = 500_000_000
BYTES_PER_PARAMETER = 16  # float32 weights + gradients + Adam's two moments
MAX_STORED_SAMPLES = 1_000_000  # replay buffer, all classes together: 12 GB as float32 CIFAR images
# Samples of an estimate (the Fisher; importance samples per test image, 10,000 in the generative
# classifier's paper): both are computed in chunks, so this bounds time, not memory.
MAX_SAMPLES = 1_000_000
MAX_DREAMS_PER_CLASS = 10_000  # dreamed (and exported) images per class: ABD generates all classes' dreams at once
MAX_IMAGE_SIDE = 1024  # pixels: padding size, jitter
MAX_PROGRESS_INTERVAL = 3600.0  # seconds between progress events: an hour


def _sci(x: float) -> str:
    """6.4e9, 5e8: short scientific notation for the size messages."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _dense_parameters(widths: list[int]) -> int:
    """Weights and biases of fully connected layers widths[0] -> widths[1] -> ... -> widths[-1]."""
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


def _vae_parameters(in_dim: int, hidden: list[int], z_dim: int) -> int:
    """A fully connected VAE: encoder in -> hidden, mean and log-variance heads, decoder z -> hidden reversed -> in."""
    h = hidden[-1] if hidden else in_dim
    encoder = _dense_parameters([in_dim, *hidden]) + 2 * (h + 1) * z_dim
    return encoder + _dense_parameters([z_dim, *hidden[::-1], in_dim])


def _check_size(field: str, what: str, parameters: int) -> None:
    """Refuse a network too large for any device, in one line naming the field and the limit."""
    if parameters > MAX_PARAMETERS:
        gb = parameters * BYTES_PER_PARAMETER / 1e9
        raise ValueError(f"{field}: {what} gives about {_sci(parameters)} parameters (~{gb:,.0f} GB with Adam's "
                         f"state); at most {_sci(MAX_PARAMETERS)}: use smaller widths")


def _check_widths(v: list[int] | None) -> list[int] | None:
    if v is not None and any(not 1 <= w <= MAX_WIDTH for w in v):
        raise ValueError(f"every layer width must be >= 1 and <= {MAX_WIDTH}, got {_show(v)}")
    return v


def _check_seed(v: int | None) -> int | None:
    if v is not None and not 0 <= v < SEED_LIMIT:
        raise ValueError(f"a seed must be >= 0 and below 2**63 = {SEED_LIMIT} (torch seeds are 64-bit), got {v}")
    return v


# Facts about each benchmark that config validation needs (no data is loaded here).
BENCHMARK_INFO: dict[str, dict[str, Any]] = {
    "digits": {"classes": 10, "shape": (1, 8, 8)},
    "mnist": {"classes": 10, "shape": (1, 28, 28)},
    "fashion-mnist": {"classes": 10, "shape": (1, 28, 28)},
    "cifar10": {"classes": 10, "shape": (3, 32, 32)},
    "cifar100": {"classes": 100, "shape": (3, 32, 32)},
}


class _Section(BaseModel):
    # allow_inf_nan=False: no float anywhere (method parameters included) may be inf or nan.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class BenchmarkConfig(_Section):
    name: Literal["digits", "mnist", "fashion-mnist", "cifar10", "cifar100"] = Field(
        "digits", description="Data set: digits is scikit-learn's embedded 8x8 set (offline)."
    )
    protocol: Literal["split", "permuted", "rotated"] = Field(
        "split", description="split: disjoint classes per context; permuted / rotated: all classes, new input transform."
    )
    contexts: int = Field(5, ge=1, le=1000, description="Number of contexts (tasks) learned one after another.")
    classes_per_context: int | None = Field(
        None, ge=1, description="split: classes in each context (default: all classes / contexts)."
    )
    class_order_seed: int | None = Field(
        None, ge=0, description="split: permute the class order with this seed (none: natural order 0, 1, 2, ...); "
        "permuted: seed of the pixel permutations (none: 0)."
    )
    pad_to: int | None = Field(None, ge=1, le=MAX_IMAGE_SIDE,
                               description="Zero-pad images to this size (permuted MNIST uses 32).")
    rotation_max: float = Field(180.0, description="rotated: contexts use angles evenly spaced in [0, rotation_max).")
    augment: bool = Field(False, description="Padded random crop (4 px) and horizontal flip, batched on the device.")
    data_dir: str | None = Field(None, description="Folder holding the data set files (default: ./data).")
    download: bool = Field(False, description="Download the data set when its files are missing.")

    _seed = field_validator("class_order_seed")(_check_seed)

    @property
    def num_classes(self) -> int:
        return BENCHMARK_INFO[self.name]["classes"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = BENCHMARK_INFO[self.name]["shape"]
        if self.pad_to:
            h, w = max(h, self.pad_to), max(w, self.pad_to)
        return (c, h, w)

    @property
    def total_classes(self) -> int:
        """Classes over all contexts: with permuted / rotated each context brings its own copy of every class."""
        assert self.classes_per_context is not None
        if self.protocol == "split":
            return self.contexts * self.classes_per_context
        return self.contexts * self.num_classes

    @model_validator(mode="after")
    def _resolve_classes(self) -> BenchmarkConfig:
        n = self.num_classes
        if self.protocol == "split":
            if self.classes_per_context is None:
                if n // self.contexts < 1:
                    raise ValueError(f"contexts: {self.name} has {n} classes, too few for {self.contexts} contexts")
                self.classes_per_context = n // self.contexts
            if self.contexts * self.classes_per_context > n:
                raise ValueError(
                    f"classes_per_context: {self.contexts} contexts x {self.classes_per_context} classes needs "
                    f"{self.contexts * self.classes_per_context} classes, {self.name} has {n}"
                )
        else:
            if self.classes_per_context not in (None, n):
                raise ValueError(f"classes_per_context: a {self.protocol} context holds all {n} classes of {self.name}; "
                                 f"set benchmark.classes_per_context={n}")
            self.classes_per_context = n
        return self


MODEL_KINDS = ("mlp", "lenet5", "vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced")


class ModelConfig(_Section):
    kind: Literal["mlp", "lenet5", "vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced"] = Field(
        "mlp", description="Network: mlp, lenet5, vdv-conv (van de Ven's 5-conv net), CIFAR ResNets."
    )
    hidden: list[int] = Field([400, 400], max_length=MAX_LAYERS, description="mlp: widths of the hidden layers.")
    batch_norm: bool = Field(False, description="mlp / fc layers: BatchNorm after each hidden layer.")
    fc_hidden: list[int] | None = Field(None, max_length=MAX_LAYERS,
                                        description="vdv-conv: widths of the fc layers (default 2000, 2000).")

    _widths = field_validator("hidden", "fc_hidden")(_check_widths)


VDV_CHANNELS = (16, 32, 64, 128, 256)  # VdVConvNet's conv stack (core/models.py): 3x3 convs, all but the first stride 2


def model_parameters(kind: str, input_shape: tuple[int, int, int], head: int, hidden: list[int],
                     fc_hidden: list[int] | None) -> int | None:
    """About how many parameters core.models.build_model gives, without torch; None for the networks whose
    size no setting can blow up (lenet5's fc layers and the ResNets are fixed)."""
    c, h, w = input_shape
    if kind == "mlp":
        return _dense_parameters([c * h * w, *hidden, head])
    if kind == "vdv-conv":
        conv = sum(9 * a * b + 2 * b for a, b in zip((c, *VDV_CHANNELS), VDV_CHANNELS))
        flat = VDV_CHANNELS[-1] * math.ceil(h / 16) * math.ceil(w / 16)  # four stride-2 convs
        return conv + _dense_parameters([flat, *(fc_hidden or [2000, 2000]), head])
    return None


class TrainConfig(_Section):
    iterations: int = Field(500, ge=1, le=MAX_ITERATIONS, description="Optimiser steps per context.")
    batch_size: int = Field(128, ge=1, le=MAX_BATCH, description="Samples per step.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam (betas 0.9, 0.999) or sgd.")
    lr: float = Field(1e-3, gt=0, le=MAX_LR, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd: momentum.")
    weight_decay: float = Field(0.0, ge=0, le=MAX_WEIGHT_DECAY, description="L2 weight decay.")
    reset_optimizer: bool = Field(False, description="Start every context with a fresh optimiser state.")
    lr_decay_at: list[float] = Field([], max_length=MAX_LAYERS, description="Fractions of each context's iterations "
                                     "at which the learning rate is multiplied by lr_decay (e.g. [0.4, 0.6, 0.8]).")
    lr_decay: float = Field(0.1, gt=0, le=1, description="Factor applied at each lr_decay_at point.")
    seed: int = Field(0, description="Seed of initialisation, sampling and augmentation (0 <= seed < 2**63).")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda or cuda:N.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the forward pass on CUDA.")
    compile: bool = Field(False, description="torch.compile the model (CUDA).")
    eval_batch_size: int = Field(2048, ge=1, le=MAX_BATCH, description="Samples per evaluation batch.")
    checkpoints: Literal["last", "all", "none"] = Field(
        "last", description="Context checkpoints to keep: last (enough to resume), all, none."
    )
    progress_interval: float = Field(0.25, gt=0, le=MAX_PROGRESS_INTERVAL,
                                     description="Seconds between progress events.")

    _seed = field_validator("seed")(_check_seed)

    @field_validator("lr_decay_at")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v) or v != sorted(v):
            raise ValueError("give increasing fractions between 0 and 1, e.g. [0.4, 0.6, 0.8]")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"{v!r} is not a device; use auto, cpu, cuda or cuda:N")
        return v


# --- Method parameters -----------------------------------------------------------------------------
# Each method's typed hyper-parameters live here (torch-free, so the TUI can build forms from them);
# the algorithm lives in core/methods/<name>.py.

METHOD_PARAMS: dict[str, type[MethodParams]] = {}


def register_method(cls: type[MethodParams]) -> type[MethodParams]:
    METHOD_PARAMS[cls.model_fields["name"].default] = cls
    return cls


class MethodParams(_Section):
    name: str
    summary: ClassVar[str] = ""
    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS

    def resolve(self, config: RunConfig) -> None:
        """Check values that need the whole config; raise ValueError naming the field."""


@register_method
class NoneParams(MethodParams):
    """Fine-tuning: plain cross-entropy on each context in turn (the lower bound)."""

    name: Literal["none"] = "none"
    summary: ClassVar[str] = "fine-tuning, the lower bound"


@register_method
class JointParams(MethodParams):
    """Joint training: all contexts' data at once, same total iterations (the upper bound)."""

    name: Literal["joint"] = "joint"
    summary: ClassVar[str] = "all contexts at once, the upper bound"

    def resolve(self, config: RunConfig) -> None:
        steps = config.train.iterations * config.benchmark.contexts  # one stage of them all (core/train.py)
        if steps > MAX_ITERATIONS:
            raise ValueError(f"train.iterations: joint trains iterations x contexts = {config.train.iterations} x "
                             f"{config.benchmark.contexts} = {steps} steps in one stage; at most {MAX_ITERATIONS}")


@register_method
class EWCParams(MethodParams):
    """Elastic weight consolidation: a quadratic penalty per context, weighted by the diagonal Fisher."""

    name: Literal["ewc"] = "ewc"
    summary: ClassVar[str] = "elastic weight consolidation (parameter regularisation)"
    lambda_: float | None = Field(None, alias="lambda", ge=0,
                                  description="Penalty strength (presets give the tuned value per scenario).")
    fisher_labels: Literal["all", "sample", "pred", "true"] = Field(
        "all", description="Fisher: all = exact expectation over the predictive distribution; sample, pred "
        "(argmax) or true (empirical Fisher).")
    fisher_n: int | None = Field(None, ge=1, le=MAX_SAMPLES,
                                 description="Samples for the Fisher (none: the whole context).")

    def resolve(self, config: RunConfig) -> None:
        if self.lambda_ is None:
            raise ValueError(f"method.lambda: no default for {self.name} in this preset; "
                             f"pass --set method.lambda=VALUE (REFERENCE.md lists tuned values)")


@register_method
class OnlineEWCParams(EWCParams):
    """Online EWC: one running Fisher (F <- gamma F + F_new) and one anchor."""

    name: Literal["online-ewc"] = "online-ewc"  # type: ignore[assignment]
    summary: ClassVar[str] = "online EWC: one decayed Fisher, one anchor"
    gamma: float = Field(1.0, ge=0, le=1, description="Decay of the running Fisher.")


@register_method
class SIParams(MethodParams):
    """Synaptic intelligence: per-parameter importance from the path integral of the data loss."""

    name: Literal["si"] = "si"
    summary: ClassVar[str] = "synaptic intelligence (parameter regularisation)"
    c: float | None = Field(None, ge=0, description="Penalty strength (presets give the tuned value per scenario).")
    epsilon: float = Field(0.1, gt=0, description="Damping xi of the importance.")

    def resolve(self, config: RunConfig) -> None:
        if self.c is None:
            raise ValueError("method.c: no default for si in this preset; pass --set method.c=VALUE")


@register_method
class LwFParams(MethodParams):
    """Learning without forgetting: distil the previous model's outputs on the current inputs."""

    name: Literal["lwf"] = "lwf"
    summary: ClassVar[str] = "learning without forgetting (distillation)"
    temperature: float = Field(2.0, gt=0, description="Distillation temperature T.")


@register_method
class XdGParams(MethodParams):
    """Context-dependent gating: a fixed random mask per context over the hidden units."""

    name: Literal["xdg"] = "xdg"
    summary: ClassVar[str] = "context-dependent gating (task-IL)"
    scenarios: ClassVar[tuple[str, ...]] = ("task",)
    gating: float = Field(0.9, ge=0, lt=1, description="Fraction of each hidden layer's units gated off per context.")


@register_method
class SeparateParams(MethodParams):
    """Separate networks: one small network per context, the parameter budget of the shared one."""

    name: Literal["separate"] = "separate"
    summary: ClassVar[str] = "one network per context (task-IL)"
    scenarios: ClassVar[tuple[str, ...]] = ("task",)
    hidden: list[int] | None = Field(
        None, max_length=MAX_LAYERS, description="Hidden widths of each network (none: scaled so all networks "
        "together have about the shared network's parameters).")

    _widths = field_validator("hidden")(_check_widths)

    def resolve(self, config: RunConfig) -> None:
        m, b = config.model, config.benchmark
        if self.hidden is None or m.kind not in ("mlp", "vdv-conv"):
            return
        per_network = model_parameters(m.kind, b.input_shape, b.classes_per_context,  # type: ignore[arg-type]
                                       self.hidden if m.kind == "mlp" else m.hidden,
                                       self.hidden if m.kind == "vdv-conv" else m.fc_hidden)
        _check_size("method.hidden", f"a network per context ({b.contexts}) with widths {_show(self.hidden)}",
                    b.contexts * (per_network or 0))


class ReplayParams(MethodParams):
    """Shared by the methods that store data: the buffer's budget."""

    budget: int | None = Field(None, ge=1, le=MAX_STORED_SAMPLES,
                               description="Stored samples per class (class-balanced buffer).")
    budget_total: int | None = Field(
        None, ge=1, le=MAX_STORED_SAMPLES, description="Stored samples in all (reservoir buffer); replaces budget "
        "when set.")

    def resolve(self, config: RunConfig) -> None:
        if self.budget is None and self.budget_total is None:
            raise ValueError(f"method.budget: no default for {self.name} in this preset; "
                             f"pass --set method.budget=N (per class) or --set method.budget_total=N")
        stored = self.budget_total or self.budget * config.benchmark.total_classes  # type: ignore[operator]
        if stored > MAX_STORED_SAMPLES:
            raise ValueError(f"method.budget: {self.budget} per class x {config.benchmark.total_classes} classes = "
                             f"{stored} stored samples; at most {MAX_STORED_SAMPLES} in all")


@register_method
class ERParams(ReplayParams):
    """Experience replay: a replay batch from the buffer beside each batch, losses weighted 1/t and 1 - 1/t."""

    name: Literal["er"] = "er"
    summary: ClassVar[str] = "experience replay (stored data)"


@register_method
class AGEMParams(ReplayParams):
    """A-GEM: project the gradient when it conflicts with the gradient on a replay batch."""

    name: Literal["agem"] = "agem"
    summary: ClassVar[str] = "averaged gradient episodic memory (stored data)"
    epsilon: float = Field(1e-7, gt=0, description="Added to the reference gradient's squared norm.")


@register_method
class DERPPParams(ReplayParams):
    """DER++: replay stored logits (MSE, alpha) and stored labels (CE, beta)."""

    name: Literal["derpp"] = "derpp"
    summary: ClassVar[str] = "dark experience replay++ (stored data and logits)"
    alpha: float = Field(0.5, ge=0, description="Weight of the logit-matching (MSE) term.")
    beta: float = Field(0.5, ge=0, description="Weight of the replayed labels' cross-entropy.")


@register_method
class ICaRLParams(ReplayParams):
    """iCaRL: herding exemplars, BCE with distillation targets, nearest-mean-of-exemplars prediction."""

    name: Literal["icarl"] = "icarl"
    summary: ClassVar[str] = "iCaRL (exemplars, nearest mean)"
    scenarios: ClassVar[tuple[str, ...]] = ("task", "class")
    selection: Literal["herding", "random"] = Field("herding", description="How exemplars are chosen.")
    temperature: float = Field(1.0, gt=0, description="Temperature of the old model's sigmoid targets.")


@register_method
class DGRParams(MethodParams):
    """Deep generative replay: a VAE trained alongside replays samples labelled by the previous classifier."""

    name: Literal["dgr"] = "dgr"
    summary: ClassVar[str] = "deep generative replay (generated data)"
    z_dim: int = Field(100, ge=1, le=MAX_WIDTH, description="Latent size of the VAE generator.")
    generator_hidden: list[int] | None = Field(None, max_length=MAX_LAYERS,
                                               description="VAE hidden widths (none: the model's MLP shape).")
    generator_lr: float | None = Field(None, gt=0, le=MAX_LR, description="VAE learning rate (none: train.lr).")
    distill: bool = Field(False, description="Replay soft targets of the previous model instead of its argmax.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature when distill is on.")

    _widths = field_validator("generator_hidden")(_check_widths)

    def resolve(self, config: RunConfig) -> None:
        m = config.model
        hidden = self.generator_hidden or (m.hidden if m.kind == "mlp" else [400, 400])  # as core/methods/dgr.py
        _check_size("method.generator_hidden", f"a VAE generator with widths {_show(hidden)} and z_dim {self.z_dim}",
                    _vae_parameters(math.prod(config.benchmark.input_shape), hidden, self.z_dim))


@register_method
class BIRParams(MethodParams):
    """Brain-inspired replay: replay through feedback, class-conditional prior, gated decoder, distillation."""

    name: Literal["bir"] = "bir"
    summary: ClassVar[str] = "brain-inspired replay (generated data)"
    z_dim: int = Field(100, ge=1, le=MAX_WIDTH, description="Latent size.")
    gating: float = Field(0.8, ge=0, lt=1, description="Fraction of decoder units gated off per context.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature.")
    recon_weight: float = Field(1.0, ge=0, description="Weight of the generative (VAE) loss.")

    def resolve(self, config: RunConfig) -> None:
        m = config.model
        # The decoder mirrors the classifier's fc hidden layers (core/methods/bir.py); its prior has a mode per class.
        fc = {"mlp": m.hidden, "vdv-conv": m.fc_hidden or [2000, 2000], "lenet5": [120, 84]}
        hidden = fc.get(m.kind) or [400, 400]
        _check_size("method.z_dim", f"a decoder with widths {_show(hidden[::-1])} and z_dim {self.z_dim}",
                    _vae_parameters(math.prod(config.benchmark.input_shape), hidden, self.z_dim)
                    + 2 * config.head_size * self.z_dim)


@register_method
class GenClassifierParams(MethodParams):
    """Generative classifier: one small VAE per class; predict the class with the highest likelihood."""

    name: Literal["gen-classifier"] = "gen-classifier"
    summary: ClassVar[str] = "generative classifier (one VAE per class)"
    scenarios: ClassVar[tuple[str, ...]] = ("task", "class")
    hidden: int = Field(85, ge=1, le=MAX_WIDTH, description="Hidden units of each class's VAE.")
    z_dim: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Latent size of each class's VAE (none: 20 "
                              "for CIFAR, 5 for the others, the paper's values).")
    importance_samples: int = Field(100, ge=1, le=MAX_SAMPLES,
                                    description="Samples of the importance-sampled likelihood at test.")
    likelihood: Literal["bernoulli", "gaussian"] | None = Field(
        None, description="p(x|z): bernoulli (pixels in [0, 1]) or gaussian with unit variance (none: gaussian "
        "for the standardised CIFAR inputs, bernoulli for the others).")

    def resolve(self, config: RunConfig) -> None:
        cifar = config.benchmark.name.startswith("cifar")
        if self.z_dim is None:
            self.z_dim = 20 if cifar else 5
        if self.likelihood is None:
            self.likelihood = "gaussian" if cifar else "bernoulli"
        if self.likelihood == "bernoulli" and cifar:
            raise ValueError(f"method.likelihood: bernoulli needs pixels in [0, 1], but {config.benchmark.name} "
                             f"inputs are standardised; use --set method.likelihood=gaussian")
        # One VAE per class: encoder in -> h -> h -> 2z, decoder z -> h -> h -> in (core/methods/gen_classifier.py).
        h, z = self.hidden, self.z_dim
        per_class = _dense_parameters([math.prod(config.benchmark.input_shape), h, h, 2 * z]) \
            + _dense_parameters([z, h, h, math.prod(config.benchmark.input_shape)])
        _check_size("method.hidden", f"a VAE per class ({config.head_size}) with {h} hidden units and z_dim {z}",
                    config.head_size * per_class)


BN_MODELS = ("vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced")


class DreamingParams(MethodParams):
    """Shared by the data-free methods that invert the frozen model into images of old classes."""

    scenarios: ClassVar[tuple[str, ...]] = ("class",)
    dreams_per_class: int = Field(20, ge=1, le=MAX_DREAMS_PER_CLASS,
                                  description="Dreamed images per old class (replayed, and scored).")
    export_per_class: int = Field(8, ge=0, le=MAX_DREAMS_PER_CLASS,
                                  description="Dreamed images per class saved as PNGs in the run folder.")
    bn_weight: float = Field(10.0, ge=0, description="Weight of the BatchNorm statistics loss.")
    first_bn_weight: float = Field(10.0, ge=0, description="Extra factor on the first BatchNorm layer's term.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature on the dreamed images.")
    verifier_iterations: int = Field(500, ge=0, le=MAX_ITERATIONS, description="Steps to train the verifier that "
                                     "scores the dreams (0: no verifier figures).")

    def resolve(self, config: RunConfig) -> None:
        m = config.model
        if not (m.batch_norm or m.kind in BN_MODELS):
            raise ValueError(
                f"model.batch_norm: {self.name} dreams by matching the model's BatchNorm statistics, and this "
                f"{m.kind} has none; use --set model.batch_norm=true, a ResNet, or a *-dfcil preset")


@register_method
class DeepInversionParams(DreamingParams):
    """DeepInversion: optimise images from noise against the frozen model; replay them with distillation."""

    name: Literal["deepinversion"] = "deepinversion"
    summary: ClassVar[str] = "DeepInversion (data-free: dreamed pixels)"
    steps: int = Field(2000, ge=1, le=MAX_ITERATIONS, description="Adam steps on the pixels of each batch of dreams.")
    lr: float = Field(0.05, gt=0, le=MAX_LR, description="Learning rate of the pixel optimisation.")
    batch_size: int = Field(256, ge=1, le=MAX_BATCH,
                            description="Dreams optimised together (their batch statistics are matched).")
    tv_weight: float = Field(2.5e-5, ge=0, description="Weight of the total-variation prior.")
    l2_weight: float = Field(3e-8, ge=0, description="Weight of the l2 prior on pixels.")
    jitter: int = Field(2, ge=0, le=MAX_IMAGE_SIDE, description="Random shift of the dreams in pixels at each step.")
    flip: bool = Field(True, description="Random horizontal flips at each step.")


@register_method
class ABDParams(DreamingParams):
    """Always Be Dreaming: a generator inverts the frozen model; local CE, head fine-tuning and
    importance-weighted feature distillation train the new model."""

    name: Literal["abd"] = "abd"
    summary: ClassVar[str] = "Always Be Dreaming (data-free: a generator)"
    generator_iterations: int = Field(10000, ge=1, le=MAX_ITERATIONS,
                                      description="Generator steps after each context.")
    generator_lr: float = Field(1e-3, gt=0, le=MAX_LR, description="Generator learning rate (Adam; state kept across "
                                "contexts).")
    z_dim: int = Field(1000, ge=1, le=MAX_WIDTH, description="Generator noise size.")
    generator_width: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Channels of the generator (none: "
                                        "128 for images of 16 px and more, 32 below).")
    content_temperature: float = Field(1000.0, gt=0, description="Temperature of the content cross-entropy.")
    diversity_weight: float = Field(1.0, ge=0, description="Weight of the information-entropy (diversity) term.")
    smoothness_weight: float = Field(1e-3, ge=0, description="Weight of the smoothness prior.")
    mu: float = Field(0.1, ge=0, description="Weight of the importance-weighted feature distillation.")
    bn_weight: float = Field(50.0, ge=0, description="Weight of the BatchNorm statistics loss (a KL per layer).")
    first_bn_weight: float = Field(1.0, ge=0, description="Extra factor on the first BatchNorm layer's term.")

    def resolve(self, config: RunConfig) -> None:
        super().resolve(config)
        _, h, w = config.benchmark.input_shape
        if h % 4 or w % 4:
            raise ValueError(f"benchmark.pad_to: abd's generator upsamples 4x, so images need sides divisible "
                             f"by 4; {config.benchmark.name} gives {h}x{w}")
        # core/methods/dreaming.py's Generator: linear z -> (width, h/4, w/4), 3x3 convs width -> width -> width/2 -> c.
        width = self.generator_width or (128 if min(h, w) >= 16 else 32)
        half, c = max(width // 2, 1), config.benchmark.input_shape[0]
        parameters = (self.z_dim + 1) * width * (h // 4) * (w // 4) + 9 * (width * width + width * half + half * c)
        field = "method.generator_width" if self.generator_width is not None else "method.z_dim"
        _check_size(field, f"a generator with z_dim {self.z_dim} and width {width} on {h}x{w} images", parameters)


class RunConfig(_Section):
    preset: str | None = Field(None, description="The preset this config started from.")
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    scenario: Scenario = Field("class", description="task-, domain- or class-incremental.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    method: SerializeAsAny[MethodParams] = Field(default_factory=NoneParams)

    @field_validator("method", mode="before")
    @classmethod
    def _method_by_name(cls, v: Any) -> Any:
        if isinstance(v, MethodParams):
            return v
        if not isinstance(v, dict) or "name" not in v:
            raise ValueError("needs a table with at least a name, e.g. name = \"none\"")
        params = METHOD_PARAMS.get(v["name"]) if isinstance(v["name"], str) else None
        if params is None:
            raise ValueError(f"unknown method {_show(v['name'])}; choose one of: {', '.join(METHOD_PARAMS)}")
        return params.model_validate(v)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.scenario not in self.method.scenarios:
            raise ValueError(
                f"scenario: method {self.method.name} works in {'/'.join(self.method.scenarios)}-incremental learning only, "
                f"not {self.scenario}: use --scenario {self.method.scenarios[0]}"
            )
        m = self.model
        parameters = model_parameters(m.kind, self.benchmark.input_shape, self.head_size, m.hidden, m.fc_hidden)
        key = "model.hidden" if m.kind == "mlp" else "model.fc_hidden"
        _check_size(key, _show(m.hidden if m.kind == "mlp" else m.fc_hidden or [2000, 2000]), parameters or 0)
        self.method.resolve(self)
        _, h, w = self.benchmark.input_shape
        if self.model.kind == "lenet5" and min(h, w) < 16:
            raise ValueError(
                f"model.kind: lenet5 needs images of at least 16x16, {self.benchmark.name} has {h}x{w}; use mlp"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def head_size(self) -> int:
        """Output units: domain-IL shares one head of classes_per_context; task/class-IL see every class."""
        if self.scenario == "domain":
            return self.benchmark.classes_per_context  # type: ignore[return-value]
        return self.benchmark.total_classes


# --- Presets and overrides -------------------------------------------------------------------------

PRESET_ONLY_KEYS = ("description", "method_defaults")


def presets_dir() -> Path:
    env = os.environ.get("CLTUI_PRESETS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "presets"


def list_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def load_preset(name: str) -> dict[str, Any]:
    """A preset by name (from presets/) or by path to a TOML file; the raw table, its top level checked
    (sections are tables, description a string, method_defaults a table per method), not yet validated."""
    path = Path(name)
    if not (path.suffix == ".toml" and _is_file(path)):
        path = presets_dir() / f"{name}.toml"
        if not _is_file(path):
            raise ConfigError(
                f"unknown preset {name!r}; available: {', '.join(list_presets())} (or give the path of a .toml file)"
            )
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"preset {path}: not valid TOML ({e}); fix the file") from None
    except RecursionError:
        raise ConfigError(f"preset {path}: not valid TOML (values nested too deeply); fix the file") from None
    except OSError as e:
        raise ConfigError(f"preset {path}: cannot read it ({e.strerror})") from None
    _check_preset(table, f"preset {path}")
    return table


def _check_preset(table: dict[str, Any], where: str) -> None:
    """The shapes build_config and the TUI rely on before validation; a one-line ConfigError naming the key."""
    for key in ("benchmark", "model", "train", "method"):
        if key in table and not isinstance(table[key], dict):
            raise ConfigError(f"{where}: {key} must be a table ([{key}] followed by its settings), "
                              f"not {_show(table[key])}")
    if "description" in table and not isinstance(table["description"], str):
        raise ConfigError(f'{where}: description must be a string, e.g. description = "what it runs"; '
                          f"not {_show(table['description'])}")
    defaults = table.get("method_defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: method_defaults must hold a table per method, e.g. [method_defaults.ewc] "
                          f"then lambda = 100; not {_show(defaults)}")
    for method, params in defaults.items():
        if method not in METHOD_PARAMS:
            raise ConfigError(f"{where}: method_defaults.{method}: unknown method; choose one of: "
                              f"{', '.join(METHOD_PARAMS)}")
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: method_defaults.{method} must be a table of {method}'s settings, "
                              f"e.g. [method_defaults.{method}]; not {_show(params)}")
        for key, value in params.items():
            if isinstance(value, dict) and not set(value) <= set(SCENARIOS):
                extra = ", ".join(sorted(set(value) - set(SCENARIOS)))
                raise ConfigError(f"{where}: method_defaults.{method}.{key}: a per-scenario table takes the keys "
                                  f"{', '.join(SCENARIOS)}, not {extra}")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.lr=3e-4` -> (["train", "lr"], 0.0003). Values are read as TOML (numbers, booleans, lists,
    quoted strings); anything that is not valid TOML is taken as a plain string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise ConfigError(f"--set {item!r}: write it as KEY=VALUE with a dotted key, e.g. --set train.lr=3e-4")
    raw = raw.strip()
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError; RecursionError: nested too deeply
        return key.split("."), raw
    # A line break in the value could smuggle in more TOML keys (v = 1 / x = 2): then it is not one value.
    return key.split("."), parsed["v"] if set(parsed) == {"v"} else raw


def _set_path(data: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: {'.'.join(path[: i + 1])} is a value, not a section")
        node = child
    node[path[-1]] = value


def build_config(
    preset: str = "split-digits",
    *,
    method: str | None = None,
    scenario: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    download: bool | None = None,
    overrides: list[str] = (),  # type: ignore[assignment]
) -> RunConfig:
    """Preset, then the named options, then `--set` overrides, then the preset's per-scenario method
    defaults for whatever is still unset; validated into a RunConfig or a one-line ConfigError."""
    table = load_preset(preset)  # its top level is checked: sections and method_defaults' entries are tables
    method_defaults = table.get("method_defaults", {})
    data = {k: v for k, v in table.items() if k not in PRESET_ONLY_KEYS}
    data["preset"] = Path(preset).stem if preset.endswith(".toml") else preset
    data.setdefault("method", {"name": "none"})
    if method is not None and data["method"].get("name") != method:
        data["method"] = {"name": method}
    for value, path in (
        (scenario, ["scenario"]),
        (seed, ["train", "seed"]),
        (device, ["train", "device"]),
        (data_dir, ["benchmark", "data_dir"]),
        (download, ["benchmark", "download"]),
    ):
        if value is not None:
            _set_path(data, path, value, "option")
    set_origin: dict[str, str] = {}
    for item in overrides:
        path, value = parse_override(item)
        _set_path(data, path, value, f"--set {item}")
        set_origin[".".join(path)] = item
    # Tuned defaults differ by orders of magnitude per scenario (REFERENCE.md): resolve them now. After --set
    # the method or the scenario may be anything: only a table with a string name takes defaults.
    chosen = data["method"].get("name") if isinstance(data.get("method"), dict) else None
    chosen_scenario = data.get("scenario", "class")
    for key, value in (method_defaults.get(chosen, {}) if isinstance(chosen, str) else {}).items():
        if isinstance(value, dict):
            if not isinstance(chosen_scenario, str) or chosen_scenario not in value:
                continue
            value = value[chosen_scenario]
        data["method"].setdefault(key, value)
    return validate_config(data, set_origin)


def validate_config(data: dict[str, Any], set_origin: dict[str, str] | None = None) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_one_line(e, data, set_origin or {})) from None
    except RecursionError:  # a value nested thousands deep
        raise ConfigError("config: values nested too deeply; give numbers, strings, lists or tables") from None


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3


def _show(value: Any) -> str:
    """A value as the user would recognise it, cut short (a --set value may be huge or nested deep)."""
    try:
        return _SHORT.repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail: RecursionError, a broken __repr__
        return f"a {type(value).__name__}"


def _one_line(e: ValidationError, data: Any, set_origin: dict[str, str]) -> str:
    """The first error as one line naming the field (and the --set item it came from). Never raises."""
    try:
        return _first_error(e, data, set_origin)
    except Exception:  # noqa: BLE001 - a fallback, should describing the error itself fail
        return f"config: not valid ({e.error_count()} problem(s)); check the preset and the --set values"


# The method's parameters validate inside RunConfig.method: a class name in an error's location is not a key.
_CLASS_NAMES = frozenset({"RunConfig", "MethodParams", *(c.__name__ for c in METHOD_PARAMS.values())})


def _first_error(e: ValidationError, data: Any, set_origin: dict[str, str]) -> str:
    errors = e.errors(include_url=False)
    if not errors:
        return "config: not valid; check the preset and the --set values"
    err = errors[0]
    loc = [str(p) for p in err["loc"] if str(p) not in _CLASS_NAMES]
    path = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent_model: type[BaseModel] = RunConfig
        for part in loc[:-1]:
            field = parent_model.model_fields.get(part)
            ann = getattr(field, "annotation", None) if field else None
            if parent_model is RunConfig and part == "method":
                method = data.get("method") if isinstance(data, dict) else None
                name = method.get("name") if isinstance(method, dict) else None
                ann = METHOD_PARAMS.get(name, MethodParams) if isinstance(name, str) else MethodParams
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                parent_model = ann
        valid = ", ".join(f.alias or k for k, f in parent_model.model_fields.items()
                          if k != "name" or parent_model is not RunConfig)
        where = ".".join(loc[:-1]) or "the top level"
        msg = f"{path}: unknown setting; valid keys under {where}: {valid}"
    elif kind in ("value_error", "assertion_error"):
        text = str(err["msg"]).removeprefix("Value error, ")
        if not path:  # a whole-config check names its dotted field first: "model.hidden: ..."
            named = re.match(r"([\w.-]+): ", text)
            if named:
                path, text = named.group(1), text[named.end():]
        field = re.match(r"(\w+): ", text)  # a section's own check names its field first
        if field and path and field.group(1) not in path.split("."):
            path, text = f"{path}.{field.group(1)}", text[field.end():]
        msg = f"{path}: {text}" if path else text
    else:
        text = str(err["msg"])
        text = f"{text[:1].lower()}{text[1:]} (got {_show(err.get('input'))})"
        msg = f"{path}: {text}" if path else text
    origin = set_origin.get(path)
    return f"--set {origin}: {msg}" if origin else msg
