"""Benchmarks: data sets loaded once as tensors on the run's device and cut into contexts by a protocol.

Data sets: `digits` (scikit-learn's bundled 8x8 handwritten digits, offline), `mnist`,
`fashion-mnist`, `cifar10`, `cifar100` (torchvision's readers over their standard on-disk layouts;
downloaded only when asked). Protocols: `split` (disjoint classes per context), `permuted` (a fixed
pixel permutation per context, the first one the identity), `rotated` (a fixed angle per context).

Labels are global and contiguous per context: context k owns labels [k*c, (k+1)*c) with c classes per
context, so a scenario maps logits and labels by slicing (core/scenarios.py). The hot path samples
index batches on the device; augmentation (padded random crop, horizontal flip) is batched tensor work.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from core.config import BenchmarkConfig

# Per-channel statistics of the training sets (CIFAR images are standardised; MNIST-like stay in [0, 1]).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DATA_LAYOUT = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashion-mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    "cifar100": "cifar-100-python/{train,test,meta}",
}


class DataError(ValueError):
    """A data set that cannot be loaded, phrased as one line that names the fix."""


@dataclass
class Split:
    """One data set as float tensors (N, C, H, W) and integer labels, before it is cut into contexts."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: list[str]


@dataclass
class Context:
    """One context (task): its data on the device and the global label range it owns."""

    index: int
    classes: list[int]  # original class ids of the data set, for people to read
    labels: tuple[int, int]  # global label range [lo, hi)
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    permutation: Tensor | None = None  # flat pixel permutation, applied on the fly (no copy per context)
    context_ids: Tensor | None = None  # per-sample context of a mixed stage (joint training)

    def inputs(self, x: Tensor) -> Tensor:
        if self.permutation is None:
            return x
        return x.flatten(1)[:, self.permutation].view_as(x)

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]


@dataclass
class Benchmark:
    name: str
    protocol: str
    contexts: list[Context]
    classes_per_context: int
    input_shape: tuple[int, int, int]
    class_names: list[str] = field(default_factory=list)

    @property
    def total_classes(self) -> int:
        return len(self.contexts) * self.classes_per_context

    def joint(self) -> Context:
        """Every context's training data in one stage (joint training), inputs already transformed."""
        xs = [c.inputs(c.x_train) for c in self.contexts]
        ids = [torch.full((c.n_train,), c.index, dtype=torch.long, device=c.y_train.device) for c in self.contexts]
        lo, hi = self.contexts[0].labels[0], self.contexts[-1].labels[1]
        return Context(
            index=len(self.contexts) - 1,
            classes=[k for c in self.contexts for k in c.classes],
            labels=(lo, hi),
            x_train=torch.cat(xs),
            y_train=torch.cat([c.y_train for c in self.contexts]),
            x_test=self.contexts[-1].x_test[:0],
            y_test=self.contexts[-1].y_test[:0],
            context_ids=torch.cat(ids),
        )


# --- Loading data sets ---------------------------------------------------------------------------


def _digits() -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    y = torch.tensor(bunch.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=0.2, stratify=bunch.target, random_state=0
    )
    idx_train, idx_test = torch.as_tensor(idx_train), torch.as_tensor(idx_test)
    return Split(x[idx_train], y[idx_train], x[idx_test], y[idx_test], [str(c) for c in range(10)])


def _torchvision(cfg: BenchmarkConfig) -> Split:
    from torchvision import datasets

    root = Path(cfg.data_dir or "data").expanduser()
    readers = {
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
        "cifar10": _CifarFilesOnly.of(datasets.CIFAR10),
        "cifar100": _CifarFilesOnly.of(datasets.CIFAR100),
    }
    reader = readers[cfg.name]
    try:
        train = reader(str(root), train=True, download=cfg.download)
        test = reader(str(root), train=False, download=False)
    except RuntimeError as e:
        if "not found" in str(e).lower():
            fix = "check your network" if cfg.download else "pass --download to fetch it"
            raise DataError(
                f"benchmark.data_dir: {cfg.name} not found in {root} (expects {root}/{DATA_LAYOUT[cfg.name]}); "
                f"{fix}, or point --data-dir at a folder that holds it"
            ) from None
        raise DataError(
            f"benchmark.data_dir: cannot read {cfg.name} from {root} ({e}); if its files are damaged, "
            f"delete them and pass --download, or point --data-dir elsewhere"
        ) from None
    # Truncated or foreign files: torchvision's IDX reader asserts on a bad header and a cut pickle raises
    # UnpicklingError; neither is a ValueError.
    except (OSError, ValueError, EOFError, KeyError, IndexError, AssertionError, pickle.UnpicklingError) as e:
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise DataError(
            f"benchmark.data_dir: the {cfg.name} files in {root} are damaged ({what}); "
            f"delete them and pass --download, or point --data-dir elsewhere"
        ) from None

    def images(ds) -> Tensor:
        data = torch.as_tensor(ds.data)
        data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # (N,H,W) or (N,H,W,C)
        return data.float().div_(255.0)

    split = Split(
        images(train), torch.as_tensor(train.targets, dtype=torch.long),
        images(test), torch.as_tensor(test.targets, dtype=torch.long),
        [str(c) for c in getattr(train, "classes", range(int(max(train.targets)) + 1))],
    )
    if cfg.name in CIFAR_STATS:
        mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in CIFAR_STATS[cfg.name])
        split.x_train = (split.x_train - mean) / std
        split.x_test = (split.x_test - mean) / std
    return split


class _CifarFilesOnly:
    """torchvision's CIFAR readers check the MD5 of every file on each load (~0.5 s) and reject copies
    re-pickled elsewhere; we check that the files are there and let the pickles speak for themselves.
    Downloads are still verified: the archive's MD5 is checked by torchvision's download step."""

    @staticmethod
    def of(base: type) -> type:
        import os
        import pickle

        class Reader(base):  # type: ignore[misc, valid-type]
            def _check_integrity(self) -> bool:
                folder = os.path.join(self.root, self.base_folder)
                names = [n for n, _ in self.train_list + self.test_list] + [self.meta["filename"]]
                return all(os.path.isfile(os.path.join(folder, n)) for n in names)

            def _load_meta(self) -> None:
                with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
                    self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]

        Reader.__name__ = base.__name__
        return Reader


def load_split(cfg: BenchmarkConfig) -> Split:
    return _digits() if cfg.name == "digits" else _torchvision(cfg)


# --- Protocols -----------------------------------------------------------------------------------


def _pad(x: Tensor, size: int | None) -> Tensor:
    if not size:
        return x
    h, w = x.shape[-2:]
    dh, dw = max(0, size - h), max(0, size - w)
    return torch.nn.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def build_benchmark(cfg: BenchmarkConfig, device: torch.device | str = "cpu", split: Split | None = None) -> Benchmark:
    """Load the data set (unless given) and cut it into contexts on `device`."""
    split = split if split is not None else load_split(cfg)
    x_train, x_test = _pad(split.x_train, cfg.pad_to), _pad(split.x_test, cfg.pad_to)
    y_train, y_test = split.y_train, split.y_test
    cpc = cfg.classes_per_context
    assert cpc is not None
    n_classes = cfg.num_classes
    contexts: list[Context] = []

    if cfg.protocol == "split":
        if cfg.class_order_seed is None:
            order = torch.arange(n_classes)
        else:
            order = torch.randperm(n_classes, generator=torch.Generator().manual_seed(cfg.class_order_seed))
        position = torch.empty(n_classes, dtype=torch.long)
        position[order] = torch.arange(n_classes)  # original class -> global label
        g_train, g_test = position[y_train], position[y_test]
        for k in range(cfg.contexts):
            lo, hi = k * cpc, (k + 1) * cpc
            tr = (g_train >= lo) & (g_train < hi)
            te = (g_test >= lo) & (g_test < hi)
            contexts.append(Context(
                k, order[lo:hi].tolist(), (lo, hi),
                x_train[tr].to(device), g_train[tr].to(device), x_test[te].to(device), g_test[te].to(device),
            ))
    else:
        gen = torch.Generator().manual_seed(cfg.class_order_seed or 0)
        x_train_dev, x_test_dev = x_train.to(device), x_test.to(device)
        for k in range(cfg.contexts):
            lo, hi = k * n_classes, (k + 1) * n_classes
            perm = None
            xtr, xte = x_train_dev, x_test_dev
            if cfg.protocol == "permuted":
                n_pixels = math.prod(x_train.shape[1:])
                # The first context sees the original images, as in van de Ven's permuted MNIST.
                perm = None if k == 0 else torch.randperm(n_pixels, generator=gen).to(device)
            else:  # rotated: materialised once, since rotating every batch would cost far more than a copy
                from torchvision.transforms.v2.functional import rotate

                angle = k * cfg.rotation_max / cfg.contexts
                xtr, xte = rotate(x_train_dev, angle), rotate(x_test_dev, angle)
            contexts.append(Context(
                k, list(range(n_classes)), (lo, hi),
                xtr, (y_train + lo).to(device), xte, (y_test + lo).to(device), permutation=perm,
            ))
    return Benchmark(cfg.name, cfg.protocol, contexts, cpc, tuple(x_train.shape[1:]), split.class_names)  # type: ignore[arg-type]


# --- Sampling and augmentation on the device -----------------------------------------------------


class BatchSampler:
    """Index batches without replacement (epoch-like passes), drawn on the device: no host sync."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        self.n, self.batch_size, self.generator, self.device = n, min(batch_size, n), generator, device
        self._perm = torch.empty(0, dtype=torch.long, device=device)
        self._pos = 0

    def next(self) -> Tensor:
        if self._pos + self.batch_size > self._perm.shape[0]:
            self._perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def augment(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop from a zero-padded image and random horizontal flip, per sample, as one gather."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx
    flip = torch.rand((n, 1, 1), generator=generator, device=x.device) < 0.5
    cols = torch.where(flip, cols.flip(-1), cols)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()
