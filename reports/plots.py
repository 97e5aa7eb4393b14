"""Training curves for the report: one PNG per model from its ``stats.jsonl`` (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import json
from pathlib import Path

from core.plot_text import plain, plain_text_rc

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


def power_curves(power: dict, out_dir: Path) -> list[tuple[str, Path]]:
    """One PNG per condition of a ``power.json``: the verdict's yes-rate against strength q, one line per n, with
    the Wilson interval of each rate, the target power and alpha; files named by index, never by data strings."""
    out = []
    with plain_text_rc():
        for i, cond in enumerate(sorted({r["condition"] for r in power.get("rows", [])})):
            rows = [r for r in power["rows"] if r["condition"] == cond]
            path = _draw_power(rows, cond, float(power.get("target_power", 0.8)), float(power.get("alpha", 0.01)),
                               Path(out_dir) / f"power_{i}.png")
            out.append((cond, path))
    return out


def _draw_power(rows: list[dict], condition: str, target: float, alpha: float, out: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for n in sorted({r["n"] for r in rows}):
        pts = sorted((r["strength"], r["yes"], *r["yes_interval"]) for r in rows if r["n"] == n)
        q, yes, lo, hi = (list(v) for v in zip(*pts, strict=True))
        line = ax.plot(q, yes, marker="o", label=f"n = {n}")[0]
        ax.fill_between(q, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"power {target:g}")
    ax.axhline(alpha, color="red", linestyle=":", linewidth=1, label=f"alpha {alpha:g}")
    ax.set_xlabel("strength q (share of covers that are the asked track's own)")
    ax.set_ylabel('rate of verdict "yes"')
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(plain(f"verdict power: {condition}"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    return out
