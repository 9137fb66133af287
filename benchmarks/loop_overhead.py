"""Time per iteration of cltui's full training loop against the bare model step, measured in one run.

The bare step is forward, cross-entropy, backward and an Adam step on one preloaded batch: the least
any training loop can do. The full loop is core.train's context loop as a run uses it: device-side
batch sampling, scenario view of the logits, the method's hooks, the loss kept on the device, the
progress check. Target: ratio <= 1.15 on CPU.

    python benchmarks/loop_overhead.py [--device cpu|cuda] [--iterations 600] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import Split, build_benchmark
from core.methods.base import ContextInfo
from core.models import build_model
from core.presets import build_config
from core.train import Trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step_time(config, input_shape, n_out, device, iterations) -> float:
    torch.manual_seed(0)
    m = config.model
    model = build_model(m.kind, input_shape, n_out, hidden=m.hidden, batch_norm=m.batch_norm).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    x = torch.randn(config.train.batch_size, *input_shape, device=device)
    y = torch.randint(0, n_out, (config.train.batch_size,), device=device)
    for _ in range(20):  # warm-up
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - start) / iterations


def loop_time(config, benchmark, device, iterations) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp), emit=lambda e: None, should_stop=lambda: False, benchmark=benchmark)
        context = trainer.benchmark.contexts[0]
        info = ContextInfo(0, context, None, lambda e: None, config.train.progress_interval)
        trainer.train_context(info, 20)  # warm-up
        seconds, _ = trainer.train_context(info, iterations)
    return seconds / iterations


def synthetic_mnist(n_train: int = 12000, n_test: int = 2000) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.rand(n_train, 1, 28, 28, generator=g), torch.randint(0, 10, (n_train,), generator=g),
                 torch.rand(n_test, 1, 28, 28, generator=g), torch.randint(0, 10, (n_test,), generator=g),
                 [str(i) for i in range(10)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    cases = [
        ("split-digits MLP 64-400-400-10", build_config("split-digits", device=args.device), None),
        ("split-MNIST MLP 784-400-400-10", build_config("split-mnist", device=args.device), synthetic_mnist()),
    ]
    print(f"torch {torch.__version__} · {device} · {torch.get_num_threads()} threads · batch 128 · "
          f"{args.iterations} iterations x {args.repeats} repeats (median)")
    print("| model | bare step (ms/it) | cltui loop (ms/it) | ratio |")
    print("|---|---:|---:|---:|")
    for name, config, split in cases:
        benchmark = build_benchmark(config.benchmark, device, split=split)
        n_out, shape = config.head_size, benchmark.input_shape
        bare, loop = [], []
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            bare.append(bare_step_time(config, shape, n_out, device, args.iterations))
            loop.append(loop_time(config, benchmark, device, args.iterations))
        b, lp = statistics.median(bare), statistics.median(loop)
        print(f"| {name} | {1e3 * b:.3f} | {1e3 * lp:.3f} | {lp / b:.3f} |")


if __name__ == "__main__":
    main()
