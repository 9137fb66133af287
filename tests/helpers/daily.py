"""A runs folder as a researcher has it after a week: 30 finished runs (5 methods x 3 seeds x 2 iteration
counts) of split-digits class-IL and one study over the 50-iteration ones, written by hand in the real
on-disk format with fixed ids, times and figures so that screenshots of them never change.

`write_thirty_runs(root)` writes them and returns (run ids newest first, the study's id). Accuracy rises with
the method (none < ewc < si < lwf < er) and with iterations, and differs a little by seed, so sorting,
grouping and filtering give results a test can name.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.schema.presets import build_config
from tests.helpers.fixed_runs import context_events, record, write_run

METHODS = ("none", "ewc", "si", "lwf", "er")
FINAL = {"none": 0.199, "ewc": 0.215, "si": 0.232, "lwf": 0.503, "er": 0.912}  # at 300 iterations, seed 0
ITERATIONS = (300, 50)
SEEDS = (0, 1, 2)
STUDY_ID = "20260103-080000-split-digits-class"


def matrix(final: float) -> list[list[float]]:
    """A 5x5 lower-triangular accuracy matrix whose last row averages to `final`: each context learnt to
    0.98, then forgotten towards `final`."""
    rows = []
    for i in range(5):
        row = [0.0] * 5
        for j in range(i + 1):
            row[j] = 0.98 if j == i else round(0.98 - (0.98 - final) * (i - j) / 4 * 1.25, 3)
        rows.append(row)
    last = rows[-1]
    shift = (final * 5 - sum(last)) / 4
    rows[-1] = [round(min(1.0, max(0.0, v + shift)), 3) if j < 4 else v for j, v in enumerate(last)]
    return rows


def write_thirty_runs(root: Path) -> tuple[list[str], str]:
    ids: list[str] = []
    minute = 0
    for iterations in ITERATIONS:  # the 300-iteration runs first (older), then the 50-iteration study
        for method in METHODS:
            for seed in SEEDS:
                hour, mm = divmod(minute, 60)
                day = "20260102" if iterations == 300 else "20260103"
                stamp = f"{day}-{8 + hour:02d}{mm:02d}00"
                run_id = f"{stamp}-split-digits-class-{method}-s{seed}"
                cfg = build_config("split-digits", method=method, scenario="class", seed=seed,
                                   overrides=[f"train.iterations={iterations}"]).to_dict()  # as cltui writes it
                final = FINAL[method] - (0.06 if iterations == 50 else 0.0) + 0.011 * (seed - 1)
                acc = matrix(max(0.0, final))
                created = f"{day[:4]}-{day[4:6]}-{day[6:]}T{8 + hour:02d}:{mm:02d}:00+00:00"
                total_s = round((4.0 if iterations == 300 else 1.2) + 0.3 * METHODS.index(method) + 0.1 * seed, 1)
                data = record(run_id, cfg, "finished", acc, total_s=total_s, created=created, finished=created)
                for c in data["contexts"]:
                    c["iterations"] = iterations
                write_run(root, data, context_events(cfg, run_id, acc, 1767340800.0 + 60 * minute))
                ids.append(run_id)
                minute += 2
    study_runs = [{"method": m, "seed": s, "run_id": run_id} for run_id in ids[15:]
                  for m, s in [(run_id.split("-")[-2], int(run_id.split("-s")[-1]))]]
    study = {"schema": 1, "id": STUDY_ID, "created": "2026-01-03T08:00:00+00:00",
             "finished": "2026-01-03T08:30:00+00:00", "preset": "split-digits", "scenario": "class",
             "methods": list(METHODS), "seeds": len(SEEDS), "overrides": ["train.iterations=50"], "jobs": 1,
             "runs": study_runs, "wall_s": [30.0]}
    (root / "studies").mkdir(parents=True, exist_ok=True)
    (root / "studies" / f"{STUDY_ID}.json").write_text(json.dumps(study, indent=2) + "\n")
    return ids[::-1], STUDY_ID


def pick(runs_dir: Path, ids: list[str], methods: tuple[str, ...], iterations: int | None = 300,
         seed: int | None = None) -> list[Path]:
    """The folders of the runs among `ids` of `methods` at `iterations` (None: both counts), of one `seed` or
    of all three."""
    day = {300: "20260102", 50: "20260103", None: ""}[iterations]
    return [runs_dir / i for i in ids if i.split("-")[-2] in methods and i.startswith(day)
            and (seed is None or i.endswith(f"-s{seed}"))]
