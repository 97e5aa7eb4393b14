"""WGAN-GP (Gulrajani et al. 2017): DCGAN-shaped generator with BatchNorm, critic without BatchNorm.

The critic uses per-sample LayerNorm (the gradient penalty is per sample, so batch statistics would couple the
samples) or no normalisation. Its output is an unbounded score, not a probability. Conditional form: z joined
with an embedding of c, projection head on the critic.
"""

from __future__ import annotations

from torch import nn

from .dcgan import ConvDiscriminator, ConvGenerator


def build_wgan_gp(*, res: int, cond_dim: int, tiny: bool, z_dim: int = 128, base: int | None = None,
                  embed_dim: int | None = None, critic_norm: str = "layer") -> tuple[nn.Module, nn.Module]:
    """WGAN-GP generator and critic (PyTorch default init, as in the paper's code)."""
    base = base or (16 if tiny else 64)
    embed_dim = embed_dim or (16 if tiny else 64)
    G = ConvGenerator(res=res, z_dim=z_dim, base=base, cond_dim=cond_dim, embed_dim=embed_dim)
    D = ConvDiscriminator(res=res, base=base, cond_dim=cond_dim, norm=critic_norm)
    return G, D
