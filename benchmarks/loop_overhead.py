"""Time per iteration of cltui's real training loop against the bare model step and the FLOP floor, in one process.

The real loop is what `cltui run split-mnist` trains with: the preset's config, data cut into contexts by
core.engine.data.build_benchmark (synthetic MNIST-shaped tensors, or the real files with --data real), Trainer's
train_context (device-side BatchSampler, the context's input view, the scenario view of the logits, the method's
hooks, losses kept on the device, the progress check), the optimiser the run builds, and the CPU thread settings a
worker applies before it imports torch (core/runs/threads.py: its thread count and OpenMP's passive waits).
The bare step is forward, cross-entropy, backward and an Adam step on one preloaded batch: with Adam's default
(for-loop) implementation, `foreach=True` and `fused=True`. The FLOP floor is the step's FLOPs (6 x batch x
weights for an MLP) at the GEMM rate this process measures for the model's own layer shapes.

Every variant is timed `--repeats` times, interleaved so that drift in the machine's load hits all alike; the
median is printed, and every ratio is against the fused bare step of the same invocation.

    python benchmarks/loop_overhead.py [--device cpu|cuda] [--iterations 600] [--repeats 5] [--preset split-mnist]
    python benchmarks/loop_overhead.py --preset split-fashion-mnist --data real \
        --data-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.runs import threads as cpu_threads

cpu_threads.apply(cpu_threads.choose())  # as a worker does, before torch loads OpenMP

import torch
import torch.nn.functional as F

from core.engine.data import Split, build_benchmark
from core.methods.parts.base import ContextInfo
from core.schema.presets import build_config
from core.training.train import Trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device: torch.device, iterations: int) -> float:
    for _ in range(20):  # warm-up
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    sync(device)
    return (time.perf_counter() - start) / iterations


def bare_step(trainer: Trainer, adam: dict, gather: bool):
    """A bare step on the trainer's own model shape: one preloaded batch (or, with `gather`, a fresh index batch
    from the context's tensors, as the loop samples)."""
    torch.manual_seed(0)
    config = trainer.config
    net = trainer.method.build_model(config, trainer.benchmark.input_shape, trainer.scenario.head_size)
    net.to(trainer.device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.train.lr, **adam)
    context = trainer.benchmark.contexts[0]
    x, y = context.x_train[: config.train.batch_size], context.y_train[: config.train.batch_size]
    g = torch.Generator(trainer.device).manual_seed(0)

    def step() -> None:
        xb, yb = x, y
        if gather:
            idx = torch.randint(0, context.n_train, (config.train.batch_size,), device=trainer.device, generator=g)
            xb, yb = context.x_train[idx], context.y_train[idx]
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def loop_step(trainer: Trainer, iterations: int) -> float:
    context = trainer.benchmark.contexts[0]
    info = ContextInfo(0, context, None, lambda e: None, trainer.config.train.progress_interval)
    trainer.train_context(info, 20)  # warm-up
    seconds, _ = trainer.train_context(info, iterations)
    return seconds / iterations


def flop_floor(trainer: Trainer, iterations: int) -> tuple[float, float]:
    """(seconds per step at the measured GEMM rate, that rate in GFLOP/s): the MLP's forward and backward GEMMs
    (input-gradient of the first layer excluded, as autograd skips it) timed on their own."""
    b = trainer.config.train.batch_size
    dev = trainer.device
    weights = [m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Linear)]
    flops = sum(6 * b * w.numel() for w in weights) - 2 * b * weights[0].numel()
    acts = [torch.randn(b, w.shape[1], device=dev) for w in weights]
    grads = [torch.randn(b, w.shape[0], device=dev) for w in weights]

    def gemms() -> None:
        for i, (w, a, g) in enumerate(zip(weights, acts, grads, strict=True)):
            a @ w.detach().t()  # forward
            g.t() @ a  # weight gradient
            if i:
                g @ w.detach()  # input gradient

    seconds = timed(gemms, dev, iterations)
    return seconds, flops / seconds / 1e9


def synthetic_mnist(n_train: int = 60000, n_test: int = 10000) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.rand(n_train, 1, 28, 28, generator=g), torch.randint(0, 10, (n_train,), generator=g),
                 torch.rand(n_test, 1, 28, 28, generator=g), torch.randint(0, 10, (n_test,), generator=g),
                 [str(i) for i in range(10)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="split-mnist")
    parser.add_argument("--method", default="none")
    parser.add_argument("--data", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument("--data-dir", default=None, help="with --data real: the folder holding the preset's data set "
                        "(e.g. /usr/share/datasets/fashion-mnist for --preset split-fashion-mnist)")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    config = build_config(args.preset, method=args.method, device=args.device, data_dir=args.data_dir)
    benchmark = build_benchmark(config.benchmark, device, split=synthetic_mnist() if args.data == "synthetic" else None)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp), emit=lambda e: None, should_stop=lambda: False, benchmark=benchmark)
        variants = {
            "bare step, Adam (default)": lambda: timed(bare_step(trainer, {}, False), device, args.iterations),
            "bare step, Adam foreach=True": lambda: timed(bare_step(trainer, {"foreach": True}, False), device,
                                                          args.iterations),
            "bare step, Adam fused=True": lambda: timed(bare_step(trainer, {"fused": True}, False), device,
                                                        args.iterations),
            "bare step + index batch, fused": lambda: timed(bare_step(trainer, {"fused": True}, True), device,
                                                            args.iterations),
            f"cltui loop ({config.train.optimizer}, "
            f"{trainer.optimizer.defaults.get('fused') and 'fused' or 'default'})":
                lambda: loop_step(trainer, args.iterations),
            "FLOP floor": lambda: flop_floor(trainer, args.iterations)[0],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, measure in variants.items():
                times[name].append(measure())
        _, gflops = flop_floor(trainer, args.iterations)
    shape = "-".join(str(m.weight.shape[1]) for m in trainer.model.modules() if isinstance(m, torch.nn.Linear))
    print(f"{args.preset} ({config.model.kind} {shape}-{trainer.scenario.head_size}, batch {config.train.batch_size}, "
          f"method {args.method}, {args.data} data) · torch {torch.__version__} · {device} · "
          f"{torch.get_num_threads()} threads ({cpu_threads.in_use()['threads_from']}) · {args.iterations} it x "
          f"{args.repeats} repeats, median · GEMMs at {gflops:.0f} GFLOP/s")
    fused = statistics.median(times["bare step, Adam fused=True"])
    print("| step | ms/it | x fused bare step |")
    print("|---|---:|---:|")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"| {name} | {1e3 * m:.3f} | {m / fused:.2f} |")


if __name__ == "__main__":
    main()
