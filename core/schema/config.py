"""The run schema: one validated, fully resolved `RunConfig` (benchmark, model, train, method, and where the
run is tracked) and the one-line wording of its validation errors.

Everything a run uses is in the config, so `run.json` records every value (per-scenario method
defaults included). Presets and `--set` overrides become a config in core/schema/presets.py; each method's
parameters are in core/schema/params.py. Imports neither torch nor any UI library: the CLI and the
TUI validate configs without paying for torch.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from core.schema.limits import (
    REGRESSION_METHODS,
    SCENARIOS,
    ConfigError,
    Scenario,
    Section,
    check_size,
    model_parameters,
    show,
)
from core.schema.params import METHOD_PARAMS, MethodParams, NoneParams
from core.schema.sections import BenchmarkConfig, ModelConfig, TrackConfig, TrainConfig

__all__ = ["SCENARIOS", "BenchmarkConfig", "ConfigError", "ModelConfig", "RunConfig", "TrackConfig", "TrainConfig",
           "validate_config"]


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
        if self.benchmark.first_context_classes is not None and not self.method.uneven_contexts:
            even = ", ".join(name for name, p in METHOD_PARAMS.items() if p.uneven_contexts)
            raise ValueError(f"benchmark.first_context_classes: method {self.method.name} assumes contexts of equal "
                             f"size; use one of {even}, or leave first_context_classes unset")
        m = self.model
        parameters = model_parameters(m.kind, self.benchmark.input_shape, self.head_size, m.hidden, m.fc_hidden)
        key = "model.hidden" if m.kind == "mlp" else "model.fc_hidden"
        check_size(key, show(m.hidden if m.kind == "mlp" else m.fc_hidden or [2000, 2000]), parameters or 0)
        stream = self.benchmark.stream
        if stream != "academic" and not self.method.task_free:
            free = ", ".join(name for name, p in METHOD_PARAMS.items() if p.task_free)
            raise ValueError(f"benchmark.stream: method {self.method.name} needs context boundaries, which a {stream} "
                             f"stream does not give; use one of {free}, or benchmark.stream=academic")
        if stream.startswith("fuzzy") and self.benchmark.fuzziness > self.train.iterations:
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
