"""Which files each torchvision data set needs on disk, checked without importing torch, so a missing or
unreadable data set is reported before a worker process is started.

`unreadable(path)` is shared with core/engine/data.py, so the CLI's early check and the worker's loader phrase
a file they cannot read in the same one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.engine.idx import IDX_FILES, TORCHVISION_FOLDER, find_idx
from core.schema.config import BenchmarkConfig, ConfigError, RunConfig

# Each data set's files in torchvision's layout (an IDX set's may also sit side by side: core/engine/idx.py).
REQUIRED_FILES: dict[str, list[str]] = {
    **{name: [f"{folder}/{file}" for file in IDX_FILES] for name, folder in TORCHVISION_FOLDER.items()},
    "cifar10": [f"cifar-10-batches-py/{n}" for n in
                [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]],
    "cifar100": [f"cifar-100-python/{n}" for n in ("train", "test", "meta")],
}


def data_root(cfg: BenchmarkConfig) -> Path:
    return Path(cfg.data_dir or "data").expanduser()


def permission_denied(path: Path | str) -> str:
    """The one line for a data file that exists but may not be read."""
    return (f"benchmark.data_dir: cannot read {path} (permission denied); fix its permissions or point "
            f"--data-dir elsewhere")


def unreadable(path: Path) -> str | None:
    """One line saying why an existing data file cannot be read, or None when it can (or is simply absent:
    that is `missing_data`'s business). A folder where a file should be would otherwise look "missing",
    and --download cannot fix it (the download would fail to write the file there)."""
    if path.is_dir():
        return (f"benchmark.data_dir: cannot read {path} (a folder, where a file should be); remove it and "
                f"pass --download, or point --data-dir elsewhere")
    # os.access asks with the real uid, as opening the file will; as root it says yes to mode 000 too,
    # which matches what open() then does.
    if path.exists() and not os.access(path, os.R_OK):
        return permission_denied(path)
    return None


FIELD = "benchmark.data_dir"  # the key every problem here is about
FIX_MISSING = "pass --download to fetch it, or --data-dir DIR for a folder that holds it"  # as the CLI says it


def missing_data(cfg: BenchmarkConfig) -> str | None:
    """One line naming a missing or unreadable file and the fix, or None when the data set can be loaded."""
    problem = data_problem(cfg)
    return None if problem is None else str(problem)


def data_files(cfg: BenchmarkConfig) -> tuple[list[Path], list[Path]]:
    """(the data set's files that are there, those missing): an IDX set's four files wherever they are
    (core/engine/idx.py), else the files of torchvision's layout."""
    root = data_root(cfg)
    if cfg.name in TORCHVISION_FOLDER:
        return find_idx(cfg.name, root)
    paths = [root / n for n in REQUIRED_FILES[cfg.name]]
    return [p for p in paths if os.path.lexists(p)], [p for p in paths if not os.path.lexists(p)]


def data_problem(cfg: BenchmarkConfig, fix_missing: str = FIX_MISSING) -> ConfigError | None:
    """`missing_data` as a ConfigError on benchmark.data_dir (a form shows `detail` beside that field), with
    the fix for missing files worded by the face that asks (`fix_missing`)."""
    if cfg.name not in REQUIRED_FILES:
        return None
    root = data_root(cfg)
    present, missing = data_files(cfg)
    # Unreadable files first, and even with --download: torchvision skips the download when the files are
    # there, and a new download would not change a file's permissions.
    for path in present:
        line = unreadable(path)
        if line:
            return ConfigError(line, field=FIELD, detail=line.removeprefix(f"{FIELD}: "))
    if cfg.download or not missing:
        return None
    where = (f"; the four IDX files may also sit side by side in {root}, plain or .gz"
             if cfg.name in TORCHVISION_FOLDER else "")
    detail = (f"{cfg.name} not found in {root} (missing {missing[0]}"
              f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}{where}); {fix_missing}")
    return ConfigError(f"{FIELD}: {detail}", field=FIELD, detail=detail)


def pretrained_problem(config: RunConfig) -> ConfigError | None:
    """model.pretrained names a file that is not there (or cannot be read): one line naming the field, how to
    make the checkpoint and how to train from scratch instead; None when there is nothing to load or it can be
    read (whether it is a checkpoint of this model is core/engine/pretrain.py's check, as it loads). A resumed run
    does not load it again, so only a new run is checked."""
    path = config.model.pretrained
    if not path:
        return None
    target = Path(path).expanduser()
    make = (f"make it with `cltui pretrain cifar10 --model {config.model.kind} --out {path}`, or train the conv "
            f"layers from scratch with --set model.pretrained= --set model.freeze_conv=false")
    if target.is_dir():
        detail = f"{path} is a folder, not a checkpoint; {make}"
    elif not target.exists():
        detail = f"{path} not found; {make}"
    elif not os.access(target, os.R_OK):
        detail = f"cannot read {path} (permission denied); fix its permissions, or {make}"
    else:
        return None
    return ConfigError(f"model.pretrained: {detail}", field="model.pretrained", detail=detail)


# The layout each data set is expected in, for the line that says where it was looked for.
DATA_LAYOUT = {
    "mnist": "[MNIST/raw/]{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
    "fashion-mnist": "[FashionMNIST/raw/]{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    "cifar100": "cifar-100-python/{train,test,meta}",
}


class DataError(ValueError):
    """A data set that cannot be loaded, phrased as one line that names the fix."""


def not_found(cfg: BenchmarkConfig, root: Path) -> DataError:
    fix = "check your network" if cfg.download else "pass --download to fetch it"
    return DataError(
        f"benchmark.data_dir: {cfg.name} not found in {root} (expects {root}/{DATA_LAYOUT[cfg.name]}); "
        f"{fix}, or point --data-dir at a folder that holds it"
    )


def check_readable(cfg: BenchmarkConfig, root: Path) -> None:
    """A file that is there but cannot be read is no "damaged file" to delete: say what it is (the same
    line the CLI's torch-free check gives, core/engine/datafiles.py)."""
    for path in data_files(cfg)[0]:
        problem = unreadable(path)
        if problem:
            raise DataError(problem)
