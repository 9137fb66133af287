"""The training loops, which run the methods (core/methods) on the engine's data, scenarios and models
(core/engine): `Trainer` for a classification run (train.py), `GenerationTrainer` for a generation run
(generation.py), the evaluation of a context while it trains (continual.py), and the dreams' scoring
(dreams.py). `run` trains one run folder and records how it ended.

The methods never import this package, so the engine, the methods and the loops form no circle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.engine.data import Benchmark
from core.engine.loop import NonFiniteLoss, StoreWriteError, run_and_record
from core.methods import method_class
from core.runs.events import Event
from core.runs.paths import StoreError
from core.runs.record import RunError, RunRecord, read_record, write_record
from core.schema.config import RunConfig
from core.training.generation import GenerationTrainer
from core.training.train import InputError, ResumeError, Trainer

TRAINERS: dict[str, type[Trainer]] = {"classification": Trainer, "generation": GenerationTrainer}


def trainer_class(config: RunConfig) -> type[Trainer]:
    """The trainer of the run's kind (docs/architecture.md, run kinds): the method's `run_kind`
    (core/methods/parts/gan.py's GAN methods: a generation run), else a classification run."""
    return TRAINERS[method_class(config.method.name).run_kind]


def run(config: RunConfig, run_dir: Path, emit: Callable[[Event], None] = lambda e: None,
        should_stop: Callable[[], bool] = lambda: False, benchmark: Benchmark | None = None,
        resume: bool = False) -> dict[str, Any]:
    """Train `config` into `run_dir` (which must exist); returns the final run record. With `resume`, continue
    the run saved there from its last completed context. How it ends is recorded as every run's is
    (core/engine/loop.py's run_and_record)."""

    def ended(trainer: Trainer | None, status: str, error: RunError) -> tuple[RunRecord, str | None]:
        return _ended(trainer, config, run_dir, resume, status, error)

    def kind_of(e: Exception) -> str:
        return "input" if isinstance(e, InputError) else "resume" if isinstance(e, ResumeError) else "error"

    return run_and_record(lambda: trainer_class(config)(config, run_dir, emit, should_stop, benchmark, resume), emit,
                          ended, plain=(InputError, ResumeError, NonFiniteLoss, StoreWriteError), kind_of=kind_of)


def _ended(trainer: Trainer | None, config: RunConfig, run_dir: Path, resume: bool, status: str,
           error: RunError) -> tuple[RunRecord, str | None]:
    """Record how a run ended. A resume that failed before its checkpoint loaded writes nothing: run.json
    keeps every completed context as it was. A write that fails (a full disk) is reported, never raised."""
    if trainer is not None:  # the trainer exists: a fresh record, or a resumed one whose checkpoint loaded
        return trainer.record, trainer.finish(status, error)  # type: ignore[arg-type]
    if resume:
        try:
            return read_record(run_dir), None
        except StoreError:
            return RunRecord.new(run_dir.name, config.preset, config.to_dict()), None
    # A fresh run that failed at start-up (bad device, unreadable data): say so on disk.
    record = RunRecord.new(run_dir.name, config.preset, config.to_dict())
    record.end(status, error, {}, {})  # type: ignore[arg-type]
    try:
        write_record(run_dir, record)
    except OSError as e:
        return record, str(StoreWriteError(str(run_dir / "run.json"), e, 0, run_dir.name))
    return record, None
