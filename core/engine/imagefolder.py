"""Your own images (`benchmark.name = "folder"`), decoded once into arrays and kept in a cache, so that the next
run on the same folder reads one file instead of decoding every image again.

Each image is read with Pillow, converted to grayscale (L) or RGB as `benchmark.channels` says, resized so that its
shorter side is `benchmark.image_size` (bilinear, antialiased when shrinking) and cut to the centre square. The
layout, the classes and the held-out test images are core/schema/imagescan.py's. The cache is
`$CLTUI_CACHE_DIR/image-folders/<key>.npz` (default `${XDG_CACHE_HOME:-~/.cache}/cltui`), keyed by the folder's
resolved path, the image size, the channels, the test share and every image's path, size and modification time:
a changed, added or removed image makes a new key. It is written atomically and read without unpickling
(`allow_pickle=False`); a damaged or foreign cache file is ignored and written again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from core.engine.datafiles import DataError
from core.schema.config import BenchmarkConfig
from core.schema.imagescan import FolderError, ImageFile, Listing, list_folder

CACHE_VERSION = 1  # bump when what the cache holds, or how images are decoded, changes


def cache_dir() -> Path:
    """`$CLTUI_CACHE_DIR`, else `$XDG_CACHE_HOME/cltui`, else `~/.cache/cltui`."""
    own = os.environ.get("CLTUI_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "cltui"


def cache_path(cfg: BenchmarkConfig, listing: Listing) -> Path:
    key = hashlib.sha256(f"{CACHE_VERSION}\0{listing.root}\0{cfg.image_size}\0{cfg.channels}\0{cfg.test_share}\0"
                         f"{listing.fingerprint()}".encode(errors="surrogateescape")).hexdigest()
    return cache_dir() / "image-folders" / f"{key}.npz"


def decode(path: Path, side: int, channels: int) -> np.ndarray:
    """One image as uint8 (side, side) for grayscale or (side, side, 3) for RGB."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        w, h = image.size
        if (w, h) != (side, side):
            scale = side / min(w, h)
            w, h = max(side, round(w * scale)), max(side, round(h * scale))
            image = image.resize((w, h), Image.Resampling.BILINEAR)  # Pillow widens the filter when shrinking
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side))
        return np.asarray(image, dtype=np.uint8)


def decode_all(root: Path, groups: list[list[ImageFile]], side: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, side, side) uint8 and labels (N,) int64 of every class's files, class by class."""
    x = np.empty((sum(map(len, groups)), side, side, channels), dtype=np.uint8)
    y = np.empty(len(x), dtype=np.int64)
    i = 0
    for label, files in enumerate(groups):
        for f in files:
            try:
                x[i] = decode(root / f.path, side, channels).reshape(side, side, channels)
            except Exception as e:  # noqa: BLE001 - an image plugin may raise anything on a damaged file
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                raise DataError(f"benchmark.data_dir: {root / f.path} is not a readable image ({why}); remove or "
                                f"replace it") from None
            y[i] = label
            i += 1
    return x.transpose(0, 3, 1, 2).copy(), y


def read_cache(path: Path, cfg: BenchmarkConfig, counts: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when there are none or they are not what this folder gives (a damaged file,
    another version's): those are decoded again."""
    shape = (cfg.channels, cfg.image_size, cfg.image_size)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except Exception:  # noqa: BLE001 - whatever a damaged file raises, it is decoded again
        return None
    for part, n in zip(("train", "test"), counts, strict=True):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8 or x.shape != (n, *shape) or y.dtype != np.int64 or y.shape != (n,):
            return None
        if n and not 0 <= y.min() <= y.max() < (cfg.classes or 0):
            return None
    return arrays


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays beside `path`, then rename over it: a reader never sees half a file. A cache that cannot
    be written (a read-only home, a full disk) is only a cache: the run goes on without it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_image_folder(cfg: BenchmarkConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(x_train, y_train, x_test, y_test, class names): images uint8 (N, C, S, S), labels int64, from the cache
    when this folder was decoded before with these settings. DataError (one line) for a folder that changed
    into one this run cannot use."""
    assert cfg.data_dir and cfg.classes and cfg.image_size and cfg.channels  # resolved by validation
    try:
        listing = list_folder(Path(cfg.data_dir))
    except FolderError as e:
        raise DataError(f"benchmark.data_dir: {e}") from None
    if len(listing.classes) != cfg.classes:
        raise DataError(f"benchmark.data_dir: {listing.root} has {len(listing.classes)} classes, this run "
                        f"{cfg.classes}; point --data-dir at the folder the run was made with")
    train, test = listing.split(cfg.test_share)
    for name, files in zip(listing.classes, test, strict=True):
        if not files:
            raise DataError(f"benchmark.data_dir: class {name} in {listing.root} has too few images to hold one "
                            f"out as its test image; add images, or give {listing.root}/test/<class>/ folders")
    counts = (sum(map(len, train)), sum(map(len, test)))
    path = cache_path(cfg, listing)
    arrays = read_cache(path, cfg, counts)
    if arrays is None:
        x_train, y_train = decode_all(listing.root, train, cfg.image_size, cfg.channels)
        x_test, y_test = decode_all(listing.root, test, cfg.image_size, cfg.channels)
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        write_cache(path, arrays)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], listing.classes
