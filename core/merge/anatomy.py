"""Anatomies: how a model kind is taken apart into unit groups, joined into the double-width joint network and
cut back to the teachers' architecture.

A feed-forward model's (mlp, lenet5, vdv-conv) group is one hidden layer (`Chain`); a residual network's
(resnet20/32/56, resnet18-reduced) groups are each block's inner channels and each stage's residual channels
(`Residual`). A stage's channels are added to one another by every identity shortcut, so they are kept or pruned
together: one L0 gate per stage channel, applied to every BatchNorm that writes into the stage (`Probe`); pruning
folds the kept gates into those BatchNorms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from core.merge.settings import MergeError
from core.merge.units import UnitNet, cut, gates, joint_params, open_probability, plan, stage_params, to_state_dict


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
