"""The run store: one folder per run under the runs directory, holding run.json (schema 1, rewritten
atomically), events.jsonl (append-only), worker.log, checkpoints/ and dreams/.

`RunStore` lists, resolves, creates and removes run folders; this module also appends and reads a run's events
file. Its parts live beside it: the record (core/runs/record.py: run.json is read and written only through
`RunRecord`), the paths (core/runs/paths.py: every id that names a folder passes `child_name`, every path below a
run folder `inside`, so cltui touches nothing outside its runs folder) and the lock (core/runs/lock.py: one writer
per run and per study).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.files import slug
from core.runs.events import Event, from_json, to_json
from core.runs.lock import LOCK, held_by, run_alive
from core.runs.paths import (
    EVENTS,
    EVENTS_MAX_BYTES,
    RUN_JSON,
    WORKER_LOG,
    StoreError,
    child_name,
    inside,
    open_checked,
    read_bounded,
)
from core.runs.record import read_run_json

if TYPE_CHECKING:
    from core.schema.config import RunConfig


def default_runs_dir() -> Path:
    return Path(os.environ.get("CLTUI_RUNS_DIR") or "runs")



def run_folder_name(preset: str | None, scenario: str, method: str, seed: int) -> str:
    """The readable part of a run folder's name; the store puts the time in front."""
    return f"{preset or 'run'}-{scenario}-{method}-s{seed}"


@dataclass
class RunEntry:
    """One folder of the runs directory: its run.json, or why it could not be read."""

    id: str
    path: Path
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.data is None:
            return "unreadable"
        status = self.data.get("status", "?")
        if status == "running" and not run_alive(self.path, self.data.get("pid")):
            return "stale"  # its worker is gone without a word: killed, or the machine went down
        return status



CHECKPOINT_NAME = re.compile(r"context-(\d{1,9})\.pt")


def checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    """(context, path) of each `context-<n>.pt` in a run's checkpoints folder; other names (`context-x.pt`, a
    `.tmp` a crash left) are not checkpoints and are ignored."""
    try:
        names = os.listdir(folder)
    except OSError:  # missing, or not a folder
        return []
    return [(int(m.group(1)), folder / name) for name in names if (m := CHECKPOINT_NAME.fullmatch(name))]



class RunStore:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def child(self, name: Any, what: str = "run", allow_link: bool = False) -> Path:
        """`root/name` for a plain child name whose folder, if it is a link, stays inside the root
        (`allow_link`: return the link itself, whatever it points to, for removing it)."""
        path = self.root / child_name(name, what)
        try:
            link = path.is_symlink()
        except OSError as e:
            raise StoreError(f"{what} {name!r} in {self.root}: cannot be read ({e.strerror or e})") from None
        if link and not allow_link:
            target = path.resolve()
            if target.parent != self.root.resolve():
                raise StoreError(f"{what} {name!r} in {self.root} is a symbolic link to {target}, outside the runs "
                                 f"folder; cltui does not follow it (`cltui runs rm {name}` removes the link)")
        return path

    def new_run_dir(self, name: str) -> Path:
        """A fresh folder `<time>-<name>`; an existing folder is never reused."""
        self.root.mkdir(parents=True, exist_ok=True)
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(name)}"
        for n in range(1000):
            path = self.root / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise StoreError(f"{self.root}: cannot find a free run folder name for {base}")

    def new_run_dir_for(self, config: RunConfig) -> Path:
        """A fresh folder for a run of `config`, named after it: `<time>-<preset>-<scenario>-<method>-s<seed>`."""
        return self.new_run_dir(run_folder_name(config.preset, config.scenario, config.method.name,
                                                config.train.seed))

    def folders(self) -> list[Path]:
        """The run folders: children holding a run.json (studies/ and other folders are not runs); links
        out of the runs folder are left out."""
        try:
            children = sorted(self.root.iterdir())
        except OSError:
            return []
        out = []
        for path in children:
            if path.name.startswith("."):
                continue
            try:
                self.child(path.name)
                if path.is_dir() and os.path.lexists(path / RUN_JSON):
                    out.append(path)
            except (StoreError, OSError):
                continue
        return out

    def entry(self, path: Path) -> RunEntry:
        try:
            return RunEntry(path.name, path, read_run_json(path))
        except StoreError as e:
            return RunEntry(path.name, path, None, str(e))

    def list(self) -> list[RunEntry]:
        return [self.entry(path) for path in self.folders()]

    def resolve(self, run: str, allow_link: bool = False) -> Path:
        """A run by id, unique id prefix, or the path of its folder inside the runs folder; never a folder
        outside it."""
        if not isinstance(run, str) or not run:
            raise StoreError("no run given; `cltui runs list` shows the runs")
        if "\0" in run:
            raise StoreError(f"{run!r}: not a run id (it holds a NUL character)")
        try:
            run.encode()
        except UnicodeEncodeError:
            raise StoreError(f"{run!r}: not a valid run id or path") from None
        name = run.rstrip("/")
        if "/" in name or "\\" in name or name in (".", ".."):
            as_path = Path(name)
            if as_path.absolute().parent.resolve() != self.root.resolve():
                raise StoreError(f"{run!r} is not a run in the runs folder {self.root}; cltui touches nothing "
                                 f"outside it (pass --runs-dir for another runs folder)")
            name = as_path.name
        path = self.child(name, allow_link=allow_link)
        if os.path.lexists(path):
            if (path / RUN_JSON).exists() or path.is_symlink():
                return path
            raise StoreError(f"{path} holds no run.json: not a cltui run, so cltui leaves it alone")
        matches = [p for p in self.folders() if p.name.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise StoreError(f"run {run!r} is ambiguous in {self.root}: {', '.join(p.name for p in matches[:5])}")
        raise StoreError(f"no run {run!r} in {self.root}; `cltui runs list` shows the runs there (or pass --runs-dir)")

    def run_dir(self, run_id: str) -> Path:
        """The folder of an exact run id (a study's runs), checked as `child`."""
        return self.child(run_id)

    def load(self, run: str) -> dict[str, Any]:
        return read_run_json(self.resolve(run))

    def remove(self, run: str) -> Path:
        """Delete a run's folder. A symbolic link is removed itself, never what it points to; a folder
        whose run.json is not a cltui record is left alone; a running run is refused."""
        path = self.resolve(run, allow_link=True)
        if path.is_symlink():
            path.unlink()
            return path
        try:
            data = read_run_json(path)
        except StoreError as e:
            if not os.path.isfile(path / RUN_JSON):
                raise StoreError(f"{path}: {e}; not removed") from None
            data = {}  # a damaged run.json of a run: removing it is what a user wants
            if not _looks_like_run(path):
                raise StoreError(f"{path} does not look like a cltui run ({e}); not removed") from None
        # A worker that was told to stop writes "cancelled" and then takes a moment to end: its lock, held until it
        # has, says so whatever the status reads.
        holder = held_by(path / LOCK) if os.path.lexists(path / LOCK) else False
        if holder is not False:
            raise StoreError(f"run {path.name} still has its worker (pid {holder or '?'}), running or ending; stop it, "
                             f"or remove the run once it has ended")
        if data.get("status") == "running" and run_alive(path, data.get("pid")):
            raise StoreError(f"run {path.name} is still running (pid {data['pid']}); stop it before removing it")
        shutil.rmtree(path)
        return path


def _looks_like_run(path: Path) -> bool:
    """A folder with a damaged run.json is still a run when cltui's other files are there, or when the
    file at least says it is a cltui record."""
    if (path / EVENTS).exists() or (path / WORKER_LOG).exists() or (path / "checkpoints").is_dir():
        return True
    try:
        head = read_bounded(inside(path, RUN_JSON, action="read")).decode(errors="replace")[:200]
    except (OSError, StoreError):
        return False
    return '"schema"' in head


def append_event(run_dir: Path, event: Event) -> None:
    """Append one event line. A last line a full disk cut short is closed first with a newline of its own, so
    this event is a line of its own that followers read (the cut line is skipped as damaged)."""
    line = (to_json(event) + "\n").encode()
    with open_checked(inside(run_dir, EVENTS), "a+b") as f:
        size = os.fstat(f.fileno()).st_size
        if size and os.pread(f.fileno(), 1, size - 1) != b"\n":
            line = b"\n" + line
        f.write(line)


def read_events(run_dir: Path) -> Iterator[Event]:
    """Every complete event line; a line cut short by a crash (the last one) or damaged is skipped."""
    try:
        f = open_checked(inside(run_dir, EVENTS, action="read"))
    except (OSError, StoreError):  # missing, a link, a FIFO: no events to read
        return
    read = 0
    with io.TextIOWrapper(f, errors="replace") as text:
        while read < EVENTS_MAX_BYTES and (line := text.readline(1 << 20)):  # bounded: no line is a megabyte
            read += len(line)
            if line.endswith("\n"):
                try:
                    yield from_json(line)
                except (ValueError, RecursionError):
                    continue
