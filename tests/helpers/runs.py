"""Runs the tests make and damage: tiny configs and the records of their uninterrupted runs, a kill that no handler
catches, a run stopped after a given context, merge teachers, edits of a run.json, snapshots of folder trees (to
prove that nothing outside the runs folder moved) and a small tmpfs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.runs.events import ContextEvaluated

TINY = ("train.iterations=20",)


class Killed(BaseException):  # noqa: N818 - it is not an error: it is the process going away
    """A kill at an exact point, in-process. A BaseException that is not KeyboardInterrupt passes every
    handler of the training loop (they catch Exception, Cancelled and KeyboardInterrupt), so the run folder is
    left exactly as a SIGKILL at that point would leave it: no final write, no clean-up."""


def config(*overrides: str, method: str = "none", scenario: str = "class") -> Any:
    from core.schema.presets import build_config

    return build_config("split-digits", method=method, scenario=scenario, device="cpu",
                        overrides=[*TINY, *overrides])


_WHOLE: dict[tuple[Any, ...], tuple[dict[str, Any], Path]] = {}


def whole_run(tmp_root: Path, *overrides: str, method: str = "none", scenario: str = "class"
              ) -> tuple[dict[str, Any], Path]:
    """The record and folder of an uninterrupted run of `config(*overrides)` (made once per test process)."""
    from core.training import run

    key = (overrides, method, scenario)
    if key not in _WHOLE:
        folder = tmp_root / f"whole-{len(_WHOLE)}"
        folder.mkdir(parents=True)
        record = run(config(*overrides, method=method, scenario=scenario), folder)
        assert record["status"] == "finished", record["error"]
        _WHOLE[key] = (record, folder)
    return _WHOLE[key]


def whole(tmp_root: Path, *overrides: str, method: str = "none", scenario: str = "class") -> dict[str, Any]:
    return whole_run(tmp_root, *overrides, method=method, scenario=scenario)[0]


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[Any, ...]]:
    """Every entry under `root` (links not followed; `skip` and what is under it left out): its kind, mode,
    and content hash (files) or target (links)."""
    out: dict[str, tuple[Any, ...]] = {}
    if not os.path.lexists(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if skip is not None and path == skip:
                continue
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size,
                            hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped (as a killed worker's is)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def edit_record(run_dir: Path, changes: dict[str, Any]) -> None:
    """Rewrite run.json with `changes` (a dotted key such as "config.train.device" reaches in)."""
    path = run_dir / "run.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(json.dumps(data, indent=2))


def tmp_files(root: Path) -> list[Path]:
    """Temporary files a write left behind (checkpoints' `.pt.tmp`, run.json's `.run.json.*.tmp`)."""
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))


def merge_teachers(root: Path, hidden: int = 16, iterations: int = 5) -> tuple[str, str]:
    """Two finished joint runs of merge-digits on disjoint halves of its contexts (the teachers `cltui merge`
    takes), trained in this process; their run ids."""
    from core.runs.store import RunStore
    from core.schema.presets import build_config
    from core.training import run

    names = []
    for seed, learn in ((0, "[0,1]"), (1, "[2,3,4]")):
        config = build_config("merge-digits", method="joint", seed=seed, device="cpu",
                              overrides=[f"model.hidden=[{hidden},{hidden}]", f"train.iterations={iterations}",
                                         f"benchmark.learn_contexts={learn}"])
        folder = RunStore(root).new_run_dir_for(config)
        assert run(config, folder)["status"] == "finished"
        names.append(folder.name)
    return names[0], names[1]


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A small filesystem of its own at `path` (tests run as root); the test is skipped where mount is
    refused."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def stop_after(context: int):
    """should_stop and emit for a run cancelled while training the context after `context`."""
    done = {"flag": False}

    def emit(event):
        if isinstance(event, ContextEvaluated) and event.context == context:
            done["flag"] = True

    return emit, lambda: done["flag"]
