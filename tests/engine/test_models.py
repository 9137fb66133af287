"""Tests for core/engine/models.py: shapes, feature dims, parameter counts, BN, XdG hooks, learnability."""

import copy

import pytest
import torch
from torch import nn

from core.engine.models import MODEL_KINDS, ContinualModel, build_model, count_parameters

# (kind, input shape it is meant for, build kwargs, expected feature dim)
CASES = [
    ("mlp", (1, 8, 8), {}, 400),
    ("mlp", (1, 28, 28), {}, 400),
    ("mlp", (1, 32, 32), {"hidden": [1000, 1000]}, 1000),
    ("mlp", (1, 8, 8), {"hidden": [64, 32]}, 32),
    ("mlp", (1, 8, 8), {"hidden": []}, 64),
    ("lenet5", (1, 28, 28), {}, 84),
    ("lenet5", (1, 32, 32), {}, 84),
    ("lenet5", (3, 32, 32), {}, 84),
    ("vdv-conv", (3, 32, 32), {}, 2000),
    ("vdv-conv", (3, 32, 32), {"fc_hidden": [100]}, 100),
    ("vdv-conv", (3, 32, 32), {"fc_hidden": []}, 1024),
    ("resnet20", (3, 32, 32), {}, 64),
    ("resnet32", (3, 32, 32), {}, 64),
    ("resnet56", (3, 32, 32), {}, 64),
    ("resnet18-reduced", (3, 32, 32), {}, 160),
]


def _ids(case):
    kind, shape, kwargs, _ = case
    return f"{kind}-{'x'.join(map(str, shape))}" + "".join(f"-{k}={v}" for k, v in kwargs.items())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("kind,shape,kwargs,feature_dim", CASES, ids=[_ids(c) for c in CASES])
def test_builds_and_forward(kind, shape, kwargs, feature_dim):
    num_outputs = 7
    model = build_model(kind, shape, num_outputs, **kwargs)
    assert isinstance(model, ContinualModel)
    assert model.feature_dim == feature_dim
    assert model.num_outputs == num_outputs
    assert isinstance(model.head, nn.Linear)
    assert (model.head.in_features, model.head.out_features) == (feature_dim, num_outputs)

    model.eval()  # deterministic BN, so the two paths below are comparable
    x = torch.randn(3, *shape)
    with torch.no_grad():
        logits = model(x)
        h = model.features(x)
        assert h.shape == (3, feature_dim)
        assert logits.shape == (3, num_outputs)
        torch.testing.assert_close(model.head(h), logits)
        assert torch.isfinite(logits).all()


def test_train_mode_forward_and_backward_all_kinds():
    for kind in MODEL_KINDS:
        shape = (1, 28, 28) if kind in ("mlp", "lenet5") else (3, 32, 32)
        model = build_model(kind, shape, 5)
        loss = model(torch.randn(2, *shape)).sum()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None for g in grads), kind


def test_mlp_parameter_count_is_exact():
    model = build_model("mlp", (1, 28, 28), 10)
    assert count_parameters(model) == 784 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10


def test_resnet32_parameter_count_matches_paper():
    # He et al. report 0.46 M for ResNet-32; option-B shortcuts and a 100-way head add a little.
    n = count_parameters(build_model("resnet32", (3, 32, 32), 100))
    assert 460_000 <= n <= 480_000


def test_resnet_depths_are_ordered():
    counts = [count_parameters(build_model(k, (3, 32, 32), 10)) for k in ("resnet20", "resnet32", "resnet56")]
    assert counts[0] < counts[1] < counts[2]


def test_count_parameters_trainable_only():
    model = build_model("vdv-conv", (3, 32, 32), 10, fc_hidden=[50])
    total = count_parameters(model)
    model.conv.requires_grad_(False)
    frozen = count_parameters(model.conv)
    assert count_parameters(model, trainable_only=True) == total - frozen
    assert count_parameters(model) == total


def test_batch_norm_flag():
    plain = build_model("mlp", (1, 28, 28), 10)
    assert not plain.has_batch_norm()
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())

    bn = build_model("mlp", (1, 28, 28), 10, hidden=[32, 16], batch_norm=True)
    assert bn.has_batch_norm()
    bns = [m for m in bn.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in bns] == [32, 16]

    for kind in ("resnet20", "resnet32", "resnet56", "resnet18-reduced", "vdv-conv"):
        assert build_model(kind, (3, 32, 32), 10).has_batch_norm(), kind
    assert not build_model("lenet5", (1, 28, 28), 10).has_batch_norm()


def test_construction_does_not_touch_bn_running_stats():
    # The conv nets size their fc layer with a dummy forward; it must not update BN statistics.
    model = build_model("vdv-conv", (3, 32, 32), 10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.num_batches_tracked.item() == 0
            torch.testing.assert_close(m.running_mean, torch.zeros_like(m.running_mean))
    assert model.training


@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_hidden_layers_gating_hook_zeroes_units(batch_norm):
    widths = [16, 12, 8]
    model = build_model("mlp", (1, 8, 8), 4, hidden=widths, batch_norm=batch_norm)
    layers = model.hidden_layers()
    assert len(layers) == len(widths)
    assert len({id(m) for m in layers}) == len(widths)  # distinct instances
    assert all(m in set(model.features.modules()) for m in layers)

    # Record each hidden layer's output width, then gate every layer with a random 0/1 mask.
    masks = [(torch.rand(w) > 0.5).float() for w in widths]
    seen = {}

    def make_hook(i):
        def hook(module, inputs, output):
            seen[i] = output.shape
            return output * masks[i]

        return hook

    handles = [m.register_forward_hook(make_hook(i)) for i, m in enumerate(layers)]
    model.eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        h = model.features(x)
        logits = model(x)
    assert [seen[i] for i in range(len(widths))] == [(5, w) for w in widths]
    # The last hidden layer's output is the features: masked units are exactly zero.
    assert (h[:, masks[-1] == 0] == 0).all()
    torch.testing.assert_close(model.head(h), logits)

    for handle in handles:
        handle.remove()
    with torch.no_grad():
        h_free = model.features(x)
    assert (h_free[:, masks[-1] == 0] != 0).any()  # the mask, not the net, made those zeros


def test_conv_nets_hidden_layers_are_fc_activations():
    lenet = build_model("lenet5", (1, 28, 28), 10)
    assert len(lenet.hidden_layers()) == 2
    vdv = build_model("vdv-conv", (3, 32, 32), 10, fc_hidden=[30, 20])
    widths = []
    handles = [
        m.register_forward_hook(lambda mod, i, o: widths.append(o.shape[1])) for m in vdv.hidden_layers()
    ]
    vdv(torch.randn(2, 3, 32, 32))
    for handle in handles:
        handle.remove()
    assert widths == [30, 20]
    assert build_model("resnet20", (3, 32, 32), 10).hidden_layers() == []


def test_vdv_conv_exposes_freezable_conv_stack():
    model = build_model("vdv-conv", (3, 32, 32), 10)
    assert isinstance(model.conv, nn.Sequential)
    assert sum(isinstance(m, nn.Conv2d) for m in model.conv.modules()) == 5
    assert model.conv_out_dim == 1024  # 32x32 -> 2x2x256
    # conv is a view into features, not a second copy: state_dict keys stay unique.
    assert not any(k.startswith("conv.") for k in model.state_dict())
    model.conv.requires_grad_(False)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for p in model.conv.parameters())
    assert all(p.grad is not None for p in model.features.fc.parameters())


def test_channels_last_matches_contiguous():
    model = build_model("resnet20", (3, 32, 32), 10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        out = model_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_deepcopy_keeps_hidden_layers_inside_the_copy():
    # Methods snapshot models (e.g. LwF, SI); gating hooks on a copy must act on the copy.
    model = build_model("mlp", (1, 8, 8), 4, hidden=[8, 8])
    clone = copy.deepcopy(model)
    clone_modules = set(clone.features.modules())
    assert all(m in clone_modules for m in clone.hidden_layers())
    assert not any(m in clone_modules for m in model.hidden_layers())


def test_mlp_learns_a_separable_problem():
    # Four Gaussian blobs in 8x8 "images": a working model + optimiser drives the loss near zero.
    num_classes, per_class = 4, 16
    centers = torch.randn(num_classes, 1, 8, 8) * 3
    y = torch.arange(num_classes).repeat_interleave(per_class)
    x = centers[y] + 0.3 * torch.randn(len(y), 1, 8, 8)
    model = build_model("mlp", (1, 8, 8), num_classes, hidden=[32, 32])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    first = loss_fn(model(x), y).item()
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    final = loss_fn(model(x), y).item()
    assert final < 0.05 < first
    assert (model(x).argmax(1) == y).all()


def test_unknown_kind_raises_naming_valid_kinds():
    with pytest.raises(ValueError) as exc:
        build_model("transformer", (3, 32, 32), 10)
    message = str(exc.value)
    assert "'transformer'" in message
    for kind in MODEL_KINDS:
        assert kind in message


def test_lenet5_rejects_too_small_inputs():
    with pytest.raises(ValueError, match="16x16"):
        build_model("lenet5", (1, 8, 8), 10)
