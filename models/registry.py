"""``build_model``: one entry point for every trainable generator, GAN or diffusion, by model name.

The training engine and the generator loader build through here, so a family is added in one place: its own
builder (``models.gans.build_gan``, ``models.diffusion.build_diffusion``). A spec without a discriminator (``D``
is None) trains with ``models.diffusion.step.DenoiserStepper``, a GAN with the engine's ``Stepper``.
"""

from __future__ import annotations

from typing import Any

from core.config.names import DIFFUSION_NAMES


def build_model(name: str, *, res: int, cond_dim: int = 0, size: str = "full", **overrides: Any):
    """A GanSpec or DiffusionSpec for model name ``name`` (a GAN or diffusion name, not a ``+condition`` id)."""
    if name in DIFFUSION_NAMES:
        from models.diffusion.registry import build_diffusion

        return build_diffusion(name, res=res, cond_dim=cond_dim, size=size, **overrides)
    from models.gans.registry import build_gan

    return build_gan(name, res=res, cond_dim=cond_dim, size=size, **overrides)

