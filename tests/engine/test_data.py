"""Tests for core/engine/data.py and core/engine/datafiles.py: tiny data sets written in their real on-disk layouts and
read through the real readers (torchvision's for MNIST-likes, core/engine/data.py's checked one for CIFAR, with
the fakes vouched for through $CLTUI_DATA_CHECKSUMS); protocols; missing and damaged files; sampling;
augmentation. What a crafted or unreadable file does is in test_data_trust.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.engine.data import BatchSampler, DataError, augment, build_benchmark, load_split
from core.engine.datafiles import REQUIRED_FILES, missing_data
from core.schema.config import BenchmarkConfig
from tests.helpers import data as fakedata

TORCHVISION_SETS = ["mnist", "fashion-mnist", "cifar10", "cifar100"]
# Per-channel mean and std of the real training sets, written out here rather than imported.
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One data folder holding all four tiny data sets; returns (root, {name: written arrays})."""
    root = tmp_path_factory.mktemp("data")
    written = {
        "mnist": fakedata.make_mnist(root, "mnist", seed=0),
        "fashion-mnist": fakedata.make_mnist(root, "fashion-mnist", seed=1),
        "cifar10": fakedata.make_cifar10(root),
        "cifar100": fakedata.make_cifar100(root),
    }
    return root, written


def cfg_for(name: str, root, **kwargs) -> BenchmarkConfig:
    contexts = kwargs.pop("contexts", 10 if name == "cifar100" else 5)
    return BenchmarkConfig(name=name, data_dir=str(root), contexts=contexts, **kwargs)


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


# --- MNIST-like data sets ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_like_split_contexts(name, data):
    root, written = data
    bench = build_benchmark(cfg_for(name, root))
    assert bench.input_shape == (1, 28, 28)
    assert len(bench.contexts) == 5 and bench.classes_per_context == 2 and bench.total_classes == 10
    assert len(bench.class_names) == 10
    for split in ("train", "test"):
        images, labels = written[name][split]
        total = 0
        for k, ctx in enumerate(bench.contexts):
            x, y = (ctx.x_train, ctx.y_train) if split == "train" else (ctx.x_test, ctx.y_test)
            assert ctx.classes == [2 * k, 2 * k + 1]
            assert ctx.labels == (2 * k, 2 * k + 2)
            keep = np.isin(labels, ctx.classes)
            assert x.dtype == torch.float32 and y.dtype == torch.long
            assert x.shape == (keep.sum(), 1, 28, 28)
            # the pixels written, scaled to [0, 1], in file order
            assert torch.allclose(x, torch.from_numpy(images[keep]).float().unsqueeze(1) / 255, atol=1e-7)
            assert torch.equal(y, torch.from_numpy(labels[keep]).long())
            assert x.min() >= 0 and x.max() <= 1
            total += len(y)
        assert total == len(labels)


def test_mnist_values_span_zero_to_one(data):
    root, _ = data
    bench = build_benchmark(cfg_for("mnist", root, contexts=1, classes_per_context=10))
    x = bench.contexts[0].x_train
    assert x.min().item() == 0.0 and x.max().item() == 1.0  # random bytes include 0 and 255


def test_class_order_seed_permutes_classes_reproducibly(data):
    root, written = data
    images, labels = written["mnist"]["train"]
    a = build_benchmark(cfg_for("mnist", root, class_order_seed=3))
    b = build_benchmark(cfg_for("mnist", root, class_order_seed=3))
    c = build_benchmark(cfg_for("mnist", root, class_order_seed=4))
    order = [k for ctx in a.contexts for k in ctx.classes]
    assert sorted(order) == list(range(10))
    assert order != list(range(10))
    assert order == [k for ctx in b.contexts for k in ctx.classes]
    assert order != [k for ctx in c.contexts for k in ctx.classes]
    for k, (ca, cb) in enumerate(zip(a.contexts, b.contexts, strict=True)):
        assert torch.equal(ca.x_train, cb.x_train) and torch.equal(ca.y_train, cb.y_train)
        # labels stay contiguous per context: the i-th class of context k gets global label 2k + i
        keep = np.isin(labels, ca.classes)
        expected = [2 * k + ca.classes.index(int(v)) for v in labels[keep]]
        assert ca.labels == (2 * k, 2 * k + 2)
        assert ca.y_train.tolist() == expected
        assert torch.allclose(ca.x_train, torch.from_numpy(images[keep]).float().unsqueeze(1) / 255)


# --- CIFAR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_split_contexts_and_standardisation(name, data, monkeypatch):
    root, written = data
    fakedata.vouch(monkeypatch, root)
    bench = build_benchmark(cfg_for(name, root))
    c = 2 if name == "cifar10" else 10
    n_contexts = 5 if name == "cifar10" else 10
    assert bench.input_shape == (3, 32, 32)
    assert len(bench.contexts) == n_contexts and bench.classes_per_context == c
    n_classes = 10 if name == "cifar10" else 100
    assert bench.class_names == [(f"class{i}" if name == "cifar10" else f"fine{i}") for i in range(n_classes)]
    mean = torch.tensor(CIFAR_MEAN[name]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD[name]).view(1, 3, 1, 1)
    for split in ("train", "test"):
        raw, labels = written[name][split]
        for k, ctx in enumerate(bench.contexts):
            x, y = (ctx.x_train, ctx.y_train) if split == "train" else (ctx.x_test, ctx.y_test)
            assert ctx.classes == list(range(k * c, (k + 1) * c))
            keep = np.isin(labels, ctx.classes)
            assert keep.sum() > 0, "every context needs samples"
            assert x.shape == (keep.sum(), 3, 32, 32) and x.dtype == torch.float32
            expected = (torch.from_numpy(raw[keep]).float().view(-1, 3, 32, 32) / 255 - mean) / std
            assert torch.allclose(x, expected, atol=1e-5)
            assert torch.equal(y, torch.from_numpy(labels[keep]).long())
    # The first training image has (255, 0, ...) in its top-left pixel and label 0 (context 0, first).
    x0 = bench.contexts[0].x_train[0, :, 0, 0]
    m, s = CIFAR_MEAN[name], CIFAR_STD[name]
    assert x0[0].item() == pytest.approx((1 - m[0]) / s[0], rel=1e-5)
    assert x0[1].item() == pytest.approx((0 - m[1]) / s[1], rel=1e-5)


def test_cifar10_pixel_255_in_channel_0():
    # The number the brief names, written out: 255 -> 1.0 -> (1 - 0.4914) / 0.2470.
    assert (1 - CIFAR_MEAN["cifar10"][0]) / CIFAR_STD["cifar10"][0] == pytest.approx(2.05911, rel=1e-4)


def test_cifar100_ten_contexts_of_ten(data, monkeypatch):
    root, _ = data
    fakedata.vouch(monkeypatch, root)
    bench = build_benchmark(cfg_for("cifar100", root))
    for k, ctx in enumerate(bench.contexts):
        assert ctx.n_train == 20 and len(ctx.y_test) == 10  # 2 train and 1 test image per class
        assert set(ctx.y_train.tolist()) == set(range(10 * k, 10 * k + 10))


# --- Permuted and rotated protocols ----------------------------------------------------------------


def test_permuted_protocol_with_padding(data):
    root, written = data
    images, labels = written["mnist"]["train"]
    bench = build_benchmark(cfg_for("mnist", root, protocol="permuted", contexts=3, pad_to=32))
    assert bench.input_shape == (1, 32, 32)
    assert bench.classes_per_context == 10 and bench.total_classes == 30
    original = torch.from_numpy(images).float().unsqueeze(1) / 255
    for k, ctx in enumerate(bench.contexts):
        assert ctx.classes == list(range(10)) and ctx.labels == (10 * k, 10 * k + 10)
        assert torch.equal(ctx.y_train, torch.from_numpy(labels).long() + 10 * k)
        # pad_to=32: the 28x28 image sits in the middle of a zero border of 2 pixels
        assert ctx.x_train.shape == (40, 1, 32, 32)
        assert torch.allclose(ctx.x_train[:, :, 2:30, 2:30], original)
        border = ctx.x_train.clone()
        border[:, :, 2:30, 2:30] = 0
        assert border.abs().sum() == 0

    first = bench.contexts[0]
    assert first.permutation is None  # the first context sees the original images
    assert torch.equal(first.inputs(first.x_train), first.x_train)
    seen = []
    for ctx in bench.contexts[1:]:
        for x in (ctx.x_train, ctx.x_test):
            shown = ctx.inputs(x)
            assert shown.shape == x.shape
            assert not torch.equal(shown, x)
            # the same pixels, moved: per image, the sorted values are equal
            assert torch.equal(shown.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
            # one fixed permutation for every image, train and test alike
            assert torch.equal(shown.flatten(1), x.flatten(1)[:, ctx.permutation])
        assert torch.equal(ctx.permutation.sort().values, torch.arange(32 * 32))
        seen.append(ctx.permutation)
    assert not torch.equal(seen[0], seen[1])  # each context its own permutation
    again = build_benchmark(cfg_for("mnist", root, protocol="permuted", contexts=3, pad_to=32))
    assert all(torch.equal(a.permutation, b.permutation) for a, b in zip(bench.contexts[1:], again.contexts[1:],
                                                                         strict=True))


def test_rotated_protocol(data):
    root, written = data
    images, labels = written["mnist"]["train"]
    bench = build_benchmark(cfg_for("mnist", root, protocol="rotated", contexts=4, rotation_max=360))
    original = torch.from_numpy(images).float().unsqueeze(1) / 255
    c0, c1, c2, _ = bench.contexts
    assert torch.allclose(c0.x_train, original)  # angle 0: unchanged
    assert not torch.allclose(c1.x_train, original)
    # 90 degrees and 180 degrees are exact on a square grid
    assert any(torch.equal(c1.x_train, torch.rot90(c0.x_train, r, (-2, -1))) for r in (1, -1))
    assert torch.equal(c2.x_train, c0.x_train.flip(-1, -2))
    assert torch.equal(c2.x_test, c0.x_test.flip(-1, -2))
    for k, ctx in enumerate(bench.contexts):
        assert torch.equal(ctx.y_train, torch.from_numpy(labels).long() + 10 * k)
        assert ctx.permutation is None and torch.equal(ctx.inputs(ctx.x_train), ctx.x_train)


# --- Missing and damaged files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_missing_data_names_the_fixes(name, tmp_path):
    empty = tmp_path / "empty"
    text = missing_data(cfg_for(name, empty))
    assert text is not None and "\n" not in text
    assert "--download" in text and "--data-dir" in text and str(empty) in text


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_missing_data_is_none_when_the_files_are_there(name, data):
    root, _ = data
    assert missing_data(cfg_for(name, root)) is None


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_missing_data_is_none_when_downloading(name, tmp_path):
    assert missing_data(cfg_for(name, tmp_path, download=True)) is None


def test_missing_data_digits_needs_no_files(tmp_path):
    assert missing_data(BenchmarkConfig(name="digits", data_dir=str(tmp_path))) is None


def test_missing_data_names_the_one_missing_file(tmp_path):
    fakedata.make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    text = missing_data(cfg_for("cifar10", tmp_path))
    assert text is not None and "test_batch" in text and "more" not in text


def test_required_files_are_what_the_fakes_write(tmp_path):
    for name, make in fakedata.MAKERS.items():
        make(tmp_path)
        assert all((tmp_path / f).is_file() for f in REQUIRED_FILES[name]), name
    # ... and the CIFAR makers vouch for every CIFAR file they wrote, from outside the data folder
    listed = json.loads(fakedata.manifest_path(tmp_path).read_text())
    assert not fakedata.manifest_path(tmp_path).is_relative_to(tmp_path)
    assert sorted(listed) == sorted(REQUIRED_FILES["cifar10"] + REQUIRED_FILES["cifar100"])
    assert all(listed[f] == fakedata.md5_of(tmp_path / f) for f in listed)


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_build_benchmark_without_files_raises_one_line(name, tmp_path):
    empty = tmp_path / "empty"
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for(name, empty))
    text = one_line(info)
    assert "--download" in text and str(empty) in text


def test_build_benchmark_with_one_mnist_file_missing(tmp_path):
    fakedata.make_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("mnist", tmp_path))
    assert "--download" in one_line(info)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGES = {
    "truncated": _truncate,
    "empty": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(b"this is not the file you are looking for\n" * 4),
}


@pytest.mark.parametrize("name, file, damage", [
    ("mnist", "MNIST/raw/train-images-idx3-ubyte", "truncated"),
    ("mnist", "MNIST/raw/train-images-idx3-ubyte", "empty"),
    ("mnist", "MNIST/raw/t10k-labels-idx1-ubyte", "garbage"),
    ("fashion-mnist", "FashionMNIST/raw/t10k-images-idx3-ubyte", "garbage"),
    ("cifar10", "cifar-10-batches-py/data_batch_3", "truncated"),
    ("cifar10", "cifar-10-batches-py/test_batch", "empty"),
    ("cifar10", "cifar-10-batches-py/batches.meta", "garbage"),
    ("cifar100", "cifar-100-python/train", "truncated"),
    ("cifar100", "cifar-100-python/meta", "empty"),
])
def test_damaged_files_raise_one_line_data_error(name, file, damage, tmp_path, monkeypatch):
    fakedata.MAKERS[name](tmp_path)
    fakedata.vouch(monkeypatch, tmp_path)  # vouches for the files as written, not as damaged afterwards
    DAMAGES[damage](tmp_path / file)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for(name, tmp_path))
    text = one_line(info)
    assert "--download" in text  # the fix: fetch the files again


# --- digits (scikit-learn, offline) ----------------------------------------------------------------


def test_digits_split():
    split = load_split(BenchmarkConfig(name="digits"))
    assert split.x_train.shape == (1437, 1, 8, 8) and split.x_test.shape == (360, 1, 8, 8)
    assert len(split.y_train) == 1437 and len(split.y_test) == 360
    assert split.x_train.dtype == torch.float32
    for x in (split.x_train, split.x_test):
        assert x.min().item() == 0.0 and x.max().item() == 1.0
    train_counts = torch.bincount(split.y_train, minlength=10)
    test_counts = torch.bincount(split.y_test, minlength=10)
    assert (train_counts > 0).all() and (test_counts > 0).all()
    # stratified: each class splits about 80 / 20
    share = test_counts.float() / (train_counts + test_counts).float()
    assert ((share - 0.2).abs() < 0.02).all()
    assert split.class_names == [str(c) for c in range(10)]


def test_split_digits_contexts_and_reproducibility():
    cfg = BenchmarkConfig(name="digits", contexts=5, classes_per_context=2)
    a, b = build_benchmark(cfg), build_benchmark(cfg)
    assert a.input_shape == (1, 8, 8) and len(a.contexts) == 5
    assert sum(ctx.n_train for ctx in a.contexts) == 1437
    assert sum(len(ctx.y_test) for ctx in a.contexts) == 360
    for k, (ca, cb) in enumerate(zip(a.contexts, b.contexts, strict=True)):
        assert ca.classes == [2 * k, 2 * k + 1]
        assert set(ca.y_train.tolist()) == set(ca.y_test.tolist()) == {2 * k, 2 * k + 1}
        for name in ("x_train", "y_train", "x_test", "y_test"):
            assert torch.equal(getattr(ca, name), getattr(cb, name)), name


def test_build_benchmark_reuses_a_given_split():
    cfg = BenchmarkConfig(name="digits", contexts=2, classes_per_context=5, class_order_seed=1)
    split = load_split(cfg)
    a, b = build_benchmark(cfg, split=split), build_benchmark(cfg)
    assert [c.classes for c in a.contexts] == [c.classes for c in b.contexts]
    assert all(torch.equal(x.x_test, y.x_test) for x, y in zip(a.contexts, b.contexts, strict=True))


# --- Sampling ------------------------------------------------------------------------------------


def _batches(n, batch_size, seed, count):
    sampler = BatchSampler(n, batch_size, torch.Generator().manual_seed(seed), torch.device("cpu"))
    return [sampler.next() for _ in range(count)]


def test_batch_sampler_covers_every_index_once_per_pass():
    batches = _batches(12, 4, seed=0, count=9)
    assert all(b.shape == (4,) and b.dtype == torch.long for b in batches)
    for p in range(3):
        seen = torch.cat(batches[3 * p: 3 * p + 3])
        assert torch.equal(seen.sort().values, torch.arange(12))
    assert not torch.equal(torch.cat(batches[:3]), torch.cat(batches[3:6]))  # a fresh order each pass


def test_batch_sampler_no_repeats_within_a_pass_when_not_divisible():
    batches = _batches(10, 4, seed=1, count=8)
    assert all(len(b) == 4 for b in batches)
    for p in range(4):  # 2 full batches per pass of 10
        seen = torch.cat(batches[2 * p: 2 * p + 2])
        assert len(seen.unique()) == 8 and seen.min() >= 0 and seen.max() < 10


def test_batch_sampler_batch_larger_than_data():
    for b in _batches(5, 128, seed=0, count=3):
        assert torch.equal(b.sort().values, torch.arange(5))


def test_batch_sampler_is_deterministic_for_a_seed():
    a, b, c = _batches(50, 8, 3, 20), _batches(50, 8, 3, 20), _batches(50, 8, 4, 20)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


# --- Augmentation ----------------------------------------------------------------------------------


def _shift(x, sy, sx):
    """out[..., r, c] = x[..., r + sy, c + sx], zero where that falls outside: a crop from a padded copy."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    rs, re_ = max(0, -sy), min(h, h - sy)
    cs, ce = max(0, -sx), min(w, w - sx)
    out[..., rs:re_, cs:ce] = x[..., rs + sy: re_ + sy, cs + sx: ce + sx]
    return out


def _distinct_images(n, c=3, h=6, w=8):
    """Every pixel of every image different and non-zero, so a crop identifies its shift and flip."""
    return (torch.arange(n * c * h * w, dtype=torch.float32) + 1).view(n, c, h, w)


def _match(out, x, pad):
    """For each sample, the one (sy, sx, flipped) that turns its input into its output; fails otherwise."""
    options = [(sy, sx, f) for sy in range(-pad, pad + 1) for sx in range(-pad, pad + 1) for f in (False, True)]
    hits = torch.stack([
        (out == (_shift(x, sy, sx).flip(-1) if f else _shift(x, sy, sx))).flatten(1).all(1)
        for sy, sx, f in options
    ])  # (options, samples)
    per_sample = hits.sum(0)
    assert (per_sample == 1).all(), f"samples that are not one (flipped) shifted copy: {(per_sample != 1).nonzero()}"
    return [options[i] for i in hits.int().argmax(0).tolist()]


def test_augment_is_a_shifted_maybe_flipped_copy():
    x = _distinct_images(300)
    out = augment(x, torch.Generator().manual_seed(0), pad=4)
    assert out.shape == x.shape and out.dtype == x.dtype
    found = _match(out, x, pad=4)
    flips = sum(f for _, _, f in found)
    assert 0.4 * len(x) <= flips <= 0.6 * len(x)
    assert {sy for sy, _, _ in found} == set(range(-4, 5))
    assert {sx for _, sx, _ in found} == set(range(-4, 5))


def test_augment_without_padding_only_flips():
    x = _distinct_images(50)
    out = augment(x, torch.Generator().manual_seed(1), pad=0)
    found = _match(out, x, pad=0)
    assert {(sy, sx) for sy, sx, _ in found} == {(0, 0)}
    assert 0 < sum(f for _, _, f in found) < len(x)


def test_augment_is_deterministic_for_a_seed():
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = augment(x, torch.Generator().manual_seed(5))
    b = augment(x, torch.Generator().manual_seed(5))
    c = augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
