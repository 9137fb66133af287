"""Tests for core/schema/config.py: presets, --set overrides, named options, validation errors, round trips."""

from __future__ import annotations

import pytest

from core.schema.config import SCENARIOS, ConfigError, RunConfig, validate_config
from core.schema.params import METHOD_PARAMS, JointParams, NoneParams
from core.schema.presets import (
    build_config,
    builtin_presets_dir,
    list_presets,
    load_preset,
    parse_override,
    preset_toml,
    save_preset,
)
from tests.helpers.cli import config_error

NAMED_PRESETS = ["split-digits", "split-mnist", "perm-mnist", "split-fashion-mnist", "split-cifar10",
                 "split-cifar100"]


# --- Presets ---------------------------------------------------------------------------------------


def test_the_six_named_presets_exist():
    assert set(NAMED_PRESETS) <= set(list_presets())


def regression(name: str) -> bool:
    return load_preset(name).get("benchmark", {}).get("name") == "sine"


def preset_method(name: str, scenario: str) -> str:
    """The preset's method, or none where it does not work (the data-free presets' abd is class-IL only)."""
    method = load_preset(name).get("method", {}).get("name", "none")
    return method if scenario in METHOD_PARAMS[method].scenarios else "none"


@pytest.mark.parametrize("name", list_presets())
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_preset_builds_in_every_scenario(name, scenario):
    method = preset_method(name, scenario)
    if scenario == "class" and regression(name):
        with pytest.raises(ConfigError, match="scenario: sine is a regression benchmark"):
            build_config(name, scenario=scenario, method=method)  # no classes to tell apart
        return
    cfg = build_config(name, scenario=scenario, method=method)
    assert isinstance(cfg, RunConfig)
    assert cfg.preset == name
    assert cfg.scenario == scenario
    assert cfg.method.name == method


def test_split_digits_defaults():
    cfg = build_config("split-digits")
    b = cfg.benchmark
    assert (b.name, b.protocol, b.contexts, b.classes_per_context) == ("digits", "split", 5, 2)
    assert (cfg.model.kind, cfg.model.hidden) == ("mlp", [400, 400])
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size) == ("adam", 1e-3, 128)
    assert 100 <= cfg.train.iterations <= 1000  # a demo that finishes in about a minute on a CPU
    assert b.input_shape == (1, 8, 8)
    assert b.data_dir is None and b.download is False  # digits never needs files or a network


def test_build_config_default_preset_is_split_digits():
    assert build_config() == build_config("split-digits")


@pytest.mark.parametrize("name, dataset", [("split-mnist", "mnist"), ("split-fashion-mnist", "fashion-mnist")])
def test_split_mnist_protocol_defaults(name, dataset):
    # docs/reference.md: splitMNIST 5 x 2, 2000 iterations, Adam 1e-3, batch 128, MLP 784-400-400-10.
    cfg = build_config(name)
    b = cfg.benchmark
    assert (b.name, b.protocol, b.contexts, b.classes_per_context) == (dataset, "split", 5, 2)
    assert b.input_shape == (1, 28, 28)
    assert (cfg.model.kind, cfg.model.hidden) == ("mlp", [400, 400])
    t = cfg.train
    assert (t.iterations, t.optimizer, t.lr, t.batch_size) == (2000, "adam", 1e-3, 128)


def test_perm_mnist_protocol_defaults():
    # docs/reference.md: permMNIST 10 x 10 (32x32 padded), 5000 iterations, Adam 1e-4, batch 128, MLP 1024-1000-1000.
    cfg = build_config("perm-mnist")
    b = cfg.benchmark
    assert (b.name, b.protocol, b.contexts, b.classes_per_context, b.pad_to) == ("mnist", "permuted", 10, 10, 32)
    assert b.input_shape == (1, 32, 32)
    assert (cfg.model.kind, cfg.model.hidden) == ("mlp", [1000, 1000])
    t = cfg.train
    assert (t.iterations, t.optimizer, t.lr, t.batch_size) == (5000, "adam", 1e-4, 128)


@pytest.mark.parametrize("name, dataset, contexts, per_context", [
    ("split-cifar10", "cifar10", 5, 2),
    ("split-cifar100", "cifar100", 10, 10),
])
def test_split_cifar_protocol_defaults(name, dataset, contexts, per_context):
    # docs/reference.md: CIFAR-10 5 x 2, CIFAR-100 10 x 10; 5000 iterations, Adam 1e-4, batch 256,
    # 5 conv + fc 2000-2000.
    cfg = build_config(name)
    b = cfg.benchmark
    assert (b.name, b.protocol, b.contexts, b.classes_per_context) == (dataset, "split", contexts, per_context)
    assert b.input_shape == (3, 32, 32)
    assert (cfg.model.kind, cfg.model.fc_hidden) == ("vdv-conv", [2000, 2000])
    t = cfg.train
    assert (t.iterations, t.optimizer, t.lr, t.batch_size) == (5000, "adam", 1e-4, 256)


def test_preset_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\nscenario = "task"\n[train]\niterations = 7\n')
    cfg = build_config(str(path))
    assert cfg.preset == "mine"
    assert cfg.scenario == "task"
    assert cfg.train.iterations == 7
    assert cfg.method.name == "none"  # no [method] table: fine-tuning
    assert cfg.benchmark.name == "digits"  # unspecified sections take the defaults


def test_user_presets_are_listed_with_the_built_in_ones(tmp_path, monkeypatch):
    (tmp_path / "only-one.toml").write_text("[train]\niterations = 3\n")
    (tmp_path / "split-digits.toml").write_text("[train]\niterations = 4\n")  # a user file with a built-in's name
    monkeypatch.setenv("CLTUI_PRESETS_DIR", str(tmp_path))
    assert set(list_presets()) == {*NAMED_PRESETS, "only-one", "split-digits-dfcil", "cifar100-dfcil-5",
                                   "cifar100-dfcil-10", "cifar100-dfcil-20", "merge-digits", "merge-cifar100",
                                   "merge-sine", "stability-gap", "split-digits-gen", "split-mnist-gen",
                                   "split-digits-b5-1", "cifar100-b0-10", "cifar100-b50-10"}
    assert build_config("only-one").train.iterations == 3
    assert build_config("split-digits").train.iterations == 300  # the built-in one is never hidden


def test_a_preset_name_never_reaches_outside_the_preset_folders(tmp_path, monkeypatch):
    (tmp_path / "outside.toml").write_text("[train]\niterations = 3\n")
    monkeypatch.setenv("CLTUI_PRESETS_DIR", str(tmp_path / "mine"))
    for name in ("../outside", "..", ".hidden", "a/b"):
        with pytest.raises(ConfigError, match="unknown preset") as e:
            build_config(name)
        assert e.value.field == "preset"


# --- Overrides and named options ------------------------------------------------------------------


@pytest.mark.parametrize("item, path, value", [
    ("train.lr=3e-4", ["train", "lr"], 0.0003),
    ("model.hidden=[100,100]", ["model", "hidden"], [100, 100]),
    ("benchmark.download=true", ["benchmark", "download"], True),
    ("train.iterations=12", ["train", "iterations"], 12),
    ("train.optimizer=sgd", ["train", "optimizer"], "sgd"),
    ('train.optimizer="sgd"', ["train", "optimizer"], "sgd"),
    ("benchmark.data_dir=/data/sets", ["benchmark", "data_dir"], "/data/sets"),
    ("benchmark.data_dir=/odd=name", ["benchmark", "data_dir"], "/odd=name"),
    ("  scenario = task  ", ["scenario"], "task"),
])
def test_parse_override_reads_toml_values(item, path, value):
    got_path, got = parse_override(item)
    assert got_path == path
    assert got == value
    assert type(got) is type(value)


def test_overrides_land_typed_in_the_config():
    cfg = build_config(overrides=["train.lr=3e-4", "model.hidden=[100,100]", "benchmark.download=true",
                                  "train.optimizer=sgd", "benchmark.data_dir=/data/sets"])
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.model.hidden == [100, 100]
    assert cfg.benchmark.download is True
    assert cfg.train.optimizer == "sgd"
    assert cfg.benchmark.data_dir == "/data/sets"


def test_named_options_land_in_the_config():
    cfg = build_config(method="joint", scenario="task", seed=7, device="cpu", data_dir="/d", download=True)
    assert isinstance(cfg.method, JointParams)
    assert cfg.scenario == "task"
    assert cfg.train.seed == 7
    assert cfg.train.device == "cpu"
    assert cfg.benchmark.data_dir == "/d"
    assert cfg.benchmark.download is True


def test_method_option_same_as_preset_keeps_it():
    assert isinstance(build_config(method="none").method, NoneParams)


def test_set_overrides_win_over_named_options():
    # Named options are applied first, then --set: the more specific --set item wins.
    cfg = build_config(method="joint", scenario="task", seed=5, device="cpu", data_dir="/a", download=True,
                       overrides=["method.name=none", "scenario=domain", "train.seed=9", "train.device=auto",
                                  "benchmark.data_dir=/b", "benchmark.download=false"])
    assert cfg.method.name == "none"
    assert cfg.scenario == "domain"
    assert cfg.train.seed == 9
    assert cfg.train.device == "auto"
    assert cfg.benchmark.data_dir == "/b"
    assert cfg.benchmark.download is False


def test_later_set_items_win():
    assert build_config(overrides=["train.lr=0.1", "train.lr=0.2"]).train.lr == pytest.approx(0.2)


def test_overrides_do_not_leak_into_the_next_build():
    build_config(overrides=["train.lr=0.5", "model.hidden=[3]"])
    cfg = build_config()
    assert cfg.train.lr == 1e-3 and cfg.model.hidden == [400, 400]


# --- Errors: one line naming the field ------------------------------------------------------------


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_unknown_preset_lists_the_available_ones():
    text = config_error(preset="no-such-preset")
    assert "no-such-preset" in text
    for name in NAMED_PRESETS:
        assert name in text


def test_missing_preset_path_is_an_unknown_preset(tmp_path):
    text = config_error(preset=str(tmp_path / "absent.toml"))
    assert "absent.toml" in text and "split-digits" in text


def test_unknown_method_lists_the_known_ones():
    text = config_error(method="no-such-method")
    assert text.startswith("method")
    assert "no-such-method" in text
    assert "none" in text and "joint" in text


def test_unparsable_number_names_field_and_set_item():
    text = config_error(overrides=["train.lr=abc"])
    assert "train.lr" in text
    assert "--set train.lr=abc" in text
    assert "abc" in text


def test_unknown_top_level_setting_lists_valid_keys():
    text = config_error(overrides=["nope=1"])
    assert "nope" in text and "unknown setting" in text
    for key in ("benchmark", "scenario", "model", "train", "method"):
        assert key in text


def test_unknown_nested_setting_lists_that_section_keys():
    text = config_error(overrides=["train.nope=1"])
    assert "train.nope" in text and "unknown setting" in text
    for key in ("iterations", "batch_size", "lr", "seed", "device"):
        assert key in text
    assert "hidden" not in text  # keys of another section would mislead


def test_out_of_range_value():
    text = config_error(overrides=["train.lr=-1"])
    assert "--set train.lr=-1" in text and "train.lr" in text and "greater than 0" in text


@pytest.mark.parametrize("kwargs", [{"overrides": ["train.device=gpu7"]}, {"device": "gpu7"}])
def test_bad_device_names_the_choices(kwargs):
    text = config_error(**kwargs)
    assert "train.device" in text and "gpu7" in text
    assert "cpu" in text and "cuda" in text


@pytest.mark.parametrize("kwargs", [{"overrides": ["scenario=sideways"]}, {"scenario": "sideways"}])
def test_bad_scenario_names_the_choices(kwargs):
    text = config_error(**kwargs)
    assert "scenario:" in text
    assert "sideways" in text
    for s in SCENARIOS:
        assert s in text


@pytest.mark.parametrize("item", ["trainlr", "=3", "train.lr", "train..lr=1", "1train=2", ".lr=1"])
def test_malformed_override(item):
    with pytest.raises(ConfigError) as info:
        parse_override(item)
    text = str(info.value)
    assert "\n" not in text
    assert "KEY=VALUE" in text and repr(item) in text
    assert "KEY=VALUE" in config_error(overrides=[item])


def test_setting_below_a_value_is_an_error():
    text = config_error(overrides=["train.lr.x=1"])
    assert "--set train.lr.x=1" in text and "train.lr" in text


def test_too_many_contexts_for_the_classes():
    # digits has 10 classes; 20 contexts x 2 classes would need 40.
    text = config_error(overrides=["benchmark.contexts=20"])
    assert "benchmark." in text
    assert "20 contexts" in text and "digits has 10" in text


def test_too_many_contexts_without_classes_per_context():
    with pytest.raises(ConfigError) as info:
        validate_config({"benchmark": {"name": "digits", "contexts": 20}})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("benchmark.contexts:") and "digits has 10 classes" in text


def test_classes_per_context_must_fit():
    text = config_error(overrides=["benchmark.classes_per_context=3"])
    assert "--set benchmark.classes_per_context=3" in text and "15" in text and "digits has 10" in text


def test_permuted_context_holds_every_class():
    text = config_error(preset="perm-mnist", overrides=["benchmark.classes_per_context=2"])
    assert "benchmark.classes_per_context" in text and "10" in text


def test_lenet5_on_8x8_digits_is_refused():
    text = config_error(overrides=["model.kind=lenet5"])
    assert "model.kind" in text and "lenet5" in text and "8x8" in text


def test_lenet5_builds_on_mnist_and_on_padded_digits():
    assert build_config("split-mnist", overrides=["model.kind=lenet5"]).model.kind == "lenet5"
    assert build_config(overrides=["model.kind=lenet5", "benchmark.pad_to=16"]).benchmark.input_shape == (1, 16, 16)


def test_zero_width_layer_is_refused():
    text = config_error(overrides=["model.hidden=[100,0]"])
    assert "model.hidden" in text and ">= 1" in text


def test_fractional_iterations_are_refused():
    text = config_error(overrides=["train.iterations=1.5"])
    assert "train.iterations" in text and "1.5" in text


def test_invalid_toml_preset_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\nlr = \n")
    text = config_error(preset=str(path))
    assert str(path) in text and "TOML" in text


def test_validate_config_reports_wrong_benchmark_name():
    with pytest.raises(ConfigError) as info:
        validate_config({"benchmark": {"name": "imagenet"}})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("benchmark.name:") and "imagenet" in text and "cifar100" in text


# --- Per-scenario method defaults from a preset ---------------------------------------------------
# The registered methods here (none, joint) have no parameters; the mechanism shows through what it
# adds to the chosen method's table: a key no method knows is rejected exactly when it is applied.


def _preset_with_defaults(tmp_path, defaults: str, scenario: str = "class") -> str:
    path = tmp_path / "defaults.toml"
    path.write_text(f'scenario = "{scenario}"\n[method]\nname = "none"\n{defaults}')
    return str(path)


def test_method_defaults_of_the_chosen_method_are_applied(tmp_path):
    preset = _preset_with_defaults(tmp_path, "[method_defaults.none]\nbogus = 1\n")
    text = config_error(preset=preset)
    assert "method.bogus" in text and "unknown setting" in text


def test_method_defaults_of_other_methods_are_ignored(tmp_path):
    preset = _preset_with_defaults(tmp_path, "[method_defaults.joint]\nbogus = 1\n")
    assert build_config(preset).method.name == "none"
    assert "method.bogus" in config_error(preset=preset, method="joint")


def test_method_defaults_resolve_per_scenario(tmp_path):
    preset = _preset_with_defaults(tmp_path, "[method_defaults.none]\nbogus = { task = 1 }\n")
    assert build_config(preset).scenario == "class"  # no value for class-IL: nothing added
    assert build_config(preset, scenario="domain").scenario == "domain"
    assert "method.bogus" in config_error(preset=preset, scenario="task")
    assert "method.bogus" in config_error(preset=preset, overrides=["scenario=task"])


def test_method_defaults_never_override_what_is_set(tmp_path):
    preset = _preset_with_defaults(tmp_path, '[method_defaults.none]\nname = "joint"\n')
    assert build_config(preset).method.name == "none"


def test_preset_only_keys_stay_out_of_the_config(tmp_path):
    preset = _preset_with_defaults(tmp_path, "[method_defaults.joint]\n")
    data = build_config(preset).to_dict()
    assert "description" not in data and "method_defaults" not in data


# --- Round trip and head size ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "scenario"), [(n, s) for n in list_presets() for s in SCENARIOS
                                                 if not (s == "class" and regression(n))])
def test_to_dict_round_trips(name, scenario):
    cfg = build_config(name, scenario=scenario, method=preset_method(name, scenario), seed=3,
                       overrides=["train.lr=3e-4"])
    data = cfg.to_dict()
    assert validate_config(data) == cfg
    assert data["train"]["lr"] == 0.0003 and data["train"]["seed"] == 3
    assert data["method"]["name"] == cfg.method.name


def test_to_dict_is_plain_json():
    import json

    data = build_config("perm-mnist").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["benchmark"]["classes_per_context"] == 10  # resolved, not left None


@pytest.mark.parametrize("name, scenario, head", [
    ("split-digits", "task", 10),
    ("split-digits", "domain", 2),
    ("split-digits", "class", 10),
    ("split-mnist", "domain", 2),
    ("perm-mnist", "task", 100),
    ("perm-mnist", "domain", 10),
    ("perm-mnist", "class", 100),
    ("split-cifar100", "domain", 10),
    ("split-cifar100", "class", 100),
])
def test_head_size(name, scenario, head):
    assert build_config(name, scenario=scenario).head_size == head


def test_head_size_follows_classes_per_context_override():
    cfg = build_config(overrides=["benchmark.contexts=3", "benchmark.classes_per_context=3"])
    assert cfg.head_size == 9
    assert build_config(scenario="domain", overrides=["benchmark.contexts=3",
                                                      "benchmark.classes_per_context=3"]).head_size == 3


# --- Writing presets, and errors a form can place --------------------------------------------------


def test_preset_toml_round_trips_every_preset(tmp_path):
    for preset in sorted(builtin_presets_dir().glob("*.toml")):
        method, extra = ("none", []) if regression(preset.stem) else ("er", ["method.budget=5"])
        config = build_config(preset.stem, method=method, overrides=[*extra, "model.hidden=[64, 32]"])
        path = tmp_path / f"{preset.stem}.toml"
        path.write_text(preset_toml(config, "round trip", load_preset(preset.stem).get("method_defaults", {})))
        again = build_config(str(path))
        assert again.to_dict() | {"preset": None} == config.to_dict() | {"preset": None}


def test_saving_over_a_built_in_preset_is_refused(tmp_path):
    config = build_config("split-digits")
    target = builtin_presets_dir() / "split-digits.toml"
    before = target.read_bytes()
    with pytest.raises(ConfigError, match="built-in presets are not changed") as e:
        save_preset(target, config, "mine", {})
    assert e.value.field == "preset" and target.read_bytes() == before


@pytest.mark.parametrize("overrides, method, field, detail", [
    (["train.lr=-1"], None, "train.lr", "input should be greater than 0 (got -1)"),
    ([], "si", "method.c", "no default for si in this preset; pass --set method.c=VALUE"),
    (["method.nope=1"], None, "method.nope", "unknown setting; valid keys under method: name"),
])
def test_a_config_error_names_its_field_for_a_form(overrides, method, field, detail, tmp_path):
    preset = tmp_path / "bare.toml"
    preset.write_text("[train]\niterations = 3\n")
    with pytest.raises(ConfigError) as e:
        build_config(str(preset), method=method, overrides=overrides)
    assert (e.value.field, e.value.detail) == (field, detail)
    assert str(e.value).endswith(f"{field}: {detail}")  # the CLI's one line says both
