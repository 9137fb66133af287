"""Writing a file so that a reader (or a crash) never sees half of it, and names that are safe as folder names:
what every writer of the runs folder and of presets uses. Torch-free, UI-free."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data: Any) -> None:
    """`write_text_atomic` of `data` as indented JSON."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over: a reader (or a
    crash) sees the old file or the new one, never half of one. The file gets the permissions of any
    other new file (the umask), not mkstemp's 0600, so a runs folder shared between users stays readable.
    On a failed write (a full disk) the temporary file is removed and the old file is left as it was."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "run"
