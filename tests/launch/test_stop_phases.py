"""A stop (Ctrl+C, SIGTERM, the TUI's `s`) is honoured within a second or two in every phase: the training
steps, and every long consolidation phase a method runs after (or before) a context: EWC's Fisher, iCaRL's
herding, DeepInversion's dreaming, ABD's generator, the dream verifier and the dream-quality figures, the
generative classifier's importance-sampled evaluation.

Each case runs a real training in-process through `core.training.run`, tiny except for the phase under test,
which is made huge at one context (`stage`): with `--set` overrides when the phase is the run's first, or,
to keep a completed context before it, by growing the method's parameters when that context begins (every
context uses the same parameters otherwise). The stop is asked `STOP_AFTER` seconds after the phase starts
(the run's `should_stop` turns True); the run must end cancelled within `LATENCY` seconds of that, still in
that phase, with the contexts completed before it kept in its accuracy matrix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from core import training
from core.engine.data import build_benchmark
from core.engine.loop import Cancelled
from core.engine.models import build_model
from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.gen_classifier import VAEBank
from core.methods.parts.base import ContextInfo, Method
from core.methods.parts.buffer import herding_order
from core.methods.parts.common import Dreams
from core.methods.parts.fisher import fisher_diagonal
from core.runs.events import ContextEvaluated, Event, PhaseFinished, PhaseStarted, RunCancelled
from core.schema.presets import build_config
from core.training.dreams import DreamJudge
from tests.helpers import data as fakedata

STOP_AFTER = 0.3  # seconds into the phase when the stop is asked
LATENCY = 2.0  # the promise: a stop is honoured within a second or two
DFCIL = "split-digits-dfcil"
DREAMS_TINY = ["train.iterations=5", "method.verifier_iterations=5", "method.dreams_per_class=2",
               "method.export_per_class=1"]


@dataclass
class Case:
    method: str
    phase: str
    preset: str = "split-digits"
    overrides: list[str] = field(default_factory=list)
    stage: int = 0  # the context whose phase is stopped
    grow: dict[str, Any] = field(default_factory=dict)  # method parameters set when context `stage` begins
    setup: Callable[[pytest.MonkeyPatch, Path], list[str]] | None = None  # extra overrides (data, patches)


def wide_mlp_fisher_in_small_chunks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    # The digits are a few hundred samples a context: shrinking the chunk gives the Fisher the many chunks
    # of a large data set (MNIST: 60 of 1024), and a wide MLP gives each chunk real work.
    monkeypatch.setattr("core.methods.parts.fisher.FISHER_CHUNK_FLOATS", 8)
    return ["model.hidden=[1500,1500]", "train.checkpoints=none"]


def mnist_sized_classes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    # Herding is one vectorised step per exemplar over all of a class's samples: it runs long with real
    # class sizes and budgets. Fake MNIST files with 2000 training images per class, in the real layout.
    fakedata.make_mnist(tmp_path / "data", n_train=20000, n_test=100)
    return [f"benchmark.data_dir={tmp_path / 'data'}", "benchmark.name=mnist"]


CASES = {
    # Fisher: the whole context at stage 1 (5 samples at stage 0), in many chunks, 10 labels each.
    "ewc-fisher": Case("ewc", "fisher", overrides=["benchmark.contexts=2", "benchmark.classes_per_context=5",
                                                  "train.iterations=5", "method.fisher_n=5"],
                       stage=1, grow={"fisher_n": None}, setup=wide_mlp_fisher_in_small_chunks),
    # Online EWC with the real chunking (one chunk of a few hundred samples): stoppable between its
    # backward passes (one per class with fisher_labels=all).
    "online-ewc-fisher": Case("online-ewc", "fisher", overrides=[
        "benchmark.contexts=2", "benchmark.classes_per_context=5", "train.iterations=5", "method.fisher_n=5",
        "model.hidden=[2500,2500]", "train.batch_size=16", "train.checkpoints=none"],
        stage=1, grow={"fisher_n": None}),
    # Herding: 2000 exemplars of each of 5 classes of 2000 samples at stage 1 (1 at stage 0).
    "icarl-herding": Case("icarl", "herding", overrides=[
        "benchmark.contexts=2", "benchmark.classes_per_context=5", "train.iterations=5", "method.budget=1",
        "train.eval_batch_size=256"], stage=1, grow={"budget": 2000}, setup=mnist_sized_classes),
    "deepinversion-dreaming": Case("deepinversion", "dreaming", DFCIL, [
        "benchmark.contexts=3", "method.steps=2", *DREAMS_TINY], stage=1, grow={"steps": 100000}),
    "abd-generator": Case("abd", "generator", DFCIL, [
        "benchmark.contexts=3", "method.generator_iterations=2", *DREAMS_TINY],
        stage=1, grow={"generator_iterations": 200000}),
    # The bug report: `--set method.generator_iterations=200000`, stopped in the first generator phase.
    "abd-generator-set": Case("abd", "generator", DFCIL, [
        "benchmark.contexts=2", *DREAMS_TINY, "method.generator_iterations=200000"]),
    # The verifier is trained once, when the first dreams are scored (stage 0).
    "abd-verifier": Case("abd", "verifier", DFCIL, [
        "benchmark.contexts=2", "method.generator_iterations=2", *DREAMS_TINY,
        "method.verifier_iterations=1000000"]),
    "deepinversion-verifier": Case("deepinversion", "verifier", DFCIL, [
        "benchmark.contexts=2", "method.steps=2", *DREAMS_TINY, "method.verifier_iterations=1000000"]),
    # Scoring and exporting many dreams: thousands of PNGs, batched features.
    "abd-dream-quality": Case("abd", "dream-quality", DFCIL, [
        "benchmark.contexts=3", "method.generator_iterations=2", "method.z_dim=16", *DREAMS_TINY],
        stage=1, grow={"dreams_per_class": 8000, "export_per_class": 8000}),
    # The generative classifier's evaluation: importance sampling in chunks, a million samples per input.
    "gen-classifier-eval": Case("gen-classifier", "eval", overrides=[
        "benchmark.contexts=2", "train.iterations=5"], stage=1, grow={"importance_samples": 1000000}),
    # The training steps themselves (core/training/train.py checks at every progress report); DGR trains its
    # generator in every step too.
    "none-train": Case("none", "train", overrides=["train.iterations=1000000", "model.hidden=[32]"]),
    "dgr-train": Case("dgr", "train", overrides=["train.iterations=1000000", "model.hidden=[32]",
                                                 "method.generator_hidden=[32]"]),
}


@dataclass
class Stopped:
    record: dict[str, Any]
    events: list[tuple[float, Event]]  # (monotonic arrival time, event)
    asked: float  # when the stop was asked (monotonic)
    ended: float  # when RunCancelled (or whatever ended the run) arrived

    @property
    def latency(self) -> float:
        return self.ended - self.asked


def stop_in_phase(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stopped:
    """Run `case`, asking for a stop STOP_AFTER seconds after its phase starts at context `case.stage`."""
    overrides = [*case.overrides, *(case.setup(monkeypatch, tmp_path) if case.setup else [])]
    config = build_config(case.preset, method=case.method, device="cpu", overrides=overrides)
    if case.grow:
        cls = method_class(case.method)
        before = cls.before_context

        def grow_then_begin(self: Method, info: ContextInfo) -> None:
            if info.stage == case.stage:
                for name, value in case.grow.items():
                    setattr(self.params, name, value)
                if "budget" in case.grow:  # the buffer took its per-class budget when it was made
                    self.buffer.per_class = case.grow["budget"]  # type: ignore[attr-defined]
            before(self, info)

        monkeypatch.setattr(cls, "before_context", grow_then_begin)

    events: list[tuple[float, Event]] = []
    started: list[float] = []

    def emit(event: Event) -> None:
        now = time.monotonic()
        events.append((now, event))
        if isinstance(event, PhaseStarted) and event.phase == case.phase and event.context == case.stage:
            started.append(now)

    def should_stop() -> bool:
        return bool(started) and time.monotonic() >= started[0] + STOP_AFTER

    folder.mkdir()
    record = training.run(config, folder, emit, should_stop=should_stop)
    assert started, f"the {case.phase} phase of context {case.stage} never started: {record['error']}"
    return Stopped(record, events, started[0] + STOP_AFTER, events[-1][0])


@pytest.mark.timeout(60)  # a stop that is not honoured would leave the phase running for minutes
@pytest.mark.parametrize("name", list(CASES))
def test_a_stop_is_honoured_within_seconds_in_every_phase(name, tmp_path, monkeypatch):
    case = CASES[name]
    stopped = stop_in_phase(case, tmp_path / "run", monkeypatch, tmp_path)
    record, events = stopped.record, [e for _, e in stopped.events]
    print(f"\n{name}: stop honoured {stopped.latency:.3f} s after it was asked "
          f"(phase {case.phase}, context {case.stage})")

    assert record["status"] == "cancelled", record["error"]
    assert record["error"]["kind"] == "cancelled"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "cancelled"
    assert isinstance(events[-1], RunCancelled) and events[-1].context == case.stage
    assert stopped.latency < LATENCY, f"{name}: the stop took {stopped.latency:.2f} s"
    # Stopped inside the phase: it never finished, and nothing started after it.
    phases = [e for e in events if isinstance(e, (PhaseStarted, PhaseFinished))]
    last_start = max(i for i, e in enumerate(phases) if isinstance(e, PhaseStarted))
    assert (phases[last_start].phase, phases[last_start].context) == (case.phase, case.stage)
    assert not any(isinstance(e, PhaseFinished) for e in phases[last_start:])
    # The contexts completed before the stop are kept, as they were evaluated.
    evaluated = [e.accuracies for e in events if isinstance(e, ContextEvaluated)]
    assert len(evaluated) == case.stage
    assert record["acc_matrix"] == evaluated
    assert len(record["contexts"]) == case.stage


# --- the stop checks, one loop at a time ------------------------------------------------------------


class StopAfter:
    """A stop check that raises Cancelled on its n-th call, counting the calls."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, *_: Any) -> None:
        self.calls += 1
        if self.calls >= self.n:
            raise Cancelled("stop")


@pytest.mark.parametrize("how", ["layerwise", "vmap"])
def test_the_fisher_reports_between_the_backward_passes_of_one_chunk(how):
    # One chunk of 64 samples over 6 classes (labels=all): a report after each class's pass and the chunk.
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 6, hidden=[16])
    x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 6
    view = ScenarioView("class", 6, 1)
    calls: list[int] = []
    fisher_diagonal(model, x, y, view, 0, "all", progress=calls.append, method=how)
    assert calls == [0] * 6 + [64]
    with pytest.raises(Cancelled):
        fisher_diagonal(model, x, y, view, 0, "all", progress=StopAfter(2), method=how)
    assert model.training  # the model's mode is restored on the way out


def test_herding_checks_after_every_pick():
    features, labels = torch.randn(300, 8), torch.arange(300) % 3
    counter = StopAfter(10**9)
    order = herding_order(features, labels, [0, 1, 2], m=40, step=counter)
    assert counter.calls == 40
    plain = herding_order(features, labels, [0, 1, 2], m=40)
    assert all(torch.equal(order[c], plain[c]) for c in (0, 1, 2))  # checking changes no pick
    with pytest.raises(Cancelled):
        herding_order(features, labels, [0, 1, 2], m=40, step=StopAfter(5))


def test_the_generative_classifier_checks_between_scoring_chunks():
    bank = VAEBank(2, 2, 16, 8, 3, "bernoulli")
    x = torch.rand(10, 16)
    counter = StopAfter(10**9)
    a = bank.log_likelihood(x, slice(0, 2), 50, torch.Generator().manual_seed(1), chunk_elements=2000,
                            check=counter)
    b = bank.log_likelihood(x, slice(0, 2), 50, torch.Generator().manual_seed(1), chunk_elements=2000)
    assert torch.equal(a, b)  # checking changes nothing that is computed
    assert counter.calls > 10  # several chunks of inputs, several of samples each


def test_dream_scoring_checks_for_a_stop_and_works_without_a_run(tmp_path):
    cfg = build_config(DFCIL, method="abd", device="cpu", overrides=["method.verifier_iterations=5",
                                                                     "method.export_per_class=2"])
    bench = build_benchmark(cfg.benchmark, "cpu")
    model = build_model("mlp", bench.input_shape, 10, hidden=[16], batch_norm=True).eval()
    dreams = Dreams(x=torch.rand(40, *bench.input_shape), y=torch.arange(40) % 2, teacher=model, classes=2)
    judge = DreamJudge(cfg, bench, torch.device("cpu"))
    assert judge.train_verifier() is not None  # no run, no phase, no stop check
    entry = judge.record(tmp_path, 0, dreams)
    assert entry["count"] == 4 and "verifier_accuracy" in entry["quality"]

    asked = {"stop": False}
    info = ContextInfo(0, bench.contexts[0], None, lambda e: None, should_stop=lambda: asked["stop"])
    fresh = DreamJudge(cfg, bench, torch.device("cpu"))
    asked["stop"] = True
    with pytest.raises(Cancelled):
        fresh.train_verifier(info)
    assert fresh.verifier is None  # a stopped verifier is not kept half-trained
    with pytest.raises(Cancelled):
        judge.record(tmp_path / "again", 1, dreams, info)
