"""Brain-inspired replay, BI-R (van de Ven, Siegelmann & Tolias 2020).

Generative replay with four changes to DGR (core/methods/dgr.py):
- replay through feedback: classifier and generator are one network. The classifier's feature extractor
  is the VAE's encoder; q(z|x) and the class logits both read its features; a decoder (the encoder's
  widths reversed) generates. `build_model` builds it, so the loop's one optimiser trains it all.
- conditional replay: a Gaussian-mixture prior over z with one learnable mode per class (per output of
  the head). Current samples are pulled towards their class's mode (exact KL); replay picks a previous
  class and samples its mode.
- gating based on internal context: a fixed random mask per context switches off a fraction `gating` of
  the decoder's hidden units (like XdG); current data and replay decode through their context's mask.
- distillation: replayed samples are trained on the previous model's soft targets at temperature T,
  and their KL is taken against the prior's modes weighted by those soft targets.

Internal replay (replaying hidden features instead of pixels) applies only when the model has a frozen
pre-trained feature extractor: when `model.conv` exists and none of its parameters requires grad, the
decoder reconstructs (and replay feeds) the flattened conv features; otherwise replay is of images.

Per step (t = contexts so far), with the previous model M_old frozen at the end of the last context:
    current: CE(f(x), y) + recon_weight * (recon(x) + KL(q(z|x) || N(mu_y, var_y)) / D)
    replay:  x' = decode_old(z ~ mode of a previous class, gates of its context)
             KD_T(f(x'), f_old(x')) + recon_weight * (recon(x') + KL(q(z|x') || sum_m w_m N(mu_m, var_m)) / D)
    loss = (1/t) current + (1 - 1/t) replay,  w = softmax(f_old(x') / T) over the previous classes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.models import ContinualModel
from core.methods.parts.base import Batch, ContextInfo, Method
from core.methods.parts.common import gating_masks, hidden_widths
from core.methods.parts.distill import replay_loss
from core.methods.parts.vae import VAE, inputs_in_unit_range, reconstruction_loss, reparameterize
from core.schema.config import RunConfig
from core.schema.params import BIRParams


class FeedbackModel(ContinualModel):
    """A classifier (features -> head) with a VAE on its features: the classifier is the encoder.

    forward(x) is the classifier's logits, so evaluation and every other method see a plain ContinualModel.
    """

    def __init__(self, classifier: ContinualModel, input_shape: tuple[int, int, int], modes: int, z_dim: int,
                 gating: float, contexts: int, seed: int):
        nn.Module.__init__(self)
        self.features, self.head = classifier.features, classifier.head
        self.feature_dim, self.num_outputs = classifier.feature_dim, classifier.num_outputs
        self._hidden = classifier.hidden_layers()
        self.input_shape = tuple(input_shape)
        self.decoder_hidden = (hidden_widths(classifier, input_shape) or [400, 400])[::-1]
        masks = None
        if gating > 0:
            masks = gating_masks(self.decoder_hidden, contexts, gating, torch.Generator().manual_seed(seed + 7727))
        self.internal = False
        self.vae = VAE(int(torch.Size(input_shape).numel()), self.decoder_hidden[::-1], z_dim, recon="bce",
                       encoder=False, encoder_dim=self.feature_dim, modes=modes, gates=masks)

    def hidden_layers(self) -> list[nn.Module]:
        return list(self._hidden)

    @property
    def conv(self) -> nn.Module:
        return self.features.conv  # AttributeError (so hasattr is False) when the model has no conv stack

    def use_internal_replay(self) -> None:
        """Replay the frozen conv stack's (flattened) output instead of images: the decoder's output layer is
        rebuilt to that size, with a linear output and MSE reconstruction (features are not in [0, 1])."""
        was_training = self.conv.training
        self.conv.eval()  # a probe must not touch BatchNorm statistics
        with torch.no_grad():
            flat = self.features.flatten(self.conv(torch.zeros(1, *self.input_shape, device=self.head.weight.device)))
        self.conv.train(was_training)
        out = self.vae.decoder.out
        self.vae.decoder.out = nn.Linear(out.in_features, flat.shape[1]).to(out.weight.device)
        self.vae.input_dim, self.vae.recon = flat.shape[1], "mse"
        self.internal = True

    def replay_level(self, x: Tensor) -> Tensor:
        """What the decoder reconstructs and replay generates: the images, or the frozen conv features."""
        if not self.internal:
            return x
        with torch.no_grad():
            return self.features.flatten(self.conv(x))

    def encode(self, r: Tensor) -> Tensor:
        """Encoder features of replay-level inputs r."""
        return self.features.fc(r) if self.internal else self.features(r)

    def generate(self, mode: Tensor, context: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Replay-level samples from the prior's modes, decoded through each sample's context gates."""
        z = self.vae.prior.sample(mode, generator)
        out = self.vae.to_data(self.vae.decode_logits(z, context if self.vae.decoder.gated else None))
        return out if self.internal else out.view(-1, *self.input_shape)


class BIR(Method[BIRParams]):
    needs_previous_model = True  # M_old: the frozen copy of the whole feedback model (classifier + generator)

    @classmethod
    def build_model(cls, config: RunConfig, input_shape: tuple[int, int, int], head_size: int) -> nn.Module:
        classifier = super().build_model(config, input_shape, head_size)
        p = config.method
        assert isinstance(p, BIRParams)
        return FeedbackModel(classifier, input_shape, head_size, p.z_dim, p.gating, config.benchmark.contexts,
                             config.train.seed)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, FeedbackModel):
            raise TypeError("method bir: the model must be built by BIR.build_model")
        conv = getattr(self.model.features, "conv", None)
        if conv is not None and not any(p.requires_grad for p in conv.parameters()):
            self.model.use_internal_replay()
        elif not inputs_in_unit_range(self.benchmark):  # standardised images (CIFAR): a linear output, MSE
            self.model.vae.recon = "mse"
        self.rng = torch.Generator(self.device).manual_seed(self.config.train.seed + 49979687)

    def modes_of(self, y: Tensor) -> Tensor:
        """The prior mode of each label: its output unit of the head (domain-IL: the label within the context)."""
        return y.remainder(self.scenario.classes_per_context) if self.scenario.kind == "domain" else y

    def sample_replay(self, previous: int, n: int) -> tuple[Tensor, Tensor]:
        """(mode, context) of n replayed samples: a previous class uniformly (task-IL: the previous contexts
        in turn, a class of each); domain-IL: a previous context and a label uniformly."""
        c, device = self.scenario.classes_per_context, self.device
        if self.scenario.kind == "class":
            mode = torch.randint(0, previous * c, (n,), generator=self.rng, device=device)
            return mode, mode // c
        if self.scenario.kind == "task":
            context = torch.arange(n, device=device).remainder(previous)
            return context * c + torch.randint(0, c, (n,), generator=self.rng, device=device), context
        context = torch.randint(0, previous, (n,), generator=self.rng, device=device)
        return torch.randint(0, c, (n,), generator=self.rng, device=device), context

    def mode_weights(self, old: Tensor, previous: int, context: Tensor) -> Tensor:
        """Soft targets of the previous model as weights over the prior's modes (zero for other classes)."""
        c, temperature = self.scenario.classes_per_context, self.params.temperature
        if self.scenario.kind == "domain":
            return F.softmax(old.float() / temperature, dim=1)
        weights = torch.zeros(old.shape, device=old.device)
        if self.scenario.kind == "class":
            weights[:, : previous * c] = F.softmax(old[:, : previous * c].float() / temperature, dim=1)
            return weights
        own = old.view(old.shape[0], -1, c)[torch.arange(old.shape[0], device=old.device), context]
        index = context[:, None] * c + torch.arange(c, device=old.device)
        return weights.scatter_(1, index, F.softmax(own.float() / temperature, dim=1))

    def loss(self, batch: Batch, info: ContextInfo) -> Tensor:
        model, vae = self.model, self.model.vae
        k, n = batch.context, batch.x.shape[0]
        if model.internal:
            model.conv.eval()  # frozen: its BatchNorm statistics must not drift either
        r = model.replay_level(batch.x)
        context = batch.context_ids if batch.context_ids is not None else torch.full(
            (n,), k, dtype=torch.long, device=batch.x.device)
        replaying = k > 0 and info.previous_model is not None
        if replaying:
            old_model = info.previous_model
            with torch.no_grad():
                mode_r, context_r = self.sample_replay(k, n)
                r_replay = old_model.generate(mode_r, context_r, self.rng)
                old = old_model.head(old_model.encode(r_replay))
            r = torch.cat([r, r_replay])
            context = torch.cat([context, context_r])
        h = model.encode(r)
        logits = model.head(h)
        mu, logvar = vae.latent(h)
        z = reparameterize(mu, logvar, self.rng)
        recon = reconstruction_loss(vae.decode_logits(z, context if vae.decoder.gated else None), r, vae.recon)

        view, target = self.scenario.train_view(logits[:n], batch.y, k, batch.context_ids)
        kl = vae.prior.kl(mu[:n], logvar[:n], z[:n], mode=self.modes_of(batch.y)) / vae.input_dim
        current = F.cross_entropy(view, target) + self.params.recon_weight * (recon[:n].mean() + kl.mean())
        if not replaying:
            return current
        weights = self.mode_weights(old, k, context_r)
        kl_r = vae.prior.kl(mu[n:], logvar[n:], z[n:], weights=weights) / vae.input_dim
        kd = replay_loss(self.scenario, logits[n:], old, k, True, self.params.temperature,
                         context_r if self.scenario.kind == "task" else None)
        replay = kd + self.params.recon_weight * (recon[n:].mean() + kl_r.mean())
        t = k + 1
        return current / t + (1 - 1 / t) * replay

    def sample(self, n: int, context: int | None = None) -> Tensor:
        """n samples (for previews) of the classes of `context`, or of every class (none); internal replay
        gives conv features, not images."""
        c, device = self.scenario.classes_per_context, self.device
        modes = self.model.vae.prior.means.shape[0]
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            if context is None:
                mode = torch.randint(0, modes, (n,), generator=self.rng, device=device)
                ctx = mode // c if self.scenario.kind != "domain" else torch.randint(
                    0, self.scenario.contexts, (n,), generator=self.rng, device=device)
            else:
                mode = torch.randint(0, c, (n,), generator=self.rng, device=device)
                mode = mode if self.scenario.kind == "domain" else mode + context * c
                ctx = torch.full((n,), context, dtype=torch.long, device=device)
            out = self.model.generate(mode, ctx, self.rng)
        self.model.train(was_training)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state(), "internal": self.model.internal}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])
