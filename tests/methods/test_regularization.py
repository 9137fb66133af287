"""EWC, online EWC, SI, XdG and separate networks against their formulas, on tiny hand-made networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.engine.data import Context, build_benchmark
from core.engine.models import build_model, count_parameters
from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.parts.base import Batch, ContextInfo
from core.methods.parts.fisher import fisher_diagonal
from core.methods.separate import budget_widths
from core.schema.config import ConfigError
from core.schema.presets import build_config

CPU = torch.device("cpu")


def tiny_setup(method: str, scenario: str = "class", overrides: list[str] = (), hidden: str = "[16,16]"):
    cfg = build_config("split-digits", method=method, scenario=scenario, device="cpu",
                       overrides=[f"model.hidden={hidden}", *overrides])
    torch.manual_seed(0)
    bench = build_benchmark(cfg.benchmark, CPU)
    view = ScenarioView(scenario, 2, 5)
    cls = method_class(method)
    model = cls.build_model(cfg, bench.input_shape, view.head_size)
    return cls(cfg.method, cfg, model, view, bench, CPU), model, bench


def nudge(model: torch.nn.Module, scale: float) -> None:
    """Move every parameter a random step, so anchors and penalties are not trivially zero."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def info_for(context: Context, stage: int | None = None) -> ContextInfo:
    return ContextInfo(context.index if stage is None else stage, context, None, lambda e: None)


def per_sample_fisher(model, x, y, view, context, mode, generator):
    """The reference: one backward pass per sample (and per class for 'all'), in eval mode."""
    model.eval()
    params = list(model.parameters())
    ref = [torch.zeros_like(p) for p in params]
    with torch.no_grad():
        view_all, target = view.train_view(model(x), y, context)
        probs = F.softmax(view_all, 1)
    sampled = torch.multinomial(probs, 1, generator=generator).squeeze(1) if mode == "sample" else None
    for i in range(x.shape[0]):
        log_p = F.log_softmax(view.train_view(model(x[i : i + 1]), y[i : i + 1], context)[0], 1)[0]
        if mode == "all":
            classes = [(c, probs[i, c]) for c in range(probs.shape[1])]
        else:
            sample = sampled[i] if sampled is not None else None
            c = {"pred": probs[i].argmax(), "true": target[i], "sample": sample}[mode]
            classes = [(int(c), 1.0)]
        for c, weight in classes:
            grads = torch.autograd.grad(log_p[c], params, retain_graph=True)
            for r, g in zip(ref, grads, strict=False):
                r += weight * g.square()
    return [r / x.shape[0] for r in ref]


FISHER_NETS = {
    "mlp": lambda: build_model("mlp", (1, 8, 8), 10, hidden=[12, 10]),
    "mlp-bn": lambda: build_model("mlp", (1, 8, 8), 10, hidden=[12, 10], batch_norm=True),
    "lenet5": lambda: build_model("lenet5", (1, 16, 16), 10),
    "resnet20": lambda: build_model("resnet20", (3, 8, 8), 10),
}


@pytest.mark.parametrize("how", ["layerwise", "vmap"])
@pytest.mark.parametrize("net", list(FISHER_NETS))
@pytest.mark.parametrize("mode", ["all", "sample", "pred", "true"])
@pytest.mark.parametrize("scenario", ["task", "class"])
def test_batched_fisher_equals_a_per_sample_loop(mode, scenario, net, how):
    torch.manual_seed(0)
    model = FISHER_NETS[net]()
    if net != "mlp":  # give BatchNorm non-trivial running statistics
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(16, *model_input_shape(net)))
    model.eval()
    view = ScenarioView(scenario, 2, 5)
    x, y = torch.rand(12, *model_input_shape(net)), torch.randint(2, 4, (12,))  # context 1 owns labels 2, 3
    batched = fisher_diagonal(model, x, y, view, 1, mode, torch.Generator().manual_seed(5), method=how)
    reference = per_sample_fisher(model, x, y, view, 1, mode, torch.Generator().manual_seed(5))
    for (name, _), ref in zip(model.named_parameters(), reference, strict=False):
        assert torch.allclose(batched[name], ref, rtol=1e-3, atol=1e-7), name
    assert any(f.abs().sum() > 0 for f in batched.values())


def model_input_shape(net: str) -> tuple[int, int, int]:
    return {"mlp": (1, 8, 8), "mlp-bn": (1, 8, 8), "lenet5": (1, 16, 16), "resnet20": (3, 8, 8)}[net]


def test_fisher_uses_running_batchnorm_statistics_and_restores_train_mode():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 4, hidden=[8], batch_norm=True)
    model.train()
    fisher_diagonal(model, torch.rand(6, 1, 8, 8), torch.randint(0, 2, (6,)), ScenarioView("class", 2, 2), 0)
    assert model.training


def test_offline_ewc_penalty_equals_its_formula_over_every_context():
    ewc, model, bench = tiny_setup("ewc", overrides=["method.lambda=3.0"])
    fishers, anchors = [], []
    for k in range(3):
        nudge(model, 0.05)
        ctx = bench.contexts[k]
        fishers.append(fisher_diagonal(model, ctx.x_train, ctx.y_train, ewc.scenario, k, "all"))
        anchors.append({n: p.detach().clone() for n, p in model.named_parameters()})
        ewc.after_context(info_for(ctx))
    nudge(model, 0.1)
    by_formula = 0.5 * 3.0 * sum(
        (f[n] * (p - a[n]).square()).sum()
        for f, a in zip(fishers, anchors, strict=False)
        for n, p in model.named_parameters()
    )
    assert ewc.penalty().item() == pytest.approx(by_formula.item(), rel=1e-4)
    # ...and its gradient is the formula's gradient.
    grad = torch.autograd.grad(ewc.penalty(), list(model.parameters()))
    for g, (n, p) in zip(grad, model.named_parameters(), strict=False):
        expected = 3.0 * sum(f[n] * (p - a[n]) for f, a in zip(fishers, anchors, strict=False))
        assert torch.allclose(g, expected, rtol=1e-4, atol=1e-9), n


def test_online_ewc_decays_the_running_fisher_and_keeps_one_anchor():
    ewc, model, bench = tiny_setup("online-ewc", overrides=["method.lambda=2.0", "method.gamma=0.5"])
    fishers = []
    for k in range(2):
        nudge(model, 0.05)
        ctx = bench.contexts[k]
        fishers.append(fisher_diagonal(model, ctx.x_train, ctx.y_train, ewc.scenario, k, "all"))
        ewc.after_context(info_for(ctx))
    last_anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    nudge(model, 0.1)
    by_formula = 0.5 * 2.0 * sum(
        ((0.5 * fishers[0][n] + fishers[1][n]) * (p - last_anchor[n]).square()).sum()
        for n, p in model.named_parameters()
    )
    assert ewc.penalty().item() == pytest.approx(by_formula.item(), rel=1e-4)


def test_si_path_integral_uses_the_data_gradient_and_the_penalty_matches_its_formula():
    si, model, bench = tiny_setup("si", overrides=["method.c=0.7", "method.epsilon=0.1"])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    params = list(model.parameters())

    def steps(ctx: Context, n: int, expect_penalty: bool) -> list[torch.Tensor]:
        """Train n steps through the method's hooks, accumulating -g_data * delta by hand."""
        info = info_for(ctx)
        si.before_context(info)
        start = [p.detach().clone() for p in params]
        omega = [torch.zeros_like(p) for p in params]
        for i in range(n):
            batch = Batch(ctx.x_train[i * 16 : (i + 1) * 16], ctx.y_train[i * 16 : (i + 1) * 16], ctx.index)
            data_loss = F.cross_entropy(*si.scenario.train_view(model(batch.x), batch.y, ctx.index))
            data_grad = torch.autograd.grad(data_loss, params)
            opt.zero_grad()
            loss = si.loss(batch, info)
            if expect_penalty:
                assert loss.item() == pytest.approx(data_loss.item() + si.penalty().item(), rel=1e-5)
            loss.backward()
            before = [p.detach().clone() for p in params]
            penalty_grad = torch.autograd.grad(si.penalty(), params) if expect_penalty else [0] * len(params)
            si.after_backward(info)
            # .grad = data gradient + penalty gradient
            for p, g, pg in zip(params, data_grad, penalty_grad, strict=False):
                assert torch.allclose(p.grad, g + pg, rtol=1e-4, atol=1e-7)
            opt.step()
            si.after_step(info)
            for w, g, p, b in zip(omega, data_grad, params, before, strict=False):
                w -= g * (p.detach() - b)
        si.after_context(info)
        return [w / ((p.detach() - s).square() + 0.1) for w, p, s in zip(omega, params, start, strict=False)]

    big_omega = steps(bench.contexts[0], 4, expect_penalty=False)
    for got, want in zip(si.omega_total, big_omega, strict=False):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-9)
    anchor = [p.detach().clone() for p in params]
    nudge(model, 0.1)
    by_formula = 0.7 * sum((o * (p - a).square()).sum() for o, p, a in zip(big_omega, params, anchor, strict=False))
    assert si.penalty().item() == pytest.approx(by_formula.item(), rel=1e-4)
    second = steps(bench.contexts[1], 3, expect_penalty=True)  # Omega accumulates across contexts
    for got, a, b in zip(si.omega_total, big_omega, second, strict=False):
        assert torch.allclose(got, a + b, rtol=1e-4, atol=1e-9)


def test_xdg_masks_zero_exactly_the_gated_units_and_differ_between_contexts():
    xdg, model, bench = tiny_setup("xdg", scenario="task", overrides=["method.gating=0.75"], hidden="[40,20]")
    captured = []
    hooks = [layer.register_forward_hook(lambda m, i, out: captured.append(out.detach()))
             for layer in model.hidden_layers()]
    x = bench.contexts[0].x_test[:8]
    for k in range(3):
        captured.clear()
        xdg.predict(x, k)
        for layer, (activation, mask) in enumerate(zip(captured, xdg.masks, strict=False)):
            width = activation.shape[1]
            gated = mask[k] == 0
            assert int(gated.sum()) == round(0.75 * width)
            assert (activation[:, gated] == 0).all(), f"layer {layer}: a gated unit is not exactly 0"
            assert (activation[:, ~gated] != 0).any(), f"layer {layer}: open units should carry signal"
    for mask in xdg.masks:
        assert not torch.equal(mask[0], mask[1]) and not torch.equal(mask[1], mask[2])
    for h in hooks:
        h.remove()


@pytest.mark.parametrize("method", ["xdg", "separate"])
@pytest.mark.parametrize("scenario", ["domain", "class"])
def test_task_only_methods_are_refused_outside_task_il(method, scenario):
    with pytest.raises(ConfigError) as e:
        build_config("split-digits", method=method, scenario=scenario)
    assert "\n" not in str(e.value) and "task" in str(e.value) and method in str(e.value)


def test_ewc_without_a_tuned_default_names_the_setting(tmp_path):
    from core.schema.presets import builtin_presets_dir

    bare = (builtin_presets_dir() / "split-digits.toml").read_text().split("# Tuned per-scenario")[0]
    (tmp_path / "bare.toml").write_text(bare)
    with pytest.raises(ConfigError, match=r"method\.lambda: .*--set method\.lambda="):
        build_config(str(tmp_path / "bare.toml"), method="ewc")


def test_presets_resolve_the_tuned_strengths_per_scenario():
    expect = {("split-digits", "task"): (1e5, 10), ("split-digits", "domain"): (1e10, 5e4),
              ("split-digits", "class"): (1e9, 5e3), ("split-cifar100", "class"): (100, 5),
              ("perm-mnist", "domain"): (100, 10), ("split-cifar10", "class"): (100, 5)}
    for (preset, scenario), (lam, c) in expect.items():
        assert build_config(preset, method="ewc", scenario=scenario).method.lambda_ == lam
        assert build_config(preset, method="si", scenario=scenario).method.c == c
    assert build_config("split-digits", method="ewc", overrides=["method.lambda=7"]).method.lambda_ == 7
    assert build_config("split-cifar100", method="xdg", scenario="task").method.gating == 0.85


def test_separate_networks_share_the_parameter_budget_and_nothing_else():
    cfg = build_config("split-digits", method="separate", scenario="task", device="cpu")
    shared = count_parameters(build_model("mlp", (1, 8, 8), 10, hidden=[400, 400]))
    widths = budget_widths(cfg, (1, 8, 8), 5, 2)
    total = 5 * count_parameters(build_model("mlp", (1, 8, 8), 2, hidden=widths))
    assert 0.8 * shared <= total <= shared
    sep, model, bench = tiny_setup("separate", scenario="task", hidden="[400,400]")
    x = bench.contexts[0].x_test[:16]
    before = sep.predict(x, 0).detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ctx = bench.contexts[1]
    info = info_for(ctx)
    sep.before_context(info)
    for _ in range(5):
        opt.zero_grad(set_to_none=True)
        sep.loss(Batch(ctx.x_train[:32], ctx.y_train[:32], 1), info).backward()
        opt.step()
    assert torch.equal(sep.predict(x, 0), before), "training context 1 changed context 0's network"
    assert not torch.equal(sep.predict(x, 1)[:, 2:4], before[:, 2:4])
