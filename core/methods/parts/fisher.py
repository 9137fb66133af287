"""The diagonal Fisher information of a network on a context's data, for EWC (core/methods/ewc.py):

    F_i = E_x E_{y ~ p(y|x)} [ (d log p(y | x) / d theta_i)^2 ]

computed from per-sample gradients in one batched pass, never one sample at a time: layer by layer from
each layer's inputs and backpropagated outputs (Linear, Conv2d, BatchNorm), or with `torch.func.vmap` of
`grad` for any other network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from core.engine.data import Context
from core.engine.scenarios import ScenarioView

FISHER_CHUNK_FLOATS = 2**25  # per-sample numbers held at once (128 MB of float32)
LAYERWISE = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


def fisher_diagonal(model: nn.Module, x: Tensor, y: Tensor, scenario: ScenarioView, context: int,
                    labels: str = "all", generator: torch.Generator | None = None,
                    progress=lambda done: None, method: str = "auto") -> dict[str, Tensor]:
    """Mean over samples of the squared per-sample gradients of log p(label | x) (the diagonal Fisher).

    `progress(done)` is called after every chunk of samples and every backward pass within one (a
    phase's progress callback: it reports the samples done and raises Cancelled on a stop).

    labels: "all" (exact expectation over the model's predictive distribution), "sample" (one label
    drawn from it), "pred" (its argmax) or "true" (the data's labels: the empirical Fisher). The
    network is evaluated in eval mode (BatchNorm uses running statistics), logits under the
    scenario's view of `context`.

    method: "layerwise" (Linear, Conv2d, BatchNorm layers: per-sample squared gradients from one
    batched backward pass, never materialising a per-sample gradient of a linear layer), "vmap"
    (torch.func.vmap of grad: any network, but memory-bound), or "auto" (layerwise when it applies).
    """
    if method == "auto":
        method = "layerwise" if _layerwise_applies(model) else "vmap"
    fn = _fisher_layerwise if method == "layerwise" else _fisher_vmap
    was_training = model.training
    model.eval()
    try:
        fisher = fn(model, x, y, scenario, context, labels, generator, progress)
    finally:
        model.train(was_training)
    return {n: f / x.shape[0] for n, f in fisher.items()}


def _label_weights(log_p: Tensor, target: Tensor, labels: str, generator: torch.Generator | None
                   ) -> list[tuple[Tensor, Tensor | None]]:
    """(label per sample, weight per sample or None) pairs whose weighted squared gradients sum to the Fisher."""
    probs = log_p.detach().exp()
    if labels == "all":
        return [(torch.full_like(target, c), probs[:, c]) for c in range(probs.shape[1])]
    if labels == "sample":
        return [(torch.multinomial(probs, 1, generator=generator).squeeze(1), None)]
    return [(probs.argmax(1) if labels == "pred" else target, None)]


def _layerwise_applies(model: nn.Module) -> bool:
    for m in model.modules():
        if any(p.requires_grad for p in m.parameters(recurse=False)):
            if not isinstance(m, LAYERWISE):
                return False
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                return False
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and not m.track_running_stats:
                return False
    return True


def _fisher_layerwise(model, x, y, scenario, context, labels, generator, progress) -> dict[str, Tensor]:
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, LAYERWISE) and any(p.requires_grad for p in m.parameters(recurse=False))]
    prefix = {m: name for name, m in layers}
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    seen: dict[nn.Module, tuple[Tensor, Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.__setitem__(mod, (inp[0].detach(), out)))
             for _, m in layers]
    widest = max((m.weight.numel() for _, m in layers if isinstance(m, nn.Conv2d)), default=1)
    chunk = max(1, min(1024, FISHER_CHUNK_FLOATS // widest))
    try:
        for start in range(0, x.shape[0], chunk):
            xs, ys = x[start : start + chunk], y[start : start + chunk]
            seen.clear()
            with torch.enable_grad():
                view, target = scenario.train_view(model(xs), ys, context)
                log_p = F.log_softmax(view.float(), dim=1)
                outputs = [seen[m][1] for _, m in layers]
                for label, weight in _label_weights(log_p, target, labels, generator):
                    # Samples are independent in eval mode, so the gradient of the summed log-likelihood with
                    # respect to a layer's output holds each sample's own backpropagated signal in its row.
                    chosen = log_p.gather(1, label.unsqueeze(1)).sum()
                    deltas = torch.autograd.grad(chosen, outputs, retain_graph=True)
                    for (_, m), delta in zip(layers, deltas, strict=False):
                        _accumulate(m, prefix[m], seen[m][0], delta.detach(), weight, fisher)
                    progress(start)  # a backward pass per class with labels="all": stoppable between them
            progress(min(start + chunk, x.shape[0]))
    finally:
        for h in hooks:
            h.remove()
    return fisher


def _accumulate(m: nn.Module, name: str, a: Tensor, d: Tensor, weight: Tensor | None,
                fisher: dict[str, Tensor]) -> None:
    """Add sum_i w_i g_i^2 for the parameters of one layer, g_i the per-sample gradient."""
    key = f"{name}.weight" if name else "weight"
    bias_key = f"{name}.bias" if name else "bias"
    w = torch.ones(a.shape[0], device=a.device) if weight is None else weight
    if isinstance(m, nn.Linear):
        # g_W,i = d_i a_i^T, so g_W,i^2 = d_i^2 (a_i^2)^T and the sum over samples is one matmul.
        d2 = d.float().square() * w[:, None]
        if m.weight.requires_grad:
            fisher[key] += d2.T @ a.float().square()
        if m.bias is not None and m.bias.requires_grad:
            fisher[bias_key] += d2.sum(0)
    elif isinstance(m, nn.Conv2d):
        # A conv weight's per-sample gradient sums over positions, so it is formed per sample (small).
        cols = F.unfold(a, m.kernel_size, m.dilation, m.padding, m.stride)  # (N, in*k*k, P)
        g = torch.bmm(d.flatten(2), cols.transpose(1, 2))  # (N, out, in*k*k)
        if m.weight.requires_grad:
            fisher[key] += torch.einsum("n,noi->oi", w, g.square()).view_as(m.weight)
        if m.bias is not None and m.bias.requires_grad:
            fisher[bias_key] += torch.einsum("n,no->o", w, d.flatten(2).sum(2).square())
    else:  # BatchNorm in eval mode: y = gamma * x_hat + beta with the running statistics
        shape = (1, -1) + (1,) * (a.dim() - 2)
        x_hat = (a - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps)
        dims = tuple(range(2, a.dim()))
        if m.weight is not None and m.weight.requires_grad:
            g = (d * x_hat).sum(dims) if dims else d * x_hat
            fisher[key] += torch.einsum("n,nc->c", w, g.square())
        if m.bias is not None and m.bias.requires_grad:
            g = d.sum(dims) if dims else d
            fisher[bias_key] += torch.einsum("n,nc->c", w, g.square())


def _fisher_vmap(model, x, y, scenario, context, labels, generator, progress) -> dict[str, Tensor]:
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    n_params = sum(p.numel() for p in params.values())

    def log_prob_of(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        view, _ = scenario.train_view(logits, yi.unsqueeze(0), context)
        return F.log_softmax(view.float(), dim=1)[0].gather(0, yi.unsqueeze(0)).squeeze(0)  # no tensor indexing in vmap

    per_sample_grad = vmap(grad(log_prob_of), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    chunk = max(1, FISHER_CHUNK_FLOATS // n_params)
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start : start + chunk], y[start : start + chunk]
        with torch.no_grad():
            view, target = scenario.train_view(model(xs), ys, context)
            log_p = F.log_softmax(view.float(), dim=1)
        for label, weight in _label_weights(log_p, target, labels, generator):
            g = per_sample_grad(params, xs, label)
            w = torch.ones(xs.shape[0], device=x.device) if weight is None else weight
            for n in fisher:
                fisher[n] += torch.einsum("b,b...->...", w, g[n].square())
            progress(start)  # one vmap pass per class with labels="all": stoppable between them
        progress(min(start + chunk, x.shape[0]))
    return fisher


def fisher_samples(context: Context, n: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The inputs (as the network sees them) and labels the Fisher is estimated on: the context's whole
    training set, or `n` of its samples drawn without replacement."""
    if n is None or n >= context.n_train:
        return context.inputs(context.x_train), context.y_train
    idx = torch.randperm(context.n_train, generator=generator, device=generator.device)[:n]
    return context.inputs(context.x_train[idx]), context.y_train[idx]

