"""The runs folder as the Runs screen watches it: the runs `RunStore` lists (its one rule for what is a run
and which links stay inside the folder), each with the change stamp of its run.json, so that a look every
second reads again only the run.json files that changed."""

from __future__ import annotations

import os

from core.runs.paths import RUN_JSON
from core.runs.store import RunEntry, RunStore

Stamp = tuple[int, int] | None  # (mtime_ns, size) of a run.json


def scan(store: RunStore, known: dict[str, tuple[Stamp, RunEntry]], force: bool) -> dict[str, tuple[Stamp, RunEntry]]:
    """The runs of `store` (`RunStore.folders`): an entry whose run.json has the stamp it had in `known` is
    reused (unless `force`), the others are read again (`RunStore.entry`: an unreadable one says why)."""
    found: dict[str, tuple[Stamp, RunEntry]] = {}
    for path in store.folders():
        try:
            st = os.lstat(path / RUN_JSON)  # the file itself: a link there is refused by the reader, not followed
        except OSError:
            continue  # gone since the listing
        stamp = (st.st_mtime_ns, st.st_size)
        old = known.get(path.name)
        found[path.name] = old if old is not None and old[0] == stamp and not force else (stamp, store.entry(path))
    return found
