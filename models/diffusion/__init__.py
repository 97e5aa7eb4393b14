"""A conditional diffusion model as a reference generator: a small U-Net denoiser trained with DDPM's objective and
condition dropout, sampled with a few DDIM steps under classifier-free guidance.

Entry point: ``build_diffusion(name, res=..., cond_dim=..., size=...) -> DiffusionSpec`` (registry.py). The
generator ``G(z, c)`` has the GANs' interface (z: the initial noise, flattened) and a ``guidance`` scale that
evaluation sets and sweeps; ``bench train diffusion_cond`` trains it in the GANs' engine (``step.py``).
"""

from .generator import DiffusionGenerator
from .registry import DiffusionSpec, build_diffusion

__all__ = ["DiffusionGenerator", "DiffusionSpec", "build_diffusion"]
