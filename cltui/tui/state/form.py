"""The compose form without Textual: the config values it shows as fields (`FieldSpec`: the `--set` key, the
pydantic field with its type, bounds and help, the preset's default), which fields a preset, a method and a
data set give, and which methods a scenario allows. Each field checks its own text through its pydantic type;
the whole config is checked by the screen through `build_config`, whose `ConfigError.field` names the field."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from core.schema.config import BenchmarkConfig, TrainConfig
from core.schema.params import METHOD_PARAMS
from core.schema.presets import method_defaults, parse_override, toml_text

DEFAULT_PRESET = "split-digits"
MAIN_FIELDS = (("iterations", "iterations"), ("batch_size", "batch size"), ("lr", "learning rate"),
               ("seed", "seed"), ("device", "device"))
NEEDS_FILES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "folder")  # digits ships with scikit-learn
SCENARIO_HELP = {"task": "task-incremental: the context is given at test time",
                 "domain": "domain-incremental: one shared head, the context is not given",
                 "class": "class-incremental: one head over every class seen, the context is not given"}


# --- fields: what a form row knows about its config value ------------------------------------------------


@dataclass
class FieldSpec:
    """One config value on the form: its `--set` key, its pydantic field (type, bounds, help) and default."""

    key: str  # train.lr, method.lambda
    label: str
    info: FieldInfo
    default: Any
    placeholder: str | None = None  # shown in an empty field (default: the default value, or "none")

    @property
    def help(self) -> str:
        return self.info.description or ""

    @property
    def default_text(self) -> str:
        return toml_text(self.default)

    @property
    def widget_id(self) -> str:
        return "field-" + self.key.replace(".", "-")  # keys are dotted names: train.lr -> field-train-lr

    @cached_property
    def choices(self) -> tuple[str, ...] | None:
        """The values of a Literal or bool field (shown as a Select), else None (an Input)."""
        ann = self.info.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] if typing.get_origin(ann) is typing.Union \
            else [ann]
        if len(args) == 1 and typing.get_origin(args[0]) is typing.Literal:
            return tuple(str(a) for a in typing.get_args(args[0]))
        if args == [bool]:
            return ("false", "true")
        return None

    @cached_property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.info.annotation)

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        ann, bounds = self.info.annotation, self.info.metadata
        return TypeAdapter(Annotated[ann, *bounds] if bounds else ann)  # type and bounds, not the alias

    def check(self, text: str) -> str | None:
        """The field's own problem with `text` (type, bounds), as the form shows it; None if fine."""
        if not text:
            return None
        _, value = parse_override(f"{self.key}={text}")
        try:
            self.adapter.validate_python(value)
        except ValidationError as e:
            msg = e.errors(include_url=False)[0]["msg"]
            return f"{msg[:1].lower()}{msg[1:]}"
        return None


def main_fields(table: dict[str, Any]) -> list[FieldSpec]:
    train = table.get("train", {})
    return [FieldSpec(f"train.{name}", label, TrainConfig.model_fields[name],
                      train.get(name, TrainConfig.model_fields[name].default)) for name, label in MAIN_FIELDS]


def method_fields(table: dict[str, Any], method: str, scenario: str) -> list[FieldSpec]:
    """The method's parameters, defaults as `build_config` resolves them (core.schema.presets.method_defaults),
    else the parameter's own default."""
    given = method_defaults(table, method, scenario)
    specs = []
    for name, info in METHOD_PARAMS[method].model_fields.items():
        if name == "name":
            continue
        key = info.alias or name
        specs.append(FieldSpec(f"method.{key}", key.replace("_", " "), info, given.get(key, info.default)))
    return specs


def methods_for(scenario: str) -> list[str]:
    return [name for name, params in METHOD_PARAMS.items() if scenario in params.scenarios]


def method_for(scenario: str, wanted: str) -> str:
    """`wanted` if the scenario allows it, else `none` (or the first method it allows)."""
    valid = methods_for(scenario)
    return wanted if wanted in valid else ("none" if "none" in valid else valid[0])


def data_fields(table: dict[str, Any]) -> list[FieldSpec]:
    """Data location, only for data sets that are files on disk."""
    bench = table.get("benchmark", {})
    if bench.get("name") not in NEEDS_FILES:
        return []
    fields = BenchmarkConfig.model_fields
    return [FieldSpec("benchmark.data_dir", "data dir", fields["data_dir"], bench.get("data_dir"),
                      placeholder="./data"),
            FieldSpec("benchmark.download", "download", fields["download"], bench.get("download", False))]
