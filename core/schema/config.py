"""The run schema: one validated, fully resolved `RunConfig` (benchmark, model, train, method, and where the
run is tracked) and the one-line wording of its validation errors.

Everything a run uses is in the config, so `run.json` records every value (per-scenario method
defaults included). Presets and `--set` overrides become a config in core/schema/presets.py; each method's
parameters are in core/schema/params.py. Imports neither torch nor any UI library: the CLI and the
TUI validate configs without paying for torch.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from core.schema.limits import (
    BENCHMARK_INFO,
    MAX_BATCH,
    MAX_IMAGE_SIDE,
    MAX_ITERATIONS,
    MAX_LAYERS,
    MAX_LR,
    MAX_PROGRESS_INTERVAL,
    MAX_WEIGHT_DECAY,
    REGRESSION_METHODS,
    SCENARIOS,
    ConfigError,
    Scenario,
    Section,
    check_seed,
    check_size,
    check_widths,
    model_parameters,
    show,
)
from core.schema.params import METHOD_PARAMS, MethodParams, NoneParams

__all__ = ["SCENARIOS", "BenchmarkConfig", "ConfigError", "ModelConfig", "RunConfig", "TrackConfig", "TrainConfig",
           "validate_config"]


class BenchmarkConfig(Section):
    name: Literal["digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "sine"] = Field(
        "digits", description="Data set: digits is scikit-learn's embedded 8x8 set (offline); sine is a regression "
        "toy of five noisy sine waves, one per context (offline; scored by R^2 where others report accuracy)."
    )
    protocol: Literal["split", "permuted", "rotated"] = Field(
        "split",
        description="split: disjoint classes per context; permuted / rotated: all classes, new input transform.",
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
    stream: Literal["academic", "fuzzy", "random"] = Field(
        "academic", description="academic: one context after another, sharp boundaries; fuzzy: the next context "
        "blends in over `fuzziness` iterations around each boundary; random: each batch from a random context "
        "(task-free: the method is told no boundary; rows of the matrix are context-sized blocks).")
    fuzziness: int = Field(100, ge=1, le=MAX_ITERATIONS, description="fuzzy: iterations over which the chance of "
                           "drawing from the next context rises linearly from 0 to 1, centred on the boundary.")
    data_dir: str | None = Field(None, description="Folder holding the data set files (default: ./data).")
    download: bool = Field(False, description="Download the data set when its files are missing.")
    validation: float = Field(0.0, ge=0, le=0.5, description="Share of each context's training data held out "
                              "(class-stratified, the same samples for every seed) and never trained on; runs "
                              "report its accuracy beside the test accuracy (`cltui sweep` tunes on it). 0: off.")
    learn_contexts: list[int] | None = Field(
        None, max_length=1000, description="Contexts whose training data the run sees (none: all); the others are "
        "still tested. For teachers of `cltui merge` that know only some contexts; method joint only.")

    _seed = field_validator("class_order_seed")(check_seed)

    @field_validator("learn_contexts")
    @classmethod
    def _learn(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v) or any(k < 0 for k in v)):
            raise ValueError("give distinct context indices, e.g. [0, 1]")
        return None if v is None else sorted(v)

    @property
    def num_classes(self) -> int:
        return BENCHMARK_INFO[self.name]["classes"]

    @property
    def regression(self) -> bool:
        """A regression benchmark (sine): targets are numbers, the loss is MSE, the score R^2."""
        return bool(BENCHMARK_INFO[self.name].get("regression"))

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
                raise ValueError(f"classes_per_context: a {self.protocol} context holds all {n} classes of "
                                 f"{self.name}; set benchmark.classes_per_context={n}")
            self.classes_per_context = n
        if self.learn_contexts is not None and max(self.learn_contexts) >= self.contexts:
            raise ValueError(f"learn_contexts: context {max(self.learn_contexts)} does not exist; there are "
                             f"{self.contexts} contexts, 0 to {self.contexts - 1}")
        return self


class ModelConfig(Section):
    kind: Literal["mlp", "lenet5", "vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced"] = Field(
        "mlp", description="Network: mlp, lenet5, vdv-conv (van de Ven's 5-conv net), CIFAR ResNets."
    )
    hidden: list[int] = Field([400, 400], max_length=MAX_LAYERS, description="mlp: widths of the hidden layers.")
    batch_norm: bool = Field(False, description="mlp / fc layers: BatchNorm after each hidden layer.")
    fc_hidden: list[int] | None = Field(None, max_length=MAX_LAYERS,
                                        description="vdv-conv: widths of the fc layers (default 2000, 2000).")
    pretrained: str | None = Field(None, max_length=4096, description="Checkpoint of conv layers to start from "
                                   "(`cltui pretrain` makes one); its sha256 is recorded in the run.")
    freeze_conv: bool = Field(False, description="Keep the conv layers fixed (with model.pretrained: the paper's "
                              "--freeze-convE).")

    _widths = field_validator("hidden", "fc_hidden")(check_widths)

    @model_validator(mode="after")
    def _conv_only(self) -> ModelConfig:
        if (self.pretrained or self.freeze_conv) and self.kind not in ("vdv-conv", "lenet5"):
            key = "pretrained" if self.pretrained else "freeze_conv"
            raise ValueError(f"{key}: model.kind {self.kind} has no conv stack to load or freeze; use vdv-conv "
                             f"or lenet5")
        return self


class TrainConfig(Section):
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
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the forward pass (CUDA or CPU).")
    compile: bool = Field(False, description="torch.compile the model (CPU or CUDA; the first steps compile it, "
                          "about 15-20 s on a CPU: worth it for long runs of an MLP, not for LeNet-5 on a CPU).")
    active_classes: Literal["so-far", "all"] = Field(
        "so-far", description="class-IL: outputs a loss covers: so-far (classes seen so far) or all (every class "
        "from the start, future ones as negatives; van de Ven's --active-classes default).")
    eval_batch_size: int = Field(2048, ge=1, le=MAX_BATCH, description="Samples per evaluation batch.")
    eval_every: int = Field(0, ge=0, le=MAX_ITERATIONS, description="Continual evaluation: test every context "
                            "every N iterations, inside the context (0: off); run.json keeps the points as acc_curve.")
    eval_samples: int = Field(1024, ge=0, le=MAX_BATCH, description="Continual evaluation: a fixed random subset of "
                              "this many test samples per context, kept on the device (0: the whole test set).")
    checkpoints: Literal["last", "all", "none"] = Field(
        "last", description="Context checkpoints to keep: last (enough to resume), all, none."
    )
    progress_interval: float = Field(0.25, gt=0, le=MAX_PROGRESS_INTERVAL,
                                     description="Seconds between progress events.")

    _seed = field_validator("seed")(check_seed)

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


class TrackConfig(Section):
    """Where the worker also logs the run as it goes (core/reporting/tracking.py). Not part of what the run computes:
    `--resume` may change it, and it is left out of the parameters a tracker records."""

    tracker: Literal["none", "mlflow"] = Field("none", description="none (run.json only) or mlflow: params, "
                                               "metrics per context and artifacts, logged live by the worker.")
    uri: str | None = Field(None, max_length=2048, description="mlflow: tracking URI (default: the SQLite store "
                            "<runs-dir>/mlflow.db, artifacts in <runs-dir>/mlartifacts).")
    experiment: str | None = Field(None, min_length=1, max_length=500,
                                   description="mlflow: experiment name (default: the preset's name).")
    checkpoints: bool = Field(False, description="mlflow: also log the final checkpoint as an artifact.")
    parent: str | None = Field(None, max_length=200, description="mlflow: the run this one is nested under "
                               "(cltui compare sets it to the study's run).")


class RunConfig(Section):
    preset: str | None = Field(None, description="The preset this config started from.")
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    scenario: Scenario = Field("class", description="task-, domain- or class-incremental.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    method: SerializeAsAny[MethodParams] = Field(default_factory=NoneParams)
    track: TrackConfig = Field(default_factory=TrackConfig)

    @field_validator("method", mode="before")
    @classmethod
    def _method_by_name(cls, v: Any) -> Any:
        if isinstance(v, MethodParams):
            return v
        if not isinstance(v, dict) or "name" not in v:
            raise ValueError("needs a table with at least a name, e.g. name = \"none\"")
        params = METHOD_PARAMS.get(v["name"]) if isinstance(v["name"], str) else None
        if params is None:
            raise ValueError(f"unknown method {show(v['name'])}; choose one of: {', '.join(METHOD_PARAMS)}")
        return params.model_validate(v)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.benchmark.regression:
            self._check_regression()
        if self.scenario not in self.method.scenarios:
            raise ValueError(
                f"scenario: method {self.method.name} works in {'/'.join(self.method.scenarios)}-incremental "
                f"learning only, not {self.scenario}: use --scenario {self.method.scenarios[0]}"
            )
        m = self.model
        parameters = model_parameters(m.kind, self.benchmark.input_shape, self.head_size, m.hidden, m.fc_hidden)
        key = "model.hidden" if m.kind == "mlp" else "model.fc_hidden"
        check_size(key, show(m.hidden if m.kind == "mlp" else m.fc_hidden or [2000, 2000]), parameters or 0)
        stream = self.benchmark.stream
        if stream != "academic" and not self.method.task_free:
            free = ", ".join(name for name, p in METHOD_PARAMS.items() if p.task_free)
            raise ValueError(f"benchmark.stream: method {self.method.name} needs context boundaries, which a {stream} "
                             f"stream does not give; use one of {free}, or benchmark.stream=academic")
        if stream == "fuzzy" and self.benchmark.fuzziness > self.train.iterations:
            raise ValueError(f"benchmark.fuzziness: {self.benchmark.fuzziness} iterations of blending is more than a "
                             f"context's train.iterations ({self.train.iterations}); lower it")
        self.method.resolve(self)
        if self.benchmark.learn_contexts is not None and self.method.name != "joint":
            raise ValueError("benchmark.learn_contexts: only method joint can leave contexts out (a sequential method "
                             "would train on an empty context); add --method joint")
        _, h, w = self.benchmark.input_shape
        if self.model.kind == "lenet5" and min(h, w) < 16:
            raise ValueError(
                f"model.kind: lenet5 needs images of at least 16x16, {self.benchmark.name} has {h}x{w}; use mlp"
            )
        return self

    def _check_regression(self) -> None:
        name = self.benchmark.name
        if self.scenario == "class":
            raise ValueError(f"scenario: {name} is a regression benchmark, which has no classes to tell apart; "
                             "use --scenario task (an output per wave) or domain (one shared output)")
        if self.method.name not in REGRESSION_METHODS:
            raise ValueError(f"method: {self.method.name} is written for classification; on {name} use one of "
                             f"{', '.join(REGRESSION_METHODS)}")
        if self.benchmark.classes_per_context != 1:
            raise ValueError(f"benchmark.classes_per_context: each {name} context is one wave with one output; set "
                             "benchmark.classes_per_context=1")
        if self.benchmark.protocol != "split":
            raise ValueError(f"benchmark.protocol: {name}'s contexts are its waves; use benchmark.protocol=split")
        if self.model.kind != "mlp":
            raise ValueError(f"model.kind: {name}'s inputs are single numbers; use model.kind=mlp")
        if self.benchmark.augment or self.benchmark.pad_to:
            key = "benchmark.augment" if self.benchmark.augment else "benchmark.pad_to"
            raise ValueError(f"{key}: {name}'s inputs are single numbers, not images; leave it unset")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def head_size(self) -> int:
        """Output units: domain-IL shares one head of classes_per_context; task/class-IL see every class."""
        if self.scenario == "domain":
            return self.benchmark.classes_per_context  # type: ignore[return-value]
        return self.benchmark.total_classes


def flat_config(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as its `--set` keys: {"train": {"lr": 0.1}} -> {"train.lr": 0.1}; lists stay values, and
    anything that is not a table (a damaged run.json's config) is no keys."""
    out: dict[str, Any] = {}
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def validate_config(data: dict[str, Any], set_origin: dict[str, str] | None = None) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        field, detail, message = _one_line(e, data, set_origin or {})
        raise ConfigError(message, field=field, detail=detail) from None
    except RecursionError:  # a value nested thousands deep
        raise ConfigError("config: values nested too deeply; give numbers, strings, lists or tables",
                          field="") from None


def _one_line(e: ValidationError, data: Any, set_origin: dict[str, str]) -> tuple[str, str, str]:
    """The first error's dotted field ("" for none), what is wrong with it, and the one line naming both
    (and the --set item it came from). Never raises."""
    try:
        return _first_error(e, data, set_origin)
    except Exception:  # noqa: BLE001 - a fallback, should describing the error itself fail
        line = f"config: not valid ({e.error_count()} problem(s)); check the preset and the --set values"
        return "", line, line


# The method's parameters validate inside RunConfig.method: a class name in an error's location is not a key.
_CLASS_NAMES = frozenset({"RunConfig", "MethodParams", *(c.__name__ for c in METHOD_PARAMS.values())})


def _first_error(e: ValidationError, data: Any, set_origin: dict[str, str]) -> tuple[str, str, str]:
    errors = e.errors(include_url=False)
    if not errors:
        line = "config: not valid; check the preset and the --set values"
        return "", line, line
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
        text = f"unknown setting; valid keys under {where}: {valid}"
    elif kind in ("value_error", "assertion_error"):
        text = str(err["msg"]).removeprefix("Value error, ")
        if not path:  # a whole-config check names its dotted field first: "model.hidden: ..."
            named = re.match(r"([\w.-]+): ", text)
            if named:
                path, text = named.group(1), text[named.end():]
        own = re.match(r"(\w+): ", text)  # a section's own check names its field first
        if own and path and own.group(1) not in path.split("."):
            path, text = f"{path}.{own.group(1)}", text[own.end():]
    else:
        text = str(err["msg"])
        text = f"{text[:1].lower()}{text[1:]} (got {show(err.get('input'))})"
    msg = f"{path}: {text}" if path else text
    origin = set_origin.get(path)
    return path, text, f"--set {origin}: {msg}" if origin else msg
