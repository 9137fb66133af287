"""`cltui pretrain`: conv layers trained on a whole data set (CIFAR-10 for split CIFAR-100, as van de Ven et al.
2022 do), saved for `model.pretrained` (core/engine/pretrain.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cltui.cli.common import console, escape, fail


def pretrain(
    dataset: Annotated[str, typer.Argument(help="Data set to train on, all of its classes: cifar10 (the "
                                                "paper's), cifar100, mnist, fashion-mnist.")] = "cifar10",
    model: Annotated[str, typer.Option("--model", help="Network whose conv layers are kept: vdv-conv or "
                                                       "lenet5.")] = "vdv-conv",
    epochs: Annotated[int, typer.Option(min=1, max=10_000, help="Passes over the training set.")] = 10,
    augment: Annotated[bool, typer.Option("--augment", help="Random crop and flip.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=1_000_000, help="Samples per step.")] = 256,
    lr: Annotated[float, typer.Option(min=1e-8, max=10.0, help="Adam's learning rate.")] = 1e-4,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Checkpoint file \\[default: "
                                                  "pretrained/<model>-<dataset>.pt].", show_default=False)] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the data set files.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Train a network on a whole data set and save its conv layers for model.pretrained."""
    from core.engine.datafiles import missing_data
    from core.schema.config import BenchmarkConfig
    from core.schema.limits import BENCHMARK_INFO

    if dataset not in BENCHMARK_INFO or dataset == "digits":
        fail(f"DATASET: {dataset!r} is not one of cifar10, cifar100, mnist, fashion-mnist")
    if model not in ("vdv-conv", "lenet5"):
        fail(f"--model: {model!r} has no conv stack to pretrain; use vdv-conv or lenet5")
    problem = missing_data(BenchmarkConfig(name=dataset, contexts=1,  # type: ignore[arg-type]
                                           data_dir=str(data_dir) if data_dir else None))
    if problem:
        fail(problem)
    target = out or Path("pretrained") / f"{model}-{dataset}.pt"
    if target.exists():
        fail(f"--out: {target} exists and is kept; give another --out, or remove it first")
    from core.engine.data import DataError
    from core.engine.pretrain import pretrain as train_conv
    from core.training.train import InputError, resolve_device

    try:
        dev = str(resolve_device(device))
    except (InputError, RuntimeError) as e:
        fail(f"--device: {e}")

    def report(epoch: int, loss: float, seconds: float) -> None:
        console.print(f"epoch {epoch}/{epochs}: loss {loss:.4f} ({seconds:.1f} s)")

    try:
        saved = train_conv(dataset, model, target, epochs=epochs, augment_data=augment, batch_size=batch_size,
                           lr=lr, seed=seed, device=dev, data_dir=str(data_dir) if data_dir else None,
                           report=report)
    except DataError as e:
        fail(str(e))
    console.print(f"saved the conv layers of {model} ({dataset} test acc {100 * saved['test_acc']:.2f}%) to "
                  f"{escape(saved['path'])} · sha256 {saved['sha256']}")
    console.print(f"use them with: --set model.pretrained={escape(saved['path'])} --set model.freeze_conv=true")
