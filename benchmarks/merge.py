"""Merging two networks (`cltui merge`) on split digits (or the sine toy): the student of each approach against
its teachers and against a network of the same architecture trained from scratch for the same total number of
steps (both teachers' steps + merge + fine-tune), jointly on the same data. Prints one markdown table per setting.

    .venv/bin/python benchmarks/merge.py --seeds 0 1 2                 # teachers on the same data, other seeds
    .venv/bin/python benchmarks/merge.py --seeds 0 1 2 --split         # teachers on contexts 0-1 and 2-4
    .venv/bin/python benchmarks/merge.py --preset merge-sine --teacher-steps 2000 --merge-steps 1000 \
        --finetune-steps 1000                                            # the regression toy, scored by R^2

Everything runs in this process on the CPU (or --device), runs in a temporary runs folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.merge.merger import check_teachers, merge, settings_from
from core.runs.store import RunStore
from core.schema.presets import build_config
from core.training import run


def parse(item: str) -> tuple[str, object]:
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def train(
    store: RunStore, seed: int, iterations: int, args: argparse.Namespace, learn: str | None = None
) -> tuple[str, float]:
    over = [f"train.iterations={iterations}", f"model.kind={args.model}"]
    if args.hidden:
        over.append(f"model.hidden={args.hidden}")
    if args.model == "lenet5":
        over.append("benchmark.pad_to=16")
    if learn:
        over.append(f"benchmark.learn_contexts={learn}")
    config = build_config(args.preset, seed=seed, device=args.device, overrides=over)
    folder = store.new_run_dir_for(config)
    record = run(config, folder)
    assert record["status"] == "finished", record["error"]
    return folder.name, record["metrics"]["final_avg_acc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--split", action="store_true", help="teachers on disjoint contexts (0-1, 2-4)")
    p.add_argument("--preset", default="merge-digits", help="merge-digits or merge-sine")
    p.add_argument("--model", default="mlp")
    p.add_argument("--hidden", default=None, help="the MLP's widths (default: [100,100]; merge-sine: its preset's)")
    p.add_argument("--teacher-steps", type=int, default=500, help="each teacher's steps (joint: iterations x 5)")
    p.add_argument("--merge-steps", type=int, default=300)
    p.add_argument("--finetune-steps", type=int, default=200)
    p.add_argument("--data", default="union")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="merge settings, e.g. temperature=4")
    args = p.parse_args()
    if args.hidden is None and args.preset == "merge-digits":
        args.hidden = "[100,100]"
    contexts = 5
    total = 2 * args.teacher_steps + args.merge_steps + args.finetune_steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        for seed in args.seeds:
            learn = ("[0,1]", "[2,3,4]") if args.split else (None, None)
            a, acc_a = train(store, 1000 + seed, args.teacher_steps // contexts, args, learn[0])
            b, acc_b = train(store, 2000 + seed, args.teacher_steps // contexts, args, learn[1])
            _, scratch = train(store, 3000 + seed, total // contexts, args)
            ta, tb = check_teachers(store, a, b)
            row = {"seed": seed, "teacher A": acc_a, "teacher B": acc_b, "scratch": scratch}
            for approach in ("greedy", "l0"):
                settings = settings_from({"approach": approach, "data": args.data, "seed": seed, "device": args.device,
                                          "iterations": args.merge_steps,
                                          "finetune_iterations": args.finetune_steps,
                                          **dict(parse(kv) for kv in args.set)})
                start = time.monotonic()
                record = merge(ta, tb, settings, store.new_run_dir(f"merge-{approach}"))
                assert record["status"] == "finished", record["error"]
                row[approach] = record["metrics"]["final_avg_acc"]
                row[f"{approach} s"] = time.monotonic() - start
                if approach == "l0":  # where the gates ended, against the half that pruning keeps
                    info = record["merge"]
                    row["l0 active"] = sum(info["active_units"][-1]["active"].values())
                    row["l0 keep"] = sum(info["widths"].values())
            rows.append(row)
            print(f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "seed"), flush=True)
    kind = "disjoint contexts 0-1 / 2-4" if args.split else "same data, different seeds"
    bench = "sine waves, task-IL" if args.preset == "merge-sine" else "split digits, class-IL"
    score = "R² x100" if args.preset == "merge-sine" else "Final average accuracy (%)"
    print(f"\n{bench}, {args.model} {args.hidden or 'preset widths'}, teachers {kind}, data {args.data}; "
          f"steps: teachers 2 x {args.teacher_steps}, merge {args.merge_steps}, fine-tune {args.finetune_steps}; "
          f"scratch = joint training for all {total} steps"
          f"{'; merge settings ' + ' '.join(args.set) if args.set else ''}. "
          f"{score}, mean over contexts:\n")
    cols = ["teacher A", "teacher B", "greedy", "l0", "scratch"]
    print("| seed | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['seed']} | " + " | ".join(f"{100 * r[c]:.1f}" for c in cols) + " |")
    print("| mean | " + " | ".join(f"{100 * statistics.mean(r[c] for r in rows):.1f}" for c in cols) + " |")
    print(f"\nl0: active units at the end of joint training "
          f"{', '.join(str(r['l0 active']) for r in rows)} of {2 * rows[0]['l0 keep']} "
          f"(pruning keeps {rows[0]['l0 keep']})")


if __name__ == "__main__":
    main()
