"""Turn one ``gpu_checks.sh`` run's ``results.json`` into the rows BENCHMARKS.md wants, baselines from the same run.

Why: device time is a few minutes per session; reading twenty JSON files by hand afterwards invites a ratio taken
against the wrong baseline. Each training case is compared with the case of the same model, resolution, batch and
widths that runs the defaults (eager, bf16, channels_last, depthwise-conv FIR) in the same run, and StyleGAN cases
with the issue's NVIDIA anchor at the same resolution and batch.

    python -m speed.summarize_gpu_checks OUT/results.json [--flops]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# the NVIDIA stylegan2-ada anchor (stylegan2 config, conditional, custom CUDA ops, one H200): s/kimg range
NVIDIA_S_PER_KIMG = {(256, 32): (6.7, 6.9), (64, 64): (2.3, 2.5)}
GAN_TARGET_IMAGES_PER_S = 5000.0  # DCGAN and WGAN-GP at 64 px


def _config(r: dict[str, Any]) -> tuple:
    h = r.get("hparams") or {}
    return r["model"], r["res"], r["batch"], h.get("channel_base")


def _is_default_run(r: dict[str, Any]) -> bool:
    """Eager with the depthwise-conv FIR (the defaults a speed-up is measured against)."""
    return not r.get("compile") and (r.get("hparams") or {}).get("fir_impl", "conv") == "conv"


def _variant(r: dict[str, Any]) -> str:
    h = r.get("hparams") or {}
    parts = [f"fir={h['fir_impl']}"] if "fir_impl" in h else []
    if r.get("compile"):
        parts.append(f"compile {r.get('compile_mode') or 'default'}")
    if not r.get("channels_last", True):
        parts.append("NCHW")
    if not r.get("amp_bf16", True):
        parts.append("fp32")
    return ", ".join(parts) or "-"


def training_rows(results: dict[str, dict], flops: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One dict per training case: rate, ratio to the same run's default case, and the StyleGAN anchor ratio."""
    train = {k: v for k, v in results.items() if isinstance(v, dict) and "images_per_s" in v}
    baselines = {}  # per configuration: the default run, channels_last preferred (the GPU default)
    for name, r in sorted(train.items(), key=lambda kv: (not kv[1].get("channels_last"), kv[0])):
        if _is_default_run(r):
            baselines.setdefault(_config(r), (name, r))
    rows = []
    for name, r in train.items():
        config = _config(r)
        base = baselines.get(config)
        row = {"case": name, "model": r["model"], "res": r["res"], "batch": r["batch"],
               "channel_base": config[3], "variant": _variant(r),
               "images_per_s": r["images_per_s"], "s_per_kimg": r["s_per_kimg"],
               "peak_memory_mb": r.get("peak_memory_mb"), "baseline": None, "vs_baseline": None,
               "vs_nvidia": None, "goal_met": None}
        if base is not None:
            row["baseline"], row["vs_baseline"] = base[0], r["images_per_s"] / base[1]["images_per_s"]
        anchor = NVIDIA_S_PER_KIMG.get((r["res"], r["batch"])) if r["model"].startswith("stylegan") else None
        if anchor is not None:
            row["vs_nvidia"] = (anchor[0] / r["s_per_kimg"], anchor[1] / r["s_per_kimg"])
            row["goal_met"] = r["s_per_kimg"] <= anchor[0] / 2  # "at least twice" the anchor's best rate
        elif r["model"].startswith(("dcgan", "wgan")) and r["res"] == 64:
            row["goal_met"] = r["images_per_s"] >= GAN_TARGET_IMAGES_PER_S
        if flops and name in flops:
            row["gflop_per_image"] = flops[name] / 1e9
            row["tflops"] = flops[name] * r["images_per_s"] / 1e12
        rows.append(row)
    return sorted(rows, key=lambda w: (w["model"], -w["res"], w["channel_base"] or 0, w["case"]))


def count_flops(results: dict[str, dict]) -> dict[str, float]:
    """FLOPs per image of each StyleGAN case's configuration, counted on the meta device (CPU seconds each)."""
    from speed.harness import iteration_flops

    out, cache = {}, {}
    for name, r in results.items():
        if not (isinstance(r, dict) and "images_per_s" in r and r["model"].startswith("stylegan")):
            continue
        h = {k: v for k, v in (r.get("hparams") or {}).items() if k in ("channel_base", "fir_impl")}
        key = (r["model"], r["res"], r["batch"], r.get("size", "full"), tuple(sorted(h.items())))
        if key not in cache:
            cache[key] = iteration_flops(r["model"], res=r["res"], batch=r["batch"], size=r.get("size", "full"),
                                         cond_dim=r.get("cond_dim", 8), hparams=h) / r["batch"]
        out[name] = cache[key]
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| case | model, px, batch | widths | variant | images/s | s/kimg | vs same-run default | GFLOP/img, "
            "TFLOP/s | vs NVIDIA anchor (rate) | goal |")
    lines = [head, "| " + " | ".join(["---"] * 10) + " |"]
    for w in rows:
        if w["baseline"] is None:
            vs_base = "no baseline in this run"
        elif w["baseline"] == w["case"]:
            vs_base = "baseline"
        else:
            vs_base = f"{w['vs_baseline']:.2f}x ({w['baseline']})"
        vs_nv = f"{w['vs_nvidia'][0]:.2f}-{w['vs_nvidia'][1]:.2f}x" if w["vs_nvidia"] else "-"
        flop = f"{w['gflop_per_image']:.1f}, {w['tflops']:.0f}" if "tflops" in w else "-"
        goal = {True: "met", False: "not met", None: "-"}[w["goal_met"]]
        lines.append(f"| {w['case']} | {w['model']}, {w['res']}, {w['batch']} | {w['channel_base'] or '-'} | "
                     f"{w['variant']} | {w['images_per_s']:,.0f} | {w['s_per_kimg']:.2f} | {vs_base} | {flop} | "
                     f"{vs_nv} | {goal} |")
    return "\n".join(lines)


def precision_lines(grads: dict[str, Any]) -> list[str]:
    """bf16_gradients.py's result: per FIR implementation and loss term, the lowest cosine to the fp32 gradient."""
    lines = [f"bf16 vs fp32 gradients on {grads.get('device_name')} ({grads.get('res')} px, "
             f"batch {grads.get('batch')}); one conv's double backward, relative error: "
             + ", ".join(f"{k} {v:.3g}" for k, v in grads.get("conv_probe", {}).items())]
    for impl, terms in grads.get("impls", {}).items():
        lines.append(f"  {impl}: " + "; ".join(
            f"{t} min cosine {r['min_cosine']:.3f}" + (f" FLAGGED {sorted(r['flagged'])}" if r["flagged"] else "")
            for t, r in terms.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="results.json written by gpu_checks.sh")
    ap.add_argument("--flops", action="store_true", help="add FLOPs per image (meta-device count, ~15 s each)")
    args = ap.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: cannot read {args.results}: {e}", file=sys.stderr)
        return 2
    print(markdown(training_rows(results, count_flops(results) if args.flops else None)))
    if isinstance(results.get("bf16-grads"), dict):
        print("\n".join(["", *precision_lines(results["bf16-grads"])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
