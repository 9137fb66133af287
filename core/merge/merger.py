"""Merging two trained networks of one architecture (the teachers) into one network of that architecture (the
student): the engine of `cltui merge RUN_A RUN_B`.

Both approaches start from the *joint network*: the teachers side by side, each layer's units the union of both
teachers' units, the cross connections zero, and each head output weighing the teachers that learned its class
(w_A + w_B = 1), so that before any training it computes exactly the teachers' combined logits z_T:

    z_T[n, k] = w_A[n, k] z_A[n, k] + w_B[n, k] z_B[n, k]      (w = 1/2 when both or neither learned it)

w_t[n, k] says whether teacher t learned what is asked: with `data union` (and in domain-IL), the context of
sample n (the teacher that learned it was trained to tell it from every class); with `data same`, the context
of output k (the first teacher's classes have no data, so its outputs of them are the only guide).
    KD_T(z_S, z_T) = T^2 KL(softmax(z_T / T) || softmax(z_S / T))

greedy   the importance of unit u of teacher t is its first-order Taylor score for that teacher's own prediction,
         I_u = E_n |sum_pixels a_u dCE(z_t, argmax z_t)/da_u| (Molchanov et al. 2017), normalised within each
         teacher's layer; each layer keeps its W best units of the 2W (W = the teachers' width), the student
         starts as the joint network cut to them, and imitates the teachers' kept units and outputs:
             L = CE + alpha KD_T(z_S, z_T) + beta sum_l ||a_l^S - a_l^T[kept]||^2 / ||a_l^T||^2
l0       a hard-concrete gate per unit of the joint network (Louizos, Welling & Kingma 2018):
             s = sigmoid((log u - log(1 - u) + log alpha_u) / beta),  z_u = min(1, max(0, s (zeta - gamma) + gamma))
             P[z_u > 0] = sigmoid(log alpha_u - beta log(-gamma / zeta)),  beta = 2/3, (gamma, zeta) = (-0.1, 1.1)
             L = CE + alpha KD_T(z, z_T) + lambda_t sum_l max(0, sum_u P[z_u > 0] - W_l) / W_l
             lambda_t = lambda min(1, t / (warmup T_joint))  (annealed: see Merger.l0_weight)
         trained on the task, the penalty pushes every layer toward half its units; pruning keeps the W units of
         each layer with the largest log alpha (their test-time gate folded into the next layer's weights), which
         is exactly the teachers' architecture.
both     then fine-tune the student with CE + alpha KD_T.

CE covers the outputs of the classes whose data the merge trains on (`data`: `union`, both teachers' training
data; `same`, RUN_B's, the current data: the first teacher's classes then come only through KD_T). The student
is saved as an ordinary run folder (run.json kind `merge`: method.name "merge", one row, both teachers named).

Units are grouped: a feed-forward model's (mlp, lenet5, vdv-conv) group is one hidden layer; a residual network's
(resnet20/32/56, resnet18-reduced) groups are each block's inner channels and each stage's residual channels. A
stage's channels are added to one another by every identity shortcut, so they are kept or pruned together: one
importance score (the sum over the stem or projection and every block output of the stage) and one L0 gate per
stage channel, applied to every BatchNorm that writes into the stage; pruning then folds the kept gates into those
BatchNorms, and the student loads strictly into a fresh model of the teachers' kind.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError
from torch import Tensor, nn

from core.engine.data import BatchSampler, Benchmark, DataError, augment, build_benchmark
from core.engine.models import build_model
from core.engine.scenarios import ScenarioView
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    Event,
    PhaseFinished,
    PhaseStarted,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    UnitsActive,
)
from core.runs.store import (
    ContextRow,
    MergeInfo,
    MergeTeacher,
    RunError,
    RunRecord,
    RunStore,
    StoreError,
    checkpoint_files,
    inside,
    read_record,
    write_record,
)
from core.schema.config import BenchmarkConfig, ModelConfig, TrainConfig
from core.schema.limits import Section

GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0  # hard-concrete stretch and temperature (Louizos et al. 2018)
# What two teachers must share beyond the model: the benchmark (which contexts each learned may differ).
PER_TEACHER = ("learn_contexts", "data_dir", "download")


class MergeError(ValueError):
    """Bad input to a merge (teachers that cannot be merged, a bad setting), phrased as one line: exit 2."""


class Cancelled(Exception):
    pass


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


# --- teachers -------------------------------------------------------------------------------------------------


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


# --- the network as a chain of unit layers ------------------------------------------------------------------


@dataclass
class Stage:
    """One layer with units (a Linear or Conv2d and what follows it up to the next one)."""

    name: str  # the module's name in the model, e.g. features.fc.fc1
    kind: str  # linear | conv
    width: int  # output units (channels)
    bias: bool
    bn: str | None = None  # the BatchNorm module's name
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    relu: bool = False
    pool: tuple[int, int] | None = None  # max-pool kernel, stride
    flatten_before: bool = False
    conv: dict[str, Any] = field(default_factory=dict)  # stride, padding, dilation

    @property
    def gated(self) -> bool:  # every hidden layer; the head keeps all its outputs
        return self.relu


def plan(model: nn.Module) -> list[Stage]:
    """The model's layers in forward order; MergeError for models that are not a plain chain (residual nets)."""
    stages: list[Stage] = []
    flatten = False
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    for name, m in leaves:
        if isinstance(m, nn.Linear):
            stages.append(Stage(name, "linear", m.out_features, m.bias is not None, flatten_before=flatten))
            flatten = False
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1 or isinstance(m.padding, str):
                raise MergeError(f"layer {name}: grouped or same-padded convolutions cannot be merged")
            stages.append(Stage(name, "conv", m.out_channels, m.bias is not None,
                                conv={"stride": m.stride, "padding": m.padding, "dilation": m.dilation}))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and stages and stages[-1].bn is None:
            stages[-1].bn, stages[-1].bn_eps, stages[-1].bn_momentum = name, m.eps, m.momentum or 0.1
        elif isinstance(m, nn.ReLU) and stages:
            stages[-1].relu = True
        elif isinstance(m, nn.MaxPool2d) and stages:
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            stages[-1].pool = (k, s)
        elif isinstance(m, nn.Flatten):
            flatten = True
        else:
            raise MergeError(f"merge supports the feed-forward models (mlp, lenet5, vdv-conv); this model has "
                             f"{type(m).__name__} at {name} (residual networks are not supported yet)")
    if not stages or stages[-1].relu or not any(s.gated for s in stages):
        raise MergeError("merge needs a model with hidden layers and a linear head")
    return stages


def stage_params(model: nn.Module, stages: list[Stage]) -> list[dict[str, Tensor]]:
    """Each stage's tensors from a model (w, b, and bn_w, bn_b, bn_mean, bn_var)."""
    state = model.state_dict()
    out = []
    for st in stages:
        p = {"w": state[f"{st.name}.weight"].detach().clone()}
        p["b"] = state[f"{st.name}.bias"].detach().clone() if st.bias else torch.zeros(st.width)
        if st.bn:
            for key, src in (("bn_w", "weight"), ("bn_b", "bias"), ("bn_mean", "running_mean"),
                             ("bn_var", "running_var")):
                p[key] = state[f"{st.bn}.{src}"].detach().clone()
        out.append(p)
    return out


def to_state_dict(model: nn.Module, stages: list[Stage], params: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """`model`'s state dict with every stage's tensors replaced by `params` (shapes must match exactly)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for st, p in zip(stages, params, strict=True):
        state[f"{st.name}.weight"] = p["w"].detach()
        if st.bias:
            state[f"{st.name}.bias"] = p["b"].detach()
        if st.bn:
            for key, dst in (("bn_w", "weight"), ("bn_b", "bias"), ("bn_mean", "running_mean"),
                             ("bn_var", "running_var")):
                state[f"{st.bn}.{dst}"] = p[key].detach()
    return state


def gates(log_alpha: nn.ParameterList, sample: bool) -> list[Tensor]:
    """z per gated layer: sampled (one draw per step, shared by the batch) or the test-time value."""
    out = []
    for la in log_alpha:
        if sample:
            u = torch.rand_like(la).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((u.log() - (-u).log1p() + la) / BETA)
        else:
            s = torch.sigmoid(la)
        out.append((s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0))
    return out


def open_probability(log_alpha: nn.ParameterList) -> list[Tensor]:
    """P[z_u > 0] per gated layer: the expected L0 norm's terms."""
    return [torch.sigmoid(la - BETA * math.log(-GAMMA / ZETA)) for la in log_alpha]


class UnitNet(nn.Module):
    """A chain of stages with free widths (the joint network, or a student under construction), optionally with a
    hard-concrete gate per hidden unit. forward returns the logits and the gated hidden activations."""

    def __init__(self, stages: list[Stage], params: list[dict[str, Tensor]], gate_init: float | None = None):
        super().__init__()
        self.stages = stages
        self.w = nn.ParameterList([nn.Parameter(p["w"].clone()) for p in params])
        self.b = nn.ParameterList([nn.Parameter(p["b"].clone()) for p in params])
        self.bn = nn.ParameterList()
        self.bn_index: dict[int, int] = {}
        for i, (st, p) in enumerate(zip(stages, params, strict=True)):
            if st.bn:
                self.bn_index[i] = len(self.bn) // 2
                self.bn.append(nn.Parameter(p["bn_w"].clone()))
                self.bn.append(nn.Parameter(p["bn_b"].clone()))
                self.register_buffer(f"mean{i}", p["bn_mean"].clone())
                self.register_buffer(f"var{i}", p["bn_var"].clone())
        self.log_alpha = nn.ParameterList()
        if gate_init is not None:
            for i, st in enumerate(stages):
                if st.gated:
                    self.log_alpha.append(nn.Parameter(torch.full((p_width(params[i]),), float(gate_init))))

    @property
    def gated(self) -> bool:
        return len(self.log_alpha) > 0

    def widths(self) -> list[int]:
        return [int(w.shape[0]) for w, st in zip(self.w, self.stages, strict=True) if st.gated]

    def gates(self, sample: bool) -> list[Tensor]:
        return gates(self.log_alpha, sample)

    def open_probability(self) -> list[Tensor]:
        return open_probability(self.log_alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        zs = self.gates(sample=self.training) if self.gated else []
        acts: list[Tensor] = []
        h, g = x, 0
        for i, st in enumerate(self.stages):
            if st.flatten_before:
                h = h.flatten(1)
            if st.kind == "linear":
                h = F.linear(h, self.w[i], self.b[i])
            else:
                h = F.conv2d(h, self.w[i], self.b[i], **st.conv)
            if st.bn:
                j = self.bn_index[i]
                h = F.batch_norm(h, getattr(self, f"mean{i}"), getattr(self, f"var{i}"), self.bn[2 * j],
                                 self.bn[2 * j + 1], self.training, st.bn_momentum, st.bn_eps)
            if st.relu:
                h = F.relu(h)
            if st.gated:
                if zs:
                    h = h * zs[g].view(1, -1, *([1] * (h.dim() - 2)))
                    g += 1
                acts.append(h)
            if st.pool:
                h = F.max_pool2d(h, st.pool[0], st.pool[1])
        return h, acts

    def params(self) -> list[dict[str, Tensor]]:
        out = []
        for i, st in enumerate(self.stages):
            p = {"w": self.w[i].detach().clone(), "b": self.b[i].detach().clone()}
            if st.bn:
                j = self.bn_index[i]
                p.update(bn_w=self.bn[2 * j].detach().clone(), bn_b=self.bn[2 * j + 1].detach().clone(),
                         bn_mean=getattr(self, f"mean{i}").clone(), bn_var=getattr(self, f"var{i}").clone())
            out.append(p)
        return out


def p_width(p: dict[str, Tensor]) -> int:
    return int(p["w"].shape[0])


def joint_params(stages: list[Stage], pa: list[dict[str, Tensor]], pb: list[dict[str, Tensor]],
                 w_head: tuple[Tensor, Tensor]) -> list[dict[str, Tensor]]:
    """The teachers side by side: every layer's units A's then B's, cross connections zero, the first layer
    reading the shared input, the head weighing the teachers per output (w_head = (w_A, w_B), each (K,))."""
    out = []
    last = len(stages) - 1
    for i, (a, b) in enumerate(zip(pa, pb, strict=True)):
        wa, wb = a["w"], b["w"]
        if i == 0:
            w = torch.cat([wa, wb], 0)
        elif i == last:
            shape = (-1,) + (1,) * (wa.dim() - 1)
            w = torch.cat([w_head[0].view(shape) * wa, w_head[1].view(shape) * wb], 1)
        else:
            w = wa.new_zeros((wa.shape[0] + wb.shape[0], wa.shape[1] + wb.shape[1], *wa.shape[2:]))
            w[: wa.shape[0], : wa.shape[1]] = wa
            w[wa.shape[0]:, wa.shape[1]:] = wb
        p = {"w": w}
        p["b"] = w_head[0] * a["b"] + w_head[1] * b["b"] if i == last else torch.cat([a["b"], b["b"]])
        for key in ("bn_w", "bn_b", "bn_mean", "bn_var"):
            if key in a:
                p[key] = torch.cat([a[key], b[key]])
        out.append(p)
    return out


def cut(stages: list[Stage], params: list[dict[str, Tensor]], keep: list[Tensor],
        fold: list[Tensor] | None = None) -> list[dict[str, Tensor]]:
    """The network restricted to the units `keep` of each hidden layer (indices into the wide layer), each kept
    unit's constant gate `fold` (if given) multiplied into the next layer's weights on it."""
    out = []
    g = -1  # index of the previous hidden layer
    for i, (st, p) in enumerate(zip(stages, params, strict=True)):
        w = p["w"]
        if i > 0:
            prev, width = keep[g], p_width(params[i - 1])
            per_unit = w.shape[1] // width  # > 1 where a conv's channels were flattened into a linear layer
            cols = (prev.view(-1, 1) * per_unit + torch.arange(per_unit, device=prev.device)).flatten()
            w = w[:, cols]
            if fold is not None:
                scale = fold[g][prev].repeat_interleave(per_unit)
                w = w * scale.view(1, -1, *([1] * (w.dim() - 2)))
        q = {"w": w, "b": p["b"]}
        for key in ("bn_w", "bn_b", "bn_mean", "bn_var"):
            if key in p:
                q[key] = p[key]
        if st.gated:
            g += 1
            rows = keep[g]
            q = {k: v[rows] for k, v in q.items()}
        out.append({k: v.clone() for k, v in q.items()})
    return out


# --- anatomies: how a model kind is taken apart, joined and cut ------------------------------------------------


class Chain:
    """A feed-forward model (mlp, lenet5, vdv-conv) as a chain of unit layers; one group per hidden layer."""

    def __init__(self, teachers: list[nn.Module], w_head: tuple[Tensor, Tensor], fresh: Callable[[], nn.Module]):
        self.fresh = fresh
        self.stages = plan(teachers[0])
        params = [stage_params(m, self.stages) for m in teachers]
        self.teachers = [UnitNet(self.stages, p).eval().requires_grad_(False) for p in params]
        self.joint_params = joint_params(self.stages, *params, w_head)
        self.names = [st.name.removeprefix("features.") for st in self.stages if st.gated]
        self.widths = [st.width for st in self.stages if st.gated]
        self.act_groups = list(range(len(self.widths)))  # the group of each activation forward returns

    def joint(self, gate_init: float | None = None) -> UnitNet:
        return UnitNet(self.stages, self.joint_params, gate_init)

    def pruned_state(self, net: UnitNet, keep: list[Tensor]) -> dict[str, Tensor]:
        """The teachers' architecture's state dict: `net` cut to the units `keep`, its test-time gates folded."""
        fold = net.gates(sample=False) if net.gated else None
        return to_state_dict(self.fresh(), self.stages, cut(self.stages, net.params(), keep, fold=fold))

    def student(self, state: dict[str, Tensor]) -> UnitNet:
        model = self.fresh()
        model.load_state_dict(state)
        return UnitNet(self.stages, stage_params(model, self.stages))

    def state_of(self, student: UnitNet) -> dict[str, Tensor]:
        return to_state_dict(self.fresh(), self.stages, student.params())


class Probe(nn.Module):
    """A model whose hidden activations (its ReLUs' outputs) forward returns beside the logits, and, with
    `gate_init`, whose channel groups are gated: every producer of a group's channels (a BatchNorm) has its output
    multiplied by that group's hard-concrete gates, so a residual stage's channels open and close together."""

    def __init__(self, model: nn.Module, layout: ResidualLayout, gate_init: float | None = None):
        super().__init__()
        self.model, self.layout = model, layout
        self.log_alpha = nn.ParameterList()
        if gate_init is not None:
            widths = layout.widths_in(model)
            self.log_alpha.extend(nn.Parameter(torch.full((w,), float(gate_init))) for w in widths)
        self._acts: list[Tensor] = []
        self._z: list[Tensor] = []
        for name in layout.acts:
            model.get_submodule(name).register_forward_hook(self._record)
        for name, group in layout.producers.items():
            model.get_submodule(name).register_forward_hook(self._gate(group))

    def _record(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._acts.append(output)

    def _gate(self, group: int) -> Callable[..., Tensor | None]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor | None:
            return output * self._z[group].view(1, -1, 1, 1) if self._z else None
        return hook

    @property
    def gated(self) -> bool:
        return len(self.log_alpha) > 0

    def gates(self, sample: bool) -> list[Tensor]:
        return gates(self.log_alpha, sample)

    def open_probability(self) -> list[Tensor]:
        return open_probability(self.log_alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        self._acts = []
        self._z = self.gates(sample=self.training) if self.gated else []
        logits = self.model(x)
        acts, self._acts = self._acts, []
        return logits, acts


@dataclass
class ResidualLayout:
    """Where a residual network's channel groups are. A group is a set of channels that must be kept or pruned
    together: a residual stage's channels (its stem or projection shortcut's output, every block's second conv and
    the identity shortcuts that add them: the talk's "identical" blocks) or one block's inner channels.
    dims[module] = (group of dim 0, group of dim 1) of its tensors (None: not a group, e.g. the image, the head)."""

    names: list[str] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    dims: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    producers: dict[str, int] = field(default_factory=dict)  # BatchNorm -> the group its output channels are
    acts: list[str] = field(default_factory=list)  # the ReLUs whose outputs are the hidden activations, in order
    act_groups: list[int] = field(default_factory=list)

    def group(self, name: str, width: int) -> int:
        self.names.append(name)
        self.widths.append(width)
        return len(self.names) - 1

    def widths_in(self, model: nn.Module) -> list[int]:
        """The groups' widths in `model` (the teachers', or the joint network's double ones)."""
        out = [0] * len(self.names)
        for name, g in self.producers.items():
            out[g] = int(model.get_submodule(name).weight.shape[0])
        return out


def residual_layout(model: nn.Module) -> ResidualLayout:
    """The channel groups of a CIFAR ResNet / reduced ResNet-18 (stem, stages of BasicBlocks, pool, head)."""
    from core.engine.models import BasicBlock

    f = model.features
    lay = ResidualLayout()
    stream = lay.group("stage1", f.conv1.out_channels)  # the stem's output is stage 1's residual stream
    lay.dims.update({"features.conv1": (stream, None), "features.bn1": (stream, None)})
    lay.producers["features.bn1"] = stream
    lay.acts.append("features.relu1")
    lay.act_groups.append(stream)
    stage = 0
    for top, layer in f.named_children():
        if not top.startswith("layer"):
            continue
        stage += 1
        for j, block in enumerate(layer):
            if not isinstance(block, BasicBlock):
                raise MergeError(f"layer features.{top}.{j} is {type(block).__name__}, not a BasicBlock")
            p = f"features.{top}.{j}"
            out = stream
            if not isinstance(block.shortcut, nn.Identity):  # a projection starts the next stage's stream
                out = lay.group(f"stage{stage}", block.conv2.out_channels) if stage > 1 else stream
                lay.dims.update({f"{p}.shortcut.0": (out, stream), f"{p}.shortcut.1": (out, None)})
                lay.producers[f"{p}.shortcut.1"] = out
            inner = lay.group(f"{top}.{j}", block.conv1.out_channels)
            lay.dims.update({f"{p}.conv1": (inner, stream), f"{p}.bn1": (inner, None),
                             f"{p}.conv2": (out, inner), f"{p}.bn2": (out, None)})
            lay.producers.update({f"{p}.bn1": inner, f"{p}.bn2": out})
            lay.acts += [f"{p}.relu1", f"{p}.relu2"]
            lay.act_groups += [inner, out]
            stream = out
    lay.dims["head"] = (None, stream)
    return lay


def module_of(key: str) -> tuple[str, str]:
    module, _, leaf = key.rpartition(".")
    return module, leaf


class Residual:
    """A residual network (resnet20/32/56, resnet18-reduced): the joint network is the same model at double width,
    block-diagonal (cross connections zero), every channel group the union of both teachers' groups."""

    def __init__(self, teachers: list[nn.Module], w_head: tuple[Tensor, Tensor], fresh: Callable[[], nn.Module]):
        self.fresh = fresh
        self.layout = residual_layout(teachers[0])
        self.names, self.widths, self.act_groups = self.layout.names, self.layout.widths, self.layout.act_groups
        self.teachers = [Probe(t, self.layout).eval().requires_grad_(False) for t in teachers]
        sa, sb = (t.model.state_dict() for t in self.teachers)
        missing = [k for k in sa if module_of(k)[0] not in self.layout.dims]
        if missing:
            raise MergeError(f"merge cannot place {missing[0]} of this residual network in a channel group")
        self.joint_state: dict[str, Tensor] = {}
        for key, a in sa.items():
            b = sb[key]
            out, inp = self.layout.dims[module_of(key)[0]]
            if a.dim() == 0:  # num_batches_tracked
                t = a.clone()
            elif out is None:  # the head: each output weighs the teachers that learned its class
                shape = (-1,) + (1,) * (a.dim() - 1)
                t = torch.cat([w_head[0].view(shape) * a, w_head[1].view(shape) * b], 1) if a.dim() > 1 \
                    else w_head[0] * a + w_head[1] * b
            elif a.dim() == 1 or inp is None:
                t = torch.cat([a, b], 0)
            else:  # block-diagonal: A's channels read only A's, B's only B's
                t = a.new_zeros((2 * a.shape[0], 2 * a.shape[1], *a.shape[2:]))
                t[: a.shape[0], : a.shape[1]] = a
                t[a.shape[0]:, a.shape[1]:] = b
            self.joint_state[key] = t

    def joint(self, gate_init: float | None = None) -> Probe:
        model = self.fresh()
        for key, t in self.joint_state.items():  # the teachers' modules holding tensors of double width
            module, leaf = module_of(key)
            m = model.get_submodule(module)
            if leaf in m._parameters:
                m._parameters[leaf] = nn.Parameter(t.clone())
            else:
                m._buffers[leaf] = t.clone()
        return Probe(model, self.layout, gate_init)

    def pruned_state(self, net: Probe, keep: list[Tensor]) -> dict[str, Tensor]:
        z = net.gates(sample=False) if net.gated else None
        state = {}
        for key, t in net.model.state_dict().items():
            module, leaf = module_of(key)
            out, inp = self.layout.dims[module]
            if t.dim() >= 1 and out is not None:
                t = t[keep[out]]
            if t.dim() >= 2 and inp is not None:
                t = t[:, keep[inp]]
            g = self.layout.producers.get(module)
            if z is not None and g is not None and leaf in ("weight", "bias"):
                t = t * z[g][keep[g]]  # the kept channel's test-time gate, folded into its BatchNorm
            state[key] = t.detach().clone()
        return state

    def student(self, state: dict[str, Tensor]) -> Probe:
        model = self.fresh()
        model.load_state_dict(state)
        return Probe(model, self.layout)

    def state_of(self, student: Probe) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in student.model.state_dict().items()}


def anatomy_of(kind: str, teachers: list[nn.Module], w_head: tuple[Tensor, Tensor],
               fresh: Callable[[], nn.Module]) -> Chain | Residual:
    return (Residual if kind.startswith("resnet") else Chain)(teachers, w_head, fresh)


# --- the merge ----------------------------------------------------------------------------------------------


class Merger:
    """One merge: the teachers, the data, the phases, the record. `run()` below is the entry point."""

    def __init__(self, a: Teacher, b: Teacher, settings: MergeSettings, run_dir: Path, emit: Callable[[Event], None],
                 should_stop: Callable[[], bool] = lambda: False, preset: str | None = None):
        from core.engine.train import describe_device, environment, resolve_device

        self.a, self.b, self.s, self.run_dir, self.emit, self.should_stop = a, b, settings, run_dir, emit, should_stop
        self.started = time.monotonic()
        self.device = resolve_device(settings.device)
        self.device_name = describe_device(self.device)
        self.batch_size = settings.batch_size or a.train.batch_size
        self.lr = settings.lr or a.train.lr
        learned = sorted(set(a.learned) | set(b.learned)) if settings.data == "union" else b.learned
        self.data_contexts = learned
        config = a.record.config.model_dump(mode="json")
        config["benchmark"] = {**a.benchmark.model_dump(mode="json"),
                               "learn_contexts": None if len(learned) == a.benchmark.contexts else learned}
        config["train"] = {**a.train.model_dump(mode="json"), "seed": settings.seed, "device": settings.device,
                           "batch_size": self.batch_size, "lr": self.lr,
                           "iterations": settings.iterations + settings.finetune_iterations}
        config["method"] = {"name": "merge", "approach": settings.approach, "data": settings.data,
                            "teachers": [a.run_id, b.run_id]}
        self.config = config
        self.record = RunRecord.new(run_dir.name, preset or a.record.preset, config, environment(self.device))
        self.record.merge = MergeInfo(
            approach=settings.approach, data=settings.data, settings=settings.model_dump(mode="json"),
            teachers=[MergeTeacher(id=t.run_id, accuracies=t.record.acc_matrix[-1] if t.record.acc_matrix else [],
                                   final_avg_acc=t.record.metrics.get("final_avg_acc"), learned=t.learned)
                      for t in (a, b)])
        write_record(run_dir, self.record)
        self.phase_s: dict[str, float] = {}
        self.train_s = self.eval_s = 0.0
        self.samples = 0

    # setup ------------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        torch.manual_seed(self.s.seed)
        self.generator = torch.Generator(self.device).manual_seed(self.s.seed)
        cfg = self.a.benchmark.model_copy(update={"learn_contexts": None})
        try:
            self.benchmark: Benchmark = build_benchmark(cfg, self.device)
        except DataError as e:
            raise MergeError(str(e)) from None
        c = self.benchmark.classes_per_context
        self.regression = self.a.benchmark.regression
        self.scenario = ScenarioView(self.a.scenario, c, len(self.benchmark.contexts), regression=self.regression)
        self.teachers = [load_weights(t, self.device) for t in (self.a, self.b)]
        # the training pool: the chosen contexts' training data, inputs as the network sees them
        chosen = [ctx for ctx in self.benchmark.contexts if ctx.index in self.data_contexts]
        self.x = torch.cat([ctx.inputs(ctx.x_train) for ctx in chosen])
        self.y = torch.cat([ctx.y_train for ctx in chosen])
        self.ctx = torch.cat([torch.full((ctx.n_train,), ctx.index, dtype=torch.long, device=self.device)
                              for ctx in chosen])
        heads = self.scenario.head_size
        # which teacher knows what: per output (class/task-IL) or per sample's context (domain-IL)
        known = [torch.tensor([k in t.learned for k in range(len(self.benchmark.contexts))], device=self.device)
                 for t in (self.a, self.b)]
        self.known = [k.float() for k in known]
        owner = torch.arange(heads, device=self.device) // c  # the context each output belongs to
        self.output_owner = owner
        avail = torch.zeros(len(self.benchmark.contexts), dtype=torch.bool, device=self.device)
        avail[self.data_contexts] = True
        self.available = avail[owner] if self.scenario.kind != "domain" else torch.ones(heads, dtype=torch.bool,
                                                                                            device=self.device)
        if self.scenario.kind == "domain":
            w_head = (torch.full((heads,), 0.5, device=self.device),) * 2
        else:
            wa, wb = self.known[0][owner], self.known[1][owner]
            total = wa + wb
            wa = torch.where(total > 0, wa / total.clamp(min=1), torch.full_like(wa, 0.5))
            w_head = (wa, 1 - wa)
        self.w_head = w_head
        self.taught = ((self.known[0] + self.known[1])[owner] > 0).float()  # outputs some teacher learned
        self.anatomy = anatomy_of(self.a.model.kind, self.teachers, w_head, lambda: fresh_model(self.a).to(self.device))
        self.teacher_nets = [net.to(self.device) for net in self.anatomy.teachers]

    # losses -----------------------------------------------------------------------------------------------

    def batch(self, sampler: BatchSampler) -> tuple[Tensor, Tensor, Tensor]:
        idx = sampler.next()
        x = augment(self.x[idx], self.generator) if self.a.benchmark.augment else self.x[idx]  # as the teachers saw it
        return x, self.y[idx], self.ctx[idx]

    @torch.no_grad()
    def teacher_logits(self, x: Tensor, ctx: Tensor) -> Tensor:
        za, zb = (net(x)[0] for net in self.teacher_nets)
        if self.scenario.kind == "domain" or (self.s.data == "union" and not self.regression):
            # the whole head of the teacher that learned the sample's context: it was trained to tell that
            # context from every other class (its outputs of the classes it never saw are no guide elsewhere)
            ka, kb = self.known[0][ctx].unsqueeze(1), self.known[1][ctx].unsqueeze(1)
            total = ka + kb
            wa = torch.where(total > 0, ka / total.clamp(min=1), torch.full_like(ka, 0.5))
            return wa * za + (1 - wa) * zb
        return self.w_head[0] * za + self.w_head[1] * zb

    def task_loss(self, logits: Tensor, y: Tensor, ctx: Tensor, target: Tensor) -> Tensor:
        if self.regression:  # MSE on each sample's own output, and on every output a teacher knows its target
            loss = self.scenario.loss(logits, y, int(ctx.max()), ctx)
            if self.s.kd == 0:
                return loss
            taught = self.taught if self.scenario.kind != "domain" else torch.ones_like(self.taught[:1])
            return loss + self.s.kd * ((logits - target).square() * taught).sum(1).mean() / taught.sum()
        if self.scenario.kind == "class":
            ce = F.cross_entropy(logits.masked_fill(~self.available, float("-inf")), y)
        else:
            view, labels = self.scenario.train_view(logits, y, int(ctx.max()), ctx)
            ce = F.cross_entropy(view, labels)
        if self.s.kd == 0:
            return ce
        t = self.s.temperature
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(target / t, 1), reduction="batchmean",
                      log_target=True) * t * t
        return ce + self.s.kd * kd

    # phases -----------------------------------------------------------------------------------------------

    def phase(self, name: str, total: int | None) -> _Phase:
        return _Phase(self, name, total)

    def check_stop(self, where: str) -> None:
        if self.should_stop():
            raise Cancelled(f"stopped in {where}")

    def train(self, name: str, net: nn.Module, steps: int, loss_of: Callable[[Tensor, Tensor, Tensor], Tensor],
              groups: list[dict[str, Any]], on_report: Callable[[int], None] | None = None) -> float | None:
        """`steps` Adam steps of `loss_of(x, y, ctx)`; progress events a few times a second; the mean loss of the
        last steps."""
        if steps == 0:
            return None
        optimizer = torch.optim.Adam(groups)
        sampler = BatchSampler(self.x.shape[0], self.batch_size, self.generator, self.device)
        losses = torch.zeros(steps, device=self.device)
        net.train()
        start = last = time.monotonic()
        reported = 0
        with self.phase(name, steps):
            for it in range(steps):
                x, y, ctx = self.batch(sampler)
                loss = loss_of(x, y, ctx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses[it] = loss.detach()
                now = time.monotonic()
                if now - last >= self.s.progress_interval or it == steps - 1:
                    mean = losses[reported: it + 1].mean().item()
                    if not math.isfinite(mean):
                        raise FloatingPointError(f"loss became NaN or infinite in {name} at step {it + 1}; "
                                                 f"lower --set lr=")
                    rate = (it + 1 - reported) * sampler.batch_size / max(now - last, 1e-9)
                    self.emit(Progress(context=0, phase=name, step=it + 1, total=steps, loss=mean, samples_per_s=rate))
                    if on_report is not None:
                        on_report(it + 1)
                    reported, last = it + 1, now
                    self.check_stop(f"{name} at step {it + 1}")
        self.train_s += time.monotonic() - start
        self.samples += steps * sampler.batch_size
        return losses[-min(steps, 10):].mean().item()

    def importance(self) -> list[Tensor]:
        """Per hidden layer, the normalised Taylor importance of the joint network's units (A's, then B's)."""
        n = self.s.importance_batches
        scores: list[list[Tensor]] = [[], []]
        sampler = BatchSampler(self.x.shape[0], self.batch_size, self.generator, self.device)
        batches = [self.batch(sampler)[0] for _ in range(n)]
        with self.phase("importance", 2 * n) as ph:
            for t, net in enumerate(self.teacher_nets):
                total = [torch.zeros(w, device=self.device) for w in self.anatomy.widths]
                for k, x in enumerate(batches):
                    logits, acts = net(x.detach().requires_grad_(True))  # the teacher is frozen; its units are not
                    if self.regression:  # a unit's first-order share of the outputs the teacher learned
                        loss = (logits.square() * self.known[t][self.output_owner]).sum() / 2
                    else:
                        loss = F.cross_entropy(logits, logits.argmax(1).detach(), reduction="sum")
                    grads = torch.autograd.grad(loss, acts)
                    for group, a, g in zip(self.anatomy.act_groups, acts, grads, strict=True):
                        taylor = (a * g).flatten(2).sum(2) if a.dim() > 2 else a * g  # (N, units)
                        total[group] += taylor.abs().sum(0).detach()
                    ph.step(t * n + k + 1)
                scores[t] = [s / s.sum().clamp(min=1e-12) for s in total]
        return [torch.cat([sa, sb]) for sa, sb in zip(*scores, strict=True)]

    def greedy(self) -> list[dict[str, Tensor]]:
        scores = self.importance()
        keep = [s.topk(w).indices.sort().values for s, w in zip(scores, self.widths, strict=True)]
        self.kept_from_a = [int((k < w).sum()) for k, w in zip(keep, self.widths, strict=True)]
        joint = self.anatomy.joint().to(self.device).eval().requires_grad_(False)
        student = self.anatomy.student(self.anatomy.pruned_state(joint, keep)).to(self.device)
        groups = self.anatomy.act_groups

        def loss_of(x: Tensor, y: Tensor, ctx: Tensor) -> Tensor:
            logits, acts = student(x)
            target = self.teacher_logits(x, ctx)
            loss = self.task_loss(logits, y, ctx, target)
            if self.s.features:
                with torch.no_grad():
                    _, wide = joint(x)
                imitation = sum(((a - t[:, keep[g]]) ** 2).mean() / ((t[:, keep[g]] ** 2).mean() + 1e-6)
                                for a, t, g in zip(acts, wide, groups, strict=True))
                loss = loss + self.s.features * imitation / len(acts)
            return loss

        self.final_losses["imitation"] = self.train("imitation", student, self.s.iterations, loss_of,
                                                    [{"params": student.parameters(), "lr": self.lr}])
        return self.anatomy.state_of(student)

    def l0_penalty(self, open_p: list[Tensor]) -> Tensor:
        return sum(F.relu(p.sum() - w) / w for p, w in zip(open_p, self.widths, strict=True))

    def l0_weight(self, step: int) -> float:
        """lambda, rising linearly over the first `l0_warmup` of joint training: at full strength from the start,
        the penalty is met by every gate of a layer settling near P = 1/2, all still open at test time, and pruning
        then cuts open units; the ramp lets the task sort the units before the penalty closes the unneeded ones."""
        ramp = self.s.l0_warmup * self.s.iterations
        return self.s.l0_lambda * (min(1.0, step / ramp) if ramp > 0 else 1.0)

    def l0(self) -> list[dict[str, Tensor]]:
        net = self.anatomy.joint(self.s.gate_init).to(self.device)
        names = self.layer_names
        wide = dict(zip(names, [int(la.shape[0]) for la in net.log_alpha], strict=True))
        keep_n = dict(zip(names, self.widths, strict=True))
        history: list[dict[str, Any]] = []

        def active() -> dict[str, int]:
            with torch.no_grad():
                return {n: int((z > 0).sum()) for n, z in zip(names, net.gates(sample=False), strict=True)}

        def report(step: int) -> None:
            now = active()
            history.append({"step": step, "active": now})
            self.emit(UnitsActive(context=0, step=step, total=self.s.iterations, active=now, widths=wide, keep=keep_n))

        step = [0]

        def loss_of(x: Tensor, y: Tensor, ctx: Tensor) -> Tensor:
            logits, _ = net(x)
            loss = self.task_loss(logits, y, ctx, self.teacher_logits(x, ctx))
            step[0] += 1
            return loss + self.l0_weight(step[0]) * self.l0_penalty(net.open_probability())

        report(0)
        weights = [p for n, p in net.named_parameters() if not n.startswith("log_alpha")]
        self.final_losses["joint-l0"] = self.train(
            "joint-l0", net, self.s.iterations, loss_of,
            [{"params": weights, "lr": self.lr}, {"params": list(net.log_alpha), "lr": self.s.gate_lr}], report)
        self.record.merge.active_units = history  # type: ignore[union-attr]
        with self.phase("pruning", len(names)) as ph, torch.no_grad():
            z = net.gates(sample=False)
            keep = [la.topk(w).indices.sort().values for la, w in zip(net.log_alpha, self.widths, strict=True)]
            self.kept_from_a = [int((k < w).sum()) for k, w in zip(keep, self.widths, strict=True)]
            self.pruned_open = {n: int((zl > 0).sum()) - int((zl[k] > 0).sum())
                                for n, zl, k in zip(names, z, keep, strict=True)}
            # a kept unit's test-time gate is a constant factor >= 0: folded into the weights that read it (chain)
            # or into the BatchNorms that make its channel (residual)
            student = self.anatomy.pruned_state(net, keep)
            ph.step(len(names))
        return student

    @torch.inference_mode()
    def evaluate(self, model: nn.Module) -> list[float]:
        start = time.monotonic()
        model.eval()
        last = len(self.benchmark.contexts) - 1
        out = []
        for context in self.benchmark.contexts:
            total = torch.zeros(3, device=self.device)
            for i in range(0, context.x_test.shape[0], self.s.eval_batch_size):
                x = context.inputs(context.x_test[i: i + self.s.eval_batch_size])
                view = self.scenario.eval_view(model(x), context.y_test[i: i + self.s.eval_batch_size],
                                               context.index, last)
                total += self.scenario.tally(*view)
            out.append((total, context.x_test.shape[0]))
        self.eval_s += time.monotonic() - start
        return [round(self.scenario.score(t.tolist(), n), 6) for t, n in out]

    def run(self) -> None:
        s = self.s
        self.prepare()
        self.layer_names, self.widths = self.anatomy.names, self.anatomy.widths
        self.record.merge.widths = dict(zip(self.layer_names, self.widths, strict=True))  # type: ignore[union-attr]
        self.final_losses: dict[str, float | None] = {}
        contexts = self.benchmark.contexts
        self.emit(RunStarted(run_id=self.run_dir.name, contexts=len(contexts), device=self.device_name,
                             config=self.config))
        steps = s.iterations + s.finetune_iterations
        classes = [k for ctx in contexts if ctx.index in self.data_contexts for k in ctx.classes]
        self.emit(ContextStarted(context=0, classes=classes, iterations=steps))
        start = time.monotonic()
        state = self.greedy() if s.approach == "greedy" else self.l0()
        student = fresh_model(self.a)
        # exactly the teachers' architecture: every tensor's shape must match a fresh model of their kind
        student.load_state_dict(state, strict=True)
        student.to(self.device)
        merged_acc = self.evaluate(student)

        def loss_of(x: Tensor, y: Tensor, ctx: Tensor) -> Tensor:
            return self.task_loss(student(x), y, ctx, self.teacher_logits(x, ctx))

        self.final_losses["fine-tune"] = self.train("fine-tune", student, s.finetune_iterations, loss_of,
                                                    [{"params": student.parameters(), "lr": self.lr}])
        train_s = time.monotonic() - start
        with self.phase("eval", len(contexts)):
            accuracies = self.evaluate(student)
        final_loss = self.final_losses.get("fine-tune") or self.final_losses.get(
            "imitation" if s.approach == "greedy" else "joint-l0")
        self.save_checkpoint(student)
        row = ContextRow(index=0, classes=classes, train_s=round(train_s, 4), iterations=steps,
                         final_loss=final_loss, elapsed_s=round(time.monotonic() - self.started, 3))
        info = self.record.merge
        assert info is not None
        info.phases = {k: round(v, 3) for k, v in self.phase_s.items()}
        extra = {"accuracy_before_finetune": merged_acc, "kept_from_first": dict(zip(self.layer_names,
                                                                                      self.kept_from_a, strict=True))}
        if s.approach == "l0":
            extra["open_gates_pruned"] = self.pruned_open
        for key, value in extra.items():
            setattr(info, key, value)
        self.record.context_completed(row, accuracies)
        write_record(self.run_dir, self.record)
        self.emit(ContextEvaluated(context=0, accuracies=accuracies, train_s=train_s, final_loss=final_loss))

    def save_checkpoint(self, student: nn.Module) -> None:
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = folder / "context-0.pt"
        tmp = path.with_suffix(".pt.tmp")
        with open(tmp, "wb") as f:
            torch.save({"context": 0, "model": student.state_dict()}, f)
        tmp.replace(path)

    def finish(self, status: str, error: RunError | None = None) -> None:
        timing = {"total_s": round(time.monotonic() - self.started, 3), "train_s": round(self.train_s, 3),
                  "eval_s": round(self.eval_s, 3),
                  "samples_per_s": round(self.samples / self.train_s, 1) if self.train_s else None}
        if self.record.merge is not None:
            self.record.merge.phases = {k: round(v, 3) for k, v in self.phase_s.items()}
        self.record.end(status, error, None, timing)  # type: ignore[arg-type]
        write_record(self.run_dir, self.record)


class _Phase:
    """PhaseStarted ... PhaseFinished around a block, its seconds kept for run.json."""

    def __init__(self, merger: Merger, name: str, total: int | None):
        self.m, self.name, self.total = merger, name, total

    def __enter__(self) -> Self:
        self.start = time.monotonic()
        self.m.emit(PhaseStarted(context=0, phase=self.name, total=self.total))
        return self

    def step(self, done: int) -> None:
        self.m.emit(Progress(context=0, phase=self.name, step=done, total=self.total or done))

    def __exit__(self, kind: object, *_: object) -> None:
        seconds = time.monotonic() - self.start
        self.m.phase_s[self.name] = self.m.phase_s.get(self.name, 0.0) + seconds
        if kind is None:
            self.m.emit(PhaseFinished(context=0, phase=self.name, seconds=seconds))


def merge(a: Teacher, b: Teacher, settings: MergeSettings, run_dir: Path,
          emit: Callable[[Event], None] = lambda e: None, should_stop: Callable[[], bool] = lambda: False,
          preset: str | None = None) -> dict[str, Any]:
    """Merge two checked teachers into a student saved in `run_dir` (which must exist); the final record. Bad
    input found late (a device that is not there, unreadable data) raises MergeError before anything runs."""
    from core.engine.train import InputError

    try:
        merger = Merger(a, b, settings, run_dir, emit, should_stop, preset)
    except InputError as e:
        raise MergeError(str(e)) from None
    try:
        merger.run()
    except MergeError:
        raise
    except (Cancelled, KeyboardInterrupt) as e:
        reason = str(e) or "interrupted"
        merger.finish("cancelled", RunError(message=reason, kind="cancelled"))
        emit(RunCancelled(reason=reason, context=0))
        if isinstance(e, KeyboardInterrupt):
            raise
        return merger.record.to_dict()
    except Exception as e:  # noqa: BLE001 - every failure lands in run.json
        message = str(e) if isinstance(e, FloatingPointError) else f"{type(e).__name__}: {e}"
        error = RunError(message=message, kind="error", traceback=traceback.format_exc())
        merger.finish("failed", error)
        emit(RunFailed(error=message, traceback=error.traceback or "", kind="error"))
        return merger.record.to_dict()
    merger.finish("finished")
    emit(RunFinished(metrics=merger.record.metrics, total_s=merger.record.timing["total_s"] or 0.0))
    return merger.record.to_dict()


def check_teachers(store: RunStore, run_a: str, run_b: str) -> tuple[Teacher, Teacher]:
    """Both teachers loaded and checked (finished, a checkpoint, one architecture, a supported model whose
    checkpoint fits it); MergeError or StoreError with one line otherwise."""
    a, b = load_teacher(store, run_a), load_teacher(store, run_b)
    check_compatible(a, b)
    model = fresh_model(a)
    residual_layout(model) if a.model.kind.startswith("resnet") else plan(model)  # one the merge can take apart
    for t in (a, b):
        load_weights(t, torch.device("cpu"))
    return a, b


__all__ = ["MergeError", "MergeSettings", "Merger", "StoreError", "Teacher", "check_teachers", "load_teacher",
           "merge", "settings_from"]
