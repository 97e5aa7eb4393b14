"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout, applied to real and fake alike.

Because every op is differentiable, G is trained through the augmentation and D never sees un-augmented data,
so augmentations do not leak into the generated images. `p` gates each op per sample (1 = always, as in the
paper; ADA drives it adaptively). All ops are batched tensor maths: no per-sample python loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.errors import UserError

OPS = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'color,translation,cutout' -> tuple; '' or None or 'none' -> ()."""
    if not policy or policy == "none":
        return ()
    ops = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise UserError(f"unknown DiffAugment op(s) {', '.join(bad)}; choose from {', '.join(OPS)}")
    return ops


def _gate(x: torch.Tensor, aug: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    if isinstance(p, float | int) and p >= 1:
        return aug
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
    return torch.where(keep, aug, x)


def _rand(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, p: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Brightness (+U(-0.5, 0.5)), saturation (x U(0, 2)), contrast (x U(0.5, 1.5))."""
    x = _gate(x, x + (_rand(x) - 0.5), p)
    m = x.mean(dim=1, keepdim=True)
    x = _gate(x, (x - m) * (_rand(x) * 2) + m, p)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return _gate(x, (x - m) * (_rand(x) + 0.5) + m, p)


def translation(x: torch.Tensor, p: float | torch.Tensor = 1.0, ratio: float = 0.125) -> torch.Tensor:
    """Integer shift by up to ratio * size in each axis, zero fill."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1), device=x.device)
    iy = (torch.arange(h, device=x.device)[None] + dy + sy)  # index into padded rows
    ix = (torch.arange(w, device=x.device)[None] + dx + sx)
    xp = F.pad(x, (sx, sx, sy, sy))
    b = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
    return _gate(x, out.contiguous(memory_format=_fmt(x)), p)


def cutout(x: torch.Tensor, p: float | torch.Tensor = 1.0, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of side ratio * size at a random centre."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    yy = torch.arange(h, device=x.device)[None, :, None]
    xx = torch.arange(w, device=x.device)[None, None, :]
    inside = (yy >= oy) & (yy < oy + ch) & (xx >= ox) & (xx < ox + cw)
    return _gate(x, x * (~inside)[:, None].to(x.dtype), p)


def _fmt(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 \
        else torch.contiguous_format


class DiffAugment:
    """Callable augmentation pipeline: aug(x, p) with a policy such as 'color,translation,cutout'."""

    def __init__(self, policy: str = "color,translation,cutout"):
        self.ops = parse_policy(policy)

    def __call__(self, x: torch.Tensor, p: float | torch.Tensor = 1.0) -> torch.Tensor:
        for op in self.ops:
            x = {"color": color, "translation": translation, "cutout": cutout}[op](x, p)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.ops) or 'none'})"
