"""EWC's diagonal Fisher: cltui's batched estimates against a per-sample loop.

The layer-wise estimate (used whenever a network is made of Linear, Conv2d and BatchNorm layers) and
the general torch.func vmap-of-grad estimate compute the same numbers as the loop (tests/methods/test_regularization.py
checks equality); this prints how long each takes on the split-MNIST MLP (784-400-400, a 2-class context in
class-IL after 2 contexts, so 4 active classes), for each label mode. Target: batched >= 10x faster.

    python benchmarks/fisher.py [--device cpu|cuda] [--samples 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.engine.models import build_model
from core.engine.scenarios import ScenarioView
from core.methods.parts.fisher import fisher_diagonal


def per_sample_loop(model, x, y, view, context, mode):
    """The textbook way: one forward and one backward pass per sample (per class for 'all')."""
    params = [p for p in model.parameters() if p.requires_grad]
    fisher = [torch.zeros_like(p) for p in params]
    model.eval()
    for i in range(x.shape[0]):
        logits, target = view.train_view(model(x[i : i + 1]), y[i : i + 1], context)
        log_p = F.log_softmax(logits, 1)[0]
        if mode == "all":
            probs = log_p.exp().detach()
            for c in range(log_p.shape[0]):
                grads = torch.autograd.grad(log_p[c], params, retain_graph=True)
                for f, g in zip(fisher, grads, strict=False):
                    f += probs[c] * g.square()
        else:
            label = target[0] if mode == "true" else log_p.argmax()
            for f, g in zip(fisher, torch.autograd.grad(log_p[label], params), strict=False):
                f += g.square()
    return [f / x.shape[0] for f in fisher]


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=512)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10, hidden=[400, 400]).to(device)
    view = ScenarioView("class", 2, 5)
    x = torch.rand(args.samples, 1, 28, 28, device=device)
    y = torch.randint(2, 4, (args.samples,), device=device)  # context 1: labels 2, 3; classes 0-3 active
    print(f"torch {torch.__version__} · {device} · {torch.get_num_threads()} threads · MLP 784-400-400-10 · "
          f"{args.samples} samples, class-IL context 1 (4 active classes)")
    print("| labels | per-sample loop (s) | vmap of grad (s) | layer-wise (s) | speed-up of layer-wise |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("all", "true", "pred"):
        for how in ("vmap", "layerwise"):
            fisher_diagonal(model, x[:8], y[:8], view, 1, mode, method=how)  # warm-up
        vmapped = timed(lambda m=mode: fisher_diagonal(model, x, y, view, 1, m, method="vmap"), device)
        layerwise = timed(lambda m=mode: fisher_diagonal(model, x, y, view, 1, m, method="layerwise"), device)
        loop = timed(lambda m=mode: per_sample_loop(model, x, y, view, 1, m), device)
        print(f"| {mode} | {loop:.2f} | {vmapped:.2f} | {layerwise:.3f} | {loop / layerwise:.0f}x |")


if __name__ == "__main__":
    main()
