"""Unit algebra of a feed-forward network seen as a chain of unit layers (`Stage`s): the plan of a model, its
tensors per stage, hard-concrete gates (Louizos, Welling & Kingma 2018), `UnitNet` (a chain with free widths,
optionally gated), the joint network of two teachers side by side, and a network cut to chosen units with the kept
gates folded into the weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.merge.settings import MergeError

GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0  # hard-concrete stretch and temperature (Louizos et al. 2018)


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
