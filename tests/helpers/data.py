"""Tiny data sets in the real on-disk layouts torchvision reads (IDX for MNIST-likes, pickled dicts for
CIFAR), so the data path runs through the real readers, offline, in milliseconds.

Images are deterministic (seeded numpy); every class has samples in both train and test.

The fake CIFAR files are not the ones torchvision ships, so core/engine/data.py refuses them unless the user
vouches for them: the CIFAR makers also write the MD5 of every file they write into a checksum list
*beside* the data folder (`manifest_path(root)`, i.e. `<root>.cltui-checksums.json` in root's parent;
never inside root, which the loader refuses), merging with what is already listed there. A test then
turns it on with `vouch(monkeypatch, root)`, which sets $CLTUI_DATA_CHECKSUMS for that test only.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CHECKSUMS_ENV = "CLTUI_DATA_CHECKSUMS"


# --- Vouching for files we made ourselves ---------------------------------------------------------


def manifest_path(root: Path) -> Path:
    """The checksum list for data folder `root`: a sibling file, one per data folder, so folders that
    share a parent (tmp_path_factory's) never overwrite each other's entries."""
    return root.parent / f"{root.name}.cltui-checksums.json"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def vouch_for(root: Path, *files: Path) -> Path:
    """List each file (inside `root`) under its path relative to root, with its current MD5, in root's
    checksum list; returns the list's path."""
    path = manifest_path(root)
    listed = json.loads(path.read_text()) if path.is_file() else {}
    listed.update({f.relative_to(root).as_posix(): md5_of(f) for f in files})
    path.write_text(json.dumps(listed, indent=1, sort_keys=True))
    return path


def vouch(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Point $CLTUI_DATA_CHECKSUMS at root's checksum list for the current test; returns its path."""
    path = manifest_path(root)
    monkeypatch.setenv(CHECKSUMS_ENV, str(path))
    return path


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
        pickle.dump(obj, f, protocol=4)  # numpy arrays pickle through _reconstruct, as in the real files


def make_cifar10(root: Path, per_batch: int = 10, n_test: int = 20, seed: int = 0
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write `<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}` and vouch for them in
    `manifest_path(root)`."""
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
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    vouch_for(root, *(folder / n for n in names))
    return {"train": (np.concatenate(train_x), np.concatenate(train_y)), "test": (test_x, test_y)}


def make_cifar100(root: Path, per_class_train: int = 2, per_class_test: int = 1, seed: int = 0
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write `<root>/cifar-100-python/{train,test,meta}` with every one of the 100 classes present, and
    vouch for them in `manifest_path(root)`."""
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
    vouch_for(root, *(folder / n for n in ("train", "test", "meta")))
    return out


MAKERS = {
    "mnist": lambda root: make_mnist(root, "mnist"),
    "fashion-mnist": lambda root: make_mnist(root, "fashion-mnist"),
    "cifar10": make_cifar10,
    "cifar100": make_cifar100,
}
