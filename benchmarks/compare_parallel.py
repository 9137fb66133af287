"""Wall time of a study with 1 and with N parallel CPU jobs against the sum of its runs' own times.

Runs `cltui compare PRESET --methods none,er --seeds 2` (4 runs) once per job count in a fresh runs
directory, then reads the study file (wall time) and the runs' run.json (their total_s).

    python benchmarks/compare_parallel.py [--preset split-digits] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="split-digits")
    parser.add_argument("--methods", default="none,er")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cltui = Path(sys.executable).with_name("cltui")
    print("| jobs | runs | wall (s) | sum of run times (s) | wall / sum |")
    print("|---:|---:|---:|---:|---:|")
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as runs:
            subprocess.run([str(cltui), "compare", args.preset, "--methods", args.methods, "--seeds", str(args.seeds),
                            "--jobs", str(jobs), "--device", "cpu", "--runs-dir", runs, "--quiet"],
                           check=True, capture_output=True)
            [study_file] = (Path(runs) / "studies").glob("*.json")
            study = json.loads(study_file.read_text())
            times = [json.loads((Path(runs) / r["run_id"] / "run.json").read_text())["timing"]["total_s"]
                     for r in study["runs"]]
            wall = study["wall_s"][-1]
            print(f"| {jobs} | {len(times)} | {wall:.1f} | {sum(times):.1f} | {wall / sum(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
