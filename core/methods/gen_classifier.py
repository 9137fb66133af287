"""Generative classifier (van de Ven, Li & Tolias 2021): one small VAE per class, nothing shared; a test
input goes to the class whose VAE gives it the highest likelihood.

    train, class k on its own samples only:  -ELBO_k(x) = -E_q[log p_k(x|z)] + KL(q_k(z|x) || N(0, I))
    predict:  argmax_k log p_k(x),  log p_k(x) ~= log 1/S sum_s p_k(x|z_s) p(z_s) / q_k(z_s|x),  z_s ~ q_k(z|x)

Classes share no parameters, so learning a new class cannot disturb an old one: no forgetting by
construction, and class-IL needs no replay. The VAEs live in a `VAEBank` whose weights are stacked over
classes, (classes, in, out), so training a context's VAEs and scoring a test batch under every class's
VAE are a few batched matmuls. Each context's classes own their own parameter tensors: while a later
context trains, an old class's tensors get no gradient at all (`.grad` stays None), so Adam skips them and
they stay bit-identical (a single stacked tensor would get zero gradients, and Adam's leftover momentum
would still move them).

Likelihood: Bernoulli (BCE) for pixels in [0, 1]; a unit-variance Gaussian for standardised inputs
(CIFAR), as in the paper's code. Both are used alike for every class, so the comparison is fair.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.methods.parts.base import Batch, ContextInfo, Method
from core.schema.config import RunConfig
from core.schema.params import GenClassifierParams

# Elements of the largest activation one scoring chunk may hold (classes x inputs x samples x width), on the
# CPU (cache-sized, 64 MiB) and on CUDA (512 MiB: a few such tensors are alive at once).
SCORE_CHUNK_ELEMENTS = {"cpu": 2**24, "cuda": 2**27}


class StackedLinear(nn.Module):
    """One linear layer per class, side by side: y_k = x_k W_k + b_k. Classes are grouped by context, one
    parameter tensor per context, so that only the training context's tensors receive gradients."""

    def __init__(self, contexts: int, classes_per_context: int, fan_in: int, fan_out: int):
        super().__init__()
        bound = fan_in**-0.5  # nn.Linear's default initialisation

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.weight = nn.ParameterList(uniform(classes_per_context, fan_in, fan_out) for _ in range(contexts))
        self.bias = nn.ParameterList(uniform(classes_per_context, 1, fan_out) for _ in range(contexts))

    def forward(self, x: Tensor, contexts: slice) -> Tensor:
        """x: (M, in) fed to every class of `contexts`, or (K, M, in) one slab per class -> (K, M, out)."""
        indices = range(len(self.weight))[contexts]
        w, b = _stacked([self.weight[i] for i in indices]), _stacked([self.bias[i] for i in indices])
        return torch.baddbmm(b, x, w) if x.dim() == 3 else torch.matmul(x, w) + b


def _stacked(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)  # no copy while one context trains


class VAEBank(nn.Module):
    """A VAE per class (van de Ven et al.'s MNIST shape: encoder in-h-h, latent z, decoder z-h-h-in), the
    weights of all classes stacked. Methods take `contexts`, a slice of context indices: the classes scored
    are those contexts' classes, in label order. `trained` marks the classes that have been learned."""

    def __init__(self, contexts: int, classes_per_context: int, in_dim: int, hidden: int, z_dim: int,
                 likelihood: str):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"method.likelihood: {likelihood!r} is not bernoulli or gaussian")
        self.contexts, self.classes_per_context = contexts, classes_per_context
        self.in_dim, self.hidden, self.z_dim, self.likelihood = in_dim, hidden, z_dim, likelihood
        shape = (contexts, classes_per_context)
        self.encoder = nn.ModuleList([StackedLinear(*shape, in_dim, hidden), StackedLinear(*shape, hidden, hidden)])
        self.to_z = StackedLinear(*shape, hidden, 2 * z_dim)  # mean and log-variance of q(z|x)
        self.decoder = nn.ModuleList([StackedLinear(*shape, z_dim, hidden), StackedLinear(*shape, hidden, hidden),
                                      StackedLinear(*shape, hidden, in_dim)])
        self.register_buffer("trained", torch.zeros(contexts * classes_per_context, dtype=torch.bool))

    @property
    def classes(self) -> int:
        return self.contexts * self.classes_per_context

    def encode(self, x: Tensor, contexts: slice) -> tuple[Tensor, Tensor]:
        """x (M, D) under every class of `contexts` -> mean, log-variance (K, M, z)."""
        h = x
        for layer in self.encoder:
            h = F.relu(layer(h, contexts))
        mu, logvar = self.to_z(h, contexts).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor, contexts: slice) -> Tensor:
        """z (K, M, z) -> Bernoulli logits or Gaussian means (K, M, D)."""
        h = z
        for layer in self.decoder[:-1]:
            h = F.relu(layer(h, contexts))
        return self.decoder[-1](h, contexts)

    def log_px(self, x: Tensor, out: Tensor) -> Tensor:
        """log p(x|z) summed over the input dimensions; x broadcasts against the decoder output."""
        out = out.float()  # sums over thousands of pixels: never in bf16
        if self.likelihood == "bernoulli":
            return (x * out - F.softplus(out)).sum(-1)  # = -BCE-with-logits
        return -0.5 * (x - out).pow(2).sum(-1) - 0.5 * self.in_dim * math.log(2 * math.pi)

    def elbo(self, x: Tensor, contexts: slice) -> Tensor:
        """One-sample reparameterised ELBO of x (M, D) under every class of `contexts`, with the analytic
        KL (Kingma & Welling 2014, appendix B) -> (K, M)."""
        mu, logvar = self.encode(x, contexts)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).float().sum(-1)
        return self.log_px(x, self.decode(z, contexts)) - kl

    def log_weights(self, x: Tensor, contexts: slice, eps: Tensor) -> Tensor:
        """Importance log-weights log p(x|z) + log p(z) - log q(z|x) of x (M, D) under every class, for
        z = mu + sigma * eps with eps (M, S, z) shared by the classes -> (K, M, S)."""
        mu, logvar = self.encode(x, contexts)
        z = mu[:, :, None] + (0.5 * logvar).exp()[:, :, None] * eps  # (K, M, S, z)
        log_pz = -0.5 * z.pow(2).sum(-1)
        log_qz = -0.5 * eps.pow(2).sum(-1) - 0.5 * logvar.sum(-1)[:, :, None]  # the 2*pi terms cancel
        k, m, s, _ = z.shape
        out = self.decode(z.reshape(k, m * s, self.z_dim), contexts).view(k, m, s, self.in_dim)
        return self.log_px(x[:, None], out) + log_pz - log_qz

    def log_likelihood(self, x: Tensor, contexts: slice, samples: int, generator: torch.Generator | None = None,
                       chunk_elements: int = SCORE_CHUNK_ELEMENTS["cpu"],
                       check: Callable[[], None] = lambda: None) -> Tensor:
        """Importance-sampled log p(x | class) of x (N, D) under every class of `contexts` -> (K, N), in
        chunks of inputs and samples small enough that no activation exceeds `chunk_elements`; `check()`
        after every chunk (the run's stop check: no host sync, no random numbers)."""
        k = len(range(self.contexts)[contexts]) * self.classes_per_context
        per_sample = k * max(self.in_dim, self.hidden)
        s_chunk = max(1, min(samples, chunk_elements // per_sample))
        n_chunk = max(1, chunk_elements // (per_sample * s_chunk))
        rows = []
        for i in range(0, x.shape[0], n_chunk):
            xi = x[i : i + n_chunk]
            parts = []
            for s in range(0, samples, s_chunk):
                eps = torch.randn(xi.shape[0], min(s_chunk, samples - s), self.z_dim, generator=generator,
                                  device=x.device)
                parts.append(self.log_weights(xi, contexts, eps))
                check()
            log_w = torch.cat(parts, dim=-1)
            rows.append(log_w.logsumexp(-1) - math.log(samples))
        return torch.cat(rows, dim=1)


class GenerativeClassifier(Method[GenClassifierParams]):
    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        p = config.method
        c = config.benchmark.classes_per_context
        assert isinstance(p, GenClassifierParams) and c is not None
        # z_dim and likelihood are resolved by data set in GenClassifierParams.resolve (core/schema/params.py).
        assert p.z_dim is not None and p.likelihood is not None
        return VAEBank(head_size // c, c, math.prod(input_shape), p.hidden, p.z_dim, p.likelihood)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Fresh, seeded noise for every evaluation: the score of an input depends only on the weights, so an
        # old class's (frozen) VAE scores its test images the same after every later context.
        self.noise = torch.Generator(self.device)
        # The stop check of the context being learned: scoring (evaluation) can run long with many importance
        # samples, and checks between chunks.
        self.check_stop: Callable[[], None] = lambda: None

    def before_context(self, info: ContextInfo) -> None:
        self.check_stop = info.check_stop

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        bank: VAEBank = self.model  # type: ignore[assignment]
        k = batch.context
        x = batch.x.flatten(1)
        elbo = bank.elbo(x, slice(k, k + 1))  # (c, N): every class's VAE of this context on every sample
        own = elbo.gather(0, (batch.y - k * bank.classes_per_context)[None])  # each sample under its own class
        return -own.mean() / bank.in_dim  # negative ELBO in nats per input dimension

    def after_context(self, info: ContextInfo) -> None:
        lo, hi = info.context.labels
        self.model.trained[lo:hi] = True

    @torch.no_grad()
    def predict(self, x: Tensor, context: int) -> Tensor:
        """log p(x | class) for the trained classes that compete (task-IL: only `context`'s own, which saves
        scoring the others); -inf everywhere else, so an untrained class never wins."""
        bank: VAEBank = self.model  # type: ignore[assignment]
        scores = x.new_full((x.shape[0], bank.classes), float("-inf"))
        learned = bank.trained.view(bank.contexts, bank.classes_per_context).all(1).tolist()
        if self.scenario.kind == "task":
            contexts = slice(context, context + 1) if learned[context] else None
        else:
            contexts = slice(0, max(k for k, done in enumerate(learned) if done) + 1) if any(learned) else None
        if contexts is None:
            return scores
        self.noise.manual_seed(self.config.train.seed)
        chunk = SCORE_CHUNK_ELEMENTS.get(x.device.type, SCORE_CHUNK_ELEMENTS["cpu"])
        ll = bank.log_likelihood(x.flatten(1).float(), contexts, self.params.importance_samples,
                                 self.noise, chunk, self.check_stop)
        lo = contexts.start * bank.classes_per_context
        scores[:, lo : lo + ll.shape[0]] = ll.T
        return scores.masked_fill(~bank.trained, float("-inf"))
