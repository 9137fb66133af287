"""Your own images as a benchmark (`benchmark.name = "folder"`): a folder's layout, classes and image headers,
read without decoding a pixel and without torch, so that validation resolves the folder's classes, image size and
channels (and refuses a bad folder in one line) before a worker starts. `cltui data check DIR` prints the same
scan; core/engine/imagefolder.py decodes the images.

Two layouts, as torchvision's ImageFolder reads them:

- `DIR/<class>/<image>`: `test_share` of each class is held out as the test set, stratified and seeded (the same
  images for every run and seed);
- `DIR/train/<class>/<image>` and `DIR/test/<class>/<image>`: its own test folder, the same class names in both.

Classes are in sorted folder-name order, images in sorted name order. Hidden files and folders are ignored, and so
are files without an image extension and folders inside a class folder. This is the only file-system access the
schema does, and only for `folder`.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.schema.limits import MAX_IMAGE_SIDE

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
LAYOUT_FIX = "--data-dir DIR with one subfolder of images per class"  # how every line below says the fix
DEFAULT_TEST_SHARE = 0.2
SPLIT_SEED = 0  # the held-out test images are a property of the folder, the same for every run and seed
MAX_IMAGES = 10_000_000  # a typo (--data-dir /) is refused before millions of headers are read
# Modes whose images hold one channel; every other mode (RGB, RGBA, P, CMYK, YCbCr, ...) is read as RGB.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class FolderError(ValueError):
    """A folder that cannot be a benchmark, as one line naming the folder (or the file) and the fix. `field` is
    the benchmark key it is about: data_dir, unless a value given for classes, image_size or channels is."""

    def __init__(self, message: str, field: str = "data_dir") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImageFile:
    path: str  # relative to the folder, with "/"
    size: int  # bytes
    mtime_ns: int


@dataclass
class Listing:
    """The folder's classes and image files, from names and stat alone."""

    root: Path  # resolved
    classes: list[str]
    train: list[list[ImageFile]]  # per class; with no test folder, the images the test set is held out of
    test: list[list[ImageFile]] | None  # per class, from DIR/test; None: held out of `train`
    ignored: int = 0  # files without an image extension, and folders inside class folders

    @property
    def layout(self) -> str:
        return "class folders" if self.test is None else "train and test folders"

    @property
    def files(self) -> list[ImageFile]:
        return [f for group in (*self.train, *(self.test or [])) for f in group]

    def split(self, test_share: float) -> tuple[list[list[ImageFile]], list[list[ImageFile]]]:
        """(training images, test images) per class: the test folder's, or `held_out` of each class, chosen by a
        generator seeded with SPLIT_SEED and the class name, so a class's split does not move when a class is
        added, and is the same for every run and seed."""
        if self.test is not None:
            return self.train, self.test
        train, test = [], []
        for name, files in zip(self.classes, self.train, strict=True):
            chosen = set(random.Random(f"{SPLIT_SEED}/{name}").sample(range(len(files)),
                                                                      held_out(len(files), test_share)))
            train.append([f for i, f in enumerate(files) if i not in chosen])
            test.append([f for i, f in enumerate(files) if i in chosen])
        return train, test

    def fingerprint(self) -> str:
        """sha256 of every image's relative path, size and modification time: what a change to the folder changes."""
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode(errors="surrogateescape"))
        return digest.hexdigest()


@dataclass
class Scan:
    """A listing and what the images' headers say: sizes (width, height) and modes, and the files that are not
    readable images."""

    listing: Listing
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    unreadable: dict[str, str] = field(default_factory=dict)  # relative path -> why
    first_of_mode: dict[str, str] = field(default_factory=dict)  # mode -> an image of it, to name in a message

    @property
    def channels(self) -> int | None:
        """1 when every readable image is grayscale, 3 when every one is colour, None when they are mixed."""
        found = {channels_of(mode) for mode in self.modes}
        return found.pop() if len(found) == 1 else None

    @property
    def side(self) -> int:
        """The shorter side of the most common image size (the larger size on a tie): the default image_size."""
        (w, h), _ = max(self.sizes.items(), key=lambda item: (item[1], item[0]))
        return min(w, h)

    def problem(self, channels: int | None, test_share: float) -> FolderError | None:
        """The first reason these images cannot be a benchmark, or None. `channels`: the value given for
        benchmark.channels (None: the images' own, so mixed modes are a problem)."""
        root = self.listing.root
        if self.unreadable:
            path, why = next(iter(self.unreadable.items()))
            more = f" (and {len(self.unreadable) - 1} more files)" if len(self.unreadable) > 1 else ""
            return FolderError(f"{root / path} is not a readable image ({why}){more}; remove or replace it")
        if channels is None and self.channels is None:
            gray = next(m for m in self.first_of_mode if channels_of(m) == 1)
            colour = next(m for m in self.first_of_mode if channels_of(m) == 3)
            return FolderError(f"{root} mixes grayscale and colour images ({self.first_of_mode[gray]} is {gray}, "
                               f"{self.first_of_mode[colour]} is {colour}); convert them to one mode, or set "
                               f"benchmark.channels=1 or 3 to convert every image to it")
        if self.listing.test is None:
            for name, files in zip(self.listing.classes, self.listing.train, strict=True):
                if held_out(len(files), test_share) == 0:
                    return FolderError(f"class {name} in {root} has {len(files)} image, too few to hold one out as "
                                       f"its test image; add images, or give {root}/test/<class>/ folders")
        return None


def channels_of(mode: str) -> int:
    return 1 if mode in GRAY_MODES else 3


def held_out(n: int, share: float) -> int:
    """Test images held out of a class of `n` images: `share` of them rounded, at least one, and never all of
    them (0 for a class of one image, which cannot be split)."""
    return min(n - 1, max(1, round(share * n))) if n > 1 else 0


def _visible(entries: list[os.DirEntry[str]]) -> list[os.DirEntry[str]]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return _visible(list(it))
    except PermissionError:
        raise FolderError(f"cannot read {folder} (permission denied); fix its permissions or point "
                          f"{LAYOUT_FIX}") from None
    except NotADirectoryError:
        raise FolderError(f"{folder} is a file, not a folder; pass {LAYOUT_FIX}") from None
    except FileNotFoundError:
        raise FolderError(f"{folder} not found; pass {LAYOUT_FIX}") from None
    except OSError as e:
        raise FolderError(f"cannot read {folder} ({e.strerror or e}); pass {LAYOUT_FIX}") from None


def _class_folders(folder: Path) -> dict[str, Path]:
    return {e.name: Path(e.path) for e in _entries(folder) if e.is_dir()}


def _read_classes(dirs: dict[str, Path], classes: list[str], prefix: str, what: str,
                  budget: int = MAX_IMAGES) -> tuple[list[list[ImageFile]], int]:
    """The image files directly in each class folder, and how many other entries there were (ignored)."""
    images: list[list[ImageFile]] = []
    ignored = 0
    for name in classes:
        files = []
        for entry in _entries(dirs[name]):
            if not entry.is_file() or os.path.splitext(entry.name)[1].lower() not in EXTENSIONS:
                ignored += 1
                continue
            stat = entry.stat()
            files.append(ImageFile(f"{prefix}{name}/{entry.name}", stat.st_size, stat.st_mtime_ns))
        if not files:
            raise FolderError(f"{dirs[name]} holds no {what} ({', '.join(sorted(EXTENSIONS))}); every class needs "
                              f"some")
        budget -= len(files)
        if budget < 0:
            raise FolderError(f"{dirs[name].parent} holds more than {MAX_IMAGES:,} images; pass {LAYOUT_FIX}")
        images.append(files)
    return images, ignored


def list_folder(root: Path) -> Listing:
    """The folder's layout, classes and image files (names and stat only); FolderError for a folder that is
    missing, unreadable, has no class folders or only one, a class folder without images, or a test folder whose
    classes are not the training folder's."""
    root = root.expanduser()
    top = _class_folders(root)
    split = "train" in top and "test" in top
    train_dirs = _class_folders(top["train"]) if split else top
    where = root / "train" if split else root
    if not train_dirs:
        raise FolderError(f"{where} holds no class folders; put each class's images in a folder of its own: "
                          f"{where}/<class>/<image>")
    if len(train_dirs) == 1:
        (name,) = train_dirs
        hint = (f"; for {root}/train/<class>/ give {root}/test/<class>/ too, or point --data-dir at {root}/train"
                if name == "train" else "")
        raise FolderError(f"{where} holds one class folder ({name}); a benchmark needs at least two classes{hint}")
    classes = sorted(train_dirs)
    test_dirs = _class_folders(top["test"]) if split else None
    if test_dirs is not None and set(test_dirs) != set(classes):
        only_train, only_test = sorted(set(classes) - set(test_dirs)), sorted(set(test_dirs) - set(classes))
        which = (f"{root}/test has no folder for {', '.join(only_train[:3])}" if only_train
                 else f"{root}/test has classes {', '.join(only_test[:3])} that {root}/train has not")
        raise FolderError(f"{which}; give train and test the same class folders")
    train, ignored = _read_classes(train_dirs, classes, "train/" if split else "", "images")
    test: list[list[ImageFile]] | None = None
    if test_dirs is not None:
        test, skipped = _read_classes(test_dirs, classes, "test/", "test images", MAX_IMAGES - sum(map(len, train)))
        ignored += skipped
    return Listing(root.resolve(), classes, train, test, ignored)


def read_header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode from an image's header: Pillow reads no pixel data until asked."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size, image.mode


_SCANS: dict[Path, tuple[str, Scan]] = {}  # the latest scan of each folder, by its listing's fingerprint


def scan_folder(root: Path) -> Scan:
    """`list_folder`, and every image's header. A folder scanned before in this process, unchanged since, is not
    read again (validating the configs of a study scans once)."""
    listing = list_folder(root)
    fingerprint = listing.fingerprint()
    known = _SCANS.get(listing.root)
    if known is not None and known[0] == fingerprint:
        return known[1]
    scan = Scan(listing)
    for f in listing.files:
        try:
            size, mode = read_header(listing.root / f.path)
        except Exception as e:  # noqa: BLE001 - an image plugin may raise anything on a damaged file
            scan.unreadable[f.path] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            continue
        scan.sizes[size] += 1
        scan.modes[mode] += 1
        scan.first_of_mode.setdefault(mode, f.path)
    if len(_SCANS) >= 4:
        _SCANS.clear()
    _SCANS[listing.root] = (fingerprint, scan)
    return scan


def resolve_folder(root: Path, classes: int | None, image_size: int | None, channels: int | None,
                   test_share: float) -> tuple[int, int, int]:
    """(classes, image_size, channels) of a folder benchmark: the values given, the others from the folder's scan;
    FolderError for a bad folder or a given value the folder contradicts."""
    scan = scan_folder(root)
    problem = scan.problem(channels, test_share)
    if problem is not None:
        raise problem
    found = len(scan.listing.classes)
    if classes is not None and classes != found:
        raise FolderError(f"{scan.listing.root} has {found} classes, not {classes}; leave benchmark.classes unset",
                          field="classes")
    if image_size is None:
        image_size = scan.side
        if image_size > MAX_IMAGE_SIDE:
            raise FolderError(f"the images in {scan.listing.root} are {image_size} pixels on their shorter side, "
                              f"more than {MAX_IMAGE_SIDE}; set benchmark.image_size (e.g. 32 or 64) to resize "
                              f"them", field="image_size")
    return found, image_size, channels or scan.channels or 3
