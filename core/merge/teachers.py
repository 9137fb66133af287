"""The teachers of a merge: two finished runs with a checkpoint, loaded, checked to share one architecture and one
benchmark, and their networks rebuilt from the checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn

from core.engine.models import build_model
from core.engine.scenarios import ScenarioView
from core.merge.settings import MergeError
from core.runs.paths import inside
from core.runs.record import RunRecord, read_record
from core.runs.store import RunStore, checkpoint_files
from core.schema.config import BenchmarkConfig, ModelConfig, TrainConfig

# What two teachers must share beyond the model: the benchmark (which contexts each learned may differ).
PER_TEACHER = ("learn_contexts", "data_dir", "download")


@dataclass
class Teacher:
    run_id: str
    path: Path
    record: RunRecord
    benchmark: BenchmarkConfig
    model: ModelConfig
    train: TrainConfig
    scenario: str
    checkpoint: Path

    @property
    def learned(self) -> list[int]:
        return list(self.benchmark.learn_contexts or range(self.benchmark.contexts))


def load_teacher(store: RunStore, run: str) -> Teacher:
    """A finished run with a checkpoint, as a teacher; MergeError (or StoreError) with one line otherwise."""
    path = store.resolve(run)
    record = read_record(path)
    name = path.name
    if record.status != "finished":
        raise MergeError(f"run {name} is {record.status}, not finished; merge needs two finished runs"
                         + (f" (`cltui run --resume {name}` continues it)" if record.status != "running" else ""))
    folder = inside(path, "checkpoints", action="read")
    points = [p for _, p in sorted(checkpoint_files(folder))]  # a stray `context-x.pt` is no checkpoint
    if not points:
        raise MergeError(f"run {name} kept no checkpoint (train.checkpoints=none, or its checkpoints were deleted); "
                         f"train it again with train.checkpoints=last")
    cfg = record.config
    try:
        benchmark = BenchmarkConfig.model_validate(cfg.benchmark)
        model = ModelConfig.model_validate(cfg.model)
        train = TrainConfig.model_validate(cfg.train)
    except ValidationError as e:
        raise MergeError(f"run {name}: its saved config is not valid here ({e.errors()[0]['msg']})") from None
    return Teacher(name, path, record, benchmark, model, train, str(cfg.scenario), points[-1])


def check_compatible(a: Teacher, b: Teacher) -> None:
    """Same model, scenario and benchmark (up to which contexts each learned); MergeError naming the difference."""
    if a.path.resolve() == b.path.resolve():
        raise MergeError(f"RUN_A and RUN_B are the same run ({a.run_id}); merge needs two teachers")
    pairs = [(f"model.{k}", a.model.model_dump().get(k), b.model.model_dump().get(k)) for k in a.model.model_dump()]
    pairs.append(("scenario", a.scenario, b.scenario))
    da, db = a.benchmark.model_dump(), b.benchmark.model_dump()
    pairs += [(f"benchmark.{k}", da[k], db.get(k)) for k in da if k not in PER_TEACHER]
    for key, va, vb in pairs:
        if va != vb:
            raise MergeError(f"{a.run_id} and {b.run_id} differ in {key} ({va!r} vs {vb!r}); merge needs two "
                             f"teachers of one architecture on one benchmark")


def head_size(t: Teacher) -> int:
    return ScenarioView(t.scenario, t.benchmark.classes_per_context or 1, t.benchmark.contexts).head_size


def fresh_model(t: Teacher) -> nn.Module:
    b = t.benchmark
    return build_model(t.model.kind, b.input_shape, head_size(t), hidden=t.model.hidden,
                       batch_norm=t.model.batch_norm, fc_hidden=t.model.fc_hidden)


def load_weights(t: Teacher, device: torch.device) -> nn.Module:
    model = fresh_model(t)
    try:
        state = torch.load(t.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a file cut short or overwritten fails in many ways; all mean the same
        first = str(e).splitlines()[0].split(". ")[0][:160] if str(e) else ""
        why = f"{type(e).__name__}: {first}" if first else type(e).__name__
        raise MergeError(f"run {t.run_id}: {t.checkpoint} is damaged ({why}); restore the file from a backup, "
                         f"or train the teacher again") from None
    try:
        model.load_state_dict(state["model"])
    except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, one line says so
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        method = t.record.config.method.name
        raise MergeError(f"run {t.run_id}: {t.checkpoint.name} does not hold a plain {t.model.kind} (method "
                         f"{method} may build its own network; {first})") from None
    return model.to(device).eval()
