"""The merge's own settings (`cltui merge --set KEY=VALUE`, or a preset's [merge] table) and its one-line error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from core.schema.limits import Section


class MergeError(ValueError):
    """Bad input to a merge (teachers that cannot be merged, a bad setting), phrased as one line: exit 2."""


class MergeSettings(Section):
    """The merge's own settings (`cltui merge --set KEY=VALUE`, or a preset's [merge] table)."""

    approach: Literal["greedy", "l0"] = Field("l0", description="greedy: important units + imitation; l0: joint "
                                              "double-width network with hard-concrete gates, pruned to half.")
    data: Literal["same", "union"] = Field("union", description="union: both teachers' training data; same: "
                                           "RUN_B's data only (the current data), the first teacher's classes "
                                           "come through distillation alone.")
    iterations: int = Field(300, ge=1, le=1_000_000, description="Steps of imitation (greedy) or of joint L0 "
                            "training (l0).")
    finetune_iterations: int = Field(300, ge=0, le=1_000_000, description="Steps of fine-tuning the student.")
    importance_batches: int = Field(8, ge=1, le=10_000, description="greedy: batches that score the units.")
    batch_size: int | None = Field(None, ge=1, le=65_536, description="Samples per step (default: RUN_A's).")
    lr: float | None = Field(None, gt=0, le=10, description="Adam learning rate (default: RUN_A's).")
    temperature: float = Field(2.0, gt=0, le=100, description="Distillation temperature T.")
    kd: float = Field(1.0, ge=0, le=1000, description="Weight alpha of the distillation from the teachers' outputs.")
    features: float = Field(1.0, ge=0, le=1000, description="greedy: weight beta of the imitation of kept units.")
    l0_lambda: float = Field(20.0, ge=0, le=1e6, description="l0: weight of the penalty on units above half a layer.")
    l0_warmup: float = Field(0.5, ge=0, le=1, description="l0: share of joint training over which lambda rises "
                             "linearly from 0 (0: full strength from the start).")
    gate_lr: float = Field(0.05, gt=0, le=10, description="l0: Adam learning rate of the gates' log alpha.")
    gate_init: float = Field(3.0, ge=-10, le=10, description="l0: initial log alpha (3: gates almost surely open).")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of sampling and gates.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    eval_batch_size: int = Field(2048, ge=1, le=65_536, description="Samples per evaluation batch.")
    progress_interval: float = Field(0.25, gt=0, le=3600, description="Seconds between progress events.")


def settings_from(table: dict[str, Any]) -> MergeSettings:
    try:
        return MergeSettings.model_validate(table)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "merge"
        valid = ", ".join(MergeSettings.model_fields)
        why = f"unknown setting; valid keys: {valid}" if err["type"] == "extra_forbidden" else \
            f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {err.get('input')!r})"
        raise MergeError(f"--set {where}: {why}") from None
