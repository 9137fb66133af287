"""Property tests: whatever a user feeds the config (random --set items, random preset files, random
saved configs) comes back as a RunConfig or as a one-line ConfigError, never as any other exception."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from core.schema.config import SCENARIOS, ConfigError, RunConfig, validate_config
from core.schema.params import METHOD_PARAMS
from core.schema.presets import build_config

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of a config section (by the name a preset uses), sections included."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        keys.append(key)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += config_keys(field.annotation, key + ".")
    return keys


REAL_KEYS = sorted(set(config_keys(RunConfig)) | {f"method.{key}" for params in METHOD_PARAMS.values()
                                                  for key in config_keys(params)})
PRESET_KEYS = ["description", "method_defaults", "preset", "benchmark", "scenario", "model", "train", "method"]

# --- Values, as Python objects and as the TOML text a user would type ------------------------------

names = st.sampled_from([*REAL_KEYS, *PRESET_KEYS, *METHOD_PARAMS, *SCENARIOS, "name", "x"]) | st.text(
    string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 1e-320, 10.0, 0.5])
ints = (st.integers(-10, 10_000) | st.integers() | st.sampled_from([2**63 - 1, 2**63, 2**64, 10**20, -(2**63)])
        | st.integers(min_value=-(10**40), max_value=10**40))
scalars = (ints | floats | st.booleans() | st.text(max_size=20)
           | st.sampled_from([*METHOD_PARAMS, *SCENARIOS, "mlp", "vdv-conv", "adam", "sgd", "cpu", "auto"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
                      max_leaves=12)


def toml_value(value: Any) -> str:
    """A Python value as a TOML inline value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's (a lone surrogate makes it invalid: fine too)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


typed = values.map(toml_value)
raw_text = st.text(max_size=30)
deep = st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)
set_items = st.one_of(
    st.tuples(names, typed | raw_text | deep).map(lambda kv: f"{kv[0]}={kv[1]}"),
    raw_text,
)


def one_line(error: ConfigError) -> None:
    text = str(error)
    assert text and len(text.splitlines()) == 1, repr(text)  # no \n, \r, \x85, \u2028 ... either


def build_or_config_error(**kwargs) -> None:
    try:
        cfg = build_config(**kwargs)
    except ConfigError as e:
        one_line(e)
    else:
        assert isinstance(cfg, RunConfig)
        assert validate_config(cfg.to_dict()) == cfg  # whatever validates, round-trips


# --- Properties -------------------------------------------------------------------------------------


@SETTINGS
@given(overrides=st.lists(set_items, max_size=4),
       method=st.none() | st.sampled_from(list(METHOD_PARAMS)) | st.text(max_size=8),
       scenario=st.none() | st.sampled_from(SCENARIOS) | st.text(max_size=8),
       seed=st.none() | ints)
def test_random_set_items(overrides, method, scenario, seed):
    build_or_config_error(preset="split-digits", overrides=overrides, method=method, scenario=scenario, seed=seed)


@SETTINGS
@given(overrides=st.lists(st.tuples(st.sampled_from(REAL_KEYS), typed).map(lambda kv: f"{kv[0]}={kv[1]}"),
                          min_size=1, max_size=3),
       method=st.sampled_from(list(METHOD_PARAMS)),
       preset=st.sampled_from(["split-digits", "split-cifar100", "cifar100-dfcil-10", "perm-mnist"]))
def test_real_keys_with_random_values(overrides, method, preset):
    build_or_config_error(preset=preset, overrides=overrides, method=method, scenario=None)


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("presets")


@SETTINGS
@given(content=st.binary(max_size=200))
def test_random_bytes_as_a_preset(preset_dir, content):
    path = preset_dir / "random.toml"
    path.write_bytes(content)
    build_or_config_error(preset=str(path))


@SETTINGS
@given(table=st.dictionaries(st.sampled_from(PRESET_KEYS) | names, values, max_size=5),
       method=st.none() | st.sampled_from(list(METHOD_PARAMS)))
def test_random_tables_as_a_preset(preset_dir, table, method):
    path = preset_dir / "table.toml"
    path.write_text("\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()))
    build_or_config_error(preset=str(path), method=method)


def mutate(data: Any, path: list[str], value: Any) -> Any:
    """data with the value at path replaced (or added), through whatever is there."""
    if not path:
        return value
    node = dict(data) if isinstance(data, dict) else {}
    node[path[0]] = mutate(node.get(path[0]), path[1:], value)
    return node


BASE = build_config("split-digits").to_dict()


@SETTINGS
@given(path=st.sampled_from(REAL_KEYS).map(lambda k: k.split(".")) | st.lists(names, max_size=3),
       value=values,
       method=st.sampled_from(list(METHOD_PARAMS)))
def test_random_saved_configs(path, value, method):
    data = mutate({**BASE, "method": {"name": method}}, path, value)
    try:
        cfg = validate_config(data)
    except ConfigError as e:
        one_line(e)
    else:
        assert isinstance(cfg, RunConfig)


@SETTINGS
@given(data=values)
def test_random_json_as_a_config(data):
    try:
        validate_config(data)
    except ConfigError as e:
        one_line(e)
