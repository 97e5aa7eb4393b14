"""``bench evaluate --model M|all``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core import paths
from core.config.names import eval_name


def evaluate(
    model: Annotated[
        str, typer.Option("--model", help="a trained model (a GAN name or gan+condition id), or all")
    ] = "all",
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset (default: the one it trained on)")] = None,
    n: Annotated[int | None, typer.Option("--n", min=20, help="generated covers per model")] = None,
    features: Annotated[
        str | None, typer.Option("--features", help="covernet, inception, colour or file:PATH.pt")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="evaluation seed")] = None,
    guidance: Annotated[
        str | None, typer.Option("--guidance", help="diffusion models: guidance scales, one evaluation each (0,1,2,4)")
    ] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Image quality and whether the conditioning works, with one verdict per model."""
    from benchmark.pipeline.evaluate import evaluate_run
    from benchmark.pipeline.guidance import parse_scales

    values = common.drop_none({"eval": {"n": n, "features": features, "seed": seed}, "run": run})
    cfg = common.config(preset, set_, values)
    rp = paths.run(cfg.run)

    def announce(m: str, ds) -> None:
        common.console.print(f"[bold]evaluating[/] {m} on {escape(ds.name)} ({cfg.eval.features})")

    scales = parse_scales(guidance) if guidance is not None else None
    results = evaluate_run(rp, cfg, model, dataset=dataset, announce=announce, guidance=scales)
    print_leaderboard(results)
    common.console.print(f"metrics in {escape(str(rp.root / 'eval'))}")


def _fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def print_leaderboard(results: list[dict]) -> None:
    t = Table(title="evaluation")
    for col in ("model", "FID", "KID", "cond. acc", "ceiling", "null", "p", "retrieval (ceiling)", "verdict"):
        t.add_column(col, justify="right" if col not in ("model", "verdict") else "left")
    for r in results:
        m = r["metrics"]
        acc = m["conditional_accuracy"]
        det = acc.get("details", {})
        verdict = r["verdict"]["conditioning_works"]
        colour = {"yes": "green", "no": "red"}.get(verdict, "yellow")
        t.add_row(
            escape(eval_name(r["model"], r.get("guidance"))),
            _fmt(m["fid"]["value"]),
            _fmt(m["kid"]["value"]),
            _fmt(acc["value"]),
            _fmt(det.get("ceiling")),
            _fmt(acc.get("null_mean")),
            _fmt(acc.get("p_value")),
            _retrieval(m.get("retrieval")),
            f"[{colour}]{verdict}[/]",
        )
    common.console.print(t)


def _retrieval(r: dict | None) -> str:
    """Track-level retrieval of continuous conditions: mean rank score (0.5 = chance) and the real-cover ceiling."""
    if not r:
        return "-"
    return f"{_fmt(r.get('value'))} ({_fmt((r.get('details') or {}).get('ceiling'))})"
