"""`cltui pretrain` and `model.pretrained` / `model.freeze_conv`, end to end on tiny files in CIFAR's real layout:
the conv layers are loaded and stay fixed, the run records the checkpoint's sha256, and a checkpoint of another
model kind or shape is refused in one line with exit code 2."""

from __future__ import annotations

import hashlib

import pytest
import torch
from typer.testing import CliRunner

from cltui.cli.main import app
from core.schema.config import ConfigError
from core.schema.presets import build_config
from core.training import run
from tests.helpers.data import make_cifar10, make_mnist, vouch


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    root = tmp_path / "data"
    make_cifar10(root, per_batch=20, n_test=20)
    vouch(monkeypatch, root)
    return root


def pretrain(args: list[str]) -> None:
    out = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["pretrain", *args, "--epochs", "1", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert "sha256" in out.output


def tiny_cifar(root, checkpoint, **extra) -> object:
    sets = ["train.iterations=3", "train.batch_size=8", "model.fc_hidden=[16]", f"benchmark.data_dir={root}",
            f"model.pretrained={checkpoint}", "model.freeze_conv=true", "train.checkpoints=last",
            *(f"{k}={v}" for k, v in extra.items())]
    return build_config("split-cifar10", device="cpu", overrides=sets)


def test_pretrained_conv_layers_load_stay_frozen_and_are_recorded(tmp_path, cifar):
    checkpoint = tmp_path / "conv.pt"
    pretrain(["cifar10", "--model", "vdv-conv", "--augment", "--out", str(checkpoint), "--data-dir", str(cifar)])
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["kind"] == "vdv-conv" and saved["dataset"] == "cifar10"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = run(tiny_cifar(cifar, checkpoint), run_dir)
    assert record["status"] == "finished", record["error"]
    assert record["pretrained"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert record["pretrained"]["frozen"] is True
    [last] = (run_dir / "checkpoints").glob("context-*.pt")
    model = torch.load(last, weights_only=True)["model"]
    for key, value in saved["conv"].items():  # weights and BN statistics exactly as pretrained
        assert torch.equal(model[f"features.conv.{key}"], value), key
    assert not torch.equal(model["head.weight"], torch.zeros_like(model["head.weight"]))


def test_a_checkpoint_of_another_kind_exits_2_with_one_line(tmp_path, cifar):
    checkpoint = tmp_path / "lenet.pt"
    pretrain(["cifar10", "--model", "lenet5", "--out", str(checkpoint), "--data-dir", str(cifar)])
    out = CliRunner().invoke(app, ["run", "split-cifar10", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"),
                                   "--set", "train.iterations=2", "--set", "model.fc_hidden=[16]",
                                   "--data-dir", str(cifar), "--set", f"model.pretrained={checkpoint}"])
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "model.pretrained" in lines[0] and "lenet5" in lines[0] and "vdv-conv" in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind


def test_a_checkpoint_of_another_shape_is_refused(tmp_path, cifar, monkeypatch):
    mnist = tmp_path / "mnist-data"
    make_mnist(mnist)
    checkpoint = tmp_path / "mnist-conv.pt"
    pretrain(["mnist", "--model", "vdv-conv", "--out", str(checkpoint), "--data-dir", str(mnist)])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = run(tiny_cifar(cifar, checkpoint), run_dir)
    assert record["status"] == "failed" and record["error"]["kind"] == "input"
    message = record["error"]["message"]
    assert "\n" not in message and message.startswith(f"model.pretrained: {checkpoint}: its conv layers do not fit")


def test_a_file_that_is_no_checkpoint_is_refused_before_anything_runs(tmp_path, cifar):
    bogus = tmp_path / "conv.pt"
    bogus.write_bytes(b"not a checkpoint")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = run(tiny_cifar(cifar, bogus), run_dir)
    assert record["status"] == "failed" and "is not a checkpoint cltui can load" in record["error"]["message"]


def test_only_conv_models_take_pretrained_layers():
    with pytest.raises(ConfigError, match="model.freeze_conv: model.kind mlp has no conv stack"):
        build_config("split-digits", overrides=["model.freeze_conv=true"])


def test_the_split_cifar100_preset_uses_pretrained_frozen_conv_layers_and_says_how_to_make_them(tmp_path,
                                                                                               monkeypatch):
    from tests.helpers.data import make_cifar100

    config = build_config("split-cifar100")
    assert config.model.pretrained == "pretrained/vdv-conv-cifar10.pt" and config.model.freeze_conv
    root = tmp_path / "data"
    make_cifar100(root)
    vouch(monkeypatch, root)
    monkeypatch.chdir(tmp_path)  # no pretrained/ here
    out = CliRunner().invoke(app, ["run", "split-cifar100", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"),
                                   "--data-dir", str(root), "--set", "train.iterations=2"])
    assert out.exit_code == 2, out.output
    [line] = out.output.strip().splitlines()
    assert line.removeprefix("error: ").startswith("model.pretrained: pretrained/vdv-conv-cifar10.pt not found")
    assert "cltui pretrain cifar10 --model vdv-conv" in line and "--set model.pretrained=" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind
    scratch = build_config("split-cifar100", overrides=["model.pretrained=", "model.freeze_conv=false"])
    assert not scratch.model.pretrained and not scratch.model.freeze_conv  # from scratch, as the line says
