"""MeRGAN replay alignment (Wu et al. 2018, section 3.3).

G_t and D_t learn the new context's data only (as fine-tuning), and the generator is tied to its previous
self on the old classes, with the same noise and class for both:

    generator: -D(G_t(z, c)) + ac CE(D_cls(G_t(z, c)), c)  +  lambda_RA * E_{z, c ~ old} ||G_t(z, c) - G_{t-1}(z, c)||^2

||.||^2 sums over the pixels (in [0, 1]) of one sample; E averages over a batch. MeRGAN's code sums over the
batch too (tf.nn.l2_loss, batch 64, pixels in [-1, 1]): its 1e-3 is about 0.1 on this scale for 32x32 MNIST.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.methods.parts.base import ContextInfo
from core.methods.parts.gan import GANMethod
from core.schema.params import MeRGANRAParams


class MeRGANRA(GANMethod[MeRGANRAParams]):
    needs_previous_model = True  # info.previous_model: the ConditionalGAN after context t-1, frozen

    def generator_penalty(self, info: ContextInfo) -> Tensor | None:
        old = self.old_classes(info)
        if old == 0 or info.previous_model is None:
            return None
        c = torch.randint(old, (self.config.train.batch_size,), device=self.device)
        z = torch.randn(c.shape[0], self.model.generator.z_dim, device=self.device)
        with torch.no_grad():
            target = info.previous_model.generator(z, c)  # G_{t-1}(z, c)
        alignment = (self.model.generator(z, c) - target).square().flatten(1).sum(1).mean()
        return self.params.lambda_ra * alignment
