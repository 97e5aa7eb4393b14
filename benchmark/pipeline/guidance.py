"""Guidance sweeps: one evaluation per classifier-free guidance scale of a diffusion model.

The scale is a property of the loaded generator (``load_generator(..., guidance=w)`` sets ``G.guidance``), so the
evaluation itself does not change: each scale is evaluated like any model and written to its own folder,
``eval/<model>@w<scale>/`` (``core.config.names.eval_name``). The report reads those folders back as a
dose-response curve (``reports.dose``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.config.names import parse_model_id, takes_guidance
from core.errors import UserError

MAX_SCALE = 100.0  # the bound of the ``guidance`` hyper-parameter (core.config.hparams.DiffusionHParams)


def parse_scales(text: str | Sequence[float]) -> list[float]:
    """``"0,1,2,4"`` -> [0.0, 1.0, 2.0, 4.0]: finite, from 0 to 100, each once, in the order given."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    out: list[float] = []
    for item in items:
        try:
            w = float(item)
        except (TypeError, ValueError):
            w = math.nan
        if not (math.isfinite(w) and 0.0 <= w <= MAX_SCALE):
            raise UserError(f"invalid guidance scale {item!r}: use numbers from 0 to {MAX_SCALE:g}, e.g. 0,1,2,4")
        if w in out:
            raise UserError(f"guidance scale {w:g} is listed twice")
        out.append(w)
    if not out:
        raise UserError("no guidance scale given: e.g. --guidance 0,1,2,4")
    return out


def evaluation_plan(models: Sequence[str], guidance: Sequence[float] | None,
                    explicit: bool) -> list[tuple[str, float | None]]:
    """(model, scale) pairs to evaluate: every scale for a diffusion model, one plain evaluation for a GAN.

    A GAN named on its own (``explicit``) with scales is refused: it has no guidance to sweep."""
    if guidance is None:
        return [(m, None) for m in models]
    plan: list[tuple[str, float | None]] = []
    for m in models:
        if takes_guidance(m):
            plan += [(m, w) for w in guidance]
        elif explicit:
            raise UserError(f"{m} is a GAN: --guidance applies to diffusion models ({parse_model_id(m).gan} has none)")
        else:
            plan.append((m, None))
    return plan
