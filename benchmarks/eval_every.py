"""The cost of continual evaluation: time per iteration of cltui's training loop with `train.eval_every` = 1,
10 and 100 against the same loop without it (0), as ratios measured in one run (interleaved repeats, median).

Each evaluation tests a fixed device-resident subset of `train.eval_samples` (default 1024) of every
context's test set. On CUDA, `--check-sync` also counts the host syncs of a context trained with
eval_every=1 (torch's sync debug mode): it must not grow with the iterations.

    python benchmarks/eval_every.py [--device cpu|cuda] [--iterations 300] [--repeats 3] [--check-sync]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.loop_overhead import synthetic_mnist
from core.engine.data import build_benchmark
from core.methods.parts.base import ContextInfo
from core.schema.presets import build_config
from core.training.train import Trainer

SETTINGS = (0, 1, 10, 100)


def loop_time(config, benchmark, iterations: int) -> float:
    """Seconds per iteration of context 1's training (context 0 is older: it is tested too)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp), emit=lambda e: None, should_stop=lambda: False, benchmark=benchmark)
        context = trainer.benchmark.contexts[1]
        info = ContextInfo(1, context, None, lambda e: None, config.train.progress_interval)
        trainer.train_context(info, 20)  # warm-up
        seconds, _ = trainer.train_context(info, iterations)
    return seconds / iterations


def syncs(config, benchmark, iterations: int) -> int:
    """Host syncs while training one context of `iterations` steps with eval_every=1 (CUDA only)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp), emit=lambda e: None, should_stop=lambda: False, benchmark=benchmark)
        context = trainer.benchmark.contexts[1]
        info = ContextInfo(1, context, None, lambda e: None, 3600.0)
        trainer.train_context(info, 5)  # warm-up: cudnn, allocator
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.train_context(info, iterations)
            finally:
                torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-sync", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    split = synthetic_mnist(n_test=10000)  # 2000 test images per context: the subsets are a real choice
    configs = {n: build_config("split-mnist", device=args.device, overrides=[f"train.eval_every={n}"])
               for n in SETTINGS}
    benchmark = build_benchmark(configs[0].benchmark, device, split=split)
    per_eval = sum(min(configs[0].train.eval_samples, c.x_test.shape[0]) for c in benchmark.contexts)
    print(f"torch {torch.__version__} · {device} · {torch.get_num_threads()} threads · split-MNIST MLP "
          f"784-400-400-10, batch 128 · {per_eval} test samples per evaluation ({len(benchmark.contexts)} contexts) · "
          f"{args.iterations} iterations x {args.repeats} repeats (median)")
    times: dict[int, list[float]] = {n: [] for n in SETTINGS}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every setting alike
        for n in SETTINGS:
            times[n].append(loop_time(configs[n], benchmark, args.iterations))
    base = statistics.median(times[0])
    print("| eval_every | ms/it | ratio to no evaluation |")
    print("|---:|---:|---:|")
    for n in SETTINGS:
        t = statistics.median(times[n])
        print(f"| {n or 'off'} | {1e3 * t:.3f} | {t / base:.3f} |")
    if args.check_sync:
        if device.type != "cuda":
            print("--check-sync: needs a CUDA device (torch's sync debug mode); skipped")
            return
        short, long = syncs(configs[1], benchmark, 50), syncs(configs[1], benchmark, 200)
        verdict = "no sync per step" if short == long else "SYNCS GROW WITH THE STEPS"
        print(f"host syncs of one context with eval_every=1: {short} over 50 steps, {long} over 200 steps: {verdict}")


if __name__ == "__main__":
    main()
