"""Fidelity: every method on split-digits (and split-MNIST when --data-dir has it), seeds 0..N-1, each
scenario where the method applies, as real `cltui compare` studies; mean +- SEM per method beside the
published split-MNIST figure (docs/reference.md), and a flag wherever our ordering of two methods contradicts
the published one by more than the noise.

    python benchmarks/fidelity.py                       # split-digits, 5 seeds, task / domain / class
    python benchmarks/fidelity.py --table-from RUNS     # the tables again from the studies a run left in RUNS
    python benchmarks/fidelity.py --scenarios class --methods none,ewc,si,lwf,agem,er --seeds 5 --jobs 2
    python benchmarks/fidelity.py --data-dir ~/data     # also split-mnist (the published protocol itself)
    python benchmarks/fidelity.py --only-mnist --fashion-mnist /usr/share/datasets/fashion-mnist  # real images
    python benchmarks/fidelity.py --digits-as-mnist      # the split-MNIST protocol on digits written as MNIST

An ordering flag needs both: the published figures differ by at least PUBLISHED_GAP points, and ours
differ the other way by more than 3 standard errors (of the difference). Methods published within a few
points of each other (none, EWC, SI in class-IL) are "level": no order is asserted between them.
Prints markdown, ready for the README; the runs and studies stay in --runs-dir for `cltui studies show`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Split MNIST, van de Ven's tutorial figure (20 seeds, read off the figure, +- 1-2 points; docs/reference.md).
# A-GEM is not in the figure; its class-IL value is van de Ven's main.py on the same protocol (seeds 0-2).
PUBLISHED = {
    "task": {"none": 84, "ewc": 99, "online-ewc": 99, "si": 99, "lwf": 99, "xdg": 99, "separate": 99,
             "er": 99, "agem": 99, "icarl": 99, "dgr": 99, "bir": 99, "gen-classifier": 99, "joint": 99,
             "fromp": 99},
    "domain": {"joint": 98, "dgr": 96, "er": 94, "fromp": 84, "lwf": 72, "si": 68, "ewc": 62, "none": 60},
    "class": {"joint": 98, "gen-classifier": 93, "icarl": 93, "dgr": 90, "er": 90, "fromp": 77, "agem": 71,
              "lwf": 23, "ewc": 21, "si": 21, "none": 20},
}
PUBLISHED_GAP = 5.0  # points: published figures closer than this are "level" (read off a figure, +- 1-2)
DATA_FREE = {"deepinversion", "abd"}  # need a BatchNorm model: they have their own preset (split-digits-dfcil)


def methods_for(scenario: str) -> list[str]:
    """The classifiers: not the data-free ones, nor the generation methods (gan-*, mergan-*: their accuracy
    matrix is the share of generated samples a verifier recognises, benchmarked in split-digits-gen)."""
    from core.schema.params import METHOD_PARAMS, GANParams

    return [m for m, p in METHOD_PARAMS.items()
            if scenario in p.scenarios and m not in DATA_FREE and not issubclass(p, GANParams)]


def write_digits_as_mnist(root: Path) -> Path:
    """scikit-learn's digits as MNIST IDX files (`<root>/MNIST/raw/...`), each 8x8 image scaled 3x to 24x24
    (every pixel a 3x3 block, 0..16 -> 0..255) and centred in 28x28, with the train / test split of cltui's
    `digits` benchmark: the split-MNIST protocol (MLP 784-400-400, 2000 iterations) runs on real digits offline,
    as the comparison with van de Ven's main.py did."""
    import struct

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.kron(bunch.images / 16.0, np.ones((3, 3)))  # (N, 24, 24)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # (N, 28, 28)
    images = np.round(images * 255).astype(np.uint8)
    idx_train, idx_test = train_test_split(np.arange(len(images)), test_size=0.2, stratify=bunch.target,
                                           random_state=0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, idx in (("train", idx_train), ("t10k", idx_test)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(idx), 28, 28)
                                                          + images[idx].tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(idx))
                                                          + bunch.target[idx].astype(np.uint8).tobytes())
    return root


def run_study(preset: str, scenario: str, methods: list[str], seeds: int, jobs: int, runs_dir: Path,
              extra: list[str]) -> list[dict]:
    """One real `cltui compare` study; its table rows (core.studies.study.table)."""
    from core.runs.store import RunStore
    from core.studies import study as studies

    store = RunStore(runs_dir)
    before = {s["id"] for s in studies.list_studies(store)}
    command = [sys.executable, "-m", "cltui.cli.main", "compare", preset, "--methods", ",".join(methods),
               "--scenario", scenario, "--seeds", str(seeds), "--jobs", str(jobs), "--runs-dir", str(runs_dir),
               "--quiet", *extra]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    new = [s for s in studies.list_studies(store) if s["id"] not in before]
    return studies.table(store, new[-1])


def ordering_flags(rows: list[dict], published: dict[str, float]) -> list[str]:
    """Pairs whose published order (gap >= PUBLISHED_GAP) our means contradict by more than 3 SEM."""
    ours = {r["method"]: r for r in rows if r["final_avg_acc"] is not None}
    flags = []
    for a, b in itertools.permutations(ours, 2):
        if a not in published or b not in published or published[a] - published[b] < PUBLISHED_GAP:
            continue
        diff = 100 * (ours[a]["final_avg_acc"] - ours[b]["final_avg_acc"])  # published: a above b
        sem = 100 * math.hypot(ours[a]["final_avg_acc_sem"] or 0, ours[b]["final_avg_acc_sem"] or 0)
        if diff < -3 * sem:
            flags.append(f"{a} below {b} ({diff:+.1f} points, 3 SEM = {3 * sem:.1f}); published "
                         f"{published[a]:g} vs {published[b]:g}")
    return flags


def markdown(rows: list[dict], published: dict[str, float]) -> str:
    lines = ["| method | runs | final avg acc (%) | published split-MNIST (%) |", "|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -(r["final_avg_acc"] or 0)):
        acc = "–" if r["final_avg_acc"] is None else f"{100 * r['final_avg_acc']:.1f}" + (
            f" ± {100 * r['final_avg_acc_sem']:.1f}" if r["final_avg_acc_sem"] is not None else "")
        pub = published.get(r["method"])
        lines.append(f"| {r['method']} | {r['runs']}/{r['of']} | {acc} | {'–' if pub is None else f'{pub:g}'} |")
    return "\n".join(lines)


def report(preset: str, scenario: str, rows: list[dict], seconds: float | None) -> list[str]:
    """Print one study's table and ordering flags (markdown); the flags, named for the study."""
    rows = [r for r in rows if r["method"] in methods_for(scenario)]
    flags = ordering_flags(rows, PUBLISHED[scenario])
    print(f"## {preset}, {scenario}-IL" + ("" if seconds is None else f" ({seconds:.0f} s)") + "\n")
    print(markdown(rows, PUBLISHED[scenario]))
    print("\n" + ("\n".join(f"- ORDER: {f}" for f in flags) if flags else "- ordering as published") + "\n")
    return [f"{preset} {scenario}-IL: {f}" for f in flags]


def tables_from(runs_dir: Path) -> int:
    """The tables of the studies an earlier invocation left in `runs_dir` (one that was stopped, too: the
    finished runs count, `runs` says how many of how many)."""
    from core.runs.store import RunStore
    from core.studies import study as studies

    store = RunStore(runs_dir)
    flags = []
    for study in studies.list_studies(store):
        if study.get("scenario") in PUBLISHED:
            flags += report(study.get("preset", "?"), study["scenario"], studies.table(store, study), None)
    print(f"{len(flags)} ordering difference(s) against the published figures")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--scenarios", default="task,domain,class")
    parser.add_argument("--methods", default="", help="comma-separated (default: every method but the data-free)")
    parser.add_argument("--data-dir", default=None, help="a folder with MNIST: also run split-mnist")
    parser.add_argument("--digits-as-mnist", action="store_true", help="also run split-mnist on digits written "
                        "as MNIST files (the protocol of the comparison with van de Ven's main.py)")
    parser.add_argument("--fashion-mnist", default=None, metavar="DIR", help="also run split-fashion-mnist on the "
                        "Fashion-MNIST files in DIR (e.g. /usr/share/datasets/fashion-mnist, Debian's package)")
    parser.add_argument("--only-mnist", action="store_true", help="skip split-digits")
    parser.add_argument("--runs-dir", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--table-from", default=None, metavar="RUNS", help="print the tables of the studies in "
                        "RUNS (a --runs-dir of an earlier invocation) and run nothing")
    args = parser.parse_args()
    if args.table_from:
        return tables_from(Path(args.table_from))

    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="cltui-fidelity-"))
    presets = [] if args.only_mnist else [("split-digits", [])]
    if args.data_dir:
        presets.append(("split-mnist", ["--set", f"benchmark.data_dir={args.data_dir}"]))
    if args.fashion_mnist:
        presets.append(("split-fashion-mnist", ["--set", f"benchmark.data_dir={args.fashion_mnist}"]))
    if args.digits_as_mnist:
        folder = write_digits_as_mnist(runs_dir / "digits-as-mnist")
        presets.append(("split-mnist", ["--set", f"benchmark.data_dir={folder}"]))
    extra_sets = [x for item in args.overrides for x in ("--set", item)]
    chosen = [m for m in args.methods.split(",") if m]
    settings = "".join(f" · {o}" for o in args.overrides)  # a table must say what it was run with
    print(f"# cltui fidelity · {time.strftime('%Y-%m-%d')} · seeds 0-{args.seeds - 1}{settings} · runs in {runs_dir}\n")
    all_flags = []
    for (preset, preset_args), scenario in itertools.product(presets, args.scenarios.split(",")):
        methods = [m for m in methods_for(scenario) if not chosen or m in chosen]
        if not methods:
            continue
        start = time.monotonic()
        rows = run_study(preset, scenario, methods, args.seeds, args.jobs, runs_dir, preset_args + extra_sets)
        all_flags += report(preset, scenario, rows, time.monotonic() - start)
    print(f"{len(all_flags)} ordering difference(s) against the published figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
