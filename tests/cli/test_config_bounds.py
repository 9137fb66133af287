"""Bad input found by a sweep: each is refused by build_config / validate_config as a one-line ConfigError
that names the field (and, through the CLI, exit code 2 with no traceback and no run folder)."""

from __future__ import annotations

import pytest

from core.schema.config import ConfigError, RunConfig, validate_config
from core.schema.limits import MAX_BATCH, MAX_ITERATIONS, MAX_LR, MAX_PARAMETERS, SEED_LIMIT, model_parameters
from core.schema.params import MAX_WIDTH
from core.schema.presets import build_config
from tests.helpers.cli import assert_bad_input, cli, config_error


def preset_file(tmp_path, content: str | bytes, name: str = "bad.toml") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


# --- Seeds -------------------------------------------------------------------------------------------


def test_a_seed_beyond_64_bits_is_refused():
    text = config_error(seed=99999999999999999999)
    assert text.startswith("train.seed:") and "2**63" in text and "99999999999999999999" in text


@pytest.mark.parametrize("item", ["train.seed=99999999999999999999", f"train.seed={SEED_LIMIT}", "train.seed=-1"])
def test_seed_bounds_through_set(item):
    text = config_error(overrides=[item])
    assert f"--set {item}" in text and "train.seed" in text


def test_the_largest_seed_is_accepted():
    assert build_config(seed=SEED_LIMIT - 1).train.seed == SEED_LIMIT - 1


@pytest.mark.parametrize("value", ["99999999999999999999", "-1"])
def test_class_order_seed_bounds(value):
    text = config_error(overrides=[f"benchmark.class_order_seed={value}"])
    assert "benchmark.class_order_seed" in text


# --- Floats: never inf or nan; learning rates bounded ------------------------------------------------


@pytest.mark.parametrize("value", ["1e308", "inf", "-inf", "nan", "+inf", "1e400", "11"])
def test_absurd_learning_rates_are_refused(value):
    text = config_error(overrides=[f"train.lr={value}"])
    assert f"--set train.lr={value}" in text and "train.lr" in text


def test_the_lr_message_names_the_bound():
    assert str(MAX_LR).removesuffix(".0") in config_error(overrides=["train.lr=1e308"])
    assert "finite" in config_error(overrides=["train.lr=nan"])


def test_the_largest_lr_is_accepted():
    assert build_config(overrides=[f"train.lr={MAX_LR}"]).train.lr == MAX_LR


@pytest.mark.parametrize("method, item", [
    ("ewc", "method.lambda=inf"),
    ("si", "method.c=nan"),
    ("lwf", "method.temperature=inf"),
    ("derpp", "method.alpha=nan"),
    ("dgr", "method.generator_lr=inf"),
    ("none", "benchmark.rotation_max=inf"),
    ("none", "train.progress_interval=nan"),
    ("none", "train.weight_decay=inf"),
])
def test_no_float_anywhere_may_be_inf_or_nan(method, item):
    text = config_error(method=method, overrides=[item, "method.budget=10"] if method == "derpp" else [item])
    assert item.split("=")[0] in text


def test_inf_nan_are_refused_in_a_saved_config_too():
    data = build_config().to_dict()
    data["train"]["lr"] = float("nan")
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    assert str(info.value).startswith("train.lr:")


@pytest.mark.parametrize("preset, item", [
    ("cifar100-dfcil-10", "method.generator_lr=100"),
    ("cifar100-dfcil-10", "train.weight_decay=5"),
])
def test_other_rates_are_bounded(preset, item):
    assert item.split("=")[0] in config_error(preset=preset, overrides=[item])


# --- Counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", [
    "train.iterations=1e12",
    f"train.iterations={MAX_ITERATIONS + 1}",
    "train.batch_size=1e9",
    f"train.eval_batch_size={MAX_BATCH + 1}",
    "train.progress_interval=1e9",
])
def test_train_counts_are_bounded(item):
    text = config_error(overrides=[item])
    assert f"--set {item}" in text and item.split("=")[0] in text


def test_the_count_message_names_the_bound():
    assert str(MAX_ITERATIONS) in config_error(overrides=["train.iterations=1e12"])


def test_the_largest_counts_are_accepted():
    cfg = build_config(overrides=[f"train.iterations={MAX_ITERATIONS}", f"train.batch_size={MAX_BATCH}"])
    assert (cfg.train.iterations, cfg.train.batch_size) == (MAX_ITERATIONS, MAX_BATCH)


def test_joint_counts_the_iterations_of_all_contexts():
    text = config_error(method="joint", overrides=[f"train.iterations={MAX_ITERATIONS // 2}"])
    assert text.startswith("--set train.iterations=") and "x 5 =" in text and str(MAX_ITERATIONS) in text


@pytest.mark.parametrize("preset, method, scenario, item", [
    ("split-digits", "ewc", None, "method.fisher_n=1e12"),
    ("split-digits", "er", None, "method.budget=1e12"),
    ("split-digits", "er", None, "method.budget_total=1e12"),
    ("split-digits", "er", None, "method.budget=500000"),  # x 10 classes: too many stored samples in all
    ("split-digits", "dgr", None, "method.z_dim=1e9"),
    ("split-digits", "bir", None, "method.z_dim=1e9"),
    ("split-digits", "gen-classifier", None, "method.hidden=1e9"),
    ("split-digits", "gen-classifier", None, "method.z_dim=1e9"),
    ("split-digits", "gen-classifier", None, "method.importance_samples=1e12"),
    ("cifar100-dfcil-10", "abd", None, "method.generator_iterations=1e12"),
    ("cifar100-dfcil-10", "abd", None, "method.z_dim=1e9"),
    ("cifar100-dfcil-10", "abd", None, "method.generator_width=1e9"),
    ("cifar100-dfcil-10", "abd", None, "method.dreams_per_class=1e9"),
    ("cifar100-dfcil-10", "abd", None, "method.export_per_class=1e9"),
    ("cifar100-dfcil-10", "abd", None, "method.verifier_iterations=1e12"),
    ("cifar100-dfcil-10", "deepinversion", None, "method.steps=1e12"),
    ("cifar100-dfcil-10", "deepinversion", None, "method.batch_size=1e12"),
    ("cifar100-dfcil-10", "deepinversion", None, "method.jitter=1e12"),
])
def test_method_counts_are_bounded(preset, method, scenario, item):
    overrides = [item] + (["method.budget=10"] if method == "er" and "budget" not in item else [])
    text = config_error(preset=preset, method=method, scenario=scenario, overrides=overrides)
    assert item.split("=")[0] in text, text


# --- Widths and the size of the network -----------------------------------------------------------


def test_a_huge_width_is_refused():
    text = config_error(overrides=["model.hidden=[100000000]"])
    assert text.startswith("--set model.hidden=[100000000]: model.hidden:") and str(MAX_WIDTH) in text


def test_a_network_too_large_for_any_device_is_refused():
    text = config_error(overrides=["model.hidden=[60000,60000]"])
    assert "model.hidden: [60000, 60000] gives about 3.6e9 parameters" in text
    assert "GB with Adam's state" in text and "at most 5e8" in text


def test_fc_hidden_of_vdv_conv_counts_too():
    text = config_error(preset="split-cifar100", overrides=["model.fc_hidden=[60000,60000]"])
    assert "model.fc_hidden:" in text and "parameters" in text


@pytest.mark.parametrize("preset, method, scenario, item, field", [
    ("split-digits", "dgr", None, "method.generator_hidden=[100000]", "method.generator_hidden"),
    ("split-digits", "dgr", None, "method.generator_hidden=[60000,60000]", "method.generator_hidden"),
    ("split-digits", "separate", "task", "method.hidden=[100000]", "method.hidden"),
    ("split-digits", "separate", "task", "method.hidden=[60000,10000]", "method.hidden"),
    ("split-digits", "gen-classifier", None, "method.hidden=60000", "method.hidden"),
    ("split-digits", "bir", None, "method.z_dim=65536", "method.z_dim"),
    ("cifar100-dfcil-10", "abd", None, "method.generator_width=10000", "method.generator_width"),
])
def test_method_networks_are_bounded(preset, method, scenario, item, field):
    overrides = [item] + (["model.hidden=[10000]"] if method == "bir" else [])
    text = config_error(preset=preset, method=method, scenario=scenario, overrides=overrides)
    assert field in text, text


def test_many_hidden_layers_are_refused():
    text = config_error(overrides=[f"model.hidden=[{', '.join(['10'] * 1000)}]"])
    assert "model.hidden" in text


def test_the_size_estimate_matches_the_real_model():
    from core.engine.models import build_model, count_parameters

    for kind, shape, head, hidden, fc_hidden in [
        ("mlp", (1, 28, 28), 10, [400, 400], None),
        ("mlp", (1, 8, 8), 2, [], None),
        ("vdv-conv", (3, 32, 32), 100, [400, 400], [2000, 2000]),
        ("vdv-conv", (1, 28, 28), 10, [400], [100]),
    ]:
        model = build_model(kind, shape, head, hidden=hidden, fc_hidden=fc_hidden)
        assert model_parameters(kind, shape, head, hidden, fc_hidden) == count_parameters(model)


def test_the_presets_stay_far_below_the_size_limit():
    for preset in ("split-digits", "perm-mnist", "split-cifar100"):
        cfg = build_config(preset)
        size = model_parameters(cfg.model.kind, cfg.benchmark.input_shape, cfg.head_size, cfg.model.hidden,
                                cfg.model.fc_hidden)
        assert size is not None and size < MAX_PARAMETERS / 10


# --- Presets with junk --------------------------------------------------------------------------------


@pytest.mark.parametrize("content, words", [
    (bytes(range(256)), ["not valid TOML"]),
    (b"\xff\xfe\x00\x80garbage", ["not valid TOML"]),
    ("v = " + "[" * 5000 + "]" * 5000, ["not valid TOML"]),
    ("method_defaults = 5", ["method_defaults"]),
    ("method = 5", ["method"]),
    ('method = { name = [1] }', ["method", "unknown method"]),
    ("method_defaults = { ewc = 5 }", ["method_defaults.ewc"]),
    ("[method_defaults.nope]\nx = 1", ["method_defaults.nope", "unknown method"]),
    ("[method_defaults.ewc]\nlambda = { tsk = 1 }", ["method_defaults.ewc.lambda", "tsk"]),
    ("train = 3", ["train"]),
    ("benchmark = [1, 2]", ["benchmark"]),
    ("description = [1]", ["description"]),
    ("foo = 1\n[bar]\nx = 2", ["unknown setting"]),
    ("scenario = { a = 1 }", ["scenario"]),
])
def test_junk_presets_are_one_line_errors(tmp_path, content, words):
    path = preset_file(tmp_path, content)
    text = config_error(preset=path)
    for word in words:
        assert word in text, text


def test_a_junk_preset_names_its_file(tmp_path):
    path = preset_file(tmp_path, "method_defaults = 5")
    assert config_error(preset=path).startswith(f"preset {path}: method_defaults")


def test_options_on_a_preset_whose_section_is_a_value(tmp_path):
    path = preset_file(tmp_path, "train = 3")
    assert "train" in config_error(preset=path, seed=1, device="cpu")


def test_a_preset_name_too_long_for_the_file_system():
    assert "unknown preset" in config_error(preset="x" * 5000 + ".toml")


# --- --set through odd paths and values ---------------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    ({"overrides": ["method.name=[1]"]}, ["method", "unknown method"]),
    ({"overrides": ["method.name={a = 1}"]}, ["method", "unknown method"]),
    ({"overrides": ["method.name=5"]}, ["method", "unknown method"]),
    ({"overrides": ["method=5"]}, ["method"]),
    ({"overrides": ["method=[1]"], "method": "ewc"}, ["method"]),
    ({"overrides": ["scenario=[1]"], "method": "ewc"}, ["scenario"]),
    ({"overrides": ["scenario={task = 1}"], "method": "si"}, ["scenario"]),
    ({"overrides": ["scenario.x=1"]}, ["scenario is a value"]),
    ({"overrides": ["train.lr.x.y=1"]}, ["train.lr is a value"]),
    ({"overrides": ["train=3", "train.lr=1"]}, ["train is a value"]),
    ({"overrides": ["train.Foo=1"]}, ["train.Foo", "unknown setting"]),
    ({"overrides": ["x=" + "[" * 5000 + "]" * 5000]}, ["x", "unknown setting"]),
    ({"overrides": ["train.lr=1\nbenchmark = 2"]}, ["train.lr"]),
    ({"overrides": ["model.hidden=[[[[1]]]]"]}, ["model.hidden"]),
    ({"overrides": ["train.lr=" + "9" * 500]}, ["train.lr"]),
    ({"overrides": ["train.iterations=" + "9" * 500]}, ["train.iterations"]),
    ({"overrides": ["method.lambda=1979-05-27"], "method": "ewc"}, ["method.lambda"]),
])
def test_odd_set_items_are_one_line_errors(kwargs, words):
    text = config_error(**kwargs)
    for word in words:
        assert word in text, text


def test_extra_key_under_a_method_lists_its_keys_by_their_names():
    text = config_error(method="ewc", overrides=["method.nope=1"])
    assert "lambda," in text and "lambda_" not in text


@pytest.mark.parametrize("data", [
    5,
    [],
    {"method": 5},
    {"method": {"name": [1]}},
    {"method": {"name": "ewc", "lambda": 1, "x": 1}},
    {"method": {"name": {"a": 1}}, "x": 1},
    {"train": {"lr": float("inf")}},
    {"train": {"seed": 2**64}},
    {"model": {"hidden": [10**12]}},
    {"a": {"a": {"a": {"a": {"a": {"a": {}}}}}}},
    {1: 2},
])
def test_validate_config_answers_junk_with_one_line(data):
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    text = str(info.value)
    assert text and "\n" not in text


def test_a_config_error_is_always_one_line():
    assert str(ConfigError("preset /tmp/a\nb.toml: not valid TOML")) == "preset /tmp/a b.toml: not valid TOML"


def test_valid_configs_still_validate():
    assert isinstance(validate_config(build_config("split-cifar100").to_dict()), RunConfig)


# --- Through the CLI: exit 2, one line, no traceback, no run folder ----------------------------------




@pytest.mark.parametrize("args, words", [
    (["run", "--seed", "99999999999999999999"], ["train.seed", "2**63"]),
    (["run", "--set", "train.lr=1e308"], ["train.lr"]),
    (["run", "--set", "train.lr=inf"], ["train.lr", "finite"]),
    (["run", "--set", "train.lr=nan"], ["train.lr", "finite"]),
    (["run", "--set", "train.iterations=1e12"], ["train.iterations", "10000000"]),
    (["run", "--set", "model.hidden=[100000000]"], ["model.hidden", "65536"]),
    (["run", "--set", "model.hidden=[60000,60000]"], ["model.hidden", "parameters", "5e8"]),
    (["run", "--method", "ewc", "--set", "method.lambda=inf"], ["method.lambda"]),
    (["run", "--set", "method.name=[1]"], ["method"]),
], ids=["seed", "lr-huge", "lr-inf", "lr-nan", "iterations", "width", "parameters", "method-inf", "method-name"])
def test_bad_input_through_the_cli(args, words, runs_env, runs_dir):
    result = cli(*args, env=runs_env)
    assert_bad_input(result, *words)
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize("content, words", [
    (bytes(range(256)), ["not valid TOML"]),
    ("method_defaults = 5", ["method_defaults"]),
    ("method_defaults = { ewc = 5 }", ["method_defaults.ewc"]),
    ("description = [1]", ["description"]),
], ids=["random-bytes", "method-defaults", "method-defaults-entry", "description"])
def test_junk_presets_through_the_cli(content, words, runs_env, runs_dir, tmp_path):
    path = preset_file(tmp_path, content)
    result = cli("run", path, env=runs_env)
    assert_bad_input(result, path, *words)
    assert list(runs_dir.iterdir()) == []


