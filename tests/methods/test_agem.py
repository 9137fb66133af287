"""A-GEM step for step against van de Ven's `train_a_batch` (github.com/GMvandeVen/continual-learning,
models/classifier.py, use_replay='inequality'): the replay loss backpropagated into `.grad` and flattened, the
gradients zeroed, the current loss backpropagated, and, when the two disagree, the flattened gradient projected
and copied back in place with `p.grad.copy_`; then Adam steps. cltui takes the replay gradient with
`torch.autograd.grad` after the current backward and assigns new `.grad` tensors: the same update, to float
rounding, over many steps of Adam carried across contexts (class-IL, split-digits)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from core.engine.data import build_benchmark
from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.parts.base import Batch, ContextInfo
from core.schema.presets import build_config

CPU = torch.device("cpu")


def reference_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x, y, x_, y_, active: int,
                   eps: float) -> bool:
    """One step of the reference's A-GEM; whether it projected."""
    opt.zero_grad()
    F.cross_entropy(model(x_)[:, :active], y_).backward()
    grad_rep = torch.cat([p.grad.data.view(-1) for p in model.parameters() if p.requires_grad])
    opt.zero_grad()
    F.cross_entropy(model(x)[:, :active], y).backward()
    grad_cur = torch.cat([p.grad.view(-1) for p in model.parameters() if p.requires_grad])
    angle = (grad_cur * grad_rep).sum()
    if angle < 0:
        grad_proj = grad_cur - (angle / ((grad_rep * grad_rep).sum() + eps)) * grad_rep
        index = 0
        for p in model.parameters():
            if p.requires_grad:
                n = p.numel()
                p.grad.copy_(grad_proj[index : index + n].view_as(p))
                index += n
    opt.step()
    return bool(angle < 0)


def test_agem_steps_as_the_reference_does_through_adam_across_contexts():
    cfg = build_config("split-digits", method="agem", scenario="class", device="cpu", seed=1,
                       overrides=["method.budget=100"])
    bench = build_benchmark(cfg.benchmark, CPU)
    view = ScenarioView("class", 2, 5)
    cls = method_class("agem")
    torch.manual_seed(1)
    model = cls.build_model(cfg, bench.input_shape, view.head_size)
    ours = cls(cfg.method, cfg, model, view, bench, CPU)
    twin = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    opt_twin = torch.optim.Adam(twin.parameters(), lr=1e-3, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(0)
    projected, worst = 0, 0.0
    for k in range(3):
        ctx = bench.contexts[k]
        info = ContextInfo(k, ctx, None, lambda e: None)
        ours.before_context(info)
        for _ in range(40):
            idx = torch.randint(0, ctx.n_train, (128,), generator=gen)
            batch = Batch(ctx.x_train[idx], ctx.y_train[idx], k)
            if k > 0:  # the replay batch cltui will draw, drawn first from the same stream for the reference
                state = ours.generator.get_state()
                replay = ours.replayed(128, k)
                ours.generator.set_state(state)
                projected += reference_step(twin, opt_twin, batch.x, batch.y, replay.x, replay.y, 2 * (k + 1),
                                            cfg.method.epsilon)
            else:
                opt_twin.zero_grad()
                F.cross_entropy(twin(batch.x)[:, :2], batch.y).backward()
                opt_twin.step()
            loss = ours.loss(batch, info)  # the trainer's order: loss, zero_grad, backward, hook, step
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ours.after_backward(info)
            opt.step()
            for p, q in zip(model.parameters(), twin.parameters(), strict=False):
                worst = max(worst, (p - q).abs().max().item())
        ours.after_context(info)
    assert projected > 20  # the constraint was active, so the projected paths were compared too
    assert worst < 2e-4  # float rounding only (3e-5 seen): a fifth of one Adam step of lr 1e-3
