"""Benchmarks: data sets loaded once as tensors on the run's device and cut into contexts by a protocol.

Data sets: `digits` (scikit-learn's bundled 8x8 handwritten digits, offline), `mnist`,
`fashion-mnist` (their IDX files, core/engine/idx.py), `cifar10`, `cifar100` (read here from torchvision's
on-disk layout: no file is unpickled before its MD5 matches torchvision's list or the user's own list in
$CLTUI_DATA_CHECKSUMS, and then only by an unpickler that can build arrays and nothing else), and `folder`, your
own images, one subfolder per class (core/engine/imagefolder.py). Files are downloaded only when asked.
Protocols: `split` (disjoint classes per context), `permuted` (a fixed pixel permutation per context, the first
one the identity), `rotated` (a fixed angle per context).

Labels are global and contiguous per context: context k owns labels [k*c, (k+1)*c) with c classes per
context, so a scenario maps logits and labels by slicing (core/engine/scenarios.py). The hot path samples
index batches on the device; augmentation (padded random crop, horizontal flip) is batched tensor work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.engine.cifar import _cifar
from core.engine.datafiles import DataError, check_readable, data_root, not_found, permission_denied
from core.engine.idx import TORCHVISION_FOLDER, IdxError, find_idx, read_idx_set
from core.engine.imagefolder import load_image_folder
from core.engine.scenarios import context_labels
from core.schema.config import BenchmarkConfig
from core.schema.limits import BENCHMARK_INFO

# The class names of the IDX sets, as torchvision lists them.
IDX_CLASSES = {
    "mnist": tuple(f"{i} - {w}" for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}
# Per-channel statistics of the training sets (CIFAR images are standardised; MNIST-like stay in [0, 1]).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


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
    x_val: Tensor | None = None  # held-out training samples (benchmark.validation), never trained on
    y_val: Tensor | None = None

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
        return self.contexts[-1].labels[1]  # contexts own consecutive label ranges from 0

    def joint(self) -> Context:
        """Every context's training data in one stage (joint training), inputs already transformed."""
        xs = [c.inputs(c.x_train) for c in self.contexts]
        ids = [torch.full((c.n_train,), c.index, dtype=torch.long, device=c.y_train.device) for c in self.contexts]
        lo, hi = self.contexts[0].labels[0], self.contexts[-1].labels[1]
        return Context(
            index=len(self.contexts) - 1,
            classes=[k for c in self.contexts if c.n_train for k in c.classes],
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
    root = data_root(cfg)
    if cfg.name in TORCHVISION_FOLDER:
        return _mnist_like(cfg, root)
    train, test = _cifar(cfg, root)
    split = Split(
        torch.as_tensor(train.data).permute(0, 3, 1, 2).float().div_(255.0),  # (N, H, W, C) bytes
        torch.as_tensor(train.targets, dtype=torch.long),
        torch.as_tensor(test.data).permute(0, 3, 1, 2).float().div_(255.0),
        torch.as_tensor(test.targets, dtype=torch.long),
        [str(c) for c in train.classes],
    )
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in CIFAR_STATS[cfg.name])
    split.x_train = (split.x_train - mean) / std
    split.x_test = (split.x_test - mean) / std
    return split


def _mnist_like(cfg: BenchmarkConfig, root: Path) -> Split:
    """MNIST and Fashion-MNIST from their four IDX files, wherever they are (core/engine/idx.py): plain bytes,
    nothing in them can run. torchvision only downloads them, when asked."""
    check_readable(cfg, root)
    files, _ = find_idx(cfg.name, root)
    if not files and cfg.download:
        from torchvision import datasets

        reader = datasets.MNIST if cfg.name == "mnist" else datasets.FashionMNIST
        try:
            reader(str(root), train=True, download=True)  # into torchvision's layout, test files included
        except (OSError, RuntimeError) as e:
            raise DataError(f"benchmark.data_dir: cannot download {cfg.name} into {root} ({e}); check your "
                            f"network, or point --data-dir at a folder that holds it") from None
        files, _ = find_idx(cfg.name, root)
    if not files:
        raise not_found(cfg, root)
    try:
        x_train, y_train, x_test, y_test = read_idx_set(files)
    except PermissionError as e:  # os.access said yes (e.g. root, or ACLs) but open() said no
        raise DataError(permission_denied(e.filename or root)) from None
    except (OSError, IdxError) as e:
        raise DataError(f"benchmark.data_dir: the {cfg.name} files in {files[0].parent} are damaged ({e}); "
                        f"delete them and pass --download, or point --data-dir elsewhere") from None
    shape = BENCHMARK_INFO[cfg.name]["shape"][1:]
    classes = BENCHMARK_INFO[cfg.name]["classes"]
    if x_train.shape[1:] != shape or max(int(y_train.max()), int(y_test.max())) >= classes:
        raise DataError(f"benchmark.data_dir: the files in {files[0].parent} hold {x_train.shape[1]}x"
                        f"{x_train.shape[2]} images with labels up to {int(y_train.max())}, not {cfg.name}'s "
                        f"{shape[0]}x{shape[1]} images of {classes} classes; point --data-dir at {cfg.name}")

    def images(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.copy()).unsqueeze(1).float().div_(255.0)

    return Split(images(x_train), torch.from_numpy(y_train.astype(np.int64)), images(x_test),
                 torch.from_numpy(y_test.astype(np.int64)), list(IDX_CLASSES[cfg.name]))


SINE_SEED = 0  # the waves' samples are a property of the benchmark: every run (and both teachers of a merge) sees them
SINE_TRAIN, SINE_TEST, SINE_NOISE = 1000, 500, 0.1  # samples per wave; the training targets' noise (std)


def sine_wave(k: int) -> tuple[float, float]:
    """Wave k of the sine benchmark, y = sin(f x + phase) on x in [-pi, pi]: (f, phase) = (1 + k/2, 2 pi k / 5)."""
    return 1 + k / 2, 2 * math.pi * k / BENCHMARK_INFO["sine"]["classes"]


def sine_contexts(cfg: BenchmarkConfig) -> list[Context]:
    """The regression toy of issue 15 (the merging talk's noisy sines): context k is wave k, its training targets
    noisy (N(0, SINE_NOISE^2)), its test targets the wave itself; inputs (N, 1, 1, 1), targets float (N,)."""
    g = torch.Generator().manual_seed(SINE_SEED)
    contexts = []
    for k in range(cfg.contexts):
        f, phase = sine_wave(k)
        x_train = (torch.rand(SINE_TRAIN, generator=g) * 2 - 1) * math.pi
        x_test = torch.linspace(-math.pi, math.pi, SINE_TEST)
        y_train = torch.sin(f * x_train + phase) + SINE_NOISE * torch.randn(SINE_TRAIN, generator=g)
        y_test = torch.sin(f * x_test + phase)
        contexts.append(Context(k, [k], (k, k + 1), x_train.view(-1, 1, 1, 1), y_train, x_test.view(-1, 1, 1, 1),
                                y_test))
    return contexts


def _folder(cfg: BenchmarkConfig) -> Split:
    """Your own images (core/engine/imagefolder.py), standardised per channel by the training images' mean and
    standard deviation, computed here at every load (the cache holds the images, not their statistics)."""
    x_train, y_train, x_test, y_test, class_names = load_image_folder(cfg)
    split = Split(torch.from_numpy(x_train).float().div_(255.0), torch.from_numpy(y_train),
                  torch.from_numpy(x_test).float().div_(255.0), torch.from_numpy(y_test), class_names)
    mean = split.x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = split.x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min_(1e-6)  # a constant channel stays finite
    split.x_train = (split.x_train - mean) / std
    split.x_test = (split.x_test - mean) / std
    return split


def load_split(cfg: BenchmarkConfig) -> Split:
    if cfg.name == "folder":
        return _folder(cfg)
    return _digits() if cfg.name == "digits" else _torchvision(cfg)


# --- Protocols -----------------------------------------------------------------------------------


def _pad(x: Tensor, size: int | None) -> Tensor:
    if not size:
        return x
    h, w = x.shape[-2:]
    dh, dw = max(0, size - h), max(0, size - w)
    return torch.nn.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def class_order(n_classes: int, seed: int | None, shuffle: str = "torch") -> Tensor:
    """The original classes in the order they are learnt: natural without a seed, else shuffled by torch's
    randperm or, as PyCIL and the class-IL papers do, by numpy (`np.random.seed(seed)`, then a permutation of
    0..n-1; seed 1993 gives their CIFAR-100 order)."""
    if seed is None:
        return torch.arange(n_classes)
    if shuffle == "numpy":
        return torch.from_numpy(np.random.RandomState(seed).permutation(n_classes)).long()
    return torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed))


def build_benchmark(cfg: BenchmarkConfig, device: torch.device | str = "cpu", split: Split | None = None) -> Benchmark:
    """Load the data set (unless given) and cut it into contexts on `device`."""
    if cfg.regression:
        contexts = sine_contexts(cfg)
        for c in contexts:
            c.x_train, c.y_train, c.x_test, c.y_test = (t.to(device) for t in (c.x_train, c.y_train, c.x_test,
                                                                                c.y_test))
        return _finish(cfg, contexts, 1, BENCHMARK_INFO[cfg.name]["shape"],
                       [f"wave {k}" for k in range(BENCHMARK_INFO[cfg.name]["classes"])])
    split = split if split is not None else load_split(cfg)
    x_train, x_test = _pad(split.x_train, cfg.pad_to), _pad(split.x_test, cfg.pad_to)
    y_train, y_test = split.y_train, split.y_test
    cpc = cfg.classes_per_context
    assert cpc is not None
    n_classes = cfg.num_classes
    contexts: list[Context] = []

    if cfg.protocol == "split":
        order = class_order(n_classes, cfg.class_order_seed, cfg.class_order_shuffle)
        position = torch.empty(n_classes, dtype=torch.long)
        position[order] = torch.arange(n_classes)  # original class -> global label
        g_train, g_test = position[y_train], position[y_test]
        for k in range(cfg.contexts):
            lo, hi = context_labels(k, cpc, cfg.first_context_classes)
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
    return _finish(cfg, contexts, cpc, tuple(x_train.shape[1:]), split.class_names)  # type: ignore[arg-type]


def _finish(cfg: BenchmarkConfig, contexts: list[Context], cpc: int, shape: tuple[int, int, int],
            class_names: list[str]) -> Benchmark:
    if cfg.validation:
        hold_out_validation(contexts, cfg.validation)
    if cfg.learn_contexts is not None:  # a teacher that knows only some contexts: the others keep their test data
        for c in contexts:
            if c.index not in cfg.learn_contexts:
                c.x_train, c.y_train = c.x_train[:0], c.y_train[:0]
    return Benchmark(cfg.name, cfg.protocol, contexts, cpc, shape, class_names)


VALIDATION_SEED = 0  # the held-out samples are a property of the benchmark, the same for every run's seed


def hold_out_validation(contexts: list[Context], share: float) -> None:
    """Move `share` of each class of each context's training data (at least one sample of a class that has two)
    into the context's validation set. Everything that trains reads `x_train`, so the held-out samples are never
    trained on, nor stored in a buffer, nor used for a Fisher: they exist only as `x_val`."""
    chooser = torch.Generator().manual_seed(VALIDATION_SEED)
    for context in contexts:
        labels = context.y_train.cpu()
        held = []
        regression = labels.is_floating_point()  # numeric targets: one stratum
        for label in [None] if regression else labels.unique().tolist():
            members = torch.arange(len(labels)) if regression else (labels == label).nonzero().flatten()
            n = len(members)
            k = min(n - 1, max(1, round(share * n))) if n > 1 else 0
            held.append(members[torch.randperm(n, generator=chooser)[:k]])
        mask = torch.zeros(len(labels), dtype=torch.bool)
        mask[torch.cat(held) if held else torch.empty(0, dtype=torch.long)] = True
        mask = mask.to(context.y_train.device)
        context.x_val, context.y_val = context.x_train[mask], context.y_train[mask]
        context.x_train, context.y_train = context.x_train[~mask], context.y_train[~mask]


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


class StreamSampler:
    """Task-free streams (van de Ven's main_task_free.py): each step's batch drawn from a mixture of contexts
    that the trainer never names to the method. The mixture is a function of the step, known on the host; the
    draws (each sample's context, then an index into it, with replacement) are made on the device: no host sync.

    - academic: context k for steps [k*I, (k+1)*I): sharp boundaries, as a task-free method would see them.
    - fuzzy: van de Ven's FuzzyBoundaryStream, which is circular: the boundaries sit half a context later,
      at b_k = I/2 + k*I, and the one at b_k hands over from context k to context k+1, the last one from the
      last context back to context 0. So context 0 is drawn for the first and the last half-context, every
      other context from the middle of one block to the middle of the next, and the stream ends on context 0.
      Around each boundary the chance of drawing the next context rises linearly from 0 to 1 over `fuzziness`
      steps centred on it (the reference's `fuzziness` is half that width).
    - fuzzy-linear: the same blend around b_k = k*I, k >= 1: no wrap-around, the stream ends on the last context.
    - random: every batch from one context drawn uniformly at each step.
    """

    def __init__(self, contexts: list[Context], kind: str, iterations: int, fuzziness: int, batch_size: int,
                 generator: torch.Generator, device: torch.device):
        self.kind, self.iterations, self.fuzziness = kind, iterations, fuzziness
        self.batch_size, self.generator, self.contexts = batch_size, generator, len(contexts)
        self.x = torch.cat([c.inputs(c.x_train) for c in contexts])  # every context's inputs as the network sees them
        self.y = torch.cat([c.y_train for c in contexts])
        sizes = [c.n_train for c in contexts]
        self.sizes = torch.tensor(sizes, dtype=torch.float32, device=device)
        self.offsets = torch.tensor([sum(sizes[:k]) for k in range(len(sizes))], device=device)
        self.device = device
        self.record = False  # keep what is drawn, for a method that consolidates on it (`drawn`)
        self.window: list[tuple[Tensor, Tensor]] = []  # (indices into x, contexts) since the last `drawn`

    def boundaries(self) -> list[tuple[int, int, int]]:
        """(step of the boundary, context before, context after) of a fuzzy stream, in order."""
        n, it = self.contexts, self.iterations
        if self.kind == "fuzzy":
            return [(it // 2 + k * it, k, (k + 1) % n) for k in range(n)] if n > 1 else []
        return [(k * it, k - 1, k) for k in range(1, n)]

    def mix(self, step: int) -> tuple[int, int, float]:
        """At `step` (from the stream's start): contexts a and b, and the chance of drawing b (0: only a)."""
        if self.kind not in ("fuzzy", "fuzzy-linear"):
            k = min(step // self.iterations, self.contexts - 1)
            return k, k, 0.0
        half, t = self.fuzziness / 2, step + 0.5
        current = 0
        for boundary, before, after in self.boundaries():
            if abs(t - boundary) < half:
                return before, after, (t - (boundary - half)) / self.fuzziness
            if t > boundary:
                current = after
        return current, current, 0.0

    def seen(self, step: int) -> int:
        """The last context that can have been drawn by `step`: the classes a class-IL loss lets compete."""
        if self.kind == "random":
            return self.contexts - 1
        if self.kind not in ("fuzzy", "fuzzy-linear"):
            return min(step // self.iterations, self.contexts - 1)
        reached = [after for boundary, _, after in self.boundaries() if step + 0.5 > boundary - self.fuzziness / 2]
        return max([0, *reached])

    def next(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs, global labels and each sample's context for `step`."""
        n = self.batch_size
        if self.kind == "random":
            ids = torch.randint(self.contexts, (1,), generator=self.generator, device=self.device).expand(n)
        else:
            a, b, p = self.mix(step)
            ids = torch.full((n,), a, dtype=torch.long, device=self.device)
            if b != a:
                ids = torch.where(torch.rand(n, generator=self.generator, device=self.device) < p, b, ids)
        u = torch.rand(n, generator=self.generator, device=self.device)
        idx = self.offsets[ids] + (u * self.sizes[ids]).long().clamp_max_(self.sizes[ids].long() - 1)
        if self.record:
            self.window.append((idx, ids))
        return self.x[idx], self.y[idx], ids

    def drawn(self) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs, labels and contexts of every sample drawn since the last call."""
        idx = torch.cat([i for i, _ in self.window])
        ids = torch.cat([c for _, c in self.window])
        self.window.clear()
        return self.x[idx], self.y[idx], ids


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
