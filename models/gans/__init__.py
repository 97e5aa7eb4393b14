"""DCGAN, WGAN-GP and StyleGAN, unconditional and conditional, and the training engine they share."""
