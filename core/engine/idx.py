"""The IDX files of MNIST and Fashion-MNIST, found wherever their four files are and read as plain bytes.

The four files (`{train,t10k}-{images-idx3,labels-idx1}-ubyte`) are looked for, each plain or gzipped, in
torchvision's layout (`<dir>/MNIST/raw/`, `<dir>/FashionMNIST/raw/`) and side by side in `<dir>` itself, as
the original site, Kaggle and Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) ship them.
The first folder holding all four is used. An IDX file is a header (a magic number naming the element type and
the number of dimensions, then each dimension as a big-endian uint32) followed by the raw bytes: nothing in it
can run, and a header that does not match the bytes is a damaged file, said in one line.

Torch-free (numpy only): the CLI's early check finds the files with `find_idx` before a worker starts.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TORCHVISION_FOLDER = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}
UBYTE = 0x08  # the element type of every file of these data sets
MAX_BYTES = 256 * 1024 * 1024  # a decompressed file larger than this is no MNIST-like file (a gzip bomb is refused)


class IdxError(ValueError):
    """A file that is not the IDX file its name says (truncated, foreign, or of the wrong shape)."""


def candidates(name: str, root: Path) -> list[Path]:
    """The folders looked in, in order: torchvision's layout, then the data folder itself."""
    return [root / TORCHVISION_FOLDER[name], root]


def in_folder(folder: Path, file: str) -> Path | None:
    """`file` in `folder`, plain or gzipped (the plain one first); None when neither is there."""
    for path in (folder / file, folder / f"{file}.gz"):
        if os.path.lexists(path):
            return path
    return None


def find_idx(name: str, root: Path) -> tuple[list[Path], list[Path]]:
    """(the four files, []) from the first folder that holds all four; else ([], the files missing from the
    folder that holds the most of them, torchvision's on a tie)."""
    best: list[Path] | None = None
    for folder in candidates(name, root):
        found = [in_folder(folder, f) for f in IDX_FILES]
        if all(p is not None for p in found):
            return [p for p in found if p is not None], []
        missing = [folder / f for f, p in zip(IDX_FILES, found, strict=True) if p is None]
        if best is None or len(missing) < len(best):
            best = missing
    return [], best or []


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it ends in .gz (at most MAX_BYTES)."""
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    else:
        try:
            with gzip.open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            if isinstance(e, PermissionError | FileNotFoundError):
                raise
            raise IdxError(f"{path.name} is not a readable gzip file ({e})") from None
    if len(data) > MAX_BYTES:
        raise IdxError(f"{path.name} is larger than {MAX_BYTES // 2**20} MiB")
    return data


def parse_idx(data: bytes, dims: int, what: str) -> np.ndarray:
    """An IDX array of unsigned bytes with `dims` dimensions, checked against its header."""
    if len(data) < 4 + 4 * dims:
        raise IdxError(f"{what}: {len(data)} bytes, too short for an IDX header")
    zero, kind, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or kind != UBYTE or ndim != dims:
        raise IdxError(f"{what}: not an IDX file of {dims}-D unsigned bytes (header {data[:4].hex()})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    start, size = 4 + 4 * dims, int(np.prod(shape, dtype=np.int64))
    if len(data) - start != size:
        raise IdxError(f"{what}: the header says {'x'.join(map(str, shape))} ({size} bytes), the file holds "
                       f"{len(data) - start}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def read_idx_set(files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images (N, H, W), train labels (N,), test images, test labels) from the four files of
    `find_idx`, in IDX_FILES' order; IdxError names the file that does not fit."""
    arrays = [parse_idx(read_bytes(path), 3 if "images" in path.name else 1, path.name) for path in files]
    x_train, y_train, x_test, y_test = arrays
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        if len(images) != len(labels):
            raise IdxError(f"{len(images)} images but {len(labels)} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise IdxError(f"training images are {x_train.shape[1:]}, test images {x_test.shape[1:]}")
    return x_train, y_train, x_test, y_test
