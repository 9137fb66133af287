"""torch.compile (train.compile) against eager, on this machine's CPU or a GPU: the bare step of the split-MNIST
MLP and of LeNet-5 (forward, cross-entropy, backward, Adam; batch 128, synthetic tensors; gpu_check's
`step_speed`), eager and compiled measured in turns in one process, the median of the turns and the ratio.
A single timing of a few hundred CPU steps swings by a third with what else runs; turns keep both sides under
the same conditions.

    python benchmarks/compile_speed.py                    # cpu, 5 turns of 200 steps
    python benchmarks/compile_speed.py --device cuda --modes default,reduce-overhead
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--modes", default="default", help="torch.compile modes, comma-separated (CUDA graphs: "
                        "reduce-overhead, CUDA only)")
    args = parser.parse_args()
    from gpu_check import step_speed

    from core.runs import threads
    threads.apply(threads.choose())
    import torch

    modes = [m for m in args.modes.split(",") if m]
    print(f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; it/s, median of "
          f"{args.turns} turns of {args.steps} steps\n")
    print("| model | eager | " + " | ".join(f"compiled {m}" for m in modes) + " | "
          + " | ".join(f"{m} / eager" for m in modes) + " | compile s |")
    print("|---|---:|" + "---:|" * (2 * len(modes) + 1))
    for kind, label in (("mlp", "MLP 784-400-400-10"), ("lenet5", "LeNet-5 28x28")):
        rates: dict[str, list[float]] = {"eager": [], **{m: [] for m in modes}}
        warm = {}
        for _ in range(args.turns):
            rates["eager"].append(step_speed(kind, args.device, iterations=args.steps)[0])
            for m in modes:
                rate, seconds = step_speed(kind, args.device, compile_mode=m, iterations=args.steps)
                rates[m].append(rate)
                warm.setdefault(m, seconds)  # the first turn compiles; later turns hit the cache
        median = {k: statistics.median(v) for k, v in rates.items()}
        print(f"| {label} | {median['eager']:.1f} | " + " | ".join(f"{median[m]:.1f}" for m in modes) + " | "
              + " | ".join(f"{median[m] / median['eager']:.2f}x" for m in modes) + " | "
              + ", ".join(f"{warm[m]:.1f}" for m in modes) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
