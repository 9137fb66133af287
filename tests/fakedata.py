"""Tiny data sets in the real on-disk layouts torchvision reads (IDX for MNIST-likes, pickled dicts for
CIFAR), so the data path runs through the real readers, offline, in milliseconds.

Images are deterministic (seeded numpy); every class has samples in both train and test.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _labels(n: int, classes: int) -> np.ndarray:
    """0, 1, ..., classes-1, 0, 1, ...: every class present once n >= classes."""
    return (np.arange(n) % classes).astype(np.uint8)


def write_idx_images(path: Path, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def make_mnist(root: Path, name: str = "mnist", n_train: int = 40, n_test: int = 20, seed: int = 0
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write `<root>/MNIST/raw/...` (or FashionMNIST); returns {"train": (images, labels), "test": ...}."""
    rng = np.random.default_rng(seed)
    raw = root / MNIST_FOLDERS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = _labels(n, 10)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out[split] = (images, labels)
    return out


def _cifar_data(rng: np.random.Generator, n: int) -> np.ndarray:
    """N x 3072 uint8 rows, channel-major (R plane, G plane, B plane), as in the real pickles. The first
    image's top-left pixel is (255, 0, *) so a test can check the standardisation by hand."""
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[0, 0], data[0, 1024] = 255, 0
    return data


def _dump(path: Path, obj: dict) -> None:
    with path.open("wb") as f:
        pickle.dump(obj, f)


def make_cifar10(root: Path, per_batch: int = 10, n_test: int = 20, seed: int = 0
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write `<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for i in range(1, 6):
        x, y = _cifar_data(rng, per_batch), _labels(per_batch, 10)
        _dump(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "data": x,
                                           "labels": [int(v) for v in y]})
        train_x.append(x)
        train_y.append(y)
    test_x, test_y = _cifar_data(rng, n_test), _labels(n_test, 10)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": test_x,
                                  "labels": [int(v) for v in test_y]})
    _dump(folder / "batches.meta", {"label_names": [f"class{c}" for c in range(10)], "num_vis": 3072})
    return {"train": (np.concatenate(train_x), np.concatenate(train_y)), "test": (test_x, test_y)}


def make_cifar100(root: Path, per_class_train: int = 2, per_class_test: int = 1, seed: int = 0
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write `<root>/cifar-100-python/{train,test,meta}` with every one of the 100 classes present."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        n = 100 * per_class
        x, y = _cifar_data(rng, n), _labels(n, 100)
        _dump(folder / split, {"data": x, "fine_labels": [int(v) for v in y],
                               "coarse_labels": [int(v) // 5 for v in y]})
        out[split] = (x, y)
    _dump(folder / "meta", {"fine_label_names": [f"fine{c}" for c in range(100)],
                            "coarse_label_names": [f"coarse{c}" for c in range(20)]})
    return out


MAKERS = {
    "mnist": lambda root: make_mnist(root, "mnist"),
    "fashion-mnist": lambda root: make_mnist(root, "fashion-mnist"),
    "cifar10": make_cifar10,
    "cifar100": make_cifar100,
}
