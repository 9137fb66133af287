"""One writer per run and per study: the advisory lock a run folder (`<run>/.lock`) or a study
(`studies/<id>.lock`) holds while a process trains it (`RunLock`), and the probes that ask whether a run still has
a live writer (`held_by`, `run_alive`, `pid_alive`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from typing import Any

from core.runs.paths import StoreError, child_name


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


LOCK = ".lock"  # a run folder's lock file (RunLock); a study's is studies/<id>.lock


class RunLocked(StoreError):
    """Another process holds the lock of a run or study: one line naming it (exit 1 in the faces)."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


class RunLock:
    """One writer per run and per study: an advisory `flock` on a lock file (`<run>/.lock`, `studies/<id>.lock`).

    Whoever starts or resumes a run takes its lock first (`acquire`, never waiting: a holder means "someone else
    trains it"), and hands the same open file to the worker process that trains (core/launch/worker.py), so the lock
    lives as long as the process that writes the run, however it ends (a kill included: the kernel drops it).
    The file holds the pid of the process that last took it, for the message a second writer gets. A write
    failure (a read-only folder, a full disk) is the OSError of the open, for the caller's one line."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what
        self.fd: int | None = None

    @classmethod
    def of_run(cls, run_dir: Path) -> RunLock:
        return cls(run_dir / LOCK, f"run {run_dir.name}")

    @classmethod
    def of_study(cls, studies: Path, study_id: str) -> RunLock:
        return cls(studies / f"{child_name(study_id, 'study')}.lock", f"study {study_id}")

    def acquire(self, wait: float = 0.3) -> RunLock:
        """Take the lock or raise RunLocked naming its holder. `wait`: how long a lock held for an instant (a
        `held_by` probe) may take to come free."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StoreError(f"{self.path} is a symbolic link; cltui does not follow it (remove it)") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{self.path} is not a plain file; cltui leaves it alone (remove it)")
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        pid = _lock_pid(fd)
                        who = f"process {pid}" if pid else "another process"
                        raise RunLocked(f"{self.what} is in use by {who} (another cltui trains it); wait for it to "
                                        f"end or stop it first", pid) from None
                    time.sleep(0.05)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.mark(os.getpid())
        return self

    @classmethod
    def adopt(cls, fd: int, path: Path | str = LOCK, what: str = "run") -> RunLock:
        """The lock a parent took and handed to this process (its open file): held here now."""
        lock = cls(Path(path), what)
        lock.fd = fd
        lock.mark(os.getpid())
        return lock

    def mark(self, pid: int) -> None:
        """Write `pid` into the lock file as its holder (best effort: a full disk keeps the lock, not the pid)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{pid}\n".encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        """Close this process's copy of the lock (the lock is free once every process holding it has)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def held_by(lock_file: Path) -> int | None | bool:
    """Whether a lock file is held: False when free or absent (nothing to say), else the holder's pid (True when
    the file names none). A probe takes the lock for an instant, so `acquire` waits briefly before giving up."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_pid(fd) or True
        except OSError:
            return False
        return False
    finally:
        os.close(fd)


def run_alive(run_dir: Path, pid: Any) -> bool:
    """Whether a "running" run still has a live writer: its lock when the run has a lock file (a pid can be
    reused by another process; a lock dies with its holder), else the pid its run.json names."""
    lock = run_dir / LOCK
    if os.path.lexists(lock):
        return held_by(lock) is not False
    return pid_alive(pid)
