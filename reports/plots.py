"""Training curves for the report: one PNG per model from its ``stats.jsonl`` (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.plot_text import plain, plain_text_rc

CURVES = (
    ("losses", ("loss/D", "loss/G")),
    ("discriminator outputs", ("D/real", "D/fake")),
    ("throughput (images/s)", ("images_per_s",)),
)


def read_stats(path: Path) -> list[dict]:
    """Rows of a stats.jsonl; a torn last line (a run killed mid-write) is skipped, not fatal."""
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def training_curves(stats_path: Path, out: Path, title: str = "") -> Path | None:
    """Plot losses, D outputs and throughput against kimg; None when there is nothing to plot."""
    rows = read_stats(Path(stats_path))
    panels = []
    for name, keys in CURVES:
        series = []
        for k in keys:
            pts = [
                (float(r.get("kimg", r.get("images_seen", 0) / 1000)), float(r[k]))
                for r in rows
                if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
            ]
            if pts:
                series.append((k, pts))
        if series:
            panels.append((name, series))
    if not panels:
        return None
    with plain_text_rc():  # every Text (ticks too) is made without LaTeX; data strings are escaped
        return _draw_curves(panels, Path(out), plain(title) if title else "")


def _draw_curves(panels: list, out: Path, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 3.2), dpi=100)
    FigureCanvasAgg(fig)
    for i, (name, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k, pts in series:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="." if len(pts) < 30 else None, label=plain(k))
        ax.set_title(plain(name), fontsize=10)
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    return out
