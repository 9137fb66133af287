"""What methods share: replay buffer, Fisher, distillation, inversion, VAE, GAN, frozen copies. Not methods."""
