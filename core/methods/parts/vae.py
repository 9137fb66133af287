"""A variational auto-encoder (Kingma & Welling 2014) for generative replay, shared by DGR and BI-R.

    encoder h = MLP(x)  ->  q(z|x) = N(mu(h), diag exp(logvar(h)))  ->  z = mu + exp(logvar / 2) * eps
    decoder x' = MLP(z) (the encoder's widths reversed), sigmoid output for BCE, linear for MSE

The loss is the negative ELBO per input element, as in van de Ven's reference code: the reconstruction
loss averaged over the D input elements plus KL(q(z|x) || p(z)) / D. Scaling by 1/D keeps the VAE's
loss the size of a cross-entropy, which matters when the VAE shares its encoder with a classifier (BI-R).

Options that brain-inspired replay (van de Ven, Siegelmann & Tolias 2020) needs:
- `encoder=False`: no encoder of its own; the caller encodes (replay through feedback: the classifier's
  feature extractor is the encoder) and passes the features to `latent(h)`.
- `modes > 0`: a Gaussian-mixture prior with one learnable mode (mean, log-variance) per class, for
  conditional generation. KL to a given class's mode is exact (closed form); KL to a mixture of modes
  weighted per sample (soft labels of replayed samples) is the one-sample Monte-Carlo estimate
  log q(z|x) - log sum_m w_m N(z; mu_m, var_m), since it has no closed form.
- `gates`: per-context 0/1 masks over the decoder's hidden units (like XdG): the decoder's gated units
  output exactly zero, so each context decodes through its own sub-network.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import Benchmark

LOG_2PI = math.log(2 * math.pi)


def inputs_in_unit_range(benchmark: Benchmark) -> bool:
    """BCE reconstruction needs inputs in [0, 1]; standardised data (CIFAR) gets MSE. One host sync, once."""
    lo = min(c.x_train.min() for c in benchmark.contexts)
    hi = max(c.x_train.max() for c in benchmark.contexts)
    return bool(lo >= 0) and bool(hi <= 1)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps * torch.exp(0.5 * logvar)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension (broadcasts over the others)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * torch.exp(-logvar)).sum(-1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample (closed form)."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)


def kl_gaussians(mu: Tensor, logvar: Tensor, prior_mu: Tensor, prior_logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) per sample (closed form, diagonal)."""
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).square()) * torch.exp(-prior_logvar)
                  - 1).sum(-1)


def reconstruction_loss(x_out: Tensor, x: Tensor, kind: str) -> Tensor:
    """Per sample, averaged over elements: BCE of the decoder's logits, or the Gaussian negative
    log-likelihood with unit variance (0.5 * squared error, constant dropped) of its linear output."""
    x_out, x = x_out.flatten(1), x.flatten(1)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(x_out, x, reduction="none").mean(1)
    return 0.5 * (x_out - x).square().mean(1)


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_m pi_m N(z; mean_m, diag exp(logvar_m)) with one learnable mode per class."""

    def __init__(self, modes: int, z_dim: int):
        super().__init__()
        self.means = nn.Parameter(torch.randn(modes, z_dim))
        self.logvars = nn.Parameter(torch.zeros(modes, z_dim))

    def kl(self, mu: Tensor, logvar: Tensor, z: Tensor, mode: Tensor | None = None,
           weights: Tensor | None = None) -> Tensor:
        """KL(q(z|x) || p(z)) per sample: exact against mode `mode` (one per sample); otherwise the
        Monte-Carlo estimate at the sample `z` against the mixture weighted by `weights` (N, modes;
        rows sum to 1; none: uniform)."""
        if mode is not None:
            return kl_gaussians(mu, logvar, self.means[mode], self.logvars[mode])
        log_q = log_normal_diag(z, mu, logvar)
        log_p_modes = log_normal_diag(z.unsqueeze(1), self.means.unsqueeze(0), self.logvars.unsqueeze(0))  # (N, M)
        if weights is None:
            log_p = torch.logsumexp(log_p_modes, 1) - math.log(self.means.shape[0])
        else:
            log_p = torch.logsumexp(log_p_modes + torch.log(weights.clamp_min(1e-30)), 1)
        return log_q - log_p

    def sample(self, mode: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return reparameterize(self.means[mode], self.logvars[mode], generator)


class GatedMLP(nn.Module):
    """Linear -> ReLU per hidden width, then a linear output layer; optional per-context masks on the
    hidden units (`masks[i]` is a (contexts, width_i) 0/1 tensor for hidden layer i)."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, masks: list[Tensor] | None = None):
        super().__init__()
        widths = [in_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.out = nn.Linear(widths[-1], out_dim)
        self.gated = masks is not None
        for i, mask in enumerate(masks or []):
            if mask.shape[1] != hidden[i]:
                raise ValueError(f"gate mask {i} has width {mask.shape[1]}, layer has {hidden[i]}")
            self.register_buffer(f"mask{i}", mask.float())

    def masks(self) -> list[Tensor]:
        return [getattr(self, f"mask{i}") for i in range(len(self.hidden))] if self.gated else []

    def forward(self, h: Tensor, context: Tensor | None = None) -> Tensor:
        """`context`: per-sample context ids (N,), needed when the layer is gated."""
        if self.gated and context is None:
            raise ValueError("a gated decoder needs the context of every sample")
        for i, layer in enumerate(self.hidden):
            h = F.relu(layer(h))
            if self.gated:
                h = h * getattr(self, f"mask{i}")[context]
        return self.out(h)


class VAE(nn.Module):
    """MLP VAE over flat inputs of `input_dim`; see the module docstring for the options."""

    def __init__(self, input_dim: int, hidden: list[int], z_dim: int, *, recon: str = "bce", encoder: bool = True,
                 encoder_dim: int | None = None, modes: int = 0, gates: list[Tensor] | None = None):
        super().__init__()
        if recon not in ("bce", "mse"):
            raise ValueError(f"recon must be bce or mse, got {recon!r}")
        self.input_dim, self.z_dim, self.recon = int(input_dim), int(z_dim), recon
        hidden = list(hidden)
        if encoder:
            layers: list[nn.Module] = [nn.Flatten()]
            for a, b in pairwise([input_dim, *hidden]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.encoder: nn.Module | None = nn.Sequential(*layers)
            h_dim = hidden[-1] if hidden else input_dim
        else:
            self.encoder = None
            if encoder_dim is None:
                raise ValueError("a VAE without its own encoder needs encoder_dim, the size of the features it gets")
            h_dim = encoder_dim
        self.to_mu = nn.Linear(h_dim, z_dim)
        self.to_logvar = nn.Linear(h_dim, z_dim)
        self.decoder = GatedMLP(z_dim, hidden[::-1], input_dim, gates)
        self.prior = GaussianMixturePrior(modes, z_dim) if modes > 0 else None

    # --- encoding and decoding --------------------------------------------------------------------

    def latent(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) from encoder features h: (mu, logvar)."""
        return self.to_mu(h), self.to_logvar(h)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.encoder is None:
            raise RuntimeError("this VAE has no encoder of its own; call latent(features) instead")
        return self.latent(self.encoder(x))

    def decode_logits(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """The decoder's raw output (logits for BCE, the reconstruction itself for MSE), flat (N, D)."""
        return self.decoder(z, context)

    def to_data(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out) if self.recon == "bce" else out

    # --- the loss ---------------------------------------------------------------------------------

    def elbo_terms(self, x: Tensor, h: Tensor | None = None, context: Tensor | None = None,
                   mode: Tensor | None = None, weights: Tensor | None = None,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(reconstruction, KL / D) per sample for inputs x (encoded here, or given as features h)."""
        mu, logvar = self.latent(h) if h is not None else self.encode(x)
        z = reparameterize(mu, logvar, generator)
        recon = reconstruction_loss(self.decode_logits(z, context), x, self.recon)
        if self.prior is None:
            kl = kl_standard_normal(mu, logvar)
        else:
            kl = self.prior.kl(mu, logvar, z, mode=mode, weights=weights)
        return recon, kl / self.input_dim

    def loss(self, x: Tensor, **kwargs) -> Tensor:
        """Negative ELBO per input element, per sample (N,)."""
        recon, kl = self.elbo_terms(x, **kwargs)
        return recon + kl

    # --- generation -------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, mode: Tensor | None = None, context: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """n samples (N, D): z from the standard normal, or from the prior's `mode` (one per sample)."""
        device = self.to_mu.weight.device
        if mode is None:
            z = torch.randn((n, self.z_dim), generator=generator, device=device)
        else:
            if self.prior is None:
                raise ValueError("this VAE has no mixture prior to pick modes from")
            z = self.prior.sample(mode, generator)
        return self.to_data(self.decode_logits(z, context))
