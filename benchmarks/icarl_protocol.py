"""iCaRL's two replay protocols on split-digits class-IL: the cost of a training step against fine-tuning
(`none`) and the final average accuracy, over seeds.

- union (the default, Rebuffi et al. and van de Ven's code): each batch drawn from the union of the context's
  data and the exemplars, the batch size unchanged.
- extra-batch (cltui's first protocol): the batch plus an equally large batch of exemplars.

Two step costs: a whole run's training time per iteration (run.json's contexts[].train_s: the loop only, no
herding or evaluation; wall time, so other load on the machine shows), and the CPU time of one step (the
method's loss, backward, Adam) in the last context, where the buffer is fullest and the old model runs on
every step, after the earlier contexts were learned for a few steps each (process CPU time: steady on a busy
machine when OMP_NUM_THREADS=1). Targets (issue 19): union within 1.4x of none; union's accuracy within 0.02
of extra-batch's.

    OMP_NUM_THREADS=1 python benchmarks/icarl_protocol.py [--seeds 0,1,2] [--iterations 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {"none": ("none", []), "icarl union": ("icarl", ["method.replay=union"]),
            "icarl extra-batch": ("icarl", ["method.replay=extra-batch"])}


def one_run(method: str, overrides: list[str], seed: int, device: str) -> dict:
    from core.schema.presets import build_config
    from core.training import run

    config = build_config("split-digits", method=method, scenario="class", device=device, seed=seed,
                          overrides=overrides)
    record = run(config, Path(tempfile.mkdtemp(prefix=f"cltui-bench-{method}-")))
    assert record["status"] == "finished", record["error"]
    rows = record["contexts"]
    return {"step_ms": 1000 * sum(r["train_s"] for r in rows) / sum(r["iterations"] for r in rows),
            "last_ms": 1000 * rows[-1]["train_s"] / rows[-1]["iterations"],
            "acc": record["metrics"]["final_avg_acc"], "threads": record["env"].get("threads")}


def step_cpu_ms(method: str, overrides: list[str], device: str, steps: int = 300) -> float:
    """CPU milliseconds of one training step (loss, backward, Adam) in the last context of split-digits."""
    import time

    import torch

    from core.engine.data import build_benchmark
    from core.engine.scenarios import ScenarioView
    from core.methods import method_class
    from core.methods.parts.base import Batch, ContextInfo
    from core.methods.parts.common import frozen_copy
    from core.schema.presets import build_config

    config = build_config("split-digits", method=method, scenario="class", device=device, overrides=overrides)
    dev = torch.device(device)
    bench = build_benchmark(config.benchmark, dev)
    view = ScenarioView("class", bench.classes_per_context, len(bench.contexts))
    cls = method_class(method)
    torch.manual_seed(0)
    model = cls.build_model(config, bench.input_shape, view.head_size).to(dev)
    m = cls(config.method, config, model, view, bench, dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    generator = torch.Generator(dev).manual_seed(0)
    previous = None
    for k, ctx in enumerate(bench.contexts):
        info = ContextInfo(k, ctx, previous, lambda e: None)
        m.before_context(info)
        last = k == len(bench.contexts) - 1

        def step(ctx=ctx, info=info, k=k) -> None:
            idx = torch.randint(0, ctx.n_train, (config.train.batch_size,), generator=generator, device=dev)
            loss = m.loss(Batch(ctx.inputs(ctx.x_train[idx]), ctx.y_train[idx], k), info)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            m.after_backward(info)
            opt.step()
            m.after_step(info)

        for _ in range(20):
            step()
        if last:
            start = time.process_time()
            for _ in range(steps):
                step()
            return 1000 * (time.process_time() - start) / steps
        m.after_context(info)
        previous = frozen_copy(model) if cls.needs_previous_model else None
    raise AssertionError("unreachable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=300, help="per context (the preset's 300)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per variant and seed (median kept)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps-only", action="store_true", help="only the CPU time of a step, no runs")
    args = parser.parse_args()
    if args.steps_only:
        for name, (method, overrides) in VARIANTS.items():
            print(f"{name}: {statistics.median(step_cpu_ms(method, overrides, args.device) for _ in range(3)):.3f} "
                  f"CPU ms per last-context step")
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[int, dict]] = {name: {} for name in VARIANTS}
    for seed in seeds:
        for _ in range(args.repeats):  # variants interleaved, so a busy spell on the machine hits them alike
            for name, (method, overrides) in VARIANTS.items():
                r = one_run(method, [*overrides, f"train.iterations={args.iterations}"], seed, args.device)
                kept = results[name].setdefault(seed, {"step_ms": [], "last_ms": [], "acc": r["acc"]})
                kept["step_ms"].append(r["step_ms"])
                kept["last_ms"].append(r["last_ms"])
                print(f"  seed {seed} {name:18s} {r['step_ms']:.3f} ms/step (last context {r['last_ms']:.3f}), "
                      f"final avg acc {r['acc']:.4f}, {r['threads']} threads", flush=True)

    cpu = {name: statistics.median(step_cpu_ms(method, overrides, args.device) for _ in range(3))
           for name, (method, overrides) in VARIANTS.items()}

    def med(name: str, key: str) -> float:
        return statistics.median(statistics.median(results[name][s][key]) for s in seeds)

    print(f"\nsplit-digits class-IL, {args.iterations} iterations per context, seeds {args.seeds}, "
          f"device {args.device}\n")
    print("| variant | run ms/step (wall) | x none | last-context step CPU ms | x none | final avg acc (per seed) "
          "| mean |")
    print("|---|---|---|---|---|---|---|")
    for name in VARIANTS:
        accs = [results[name][s]["acc"] for s in seeds]
        print(f"| {name} | {med(name, 'step_ms'):.3f} | {med(name, 'step_ms') / med('none', 'step_ms'):.2f} | "
              f"{cpu[name]:.3f} | {cpu[name] / cpu['none']:.2f} | "
              f"{', '.join(f'{a:.4f}' for a in accs)} | {statistics.mean(accs):.4f} |")
    gap = statistics.mean(results["icarl union"][s]["acc"] - results["icarl extra-batch"][s]["acc"] for s in seeds)
    ratio = med("icarl union", "step_ms") / med("none", "step_ms")
    print(f"\nunion vs none: {ratio:.2f}x per run step (wall), "
          f"{cpu['icarl union'] / cpu['none']:.2f}x per last-context step (CPU) (target <= 1.4); "
          f"union - extra-batch accuracy: {gap:+.4f} (target within 0.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
