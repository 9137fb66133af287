"""MNIST-like data sets read from their four IDX files wherever they are (torchvision's layout, or side by side,
plain or gzipped, as Debian, Kaggle and the original site ship them), and real Fashion-MNIST where the machine has
Debian's `dataset-fashion-mnist` package (.ci/run installs it; elsewhere those tests skip and say why)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.engine.data import build_benchmark, load_split
from core.engine.datafiles import DataError, missing_data
from core.schema.config import BenchmarkConfig
from tests.helpers import data as fakedata
from tests.helpers.cli import assert_bad_input, cli

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real Fashion-MNIST is not in {FASHION} (apt-get install dataset-fashion-mnist)")
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def side_by_side(tmp_path: Path, name: str = "fashion-mnist", gz: bool = True) -> tuple[Path, dict]:
    """The fake data set of tests/helpers/data.py moved out of torchvision's layout into one flat folder."""
    written = fakedata.make_mnist(tmp_path / "made", name=name)
    raw = next((tmp_path / "made").glob("*/raw"))
    flat = tmp_path / "flat"
    flat.mkdir()
    for file in IDX:
        if gz:
            with gzip.open(flat / f"{file}.gz", "wb") as f:
                f.write((raw / file).read_bytes())
        else:
            shutil.copy(raw / file, flat / file)
    return flat, written


def cfg(name: str, root: Path) -> BenchmarkConfig:
    return BenchmarkConfig(name=name, data_dir=str(root))  # type: ignore[arg-type]


@pytest.mark.parametrize("gz", [True, False])
def test_the_four_files_side_by_side_load_as_in_torchvisions_layout(tmp_path, gz):
    flat, written = side_by_side(tmp_path, gz=gz)
    assert missing_data(cfg("fashion-mnist", flat)) is None
    split = load_split(cfg("fashion-mnist", flat))
    in_layout = load_split(cfg("fashion-mnist", tmp_path / "made"))
    assert np.array_equal(split.x_train.numpy(), in_layout.x_train.numpy())
    assert np.array_equal((split.x_train[:, 0].numpy() * 255).round().astype(np.uint8), written["train"][0])
    assert split.y_test.tolist() == written["test"][1].tolist()
    assert split.class_names[0] == "T-shirt/top"


def test_a_folder_without_the_files_names_both_places_it_looked(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")  # one of four: still missing three
    text = missing_data(cfg("mnist", tmp_path))
    assert text is not None and "\n" not in text
    assert text.startswith("benchmark.data_dir: mnist not found in")
    assert "side by side" in text and "--download" in text


def test_a_damaged_gzip_or_header_is_one_line_that_names_the_file(tmp_path):
    flat, _ = side_by_side(tmp_path)
    (flat / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError) as info:
        load_split(cfg("fashion-mnist", flat))
    text = str(info.value)
    assert "\n" not in text and "damaged" in text and "t10k-labels-idx1-ubyte.gz" in text
    with gzip.open(flat / "t10k-labels-idx1-ubyte.gz", "wb") as f:  # a header that promises more than it holds
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 99, 1, 2, 3]))
    with pytest.raises(DataError) as info:
        load_split(cfg("fashion-mnist", flat))
    assert "99" in str(info.value) and "t10k-labels" in str(info.value)


def test_the_cli_runs_split_mnist_on_files_side_by_side(tmp_path, runs_env, runs_dir):
    flat, _ = side_by_side(tmp_path, name="mnist", gz=True)
    result = cli("run", "split-mnist", "--data-dir", str(flat), "--set", "train.iterations=3", "--quiet",
                 env=runs_env)
    assert result.exit_code == 0, result.output
    (run,) = runs_dir.iterdir()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and len(record["acc_matrix"]) == 5


def test_the_cli_refuses_a_folder_without_the_files_before_a_worker(tmp_path, runs_env, runs_dir):
    result = cli("run", "split-fashion-mnist", "--data-dir", str(tmp_path), env=runs_env)
    assert_bad_input(result, "benchmark.data_dir", "fashion-mnist not found", "side by side")
    assert list(runs_dir.iterdir()) == []


# --- Real Fashion-MNIST ------------------------------------------------------------------------------


@needs_fashion
def test_real_fashion_mnist_loads_sixty_thousand_images_of_ten_classes():
    split = load_split(cfg("fashion-mnist", FASHION))
    assert tuple(split.x_train.shape) == (60000, 1, 28, 28) and tuple(split.x_test.shape) == (10000, 1, 28, 28)
    assert split.y_train.bincount().tolist() == [6000] * 10 and split.y_test.bincount().tolist() == [1000] * 10
    assert 0.27 < float(split.x_train.mean()) < 0.30  # Fashion-MNIST's known pixel mean, 0.286
    benchmark = build_benchmark(cfg("fashion-mnist", FASHION), "cpu", split=split)
    assert [c.classes for c in benchmark.contexts] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert benchmark.contexts[0].n_train == 12000


@needs_fashion
def test_a_short_split_fashion_mnist_run_learns_each_context(runs_env, runs_dir):
    result = cli("run", "split-fashion-mnist", "--data-dir", str(FASHION), "--set", "train.iterations=60",
                 "--scenario", "task", "--quiet", env=runs_env)
    assert result.exit_code == 0, result.output
    (run,) = runs_dir.iterdir()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished"
    # Task-IL, 60 iterations a context: each pair of clothing classes is told apart when it is learned (chance 0.5)
    matrix = record["acc_matrix"]
    assert min(matrix[k][k] for k in range(5)) > 0.85, matrix
    assert record["metrics"]["final_avg_acc"] > 0.75, matrix
