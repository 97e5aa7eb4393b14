"""The guidance dose-response: a diffusion model's evaluations over its classifier-free guidance scales w.

``bench evaluate --model M --guidance 0,1,2,4`` writes one evaluation per scale to ``eval/M@w<scale>/``. Read
together they answer how adherence to the condition (accuracy effect, retrieval effect, CFID) trades against
fidelity (FID, precision, recall) as w grows, with the verdict at each point: w = 0 samples the unconditional
branch and should not say "yes"; adherence should grow with w.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.config.names import guided_evals_in
from core.paths import RunPaths
from reports.plots import dose_response_plot


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _test(m: dict[str, Any], key: str) -> dict[str, Any]:
    e = m.get(key)
    if not isinstance(e, dict):
        return {}
    return {k: e.get(k) for k in ("value", "effect", "effect_interval", "p_value", "null_mean", "interval")}


def dose_point(w: float, folder: str, doc: dict[str, Any]) -> dict[str, Any]:
    """One scale's numbers: adherence, fidelity and the verdict, as plain values for the table and the plot."""
    m = {k: v for k, v in (doc.get("metrics") or {}).items() if isinstance(v, dict)}
    verdict = doc.get("verdict") if isinstance(doc.get("verdict"), dict) else {}
    return {
        "w": doc.get("guidance") if isinstance(doc.get("guidance"), int | float) else w,
        "folder": folder,
        "verdict": verdict.get("conditioning_works") or "unknown",
        "reasons": [str(r) for r in verdict.get("reasons") or []],
        "accuracy": _test(m, "conditional_accuracy"),
        "retrieval": _test(m, "retrieval"),
        "cfid": _test(m, "cfid"),
        "fid": _test(m, "fid"),
        "precision": (m.get("precision") or {}).get("value"),
        "recall": (m.get("recall") or {}).get("value"),
        "n": (m.get("conditional_accuracy") or {}).get("n"),
        "extractor": (m.get("fid") or {}).get("extractor"),
    }


def dose_responses(run: RunPaths, models: list[str], out: Path) -> list[dict[str, Any]]:
    """One block per model with guided evaluations: its points in w order and the plot (``img/dose/dose_<i>.png``,
    named by index, never by a data string)."""
    blocks = []
    for name in models:
        found = guided_evals_in(run.root / "eval", name)
        points = []
        for w, folder in found.items():
            doc = _read(run.root / "eval" / folder / "metrics.json")
            if doc is not None:
                points.append(dose_point(w, folder, doc))
        if not points:
            continue
        png = dose_response_plot(points, out / "img" / "dose" / f"dose_{len(blocks)}.png", title=name)
        blocks.append({"model": name, "href": f"model-{name}.html", "points": points,
                       "img": f"img/dose/{png.name}" if png else None})
    return blocks
