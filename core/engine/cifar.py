"""CIFAR-10/100 from torchvision's pickled batches, read so that no file can run code: every file's MD5 checked
before it is unpickled, by an unpickler that only builds arrays."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.engine.datafiles import DataError, check_readable, not_found, permission_denied
from core.schema.config import BenchmarkConfig

# --- CIFAR: every file's MD5 checked before it is unpickled, by an unpickler that only builds arrays ---
#
# CIFAR ships as Python pickles, and unpickling runs whatever callables the file names: a crafted
# `data_batch_1` can run a shell command. So (1) each file's MD5 must be the one torchvision's CIFAR
# class lists for it, or one the user vouches for in $CLTUI_DATA_CHECKSUMS, before a byte of it is
# unpickled; (2) the bytes that were hashed are the bytes unpickled (read once, no window to swap the
# file); (3) the unpickler refuses every callable a CIFAR pickle does not need, in case (1) is fooled.

CHECKSUMS_ENV = "CLTUI_DATA_CHECKSUMS"
_CHUNK = 1 << 20  # hash in 1 MiB reads


class _Refused(pickle.UnpicklingError):
    """A pickle that names a callable outside _CifarUnpickler.ALLOWED."""


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays, and nothing else. Every callable a pickle
    invokes is looked up through find_class, so refusing all but array reconstruction refuses code."""

    ALLOWED = frozenset({
        # ndarray.__reduce__ (numpy 1 writes numpy.core, numpy 2 numpy._core) and its two arguments
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        # ndarray.__reduce_ex__ under pickle protocol 5 (a CIFAR re-pickled by a recent Python)
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        # plain containers that have no opcode of their own before protocol 4 (Python 2 spells builtins
        # `__builtin__`; the base class maps it)
        *((module, name) for module in ("builtins", "__builtin__")
          for name in ("set", "frozenset", "bytearray")),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


@dataclass
class _CifarPart:
    """One CIFAR split shaped as torchvision's reader leaves it (so the tensors made from it are the same)."""

    data: object  # numpy uint8 (N, 32, 32, 3)
    targets: list[int]
    classes: list[str]


def _vouched_checksums(root: Path) -> tuple[dict[str, str], Path | None]:
    """The user's own checksums, {path relative to the data folder: md5 hex}, from the JSON file that
    $CLTUI_DATA_CHECKSUMS names; ({}, None) when it is not set."""
    value = os.environ.get(CHECKSUMS_ENV, "").strip()
    if not value:
        return {}, None
    path = Path(value).expanduser()
    where = f"${CHECKSUMS_ENV} ({path})"
    # Whoever can write the data can write a list kept beside it, and would vouch for their own file.
    # Both the spelled and the resolved paths, so a symlink cannot smuggle it in (or out).
    roots = {Path(os.path.abspath(root)), root.resolve()}
    if any(p.is_relative_to(r) for p in (Path(os.path.abspath(path)), path.resolve()) for r in roots):
        raise DataError(
            f"{where} lies inside the data folder {root}; whoever can change the data could change it too: "
            f"keep the checksum list outside {root}"
        )
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{where} does not exist; point it at your JSON checksum list, or unset it") from None
    except PermissionError:
        raise DataError(f"{where} cannot be read (permission denied); fix its permissions") from None
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{where} is not a readable JSON file ({e}); write "
                        f'{{"cifar-10-batches-py/data_batch_1": "<md5 hex>", ...}}') from None
    if not isinstance(listed, dict):
        raise DataError(f'{where} must hold one JSON object, '
                        f'{{"<path in the data folder>": "<md5 hex>", ...}}')
    vouched = {}
    for key, md5 in listed.items():
        if not (isinstance(md5, str) and re.fullmatch(r"[0-9a-fA-F]{32}", md5)):
            raise DataError(f"{where}: the checksum of {key!r} must be 32 hex digits (an MD5), not {md5!r}")
        vouched[posixpath.normpath(key.replace("\\", "/"))] = md5.lower()
    return vouched, path


def _cifar(cfg: BenchmarkConfig, root: Path) -> tuple[_CifarPart, _CifarPart]:
    from torchvision import datasets

    base = datasets.CIFAR10 if cfg.name == "cifar10" else datasets.CIFAR100
    ships = "the file torchvision's " + ("CIFAR-10" if cfg.name == "cifar10" else "CIFAR-100") + " ships"
    # torchvision's own list of the files its download holds and their MD5s: the reference, not a copy.
    folder = base.base_folder
    official = {f"{folder}/{n}": md5 for n, md5 in [*base.train_list, *base.test_list]}
    meta_name = f"{folder}/{base.meta['filename']}"
    official[meta_name] = base.meta["md5"]

    check_readable(cfg, root)
    if not all((root / n).is_file() for n in official):
        if not cfg.download:
            raise not_found(cfg, root)
        from torchvision.datasets.utils import download_and_extract_archive

        try:  # torchvision checks the archive's MD5 before it extracts it
            download_and_extract_archive(base.url, str(root), filename=base.filename, md5=base.tgz_md5)
        except (OSError, RuntimeError) as e:
            raise DataError(f"benchmark.data_dir: cannot download {cfg.name} into {root} ({e}); check your "
                            f"network, or point --data-dir at a folder that holds it") from None
        if not all((root / n).is_file() for n in official):
            raise not_found(cfg, root)
    vouched, manifest = _vouched_checksums(root)

    def verified_bytes(name: str) -> bytes:
        """The file's bytes, read once, hashed as they are read; raises unless its MD5 is known."""
        path = root / name
        digest, chunks = hashlib.md5(usedforsecurity=False), []
        try:
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    digest.update(chunk)
                    chunks.append(chunk)
        except PermissionError:
            raise DataError(permission_denied(path)) from None
        except OSError as e:
            raise DataError(f"benchmark.data_dir: cannot read {path} ({e.strerror or e}); "
                            f"point --data-dir elsewhere") from None
        md5 = digest.hexdigest()
        if md5 == official[name] or md5 == vouched.get(name):
            return b"".join(chunks)
        if name in vouched:
            raise DataError(f"benchmark.data_dir: {name} in {root} fails its MD5 check (neither {ships} nor "
                            f"the one {manifest} lists): delete it and pass --download, or correct its "
                            f"checksum there if you made it yourself")
        raise DataError(f"benchmark.data_dir: {name} in {root} fails its MD5 check (not {ships}): delete it "
                        f"and pass --download, or list its checksum in ${CHECKSUMS_ENV} if you made it "
                        f"yourself")

    # Every file checked before any is unpickled, in torchvision's order (the training batches first), so
    # the first file that fails is the one named; each is hashed once, and the bytes hashed are kept.
    verified = {name: verified_bytes(name) for name in official}

    def load(name: str) -> dict:
        raw = verified.pop(name)  # dropped once unpickled
        damaged = f"benchmark.data_dir: {name} in {root} is damaged"
        try:
            # latin1: the official files are Python 2 pickles (their keys and arrays are byte strings)
            entry = _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
        except _Refused as e:
            raise DataError(f"benchmark.data_dir: {name} in {root} is refused: its pickle calls {e}, which "
                            f"no CIFAR file needs (it could run code); delete it and pass --download"
                            ) from None
        except Exception as e:  # noqa: BLE001 - a cut or foreign pickle fails in many ways; all mean the same
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise DataError(f"{damaged} ({what}); delete it and pass --download, or point --data-dir "
                            f"elsewhere") from None
        if not isinstance(entry, dict):
            raise DataError(f"{damaged} (a {type(entry).__name__}, not the dict a CIFAR file holds); "
                            f"delete it and pass --download")
        return entry

    def part(names: list[str], classes: list[str]) -> _CifarPart:
        data, targets = [], []
        for name in names:
            entry = load(name)
            # as torchvision reads it: uint8 rows of 3072 pixels (R, G, B planes), labels or fine_labels
            x, y = entry.get("data"), entry.get("labels", entry.get("fine_labels"))
            if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3072
                    and isinstance(y, list) and len(y) == len(x) and all(isinstance(v, int) for v in y)):
                raise DataError(f"benchmark.data_dir: {name} in {root} is damaged (not N rows of 3072 uint8 "
                                f"pixels with N integer labels); delete it and pass --download")
            data.append(x)
            targets.extend(y)
        images = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC, as torchvision's
        return _CifarPart(images, targets, classes)

    meta = load(meta_name)
    classes = meta.get(base.meta["key"])
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DataError(f"benchmark.data_dir: {meta_name} in {root} is damaged (no list of class names under "
                        f"{base.meta['key']!r}); delete it and pass --download")
    train = part([f"{folder}/{n}" for n, _ in base.train_list], classes)
    test = part([f"{folder}/{n}" for n, _ in base.test_list], classes)
    return train, test
