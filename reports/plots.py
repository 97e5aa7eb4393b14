"""Training curves for the report: one PNG per model from its ``stats.jsonl`` (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import json
from pathlib import Path

from core.plot_text import plain, plain_text_rc

CURVES = (
    ("losses", ("loss/D", "loss/G", "loss/denoise")),  # loss/denoise: the diffusion model's
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
    return _save(fig, out, title)


def _save(fig, out: Path, title: str) -> Path:  # noqa: ANN001 - a matplotlib figure
    """Title, layout and the file: the last lines of every drawing here."""
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


VERDICT_COLOURS = {"yes": "#2a9d3a", "no": "#c0392b", "inconclusive": "#e08e0b"}


def _series(points: list[dict], key: str, field: str = "effect") -> tuple[list, list, list, list]:
    """(w, value, low, high) of one metric over the points that have it (interval bounds fall back to the value)."""
    rows = []
    for p in points:
        e = p.get(key) or {}
        v = e.get(field) if isinstance(e, dict) else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            iv = e.get(f"{field}_interval" if field == "effect" else "interval") or (v, v)
            lo, hi = (iv if isinstance(iv, list | tuple) and len(iv) == 2 and None not in iv else (v, v))
            rows.append((p["w"], float(v), float(lo), float(hi)))
    if not rows:
        return [], [], [], []
    return tuple(list(c) for c in zip(*rows, strict=True))  # type: ignore[return-value]


def dose_response_plot(points: list[dict], out: Path, title: str = "") -> Path | None:
    """Adherence (accuracy and retrieval effects with their intervals, CFID) and fidelity (FID, precision, recall)
    over the guidance scale w, each point coloured by its verdict; and accuracy effect against FID, labelled by w."""
    if not points:
        return None
    with plain_text_rc():
        return _draw_dose(sorted(points, key=lambda p: p["w"]), Path(out), plain(title) if title else "")


def _draw_dose(points: list[dict], out: Path, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 4, i + 1) for i in range(4)]
    colours = [VERDICT_COLOURS.get(p["verdict"], "grey") for p in points]
    ax = axes[0]
    for key, label in (("accuracy", "accuracy effect"), ("retrieval", "retrieval effect")):
        w, v, lo, hi = _series(points, key)
        if w:
            ax.errorbar(w, v, yerr=[[a - b for a, b in zip(v, lo, strict=True)],
                                    [b - a for a, b in zip(v, hi, strict=True)]], capsize=3, label=label)
            ax.scatter(w, v, c=[colours[i] for i, p in enumerate(points) if p["w"] in w], zorder=3, s=36)
    ax.axhline(0, color="grey", linewidth=1, linestyle=":")
    ax.set(title="adherence over w (colour: verdict)", xlabel="guidance scale w", ylabel="effect over the null")
    ax = axes[1]
    for field, label, style in (("value", "CFID", "-"), ("null_mean", "CFID, shuffled pairs", "--")):
        w, v, _, _ = _series(points, "cfid", field)
        if w:
            ax.plot(w, v, marker="o", linestyle=style, label=label)
    ax.set(title="CFID over w (lower: closer given c)", xlabel="guidance scale w")
    ax = axes[2]
    _, acc, _, _ = _series(points, "accuracy")
    _, fid, _, _ = _series(points, "fid", "value")
    if acc and len(acc) == len(fid) == len(points):
        ax.plot(fid, acc, color="grey", linewidth=1)
        ax.scatter(fid, acc, c=colours, zorder=3, s=36)
        for p, x, y in zip(points, fid, acc, strict=True):
            ax.annotate(f"w={p['w']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(title="adherence against fidelity", xlabel="FID (lower: closer to real)", ylabel="accuracy effect")
    ax = axes[3]
    for key in ("precision", "recall"):
        pts = [(p["w"], p[key]) for p in points if isinstance(p.get(key), int | float)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=key)
    ax.set(title="precision / recall over w", xlabel="guidance scale w", ylim=(-0.03, 1.03))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, out, title)
