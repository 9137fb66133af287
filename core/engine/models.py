"""The network zoo: the plain PyTorch models that continual-learning methods train.

Every model is a ContinualModel, split into a feature extractor and a linear head,
    logits = head(features(x)),   features(x) = h(x) of shape (N, feature_dim),
because most continual-learning methods need that split: replay of features, nearest-mean
classifiers, per-context heads, freezing a pretrained trunk. hidden_layers() names the
modules whose outputs context-dependent gating (XdG, Masse et al. 2018) masks.

The models:
    mlp               fully connected net, van de Ven et al. (2022), "Three types of incremental learning"
    lenet5            LeCun et al. (1998)
    vdv-conv          van de Ven's 5-layer conv net for CIFAR (GMvandeVen/continual-learning) + fc layers
    resnet20/32/56    CIFAR ResNets, He et al. (2016), section 4.2, with option-B (projection) shortcuts
    resnet18-reduced  the reduced ResNet-18 of GEM, Lopez-Paz & Ranzato (2017), 20 base channels

Build them with build_model(kind, input_shape, num_outputs, ...). The modules are deliberately
plain (no data-dependent control flow, no Python loops in forward beyond iterating over layers) so
that they work under torch.compile and with channels_last.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

MODEL_KINDS: tuple[str, ...] = (
    "mlp",
    "lenet5",
    "vdv-conv",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet18-reduced",
)


# -----------------------------------------------------------------------------


class ContinualModel(nn.Module):
    """Base class: a feature extractor `features` and a linear `head` on top of it.

    Subclasses build `features` (any nn.Module mapping (N, C, H, W) to (N, feature_dim)) and pass
    it here; the head is always a single nn.Linear so that methods can swap, grow or mask it.
    """

    def __init__(self, features: nn.Module, feature_dim: int, num_outputs: int):
        super().__init__()
        self.features = features
        self.feature_dim = int(feature_dim)
        self.num_outputs = int(num_outputs)
        self.head = nn.Linear(self.feature_dim, self.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def hidden_layers(self) -> list[nn.Module]:
        """The activation modules (nn.ReLU instances, one per hidden layer, in depth order) whose
        outputs are the post-activation hidden vectors of shape (N, width).

        XdG masks hidden units by registering a forward hook on each of these modules that returns
        `output * mask`; each is a distinct module instance used exactly once in forward, so a hook
        on it touches exactly one layer. Models without fully connected hidden layers return [].
        """
        return []

    def has_batch_norm(self) -> bool:
        # Methods care because BN running statistics drift across contexts and behave differently
        # in train/eval mode (e.g. for replay, or when computing the Fisher in EWC).
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def _output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    # A dummy forward is the simplest correct way to size the first fc layer for any input size.
    # Eval mode, so BatchNorm running statistics of the fresh model are not touched.
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, *input_shape))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])


def _fc_block(widths: list[int], in_dim: int, batch_norm: bool) -> tuple[nn.Sequential, list[nn.Module], int]:
    """Linear -> (BatchNorm1d) -> ReLU for each width; returns (block, its ReLU modules, out dim)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    relus: list[nn.Module] = []
    for i, width in enumerate(widths, start=1):
        # With BN right after it, the Linear's bias is redundant (BN subtracts the mean).
        layers[f"fc{i}"] = nn.Linear(in_dim, width, bias=not batch_norm)
        if batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm1d(width)
        # Not in-place: a gating hook must see (and may replace) a tensor that no later op mutates.
        relu = nn.ReLU()
        layers[f"relu{i}"] = relu
        relus.append(relu)
        in_dim = width
    return nn.Sequential(layers), relus, in_dim


def _check_widths(name: str, widths: list[int]) -> list[int]:
    widths = list(widths)
    if any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"{name} must be positive integers, got {widths!r}")
    return [int(w) for w in widths]


# -----------------------------------------------------------------------------
# Fully connected


class MLP(ContinualModel):
    """flatten -> [Linear -> (BatchNorm1d) -> ReLU] per hidden width -> head.

    features(x) is the output of the last hidden layer (the flattened input if hidden == []).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        hidden: list[int] | tuple[int, ...] = (400, 400),
        batch_norm: bool = False,
    ):
        in_dim = int(torch.Size(input_shape).numel())
        fc, relus, feature_dim = _fc_block(_check_widths("hidden", hidden), in_dim, batch_norm)
        features = nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc=fc))
        super().__init__(features, feature_dim, num_outputs)
        # A plain list, not an nn.ModuleList: the ReLUs are already registered inside `features`,
        # and registering them twice would duplicate entries in module listings.
        self._hidden = relus

    def hidden_layers(self) -> list[nn.Module]:
        return list(self._hidden)


# -----------------------------------------------------------------------------
# Small conv nets: a conv stack, flatten, fc hidden layers (these are what XdG gates).


class _ConvThenFC(ContinualModel):
    """features = conv stack -> flatten -> fc hidden layers; exposes `conv` for freezing."""

    def __init__(
        self,
        conv: nn.Sequential,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        fc_hidden: list[int],
        batch_norm: bool,
    ):
        flat_dim = int(torch.Size(_output_shape(conv, input_shape)).numel())
        fc, relus, feature_dim = _fc_block(_check_widths("fc_hidden", fc_hidden), flat_dim, batch_norm)
        features = nn.Sequential(OrderedDict(conv=conv, flatten=nn.Flatten(), fc=fc))
        super().__init__(features, feature_dim, num_outputs)
        self.conv_out_dim = flat_dim
        self._hidden = relus

    conv_frozen = False  # model.freeze_conv: the conv stack also stays in eval mode (its BN statistics fixed)

    def train(self, mode: bool = True) -> _ConvThenFC:
        super().train(mode)
        if self.conv_frozen:  # as van de Ven's frozen convE: trained around, never changed
            self.conv.eval()
        return self

    @property
    def conv(self) -> nn.Sequential:
        # A view onto features.conv rather than a second registered attribute, so state_dict keys
        # stay unique ("features.conv.*") while presets can still do model.conv.requires_grad_(False).
        return self.features.conv

    def hidden_layers(self) -> list[nn.Module]:
        return list(self._hidden)


class LeNet5(_ConvThenFC):
    """conv 6@5x5 -> ReLU -> maxpool 2 -> conv 16@5x5 -> ReLU -> maxpool 2 -> fc 120 -> fc 84 -> head.

    LeNet-5 was designed for 32x32 inputs (MNIST padded by 2 pixels); for smaller inputs (28x28
    MNIST) the first conv pads by 2 so the net sees the same geometry. Needs inputs >= 16x16.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_outputs: int, batch_norm: bool = False):
        c, h, w = input_shape
        padding = 2 if min(h, w) < 32 else 0
        conv = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(c, 6, kernel_size=5, padding=padding),
                relu1=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(6, 16, kernel_size=5),
                relu2=nn.ReLU(),
                pool2=nn.MaxPool2d(2),
            )
        )
        super().__init__(conv, input_shape, num_outputs, fc_hidden=[120, 84], batch_norm=batch_norm)


class VdVConvNet(_ConvThenFC):
    """van de Ven et al.'s CIFAR conv net: 5 x [conv 3x3 -> BN -> ReLU] with 16, 32, 64, 128, 256
    channels, the last four with stride 2 (32x32 -> 2x2x256 = 1024), then fc hidden layers.

    The conv stack is the part that their experiments pretrain (on CIFAR-10) and freeze, hence
    `self.conv`.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        fc_hidden: list[int] | tuple[int, ...] = (2000, 2000),
        batch_norm: bool = False,
    ):
        c = input_shape[0]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (c_out, stride) in enumerate(zip((16, 32, 64, 128, 256), (1, 2, 2, 2, 2), strict=False), start=1):
            layers[f"conv{i}"] = nn.Conv2d(c, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
            layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
            layers[f"relu{i}"] = nn.ReLU()
            c = c_out
        super().__init__(
            nn.Sequential(layers), input_shape, num_outputs, fc_hidden=fc_hidden, batch_norm=batch_norm
        )


# -----------------------------------------------------------------------------
# ResNets


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; identity shortcut, or 1x1 conv + BN when the shape changes (option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def _resnet_features(
    c_in: int, widths: tuple[int, ...], strides: tuple[int, ...], blocks: int
) -> nn.Sequential:
    """stem conv 3x3 + BN + ReLU, then one stage of `blocks` BasicBlocks per width, global avg pool."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv1"] = nn.Conv2d(c_in, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
    layers["bn1"] = nn.BatchNorm2d(widths[0])
    layers["relu1"] = nn.ReLU()
    c = widths[0]
    for i, (width, stride) in enumerate(zip(widths, strides, strict=False), start=1):
        stage = [BasicBlock(c, width, stride)] + [BasicBlock(width, width, 1) for _ in range(blocks - 1)]
        layers[f"layer{i}"] = nn.Sequential(*stage)
        c = width
    # Adaptive, so any input size works (GEM's fixed avg_pool2d(4) only fits 32x32).
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    return nn.Sequential(layers)


def _kaiming_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CifarResNet(ContinualModel):
    """He et al. (2016) CIFAR ResNet-(6n+2): 3 stages of n blocks, 16/32/64 channels -> 64 features."""

    def __init__(self, input_shape: tuple[int, int, int], num_outputs: int, n: int):
        features = _resnet_features(input_shape[0], (16, 32, 64), (1, 2, 2), n)
        super().__init__(features, 64, num_outputs)
        self.depth = 6 * n + 2
        _kaiming_init(self)


class ReducedResNet18(ContinualModel):
    """GEM's reduced ResNet-18: 4 stages of 2 blocks, 20/40/80/160 channels -> 160 features."""

    def __init__(self, input_shape: tuple[int, int, int], num_outputs: int, nf: int = 20):
        widths = (nf, 2 * nf, 4 * nf, 8 * nf)
        features = _resnet_features(input_shape[0], widths, (1, 2, 2, 2), 2)
        super().__init__(features, widths[-1], num_outputs)
        _kaiming_init(self)


# -----------------------------------------------------------------------------


def build_model(
    kind: str,
    input_shape: tuple[int, int, int],
    num_outputs: int,
    hidden: list[int] | None = None,
    batch_norm: bool = False,
    fc_hidden: list[int] | None = None,
) -> ContinualModel:
    """Build a model of the given kind for inputs of shape (C, H, W) and `num_outputs` logits.

    `hidden` (default [400, 400]) applies to "mlp" only; `fc_hidden` (default [2000, 2000]) to
    "vdv-conv" only; `batch_norm` adds BatchNorm1d to the fully connected hidden layers of "mlp",
    "lenet5" and "vdv-conv". Options that do not apply to a kind are ignored; conv layers of
    "vdv-conv" and the ResNets always have BatchNorm.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)!r}")
    input_shape = tuple(int(s) for s in input_shape)
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")

    if kind == "mlp":
        return MLP(
            input_shape, num_outputs, hidden=[400, 400] if hidden is None else hidden, batch_norm=batch_norm
        )
    if kind == "lenet5":
        if min(input_shape[1:]) < 16:
            raise ValueError(f"lenet5 needs inputs of at least 16x16, got {input_shape[1]}x{input_shape[2]}")
        return LeNet5(input_shape, num_outputs, batch_norm=batch_norm)
    if kind == "vdv-conv":
        return VdVConvNet(
            input_shape,
            num_outputs,
            fc_hidden=[2000, 2000] if fc_hidden is None else fc_hidden,
            batch_norm=batch_norm,
        )
    if kind in ("resnet20", "resnet32", "resnet56"):
        return CifarResNet(input_shape, num_outputs, n={"resnet20": 3, "resnet32": 5, "resnet56": 9}[kind])
    return ReducedResNet18(input_shape, num_outputs)
