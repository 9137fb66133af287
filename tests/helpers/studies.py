"""Real runs for the result tests (figures, exports) trained in this process: a study of split-digits methods,
each run an ordinary run folder and the study an ordinary study file, as `cltui compare` leaves them, without
paying for a worker process per run (events.jsonl written as the worker writes it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.runs.record import now_iso
from core.runs.store import RunStore, append_event
from core.studies import study as studies


def train_study(root: Path, methods: list[str], seeds: int, overrides: tuple[str, ...] = ("train.iterations=20",)
                ) -> dict[str, Any]:
    from core.training import run

    store = RunStore(root)
    study, configs = studies.plan("split-digits", methods, "class", seeds, list(overrides), 1)
    for entry, config in zip(study["runs"], configs, strict=True):
        run_dir = store.new_run_dir_for(config)
        # events.jsonl as the worker writes it (the loss curve comes from there)
        assert run(config, run_dir, emit=lambda event, d=run_dir: append_event(d, event))["status"] == "finished"
        entry["run_id"] = run_dir.name
    study["finished"] = now_iso()
    studies.save(store, study)
    return study


RUNNING_ID = "20260105-090000-split-digits-class"


def add_running_study(root: Path, ids: list[str]) -> list[str]:
    """A second study over the 300-iteration runs: 7 finished, 2 running (alive: this process), 6 not started.
    Returns the ids of the two running runs."""
    old = sorted(ids)[:15]
    running = old[7:9]
    for run_id in running:
        path = root / run_id / "run.json"
        record = json.loads(path.read_text())
        record.update(status="running", pid=os.getpid(), metrics={}, finished=None)
        path.write_text(json.dumps(record))
    runs = [{"method": run_id.split("-")[-2], "seed": int(run_id[-1]), "run_id": run_id if k < 9 else None}
            for k, run_id in enumerate(old)]
    study = {"schema": 1, "id": RUNNING_ID, "created": "2026-01-05T09:00:00+00:00", "finished": None,
             "preset": "split-digits", "scenario": "class", "methods": ["none", "ewc", "si", "lwf", "er"],
             "seeds": 3, "overrides": [], "jobs": 2, "runs": runs}
    (root / "studies" / f"{RUNNING_ID}.json").write_text(json.dumps(study))
    return running
