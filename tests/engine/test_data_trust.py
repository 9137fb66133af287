"""What a data folder may not do to us (core/engine/data.py, cifar.py, datafiles.py): no CIFAR file is unpickled
before its MD5 matches torchvision's list or the user's own list in $CLTUI_DATA_CHECKSUMS (kept outside the data
folder), and even then only by an unpickler that builds arrays and refuses every other callable. Files that
exist but cannot be read are called what they are, by the loader and by the CLI's torch-free early check.

The crafted pickles here would create a marker file when loaded with plain `pickle`; each test checks
first that they really do (so a passing test means the loader stopped them), then that the loader never
creates it.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import core.engine.cifar
from cltui.cli.main import app
from core.engine.cifar import CHECKSUMS_ENV, _CifarUnpickler
from core.engine.data import DataError, build_benchmark, load_split
from core.engine.datafiles import REQUIRED_FILES, missing_data
from core.schema.config import BenchmarkConfig
from tests.helpers import data as fakedata
from tests.helpers.cli import assert_bad_input

BATCH = "cifar-10-batches-py/data_batch_1"


@pytest.fixture(autouse=True)
def no_checksum_list(monkeypatch):
    """Start every test without the user's checksum list, whatever the environment says."""
    monkeypatch.delenv(CHECKSUMS_ENV, raising=False)


def cfg_for(name: str, root: Path, **kwargs) -> BenchmarkConfig:
    return BenchmarkConfig(name=name, data_dir=str(root), contexts=10 if name == "cifar100" else 5, **kwargs)


def one_line(info: pytest.ExceptionInfo) -> str:
    text = str(info.value)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


# --- Crafted pickles -------------------------------------------------------------------------------


class OpenForWriting:
    """Unpickles as open(marker, "w"): creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


class ShellCommand:
    """Unpickles as os.system("touch marker")."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


PAYLOADS = {"open": OpenForWriting, "os.system": ShellCommand}


def craft(path: Path, payload: type, marker: Path) -> None:
    """Replace a CIFAR batch with one whose unpickling runs the payload; check that it really would."""
    blob = pickle.dumps({"data": payload(marker), "labels": [0]}, protocol=4)
    proof = marker.with_name(marker.name + "-proof")
    pickle.loads(pickle.dumps(payload(proof), protocol=4))  # the same payload, plain pickle, aimed elsewhere
    assert proof.exists(), "the crafted payload would not do anything: the tests below prove nothing"
    proof.unlink()
    path.write_bytes(blob)


@pytest.fixture
def cifar(tmp_path) -> Path:
    """A fake CIFAR-10 in tmp_path/data, vouched for in tmp_path/data.cltui-checksums.json (not yet used)."""
    root = tmp_path / "data"
    fakedata.make_cifar10(root)
    return root


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_crafted_batch_fails_its_checksum_and_runs_nothing(payload, cifar, tmp_path):
    marker = tmp_path / "MARKER"
    craft(cifar / BATCH, PAYLOADS[payload], marker)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    text = one_line(info)
    assert text.startswith("benchmark.data_dir:") and BATCH in text and "MD5" in text
    assert "torchvision's CIFAR-10" in text and "--download" in text and CHECKSUMS_ENV in text
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_crafted_batch_fails_even_with_the_others_vouched_for(payload, cifar, tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    manifest = fakedata.vouch(monkeypatch, cifar)  # lists the original data_batch_1, not the crafted one
    craft(cifar / BATCH, PAYLOADS[payload], marker)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    text = one_line(info)
    assert BATCH in text and "MD5" in text and str(manifest) in text
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_vouched_for_crafted_batch_is_still_refused_by_the_unpickler(payload, cifar, tmp_path, monkeypatch):
    # The user (or someone who can write their checksum list) vouched for the crafted file: the checksum
    # passes, and the restricted unpickler is the wall that holds.
    marker = tmp_path / "MARKER"
    craft(cifar / BATCH, PAYLOADS[payload], marker)
    fakedata.vouch_for(cifar, cifar / BATCH)
    fakedata.vouch(monkeypatch, cifar)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    text = one_line(info)
    assert BATCH in text and "refused" in text and "--download" in text
    assert not marker.exists()


def test_the_unpickler_allows_arrays_and_refuses_everything_else():
    def load(obj, protocol=4):
        return _CifarUnpickler(io.BytesIO(pickle.dumps(obj, protocol=protocol)), encoding="latin1").load()

    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (4, 5):  # _reconstruct, and _frombuffer under protocol 5
        back = load({"data": x, "labels": [1, 2], "names": {"a"}}, protocol)
        assert np.array_equal(back["data"], x) and back["data"].dtype == np.uint8
        assert back["labels"] == [1, 2] and back["names"] == {"a"}
    for forbidden in (eval, os.system, print, pickle.loads, Path, np.load):
        with pytest.raises(pickle.UnpicklingError):
            load(forbidden)


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings (BINSTRING opcodes), as in the pickles CIFAR ships."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        size = len(raw)
        if size < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([size]))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", size))
        self.write(raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def test_a_python_2_pickle_as_cifar_ships_loads(cifar, monkeypatch):
    # The real files: protocol 2, byte strings decoded as latin1, numpy 1's `numpy.core.multiarray` name.
    fakedata.vouch(monkeypatch, cifar)
    before = load_split(cfg_for("cifar10", cifar))
    path = cifar / BATCH
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(pickle.loads(path.read_bytes()))
    blob = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob and b"_codecs" not in blob
    path.write_bytes(blob)
    fakedata.vouch_for(cifar, path)
    after = load_split(cfg_for("cifar10", cifar))
    assert torch.equal(before.x_train, after.x_train) and torch.equal(before.y_train, after.y_train)


def test_checksums_are_torchvisions_class_attributes(cifar, monkeypatch):
    # No list needed when the files are the ones torchvision's class names: pretend the fakes are.
    from torchvision import datasets

    md5 = {Path(f).name: fakedata.md5_of(cifar / f) for f in REQUIRED_FILES["cifar10"]}
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]]
                                                         for i in range(1, 6)])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": md5["batches.meta"]})
    split = load_split(cfg_for("cifar10", cifar))
    assert split.x_train.shape == (50, 3, 32, 32) and split.class_names[0] == "class0"


def test_each_file_is_hashed_once_per_load(cifar, monkeypatch):
    fakedata.vouch(monkeypatch, cifar)
    calls = []
    real = core.engine.cifar.hashlib.md5

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(core.engine.cifar.hashlib, "md5", counting)
    load_split(cfg_for("cifar10", cifar))
    assert len(calls) == len(REQUIRED_FILES["cifar10"])


def test_a_file_re_pickled_with_protocol_5_loads_when_vouched_for(cifar, monkeypatch):
    fakedata.vouch(monkeypatch, cifar)
    before = load_split(cfg_for("cifar10", cifar))
    path = cifar / BATCH
    path.write_bytes(pickle.dumps(pickle.loads(path.read_bytes()), protocol=5))
    fakedata.vouch_for(cifar, path)
    after = load_split(cfg_for("cifar10", cifar))
    assert torch.equal(before.x_train, after.x_train) and torch.equal(before.y_train, after.y_train)


# --- Damaged files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vouched, word", [(False, "MD5"), (True, "damaged")],
                         ids=["fails-its-checksum", "vouched-for-is-damaged"])
def test_a_truncated_file_is_one_line(cifar, monkeypatch, vouched, word):
    """Cut short: an official file fails its checksum; one the user vouched for fails as damaged."""
    fakedata.vouch(monkeypatch, cifar)
    path = cifar / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    if vouched:
        fakedata.vouch_for(cifar, path)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    text = one_line(info)
    assert "cifar-10-batches-py/test_batch" in text and word in text and "--download" in text


def test_a_vouched_for_file_of_the_wrong_shape_is_damaged(cifar, monkeypatch):
    fakedata.vouch(monkeypatch, cifar)
    path = cifar / BATCH
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}, protocol=4))
    fakedata.vouch_for(cifar, path)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    assert BATCH in one_line(info) and "damaged" in one_line(info)


# --- The checksum list -----------------------------------------------------------------------------


def test_a_checksum_list_inside_the_data_folder_is_refused(cifar, monkeypatch):
    inside = cifar / "checksums.json"
    inside.write_text(fakedata.manifest_path(cifar).read_text())
    monkeypatch.setenv(CHECKSUMS_ENV, str(inside))
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    text = one_line(info)
    assert text.startswith(f"${CHECKSUMS_ENV}") and "inside the data folder" in text and str(cifar) in text


def test_a_checksum_list_that_links_into_the_data_folder_is_refused(cifar, tmp_path, monkeypatch):
    inside = cifar / "cifar-10-batches-py" / "checksums.json"
    inside.write_text(fakedata.manifest_path(cifar).read_text())
    link = tmp_path / "looks-outside.json"
    link.symlink_to(inside)
    monkeypatch.setenv(CHECKSUMS_ENV, str(link))
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    assert "inside the data folder" in one_line(info)


@pytest.mark.parametrize("content, words", [
    (None, ["does not exist"]),
    ("{not json", ["not a readable JSON file"]),
    ('["a list"]', ["one JSON object"]),
    ('{"cifar-10-batches-py/data_batch_1": "xyz"}', ["32 hex digits", "data_batch_1"]),
])
def test_a_bad_checksum_list_is_one_line_naming_the_variable(content, words, cifar, tmp_path, monkeypatch):
    path = tmp_path / "mine.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(CHECKSUMS_ENV, str(path))
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    text = one_line(info)
    assert text.startswith(f"${CHECKSUMS_ENV}") and str(path) in text
    for word in words:
        assert word in text


def test_checksum_list_keys_are_paths_relative_to_the_data_folder(cifar, tmp_path, monkeypatch):
    import json

    listed = json.loads(fakedata.manifest_path(cifar).read_text())
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({f"./{k}": v.upper() for k, v in listed.items()}))  # ./ and upper case: fine
    monkeypatch.setenv(CHECKSUMS_ENV, str(path))
    assert load_split(cfg_for("cifar10", cifar)).x_train.shape == (50, 3, 32, 32)


# --- Files that exist but cannot be read -----------------------------------------------------------


MNIST_IMAGES = "MNIST/raw/train-images-idx3-ubyte"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
@pytest.mark.parametrize("name, file", [("mnist", MNIST_IMAGES), ("cifar10", BATCH)])
def test_a_file_without_read_permission_says_so(name, file, tmp_path, monkeypatch):
    fakedata.MAKERS[name](tmp_path)
    fakedata.vouch(monkeypatch, tmp_path)
    (tmp_path / file).chmod(0)
    try:
        with pytest.raises(DataError) as info:
            build_benchmark(cfg_for(name, tmp_path))
        expected = (f"benchmark.data_dir: cannot read {tmp_path / file} (permission denied); fix its "
                    f"permissions or point --data-dir elsewhere")
        assert one_line(info) == expected
        assert missing_data(cfg_for(name, tmp_path)) == expected
    finally:
        (tmp_path / file).chmod(0o644)


@pytest.mark.parametrize("name, file", [("mnist", MNIST_IMAGES), ("cifar10", BATCH)])
def test_unreadable_per_os_access_is_reported_before_a_worker_starts(name, file, tmp_path, monkeypatch):
    # As root, chmod 000 does not stop reading; os.access is what the check asks, so make it say no.
    fakedata.MAKERS[name](tmp_path)
    target = str(tmp_path / file)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: str(p) != target and real(p, mode, **kw))
    for download in (False, True):  # a download would not fix permissions either
        text = missing_data(cfg_for(name, tmp_path, download=download))
        assert text == (f"benchmark.data_dir: cannot read {target} (permission denied); fix its permissions "
                        f"or point --data-dir elsewhere")
    with pytest.raises(DataError) as info:  # the worker's loader says the same
        build_benchmark(cfg_for(name, tmp_path))
    assert one_line(info) == text


def test_mnist_permission_error_while_reading_says_permission_denied(tmp_path, monkeypatch):
    # os.access may say yes where open() says no (ACLs, root squash): the IDX reader's open() fails.
    import core.engine.idx as idx_reader

    fakedata.make_mnist(tmp_path)
    target = str(tmp_path / MNIST_IMAGES)

    def guarded_open(path, *args, **kwargs):
        if str(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(idx_reader, "open", guarded_open, raising=False)  # shadows the builtin there only
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("mnist", tmp_path))
    text = one_line(info)
    assert f"cannot read {target} (permission denied)" in text and "damaged" not in text


def test_cifar_permission_error_while_reading_says_permission_denied(cifar, monkeypatch):
    fakedata.vouch(monkeypatch, cifar)
    target = cifar / BATCH
    real = Path.open

    def guarded_open(self, *args, **kwargs):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for("cifar10", cifar))
    assert one_line(info).startswith(f"benchmark.data_dir: cannot read {target} (permission denied)")


@pytest.mark.parametrize("name, file", [("mnist", MNIST_IMAGES), ("fashion-mnist",
                                         "FashionMNIST/raw/t10k-labels-idx1-ubyte"), ("cifar10", BATCH),
                                        ("cifar100", "cifar-100-python/meta")])
def test_a_folder_where_a_file_should_be(name, file, tmp_path, monkeypatch):
    fakedata.MAKERS[name](tmp_path)
    fakedata.vouch(monkeypatch, tmp_path)
    (tmp_path / file).unlink()
    (tmp_path / file).mkdir()
    expected = f"benchmark.data_dir: cannot read {tmp_path / file} (a folder, where a file should be)"
    for download in (False, True):
        text = missing_data(cfg_for(name, tmp_path, download=download))
        assert text is not None and "\n" not in text and text.startswith(expected)
    with pytest.raises(DataError) as info:
        build_benchmark(cfg_for(name, tmp_path))
    assert one_line(info).startswith(expected)


# --- Through the CLI -------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str]):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})


def test_cli_checksum_mismatch_is_bad_input_and_leaves_no_run(cifar, tmp_path, runs_env, runs_dir):
    # The CLI's torch-free check passes (every file is there); the worker hashes them and refuses.
    marker = tmp_path / "MARKER"
    craft(cifar / BATCH, OpenForWriting, marker)
    result = cli("run", "split-cifar10", "--data-dir", str(cifar), "--set", "train.iterations=1",
                 "--set", "model.kind=mlp", env=runs_env)
    assert_bad_input(result, "benchmark.data_dir", BATCH, "MD5", "--download")
    assert list(runs_dir.iterdir()) == []
    assert not marker.exists()


def test_cli_folder_instead_of_a_file_is_bad_input_before_a_worker(tmp_path, runs_env, runs_dir):
    fakedata.make_mnist(tmp_path / "data")
    (tmp_path / "data" / MNIST_IMAGES).unlink()
    (tmp_path / "data" / MNIST_IMAGES).mkdir()
    result = cli("run", "split-mnist", "--data-dir", str(tmp_path / "data"), env=runs_env)
    assert_bad_input(result, "cannot read", MNIST_IMAGES.split("/")[-1], "a folder")
    assert list(runs_dir.iterdir()) == []
