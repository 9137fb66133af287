"""Which files each torchvision data set needs on disk, checked without importing torch, so a missing
data set is reported before a worker process is started."""

from __future__ import annotations

from pathlib import Path

from core.config import BenchmarkConfig

REQUIRED_FILES: dict[str, list[str]] = {
    "mnist": [f"MNIST/raw/{s}-{k}-ubyte" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")],
    "fashion-mnist": [
        f"FashionMNIST/raw/{s}-{k}-ubyte" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
    ],
    "cifar10": [f"cifar-10-batches-py/{n}" for n in
                [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]],
    "cifar100": [f"cifar-100-python/{n}" for n in ("train", "test", "meta")],
}


def data_root(cfg: BenchmarkConfig) -> Path:
    return Path(cfg.data_dir or "data").expanduser()


def missing_data(cfg: BenchmarkConfig) -> str | None:
    """One line naming the missing files and the fix, or None when the data set can be loaded."""
    if cfg.name not in REQUIRED_FILES or cfg.download:
        return None
    root = data_root(cfg)
    missing = [n for n in REQUIRED_FILES[cfg.name] if not (root / n).is_file()]
    if not missing:
        return None
    return (
        f"benchmark.data_dir: {cfg.name} not found in {root} (missing {root / missing[0]}"
        f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}); pass --download to fetch it, "
        f"or --data-dir DIR for a folder that holds it"
    )
