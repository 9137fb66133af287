"""The run store: one folder per run under the runs directory, holding run.json (schema 1, rewritten
atomically), events.jsonl (append-only), worker.log, checkpoints/ and dreams/.

Listing and loading never crash on a damaged folder: an unreadable run.json becomes an entry that
names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.events import Event, from_json, to_json

SCHEMA = 1
RUN_JSON = "run.json"
EVENTS = "events.jsonl"
WORKER_LOG = "worker.log"


class StoreError(ValueError):
    """A user-facing problem with the runs directory or a run in it, phrased as one line."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("CLTUI_RUNS_DIR") or "runs")


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over: a reader (or a
    crash) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: missing; this folder is not a cltui run") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: unreadable JSON ({e}); the run's other files are untouched") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or "id" not in data:
        raise StoreError(f"{path}: not a cltui run.json (schema {SCHEMA} expected)")
    return data


def new_run_record(run_id: str, preset: str | None, config: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """A run.json (schema 1) for a run that has just started."""
    return {
        "schema": SCHEMA, "id": run_id, "status": "running", "pid": os.getpid(), "created": now_iso(),
        "finished": None, "preset": preset, "config": config, "env": env, "contexts": [], "acc_init": None,
        "acc_matrix": [], "metrics": {}, "timing": {}, "dreams": [], "error": None,
    }


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "run"


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
        if status == "running" and not pid_alive(self.data.get("pid")):
            return "stale"  # its worker is gone without a word: killed, or the machine went down
        return status


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

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

    def list(self) -> list[RunEntry]:
        if not self.root.is_dir():
            return []
        entries = []
        for path in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not (path / RUN_JSON).exists():
                continue  # studies/ and other folders that are not runs
            try:
                entries.append(RunEntry(path.name, path, read_run_json(path)))
            except StoreError as e:
                entries.append(RunEntry(path.name, path, None, str(e)))
        return entries

    def resolve(self, run: str) -> Path:
        """A run by id, unique id prefix, or path to its folder."""
        as_path = Path(run)
        if (as_path / RUN_JSON).exists():
            return as_path
        if (self.root / run / RUN_JSON).exists():
            return self.root / run
        matches = [e.path for e in self.list() if e.id.startswith(run)] if run else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise StoreError(f"run {run!r} is ambiguous in {self.root}: {', '.join(p.name for p in matches[:5])}")
        raise StoreError(f"no run {run!r} in {self.root}; `cltui runs list` shows the runs there (or pass --runs-dir)")

    def load(self, run: str) -> dict[str, Any]:
        return read_run_json(self.resolve(run))

    def remove(self, run: str) -> Path:
        path = self.resolve(run)
        try:
            data = read_run_json(path)
        except StoreError:
            data = {}
        if data.get("status") == "running" and pid_alive(data.get("pid")):
            raise StoreError(f"run {path.name} is still running (pid {data['pid']}); stop it before removing it")
        shutil.rmtree(path)
        return path


def append_event(run_dir: Path, event: Event) -> None:
    with (run_dir / EVENTS).open("a") as f:
        f.write(to_json(event) + "\n")


def read_events(run_dir: Path) -> Iterator[Event]:
    """Every complete event line; a line cut short by a crash (the last one) is skipped."""
    path = run_dir / EVENTS
    if not path.exists():
        return
    with path.open() as f:
        for line in f:
            if line.endswith("\n"):
                try:
                    yield from_json(line)
                except ValueError:
                    continue
