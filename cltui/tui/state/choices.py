"""What the TUI keeps between sessions in the runs folder's `.cltui/`: the runs marked on the Runs screen
(marks.json) and the preset, scenario and method the compose form last started (compose.json). Every read
and write goes through the store's resolver (core.runs.paths `inside`, `read_bounded`), never through a
link out of the runs folder; a missing or damaged file reads as nothing kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.files import write_json_atomic
from core.runs.paths import StoreError, inside, read_bounded

KEPT = Path(".cltui")  # inside the runs folder
MARKS = KEPT / "marks.json"
LAST_CHOICE = KEPT / "compose.json"


def read_kept(root: Path, name: Path) -> Any:
    """The JSON kept at `root/name`; None when it is missing, damaged, a link, a FIFO or huge."""
    try:
        return json.loads(read_bounded(inside(root, *name.parts, action="read")))
    except (OSError, ValueError, RecursionError):  # StoreError too: a link, a FIFO, a huge file
        return None


def write_kept(root: Path, name: Path, data: Any) -> None:
    """Keep `data` at `root/name`, atomically; nothing when the runs folder is not there (never created for
    this). UnsafePathError (a StoreError) for a link on the way, OSError when the disk refuses."""
    if not Path(root).is_dir():
        return
    inside(root, *name.parts)  # never through a link out of the runs folder
    (Path(root) / name).parent.mkdir(exist_ok=True)
    write_json_atomic(inside(root, *name.parts), data)


def read_marks(root: Path) -> set[str]:
    """The marked run ids kept in the runs folder; a missing or damaged file is no marks."""
    data = read_kept(root, MARKS)
    marks = data.get("marks") if isinstance(data, dict) else None
    return {m for m in marks if isinstance(m, str)} if isinstance(marks, list) else set()


def write_marks(root: Path, marks: set[str]) -> None:
    write_kept(root, MARKS, {"schema": 1, "marks": sorted(marks)})


def last_choice(runs_dir: Path) -> dict[str, str]:
    """What the form last started in this runs folder; {} when there is none or it cannot be read."""
    data = read_kept(runs_dir, LAST_CHOICE)
    return {k: v for k, v in data.items() if k in ("preset", "scenario", "method") and isinstance(v, str)} \
        if isinstance(data, dict) else {}


def remember_choice(runs_dir: Path, choice: dict[str, str]) -> None:
    try:
        write_kept(runs_dir, LAST_CHOICE, choice)
    except (OSError, StoreError):
        pass  # a convenience: never a reason for a started run to look failed
