"""Sequential fine-tuning (SFT) of a class-conditional GAN, the baseline of Memory Replay GANs (Wu et al. 2018).

critic:    D(G(z, c)) - D(x) + gp (||grad D(x_hat)|| - 1)^2 + ac CE(D_cls(x), y),  x, y from context t only
generator: -D(G(z, c)) + ac CE(D_cls(G(z, c)), c),                                  c from context t only

Nothing asks the generator to keep drawing the old classes: their one-hot inputs still exist, but the shared
weights drift to the new ones (core/training/generation.py holds the GAN and its training step).
"""

from __future__ import annotations

from core.methods.parts.gan import GANMethod
from core.schema.params import GANFinetuneParams


class GANFinetune(GANMethod[GANFinetuneParams]):
    """SFT: the GAN's own losses on each context in turn."""
