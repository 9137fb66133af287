"""A-GEM and LwF as van de Ven's reference runs them, loop and all, on cltui's data: are the reference's figures
(issue 20, split-MNIST protocol on digits, seeds 0-2: A-GEM 0.71, LwF 0.26) properties of the algorithms, or
of something outside them (the data files)?

A-GEM's step is the reference's (models/classifier.py `train_a_batch`, use_replay='inequality'): the replay loss
backpropagated and flattened, the gradients zeroed, the current loss backpropagated, projected when the two
disagree, copied back, one optimiser step. LwF's is the reference's with `lwf_weighting` (main.py sets it for
--lwf): CE on the active classes + `loss_fn_kd` of the previous model's scores on the same inputs at T=2, the
targets padded with zeros up to the active classes, the sum unweighted (class-IL). The loop is the reference's
(train/train_task_based.py): epoch loaders that reshuffle and drop the last partial batch, for the current
context and for the memory (batch min(128, |memory|)); the memory gets `budget` random samples per class after
each context; one Adam carried across contexts; class-IL with the reference's default `--active-classes all`
(or `so-far`). Only the tensors are cltui's (core/engine/data.py, the same a `cltui run` trains on).
tests/methods/test_agem.py shows cltui takes A-GEM's steps to float rounding; this script shows where they lead.

    python benchmarks/reference_loop.py --seeds 3                       # A-GEM, split-MNIST protocol on digits
    python benchmarks/reference_loop.py --seeds 3 --method lwf
    python benchmarks/reference_loop.py --seeds 5 --preset split-digits --active so-far
    python benchmarks/reference_loop.py --seeds 3 --optimizer sgd --lr 0.1
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def reference_step(model, opt, x, y, x_, y_, active: int, eps: float = 0.0) -> None:
    import torch.nn.functional as F

    opt.zero_grad()
    F.cross_entropy(model(x_)[:, :active], y_).backward()
    grad_rep = [p.grad.detach().flatten().clone() for p in model.parameters()]
    opt.zero_grad()
    F.cross_entropy(model(x)[:, :active], y).backward()
    grad_cur = [p.grad.flatten() for p in model.parameters()]
    angle = sum((g * r).sum() for g, r in zip(grad_cur, grad_rep, strict=False))
    if angle < 0:
        length = sum((r * r).sum() for r in grad_rep)
        for p, g, r in zip(model.parameters(), grad_cur, grad_rep, strict=False):
            p.grad.copy_((g - angle / (length + eps) * r).view_as(p))
    opt.step()


def loss_fn_kd(scores, target_scores, T: float = 2.0):
    """The reference's models/utils/loss_functions.py loss_fn_kd: KD with the targets padded with zeros."""
    import torch
    import torch.nn.functional as F

    log_scores_norm = F.log_softmax(scores / T, dim=1)
    targets_norm = F.softmax(target_scores / T, dim=1)
    n = scores.size(1)
    if n > target_scores.size(1):
        zeros = torch.zeros(scores.size(0), n - target_scores.size(1), device=scores.device)
        targets_norm = torch.cat([targets_norm.detach(), zeros], dim=1)
    return -(targets_norm * log_scores_norm).sum(dim=1).mean() * T**2


def lwf_step(model, previous, opt, x, y, active: int, old_active: int) -> None:
    """train_a_batch with x_ = x and scores_ = the previous model's scores over the classes it was trained on."""
    import torch
    import torch.nn.functional as F

    opt.zero_grad()
    y_hat = model(x)[:, :active]
    loss = F.cross_entropy(y_hat, y)
    if previous is not None:
        with torch.no_grad():
            scores_ = previous(x)[:, :old_active]
        loss = loss + loss_fn_kd(y_hat, scores_)
    loss.backward()
    opt.step()


def epochs(n: int, batch: int, generator):
    """The reference's DataLoader(shuffle=True, drop_last=True), restarted whenever it runs out."""
    import torch

    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, n - batch + 1, batch):
            yield order[i : i + batch]


def run(seed: int, args: argparse.Namespace, data_dir: Path) -> list[float]:
    import torch
    from torch import nn

    from core.engine.data import build_benchmark
    from core.schema.presets import build_config

    cfg = build_config(args.preset, method="agem", scenario="class", device="cpu", seed=seed,
                       overrides=[f"benchmark.data_dir={data_dir}"] if data_dir else [])
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    bench = build_benchmark(cfg.benchmark, "cpu")
    c, contexts, budget = bench.classes_per_context, len(bench.contexts), cfg.method.budget
    n_in = math.prod(bench.input_shape)
    widths = [n_in, *cfg.model.hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(widths[-1], c * contexts))
    opt = (torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999)) if args.optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=args.lr))
    memory_x: list[torch.Tensor] = []
    memory_y: list[torch.Tensor] = []
    accs: list[float] = []
    previous = None
    for k, ctx in enumerate(bench.contexts):
        active = c * contexts if args.active == "all" else c * (k + 1)
        old_active = c * contexts if args.active == "all" else c * k
        current = epochs(ctx.n_train, cfg.train.batch_size, g)
        if memory_x and args.method == "agem":
            mx, my = torch.cat(memory_x), torch.cat(memory_y)
            replay = epochs(len(mx), min(cfg.train.batch_size, len(mx)), g)
        for _ in range(cfg.train.iterations):
            idx = next(current)
            x, y = ctx.inputs(ctx.x_train[idx]), ctx.y_train[idx]
            if args.method == "lwf":
                lwf_step(model, previous, opt, x, y, active, old_active)
            elif memory_x:
                j = next(replay)
                reference_step(model, opt, x, y, mx[j], my[j], active)
            else:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x)[:, :active], y).backward()
                opt.step()
        if args.method == "lwf":
            import copy

            previous = copy.deepcopy(model).eval().requires_grad_(False)
        for label in ctx.y_train.unique():
            pick = (ctx.y_train == label).nonzero().squeeze(1)
            pick = pick[torch.randperm(len(pick), generator=g)[:budget]]
            memory_x.append(ctx.inputs(ctx.x_train[pick]))
            memory_y.append(ctx.y_train[pick])
        with torch.no_grad():
            accs = [(model(t.inputs(t.x_test))[:, : c * (k + 1)].argmax(1) == t.y_test).float().mean().item()
                    for t in bench.contexts[: k + 1]]
        print(f"  seed {seed} after context {k}: " + " ".join(f"{a:.2f}" for a in accs), flush=True)
    return accs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--method", choices=["agem", "lwf"], default="agem")
    parser.add_argument("--preset", default="split-mnist", help="split-mnist (on digits written as MNIST files, "
                        "unless --data-dir has MNIST) or split-digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--active", choices=["all", "so-far"], default="all")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else None
        if args.preset == "split-mnist" and data_dir is None:
            from fidelity import write_digits_as_mnist

            data_dir = write_digits_as_mnist(Path(tmp))
        finals = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            accs = run(seed, args, data_dir)
            finals.append(sum(accs) / len(accs))
            print(f"seed {seed}: final average accuracy {finals[-1]:.3f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    mean = sum(finals) / len(finals)
    sem = (math.sqrt(sum((f - mean) ** 2 for f in finals) / (len(finals) - 1) / len(finals))
           if len(finals) > 1 else 0.0)
    print(f"\nreference {args.method} loop, {args.preset}, class-IL, active {args.active}, "
          f"{args.optimizer} lr {args.lr}: {' / '.join(f'{f:.3f}' for f in finals)}  mean {mean:.3f} ± {sem:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
