"""Per-run overhead of a study: a process per run (before) against the worker pool (after), in one invocation.

Runs the same `cltui compare` study (default: split-digits, method none, 20 seeds, 1 job) twice in fresh runs
directories, once with CLTUI_WORKER_POOL=0 (every run spawns a worker that imports torch) and once with the
pool (core/launch/pool.py: each worker imports torch once and trains many runs). The per-run overhead is what the
study's wall time adds to its runs' own times (run.json's timing.total_s, from the run's set-up to its end):
(wall - sum of run times) / runs, with `--jobs` 1 the figure a user waits for. Both studies run in the same
invocation, so a busy machine slows both; repeat it and compare the ratio. With --jobs N>1 the wall time is
also printed against the sum of run times (parallel speed-up).

    python benchmarks/compare_parallel.py [--preset split-digits] [--runs 20] [--jobs 1] [--set train.iterations=50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def study(cltui: Path, args: argparse.Namespace, pool: bool) -> tuple[float, list[float]]:
    """The study's wall time and its runs' own times."""
    env = {**os.environ, "CLTUI_WORKER_POOL": "1" if pool else "0"}
    sets = [x for s in args.set for x in ("--set", s)]
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run([str(cltui), "compare", args.preset, "--methods", args.methods, "--seeds", str(args.seeds),
                        "--jobs", str(args.jobs), "--device", "cpu", "--runs-dir", runs, "--quiet", *sets],
                       check=True, capture_output=True, env=env)
        [study_file] = (Path(runs) / "studies").glob("*.json")
        record = json.loads(study_file.read_text())
        times = [json.loads((Path(runs) / r["run_id"] / "run.json").read_text())["timing"]["total_s"]
                 for r in record["runs"]]
        return record["wall_s"][-1], times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="split-digits")
    parser.add_argument("--methods", default="none")
    parser.add_argument("--runs", type=int, default=20, help="runs in the study: seeds per method x methods")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="override for every run, e.g. train.iterations=50")
    args = parser.parse_args()
    args.seeds = max(1, args.runs // len(args.methods.split(",")))
    cltui = Path(sys.executable).with_name("cltui")
    print(f"{args.preset}, methods {args.methods}, {args.seeds} seeds each, --jobs {args.jobs}, "
          f"{' '.join(args.set) or 'preset iterations'}")
    print("| workers | runs | wall (s) | sum of run times (s) | wall / sum | overhead per run (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, pool in (("process per run", False), ("pool", True)):
        wall, times = study(cltui, args, pool)
        overhead = (wall - sum(times) / args.jobs) / len(times)
        print(f"| {name} | {len(times)} | {wall:.1f} | {sum(times):.1f} | {wall / sum(times):.2f} | {overhead:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
