"""Your own images as a benchmark (benchmark.name = "folder"): core/schema/imagescan.py (layout, classes, headers,
resolved into the config), core/engine/imagefolder.py (decoding, the cache) through core/engine/data.py's
load_split, bad folders as one line through `cltui run`, a tiny run end to end, `cltui data check`, and real
Fashion-MNIST images written as PNGs read back as the IDX files' pixels."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.engine import imagefolder
from core.engine.data import load_split
from core.engine.datafiles import DataError
from core.schema.config import BenchmarkConfig, ConfigError, validate_config
from core.schema.imagescan import list_folder
from tests.helpers.cli import assert_one_line_error, cli

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The decoded-image cache in this test's folder, never the user's (workers inherit it)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("CLTUI_CACHE_DIR", str(path))
    return path / "image-folders"


def pixel(label: int, index: int) -> int:
    return 40 * label + 5 * index  # every image of the folder tells apart which it is


def write_folder(root: Path, classes: str = "abcd", per_class: int = 6, side: int = 8, mode: str = "L") -> Path:
    """`per_class` constant images of `side` x `side` in each class folder, its pixel `pixel(label, index)`."""
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new(mode, (side, side), pixel(label, i) if mode == "L" else (pixel(label, i), 0, 255)).save(
                root / name / f"{i:02d}.png")
    return root


def folder_config(root: Path, **kwargs) -> BenchmarkConfig:
    return BenchmarkConfig(name="folder", data_dir=str(root), contexts=kwargs.pop("contexts", 2), **kwargs)


# --- the scan, resolved into the config ----------------------------------------------------------------------


def test_a_folder_resolves_its_classes_size_and_channels_into_the_config(tmp_path):
    root = write_folder(tmp_path / "images")
    (root / "a" / "notes.txt").write_text("not an image")  # ignored, as are hidden files
    (root / ".hidden").mkdir()
    cfg = folder_config(root)
    assert (cfg.classes, cfg.image_size, cfg.channels) == (4, 8, 1)
    assert cfg.classes_per_context == 2 and cfg.input_shape == (1, 8, 8)
    # what the config records is enough: it validates with the folder gone (an old run.json)
    data = cfg.model_dump(mode="json")
    for image in root.rglob("*.png"):
        image.unlink()
    assert BenchmarkConfig.model_validate(data).classes == 4


def test_the_named_data_sets_take_no_folder_settings():
    with pytest.raises(ConfigError, match=r"^benchmark\.image_size: only benchmark\.name=folder"):
        validate_config({"benchmark": {"name": "digits", "image_size": 28}})
    with pytest.raises(ConfigError, match=r"^benchmark\.data_dir: benchmark\.name folder reads your own images"):
        validate_config({"benchmark": {"name": "folder"}})


# --- loading: shapes, the split, normalisation, resizing, layouts -------------------------------------------


def test_the_loader_gives_every_class_its_images_split_the_same_way_every_time(tmp_path):
    root = write_folder(tmp_path / "images")
    cfg = folder_config(root)
    x_train, y_train, x_test, y_test, names = imagefolder.load_image_folder(cfg)
    assert names == ["a", "b", "c", "d"]
    assert x_train.shape == (20, 1, 8, 8) and x_test.shape == (4, 1, 8, 8) and x_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [5] * 4 and np.bincount(y_test).tolist() == [1] * 4
    # each image is where its label says, and no image is in both sets
    seen = set()
    for x, y in ((x_train, y_train), (x_test, y_test)):
        for image, label in zip(x, y, strict=True):
            index = (int(image[0, 0, 0]) - 40 * int(label)) // 5
            assert 0 <= index < 6 and (label, index) not in seen
            seen.add((int(label), index))
    assert len(seen) == 24
    # the held-out images are a property of the folder: the same for a new config (any seed), and a new process
    again = imagefolder.load_image_folder(folder_config(root, class_order_seed=3))
    assert np.array_equal(again[2], x_test)


def test_load_split_standardises_by_the_training_images_statistics(tmp_path):
    root = write_folder(tmp_path / "images")
    cfg = folder_config(root)
    split = load_split(cfg)
    raw_train, _, raw_test, _, _ = imagefolder.load_image_folder(cfg)
    pixels = torch.from_numpy(raw_train).float() / 255
    mean, std = pixels.mean(), pixels.std()
    assert abs(split.x_train.mean().item()) < 1e-5 and split.x_train.std().item() == pytest.approx(1, abs=1e-4)
    assert torch.allclose(split.x_test * std + mean, torch.from_numpy(raw_test).float() / 255, atol=1e-5)
    assert split.class_names == ["a", "b", "c", "d"] and split.y_train.dtype == torch.long


def test_colour_images_of_several_sizes_are_resized_to_the_most_common_square(tmp_path):
    root = write_folder(tmp_path / "images", classes="ab", per_class=5, side=8, mode="RGB")
    Image.new("RGBA", (16, 12), (255, 0, 0, 128)).save(root / "a" / "wide.png")  # shorter side 12 -> 8, centre
    cfg = folder_config(root, contexts=1)
    assert (cfg.image_size, cfg.channels) == (8, 3)
    x_train, _, x_test, _, _ = imagefolder.load_image_folder(cfg)
    assert x_train.shape[1:] == (3, 8, 8) and x_test.shape[1:] == (3, 8, 8)
    red = [x for x in (*x_train, *x_test) if x[0].min() == 255]
    assert len(red) == 1 and red[0][1:].max() == 0  # the RGBA image, its alpha dropped


def test_mixed_modes_load_once_benchmark_channels_says_which(tmp_path):
    root = write_folder(tmp_path / "images", classes="ab")
    write_folder(root, classes="c", mode="RGB")
    with pytest.raises(ValueError, match="mixes grayscale and colour"):
        folder_config(root)
    cfg = folder_config(root, channels=1, contexts=1)
    assert imagefolder.load_image_folder(cfg)[0].shape[1:] == (1, 8, 8)


def test_a_folder_with_its_own_test_folder_tests_on_it(tmp_path):
    write_folder(tmp_path / "images" / "train", per_class=4)
    write_folder(tmp_path / "images" / "test", per_class=2)
    cfg = folder_config(tmp_path / "images")
    x_train, _, x_test, y_test, names = imagefolder.load_image_folder(cfg)
    assert names == ["a", "b", "c", "d"] and len(x_train) == 16 and len(x_test) == 8
    assert np.bincount(y_test).tolist() == [2] * 4


# --- the cache --------------------------------------------------------------------------------------------------


def test_the_second_load_reads_the_cache_and_a_changed_image_is_decoded_again(tmp_path, cache, monkeypatch):
    root = write_folder(tmp_path / "images")
    cfg = folder_config(root)
    first = imagefolder.load_image_folder(cfg)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))

    def refuse(*args):
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(imagefolder, "decode", refuse)
        second = imagefolder.load_image_folder(cfg)  # from the cache: nothing is decoded
    assert all(np.array_equal(a, b) for a, b in zip(first[:4], second[:4], strict=True))

    Image.new("L", (8, 8), 255).save(root / "a" / "00.png")  # a changed image: a new key, decoded again
    stat = (root / "a" / "00.png").stat()
    os.utime(root / "a" / "00.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = imagefolder.load_image_folder(cfg)
    assert len(list(cache.glob("*.npz"))) == 2
    assert 255 in np.concatenate([third[0], third[2]]).ravel() and 255 not in np.concatenate([first[0], first[2]])


def test_a_damaged_cache_file_is_ignored_and_written_again(tmp_path, cache):
    root = write_folder(tmp_path / "images")
    cfg = folder_config(root)
    first = imagefolder.load_image_folder(cfg)
    path = imagefolder.cache_path(cfg, list_folder(root))
    path.write_bytes(b"PK\x03\x04 not a zip at all")
    again = imagefolder.load_image_folder(cfg)
    assert np.array_equal(first[0], again[0])
    with np.load(path, allow_pickle=False) as z:  # written again, whole
        assert np.array_equal(z["x_train"], first[0])


def test_a_folder_changed_under_a_run_is_one_line(tmp_path):
    root = write_folder(tmp_path / "images")
    cfg = folder_config(root)
    write_folder(root, classes="e")
    with pytest.raises(DataError, match=r"^benchmark\.data_dir: .* has 5 classes, this run 4"):
        imagefolder.load_image_folder(cfg)


# --- through the CLI: bad folders, a run, data check ---------------------------------------------------------


def bad_folder(root: Path, kind: str) -> Path:
    if kind == "no classes":
        root.mkdir(parents=True)
        Image.new("L", (8, 8)).save(root / "loose.png")
    elif kind == "one class":
        write_folder(root, classes="a")
    elif kind == "unreadable":
        write_folder(root)
        (root / "b" / "broken.png").write_bytes(b"\x89PNG but not really")
    elif kind == "mixed":
        write_folder(root, classes="ab")
        write_folder(root, classes="c", mode="RGB")
    elif kind == "no test images":
        write_folder(root / "train")
        write_folder(root / "test", classes="abc")
        (root / "test" / "d").mkdir()
    elif kind == "other test classes":
        write_folder(root / "train")
        write_folder(root / "test", classes="abce")
    elif kind == "too few":
        write_folder(root, classes="ab", per_class=1)
    return root


BAD = {"no classes": "holds no class folders", "one class": "holds one class folder (a)",
       "unreadable": "broken.png is not a readable image", "mixed": "mixes grayscale and colour images",
       "no test images": "holds no test images", "other test classes": "test has no folder for d",
       "too few": "too few to hold one out", "missing": "not found"}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_folder_is_one_line_and_exit_2_and_leaves_no_run(tmp_path, kind):
    root = tmp_path / "images"
    if kind != "missing":
        bad_folder(root, kind)
    runs = tmp_path / "runs"
    result = cli("run", "split-digits", "--set", "benchmark.name=folder", "--set", "benchmark.contexts=2",
                 "--data-dir", root, "--runs-dir", runs)
    assert_one_line_error(result, "benchmark.data_dir:", BAD[kind])
    assert not runs.exists()
    check = cli("data", "check", root)
    assert_one_line_error(check, BAD[kind])


def test_data_check_describes_the_folder_and_its_command_runs_it(tmp_path):
    root = write_folder(tmp_path / "images")
    result = cli("data", "check", root)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "4 classes in class folders, 24 images" in out and "20% of each class" in out
    assert "8x8 (24)" in out and "L (24, grayscale)" in out and "unreadable: none" in out
    assert "4 classes: 2 contexts of 2 (or 4 of 1)" in out
    command = out.strip().splitlines()[-1].strip()
    assert command.startswith("cltui run split-digits --set benchmark.name=folder --data-dir ")
    # the printed command runs, as printed (a few iterations)
    runs = tmp_path / "runs"
    run = cli(*shlex.split(command)[1:], "--set", "train.iterations=5", "--runs-dir", runs, "-q")
    assert run.exit_code == 0, run.output
    (run_dir,) = runs.iterdir()
    benchmark = json.loads((run_dir / "run.json").read_text())["config"]["benchmark"]
    recorded = {k: benchmark[k] for k in ("name", "classes", "image_size", "channels", "contexts",
                                          "classes_per_context")}
    assert recorded == {"name": "folder", "classes": 4, "image_size": 8, "channels": 1, "contexts": 2,
                        "classes_per_context": 2}


def test_data_check_names_a_folder_of_a_named_data_set(tmp_path):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    result = cli("data", "check", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "holds fashion-mnist" in result.stdout
    assert f"cltui run split-fashion-mnist --data-dir {tmp_path / 'data'}" in result.stdout


# --- real images --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"no Fashion-MNIST in {FASHION} (Debian's dataset-fashion-mnist)")
def test_fashion_mnist_written_as_pngs_loads_as_the_idx_pixels(tmp_path):
    from core.engine.data import IDX_CLASSES
    from core.engine.idx import find_idx, read_idx_set

    files, _ = find_idx("fashion-mnist", FASHION)
    x_train, y_train, x_test, y_test = read_idx_set(files)
    names = [n.replace("/", "-") for n in IDX_CLASSES["fashion-mnist"]]
    subset = {"train": (x_train[:300], y_train[:300]), "test": (x_test[:100], y_test[:100])}
    for part, (images, labels) in subset.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = tmp_path / "fm" / part / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
    cfg = folder_config(tmp_path / "fm", contexts=5)
    assert (cfg.classes, cfg.image_size, cfg.channels) == (10, 28, 1)
    split = load_split(cfg)
    order = sorted(range(10), key=lambda k: names[k])  # the folder's classes, in sorted name order
    for x, y, (images, labels) in ((split.x_train, split.y_train, subset["train"]),
                                   (split.x_test, split.y_test, subset["test"])):
        # class by class, each class's images in file-name (= IDX) order
        expected = np.concatenate([images[labels == k] for k in order])
        assert y.tolist() == [order.index(int(k)) for k in np.concatenate([labels[labels == k] for k in order])]
        pixels = torch.tensor(expected).float().unsqueeze(1) / 255
        train_pixels = torch.tensor(subset["train"][0]).float() / 255
        mean, std = train_pixels.mean(), train_pixels.std()
        assert torch.allclose(x * std + mean, pixels, atol=1e-5)
