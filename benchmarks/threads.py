"""How many CPU threads a step should use, by the work in the step: the bare training step (forward,
cross-entropy, backward, fused Adam; batch 128, synthetic tensors) of cltui's models, each in a fresh process
with 1 thread, with every usable core and passive OpenMP waits (cltui's default), and with every core and
spinning waits (OMP_WAIT_POLICY=ACTIVE). Prints ms per step and the ratios, measured in this one invocation;
run it on an otherwise idle machine.

    python benchmarks/threads.py
    python benchmarks/threads.py --steps 300 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODELS = {  # name: (kind, input shape, hidden)
    "split-digits MLP 64-400-400": ("mlp", (1, 8, 8), [400, 400]),
    "split-MNIST MLP 784-400-400": ("mlp", (1, 28, 28), [400, 400]),
    "perm-MNIST MLP 1024-1000-1000": ("mlp", (1, 32, 32), [1000, 1000]),
    "LeNet-5 28x28": ("lenet5", (1, 28, 28), None),
}

CHILD = """
import json, sys, time
import torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
from core.engine.models import build_model
torch.set_num_interop_threads(1)
kind, shape, hidden, steps = {kind!r}, {shape!r}, {hidden!r}, {steps}
torch.manual_seed(0)
model = build_model(kind, shape, 10, hidden=hidden)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
x, y = torch.randn(128, *shape), torch.randint(0, 10, (128,))
def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
for _ in range(20):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({{"ms": 1000 * (time.perf_counter() - start) / steps, "threads": torch.get_num_threads()}}))
"""


def measure(kind: str, shape: tuple, hidden: list | None, steps: int, threads: int, policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    code = CHILD.format(root=str(ROOT), kind=kind, shape=shape, hidden=hidden, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per setting; the median counts")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    settings = [("1 thread", 1, None), (f"{cores} threads, passive", cores, "PASSIVE"),
                (f"{cores} threads, active", cores, "ACTIVE")]
    print(f"bare step, batch 128, fused Adam; median of {args.repeats} processes x {args.steps} steps; "
          f"{cores} usable cores\n")
    print("| model | " + " | ".join(f"{name} (ms)" for name, _, _ in settings) + " | passive / 1 thread |")
    print("|---|" + "---:|" * (len(settings) + 1))
    for label, (kind, shape, hidden) in MODELS.items():
        ms = [statistics.median(measure(kind, shape, hidden, args.steps, n, policy) for _ in range(args.repeats))
              for _, n, policy in settings]
        print(f"| {label} | " + " | ".join(f"{m:.2f}" for m in ms) + f" | {ms[1] / ms[0]:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
