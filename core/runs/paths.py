"""Every path below the runs folder, checked: the folder names a run or study id may take (`child_name`), the one
resolver every open, write and delete under a run folder, `studies/` and `.cltui/` goes through (`inside`), and the
bounded, link-refusing reads and opens built on it (`read_bounded`, `open_checked`).

So no run id, study file or command line makes cltui touch a file outside its runs folder: an id is a plain child
of the runs folder (no separators, no `..`), and no level below it is a symbolic link, a FIFO, a device or a socket.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

RUN_JSON = "run.json"
EVENTS = "events.jsonl"
WORKER_LOG = "worker.log"


class StoreError(ValueError):
    """A user-facing problem with the runs directory or a run in it, phrased as one line."""



def child_name(name: Any, what: str = "run") -> str:
    """`name` if it can name a plain child of a runs folder; StoreError otherwise. Every run and study id
    read from a command line, a study file or a screen passes through here before it is joined to a path."""
    if not isinstance(name, str) or not name:
        raise StoreError(f"{what} id {name!r}: not a name")
    try:
        too_long = len(name.encode()) > 255  # a folder name the file system cannot hold
    except UnicodeEncodeError:
        raise StoreError(f"{what} id {name!r}: not a valid file name") from None
    if too_long:
        raise StoreError(f"{what} id {name[:40]!r}...: longer than a folder name can be")
    if name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise StoreError(f"{what} id {name!r}: not a plain folder name in the runs folder; cltui touches nothing "
                         f"outside it")
    return name


# --- every path below a run folder, studies/ and .cltui/ ----------------------------------------------------

RECORD_MAX_BYTES = 16 << 20  # run.json, a study file, the TUI's marks and last choice: real ones are kilobytes
EVENTS_MAX_BYTES = 512 << 20  # events.jsonl: a long run with continual evaluation writes tens of MB


class UnsafePathError(StoreError):
    """A path below the runs folder that cltui refuses: a symbolic link (it could lead anywhere), or something
    that is not a regular file or folder (a FIFO blocks its reader, a device reads without end)."""


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file or folder is, for a message; None for those two."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("a link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
            if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")


def _refuse(path: Path | str, kind: str, action: str) -> UnsafePathError:
    if kind == "a link":
        return UnsafePathError(f"{path} is a link; refusing to {action} outside the runs folder")
    return UnsafePathError(f"{path} is {kind}, not a regular file; refusing to {action} it")


def inside(base: Path | str, *parts: str, action: str = "write") -> Path:
    """`base/parts...` once every level below `base` (a run folder, checked by `RunStore.child`, or the runs
    folder itself) is a real folder and the last a regular file or folder, or missing (about to be created):
    the one resolver every open, write and delete under the runs folder goes through. UnsafePathError (one
    line) for a link at any level, a FIFO, a device or a socket; `action` ("read", "write") words it."""
    path = Path(base)
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return Path(base, *parts)  # nothing can lie below a missing level
        except OSError as e:
            raise StoreError(f"{path}: cannot be read ({e.strerror or e})") from None
        kind = _kind(mode)
        if kind is None and i < len(parts) - 1 and not stat.S_ISDIR(mode):
            kind = "a file where a folder should be"
        if kind is not None:
            raise _refuse(path, kind, action)
    return path


def _open_checked(path: Path, flags: int, action: str, mode: int = 0o666) -> int:
    """os.open with O_NOFOLLOW | O_NONBLOCK (a link or a FIFO never blocks or leads out), then fstat: a
    regular file's descriptor, or UnsafePathError. Other OSErrors (missing, no permission) are the caller's."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refuse(path, "a link", action) from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise _refuse(path, "a FIFO", action) from None
        raise
    kind = _kind(os.fstat(fd).st_mode)
    if kind is not None or stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refuse(path, kind or "a folder", action)
    os.set_blocking(fd, True)
    return fd


def check_run_files(run_dir: Path, action: str = "write") -> None:
    """Every file a worker writes or deletes in a run folder (run.json, events.jsonl, worker.log, checkpoints/
    and dreams/ with what is in them) through `inside`: UnsafePathError names the first link, FIFO or device,
    before a resume writes a byte."""
    for name in (RUN_JSON, EVENTS, WORKER_LOG):
        inside(run_dir, name, action=action)
    for folder in ("checkpoints", "dreams"):
        if not inside(run_dir, folder, action=action).is_dir():
            continue
        for parent, dirs, files in os.walk(run_dir / folder):  # os.walk does not descend into links
            for name in dirs + files:
                inside(run_dir, *Path(parent, name).relative_to(run_dir).parts, action=action)


def read_bounded(path: Path, limit: int = RECORD_MAX_BYTES) -> bytes:
    """A regular file's bytes, never through a link, never more than `limit` (StoreError beyond it); a FIFO or
    a device is refused at once rather than read. FileNotFoundError and other OSErrors pass through."""
    fd = _open_checked(Path(path), os.O_RDONLY, "read")
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise StoreError(f"{path}: larger than {limit >> 20} MB, more than cltui ever writes there; not read")
    return data


def open_checked(path: Path, mode: str = "rb", action: str | None = None) -> Any:
    """`open(path, mode)` for "rb", "ab", "wb", "r+b" through `_open_checked`: never a link, FIFO or device."""
    flags = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
             "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a+b": os.O_RDWR | os.O_CREAT | os.O_APPEND}[mode]
    fd = _open_checked(Path(path), flags, action or ("read" if mode == "rb" else "write"))
    f: Any = os.fdopen(fd, mode)
    f.raw.name = str(path)  # named as open() names a file (messages, tools that look at f.name), not by its fd
    return f
