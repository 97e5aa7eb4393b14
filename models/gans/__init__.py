"""DCGAN, WGAN-GP and StyleGAN, unconditional and conditional: networks, losses, augmentation.

Entry point: `build_gan(name, res=..., cond_dim=..., size="tiny"|"full") -> GanSpec` (see registry.py); the loss
contract a training engine drives is documented in losses.py.
"""

from .losses import ema_beta, ema_update
from .registry import MODELS, GanSpec, OptimSpec, build_gan

__all__ = ["MODELS", "GanSpec", "OptimSpec", "build_gan", "ema_beta", "ema_update"]
