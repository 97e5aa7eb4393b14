"""StyleGAN generator: mapping + synthesis, with truncation and in-forward style mixing.

Style mixing happens inside forward (per sample, by a random layer cutoff chosen with tensor ops) so a DDP wrapper
sees one forward, and there is no data-dependent python branching.
"""

from __future__ import annotations

import torch
from torch import nn

from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork


class StyleGenerator(nn.Module):
    """G(z, c) -> images (N, 3, res, res), roughly in [-1, 1] (not clamped)."""

    def __init__(self, *, res: int, z_dim: int = 512, w_dim: int = 512, cond_dim: int = 0, mapping_layers: int = 8,
                 channel_base: int = 16384, channel_max: int = 512, channels: int = 3, fused: bool = False,
                 fir_impl: str = "conv"):
        super().__init__()
        self.res, self.z_dim, self.w_dim, self.cond_dim = res, z_dim, w_dim, cond_dim
        self.synthesis = SynthesisNetwork(res=res, w_dim=w_dim, channel_base=channel_base, channel_max=channel_max,
                                          channels=channels, fused=fused, fir_impl=fir_impl)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, w_dim=w_dim, cond_dim=cond_dim, layers=mapping_layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, *, truncation_psi: float = 1.0,
                noise_mode: str = "random", style_mix_prob: float = 0.0,
                return_ws: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        w = self.mapping(z, c, truncation_psi=truncation_psi)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if style_mix_prob > 0:
            w2 = self.mapping(torch.randn_like(z), c, truncation_psi=truncation_psi, update_w_avg=False)
            n = z.shape[0]
            cutoff = torch.randint(1, self.num_ws, (n,), device=z.device)
            mixed = torch.rand(n, device=z.device) < style_mix_prob
            cutoff = torch.where(mixed, cutoff, torch.full_like(cutoff, self.num_ws))
            layer = torch.arange(self.num_ws, device=z.device)
            ws = torch.where((layer[None, :] < cutoff[:, None])[:, :, None], ws, w2.unsqueeze(1))
        img = self.synthesis(ws, noise_mode=noise_mode)
        return (img, ws) if return_ws else img
