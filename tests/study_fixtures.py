"""Real runs for the result tests (figures, exports) trained in this process: a study of split-digits methods,
each run an ordinary run folder and the study an ordinary study file, as `cltui compare` leaves them, without
paying for a worker process per run (events.jsonl written as the worker writes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.runs.record import now_iso
from core.runs.store import RunStore, append_event
from core.studies import study as studies


def train_study(root: Path, methods: list[str], seeds: int, overrides: tuple[str, ...] = ("train.iterations=20",)
                ) -> dict[str, Any]:
    from core.engine.train import run

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
