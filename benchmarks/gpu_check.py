"""The device path, run end to end: every method on the device in fp32 and bf16, a detached run stopped and
resumed there, a compare with one job per GPU, the throughput of the split-MNIST MLP and of a CIFAR ResNet-32
step against the CPU, and torch.compile (and CUDA graphs on CUDA) where they apply. Prints a markdown summary;
exits 1 if any check failed.

    python benchmarks/gpu_check.py                 # on cuda (under 8 minutes on one GPU)
    python benchmarks/gpu_check.py --device cpu    # the same checks on the CPU (under 3 minutes)
    python benchmarks/gpu_check.py --device cpu --quick   # in-process parts only: a few methods, the MLP (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Each run is a few steps: the phases that have their own step counts get a few too.
FEW = ["train.iterations=4", "benchmark.contexts=2"]
TINY = {
    "gen-classifier": ["method.importance_samples=2"],
    "deepinversion": ["method.steps=3", "method.verifier_iterations=3", "method.dreams_per_class=2",
                      "method.export_per_class=1"],
    "abd": ["method.generator_iterations=3", "method.verifier_iterations=3", "method.dreams_per_class=2",
            "method.export_per_class=1"],
}
# the generation methods: a few verifier and reverse-classifier steps, a few samples scored (their GAN steps are FEW)
TINY.update({m: ["method.verifier_iterations=3", "method.reverse_iterations=2", "method.samples_per_class=4",
                 "method.export_per_class=1"] for m in ("gan-finetune", "gan-ewc", "mergan-jtr", "mergan-ra")})
PRESET = {"deepinversion": "split-digits-dfcil", "abd": "split-digits-dfcil"}
# the class-IL papers' methods: their preset sets the total memory they share
CLASS_IL = ("icarl", "wa", "bic", "lucir", "podnet", "der-expand", "xder", "foster", "gdumb", "er-ace")
PRESET.update({m: "split-digits-b5-1" for m in CLASS_IL})
PRESET["xder"] = "split-digits"  # its present-head loss needs 2 classes or more per context
TINY["xder"] = ["method.memory_total=200"]
TINY["gdumb"] = ["method.epochs=1"]
TINY["podnet"] = ["model.kind=resnet20", "method.memory_total=200", "method.finetune_epochs=1"]
QUICK_METHODS = ("none", "ewc", "er", "lwf", "icarl")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    speeds: list[tuple[str, str, str, float, float]] = field(default_factory=list)  # what, device, precision, it/s, ms

    def check(self, name: str, fn: Callable[[], str]) -> None:
        start = time.monotonic()
        try:
            detail, ok = fn(), True
        except Exception as e:  # noqa: BLE001 - every failure is a row of the report, then the exit code
            detail, ok = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}", False
            traceback.print_exc(file=sys.stderr)
        self.checks.append(Check(name, ok, detail, time.monotonic() - start))
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail} ({time.monotonic() - start:.1f} s)", flush=True)


# --- every method, fp32 and bf16 -------------------------------------------------------------------------


def method_run(method: str, precision: str, device: str) -> Callable[[], str]:
    def run() -> str:
        from core.schema.params import METHOD_PARAMS
        from core.schema.presets import build_config
        from core.training import run

        scenarios = METHOD_PARAMS[method].scenarios
        scenario = "class" if "class" in scenarios else scenarios[0]
        config = build_config(PRESET.get(method, "split-digits"), method=method, scenario=scenario, device=device,
                              overrides=[*FEW, *TINY.get(method, []), f"train.precision={precision}"])
        record = run(config, Path(tempfile.mkdtemp(prefix=f"gpu-check-{method}-")))
        if record["status"] != "finished":
            raise RuntimeError(record["error"]["message"] if isinstance(record["error"], dict) else record["error"])
        return f"{scenario}-IL, final avg acc {record['metrics']['final_avg_acc']:.3f} on {record['env']['device']}"

    return run


def cifar100_run(method: str, device: str, data: Path) -> Callable[[], str]:
    """The CIFAR-100 B50-10 preset (ResNet-32, the papers' memory of 2000) for a few steps of two contexts, on a
    tiny CIFAR-100 written in its real layout (this machine has no data set): the path the papers' protocol takes
    the day CIFAR-100 is there."""
    def run() -> str:
        from core.schema.presets import build_config
        from core.training import run
        from tests.helpers.data import CHECKSUMS_ENV, make_cifar100, manifest_path

        if not (data / "cifar-100-python").exists():
            make_cifar100(data, per_class_train=4, per_class_test=2)
        os.environ[CHECKSUMS_ENV] = str(manifest_path(data))  # the files made here are vouched for, no others
        config = build_config("cifar100-b50-10", method=method, device=device,
                              overrides=[*FEW, *(o for o in TINY.get(method, []) if not o.startswith(("model.",
                                         "method.memory_total"))), f"benchmark.data_dir={data}"])  # the preset's
        record = run(config, Path(tempfile.mkdtemp(prefix=f"gpu-check-cifar-{method}-")))
        if record["status"] != "finished":
            raise RuntimeError(record["error"]["message"] if isinstance(record["error"], dict) else record["error"])
        classes = [len(c["classes"]) for c in record["contexts"]]
        return f"contexts of {'+'.join(map(str, classes))} classes, old / new acc " \
               f"{record['metrics']['old_acc']:.3f} / {record['metrics']['new_acc']:.3f} on {record['env']['device']}"

    return run


# --- a detached run stopped, then resumed by a spawned worker; a compare ------------------------------------


def resume_check(device: str, runs: Path) -> str:
    from core.launch import worker
    from core.runs.record import read_run_json
    from core.runs.store import RunStore
    from core.schema.presets import build_config

    # long enough a context (a second or more) that the stop lands inside the second one
    iterations = 300 if device == "cpu" else 3000
    config = build_config("split-digits", device=device, overrides=[f"train.iterations={iterations}",
                                                                    "benchmark.contexts=3",
                                                                    "train.progress_interval=0.05"])
    run_dir = RunStore(runs).new_run_dir_for(config)
    detached = worker.start_detached(config, run_dir)
    deadline = time.monotonic() + 120
    while '"ContextEvaluated"' not in _events(run_dir):  # the first context is done: stop it there
        if detached.wait(0.2) is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the detached run ended or stalled before its first context: "
                               f"{read_run_json(run_dir).get('error')}")
    detached.stop(timeout=60)
    first = read_run_json(run_dir)
    if first["status"] != "cancelled" or not first["contexts"]:
        raise RuntimeError(f"stopped run is {first['status']} with {len(first['contexts'])} contexts")
    handle = worker.start(config, run_dir, resume=True)
    deadline = time.monotonic() + 300
    while not handle.done:
        handle.pump(0.2)
        if time.monotonic() > deadline:
            handle.kill()
            raise RuntimeError("the resumed run did not end within 300 s")
    record = read_run_json(run_dir)
    if record["status"] != "finished" or len(record["acc_matrix"]) != 3:
        raise RuntimeError(f"resumed run is {record['status']}: {record.get('error')}")
    return (f"detached run cancelled after {len(first['contexts'])} context(s), resumed to 3 on "
            f"{record['env']['device']}")


def _events(run_dir: Path) -> str:
    path = run_dir / "events.jsonl"
    return path.read_text() if path.exists() else ""


def compare_check(device: str, runs: Path) -> str:
    from core.runs.record import read_run_json
    from core.runs.store import RunStore

    command = [sys.executable, "-c", "from cltui.cli.main import app; app()", "compare", "split-digits", "--methods",
               "none,er", "--seeds", "1", "--set", "train.iterations=20", "--device", device, "--quiet",
               "--runs-dir", str(runs)]
    if device == "cpu":
        command += ["--jobs", "1"]
    out = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"exit {out.returncode}: {(out.stderr or out.stdout).strip()[-300:]}")
    records = [read_run_json(e.path) for e in RunStore(runs).list()]
    devices = sorted({r["env"]["device"] for r in records})
    if len(records) != 2 or any(r["status"] != "finished" for r in records):
        raise RuntimeError(f"runs: {[r['status'] for r in records]}")
    if device != "cpu" and not all(d.startswith("cuda") for d in devices):
        raise RuntimeError(f"runs on {devices}")
    return f"2 runs finished on {', '.join(devices)}; threads {sorted({r['env'].get('threads') for r in records})}"


# --- throughput --------------------------------------------------------------------------------------------


def step_speed(kind: str, device: str, precision: str = "fp32", compile_mode: str | None = None,
               iterations: int = 200, warmup: int = 10) -> tuple[float, float]:
    """(iterations/s, compile-and-warm-up seconds) of the bare step (forward, cross-entropy, backward, Adam) of the
    split-MNIST MLP (784-400-400-10) or a CIFAR model, batch 128, on synthetic tensors already on the device."""
    import torch
    import torch.nn.functional as F

    from core.engine.models import build_model

    dev = torch.device(device)
    torch.manual_seed(0)
    shape, classes = ((1, 28, 28), 10) if kind in ("mlp", "lenet5") else ((3, 32, 32), 100)
    model = build_model(kind, shape, classes, hidden=[400, 400]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(128, *shape, device=dev)
    y = torch.randint(0, classes, (128,), device=dev)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    sync()
    return iterations / (time.perf_counter() - start), warm


def speed_check(report: Report, what: str, kind: str, device: str, precision: str, compile_mode: str | None,
                iterations: int) -> Callable[[], str]:
    def run() -> str:
        rate, warm = step_speed(kind, device, precision, compile_mode, iterations, warmup=3 if iterations < 20 else 10)
        report.speeds.append((what, device, precision, rate, warm))
        return f"{rate:.1f} it/s, {128 * rate:,.0f} samples/s (warm-up {warm:.1f} s)"

    return run


def compiled_run_check(device: str) -> str:
    """train.compile=true through the real loop (core.training.train's model.compile())."""
    from core.schema.presets import build_config
    from core.training import run

    config = build_config("split-digits", device=device, overrides=[*FEW, "train.compile=true"])
    record = run(config, Path(tempfile.mkdtemp(prefix="gpu-check-compile-")))
    if record["status"] != "finished":
        raise RuntimeError(str(record["error"]))
    return f"finished, final avg acc {record['metrics']['final_avg_acc']:.3f}"


# --- the whole check ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1, cpu (default cuda)")
    parser.add_argument("--quick", action="store_true", help=f"methods {', '.join(QUICK_METHODS)} only and a "
                        "short MLP throughput: no worker processes (resume, compare), ResNet-32 or compile")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (core/runs/threads.py)
    import torch

    from core.methods import registered_methods
    from core.runs import threads

    threads.apply(threads.choose())
    device = args.device
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(f"--device {device}: no CUDA device is visible; use --device cpu", file=sys.stderr)
        return 2
    report = Report()
    runs = Path(tempfile.mkdtemp(prefix="gpu-check-runs-"))

    methods = [m for m in registered_methods() if not args.quick or m in QUICK_METHODS]
    for method in methods:
        for precision in ("fp32", "bf16"):
            report.check(f"{method} {precision}", method_run(method, precision, device))
    if not args.quick:
        for method in CLASS_IL:
            report.check(f"cifar100-b50-10 {method}", cifar100_run(method, device, runs / "cifar100"))
        report.check("detached run stopped, resumed", lambda: resume_check(device, runs / "resume"))
        report.check(f"compare ({'one job per GPU' if cuda else 'jobs 1'})",
                     lambda: compare_check(device, runs / "cmp"))

    iterations = 20 if args.quick else 200
    targets = [device] + (["cpu"] if cuda else [])
    for target in targets:
        for precision in ("fp32", "bf16"):
            report.check(f"MLP step {target} {precision}",
                         speed_check(report, "MLP 784-400-400-10", "mlp", target, precision, None, iterations))
        if not args.quick:
            report.check(f"ResNet-32 step {target} fp32", speed_check(
                report, "ResNet-32 CIFAR", "resnet32", target, "fp32", None, 50 if target != "cpu" else 3))
    if cuda and not args.quick:
        report.check(f"ResNet-32 step {device} bf16",
                     speed_check(report, "ResNet-32 CIFAR", "resnet32", device, "bf16", None, 50))
    if not (args.quick or args.no_compile):
        modes = ["default"] + (["reduce-overhead"] if cuda else [])  # CUDA graphs: CUDA only
        for kind, label in (("mlp", "MLP 784-400-400-10"), ("lenet5", "LeNet-5 28x28")):
            if kind != "mlp":
                report.check(f"{label} step {device} fp32", speed_check(report, label, kind, device, "fp32", None,
                                                                        iterations))
            for mode in modes:
                report.check(f"{label} compiled ({mode}) {device}", speed_check(
                    report, f"{label} compiled {mode}", kind, device, "fp32", mode, iterations))
        report.check(f"train.compile=true run on {device}", lambda: compiled_run_check(device))

    print_summary(report, device, time.monotonic() - started, torch)
    if args.json:
        args.json.write_text(json.dumps({"checks": [c.__dict__ for c in report.checks],
                                         "speeds": report.speeds}, indent=1))
    return 0 if all(c.ok for c in report.checks) else 1


def print_summary(report: Report, device: str, seconds: float, torch: Any) -> None:
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else platform.processor() \
        or platform.machine()
    failed = [c for c in report.checks if not c.ok]
    print(f"\n## gpu_check on {device} ({name}), torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{torch.get_num_threads()} CPU threads, {seconds:.0f} s\n")
    print(f"{len(report.checks) - len(failed)} of {len(report.checks)} checks passed.\n")
    if failed:
        print("| failed check | error |\n|---|---|")
        for c in failed:
            print(f"| {c.name} | {c.detail} |")
        print()
    print("| step (batch 128) | device | precision | it/s | samples/s | vs CPU | warm-up s |")
    print("|---|---|---|---|---|---|---|")
    cpu = {(w, p): r for w, d, p, r, _ in report.speeds if d == "cpu"}
    for what, dev, precision, rate, warm in report.speeds:
        base = cpu.get((what, precision))
        versus = f"{rate / base:.1f}x" if base and dev != "cpu" else ""
        print(f"| {what} | {dev} | {precision} | {rate:,.1f} | {128 * rate:,.0f} | {versus} | {warm:.1f} |")
    print("\n| check | result | s |\n|---|---|---|")
    for c in report.checks:
        print(f"| {c.name} | {'ok' if c.ok else '**FAILED**'}: {c.detail} | {c.seconds:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
